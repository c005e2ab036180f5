"""
``python -m dccrelay.client.print_dispatches``: a bot endpoint that prints
every dispatch the relay delivers, for trying the relay by hand.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import react
from twisted.web.resource import Resource
from twisted.web.server import Site

from dccrelay.client.receiver import receiver_resource


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dccrelay.client.print_dispatches",
        description="Receive the relay's websocket v1 dispatches and print them, one per line.",
    )
    parser.add_argument("--secret", required=True, help="the clientSecret the bot registered")
    parser.add_argument(
        "--listen", default="tcp:8091:interface=127.0.0.1",
        help="Twisted endpoint to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--path", default="/dcc/v1/bot",
        help="the path part of the bot's dst (default: %(default)s)",
    )
    return parser.parse_args(argv)


def printing(data: bytes) -> None:
    sys.stdout.write(data.decode("utf-8", "replace") + "\n")
    sys.stdout.flush()


async def main(reactor: Any, argv: list[str]) -> None:
    args = parse_args(argv)
    parts = [p.encode() for p in args.path.strip("/").split("/")]
    root = Resource()
    parent = root
    for part in parts[:-1]:
        child = Resource()
        parent.putChild(part, child)
        parent = child
    parent.putChild(parts[-1], receiver_resource(args.secret, printing, reactor=reactor))
    port = await serverFromString(reactor, args.listen).listen(Site(root))
    address = port.getHost()
    print(f"dst: ws://{address.host}:{address.port}{args.path}", flush=True)
    await Deferred()


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, sys.argv[1:])))
