"""
``twistd dcc`` processes whose store fails at start-up, against a real SQLite
file and real PostgreSQL servers: a fault that will not pass stops the
relay with status 1 and one line naming it; one that may pass (a lock held
by another process, a server not accepting connections yet) keeps it
waiting, saying why, refusing every change and never answering as if its
bots did not exist.  Also: one data directory, one relay; and nodes of a
cluster creating one alias at the same moment.
"""

from __future__ import annotations

import os
import sqlite3
from base64 import b64encode
from typing import Any

import orjson
from cryptography.fernet import Fernet
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.error import ProcessTerminated
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from dccrelay.tap import STORE_FILE
from tests.harness import http, wait_for
from tests.postgres import fresh_database, standby_cluster
from tests.test_store_postgres import _closed_port
from tests.twistd_process import TwistdProcess, put_relay, run_relay

SECRET = "owner:secret-of-the-owner"
BODY = {"token": "MTEx.Gg.owner-token", "dst": "ws://127.0.0.1:9/", "clientSecret": SECRET}
THIEF = {"token": "MTEx.Gg.thief-token", "dst": "ws://127.0.0.1:9/", "clientSecret": "thief:secret-x"}


def basic(secret: str) -> dict[str, list[str]]:
    """
    Basic credentials made of a whole clientSecret.
    """
    return {"Authorization": ["Basic " + b64encode(secret.encode()).decode()]}


def pause() -> Deferred[None]:
    """
    A tenth of a second, between two polls of a relay.
    """
    return deferLater(reactor, 0.1, lambda: None)


async def get(port: int, path: str, secret: str | None = None) -> tuple[int, Any]:
    """
    ``GET path`` on the relay at ``port``: the status and the JSON body.
    """
    response = await http.get(
        f"http://127.0.0.1:{port}{path}", headers=basic(secret) if secret else None
    )
    return response.code, orjson.loads(await response.content())


