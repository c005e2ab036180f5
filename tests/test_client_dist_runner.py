"""
``dccrelay-bot``'s command line: what it accepts, the errors that say what
to fix, the dst it registers, and which bots it can run.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr

from twisted.trial.unittest import SynchronousTestCase

from dccrelay_client.frameworks import adapt
from dccrelay_client.runner import DEFAULT_CRITERIA, dst_for, parse_args

ENV = {"DISCORD_TOKEN": "token", "DCC_SECRET": "admin:c2VjcmV0LXNlY3JldA"}


class ParseTests(SynchronousTestCase):
    """parse_args."""

    def parse(self, *argv: str, env: dict[str, str] = ENV) -> object:
        self.patch(os, "environ", dict(env))
        return parse_args(argv)

    def refused(self, *argv: str, env: dict[str, str] = ENV) -> str:
        stderr = io.StringIO()
        with redirect_stderr(stderr), self.assertRaises(SystemExit):
            self.parse(*argv, env=env)
        return stderr.getvalue()

    def test_defaults(self) -> None:
        """
        With only the bot and --listen: webhook delivery, Discord's API,
        the default criteria (people's messages and interactions), and the
        token and secret from the environment.
        """
        args = self.parse("mybot:bot", "--listen", "127.0.0.1:0")
        self.assertEqual(
            (args.host, args.port, args.delivery, args.criteria, args.token),  # type: ignore[attr-defined]
            ("127.0.0.1", 0, "webhook", DEFAULT_CRITERIA, "token"),
        )
        self.assertEqual(args.discord_api, "https://discord.com/api/v10")  # type: ignore[attr-defined]

    def test_errors(self) -> None:
        """
        A --listen without a port, --register without --relay and --alias,
        criteria that are not JSON, and a missing token or secret are
        refused, each naming what to give.
        """
        self.assertIn("--listen must be HOST:PORT", self.refused("m:b", "--listen", "localhost"))
        self.assertIn(
            "--register needs --relay and --alias",
            self.refused("m:b", "--listen", "h:1", "--register"),
        )
        self.assertIn(
            "--criteria must be JSON", self.refused("m:b", "--listen", "h:1", "--criteria", "{")
        )
        self.assertIn("DISCORD_TOKEN", self.refused("m:b", "--listen", "h:1", env={}))
        self.assertIn(
            "DCC_SECRET",
            self.refused("m:b", "--listen", "h:1", env={"DISCORD_TOKEN": "t"}),
        )

    def test_dst(self) -> None:
        """
        The registered dst is --public-url, else the listening address;
        for websocket v2 its scheme becomes ws(s).
        """
        args = self.parse("m:b", "--listen", "127.0.0.1:0")
        self.assertEqual(dst_for(args, 8123), "http://127.0.0.1:8123/")  # type: ignore[arg-type]
        args = self.parse("m:b", "--listen", "0.0.0.0:80", "--delivery", "v2",
                          "--public-url", "https://bot.example/dcc")
        self.assertEqual(dst_for(args, 80), "wss://bot.example/dcc")  # type: ignore[arg-type]


class AdaptTests(SynchronousTestCase):
    """adapt: the framework is found by the bot object's type."""

    def test_frameworks(self) -> None:
        """A discord.py Client and a hikari GatewayBot each get their adapter."""
        import discord
        import hikari

        from dccrelay_client.discordpy import DiscordPyBot
        from dccrelay_client.hikari_bot import HikariBot

        client = discord.Client(intents=discord.Intents.default())
        self.assertIsInstance(adapt(client), DiscordPyBot)
        gateway_bot = hikari.GatewayBot(token="MTExMTExMTExMTExMTExMTEx.Gg1234.adapt", banner=None)
        self.assertIsInstance(adapt(gateway_bot), HikariBot)

    def test_other(self) -> None:
        """Anything else is refused, saying what is accepted."""
        with self.assertRaises(TypeError) as caught:
            adapt(object())
        self.assertIn("discord.py Client/Bot", str(caught.exception))
