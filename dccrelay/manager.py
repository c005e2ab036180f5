"""
The relays of one node: loads them from the store on start, applies
registration changes, and stops them (resumably) on shutdown.

Alone (SQLite), a node runs every bot.  With a shared store (PostgreSQL) and
a :class:`ClusterNode`, it runs only the bots it holds a lease on and keeps
a :class:`~dccrelay.remote_relay.RemoteRelay` for the others: each round it
heartbeats, renews its leases, stops any bot whose lease it lost, and claims
or hands over bots towards an even share of the live nodes, a few at a time.
A bot moves by a resumable stop on one node and a RESUME on the next.  A
node that cannot renew stops its bots before its leases can expire, so two
nodes never hold one Discord session.  Registration changes made through
any node reach the others as store notices (LISTEN/NOTIFY).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, inlineCallbacks
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from dccrelay.pacing import Pacer
from dccrelay.relay import Relay, RelayEnvironment
from dccrelay.remote_relay import RemoteRelay
from dccrelay.settings import RelaySettings
from dccrelay.stats import LatencyHistogram
from dccrelay.store import IRelayStore, SessionState, StoredRelay
from dccrelay.store.leases import LeaseTiming

# Relays created per reactor turn when a node starts: each compiles its
# filter (unless another bot has the same criteria).
START_SLICE = 50

# Gateway sessions opened per second when many bots start together (a
# restart, or a cluster node claiming its share), this many at a time: each
# costs ~1 ms of CPU (connect, handshake, RESUME), so the pace leaves half a
# core to the bots already running; 10,000 start in 20 s.
START_RATE = 500.0
START_BURST = 25

# How often the latest gateway seq of every shard is written down, bounding
# what Discord replays after a relay is killed without warning.
CHECKPOINT_INTERVAL = 2.0

# Relays whose resume points are gathered per reactor turn and saved per
# store call: short turns, short transactions.
CHECKPOINT_BATCH = 250


#: A bot this node runs, or one it only knows about.
AnyRelay = Union[Relay, RemoteRelay]

# At most this share of a node's bots is handed over per round, so that a
# node joining or leaving moves bots gradually.
HANDOVER_FRACTION = 0.1

# Notices can be lost (a database restart); every so often each node reloads
# every registration anyway.
RECONCILE_INTERVAL = 30.0


@dataclass(frozen=True)
class ClusterNode:
    """
    This node's part in a cluster sharing one store.
    """

    node_id: str
    timing: LeaseTiming = field(default_factory=LeaseTiming)


class TooManyRelays(Exception):
    """
    The node holds ``--max-relays`` bots already.
    """


class RelayManager(Service):
    """
    Every relay of this node, by alias.
    """

    _log = Logger()

    def __init__(
        self,
        env: RelayEnvironment,
        store: IRelayStore,
        max_relays: int,
        delivery_latency: LatencyHistogram | None = None,
        cluster: ClusterNode | None = None,
    ) -> None:
        self._env = env
        self._store = store
        self.max_relays = max_relays
        #: what the node's delivery channels report (for /metrics)
        self.delivery_latency = delivery_latency or LatencyHistogram()
        self._started_at: float | None = None
        self.relays: dict[str, AnyRelay] = {}
        self.cluster = cluster
        self._lock = DeferredLock()
        self._rounds = LoopingCall(self._lease_round)
        self._rounds.clock = env.clock
        self._round_running = False
        self._round_again = False
        self._renew_deadline: Any = None
        self._last_reconcile = env.clock.seconds()
        self._checkpoints = LoopingCall(self._checkpoint)
        self._checkpoints.clock = env.clock
        self._starts = Pacer(env.clock, START_RATE, START_BURST)
        self.ready: Deferred[None] = Deferred()

    def startService(self) -> None:
        super().startService()
        self._started_at = self._env.clock.seconds()
        d = self._lock.run(self._load)
        d.addCallbacks(self.ready.callback, self._failed_to_start)

    def uptime(self) -> float | None:
        """
        Seconds since the node started, or None before.
        """
        if self._started_at is None:
            return None
        return self._env.clock.seconds() - self._started_at

    def _failed_to_start(self, failure: Any) -> None:
        self._log.failure("could not load registrations from the store", failure)
        self.ready.errback(failure)

    def _new_relay(self, record: StoredRelay) -> Relay:
        relay = Relay(
            record.alias, RelaySettings.from_json(record.settings), self._env,
            on_fatal=self.disable,
            enabled=record.enabled, disable_reason=record.disable_reason,
        )
        if self.cluster is not None:
            relay.node = self.cluster.node_id
        return relay

    @inlineCallbacks
    def _load(self) -> Any:
        yield self._store.open()
        stored = yield self._store.load_relays()
        for n, record in enumerate(stored):
            if n and n % START_SLICE == 0:
                yield self._breathe()
            try:
                if self.cluster is None:
                    self.relays[record.alias] = self._new_relay(record)
                else:
                    self.relays[record.alias] = _remote(record)
            except Exception:
                self._log.failure(
                    "{alias}: could not restore its registration", alias=record.alias
                )
        self._log.info(
            "loaded {count} relays from {store}",
            count=len(self.relays), store=self._store.description,
        )
        if self.cluster is None:
            # One store call for every bot's sessions, not one per bot.
            sessions = yield self._store.load_all_sessions()
            for relay in self.local_relays():
                self._start_paced(relay, sessions.get(relay.alias, {}))
        else:
            yield self._store.listen_changes(self._changed)
            self._rounds.start(self.cluster.timing.claim_interval, now=False)
            self._poke()
        self._checkpoints.start(CHECKPOINT_INTERVAL, now=False)

    def _start_paced(
        self, relay: Relay, sessions: dict[int, SessionState] | None = None
    ) -> None:
        """
        Start ``relay`` in its turn (:mod:`dccrelay.pacing`), unless it was
        replaced, deleted or handed over meanwhile.
        """

        def start() -> None:
            if self.running and self.relays.get(relay.alias) is relay:
                relay.start(sessions)

        self._starts.add(start)

    def _breathe(self) -> Deferred[None]:
        """
        A reactor turn between slices of a start-up with thousands of bots,
        so that heartbeats, answers and the HTTP API are not held up for
        seconds (``--lag-probe``, ``python -m bench --targets restart``).
        """
        return deferLater(self._env.clock, 0, lambda: None)

    def local_relays(self) -> list[Relay]:
        """
        The relays this node runs.
        """
        return [relay for relay in self.relays.values() if isinstance(relay, Relay)]

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        self._starts.stop()
        if self._checkpoints.running:
            self._checkpoints.stop()
        if self._rounds.running:
            self._rounds.stop()
        self._cancel_renew_deadline()
        yield self._lock.acquire()
        try:
            # Every bot's resume point in a few store calls, rather than one
            # call per bot as each stops.
            yield self._checkpoint()
            yield DeferredList(
                [relay.stop() for relay in self.local_relays()], consumeErrors=True
            )
            if self.cluster is not None:
                # Hand every bot over now rather than after the leases expire.
                try:
                    yield self._store.forget_node(self.cluster.node_id)
                except Exception:
                    self._log.failure("could not release this node's leases")
            yield self._store.close()
        finally:
            self._lock.release()

    @inlineCallbacks
    def _checkpoint(self) -> Any:
        """
        Save the resume points that moved since the last checkpoint,
        ``CHECKPOINT_BATCH`` relays' in one store call and one reactor turn
        (a call per bot every 2 s stalled the reactor for 200 ms at 1,000
        bots).
        """
        relays = self.local_relays()
        saves = []
        for start in range(0, len(relays), CHECKPOINT_BATCH):
            if start:
                yield self._breathe()
            batch = [
                (relay, point)
                for relay in relays[start : start + CHECKPOINT_BATCH]
                for point in relay.resume_points()
            ]
            if batch:
                d = self._store.save_sessions([(relay.alias, point) for relay, point in batch])
                d.addErrback(self._checkpoint_failed, batch)
                saves.append(d)
        yield DeferredList(saves)

    def _checkpoint_failed(
        self, failure: Failure, batch: list[tuple[Relay, SessionState]]
    ) -> None:
        self._log.failure("saving {count} resume points failed", failure, count=len(batch))
        for relay, point in batch:
            relay.resume_points_unsaved([point])

    # -- registration ---------------------------------------------------------

    def put(
        self,
        alias: str,
        settings: RelaySettings,
        authorize: Callable[[RelaySettings | None], object] | None = None,
    ) -> Deferred[bool]:
        """
        Create or update a relay.

        :param authorize: called with the relay's current settings (``None``
            if it does not exist) once no other change of relays is under
            way, so that whoever may create an alias cannot update one that
            another request created meanwhile; it raises to refuse.
        :return: fires with ``True`` if the relay was created.
        :raise TooManyRelays: (in the Deferred) at ``max_relays``.
        """
        return self._lock.run(self._put, alias, settings, authorize)

    @inlineCallbacks
    def _put(
        self,
        alias: str,
        settings: RelaySettings,
        authorize: Callable[[RelaySettings | None], object] | None = None,
    ) -> Any:
        relay = self.relays.get(alias)
        if authorize is not None:
            authorize(relay.settings if relay is not None else None)
        if relay is None and len(self.relays) >= self.max_relays:
            raise TooManyRelays(alias)
        if relay is not None and relay.settings == settings and relay.enabled:
            return False
        yield self._store.save_relay(alias, settings.to_json())
        created = relay is None
        if relay is None:
            self._log.info("{alias}: registered", alias=alias)
            record = StoredRelay(alias, settings.to_json(), True, None)
            if self.cluster is None:
                relay = self.relays[alias] = self._new_relay(record)
                relay.start()
            else:
                self.relays[alias] = _remote(record)
        else:
            self._log.info("{alias}: settings updated", alias=alias)
            if isinstance(relay, Relay):
                yield relay.apply(settings)
            else:
                relay.settings, relay.enabled = settings, True
        yield self._announce(alias)
        return created

    def delete(self, alias: str) -> Deferred[bool]:
        """
        Stop and forget a relay.

        :return: fires with whether it existed.
        """
        return self._lock.run(self._delete, alias)

    @inlineCallbacks
    def _delete(self, alias: str) -> Any:
        relay = self.relays.pop(alias, None)
        existed = yield self._store.delete_relay(alias)
        if relay is not None:
            self._log.info("{alias}: deleted", alias=alias)
            if isinstance(relay, Relay):
                yield relay.forget()
        yield self._announce(alias)
        return existed or relay is not None

    def disable(self, alias: str, reason: str) -> Deferred[None]:
        """
        End a relay's gateway session until it registers again.
        """
        return self._lock.run(self._disable, alias, reason)

    @inlineCallbacks
    def _disable(self, alias: str, reason: str) -> Any:
        relay = self.relays.get(alias)
        if relay is None:
            return
        self._log.info("{alias}: disabled: {reason}", alias=alias, reason=reason)
        yield self._store.disable_relay(alias, reason)
        if isinstance(relay, Relay):
            yield relay.disable(reason)
        else:
            relay.enabled, relay.disable_reason = False, reason
        yield self._announce(alias)

    # -- several nodes ----------------------------------------------------------

    @inlineCallbacks
    def _announce(self, alias: str) -> Any:
        if self.cluster is None:
            return
        try:
            yield self._store.notify_change(alias)
        except Exception:
            # The periodic rounds still converge; the change itself is stored.
            self._log.failure("{alias}: could not notify the other nodes", alias=alias)
        self._poke()

    def _poke(self) -> None:
        """
        Run a lease round now (a new bot may be waiting for an owner).
        """
        if self.running and self.cluster is not None:
            self._env.clock.callLater(0, self._lease_round)

    def _changed(self, alias: str | None) -> None:
        """
        Another node (or this one) changed ``alias``'s registration, or
        anything (``None``).
        """
        d = self._lock.run(self._reload, alias)
        d.addErrback(lambda f: self._log.failure("could not apply a registration change", f))

    @inlineCallbacks
    def _reload(self, alias: str | None) -> Any:
        records = {r.alias: r for r in (yield self._store.load_relays())}
        aliases = set(records) | set(self.relays) if alias is None else {alias}
        for name in sorted(aliases):
            record, relay = records.get(name), self.relays.get(name)
            if record is None:
                if relay is not None:
                    del self.relays[name]
                    if isinstance(relay, Relay):
                        yield relay.forget()
                continue
            settings = RelaySettings.from_json(record.settings)
            if relay is None:
                self.relays[name] = _remote(record)
                self._poke()
            elif isinstance(relay, RemoteRelay):
                relay.settings, relay.enabled = settings, record.enabled
                relay.disable_reason = record.disable_reason
            elif not record.enabled:
                if relay.enabled:
                    yield relay.disable(record.disable_reason or "disabled")
            elif relay.settings != settings or not relay.enabled:
                yield relay.apply(settings)

    @inlineCallbacks
    def _lease_round(self) -> Any:
        if self._round_running:
            self._round_again = True
            return
        assert self.cluster is not None
        self._round_running = True
        try:
            node, timing = self.cluster.node_id, self.cluster.timing
            sent_at = self._env.clock.seconds()
            try:
                yield self._store.heartbeat_node(node, timing.ttl)
                held = set((yield self._store.renew_leases(node, timing.ttl)))
            except Exception:
                self._log.failure("could not renew this node's leases")
                return
            self._arm_renew_deadline(sent_at)
            yield self._lock.run(self._settle_leases, held)
            if sent_at - self._last_reconcile >= RECONCILE_INTERVAL:
                self._last_reconcile = sent_at
                self._changed(None)
        finally:
            self._round_running = False
            if self._round_again and self.running:
                self._round_again = False
                self._poke()

    @inlineCallbacks
    def _settle_leases(self, held: set[str]) -> Any:
        assert self.cluster is not None
        node, timing = self.cluster.node_id, self.cluster.timing
        local = {relay.alias for relay in self.local_relays()}
        for alias in sorted(local - held):
            self._log.warn("{alias}: lease lost; stopping here", alias=alias)
            yield self._make_remote(alias)
        owned = local & held
        live = yield self._store.live_nodes()
        share = math.ceil(len(self.relays) / max(1, len(live)))
        if len(owned) < share:
            claimed = yield self._store.claim_leases(node, timing.ttl, share - len(owned))
            if claimed:
                records = {r.alias: r for r in (yield self._store.load_relays())}
                for n, (alias, epoch) in enumerate(claimed):
                    if n and n % START_SLICE == 0:
                        yield self._breathe()
                    yield self._make_local(alias, records.get(alias))
        elif len(owned) > share:
            step = max(1, math.ceil(share * HANDOVER_FRACTION))
            give = sorted(owned)[: min(len(owned) - share, step)]
            for alias in give:
                yield self._make_remote(alias)
            yield self._store.release_leases(node, give)
        owners = yield self._store.lease_owners()
        # What this node's bots look like, for GET /relays on the others.
        yield self._store.publish_statuses(
            node, {relay.alias: relay.public_status() for relay in self.local_relays()}
        )
        statuses = yield self._store.load_statuses()
        for relay in self.relays.values():
            if isinstance(relay, RemoteRelay):
                relay.owner = owners.get(relay.alias)
                published = statuses.get(relay.alias)
                relay.snapshot = (
                    published[1] if published is not None and published[0] == relay.owner else None
                )

    @inlineCallbacks
    def _make_local(self, alias: str, record: StoredRelay | None) -> Any:
        assert self.cluster is not None
        if record is None:
            # Deleted since: nothing to run.
            yield self._store.release_leases(self.cluster.node_id, [alias])
            return
        self._log.info("{alias}: now running on this node", alias=alias)
        relay = self.relays[alias] = self._new_relay(record)
        self._start_paced(relay)

    @inlineCallbacks
    def _make_remote(self, alias: str) -> Any:
        relay = self.relays.get(alias)
        if isinstance(relay, Relay):
            # Resumable: the next owner RESUMEs from the stored session.
            yield relay.stop()
            self.relays[alias] = RemoteRelay(
                alias, relay.settings, enabled=relay.enabled,
                disable_reason=relay.disable_reason,
            )

    def _arm_renew_deadline(self, sent_at: float) -> None:
        assert self.cluster is not None
        self._cancel_renew_deadline()
        delay = sent_at + self.cluster.timing.stop_after - self._env.clock.seconds()
        self._renew_deadline = self._env.clock.callLater(max(0.0, delay), self._renewals_failed)

    def _cancel_renew_deadline(self) -> None:
        if self._renew_deadline is not None and self._renew_deadline.active():
            self._renew_deadline.cancel()
        self._renew_deadline = None

    def _renewals_failed(self) -> None:
        """
        No renew succeeded for too long: stop every bot before the leases
        can expire and another node RESUMEs them.
        """
        self._renew_deadline = None
        self._log.error("could not renew leases in time; stopping this node's bots")

        @inlineCallbacks
        def stop_all() -> Any:
            for relay in self.local_relays():
                yield self._make_remote(relay.alias)

        self._lock.run(stop_all).addErrback(
            lambda f: self._log.failure("stopping bots after lost leases failed", f)
        )


def _remote(record: StoredRelay) -> RemoteRelay:
    return RemoteRelay(
        record.alias, RelaySettings.from_json(record.settings),
        enabled=record.enabled, disable_reason=record.disable_reason,
    )
