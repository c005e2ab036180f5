"""
Tests for the security options of ``twistd dcc`` (:mod:`dccrelay.tap`):
key files read at start-up, and what ``makeService`` builds from them.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.fernet import Fernet
from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.net.guard import GuardedReactor
from dccrelay.store.sealed import SealedSecretsStore
from dccrelay.tap import Options, makeService
from dccrelay.web.channel import DeadlineChannel
from dccrelay.web.connection_limit import MAX_API_CONNECTIONS, APIConnectionLimit


class SecurityOptionsTests(SynchronousTestCase):
    """
    --registration-key-file, --operator-key-file, --encryption-key-file.
    """

    def key_file(self, text: str, mode: int = 0o600) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_defaults(self) -> None:
        """
        Without them: anyone may register, no operator key, no encryption.
        """
        options = Options()
        options.parseOptions([])
        self.assertEqual(
            (options["registration-key"], options["operator-key"], options["encryption-keys"]),
            (None, None, []),
        )

    def test_read(self) -> None:
        """
        The files are read when the options are parsed.
        """
        fernet = Fernet.generate_key().decode()
        options = Options()
        options.parseOptions([
            "--registration-key-file", self.key_file("registration-0123456789\n"),
            "--operator-key-file", self.key_file("operator-0123456789\n"),
            "--encryption-key-file", self.key_file(fernet + "\n"),
        ])
        self.assertEqual(options["registration-key"], "registration-0123456789")
        self.assertEqual(options["operator-key"], "operator-0123456789")
        self.assertEqual(len(options["encryption-keys"]), 1)

    def test_bad_files(self) -> None:
        """
        A bad key file stops start-up with a usage error naming the option.
        """
        for option, text, mode, words in (
            ("--operator-key-file", "short", 0o600, "at least 16"),
            ("--registration-key-file", "registration-0123456789", 0o644, "chmod 600"),
            ("--encryption-key-file", "not a key", 0o600, "not a Fernet key"),
        ):
            error = self.assertRaises(
                UsageError, Options().parseOptions, [option, self.key_file(text, mode)]
            )
            self.assertIn(option, str(error))
            self.assertIn(words, str(error))

    def credentials_directory(self, **files: str) -> str:
        """
        A directory as systemd's LoadCredential= makes it, set as
        $CREDENTIALS_DIRECTORY for this test (files mode 0440, as systemd
        may leave them: its directory is what keeps others out).
        """
        directory = self.mktemp()
        os.mkdir(directory)
        for name, text in files.items():
            path = os.path.join(directory, name.replace("_", "."))
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o440)
        before = os.environ.get("CREDENTIALS_DIRECTORY")
        os.environ["CREDENTIALS_DIRECTORY"] = directory

        def restore() -> None:
            if before is None:
                os.environ.pop("CREDENTIALS_DIRECTORY", None)
            else:
                os.environ["CREDENTIALS_DIRECTORY"] = before

        self.addCleanup(restore)
        return directory

    def test_systemd_credentials(self) -> None:
        """
        ``credential:NAME`` reads ``$CREDENTIALS_DIRECTORY/NAME`` (what
        LoadCredential= makes for the unit's dynamic user); its mode bits
        are systemd's business, not refused.
        """
        fernet = Fernet.generate_key().decode()
        directory = self.credentials_directory(
            operator_key="operator-0123456789\n", secrets_keys=fernet + "\n"
        )
        options = Options()
        options.parseOptions([
            "--operator-key-file", "credential:operator.key",
            "--encryption-key-file", os.path.join(directory, "secrets.keys"),
        ])
        self.assertEqual(options["operator-key"], "operator-0123456789")
        self.assertEqual(len(options["encryption-keys"]), 1)

    def test_credential_outside_systemd(self) -> None:
        """
        ``credential:NAME`` without $CREDENTIALS_DIRECTORY stops start-up
        saying to use LoadCredential= or a path.
        """
        before = os.environ.pop("CREDENTIALS_DIRECTORY", None)
        if before is not None:
            self.addCleanup(os.environ.__setitem__, "CREDENTIALS_DIRECTORY", before)
        error = self.assertRaises(
            UsageError, Options().parseOptions, ["--operator-key-file", "credential:operator.key"]
        )
        self.assertIn("LoadCredential=operator.key:", str(error))

    def test_service(self) -> None:
        """
        The relays' store is sealed, the site has the slow-client channel
        behind the bound on connections at once, and channels to bots get a guarded reactor unless private
        destinations are allowed.
        """
        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--listen", "tcp:0"])
        service: Any = makeService(options, MemoryReactorClock())
        manager = service.getServiceNamed("store").getServiceNamed("relays")
        self.assertIsInstance(manager._store, SealedSecretsStore)
        self.assertIsInstance(manager._env.make_delivery.reactor, GuardedReactor)
        limit = service.getServiceNamed("http").factory
        self.assertIsInstance(limit, APIConnectionLimit)
        self.assertEqual(limit.limit, MAX_API_CONNECTIONS)
        self.assertIs(limit.wrappedFactory.protocol, DeadlineChannel)

        options = Options()
        options.parseOptions(["--data-dir", self.mktemp(), "--allow-private-dst"])
        service = makeService(options, MemoryReactorClock())
        manager = service.getServiceNamed("store").getServiceNamed("relays")
        self.assertNotIsInstance(manager._env.make_delivery.reactor, GuardedReactor)
