"""
An in-memory :class:`~dccrelay.store.IRelayStore`, for unit tests that want
a store whose Deferreds fire at once.  It passes the same contract tests as
the real stores.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import json
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from dccrelay.store import (
    IRelayStore,
    OutboxCheckpoint,
    OutboxEntry,
    SessionState,
    StoredRelay,
    Trimmed,
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


@implementer(IRelayStore)
class MemoryRelayStore:
    """
    A store in a dict.
    """

    description = "in-memory store"

    def __init__(self, database: MemoryDatabase | None = None) -> None:
        self.database = database if database is not None else MemoryDatabase()
        self._open = False
        self._closed = False

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
        return succeed(None)

    def load_relays(self) -> Deferred[list[StoredRelay]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        relays = self.database.relays
        return succeed([copy.deepcopy(relays[alias]) for alias in sorted(relays)])

    def save_relay(self, alias: str, settings: dict[str, Any]) -> Deferred[None]:
        try:
            self._usable()
            # The real stores keep JSON: refuse what JSON cannot hold.
            settings = json.loads(json.dumps(settings, allow_nan=False))
        except (StoreClosed, TypeError, ValueError) as e:
            return fail(e)
        old = self.database.relays.get(alias)
        self.database.relays[alias] = StoredRelay(
            alias, settings, True, old.disable_reason if old else None
        )
        return succeed(None)

    def delete_relay(self, alias: str) -> Deferred[bool]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        self.database.sessions.pop(alias, None)
        self.database.outbox.pop(alias, None)
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

    def save_session(self, alias: str, state: SessionState) -> Deferred[None]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
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
    ) -> Deferred[list[int | None]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        for _, payload in entries:
            if not isinstance(payload, bytes):
                return fail(TypeError(f"payloads must be bytes, not {type(payload).__name__}"))
        database = self.database
        ids: list[int | None] = []
        for alias, payload in entries:
            if alias not in database.relays:
                ids.append(None)
                continue
            database.last_outbox_id += 1
            entry = OutboxEntry(database.last_outbox_id, payload, now)
            database.outbox.setdefault(alias, []).append(entry)
            ids.append(entry.id)
        for checkpoint in checkpoints:
            stored = database.sessions.get(checkpoint.alias, {}).get(checkpoint.shard_id)
            if (
                stored is not None
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

    def outbox_ack(self, acks: Mapping[str, int]) -> Deferred[dict[str, int]]:
        if self._closed or not self._open:
            return fail(StoreClosed(self.description))
        removed = {}
        for alias, up_to in acks.items():
            removed[alias] = self._remove_up_to(alias, up_to)
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

    def _remove_up_to(self, alias: str, up_to: int) -> int:
        entries = self.database.outbox.get(alias, [])
        kept = [e for e in entries if e.id > up_to]
        if kept:
            self.database.outbox[alias] = kept
        else:
            self.database.outbox.pop(alias, None)
        return len(entries) - len(kept)
