"""
Store outages while dispatches flow to a durable (webhook) bot, end to end:
``twistd dcc`` as a subprocess, the Discord simulator and a webhook bot over
TLS on loopback, a real SQLite file locked by another connection, and a
real PostgreSQL server stopped and started again.

What must hold: a dispatch the relay took from the gateway is either in
the outbox or still replayable by Discord, so every one reaches the bot
once the fault ends, even across a restart during the fault; and a cluster
whose database was down for longer than the lease TTL runs every bot
again, on one node, without restarting any node.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections import Counter

import orjson
import psycopg
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from dccrelay.tap import STORE_FILE
from tests.delivery_harness import WebhookBot, report
from tests.harness import MessageFlow, http, wait_for
from tests.postgres import ThrowawayCluster, private_server
from tests.test_delivery_end_to_end import TOKEN, Fixture, deferred_test
from tests.twistd_process import TwistdProcess, put_relay, run_relay, serving

# SQLite's busy timeout in the relay is 5 s: a lock held longer makes its
# writes fail, as an 8 s lock did in the report.
LOCK_SECONDS = 8.0


def seq_of(payload: bytes) -> int:
    seq: int = orjson.loads(payload)["s"]
    return seq


class SQLiteLockedTests(Fixture):
    """
    The relay's SQLite file locked by another connection while dispatches
    flow.
    """

    timeout = 90

    def spawn(self) -> TwistdProcess:
        return run_relay(self, self.sim.api_url, "--data-dir", self.data_dir)

    def lock(self) -> sqlite3.Connection:
        """Hold the file's write lock, as another process would."""
        path = os.path.join(self.data_dir, STORE_FILE)
        holder = sqlite3.connect(path, timeout=10, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        self.addCleanup(holder.close)
        return holder

    async def started(self, bot: WebhookBot) -> TwistdProcess:
        await self.start_discord()
        await self.start_bot(bot)
        relay = self.spawn()
        port = await serving(relay)
        self.assertEqual(await put_relay(port, self.body(bot.url)), 201)
        await self.bot.wait_for_ready()
        return relay

    async def send(self, sent: list[bytes], label: str, count: int) -> None:
        for i in range(count):
            sent.append(self.bot.message(f"cookout {label} {i}"))
            await deferLater(reactor, 0.1, lambda: None)

    @deferred_test
    async def test_locked_during_traffic(self) -> None:
        """
        Dispatches that come while the file is locked for longer than the
        busy timeout are appended once the lock is gone: the bot gets every
        one, and the refused appends are logged with the next try.
        """
        bot = WebhookBot()
        relay = await self.started(bot)
        sent: list[bytes] = []
        await self.send(sent, "before", 5)
        await wait_for(lambda: set(sent) <= set(bot.wire), what="the first dispatches")
        holder = self.lock()
        await self.send(sent, "while locked", 20)
        await deferLater(reactor, LOCK_SECONDS - 2.0, lambda: None)
        holder.execute("ROLLBACK")
        await self.send(sent, "after", 5)
        try:
            await wait_for(lambda: set(sent) <= set(bot.wire), timeout=30, what="every dispatch")
        finally:
            counts = report("webhook", f"SQLite locked {LOCK_SECONDS:g} s", sent, bot.wire)
            print(f"\nSQLite locked: {counts}", file=sys.stderr)
        self.assertEqual(counts["lost"], 0)
        self.assertIn("Could not append", relay.text())
        self.assertIn("trying again in", relay.text())
        relay.transport.signalProcess("TERM")
        await relay.ended

    @deferred_test
    async def test_killed_while_locked(self) -> None:
        """
        A relay killed (SIGKILL) while its appends are refused left a
        resume point before the first dispatch it could not store, so the
        next relay RESUMEs there and Discord replays what was not stored.
        """
        bot = WebhookBot()
        first = await self.started(bot)
        sent: list[bytes] = []
        await self.send(sent, "before", 5)
        await wait_for(lambda: set(sent) <= set(bot.wire), what="the first dispatches")
        holder = self.lock()
        locked: list[bytes] = []
        await self.send(locked, "while locked", 20)
        sent += locked
        await wait_for(
            lambda: "Could not append" in first.text(), timeout=20, what="a refused append"
        )
        first.transport.signalProcess("KILL")
        await first.ended
        # Read inside the lock holder's own transaction.
        [(stored_seq,)] = holder.execute("SELECT seq FROM sessions").fetchall()
        holder.execute("ROLLBACK")
        await self.bot.wait_for_disconnect()
        first_unstored = min(seq_of(p) for p in locked if p not in bot.wire)
        print(
            f"\nkilled while locked: resume point {stored_seq}, first dispatch not "
            f"stored {first_unstored}", file=sys.stderr,
        )
        self.assertLess(stored_seq, first_unstored)
        resumes = self.bot.resumes
        second = self.spawn()
        await wait_for(lambda: set(sent) <= set(bot.wire), timeout=30, what="every dispatch")
        self.assertEqual(self.bot.resumes, resumes + 1)
        counts = report("webhook", "SIGKILL while SQLite locked", sent, bot.wire)
        self.assertEqual(counts["lost"], 0)
        second.transport.signalProcess("TERM")
        await second.ended


class PostgresOutageTests(Fixture):
    """
    Cluster nodes on a PostgreSQL server of the test's own, which the test
    stops and starts again.
    """

    timeout = 150

    def spawn(self, server: ThrowawayCluster, node_id: str, *options: str) -> TwistdProcess:
        return run_relay(
            self, self.sim.api_url, "--store", server.url, "--node-id", node_id,
            "--data-dir", self.mktemp(), *options,
        )

    @staticmethod
    def lease_owners(url: str) -> dict[str, str]:
        """The live leases, read from the database (blocks)."""
        with psycopg.connect(url) as database:
            rows = database.execute(
                "SELECT alias, owner FROM leases WHERE owner IS NOT NULL AND expires_at > now()"
            ).fetchall()
        return {alias: owner for alias, owner in rows}

    async def append_waiting(self, url: str) -> list[int]:
        """
        Wait until an outbox append waits on the lock (on its session's
        seq), checking the database's own view of its connections.

        :return: the server processes of the waiting appends.
        """

        def waiting() -> list[int]:
            with psycopg.connect(url) as database:
                rows = database.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%UPDATE sessions SET seq%'"
                ).fetchall()
            return [int(pid) for (pid,) in rows]

        deadline = time.monotonic() + 30
        while not (pids := await deferToThread(waiting)):
            self.assertLess(time.monotonic(), deadline, "no append waited on the lock")
            await deferLater(reactor, 0.1, lambda: None)
        return pids

    async def owners(self, port: int) -> dict[str, str | None]:
        response = await http.get(f"http://127.0.0.1:{port}/relays")
        body = orjson.loads(await response.content())
        return {r["alias"]: r.get("node") for r in body["relays"]}

    async def outage(
        self, nodes: list[str], aliases: list[str], lease_ttl: float, down: float
    ) -> tuple[dict[str, TwistdProcess], WebhookBot, float]:
        """
        Start ``nodes`` with ``lease_ttl``, register ``aliases`` (webhook
        bots), and stop PostgreSQL for ``down`` seconds while each bot gets
        a dispatch every 0.2 s; then check that every dispatch arrives.

        :return: the nodes, the webhook bot, and the seconds from the
            database's restart to every dispatch having arrived.
        """
        server = self.server = await deferToThread(private_server, self)
        await self.start_discord()
        bots = {
            alias: self.sim.add_bot(token=f"{TOKEN}{i}", user_id=str(700 + i))
            for i, alias in enumerate(aliases)
        }
        hook = WebhookBot()
        await self.start_bot(hook)
        processes = {
            name: self.spawn(server, name, "--lease-ttl", str(lease_ttl)) for name in nodes
        }
        for process in processes.values():
            await serving(process)
        port = processes[nodes[0]].port
        assert port is not None
        for i, alias in enumerate(aliases):
            body = self.body(
                hook.url, token=f"{TOKEN}{i}", intents=4608, criteria={"t": "MESSAGE_CREATE"}
            )
            self.assertEqual(await put_relay(port, body, alias), 201)
        for bot in bots.values():
            await bot.wait_for_ready()

        flow = MessageFlow(bots)
        sent = flow.sent
        try:
            await wait_for(lambda: set(sent) <= set(hook.wire), what="the first dispatches")
            before_outage = set(sent)
            # An append (which raises the session's seq in its transaction)
            # waits on a lock, and its connection is cut, so that it fails
            # for sure; then the server stops.  (Stopping the server alone
            # raced: it could end the lock's holder first, and the append
            # commit before its own connection was ended.)
            holder = await deferToThread(psycopg.connect, server.url)
            self.addCleanup(holder.close)
            await deferToThread(holder.execute, "SELECT 1 FROM sessions FOR UPDATE")
            for pid in await self.append_waiting(server.url):
                await deferToThread(holder.execute, "SELECT pg_terminate_backend(%s)", (pid,))
            await deferToThread(server.pause)
            await deferLater(reactor, down, lambda: None)
            await deferToThread(server.resume)
            back = self.back = time.monotonic()
            await deferLater(reactor, 2.0, lambda: None)
        finally:
            flow.stop()
        try:
            await wait_for(lambda: set(sent) <= set(hook.wire), timeout=60, what="every dispatch")
        finally:
            counts = report(
                "webhook", f"PostgreSQL down {down:g} s, lease TTL {lease_ttl:g} s",
                sent, hook.wire,
            )
            print(f"\nPostgreSQL down {down:g} s (TTL {lease_ttl:g} s): {counts}", file=sys.stderr)
        under: dict[bytes, set[tuple[str, int]]] = {}
        for payload, webhook_id, entry_id in zip(hook.wire, hook.wire_webhook_ids, hook.wire_ids):
            under.setdefault(payload, set()).add((webhook_id, entry_id))
        twice_under_two = [payload for payload, ids in under.items() if len(ids) > 1]
        print("came twice under two ids:", len(twice_under_two), file=sys.stderr)
        # What came twice during and after the outage came under the id (and
        # webhook-id) it came under first: appends of a node that lost a bot
        # are fenced off.  (Before it, a hand-over right after READY can
        # still repeat a bot's first dispatch: READY's session save may land
        # after the first append, whose seq then is not kept.)
        self.assertEqual([p for p in twice_under_two if p not in before_outage], [])
        return processes, hook, time.monotonic() - back

    async def stop_nodes(self, processes: dict[str, TwistdProcess]) -> None:
        for process in processes.values():
            process.transport.signalProcess("TERM")
            await process.ended

    @deferred_test
    async def test_down_shorter_than_lease(self) -> None:
        """
        PostgreSQL stopped for 10 s, with appends under way (shorter than
        the lease): the node keeps its bot, retries the appends that
        failed, and the bot gets every dispatch.
        """
        processes, hook, _ = await self.outage(["n1"], ["cookout"], 60.0, 10.0)
        self.assertIn("Could not append", processes["n1"].text())
        self.assertIn("trying again in", processes["n1"].text())
        await self.stop_nodes(processes)

    @deferred_test
    async def test_down_longer_than_lease(self) -> None:
        """
        PostgreSQL down for longer than the lease TTL: the nodes stop
        their bots in time, and once it is back every bot runs again on
        exactly one node, without restarting any node, and the bot gets
        every dispatch (those sent meanwhile by RESUME).
        """
        aliases = ["bot_a", "bot_b", "bot_c", "bot_d"]
        processes, hook, took = await self.outage(["n1", "n2"], aliases, 3.0, 8.0)
        print(f"every dispatch {took:.1f} s after PostgreSQL was back", file=sys.stderr)
        self.assertIn("could not renew leases in time", processes["n1"].text())
        # Every bot runs on exactly one node, the one holding its lease,
        # with one gateway connection.  A node whose connection pool is
        # still backing off may lag; the bots it no longer runs moved.
        async def placement() -> tuple[dict[str, list[str]], dict[str, str]]:
            here: dict[str, list[str]] = {alias: [] for alias in aliases}
            for name, process in processes.items():
                assert process.port is not None
                for alias, node in (await self.owners(process.port)).items():
                    if node == name:
                        here[alias].append(name)
            leases = await deferToThread(self.lease_owners, self.server.url)
            return here, leases

        settled_at = time.monotonic() + 30
        while True:
            here, leases = await placement()
            if all(len(nodes) == 1 and leases.get(alias) == nodes[0] for alias, nodes in here.items()):
                break
            self.assertLess(time.monotonic(), settled_at, f"never settled: {here}, leases {leases}")
            await deferLater(reactor, 0.5, lambda: None)
        print(
            f"every bot on one node, on its lease, {time.monotonic() - self.back:.1f} s after"
            " PostgreSQL was back", file=sys.stderr,
        )
        self.assertEqual(
            Counter(c.bot.token for c in self.sim.connections if c.ready and c.bot),
            Counter({f"{TOKEN}{i}": 1 for i in range(len(aliases))}),
        )
        await self.stop_nodes(processes)
