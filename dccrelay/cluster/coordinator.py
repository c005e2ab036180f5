"""
A node's part in a cluster of nodes sharing one store (PostgreSQL): which
bots it runs.

The node runs only the bots it holds a lease on, and knows the others as
:class:`~dccrelay.relay.remote.RemoteRelay`.  Each round it heartbeats,
renews its leases, stops any bot whose lease it lost, and claims or hands
over bots towards an even share of the live nodes, a few at a time; it
tells the manager "run here" or "run elsewhere" for each.  A bot moves by a
resumable stop on one node and a RESUME on the next.  A node that cannot
renew stops its bots before its leases can expire, so two nodes never hold
one Discord session.  Registration changes made through any node reach the
others as store notices (LISTEN/NOTIFY), and every node reloads every
registration now and then in case one was lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from dccrelay.relay.placement import IPlacement
from dccrelay.relay.snapshots import from_record, to_record
from dccrelay.store import IClusterStore, IRegistrations, StoredRelay
from dccrelay.store.leases import LeaseTiming

if TYPE_CHECKING:
    from dccrelay.relay.manager import RelayManager
    from dccrelay.relay.relay import Relay

# Bots claimed per reactor turn: each starts a relay (and compiles its
# filter, unless another bot has the same criteria).
CLAIM_SLICE = 50

# At most this share of a node's bots is handed over per round, so that a
# node joining or leaving moves bots gradually.
HANDOVER_FRACTION = 0.1

# Notices can be lost (a database restart); every so often each node reloads
# every registration anyway.
RECONCILE_INTERVAL = 30.0
# Bots whose status is taken per reactor turn of a lease round (~15 µs
# each), so that 10,000 bots' statuses (a node's first round, or after a
# failed publish) never hold the reactor for the whole round.
STATUS_SLICE = 250


@dataclass(frozen=True)
class ClusterNode:
    """
    This node's part in a cluster sharing one store.
    """

    node_id: str
    timing: LeaseTiming = field(default_factory=LeaseTiming)


@dataclass(frozen=True, slots=True)
class _Taken:
    """One bot's status as a lease round took (and published) it."""

    #: the relay it is of: a relay started again for the alias is another
    relay: Relay
    #: the relay's status_changes on the turn it was taken
    changes: int
    record: dict[str, Any]


