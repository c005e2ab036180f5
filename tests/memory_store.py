"""
An in-memory store of every role (:class:`~dccrelay.store.IRelayStore` and
:class:`~dccrelay.store.IClusterStore`), for unit tests that want a store
whose Deferreds fire at once.  It passes the same contract tests as the
real stores.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from dccrelay.store import (
    IDENTIFY_MIN_WAIT,
    GuildSnapshotUpdate,
    IClusterStore,
    IRelayStore,
    OutboxCheckpoint,
    OutboxEntry,
    SessionState,
    StoredRelay,
    Trimmed,
    check_guild_snapshot_updates,
    check_payloads,
    encode_settings,
    encode_statuses,
)
from dccrelay.store.errors import StoreClosed


@dataclass
class MemoryDatabase:
    """
    What a :class:`MemoryRelayStore` keeps; share one between stores to
    model a restart.
    """

    relays: dict[str, StoredRelay] = field(default_factory=dict)
    sessions: dict[str, dict[int, SessionState]] = field(default_factory=dict)
    outbox: dict[str, list[OutboxEntry]] = field(default_factory=dict)
    #: the last outbox id given out; ids are never reused
    last_outbox_id: int = 0
    #: the database's clock, for leases and heartbeats; it stands still
    #: unless a test gives one that moves (e.g. a ``Clock``'s ``seconds``)
    now: Callable[[], float] = field(default=lambda: 0.0)
    #: the last lease epoch given out, to any bot
    last_epoch: int = 0
    #: node id to when its heartbeat expires
    nodes: dict[str, float] = field(default_factory=dict)
    #: alias to its lease, for every registered bot
    leases: dict[str, MemoryLease] = field(default_factory=dict)
    #: what :meth:`MemoryRelayStore.listen_changes` registered
    listeners: list[Callable[[str | None], None]] = field(default_factory=list)
    #: (key, bucket) to its IDENTIFY slot
    identify: dict[tuple[str, int], MemoryIdentifySlot] = field(default_factory=dict)
    #: node id to when it published and what: alias to a status
    #: node id -> alias -> (published at, status)
    statuses: dict[str, dict[str, tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    #: alias to its guild snapshot's parts, by name
    guild_snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)


@dataclass
class MemoryLease:
    """
    One bot's lease: its owner (a node id, or ``None``), its fencing epoch
    and when it expires.
    """

    owner: str | None = None
    epoch: int = 0
    expires_at: float | None = None

    def live(self, now: float) -> bool:
        """
        :return: whether a node holds it at ``now``.
        """
        return self.owner is not None and self.expires_at is not None and self.expires_at > now


@dataclass
class MemoryIdentifySlot:
    """
    One IDENTIFY slot: who holds it until when, and when it is next free
    (``None``: now).
    """

    holder: str | None = None
    held_until: float | None = None
    next_free: float | None = None


@implementer(IRelayStore, IClusterStore)
class MemoryRelayStore:
    """
    A store in a dict.
    """

    description = "in-memory store"

    def __init__(self, database: MemoryDatabase | None = None) -> None:
        self.database = database if database is not None else MemoryDatabase()
        self._open = False
        self._closed = False
        self._listeners: list[Callable[[str | None], None]] = []

    def _usable(self) -> None:
        if self._closed or not self._open:
            raise StoreClosed(self.description)

    def open(self) -> Deferred[None]:
        if self._closed:
            return fail(StoreClosed(self.description))
        self._open = True
        return succeed(None)

    def close(self) -> Deferred[None]:
        self._closed = True
        for listener in self._listeners:
            self.database.listeners.remove(listener)
        self._listeners.clear()
        return succeed(None)

    def load_relays(self) -> Deferred[list[StoredRelay]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        relays = self.database.relays
        return succeed([copy.deepcopy(relays[alias]) for alias in sorted(relays)])

    def create_relay(self, alias: str, settings: dict[str, Any]) -> Deferred[bool]:
        if alias in self.database.relays:
            try:
                self._usable()
            except StoreClosed as e:
                return fail(e)
            return succeed(False)
        d = self.save_relay(alias, settings)
        return d.addCallback(lambda _: True)

    def save_relay(self, alias: str, settings: dict[str, Any]) -> Deferred[None]:
        try:
            self._usable()
            # The real stores keep JSON: refuse what JSON cannot hold.
            settings = json.loads(encode_settings(settings))
        except (StoreClosed, TypeError, ValueError) as e:
            return fail(e)
        old = self.database.relays.get(alias)
        self.database.relays[alias] = StoredRelay(
            alias, settings, True, old.disable_reason if old else None
        )
        self.database.leases.setdefault(alias, MemoryLease())
        return succeed(None)

    def delete_relay(self, alias: str) -> Deferred[bool]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        self.database.sessions.pop(alias, None)
        self.database.outbox.pop(alias, None)
        self.database.leases.pop(alias, None)
        self.database.guild_snapshots.pop(alias, None)
        return succeed(self.database.relays.pop(alias, None) is not None)

    def disable_relay(self, alias: str, reason: str) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        old = self.database.relays.get(alias)
        if old is not None:
            self.database.relays[alias] = StoredRelay(alias, old.settings, False, reason)
            self.database.sessions.pop(alias, None)
        return succeed(None)

    def load_sessions(self, alias: str) -> Deferred[dict[int, SessionState]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        return succeed(dict(self.database.sessions.get(alias, {})))

    def load_all_sessions(self) -> Deferred[dict[str, dict[int, SessionState]]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        return succeed(
            {alias: dict(states) for alias, states in self.database.sessions.items() if states}
        )

    def save_session(self, alias: str, state: SessionState) -> Deferred[None]:
        return self.save_sessions([(alias, state)])

    def save_sessions(self, states: Sequence[tuple[str, SessionState]]) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        for alias, state in states:
            relay = self.database.relays.get(alias)
            if relay is not None and relay.enabled:
                self.database.sessions.setdefault(alias, {})[state.shard_id] = state
        return succeed(None)

    def forget_session(self, alias: str, shard_id: int) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        self.database.sessions.get(alias, {}).pop(shard_id, None)
        return succeed(None)

    def outbox_append(
        self,
        entries: Sequence[tuple[str, bytes]],
        now: float,
        checkpoints: Iterable[OutboxCheckpoint] = (),
        fences: Sequence[int | None] | None = None,
    ) -> Deferred[list[int | None]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        try:
            check_payloads(entries)
        except TypeError:
            return fail()
        database = self.database

        def current(alias: str, fence: int | None) -> bool:
            lease = database.leases.get(alias)
            return fence is None or (lease is not None and lease.epoch == fence)

        ids: list[int | None] = []
        for (alias, payload), fence in zip(entries, fences or [None] * len(entries)):
            if alias not in database.relays or not current(alias, fence):
                ids.append(None)
                continue
            database.last_outbox_id += 1
            entry = OutboxEntry(database.last_outbox_id, payload, now)
            database.outbox.setdefault(alias, []).append(entry)
            ids.append(entry.id)
        for checkpoint in checkpoints:
            stored = database.sessions.get(checkpoint.alias, {}).get(checkpoint.shard_id)
            if (
                current(checkpoint.alias, checkpoint.lease_epoch)
                and stored is not None
                and stored.session_id == checkpoint.session_id
                and (stored.seq is None or stored.seq < checkpoint.seq)
            ):
                database.sessions[checkpoint.alias][checkpoint.shard_id] = SessionState(
                    stored.shard_id,
                    stored.shard_count,
                    stored.session_id,
                    checkpoint.seq,
                    stored.resume_url,
                )
        return succeed(ids)

    def outbox_load(self, alias: str, after_id: int, limit: int) -> Deferred[list[OutboxEntry]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        entries = [e for e in self.database.outbox.get(alias, []) if e.id > after_id]
        return succeed(entries[: max(0, limit)])

    def outbox_ack(
        self, acks: Mapping[str, int], batches: Mapping[str, tuple[int, int]] | None = None
    ) -> Deferred[dict[str, int]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        removed = {}
        for alias, up_to in acks.items():
            removed[alias] = self._remove_up_to(alias, up_to)
        for alias, (first, last) in (batches or {}).items():
            entries = self.database.outbox.get(alias, [])
            for n, entry in enumerate(entries):
                if entry.id == first:
                    entries[n] = replace(entry, batch_last=last)
        return succeed(removed)

    def outbox_trim(
        self, alias: str, max_count: int, created_before: float | None = None
    ) -> Deferred[Trimmed]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        entries = self.database.outbox.get(alias, [])
        up_to = 0
        excess = len(entries) - max(0, max_count)
        if excess > 0:
            up_to = entries[excess - 1].id
        if created_before is not None:
            old = [e.id for e in entries if e.created_at < created_before]
            if old:
                up_to = max(up_to, max(old))
        if not up_to:
            return succeed(Trimmed(0, 0))
        return succeed(Trimmed(self._remove_up_to(alias, up_to), up_to))

    def outbox_count(self, alias: str) -> Deferred[int]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        return succeed(len(self.database.outbox.get(alias, [])))

    # -- guild snapshots ---------------------------------------------------------

    def load_guild_snapshot(self, alias: str) -> Deferred[dict[str, bytes]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        return succeed(dict(self.database.guild_snapshots.get(alias, {})))

    def save_guild_snapshots(self, updates: Iterable[GuildSnapshotUpdate]) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        try:
            checked = check_guild_snapshot_updates(updates)
        except TypeError:
            return fail()
        for update in checked:
            if update.alias not in self.database.relays:
                continue
            parts = self.database.guild_snapshots.setdefault(update.alias, {})
            if update.replace:
                parts.clear()
            for name in update.dropped:
                parts.pop(name, None)
            parts.update(update.parts)
        return succeed(None)

    # -- nodes, leases and change notices -------------------------------------

    def heartbeat_node(self, node_id: str, ttl: float) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        self.database.nodes[node_id] = self.database.now() + ttl
        return succeed(None)

    def live_nodes(self) -> Deferred[list[str]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        now = self.database.now()
        return succeed(sorted(n for n, expires in self.database.nodes.items() if expires > now))

    def forget_node(self, node_id: str) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        self.database.nodes.pop(node_id, None)
        self.database.statuses.pop(node_id, None)
        for lease in self.database.leases.values():
            if lease.owner == node_id:
                lease.owner = lease.expires_at = None
        return succeed(None)

    def claim_leases(self, node_id: str, ttl: float, limit: int) -> Deferred[list[tuple[str, int]]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        now = self.database.now()
        leases = self.database.leases
        free = [alias for alias in sorted(leases) if not leases[alias].live(now)]
        claimed = []
        for alias in free[: max(0, limit)]:
            lease = leases[alias]
            self.database.last_epoch += 1
            lease.owner, lease.epoch, lease.expires_at = node_id, self.database.last_epoch, now + ttl
            claimed.append((alias, lease.epoch))
        return succeed(claimed)

    def renew_leases(self, node_id: str, ttl: float) -> Deferred[list[str]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        now = self.database.now()
        held = []
        for alias, lease in sorted(self.database.leases.items()):
            if lease.owner == node_id and lease.live(now):
                lease.expires_at = now + ttl
                held.append(alias)
        return succeed(held)

    def release_leases(self, node_id: str, aliases: Iterable[str]) -> Deferred[list[str]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        released = []
        for alias in sorted(set(aliases)):
            lease = self.database.leases.get(alias)
            if lease is not None and lease.owner == node_id:
                lease.owner = lease.expires_at = None
                released.append(alias)
        return succeed(released)

    def lease_owners(self) -> Deferred[dict[str, str]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        now = self.database.now()
        return succeed(
            {
                alias: lease.owner
                for alias, lease in self.database.leases.items()
                if lease.owner is not None and lease.live(now)
            }
        )

    # -- IDENTIFY slots and public status ---------------------------------------

    def acquire_identify(self, key: str, bucket: int, node_id: str, hold: float) -> Deferred[float]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        now = self.database.now()
        slot = self.database.identify.setdefault((key, bucket), MemoryIdentifySlot())
        if slot.holder is not None and slot.held_until is not None and slot.held_until > now:
            return succeed(max(IDENTIFY_MIN_WAIT, slot.held_until - now))
        if slot.next_free is not None and slot.next_free > now:
            return succeed(max(IDENTIFY_MIN_WAIT, slot.next_free - now))
        slot.holder, slot.held_until = node_id, now + hold
        return succeed(0.0)

    def finish_identify(
        self, key: str, bucket: int, node_id: str, sent: bool, window: float
    ) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        slot = self.database.identify.get((key, bucket))
        if slot is not None and slot.holder == node_id:
            slot.holder = slot.held_until = None
            if sent:
                slot.next_free = self.database.now() + window
        return succeed(None)

    def publish_statuses(self, node_id: str, statuses: Mapping[str, dict[str, Any]]) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        try:
            # Through JSON, as the real stores: refused if it cannot be
            # stored, and a copy that the caller's later changes miss.
            copied = {alias: json.loads(status) for alias, status in encode_statuses(statuses)}
        except (TypeError, ValueError) as e:
            return fail(e)
        now = self.database.now()
        self.database.statuses[node_id] = {alias: (now, status) for alias, status in copied.items()}
        return succeed(None)

    def update_statuses(
        self, node_id: str, changed: Mapping[str, dict[str, Any]], withdrawn: Iterable[str]
    ) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        try:
            copied = {alias: json.loads(status) for alias, status in encode_statuses(changed)}
        except (TypeError, ValueError) as e:
            return fail(e)
        published = self.database.statuses.setdefault(node_id, {})
        for alias in withdrawn:
            published.pop(alias, None)
        now = self.database.now()
        published.update((alias, (now, status)) for alias, status in copied.items())
        return succeed(None)

    def load_statuses(self) -> Deferred[dict[str, tuple[str, dict[str, Any]]]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        now = self.database.now()
        best: dict[str, tuple[float, str, dict[str, Any]]] = {}
        for node_id, statuses in self.database.statuses.items():
            if self.database.nodes.get(node_id, now) <= now:
                continue  # not live
            for alias, (published_at, status) in statuses.items():
                old = best.get(alias)
                # The latest publish wins; on a tie, the lowest node id.
                if old is None or (-published_at, node_id) < (-old[0], old[1]):
                    best[alias] = (published_at, node_id, status)
        return succeed(
            {alias: (node_id, copy.deepcopy(status)) for alias, (_, node_id, status) in best.items()}
        )

    def notify_change(self, alias: str) -> Deferred[None]:
        """
        Call every listener of the database at once, this store's included.
        """
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        for listener in list(self.database.listeners):
            listener(alias)
        return succeed(None)

    def listen_changes(self, callback: Callable[[str | None], None]) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        self._listeners.append(callback)
        self.database.listeners.append(callback)
        return succeed(None)

    def _remove_up_to(self, alias: str, up_to: int) -> int:
        entries = self.database.outbox.get(alias, [])
        kept = [e for e in entries if e.id > up_to]
        if kept:
            self.database.outbox[alias] = kept
        else:
            self.database.outbox.pop(alias, None)
        return len(entries) - len(kept)
