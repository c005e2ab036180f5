"""
Pieces for the framework end-to-end tests: the Discord simulator and the
real relay in this process, and ``dccrelay-bot`` running a real framework's
bot in a child process, all on loopback.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import orjson
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

import dccrelay
from dccrelay.testing.simulator import SimulatedBot
from tests.harness import LOOPBACK, SECRET, TEST_CA, RelayProcess, tls_simulator, wait_for
from tests.twistd_process import CollectedOutput

REPO = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))
BOT_ID = "111111111111111111"
MESSAGE_CONTENT = 1 << 15


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BotProcess(CollectedOutput):
    """``dccrelay-bot`` in a child process; its output is kept for failures."""


class FrameworkCase(TestCase):
    """
    The simulator, a relay, and a bot run by ``dccrelay-bot``.
    """

    timeout = 120
    token = "MTExMTExMTExMTExMTExMTEx.Gg1234.frameworks-e2e"
    alias = "framework_bot"

    async def start_world(self, *relay_options: str) -> None:
        """
        The simulator over TLS, as Discord serves (guild 2222 has members
        member0..2), and the relay.
        """
        self.sim = tls_simulator()
        # the bot's framework trusts the test CA as it would Discord's
        self.ca_file = TEST_CA.write_ca(os.path.abspath(self.mktemp()))
        await self.sim.listen(LOOPBACK)
        self.addCleanup(self.sim.stop)
        self.simulated: SimulatedBot = self.sim.add_bot(
            token=self.token, user_id=BOT_ID, privileged_intents=MESSAGE_CONTENT
        )
        self.simulated.add_members("2222", 3)
        self.relay = await RelayProcess.started(
            self, self.mktemp(), self.sim.api_url, *relay_options
        )

    async def start_bot(self, spec: str, *options: str, port: int = 0) -> BotProcess:
        """
        ``dccrelay-bot spec`` registered with the relay; returns once the
        relay's gateway session for it is ready.
        """
        process = BotProcess()
        argv = [
            sys.executable, "-m", "dccrelay_client.runner", spec,
            "--listen", f"127.0.0.1:{port}",
            "--discord-api", self.sim.api_url,
            "--relay", self.relay.base,
            "--alias", self.alias,
            *options,
        ]
        env = dict(
            os.environ, PYTHONPATH=REPO, DISCORD_TOKEN=self.token, DCC_SECRET=SECRET,
            SSL_CERT_FILE=self.ca_file,
        )
        reactor.spawnProcess(process, sys.executable, argv, env=env, path=REPO)  # type: ignore[attr-defined]
        self.addCleanup(self.stop_bot, process)
        if "--register" in options:
            await wait_for(
                lambda: b"registered" in process.output or process.ended.called,
                timeout=60, what="dccrelay-bot to register",
            )
            self.assertFalse(process.ended.called, process.text())
            try:
                await self.simulated.wait_for_ready().addTimeout(30, reactor)
            except Exception:
                _, status = await self.relay.request("GET", f"/relays/{self.alias}", secret=SECRET)
                self.fail(f"no gateway session: {status}\n{process.text()}")
        else:
            await wait_for(
                lambda: b"serving dst" in process.output or process.ended.called,
                timeout=60, what="dccrelay-bot to listen",
            )
        return process

    async def stop_bot(self, process: BotProcess) -> None:
        """SIGTERM, and wait for the process to end."""
        if not process.ended.called:
            process.transport.signalProcess("TERM")  # type: ignore[union-attr]
            await process.ended

    async def reply_to(self, content: str, process: BotProcess, **kwargs: Any) -> str:
        """A person writes ``content`` in 3333; the bot's next message there."""
        count = len(self.sim.messages)
        self.simulated.message(content, **kwargs)
        await wait_for(
            lambda: len(self.sim.messages) > count or process.ended.called,
            timeout=30, what=f"a reply to {content!r}",
        )
        self.assertFalse(process.ended.called, process.text())
        return str(self.sim.messages[count][2]["content"])

    async def until(self, condition: Any, process: BotProcess, what: str) -> None:
        """Wait for ``condition``; on a timeout, fail showing the bot's output."""
        try:
            await wait_for(condition, timeout=30, what=what)
        except AssertionError as e:
            _, status = await self.relay.request("GET", f"/relays/{self.alias}", secret=SECRET)
            self.fail(f"{e}\nrelay: {status}\n{process.text()}")

    def interaction(self, name: str) -> Any:
        """A person uses slash command ``name``; its simulated record."""
        d = orjson.loads(self.simulated.interaction(name=name))["d"]
        return self.sim.interactions.by_id[d["id"]]
