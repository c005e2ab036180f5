"""
Run the Discord simulator by hand::

    python -m dccrelay.testing --token my-test-token

then start the relay with ``--discord-api`` set to the printed URL, register
a bot with the same token, and drive Discord's side with curl, e.g.::

    curl -X POST localhost:8090/_sim/bots/my-test-token/messages -d '{"content": "hi"}'
    curl -X POST localhost:8090/_sim/bots/my-test-token/close -d '{"code": 4000}'
    curl localhost:8090/_sim/state

With ``--tls`` it serves https and wss, as Discord does, with a certificate
from a throw-away CA made at start; the relay trusts it through OpenSSL's
own setting::

    python -m dccrelay.testing --tls --tls-ca-file sim-ca.pem
    SSL_CERT_FILE=sim-ca.pem twistd --nodaemon --pidfile= dcc \\
        --discord-api https://127.0.0.1:8090/api/v10 --allow-private-dst
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import react
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from dccrelay.testing.simulator import DiscordSimulator
from dccrelay.testing.tls import ThrowAwayCA, server_options_from_pem


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m dccrelay.testing",
        description="A strict Discord gateway and REST simulator for trying dccrelay locally.",
    )
    # added in this order, which is the order --help lists them in
    _add_serving_and_bots(parser)
    _add_sessions(parser)
    _add_tls(parser)
    _add_content_and_logging(parser)
    _add_replay_and_compression(parser)
    args = parser.parse_args(argv)
    _check(parser, args)
    return args


def _add_serving_and_bots(parser: argparse.ArgumentParser) -> None:
    """Where to serve, and the bots the simulator accepts."""
    parser.add_argument(
        "--listen",
        default="tcp:8090:interface=127.0.0.1",
        help="Twisted endpoint to serve on (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        action="append",
        help="a bot token the simulator accepts; repeat for more bots (default: sim-token)",
    )
    parser.add_argument("--user-id", default="1111", help="the first bot's user id")
    parser.add_argument(
        "--shards", type=int, default=1, help="shard count each bot must use (0: any)"
    )
    parser.add_argument("--max-concurrency", type=int, default=1)
    parser.add_argument("--remaining", type=int, default=1000, help="identifies left today")
    parser.add_argument(
        "--privileged-intents",
        type=int,
        default=0,
        help="privileged intent bits enabled for the bots (e.g. 32768 for MESSAGE_CONTENT)",
    )


def _add_sessions(parser: argparse.ArgumentParser) -> None:
    """Heartbeats and how long a session stays resumable."""
    parser.add_argument(
        "--heartbeat-interval", type=int, default=41250, help="milliseconds, sent in HELLO"
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=60.0,
        help="seconds a disconnected session stays resumable",
    )


def _add_tls(parser: argparse.ArgumentParser) -> None:
    """Serving https and wss."""
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve https and wss, as Discord does, with a certificate from a throw-away "
        "CA made at start; its certificate is written to --tls-ca-file for the relay to "
        "trust (SSL_CERT_FILE=...)",
    )
    parser.add_argument(
        "--tls-ca-file",
        default=None,
        help="where --tls writes the CA certificate (default: a new temporary file)",
    )
    parser.add_argument(
        "--tls-cert",
        default=None,
        help="serve TLS with this PEM file's private key and certificate instead "
        "(e.g. one dccrelay.testing.tls.ThrowAwayCA issued)",
    )


def _add_content_and_logging(parser: argparse.ArgumentParser) -> None:
    """Message content, and what is logged and recorded."""
    parser.add_argument(
        "--content-without-intent",
        action="store_true",
        help="send guild message content to bots that did not ask for the privileged "
        "MESSAGE_CONTENT intent (Discord blanks it; so does the simulator by default)",
    )
    parser.add_argument("--verbose", action="store_true", help="log debug events too")
    parser.add_argument(
        "--lean",
        action="store_true",
        help="for benchmarks: record and log no events, keep no frames per connection",
    )


def _add_replay_and_compression(parser: argparse.ArgumentParser) -> None:
    """What RESUME replays, and how zstd-stream compresses."""
    parser.add_argument(
        "--replay-limit",
        type=int,
        default=None,
        help="dispatches each session keeps for RESUME (default: all)",
    )
    parser.add_argument(
        "--zstd-level", type=int, default=3, help="zstd level of compress=zstd-stream"
    )


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error on values that do not go together or make no sense."""
    for name in ("max_concurrency", "heartbeat_interval"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.replay_limit is not None and args.replay_limit < 1:
        parser.error("--replay-limit must be at least 1")
    if args.shards < 0:
        parser.error("--shards must be 0 (any count) or more")
    if args.tls and args.tls_cert:
        parser.error("--tls makes its own certificate: give --tls or --tls-cert, not both")
    if args.tls_ca_file and not args.tls:
        parser.error("--tls-ca-file goes with --tls")


def tls_options(args: argparse.Namespace) -> tuple[CertificateOptions | None, str | None]:
    """
    The TLS server options the command line asks for, and the file of the
    CA certificate that --tls made (None otherwise).
    """
    if args.tls_cert:
        with open(args.tls_cert, "rb") as f:
            return server_options_from_pem(f.read()), None
    if not args.tls:
        return None, None
    ca = ThrowAwayCA("dccrelay simulator CA")
    path = args.tls_ca_file
    if path is None:
        fd, path = tempfile.mkstemp(prefix="dcc-sim-ca-", suffix=".pem")
        os.close(fd)
    return ca.server_options(), ca.write_ca(path)


async def main(reactor: Any, argv: Sequence[str]) -> None:
    """Listen, add the bots, print where everything is, run until stopped."""
    args = parse_args(argv)
    level = LogLevel.debug if args.verbose else LogLevel.info
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(defaultLogLevel=level)]
            )
        ],
        redirectStandardIO=False,
    )
    tls, ca_file = tls_options(args)
    sim = DiscordSimulator(
        reactor,
        heartbeat_interval=args.heartbeat_interval,
        random=random.Random(),
        session_timeout=args.session_timeout,
        control_api=True,
        lean=args.lean,
        replay_limit=args.replay_limit,
        zstd_level=args.zstd_level,
        tls=tls,
        blank_content=not args.content_without_intent,
    )
    await sim.listen(args.listen)
    tokens = args.token or ["sim-token"]
    for offset, token in enumerate(tokens):
        sim.add_bot(
            token,
            str(int(args.user_id) + offset),
            shards=args.shards or None,
            max_concurrency=args.max_concurrency,
            remaining=args.remaining,
            privileged_intents=args.privileged_intents,
        )
    print(f"Discord API (--discord-api): {sim.api_url}")
    print(f"gateway:                     {sim.gateway_url}")
    print(f"resume_gateway_url:          {sim.resume_url}")
    print(f"control API:                 {sim.control_url}/state")
    print(f"bot tokens:                  {', '.join(tokens)}")
    if ca_file is not None:
        print(f"CA certificate:              {ca_file}")
        print(f"  (start the relay with SSL_CERT_FILE={ca_file} to trust it)")
    print(
        "try: curl -X POST "
        f"{sim.control_url}/bots/{tokens[0]}/messages -d '{{\"content\": \"hi\"}}'"
    )
    sys.stdout.flush()
    forever: Deferred[None] = Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", sim.stop)
    await forever


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, sys.argv[1:])))
