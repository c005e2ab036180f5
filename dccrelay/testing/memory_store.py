"""
An in-memory :class:`~dccrelay.store.IRelayStore`, for unit tests that want
a store whose Deferreds fire at once.  It passes the same contract tests as
the real stores.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import json
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from dccrelay.store import IRelayStore, SessionState, StoredRelay
from dccrelay.store.errors import StoreClosed


@dataclass
class MemoryDatabase:
    """
    What a :class:`MemoryRelayStore` keeps; share one between stores to
    model a restart.
    """

    relays: dict[str, StoredRelay] = field(default_factory=dict)
    sessions: dict[str, dict[int, SessionState]] = field(default_factory=dict)


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
