"""
Tests for ``dccctl`` (:mod:`dccrelay.client.cli`): how it reads a
registration from flags, files and the environment, and whole commands
against the relay's real resource tree through ``StubTreq``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

import dccrelay
from dccrelay.client.cli import (
    UsageError,
    build_parser,
    registration_from_args,
    run,
)
from tests.test_client_register import RelayUnderTest

SECRET = "admin:c2VjcmV0c2VjcmV0"
NEW_SECRET = "admin:bmV3LXNlY3JldC1ub3c="
TOKEN = "MTEx.Gg.token"
DST = "ws://127.0.0.1:9999/dcc/v1/cookout"
ENV = {"DISCORD_TOKEN": TOKEN, "DCC_SECRET": SECRET}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(dccrelay.__file__)))


class RegistrationArgumentsTests(SynchronousTestCase):
    """
    ``dccctl register`` builds its body from flags, a JSON or TOML file and
    the environment; secrets never need to be on the command line.
    """

    def body(
        self, argv: list[str], environ: dict[str, str] = ENV
    ) -> tuple[dict[str, Any], str | None]:
        args = build_parser().parse_args(["register", "--relay", "http://r", "--alias", "a", *argv])
        return registration_from_args(args, environ)

    def write(self, text: str, suffix: str) -> str:
        path = self.mktemp() + suffix
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_flags_and_environment(self) -> None:
        """
        Token and secret come from ``$DISCORD_TOKEN`` and ``$DCC_SECRET``;
        the other fields from flags, under the relay's JSON names.
        """
        body, current = self.body(
            [
                "--dst", DST, "--intents", "4608",
                "--criteria", '{"t": "MESSAGE_CREATE"}', "--shards", "2", "--protocol", "1",
                "--typing-while-waking", "--no-defer-interactions",
                "--wake-url", "https://wake.example/",
            ]
        )
        self.assertEqual(
            body,
            {
                "token": TOKEN, "clientSecret": SECRET, "dst": DST, "intents": 4608,
                "criteria": {"t": "MESSAGE_CREATE"}, "shards": 2, "delivery": {"protocol": 1},
                "typingWhileWaking": True, "deferInteractions": False,
                "wakeUrl": "https://wake.example/",
            },
        )
        self.assertIsNone(current)

    def test_other_environment_names(self) -> None:
        """
        ``--token-env`` and ``--secret-env`` name other variables.
        """
        body, _ = self.body(
            ["--dst", DST, "--token-env", "MY_TOKEN", "--secret-env", "MY_SECRET"],
            {"MY_TOKEN": "t0ken", "MY_SECRET": "secret-from-env"},
        )
        self.assertEqual((body["token"], body["clientSecret"]), ("t0ken", "secret-from-env"))

    def test_secret_files(self) -> None:
        """
        ``--token-file`` and ``--secret-file`` read the first line, trimmed,
        and win over the environment.
        """
        token_file = self.write("file-token\n", "")
        secret_file = self.write("  file-secret-value \nignored\n", "")
        body, _ = self.body(
            ["--dst", DST, "--token-file", token_file, "--secret-file", secret_file]
        )
        self.assertEqual((body["token"], body["clientSecret"]), ("file-token", "file-secret-value"))

    def test_json_file(self) -> None:
        """
        ``--file bot.json`` is a registration body; flags override its
        fields; the environment fills in secrets it does not have.
        """
        path = self.write(
            json.dumps({"dst": "ws://127.0.0.1:1/old", "intents": 512, "criteria": {"t": "X"}}),
            ".json",
        )
        body, _ = self.body(["--file", path, "--dst", DST])
        self.assertEqual(
            body,
            {"dst": DST, "intents": 512, "criteria": {"t": "X"}, "token": TOKEN, "clientSecret": SECRET},
        )

    def test_toml_file(self) -> None:
        """
        ``--file bot.toml`` reads TOML, quoted keys and all.
        """
        path = self.write(
            'dst = "%s"\nintents = 4608\n\n[criteria]\nt = "MESSAGE_CREATE"\n'
            '"$not" = {"d.author.bot" = true}\n' % DST,
            ".toml",
        )
        body, _ = self.body(["--file", path])
        self.assertEqual(
            body["criteria"], {"t": "MESSAGE_CREATE", "$not": {"d.author.bot": True}}
        )
        self.assertEqual(body["intents"], 4608)

    def test_file_secrets_kept(self) -> None:
        """
        A file that holds the token and secret itself keeps them over the
        environment (the file was chosen explicitly).
        """
        path = self.write(
            json.dumps({"dst": DST, "token": "in-file", "clientSecret": "in-file-secret"}), ".json"
        )
        body, _ = self.body(["--file", path])
        self.assertEqual((body["token"], body["clientSecret"]), ("in-file", "in-file-secret"))

    def test_rotation(self) -> None:
        """
        ``--current-secret-env`` names the secret the relay has now, to
        authenticate a change to a new one.
        """
        environ = dict(ENV, DCC_SECRET=NEW_SECRET, OLD_SECRET=SECRET)
        body, current = self.body(["--dst", DST, "--current-secret-env", "OLD_SECRET"], environ)
        self.assertEqual((body["clientSecret"], current), (NEW_SECRET, SECRET))

    def test_missing_pieces(self) -> None:
        """
        Missing token, secret, dst or current secret are usage errors that
        say how to provide them.
        """
        cases: list[tuple[list[str], dict[str, str], str]] = [
            (["--dst", DST], {"DCC_SECRET": SECRET}, "no Discord token: set $DISCORD_TOKEN"),
            (["--dst", DST], {"DISCORD_TOKEN": TOKEN}, "no clientSecret: set $DCC_SECRET"),
            ([], ENV, "no dst"),
            (["--dst", DST, "--current-secret-env", "NOPE"], ENV, "$NOPE is not set"),
        ]
        for argv, environ, message in cases:
            with self.assertRaises(UsageError) as caught:
                self.body(argv, environ)
            self.assertIn(message, str(caught.exception))

    def test_bad_values(self) -> None:
        """
        Criteria that are not JSON, a bad shard count, an unreadable or
        malformed file are usage errors naming the flag.
        """
        bad_json = self.write("{nope", ".json")
        not_object = self.write("[1, 2]", ".json")
        bad_toml = self.write("= 1", ".toml")
        cases = [
            (["--dst", DST, "--criteria", "{nope"], "--criteria is not valid JSON"),
            (["--dst", DST, "--shards", "many"], '--shards must be "auto" or a number'),
            (["--file", bad_json], "is not valid JSON"),
            (["--file", bad_toml], "is not valid TOML"),
            (["--file", not_object], "must hold an object"),
            (["--file", self.mktemp()], "--file: cannot read"),
        ]
        for argv, message in cases:
            with self.assertRaises(UsageError) as caught:
                self.body(argv)
            self.assertIn(message, str(caught.exception))

    def test_shards_auto(self) -> None:
        """
        ``--shards auto`` stays the string ``"auto"``.
        """
        body, _ = self.body(["--dst", DST, "--shards", "auto"])
        self.assertEqual(body["shards"], "auto")

    def test_secrets_not_flags(self) -> None:
        """
        There is no flag that takes a secret's value itself, nor an
        abbreviation that would pass one to ``--secret-env``.
        """
        err = io.StringIO()
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(err):
            build_parser().parse_args(
                ["register", "--relay", "http://r", "--alias", "a", "--secret", SECRET]
            )
        self.assertIn("unrecognized arguments: --secret", err.getvalue())


class CommandTests(SynchronousTestCase):
    """
    Whole ``dccctl`` commands against the relay's resource tree.
    """

    def setUp(self) -> None:
        self.relay = RelayUnderTest()
        self.addCleanup(self.relay.stop)

    def dccctl(self, *argv: str, environ: dict[str, str] = ENV) -> tuple[int, Any, str]:
        out, err = io.StringIO(), io.StringIO()
        code = self.successResultOf(
            Deferred.fromCoroutine(
                run(
                    [argv[0], "--relay", "http://relay.example", "--alias", "cookout", *argv[1:]],
                    http=self.relay.treq, environ=environ, stdout=out, stderr=err,
                )
            )
        )
        printed = json.loads(out.getvalue()) if out.getvalue() else None
        return code, printed, err.getvalue()

    def test_register_status_disable_delete(self) -> None:
        """
        register prints the relay's status and exits 0; so do status,
        disable and delete.
        """
        code, answer, err = self.dccctl("register", "--dst", DST)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(answer["settings"]["dst"], DST)
        code, answer, _ = self.dccctl("status")
        self.assertEqual((code, answer["alias"], answer["enabled"]), (0, "cookout", True))
        code, answer, _ = self.dccctl("disable")
        self.assertEqual((code, answer["enabled"]), (0, False))
        code, answer, _ = self.dccctl("delete")
        self.assertEqual((code, answer), (0, {"alias": "cookout", "deleted": True}))

    def test_relay_error_with_field(self) -> None:
        """
        The relay's refusal is printed as ``dccctl: <field>: <error>`` and
        the exit status is 1.
        """
        code, answer, err = self.dccctl("register", "--dst", "ftp://bot.example/")
        self.assertEqual((code, answer), (1, None))
        self.assertTrue(err.startswith("dccctl: /dst: dst must be an absolute"), err)

    def test_relay_error_without_field(self) -> None:
        """
        A refusal without a field (a wrong secret) is ``dccctl: <error>``.
        """
        self.dccctl("register", "--dst", DST)
        code, _, err = self.dccctl("status", environ={"DCC_SECRET": NEW_SECRET})
        self.assertEqual((code, err), (1, "dccctl: wrong clientSecret for this alias\n"))

    def test_rotate_secret(self) -> None:
        """
        ``register --current-secret-env`` rotates the secret.
        """
        self.dccctl("register", "--dst", DST)
        rotated = dict(ENV, DCC_SECRET=NEW_SECRET, OLD_SECRET=SECRET)
        code, _, err = self.dccctl(
            "register", "--dst", DST, "--current-secret-env", "OLD_SECRET", environ=rotated
        )
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.dccctl("status", environ={"DCC_SECRET": NEW_SECRET})[0], 0)

    def test_usage_error(self) -> None:
        """
        A missing secret is a usage error: exit status 2, no request made.
        """
        code, _, err = self.dccctl("status", environ={})
        self.assertEqual(code, 2)
        self.assertIn("dccctl: no clientSecret: set $DCC_SECRET", err)
        self.assertEqual(self.relay.manager.relays, {})

    def test_no_relay(self) -> None:
        """
        ``$DCC_RELAY`` stands in for ``--relay``; without either the command
        says so.
        """
        def status(environ: dict[str, str]) -> tuple[int, str]:
            err = io.StringIO()
            code = self.successResultOf(
                Deferred.fromCoroutine(
                    run(["status", "--alias", "cookout"], environ=environ, stdout=io.StringIO(),
                        stderr=err, http=self.relay.treq)
                )
            )
            return code, err.getvalue()

        self.assertEqual(status(ENV), (2, "dccctl: no relay: pass --relay URL or set $DCC_RELAY\n"))
        self.dccctl("register", "--dst", DST)
        self.assertEqual(status(dict(ENV, DCC_RELAY="http://relay.example")), (0, ""))


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: Deferred[BaseException] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value)


class ConsoleScriptTests(TestCase):
    """
    ``dccctl``'s ``main`` as a process: it runs the reactor and exits with
    the command's status.
    """

    timeout = 30

    def test_unreachable_relay(self) -> None:
        """
        A relay that refuses connections is reported, not a traceback, and
        the exit status is 1.
        """
        return ensureDeferred(self._unreachable())  # type: ignore[return-value]

    async def _unreachable(self) -> None:
        process = _Collect()
        env = dict(os.environ, PYTHONPATH=REPO, DCC_SECRET=SECRET)
        reactor.spawnProcess(  # type: ignore[attr-defined]
            process,
            sys.executable,
            [
                sys.executable, "-c", "from dccrelay.client.cli import main; main()",
                "status", "--relay", "http://127.0.0.1:1", "--alias", "cookout",
            ],
            env=env,
        )
        reason = await process.ended
        assert isinstance(reason, ProcessTerminated), reason
        self.assertEqual(reason.exitCode, 1, process.err)
        self.assertIn(b"dccctl: cannot reach the relay at http://127.0.0.1:1", process.err)
        self.assertNotIn(b"Traceback", process.err)
        self.assertNotIn(SECRET.encode(), process.err + process.out)
