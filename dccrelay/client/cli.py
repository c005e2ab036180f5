"""
``dccctl``: register a bot with a relay, see its status, disable or delete
it, from a shell.

Secrets never have to be on the command line, where other users of the host
can read them: the Discord token and the clientSecret come from environment
variables (by default ``DISCORD_TOKEN`` and ``DCC_SECRET``, as in the
prototype's tutorial) or from files.  ``--file`` reads a registration body
(JSON, or TOML when the name ends in ``.toml``); flags override its fields.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from typing import IO, Any

from treq.client import HTTPClient
from twisted.internet.task import react

from dccrelay.client.register import (
    RegistrationError,
    delete,
    disable,
    put_registration,
    status,
)


class UsageError(Exception):
    """
    The command cannot run as given; the message says what to change.
    """


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--relay", help="the relay's base URL, e.g. https://relay.example (default: $DCC_RELAY)"
    )
    parser.add_argument("--alias", required=True, help="the bot's alias on the relay")
    parser.add_argument(
        "--secret-env",
        default="DCC_SECRET",
        metavar="NAME",
        help="environment variable holding the clientSecret (default: %(default)s)",
    )
    parser.add_argument(
        "--secret-file", metavar="PATH", help="read the clientSecret from this file instead"
    )


def build_parser() -> argparse.ArgumentParser:
    """
    The command line of ``dccctl``.
    """
    parser = argparse.ArgumentParser(
        prog="dccctl",
        description="Manage a bot's registration with a dccrelay relay.",
        # "--secret VALUE" must not pass for "--secret-env VALUE"
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subcommand: dict[str, Any] = {"allow_abbrev": False}

    reg = commands.add_parser(
        "register",
        **subcommand,
        help="create or update the registration (idempotent)",
        description="Create or update the bot's registration: PUT /relays/{alias}.",
    )
    _add_common(reg)
    reg.add_argument(
        "--file", metavar="PATH",
        help="registration body as JSON, or TOML if PATH ends in .toml; flags override it",
    )
    reg.add_argument(
        "--token-env", default="DISCORD_TOKEN", metavar="NAME",
        help="environment variable holding the Discord bot token (default: %(default)s)",
    )
    reg.add_argument("--token-file", metavar="PATH", help="read the token from this file instead")
    reg.add_argument(
        "--current-secret-env", metavar="NAME",
        help="to rotate the secret: environment variable holding the secret the relay has now",
    )
    reg.add_argument(
        "--current-secret-file", metavar="PATH",
        help="to rotate the secret: file holding the secret the relay has now",
    )
    reg.add_argument("--dst", help="where the relay delivers: ws(s):// or http(s):// URL")
    reg.add_argument("--intents", type=int, help="gateway intents bit field (relay default 4608)")
    reg.add_argument("--criteria", metavar="JSON", help="filter criteria as a JSON value")
    reg.add_argument("--filter", help="filter backend name (relay default: mongo)")
    reg.add_argument("--shards", help='"auto" or a shard count')
    reg.add_argument(
        "--protocol", type=int, choices=(1, 2), help="websocket delivery protocol version"
    )
    reg.add_argument(
        "--typing-while-waking", action=argparse.BooleanOptionalAction, default=None,
        help="show Discord's typing indicator while the bot wakes up",
    )
    reg.add_argument(
        "--defer-interactions", action=argparse.BooleanOptionalAction, default=None,
        help="have the relay defer interactions while the bot wakes up",
    )
    reg.add_argument("--wake-url", help="http(s) URL the relay requests to wake the bot")
    reg.add_argument(
        "--defer-ephemeral", action=argparse.BooleanOptionalAction, default=None,
        help="a command the relay defers shows its \"thinking...\" only to its user",
    )

    for name, what in (
        ("status", "show the bot's full status and settings"),
        ("disable", "end the bot's gateway session until it registers again"),
        ("delete", "stop and forget the bot"),
    ):
        _add_common(
            commands.add_parser(
                name, **subcommand, help=what, description=what.capitalize() + "."
            )
        )
    return parser


def read_registration_file(path: str) -> dict[str, Any]:
    """
    A registration body from a JSON or TOML file.

    :raise UsageError: if it cannot be read or is not an object.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError(f"--file: cannot read {path}: {e.strerror}") from None
    try:
        if path.endswith(".toml"):
            body: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        kind = "TOML" if path.endswith(".toml") else "JSON"
        raise UsageError(f"--file: {path} is not valid {kind}: {e}") from None
    if not isinstance(body, dict):
        raise UsageError(f"--file: {path} must hold an object of registration fields")
    return body