class StoreStartTests(TestCase):
    """
    What a relay does when its store cannot be opened or loaded.
    """

    timeout = 120

    def setUp(self) -> None:
        # Nothing listens there: the relays' bots never reach a Discord.
        self.discord = f"http://127.0.0.1:{_closed_port()}/api/v10"

    def spawn(self, *options: str) -> TwistdProcess:
        return run_relay(self, self.discord, *options)

    async def serving(self, process: TwistdProcess) -> int:
        """
        Wait until ``process`` has loaded its registrations.

        :return: its HTTP port.
        """
        await wait_for(lambda: process.port or process.ended.called, 30, "the HTTP port")
        self.assertFalse(process.ended.called, process.text())
        port = process.port
        assert port is not None
        codes: list[int] = []

        async def healthy() -> bool:
            codes.append((await get(port, "/healthz"))[0])
            return codes[-1] == 200

        for _ in range(600):
            if await healthy():
                return port
            await pause()
        self.fail(f"never healthy: {codes[-5:]}\n{process.text()}")

    async def registered(self, data_dir: str, *options: str) -> None:
        """
        Register ``BODY`` as ``cookout`` through a relay on ``data_dir``,
        and stop that relay.
        """
        relay = self.spawn("--data-dir", data_dir, *options)
        port = await self.serving(relay)
        self.assertEqual(await put_relay(port, BODY), 201)
        relay.transport.signalProcess("TERM")
        await relay.ended

    async def stops_with(self, process: TwistdProcess, cause: str) -> str:
        """
        ``process`` exits with status 1, having logged one critical line,
        with no traceback, that names ``cause``.

        :return: that line.
        """
        reason = await process.ended
        self.assertIsInstance(reason, ProcessTerminated, process.text())
        self.assertEqual(reason.exitCode, 1, process.text())
        critical = [line for line in process.text().splitlines() if "#critical]" in line]
        self.assertEqual(len(critical), 1, process.text())
        self.assertIn("cannot start: ", critical[0])
        self.assertIn(cause, critical[0])
        self.assertNotIn("Traceback", process.text())
        return critical[0]

    def test_damaged_sqlite_file(self) -> Any:
        """
        A SQLite file cut short stops the relay at start-up (status 1), with
        one line naming the file and what to do.
        """
        return ensureDeferred(self._damaged_sqlite_file())

    async def _damaged_sqlite_file(self) -> None:
        data_dir = self.mktemp()
        await self.registered(data_dir)
        os.truncate(os.path.join(data_dir, STORE_FILE), 1000)
        line = await self.stops_with(
            self.spawn("--data-dir", data_dir), "is damaged or not a database"
        )
        self.assertIn(os.path.join(data_dir, STORE_FILE), line)

    def test_other_encryption_key(self) -> Any:
        """
        A relay started with an --encryption-key-file other than the one its
        bots' secrets were sealed with stops (status 1), saying so, instead
        of serving an empty registry.
        """
        return ensureDeferred(self._other_encryption_key())

    async def _other_encryption_key(self) -> None:
        data_dir = self.mktemp()
        keys = []
        for name in ("first.key", "other.key"):
            path = self.mktemp() + name
            with open(path, "w") as key_file:
                key_file.write(Fernet.generate_key().decode() + "\n")
            os.chmod(path, 0o600)
            keys.append(path)
        await self.registered(data_dir, "--encryption-key-file", keys[0])
        await self.stops_with(
            self.spawn("--data-dir", data_dir, "--encryption-key-file", keys[1]),
            "could not load the registrations: cookout: none of the keys in "
            "--encryption-key-file decrypts its token",
        )

    def test_unreachable_postgres(self) -> Any:
        """
        A PostgreSQL server that cannot be reached stops the relay (status
        1), with one line naming the database and what to check.
        """
        return ensureDeferred(self._unreachable_postgres())

    async def _unreachable_postgres(self) -> None:
        port = _closed_port()
        line = await self.stops_with(
            self.spawn("--store", f"postgresql://dcc@127.0.0.1:{port}/relay"),
            f"Could not connect to PostgreSQL database 'relay' on 127.0.0.1:{port}",
        )
        self.assertIn("Check the store URL", line)

    async def refuses_while_waiting(self, port: int, waiting_for: str) -> None:
        """
        The relay at ``port`` says (503) it waits for ``waiting_for``, and
        refuses to read or change registrations with 503.
        """

        async def says_why() -> bool:
            code, body = await get(port, "/healthz")
            self.assertEqual((code, body["status"]), (503, "starting"))
            return waiting_for in body["reason"]

        for _ in range(600):
            if await says_why():
                break
            await pause()
        else:
            self.fail(f"/healthz never mentioned {waiting_for!r}")
        code, body = await get(port, "/relays/cookout", SECRET)
        self.assertEqual(code, 503, body)
        self.assertIn("has not loaded its registrations yet", body["error"])
        self.assertEqual(await put_relay(port, THIEF), 503)
        self.assertEqual(await put_relay(port, {**BODY, "token": "MTEx.Gg.new"}, "newbot"), 503)
        self.assertEqual((await get(port, "/relays"))[0], 503)

    def test_sqlite_locked_at_start(self) -> Any:
        """
        While another process holds a lock on the SQLite file, the relay
        waits and tries again, with /healthz 503 saying why, every change
        refused and the bot's status 503 (not 404); once the lock is gone
        it serves the stored bot, which a stranger's PUT cannot take.
        """
        return ensureDeferred(self._sqlite_locked_at_start())

    async def _sqlite_locked_at_start(self) -> None:
        data_dir = self.mktemp()
        await self.registered(data_dir)
        # Another process's exclusive lock, as a backup tool or the sqlite3
        # shell takes (rollback journal: it keeps readers out too).
        holder = sqlite3.connect(os.path.join(data_dir, STORE_FILE), isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("PRAGMA journal_mode = DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        relay = self.spawn("--data-dir", data_dir)
        await wait_for(lambda: relay.port or relay.ended.called, 30, "the HTTP port")
        port = relay.port
        assert port is not None, relay.text()
        await self.refuses_while_waiting(port, "database is locked")
        holder.execute("ROLLBACK")
        holder.close()
        self.assertEqual(await self.serving(relay), port)
        self.assertEqual((await get(port, "/healthz"))[1], {"status": "ok", "relays": 1})
        code, body = await get(port, "/relays/cookout", SECRET)
        self.assertEqual((code, body["alias"]), (200, "cookout"))
        self.assertEqual(await put_relay(port, THIEF), 401)
        self.assertEqual((await get(port, "/relays/cookout", SECRET))[0], 200)

    def test_postgres_not_accepting_connections_yet(self) -> Any:
        """
        A PostgreSQL server that answers "not accepting connections" (57P03,
        as while it starts or recovers; here a standby until promoted)
        keeps the relay waiting, /healthz 503 saying why and changes
        refused; once the server accepts connections the relay loads and
        serves.
        """
        return ensureDeferred(self._postgres_not_ready())

    async def _postgres_not_ready(self) -> None:
        cluster = standby_cluster()
        self.addCleanup(cluster.stop)
        relay = self.spawn("--store", f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres")
        await wait_for(lambda: relay.port or relay.ended.called, 30, "the HTTP port")
        port = relay.port
        assert port is not None, relay.text()
        await self.refuses_while_waiting(port, "not accepting connections")
        cluster.promote()
        await self.serving(relay)
        self.assertEqual(await put_relay(port, BODY), 201)
        self.assertEqual((await get(port, "/relays/cookout", SECRET))[0], 200)

    def test_second_relay_on_data_dir(self) -> Any:
        """
        A second relay on a data directory in use stops (status 1) with one
        line naming the directory and the process that has it, before it
        listens on its port; the first
        keeps serving.  After the first is killed (SIGKILL: no clean-up),
        the directory is free again.
        """
        return ensureDeferred(self._second_relay())

    async def _second_relay(self) -> None:
        data_dir = self.mktemp()
        first = self.spawn("--data-dir", data_dir)
        port = await self.serving(first)
        self.assertEqual(await put_relay(port, BODY), 201)
        second = self.spawn("--data-dir", data_dir)
        line = await self.stops_with(second, "is in use by another relay")
        self.assertIn(f"--data-dir {data_dir}", line)
        # stopped before it listened: nothing answered on its port meanwhile
        self.assertIsNone(second.port, second.text())
        self.assertIn(f"process {first.transport.pid} holds", line)
        self.assertEqual((await get(port, "/healthz"))[1], {"status": "ok", "relays": 1})
        first.transport.signalProcess("KILL")
        await first.ended
        third = self.spawn("--data-dir", data_dir)
        port = await self.serving(third)
        self.assertEqual((await get(port, "/relays/cookout", SECRET))[0], 200)


class ClusterCreationTests(TestCase):
    """
    Two nodes on one PostgreSQL database creating the same new alias.
    """

    timeout = 120

    def test_same_alias_at_once(self) -> Any:
        """
        Two nodes asked at the same moment to create one new alias, with
        different secrets: exactly one answers 201, the other 401 (as for
        any alias that exists), and the alias stays the winner's on both
        nodes.
        """
        return ensureDeferred(self._same_alias_at_once())

    async def _same_alias_at_once(self) -> None:
        store = fresh_database(self)
        discord = f"http://127.0.0.1:{_closed_port()}/api/v10"
        nodes = [
            run_relay(self, discord, "--store", store, "--node-id", name) for name in ("n1", "n2")
        ]
        ports = []
        for node in nodes:
            await wait_for(lambda: node.port or node.ended.called, 30, "the HTTP port")
            assert node.port is not None, node.text()
            ports.append(node.port)
        for port in ports:
            for _ in range(600):
                if (await get(port, "/healthz"))[0] == 200:
                    break
                await pause()
        for n in range(10):
            alias = f"race{n}"
            bodies = [
                {**BODY, "token": f"MTEx.Gg.{alias}-{i}", "clientSecret": f"node{i}:secret-{alias}"}
                for i in range(2)
            ]
            codes = await gatherResults(
                [ensureDeferred(put_relay(ports[i], bodies[i], alias)) for i in range(2)]
            )
            self.assertEqual(sorted(codes), [201, 401], alias)
            winner = codes.index(201)
            for port in ports:
                code, body = await get(port, f"/relays/{alias}", bodies[winner]["clientSecret"])
                self.assertEqual(code, 200, (alias, port, body))
                code, _ = await get(port, f"/relays/{alias}", bodies[1 - winner]["clientSecret"])
                self.assertEqual(code, 401, (alias, port))
