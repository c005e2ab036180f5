"""
``python -m examples.cookout``: run the cookout bot.

Secrets come from the environment, as in the prototype's tutorial:
``DISCORD_TOKEN``, ``BOT_USER_ID`` and ``DCC_SECRET`` (make one with
``echo "admin:$(head -c16 /dev/urandom | base64)"``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError
from twisted.internet.task import react
from twisted.logger import globalLogBeginner, textFileLogObserver

from dccrelay.client import RegistrationError
from examples.cookout.bot import CookoutBot, CookoutConfig

_ENVIRONMENT = ("DISCORD_TOKEN", "BOT_USER_ID", "DCC_SECRET")


def parse_args(argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
    """
    The command line; defaults from the environment where a host sets them.
    """
    parser = argparse.ArgumentParser(
        prog="python -m examples.cookout",
        description="The cookout sample bot. Needs $DISCORD_TOKEN, $BOT_USER_ID and $DCC_SECRET.",
    )
    parser.add_argument(
        "--relay", default=environ.get("DCC_RELAY"), help="the relay's URL (default: $DCC_RELAY)"
    )
    parser.add_argument("--alias", default="sample_cookout")
    # Hosts such as Glitch say which port to use in $PORT.
    default_listen = (
        f"tcp:{environ['PORT']}" if environ.get("PORT") else "tcp:8092:interface=127.0.0.1"
    )
    parser.add_argument(
        "--listen", default=default_listen,
        help="Twisted endpoint for the page and the relay's websocket (default: %(default)s)",
    )
    parser.add_argument(
        "--dst", default=environ.get("COOKOUT_DST"),
        help="public wss:// URL of /dcc/v1/ALIAS (default: $COOKOUT_DST, else the loopback address)",
    )
    parser.add_argument(
        "--web-url", default=environ.get("COOKOUT_WEB_URL"),
        help="public URL of the page, for the help text (default: $COOKOUT_WEB_URL)",
    )
    parser.add_argument("--data-dir", default=".data", help="where volunteers are kept")
    parser.add_argument(
        "--discord-api", default="https://discord.com/api/v10",
        help="Discord REST base URL; the simulator's for local runs (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.relay:
        parser.error("--relay URL or $DCC_RELAY is required")
    missing = [name for name in _ENVIRONMENT if not environ.get(name)]
    if missing:
        parser.error("set " + ", ".join("$" + name for name in missing))
    return args


async def main(reactor: Any, argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """
    Start the bot and run until stopped.
    """
    args = parse_args(argv, environ)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    config = CookoutConfig(
        relay_url=args.relay,
        token=environ["DISCORD_TOKEN"],
        bot_user_id=environ["BOT_USER_ID"],
        client_secret=environ["DCC_SECRET"],
        alias=args.alias,
        discord_api=args.discord_api,
        data_dir=args.data_dir,
        dst=args.dst,
        web_url=args.web_url,
    )
    bot = CookoutBot(config, reactor=reactor)
    try:
        await bot.start(reactor, args.listen)
    except RegistrationError as e:
        raise SystemExit(f"register failed: {e}")
    except ConnectError as e:
        raise SystemExit(f"register failed: cannot reach the relay at {args.relay}: {e}")
    await Deferred()


if __name__ == "__main__":
    react(main, (sys.argv[1:], os.environ))