@implementer(IPlacement)
class ClusterCoordinator:
    """
    Runs lease rounds for one node, and places its manager's bots where
    their leases say.

    :param store: the cluster role of the shared store.
    :param registrations: the registrations (to load a claimed bot's).
    """

    _log = Logger()

    def __init__(
        self,
        node: ClusterNode,
        store: IClusterStore,
        registrations: IRegistrations,
        clock: IReactorTime,
    ) -> None:
        self.node = node
        self.node_id = node.node_id
        self._store = store
        self._registrations = registrations
        self._clock = clock
        self._manager: RelayManager | None = None
        self._rounds = LoopingCall(self._lease_round)
        self._rounds.clock = clock
        self._round_running = False
        self._round_again = False
        self._renew_deadline: IDelayedCall | None = None
        # When the newest renew that succeeded was sent (our clock).
        self._renewed_sent_at = float("-inf")
        self._last_reconcile = clock.seconds()
        # What this node last published, per alias, with the relay it was
        # taken of and that relay's status_changes then; None: take and
        # publish all.
        self._published: dict[str, _Taken] | None = None
        # What was last taken in from the others, per remote alias.
        self._taken: dict[str, tuple[str, dict[str, Any]] | None] = {}

    @property
    def manager(self) -> RelayManager:
        assert self._manager is not None, "attach() first"
        return self._manager

    # -- IPlacement ------------------------------------------------------------------

    def attach(self, manager: RelayManager) -> None:
        self._manager = manager

    def place(self, record: StoredRelay) -> None:
        # Every bot is someone else's until this node claims its lease.
        self.manager.run_elsewhere(record)

    @inlineCallbacks
    def begin(self) -> Any:
        yield self._store.listen_changes(self._changed)
        self._rounds.start(self.node.timing.claim_interval, now=False)
        self._poke()

    @inlineCallbacks
    def changed(self, alias: str) -> Any:
        try:
            yield self._store.notify_change(alias)
        except Exception:
            # The periodic rounds still converge; the change itself is stored.
            self._log.failure("{alias}: could not notify the other nodes", alias=alias)
        self._poke()

    def pause(self) -> None:
        if self._rounds.running:
            self._rounds.stop()
        self._cancel_renew_deadline()

    @inlineCallbacks
    def leave(self) -> Any:
        # Hand every bot over now rather than after the leases expire.
        try:
            yield self._store.forget_node(self.node_id)
        except Exception:
            self._log.failure("could not release this node's leases")

    # -- registration changes through other nodes ----------------------------------

    def _poke(self) -> None:
        """
        Run a lease round now (a new bot may be waiting for an owner).
        """
        if self.manager.running:
            self._clock.callLater(0, self._lease_round)

    def _changed(self, alias: str | None) -> None:
        """
        Another node (or this one) changed ``alias``'s registration, or
        anything (``None``).
        """
        d = self.manager.exclusively(self._reload, alias)
        d.addErrback(lambda f: self._log.failure("could not apply a registration change", f))

    @inlineCallbacks
    def _reload(self, alias: str | None) -> Any:
        manager = self.manager
        records = {r.alias: r for r in (yield self._registrations.load_relays())}
        aliases = set(records) | set(manager.relays) if alias is None else {alias}
        for name in sorted(aliases):
            record, relay = records.get(name), manager.relays.get(name)
            if record is None:
                if relay is not None:
                    manager.drop(name)
                    yield relay.forget()
            elif relay is None:
                manager.run_elsewhere(record)
                self._poke()
            else:
                yield relay.follow(record)

    # -- lease rounds -------------------------------------------------------------------

    @inlineCallbacks
    def _lease_round(self) -> Any:
        if self._round_running:
            self._round_again = True
            return
        self._round_running = True
        try:
            node, timing = self.node_id, self.node.timing
            try:
                yield self._store.heartbeat_node(node, timing.ttl)
                # Measured after the heartbeat: a call that waited for the
                # database to come back must not date the renew.
                sent_at = self._clock.seconds()
                held = set((yield self._store.renew_leases(node, timing.ttl)))
            except Exception:
                self._log.failure("could not renew this node's leases")
                return
            if self._clock.seconds() >= sent_at + timing.stop_after:
                # Answered so late that these leases may be about to expire:
                # no ground to run or claim anything on.  Renew again now.
                self._log.warn("renewing leases took too long; renewing again")
                self._round_again = True
                return
            self._renewed_sent_at = sent_at
            self._arm_renew_deadline(sent_at)
            yield self.manager.exclusively(self._settle_leases, held)
            if sent_at - self._last_reconcile >= RECONCILE_INTERVAL:
                self._last_reconcile = sent_at
                self._changed(None)
        finally:
            self._round_running = False
            if self._round_again and self.manager.running:
                self._round_again = False
                self._poke()

    @inlineCallbacks
    def _settle_leases(self, held: set[str]) -> Any:
        manager = self.manager
        node, timing = self.node_id, self.node.timing
        local = {relay.alias for relay in manager.local_relays()}
        for alias in sorted(local - held):
            self._log.warn("{alias}: lease lost; stopping here", alias=alias)
            yield manager.move_away(alias)
        owned = local & held
        # Held here yet running nowhere (stopped when renewals failed, then
        # renewed): nobody else may claim these.  Released, to be claimed
        # again below (here or elsewhere) under a new epoch: appends of the
        # stopped relay still waiting for the database are then not stored.
        stranded = sorted(held - local)
        if stranded:
            self._log.info(
                "leases of {count} bots held here that run nowhere: releasing them to be"
                " claimed again", count=len(stranded),
            )
            yield self._store.release_leases(node, stranded)
        live = yield self._store.live_nodes()
        share = math.ceil(len(manager.relays) / max(1, len(live)))
        if len(owned) < share:
            claimed = yield self._store.claim_leases(node, timing.ttl, share - len(owned))
            if claimed:
                records = {r.alias: r for r in (yield self._registrations.load_relays())}
                for n, (alias, epoch) in enumerate(claimed):
                    if n and n % CLAIM_SLICE == 0:
                        yield manager.breathe()
                    yield self._run_here(alias, epoch, records.get(alias))
        if len(owned) > share:
            step = max(1, math.ceil(share * HANDOVER_FRACTION))
            give = sorted(owned)[: min(len(owned) - share, step)]
            for alias in give:
                yield manager.move_away(alias)
            yield self._store.release_leases(node, give)
        yield self._share_statuses()

    @inlineCallbacks
    def _share_statuses(self) -> Any:
        """
        Publish what this node's bots look like, for ``GET /relays`` on the
        others, and take in what the others published of theirs.  Only
        what changed since the last round is published (all of it the first
        time and after a failure), a slice of statuses per store call.  A bot's status is
        taken only if its
        :attr:`~dccrelay.relay.relay.Relay.status_changes` moved since it
        was last taken (all of them after a failure), a slice of bots per
        reactor turn.
        """
        manager = self.manager
        owners = yield self._store.lease_owners()
        published, self._published = self._published, None
        last = published if published is not None else {}
        taken_now: dict[str, _Taken] = {}
        changed: dict[str, dict[str, Any]] = {}
        snapshots = 0
        for relay in manager.local_relays():
            alias = relay.alias
            before = last.get(alias)
            if (
                before is not None and before.relay is relay
                and before.changes == relay.status_changes
            ):
                taken_now[alias] = before
                continue
            if snapshots and snapshots % STATUS_SLICE == 0:
                yield manager.breathe()
            snapshots += 1
            # read on the same reactor turn as the snapshot it stands for
            record = to_record(relay.snapshot())
            taken_now[alias] = _Taken(relay, relay.status_changes, record)
            if before is None or before.record != record:
                changed[alias] = record
        # Encoded by the store on this thread: a slice per call (each status
        # stands alone; the withdrawn go last).  Everything, the first time
        # or after a failure: the first slice replaces all the node
        # published before and the others are added to it, so that other
        # nodes may see part of them for the few turns that takes.
        if published is None:
            items = [(alias, taken.record) for alias, taken in taken_now.items()]
            withdrawn = []
        else:
            items = list(changed.items())
            withdrawn = list(published.keys() - taken_now.keys())
        for start in range(0, max(1, len(items)), STATUS_SLICE):
            if start:
                yield manager.breathe()
            part = dict(items[start:start + STATUS_SLICE])
            if published is None and not start:
                yield self._store.publish_statuses(self.node_id, part)
                continue
            final = start + STATUS_SLICE >= len(items)
            yield self._store.update_statuses(
                self.node_id, part, withdrawn if final else []
            )
        self._published = taken_now
        statuses = yield self._store.load_statuses()
        taken: dict[str, tuple[str, dict[str, Any]] | None] = {}
        for n, remote in enumerate(manager.remote_relays()):
            if n and n % STATUS_SLICE == 0:
                yield manager.breathe()
            remote.owner = owners.get(remote.alias)
            status = statuses.get(remote.alias)
            if status is not None and status[0] != remote.owner:
                status = None
            taken[remote.alias] = status
            if status is None:
                remote.published = None
            elif remote.published is None or status != self._taken.get(remote.alias):
                # rebuilt only when it changed (or the handle is new)
                remote.published = from_record(status[1])
        self._taken = taken

    @inlineCallbacks
    def _run_here(self, alias: str, epoch: int, record: StoredRelay | None) -> Any:
        if record is None:
            # Deleted since: nothing to run.
            yield self._store.release_leases(self.node_id, [alias])
            return
        self._log.info("{alias}: now running on this node", alias=alias)
        relay = self.manager.run_here(record)
        relay.lease_epoch = epoch
        self.manager.start_paced(relay)

    # -- when renewals fail ----------------------------------------------------------------

    def _arm_renew_deadline(self, sent_at: float) -> None:
        self._cancel_renew_deadline()
        delay = sent_at + self.node.timing.stop_after - self._clock.seconds()
        self._renew_deadline = self._clock.callLater(max(0.0, delay), self._renewals_failed)

    def _cancel_renew_deadline(self) -> None:
        if self._renew_deadline is not None and self._renew_deadline.active():
            self._renew_deadline.cancel()
        self._renew_deadline = None

    def _renewed_in_time(self) -> bool:
        """Whether the newest successful renew still holds this node's leases."""
        return self._clock.seconds() < self._renewed_sent_at + self.node.timing.stop_after

    def _renewals_failed(self) -> None:
        """
        No renew succeeded for too long: stop every bot before the leases
        can expire and another node RESUMEs them.
        """
        self._renew_deadline = None
        self._log.error("could not renew leases in time; stopping this node's bots")

        @inlineCallbacks
        def stop_all() -> Any:
            if self._renewed_in_time():
                # A renew succeeded while this waited for its turn: the
                # round that made it decides which bots stay.
                self._log.info("leases renewed meanwhile; bots keep running")
                return
            for relay in self.manager.local_relays():
                yield self.manager.move_away(relay.alias)

        d: Deferred[Any] = self.manager.exclusively(stop_all)
        d.addErrback(lambda f: self._log.failure("stopping bots after lost leases failed", f))
