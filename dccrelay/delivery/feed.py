"""
Where a channel's dispatches wait for the bot: a *feed*.

A channel sends a feed's entries in order and tells it which the bot has
taken; it never needs to know where they wait.  Two feeds:

- :class:`MemoryFeed`: websocket v1's bounded backlog in memory
  (:class:`~dccrelay.delivery.queue.Backlog`); what a relay restart loses,
  Discord replays from the stored resume point;
- :class:`~dccrelay.delivery.outbox.BotOutbox`: the durable outbox in the
  store, for websocket v2 and webhooks (at-least-once).

Each entry has an id: increasing, never repeated for the feed (the
outbox's ids are the store's, shown to v2 and webhook bots; the memory
feed's are its own, never shown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from dccrelay.delivery.queue import Backlog

if TYPE_CHECKING:
    from dccrelay.store import OutboxCheckpoint


class IFeed(Interface):
    """
    One bot's waiting dispatches, as its channel sees them.
    """

    durable = Attribute("True if the entries survive a relay restart (the store's outbox)")
    queued = Attribute("int: entries not yet taken by the bot")
    dropped = Attribute("int: entries dropped by the limits (count, age), or not stored")
    gone_up_to = Attribute("int: every entry with an id up to this was taken or dropped")

    def start(on_ready: Callable[[], object]) -> None:
        """
        Begin I/O (a durable feed counts and loads what the store holds).

        :param on_ready: called when entries become sendable later than
            :meth:`append` returned (stored, paged in).
        """

    def append(payload: bytes, checkpoint: OutboxCheckpoint | None = None) -> bool:
        """
        Add ``payload`` as the newest entry.

        :param checkpoint: a shard seq to store with it (durable feeds).
        :return: True if it can be sent now; False if it will be (and
            ``on_ready`` called) once stored.
        :raise TypeError: if ``payload`` is not bytes (a str would be
            re-encoded, and no longer byte-identical).
        """

    def has_work() -> bool:
        """
        Whether anything waits for the bot (so a connection is needed).
        """

    def entries_after(after_id: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """
        :return: ``(id, payload)`` of the sendable entries with an id above
            ``after_id``, oldest first, at most ``limit`` of them.
        """

    def take(up_to: int) -> list[bytes]:
        """
        The bot has every entry up to id ``up_to``: forget them.

        :return: the payloads this took, oldest first.
        """

    def batch_end(first: int) -> int | None:
        """
        :return: the last id of the batch recorded (:meth:`record_batch`)
            as sent from entry ``first`` on, or None.
        """

    def record_batch(first: int, last: int) -> Deferred[None]:
        """
        Keep, as durably as the entries, that entries ``first`` to ``last``
        are about to be sent as one batch: a batch sent again (even after a
        restart) holds the same entries.

        :return: fires once kept.
        """

    def pending() -> list[bytes]:
        """
        :return: what a channel built after this one must be given (a
            durable feed: nothing, the store keeps it).
        """

    def unstored() -> int:
        """
        :return: entries appended and not durable yet.
        """

    def stop() -> Deferred[None]:
        """
        Stop paging and timers.

        :return: fires once the writes made so far are done.
        """


@implementer(IFeed)
class MemoryFeed:
    """
    Websocket v1's backlog: at most ``limit`` dispatches in memory, the
    oldest dropped (and counted) first.

    :param alias: the bot, for logs.
    :param limit: dispatches kept.
    :param initial: what an earlier channel for the bot still held.
    :param clock: with ``latency``, the time of each append...
    :param latency: ...gets the seconds each dispatch waited until taken.
    """

    log = Logger()
    durable = False

    __slots__ = ("_alias", "_backlog", "_appended", "_overflowing", "_initial")

    def __init__(
        self,
        alias: str,
        limit: int,
        initial: Iterable[bytes] = (),
        *,
        clock: IReactorTime | None = None,
        latency: Callable[[float], object] | None = None,
    ) -> None:
        self._alias = alias
        self._backlog: Backlog[bytes] = Backlog(
            limit, clock=clock.seconds if clock is not None else None, on_taken=latency
        )
        # the id of the newest entry: ids count appends, so the oldest kept
        # has id _appended - len(_backlog) + 1 whatever was dropped
        self._appended = 0
        # so that a long outage logs one warning about dropping, not hundreds
        self._overflowing = False
        for payload in initial:
            self.append(payload)

    @property
    def queued(self) -> int:
        return len(self._backlog)

    @property
    def dropped(self) -> int:
        return self._backlog.dropped

    @property
    def gone_up_to(self) -> int:
        return self._appended - len(self._backlog)

    def start(self, on_ready: Callable[[], object]) -> None:
        # Nothing to load; appends are sendable at once, and so is what an
        # earlier channel left.
        if self._backlog:
            on_ready()

    def append(self, payload: bytes, checkpoint: OutboxCheckpoint | None = None) -> bool:
        if not isinstance(payload, bytes):
            # a str here would be re-encoded and no longer byte-identical
            raise TypeError(f"a dispatch must be bytes, not {type(payload).__name__}")
        self._appended += 1
        if self._backlog.append(payload) and not self._overflowing:
            self._overflowing = True
            self.log.warn(
                "{alias}'s bot cannot be reached and {limit} dispatches wait:"
                " dropping the oldest from now on",
                alias=self._alias,
                limit=len(self._backlog),
            )
        return True

    def has_work(self) -> bool:
        return bool(self._backlog)

    def entries_after(self, after_id: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        # on the dispatch path (v1 writes each dispatch as it comes): kept
        # to a few list operations
        items = self._backlog.items()
        first_id = self._appended - len(items) + 1
        skip = after_id - first_id + 1
        if skip > 0:
            del items[:skip]
            first_id += skip
        if limit is not None:
            del items[limit:]
        return list(zip(range(first_id, first_id + len(items)), items))

    def take(self, up_to: int) -> list[bytes]:
        backlog = self._backlog
        size = len(backlog)
        count = min(size, up_to - self._appended + size)
        if count <= 0:
            return []
        self._overflowing = False
        if count == 1:
            return [backlog.popleft()]
        return [backlog.popleft() for _ in range(count)]

    def batch_end(self, first: int) -> int | None:
        # Nothing survives a restart here: no batch is sent again.
        return None

    def record_batch(self, first: int, last: int) -> Deferred[None]:
        return succeed(None)

    def pending(self) -> list[bytes]:
        return self._backlog.items()

    def unstored(self) -> int:
        return len(self._backlog)

    def stop(self) -> Deferred[None]:
        return succeed(None)
