"""
``dccrelay-bot``: run a discord.py or hikari bot behind a relay, in place
of ``bot.run(token)``::

    DISCORD_TOKEN=... DCC_SECRET=... dccrelay-bot mybot:bot --listen 0.0.0.0:8080 \\
        --register --relay https://relay.example --alias mybot --public-url https://mybot.example/

It logs in over REST, serves the bot's ``dst`` at ``/`` on ``--listen``
(webhook POSTs and websocket v2 upgrades), feeds each delivered dispatch
to the framework and acknowledges it once the handlers it started are
done.  With ``--register`` it first registers (or updates) the bot with the
relay.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web

from dccrelay_client.dispatcher import CAP, Dispatcher, warm
from dccrelay_client.frameworks import FrameworkBot, adapt
from dccrelay_client.receiver import delivery_app
from dccrelay_client.registration import RegistrationError, RelayAPI, registration_body
from dccrelay_client.settle import track_tasks

DISCORD_API = "https://discord.com/api/v10"

#: the GUILDS gateway intent
GUILDS = 1 << 0

#: what a bot hears by default: people's messages and interactions
DEFAULT_CRITERIA: dict[str, Any] = {
    "$or": [
        {"t": "MESSAGE_CREATE", "$not": {"d.author.bot": True}},
        {"t": "INTERACTION_CREATE"},
    ]
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Read the command line; errors name the option and what to give."""
    parser = argparse.ArgumentParser(
        prog="dccrelay-bot",
        description=(
            "Run a discord.py Client/Bot or a hikari GatewayBot behind a dccrelay relay. "
            "The bot token comes from DISCORD_TOKEN, the clientSecret from DCC_SECRET."
        ),
    )
    parser.add_argument("bot", metavar="MODULE:ATTR", help="where the bot object is, e.g. mybot:bot")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT", help="where to serve dst")
    parser.add_argument("--discord-api", default=DISCORD_API, metavar="URL", help="Discord's REST base")
    parser.add_argument("--relay", metavar="URL", help="the relay's base URL (commands, --register)")
    parser.add_argument("--alias", metavar="NAME", help="the bot's alias on the relay")
    parser.add_argument("--register", action="store_true", help="register with the relay first")
    parser.add_argument("--criteria", metavar="JSON", help="the bot's criteria (default: messages "
                        "not from bots, and interactions)")
    parser.add_argument("--delivery", choices=("webhook", "v2"), default="webhook")
    parser.add_argument("--public-url", metavar="URL", help="the dst to register, when the relay "
                        "reaches the bot elsewhere than --listen")
    parser.add_argument("--cap", type=float, default=CAP, help="seconds a delivery waits for its "
                        "handlers at most (default: %(default)s)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen must be HOST:PORT, e.g. 127.0.0.1:8080, got {args.listen!r}")
    args.host, args.port = host.strip("[]"), int(port)
    if ":" not in args.bot:
        parser.error(f"MODULE:ATTR names the bot object, e.g. mybot:bot, got {args.bot!r}")
    if args.register and not (args.relay and args.alias):
        parser.error("--register needs --relay and --alias")
    try:
        args.criteria = DEFAULT_CRITERIA if args.criteria is None else json.loads(args.criteria)
    except ValueError as e:
        parser.error(f"--criteria must be JSON: {e}")
    args.token = os.environ.get("DISCORD_TOKEN", "")
    args.secret = os.environ.get("DCC_SECRET", "")
    if not args.token:
        parser.error("set DISCORD_TOKEN to the bot's token")
    if not args.secret:
        parser.error("set DCC_SECRET to the bot's clientSecret (8 to 256 characters)")
    return args


def load_bot(spec: str) -> object:
    """Import ``MODULE:ATTR`` (the current directory is on the path, as for ``python -m``)."""
    module_name, _, attr = spec.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part)
    return found


def dst_for(args: argparse.Namespace, port: int) -> str:
    """The dst to register: --public-url, else --listen; ws(s):// for v2."""
    url = args.public_url or f"http://{args.host}:{port}/"
    if args.delivery == "v2":
        url = "ws" + url[len("http"):] if url.startswith("http") else url
    return url


async def serve(args: argparse.Namespace, bot: FrameworkBot, stop: asyncio.Event) -> None:
    """Log in, listen, register, and run until ``stop`` is set."""
    track_tasks(asyncio.get_running_loop())
    async with aiohttp.ClientSession() as session:
        relay = (
            RelayAPI(session, args.relay, args.alias, args.secret)
            if args.relay and args.alias
            else None
        )
        await bot.start(args.token, args.discord_api, relay)
        dispatcher = Dispatcher(bot, args.cap)
        runner = web.AppRunner(delivery_app(dispatcher, args.secret))
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        print(f"dccrelay-bot: serving dst on http://{args.host}:{port}/", flush=True)
        try:
            if args.register and relay is not None:
                body = registration_body(
                    token=args.token,
                    dst=dst_for(args, port),
                    client_secret=args.secret,
                    # GUILDS: the guild events the relay's snapshot is kept from
                    intents=bot.intents | GUILDS,
                    criteria=args.criteria,
                    delivery_protocol=2 if args.delivery == "v2" else None,
                    defer_interactions=True,
                )
                body["guildSnapshot"] = True
                await relay.register(body)
                print(f"dccrelay-bot: registered {args.alias} with {args.relay}", flush=True)
            warmed = await warm(bot, relay)
            dispatcher.ready()
            print(f"dccrelay-bot: ready, {warmed} guilds from the relay's snapshot", flush=True)
            # kept referenced so the loop does not forget it
            announcing = asyncio.ensure_future(_announce(bot)) if relay is not None else None
            await stop.wait()
            if announcing is not None:
                announcing.cancel()
        finally:
            await runner.cleanup()
            await bot.close()


async def _announce(bot: FrameworkBot) -> None:
    try:
        await bot.announce()
    except Exception as e:
        print(f"dccrelay-bot: could not set the bot's first presence: {e}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # as bot.run() does: the framework's warnings and handler errors on stderr
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        bot = adapt(load_bot(args.bot))
    except (ImportError, AttributeError, TypeError) as e:
        print(f"dccrelay-bot: {args.bot}: {e}", file=sys.stderr)
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(args, bot, stop)

    try:
        asyncio.run(run())
    except RegistrationError as e:
        print(f"dccrelay-bot: the relay refused the registration: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
