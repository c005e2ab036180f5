"""
Tests for secrets at rest: :mod:`dccrelay.store.sealed` (tokens and
secrets encrypted with Fernet, keys rotated) over the in-memory and SQLite
stores, :mod:`dccrelay.ops.keys` (the key files), and the SQLite file's modes.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Generator

from cryptography.fernet import Fernet
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from dccrelay.ops.keys import KeyFileError, read_access_key, read_fernet_keys
from dccrelay.relay.settings import RelaySettings
from dccrelay.store import GuildSnapshotUpdate, IRelayStore
from dccrelay.store.sealed import SEALED_PART, SealedSecretsError, SealedSecretsStore
from dccrelay.store.sqlite import SQLiteStore
from tests.memory_store import MemoryDatabase, MemoryRelayStore
from tests.test_store import IRelayStoreTestsMixin

GUILD = b'{"id":"2222","name":"the secret cookout"}'

TOKEN = "MTEx.Gg.secret-token-value"
SECRET = "admin:very-secret-secret"
SETTINGS = RelaySettings(token=TOKEN, dst="wss://bot.example/", client_secret=SECRET).to_json()


class _TwoKeysCase(SynchronousTestCase):
    """A memory database and two keys, an old one and a new one."""

    def setUp(self) -> None:
        self.database = MemoryDatabase()
        self.old = Fernet.generate_key()
        self.new = Fernet.generate_key()

    def sealed_store(self, *keys: bytes) -> SealedSecretsStore:
        """The database, sealed with ``keys`` (the first seals), opened."""
        store = SealedSecretsStore(MemoryRelayStore(self.database), [Fernet(k) for k in keys])
        self.successResultOf(store.open())
        return store


class SealedMemoryTests(_TwoKeysCase):
    """
    The sealing layer over the in-memory store: what the store keeps, and
    what the manager gets back.
    """

    def store(self, *keys: bytes) -> SealedSecretsStore:
        return self.sealed_store(*keys)

    def stored(self, alias: str = "cookout") -> dict[str, Any]:
        return self.database.relays[alias].settings

    def test_round_trip(self) -> None:
        """
        Token and secret are stored encrypted, nothing else is, and they
        come back as they were.
        """
        store = self.store(self.new)
        self.successResultOf(store.save_relay("cookout", SETTINGS))
        stored = self.stored()
        self.assertNotIn(TOKEN, json.dumps(stored))
        self.assertNotIn(SECRET, json.dumps(stored))
        self.assertEqual(set(stored["token"]), {"fernet"})
        self.assertEqual(stored["dst"], SETTINGS["dst"])
        [record] = self.successResultOf(store.load_relays())
        self.assertEqual(record.settings, SETTINGS)
        self.assertEqual(RelaySettings.from_json(record.settings).token, TOKEN)

    def test_create_sealed(self) -> None:
        """
        A registration made by ``create_relay`` is sealed as one saved is.
        """
        store = self.store(self.new)
        self.assertIs(self.successResultOf(store.create_relay("cookout", SETTINGS)), True)
        self.assertNotIn(TOKEN, json.dumps(self.stored()))
        self.assertNotIn(SECRET, json.dumps(self.stored()))
        [record] = self.successResultOf(store.load_relays())
        self.assertEqual(record.settings, SETTINGS)
        self.assertIs(self.successResultOf(store.create_relay("cookout", SETTINGS)), False)

    def test_plain_without_keys(self) -> None:
        """
        Without keys the layer changes nothing.
        """
        store = self.store()
        self.successResultOf(store.save_relay("cookout", SETTINGS))
        self.assertEqual(self.stored(), SETTINGS)
        [record] = self.successResultOf(store.load_relays())
        self.assertEqual(record.settings, SETTINGS)

    def test_encrypts_existing_plain(self) -> None:
        """
        Turning encryption on encrypts what was stored plain, at load.
        """
        self.successResultOf(self.store().save_relay("cookout", SETTINGS))
        [record] = self.successResultOf(self.store(self.new).load_relays())
        self.assertEqual(record.settings, SETTINGS)
        self.assertNotIn(TOKEN, json.dumps(self.stored()))

    def test_rotation(self) -> None:
        """
        With a new key first and the old one after it, values encrypted
        with the old key still load and are re-encrypted with the new one;
        after that the old key can go.  A disabled relay stays disabled,
        with its reason.
        """
        self.successResultOf(self.store(self.old).save_relay("cookout", SETTINGS))
        self.successResultOf(self.store(self.old).save_relay("off", SETTINGS))
        self.successResultOf(self.store(self.old).disable_relay("off", "owner said so"))
        before = self.stored()["token"]["fernet"]
        records = self.successResultOf(self.store(self.new, self.old).load_relays())
        self.assertEqual([r.settings for r in records], [SETTINGS, SETTINGS])
        self.assertNotEqual(self.stored()["token"]["fernet"], before)
        Fernet(self.new).decrypt(self.stored()["token"]["fernet"].encode())
        records = self.successResultOf(self.store(self.new).load_relays())
        self.assertEqual(
            [(r.alias, r.enabled, r.disable_reason) for r in records],
            [("cookout", True, None), ("off", False, "owner said so")],
        )

    def test_missing_key(self) -> None:
        """
        Encrypted values with no key that fits stop the load with a message
        that says what to do; so do encrypted values and no key file.
        """
        self.successResultOf(self.store(self.old).save_relay("cookout", SETTINGS))
        failure = self.failureResultOf(self.store(self.new).load_relays(), SealedSecretsError)
        self.assertIn("add the key it was encrypted with", str(failure.value))
        failure = self.failureResultOf(self.store().load_relays(), SealedSecretsError)
        self.assertIn("no --encryption-key-file was given", str(failure.value))

    def test_delegates(self) -> None:
        """
        Everything without secrets passes through to the wrapped store.
        """
        store = self.store(self.new)
        self.successResultOf(store.save_relay("cookout", SETTINGS))
        self.successResultOf(store.disable_relay("cookout", "why"))
        self.assertFalse(self.database.relays["cookout"].enabled)
        self.assertEqual(store.description, "in-memory store")

    def test_identify_and_statuses_pass_through(self) -> None:
        """
        IDENTIFY slots and public statuses (which hold no secret) pass
        through unchanged, and the layer still provides the interface.
        """
        from zope.interface.verify import verifyObject

        from dccrelay.store import IRelayStore

        store = self.store(self.new)
        self.assertTrue(verifyObject(IRelayStore, store))
        self.assertEqual(self.successResultOf(store.acquire_identify("h", 0, "node-a", 5.0)), 0.0)
        self.assertEqual(self.database.identify[("h", 0)].holder, "node-a")
        self.successResultOf(store.finish_identify("h", 0, "node-a", True, 5.0))
        self.assertEqual(self.successResultOf(store.acquire_identify("h", 0, "node-b", 5.0)), 5.0)
        self.successResultOf(store.heartbeat_node("node-a", 10.0))
        status = {"state": "ready", "shards": [{"id": 0}]}
        self.successResultOf(store.publish_statuses("node-a", {"cookout": status}))
        self.assertEqual(self.database.statuses["node-a"]["cookout"][1], status)
        self.assertEqual(
            self.successResultOf(store.load_statuses()), {"cookout": ("node-a", status)}
        )


class SealedGuildSnapshotTests(_TwoKeysCase):
    """
    Guild snapshot parts through the sealing layer: encrypted at rest,
    resealed under the first key when loaded, left out when no key fits.
    """

    def store(self, *keys: bytes) -> SealedSecretsStore:
        store = self.sealed_store(*keys)
        if "cookout" not in self.database.relays:
            self.successResultOf(store.save_relay("cookout", SETTINGS))
        return store

    def save(self, store: SealedSecretsStore, **parts: bytes) -> None:
        update = GuildSnapshotUpdate("cookout", tuple(parts.items()))
        self.successResultOf(store.save_guild_snapshots([update]))

    def test_sealed_at_rest(self) -> None:
        """
        Each part is stored as ``fernet:`` and a token of the first key, and
        loads back as it was.
        """
        store = self.store(self.new, self.old)
        self.save(store, guild=GUILD)
        stored = self.database.guild_snapshots["cookout"]["guild"]
        self.assertTrue(stored.startswith(SEALED_PART))
        self.assertNotIn(b"secret cookout", stored)
        self.assertEqual(Fernet(self.new).decrypt(stored[len(SEALED_PART):]), GUILD)
        self.assertEqual(self.successResultOf(store.load_guild_snapshot("cookout")), {"guild": GUILD})

    def test_without_keys_plain(self) -> None:
        """
        Without keys, parts are stored as given.
        """
        store = self.store()
        self.save(store, guild=GUILD)
        self.assertEqual(self.database.guild_snapshots["cookout"], {"guild": GUILD})

    def test_resealed_when_loaded(self) -> None:
        """
        A part stored plain (before keys were given) or under an older key
        loads, and is written back under the first key.
        """
        self.save(self.store(), plain=GUILD)
        self.save(self.store(self.old), older=b"{}")
        store = self.store(self.new, self.old)
        loaded = self.successResultOf(store.load_guild_snapshot("cookout"))
        self.assertEqual(loaded, {"plain": GUILD, "older": b"{}"})
        for name, document in self.database.guild_snapshots["cookout"].items():
            token = document[len(SEALED_PART):]
            self.assertEqual(Fernet(self.new).decrypt(token), loaded[name])

    def test_unreadable_left_out(self) -> None:
        """
        A part no key decrypts is left out and removed, with a warning
        naming the bot; the others load.
        """
        self.save(self.store(self.old), lost=GUILD)
        store = self.store(self.new)
        self.save(store, kept=b"{}")
        with capturedLogs() as events:
            loaded = self.successResultOf(store.load_guild_snapshot("cookout"))
        self.assertEqual(loaded, {"kept": b"{}"})
        self.assertEqual(set(self.database.guild_snapshots["cookout"]), {"kept"})
        [warning] = [e for e in events if "could not be decrypted" in e["log_format"]]
        self.assertEqual((warning["alias"], warning["count"]), ("cookout", 1))


class SealedSQLiteContractTests(IRelayStoreTestsMixin, TestCase):
    """
    The sealing layer over the SQLite store keeps the store's contract.
    """

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "relay.sqlite")
        self.keys = [Fernet(Fernet.generate_key())]

    def make_store(self) -> IRelayStore:
        return SealedSecretsStore(SQLiteStore(self.path, global_reactor), self.keys)


class SealedSQLiteTests(TestCase):
    """
    The same layer over the SQLite store, and the file's modes.
    """

    @inlineCallbacks
    def test_file(self) -> Generator[Deferred[Any], Any, None]:
        """
        The database is 0600 in a 0700 directory, and neither the token,
        the secret nor the bot's guilds appear in its bytes (or its side
        files).
        """
        directory = self.mktemp()
        path = os.path.join(directory, "dcc.sqlite3")
        store = SealedSecretsStore(
            SQLiteStore(path, global_reactor), [Fernet(Fernet.generate_key())]
        )
        yield store.open()
        try:
            yield store.save_relay("cookout", SETTINGS)
            yield store.save_guild_snapshots([GuildSnapshotUpdate("cookout", (("g", GUILD),))])
            [record] = yield store.load_relays()
            self.assertEqual(record.settings["token"], TOKEN)
        finally:
            yield store.close()
        self.assertEqual(stat.S_IMODE(os.stat(directory).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), "rb") as f:
                data = f.read()
            self.assertNotIn(TOKEN.encode(), data)
            self.assertNotIn(SECRET.encode(), data)
            self.assertNotIn(b"secret cookout", data)


class KeyFileTests(SynchronousTestCase):
    """
    Reading the operator's key files, with messages that say what to fix.
    """

    def write(self, text: str, mode: int = 0o600) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_access_key(self) -> None:
        """
        One line of at least 16 printable characters; whitespace around it
        is ignored.
        """
        self.assertEqual(
            read_access_key(self.write("  abcdefghijklmnop\n"), "operator-key-file"),
            "abcdefghijklmnop",
        )

    def test_bad_access_keys(self) -> None:
        """
        Short keys, keys with spaces, missing and world-readable files are
        refused naming the option.
        """
        for path, message in (
            (self.write("short"), "at least 16"),
            (self.write("has a space in the middle"), "without spaces"),
            (self.write("abcdefghijklmnopq", mode=0o644), "chmod 600"),
            ("/nonexistent/key", "cannot read"),
        ):
            error = self.assertRaises(KeyFileError, read_access_key, path, "operator-key-file")
            self.assertIn("--operator-key-file", str(error))
            self.assertIn(message, str(error))

    def test_fernet_keys(self) -> None:
        """
        Fernet keys one a line, comments and blank lines ignored, in order.
        """
        first, second = Fernet.generate_key(), Fernet.generate_key()
        path = self.write(f"# new\n{first.decode()}\n\n# old\n{second.decode()}\n")
        keys = read_fernet_keys(path)
        self.assertEqual(len(keys), 2)
        token = Fernet(first).encrypt(b"x")
        self.assertEqual(keys[0].decrypt(token), b"x")

    def test_bad_fernet_keys(self) -> None:
        """
        A line that is not a key, or no key at all, is refused with the
        command that makes one.
        """
        for text, message in (("not-a-key\n", "line 1"), ("# nothing\n", "holds no key")):
            error = self.assertRaises(KeyFileError, read_fernet_keys, self.write(text))
            self.assertIn(message, str(error))
            self.assertIn("Fernet.generate_key()", str(error))