def read_secret(
    what: str, env_name: str | None, file_path: str | None, environ: Mapping[str, str],
    flag: str,
) -> str | None:
    """
    A secret from a file (first line, surrounding whitespace removed) or
    else an environment variable; None if neither has it.
    """
    if file_path is not None:
        try:
            with open(file_path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UsageError(f"{flag}-file: cannot read {file_path}: {e.strerror}") from None
        value = lines[0].strip() if lines else ""
        if not value:
            raise UsageError(f"{flag}-file: {file_path} is empty; it should hold the {what}")
        return value
    if env_name is None:
        return None
    value = environ.get(env_name, "").strip()
    return value or None


def _required_secret(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    secret = read_secret("clientSecret", args.secret_env, args.secret_file, environ, "--secret")
    if secret is None:
        raise UsageError(
            f"no clientSecret: set ${args.secret_env} or pass --secret-env NAME or --secret-file PATH"
        )
    return secret


def registration_from_args(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[dict[str, Any], str | None]:
    """
    The body to PUT and the secret to authenticate with (None: the body's).

    Precedence: flags, then the file, and for the token and secret the
    environment (or their ``-file``) when the file does not have them.
    """
    body = read_registration_file(args.file) if args.file else {}
    if args.criteria is not None:
        try:
            body["criteria"] = json.loads(args.criteria)
        except ValueError as e:
            raise UsageError(f"--criteria is not valid JSON: {e}") from None
    shards: str | int | None = args.shards
    if shards is not None and shards != "auto":
        try:
            shards = int(shards)
        except ValueError:
            raise UsageError(f'--shards must be "auto" or a number, got {shards!r}') from None
    flags = {
        "dst": args.dst,
        "intents": args.intents,
        "filter": args.filter,
        "shards": shards,
        "delivery": None if args.protocol is None else {"protocol": args.protocol},
        "typingWhileWaking": args.typing_while_waking,
        "deferInteractions": args.defer_interactions,
        "wakeUrl": args.wake_url,
        "deferEphemeral": args.defer_ephemeral,
    }
    body.update((key, value) for key, value in flags.items() if value is not None)

    token = read_secret("Discord token", args.token_env, args.token_file, environ, "--token")
    if token is not None and (args.token_file or "token" not in body):
        body["token"] = token
    secret = read_secret("clientSecret", args.secret_env, args.secret_file, environ, "--secret")
    if secret is not None and (args.secret_file or "clientSecret" not in body):
        body["clientSecret"] = secret

    if "token" not in body:
        raise UsageError(
            f"no Discord token: set ${args.token_env}, or pass --token-env NAME or --token-file PATH"
        )
    if "clientSecret" not in body:
        raise UsageError(
            f"no clientSecret: set ${args.secret_env}, or pass --secret-env NAME or --secret-file PATH"
        )
    if "dst" not in body:
        raise UsageError("no dst: pass --dst URL or put dst in --file")
    current = read_secret(
        "current clientSecret", args.current_secret_env, args.current_secret_file, environ,
        "--current-secret",
    )
    if args.current_secret_env and current is None:
        raise UsageError(f"--current-secret-env: ${args.current_secret_env} is not set")
    return body, current


async def run(
    argv: Sequence[str],
    *,
    http: HTTPClient | None = None,
    environ: Mapping[str, str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """
    Run one ``dccctl`` command; the exit code.

    Prints the relay's JSON answer on ``stdout``; errors as ``dccctl:
    <field>: <error>`` on ``stderr``.  Usage errors exit through argparse
    (code 2).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    env = environ if environ is not None else os.environ
    args = build_parser().parse_args(argv)
    relay = args.relay or env.get("DCC_RELAY")
    try:
        if not relay:
            raise UsageError("no relay: pass --relay URL or set $DCC_RELAY")
        if args.command == "register":
            body, current = registration_from_args(args, env)
            answer = await put_registration(
                relay, args.alias, body, current_secret=current, http=http
            )
        else:
            secret = _required_secret(args, env)
            call = {"status": status, "disable": disable, "delete": delete}
            answer = await call[args.command](relay, args.alias, secret, http=http)
    except UsageError as e:
        err.write(f"dccctl: {e}\n")
        return 2
    except RegistrationError as e:
        err.write(f"dccctl: {e}\n")
        return 1
    except Exception as e:
        # a connection refused, a DNS failure, a timeout: nothing the relay said
        err.write(f"dccctl: cannot reach the relay at {relay}: {_describe(e)}\n")
        return 1
    out.write(json.dumps(answer, indent=2, sort_keys=True) + "\n")
    return 0


def _describe(error: Exception) -> str:
    # treq wraps connection failures (ResponseNeverReceived and friends)
    # around a list of reasons; the first is the useful one.
    reasons = getattr(error, "reasons", None)
    if reasons:
        return str(getattr(reasons[0], "value", reasons[0]))
    return str(error) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> None:
    """
    The ``dccctl`` console script.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Parse before the reactor starts, so --help and usage errors need none.
    build_parser().parse_args(arguments)

    async def command(reactor: Any) -> None:
        code = await run(arguments)
        if code:
            raise SystemExit(code)

    react(command)


if __name__ == "__main__":
    main()
