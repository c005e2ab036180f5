"""
The durable outbox: matched dispatches kept in the store until the bot
acknowledges them, for the delivery channels that promise at-least-once
(websocket v2 and webhooks).

Two pieces:

- :class:`OutboxWriter`, one per node, coalesces the appends and acks of
  every bot into one store call each per reactor turn (or, under load, per
  store round trip: while one call runs, the next batch gathers), so a busy
  node costs a few transactions a second rather than one per dispatch.
- :class:`BotOutbox`, one per durable channel, is that bot's view (its
  :class:`~dccrelay.delivery.feed.IFeed`): it keeps
  a bounded window of the oldest unacknowledged entries in memory (the rest
  stays in the store and is paged in as the window drains, so memory per bot
  stays flat however long the bot sleeps), applies the bot's count and age
  limits (dropping the oldest, counted), and tells its channel when there is
  something to send.

A dispatch is appended before any channel sends it: the channel only ever
sends entries that already have their outbox id, so everything it sent is
in the store until acknowledged.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from dccrelay.delivery.config import DEFAULTS
from dccrelay.delivery.feed import IFeed
from dccrelay.delivery.timers import Deadline
from dccrelay.store import IRelayStore, OutboxCheckpoint, OutboxEntry, Trimmed


class OutboxWriter:
    """
    Batches every bot's outbox writes into few store calls.

    At most one append call and one ack call are in flight at a time; what
    comes meanwhile waits for the next, which starts as soon as the previous
    ones finish (or on the next reactor turn when idle).

    :param store: where the outbox lives.
    :param clock: for scheduling, and ``created_at`` (its ``seconds()``).
    """

    log = Logger()

    def __init__(self, store: IRelayStore, clock: IReactorTime) -> None:
        self._store = store
        self._clock = clock
        self._appends: list[tuple[str, bytes, Deferred[int | None]]] = []
        self._checkpoints: dict[tuple[str, int], OutboxCheckpoint] = {}
        self._acks: dict[str, tuple[int, list[Deferred[int]]]] = {}
        self._scheduled = False
        self._busy = False
        self._idle_waiters: list[Deferred[None]] = []
        #: store calls made, for the benchmark and tests
        self.calls = 0

    def append(
        self, alias: str, payload: bytes, checkpoint: OutboxCheckpoint | None = None
    ) -> Deferred[int | None]:
        """
        Append one dispatch for ``alias``.

        :param checkpoint: a shard seq to store in the same transaction.
        :return: fires with the entry's id once it is in the store, or with
            ``None`` if the bot is no longer registered; fails if the store
            did.
        """
        d: Deferred[int | None] = Deferred()
        self._appends.append((alias, payload, d))
        if checkpoint is not None:
            key = (checkpoint.alias, checkpoint.shard_id)
            earlier = self._checkpoints.get(key)
            if earlier is None or earlier.seq < checkpoint.seq or (
                earlier.session_id != checkpoint.session_id
            ):
                self._checkpoints[key] = checkpoint
        self._schedule()
        return d

    def ack(self, alias: str, up_to: int) -> Deferred[int]:
        """
        Remove ``alias``'s entries up to id ``up_to``.

        :return: fires with how many entries this removal took out (when
            several acks of one bot go in one call, the last gets the count
            and the others 0).
        """
        d: Deferred[int] = Deferred()
        highest, waiters = self._acks.get(alias, (0, []))
        waiters.append(d)
        self._acks[alias] = (max(highest, up_to), waiters)
        self._schedule()
        return d

    def idle(self) -> Deferred[None]:
        """
        :return: fires once everything given so far is written (or failed).
        """
        if not self._busy and not self._scheduled:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle_waiters.append(d)
        return d

    def _schedule(self) -> None:
        if not self._scheduled and not self._busy:
            self._scheduled = True
            self._clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        appends, self._appends = self._appends, []
        checkpoints, self._checkpoints = list(self._checkpoints.values()), {}
        acks, self._acks = self._acks, {}
        calls: list[Deferred[object]] = []
        if appends or checkpoints:
            calls.append(self._write_appends(appends, checkpoints))
        if acks:
            calls.append(self._write_acks(acks))
        if not calls:
            self._went_idle()
            return
        self._busy = True
        DeferredList(calls, consumeErrors=True).addCallback(self._written)

    def _write_appends(
        self,
        appends: list[tuple[str, bytes, Deferred[int | None]]],
        checkpoints: list[OutboxCheckpoint],
    ) -> Deferred[object]:
        self.calls += 1
        d = self._store.outbox_append(
            [(alias, payload) for alias, payload, _ in appends],
            self._clock.seconds(),
            checkpoints,
        )

        def stored(ids: list[int | None]) -> None:
            for (_, _, waiter), entry_id in zip(appends, ids):
                waiter.callback(entry_id)

        def failed(failure: Failure) -> None:
            self.log.failure(
                "Could not append {count} dispatches to the outbox", failure, count=len(appends)
            )
            for _, _, waiter in appends:
                waiter.errback(failure)

        d.addCallbacks(stored, failed)
        return d

    def _write_acks(self, acks: dict[str, tuple[int, list[Deferred[int]]]]) -> Deferred[object]:
        self.calls += 1
        d = self._store.outbox_ack({alias: up_to for alias, (up_to, _) in acks.items()})

        def removed(counts: dict[str, int]) -> None:
            for alias, (_, waiters) in acks.items():
                for waiter in waiters[:-1]:
                    waiter.callback(0)
                waiters[-1].callback(counts.get(alias, 0))

        def failed(failure: Failure) -> None:
            self.log.failure("Could not remove acknowledged dispatches from the outbox", failure)
            for _, waiters in acks.values():
                for waiter in waiters:
                    waiter.errback(failure)

        d.addCallbacks(removed, failed)
        return d

    def _written(self, _: object) -> None:
        self._busy = False
        if self._appends or self._acks or self._checkpoints:
            self._scheduled = True
            self._clock.callLater(0, self._flush)
        else:
            self._went_idle()

    def _went_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)


@implementer(IFeed)
class BotOutbox:
    """
    One bot's outbox, as its delivery channel sees it.  Building it does no
    I/O: :meth:`start` counts and loads what the store holds.

    :param alias: the bot.
    :param store: for loading, counting and trimming.
    :param writer: the node's :class:`OutboxWriter`, for appends and acks.
    :param clock: for the age limit's timer.
    :param limit: entries kept at most; past it the oldest are dropped.
    :param max_age: seconds an entry is kept at most, or ``None``.
    :param initial: payloads to append on :meth:`start` (what a
        non-durable channel for this bot still held).
    :param window: entries kept in memory at most.
    :param load_retry: seconds between tries to page entries in after the
        store failed to.
    """

    log = Logger()
    durable = True

    def __init__(
        self,
        *,
        alias: str,
        store: IRelayStore,
        writer: OutboxWriter,
        clock: IReactorTime,
        limit: int,
        max_age: float | None,
        initial: Iterable[bytes] = (),
        window: int = DEFAULTS.outbox_window,
        load_retry: float = DEFAULTS.outbox_load_retry,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the queue limit must be at least 1, got {limit!r}")
        self.alias = alias
        self._store = store
        self._writer = writer
        self._clock = clock
        self._limit = limit
        self._max_age = max_age
        self._on_ready: Callable[[], object] = lambda: None
        self._initial: Iterable[bytes] = initial
        self._window = window
        self._load_retry_after = load_retry
        # In memory, oldest first: the oldest unacknowledged entries.
        self._entries: deque[tuple[int, bytes]] = deque()
        # Every entry with an id up to this is in memory or gone.
        self._loaded_up_to = 0
        # Whether the store may hold entries past _loaded_up_to.
        self._spilled = True
        # The newest appended entry that was left in the store, not memory.
        self._skipped_up_to = 0
        self._loading = False
        self._trimming = False
        self._trim_again = False
        self._stored = 0
        self._appending = 0
        self._in_flight = 0
        self._waiters: list[Deferred[None]] = []
        self._stopped = False
        self._overflowing = False
        #: entries dropped (by the limits, or because they could not be
        #: stored)
        self.dropped = 0
        #: every entry with an id up to this was dropped or acknowledged
        self.gone_up_to = 0
        self._load_retry = Deadline(clock, self._load_more)
        self._age_check = Deadline(clock, self._check_age)
        # Until start(), nothing is paged in (appends are stored all the
        # same: they are durable).
        self._starting = False
        self._started = False

    def start(self, on_ready: Callable[[], object]) -> None:
        """
        Count and page in what the store holds, and append ``initial``.

        :param on_ready: called when entries come into memory (appended or
            paged in): the channel may have something new to send.
        """
        self._on_ready = on_ready
        self._started = True
        # A store may answer at once: the channel hears of entries only once
        # this has returned to it.
        self._starting = True
        self._track(
            self._store.outbox_count(self.alias).addCallbacks(self._counted, self._count_failed)
        )
        initial, self._initial = self._initial, ()
        for payload in initial:
            self.append(payload)
        self._load_more()
        self._starting = False

    # what the channel asks

    @property
    def queued(self) -> int:
        """
        Entries not yet acknowledged: stored, or being stored.
        """
        return max(0, self._stored) + self._appending

    def unstored(self) -> int:
        """
        Entries given to :meth:`append` and not stored (or failed) yet.
        """
        return self._appending

    def pending(self) -> list[bytes]:
        """
        :return: nothing: what waits is in the store, where the next
            channel for this bot finds it.
        """
        return []

    def has_work(self) -> bool:
        """
        Whether anything is waiting for the bot: in memory, being stored,
        or perhaps in the store still (until a page comes back short).
        """
        return bool(self._entries) or self._appending > 0 or self._spilled

    def entries_after(self, after_id: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """
        :return: ``(id, payload)`` of the entries in memory with an id above
            ``after_id``, oldest first, at most ``limit`` of them.
        """
        found = []
        for entry in self._entries:
            if entry[0] > after_id:
                found.append(entry)
                if limit is not None and len(found) >= limit:
                    break
        return found

    def append(self, payload: bytes, checkpoint: OutboxCheckpoint | None = None) -> bool:
        """
        Store ``payload`` as the newest entry; once stored it comes into
        memory (if there is room) and the channel hears of it.

        :return: False: it is not sendable before it is stored.
        """
        if not isinstance(payload, bytes):
            # a str here would be re-encoded and no longer byte-identical
            raise TypeError(f"a dispatch must be bytes, not {type(payload).__name__}")
        self._appending += 1
        d = self._writer.append(self.alias, payload, checkpoint)
        d.addCallbacks(self._appended, self._append_failed, callbackArgs=(payload,))
        self._track(d)
        return False

    def take(self, up_to: int) -> list[bytes]:
        """
        The bot has every entry up to id ``up_to``: forget them.

        :return: the payloads of the entries in memory that this took,
            oldest first.
        """
        taken: list[bytes] = []
        entries = self._entries
        while entries and entries[0][0] <= up_to:
            taken.append(entries.popleft()[1])
        if up_to > self.gone_up_to:
            self.gone_up_to = up_to
            d = self._writer.ack(self.alias, up_to)
            d.addCallbacks(self._removed, self._ack_failed)
            self._track(d)
        self._load_more()
        return taken

    def stop(self) -> Deferred[None]:
        """
        Stop paging and timers.  Appends still work (they are durable), but
        the channel is no longer told of them.

        :return: fires once every append and ack made so far is written.
        """
        self._stopped = True
        self._load_retry.cancel()
        self._age_check.cancel()
        if not self._in_flight:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    # keeping track of store calls, for stop()

    def _track(self, d: Deferred[Any]) -> None:
        self._in_flight += 1

        def done(result: object) -> object:
            self._in_flight -= 1
            if not self._in_flight:
                waiters, self._waiters = self._waiters, []
                for waiter in waiters:
                    waiter.callback(None)
            return result

        d.addBoth(done)
        # whatever failed was logged by the callbacks added before
        d.addErrback(lambda _: None)

    # store results

    def _counted(self, count: int) -> None:
        # Added: appends made before the count arrived were counted already.
        self._stored += count
        self._after_store_change()

    def _count_failed(self, failure: Failure) -> None:
        self.log.failure("{alias}: could not count the outbox", failure, alias=self.alias)

    def _appended(self, entry_id: int | None, payload: bytes) -> None:
        self._appending -= 1
        if entry_id is None:
            # the bot was deleted meanwhile
            self.dropped += 1
            return
        self._stored += 1
        if entry_id > self._loaded_up_to:
            if not self._spilled and len(self._entries) < self._window:
                self._entries.append((entry_id, payload))
                self._loaded_up_to = entry_id
                self._ready()
            else:
                self._spilled = True
                self._skipped_up_to = max(self._skipped_up_to, entry_id)
                self._load_more()
        self._after_store_change()

    def _append_failed(self, failure: Failure) -> None:
        # the writer logged it
        self._appending -= 1
        self.dropped += 1

    def _removed(self, count: int) -> None:
        self._stored -= count

    def _ack_failed(self, failure: Failure) -> None:
        # The entries stay in the store: a restart redelivers them, which
        # at-least-once allows.
        pass

    def _ready(self) -> None:
        if self._starting:
            self._clock.callLater(0, self._ready)
            return
        if not self._stopped:
            try:
                self._on_ready()
            except Exception:
                self.log.failure("{alias}: the channel failed to take entries", alias=self.alias)

    # paging

    def _load_more(self) -> None:
        if self._loading or not self._spilled or self._stopped or not self._started:
            return
        room = self._window - len(self._entries)
        if room < (self._window + 1) // 2:
            # more than half full: wait until acks make room
            return
        self._loading = True
        covered = self._skipped_up_to
        d = self._store.outbox_load(self.alias, self._loaded_up_to, room)
        d.addCallbacks(self._loaded, self._load_failed, callbackArgs=(room, covered))
        self._track(d)

    def _loaded(self, entries: list[OutboxEntry], room: int, covered: int) -> None:
        self._loading = False
        added = False
        for entry in entries:
            if entry.id > self._loaded_up_to:
                self._entries.append((entry.id, entry.payload))
                self._loaded_up_to = entry.id
                added = True
        # A short page has everything that was stored when it was asked
        # for; an entry appended meanwhile may be missing, so page again.
        if len(entries) < room and self._skipped_up_to <= covered:
            self._spilled = False
        if added:
            self._ready()
        self._load_more()

    def _load_failed(self, failure: Failure) -> None:
        self._loading = False
        self.log.failure("{alias}: could not load from the outbox", failure, alias=self.alias)
        if not self._stopped:
            self._load_retry.start(self._load_retry_after)

    # limits

    def _after_store_change(self) -> None:
        if self._stored > self._limit:
            self._trim(None)
        if self._max_age is not None and self._stored > 0 and not self._age_check.active:
            self._age_check.start(_age_interval(self._max_age))

    def _check_age(self) -> None:
        if self._max_age is None or self._stopped:
            return
        self._trim(self._clock.seconds() - self._max_age)
        if self._stored > 0:
            self._age_check.start(_age_interval(self._max_age))

    def _trim(self, created_before: float | None) -> None:
        if self._trimming:
            self._trim_again = True
            return
        self._trimming = True
        d = self._store.outbox_trim(self.alias, self._limit, created_before)
        d.addCallbacks(self._trimmed, self._trim_failed)
        self._track(d)

    def _trimmed(self, trimmed: Trimmed) -> None:
        self._trimming = False
        if trimmed.dropped:
            self.dropped += trimmed.dropped
            self._stored -= trimmed.dropped
            if not self._overflowing:
                self._overflowing = True
                self.log.warn(
                    "{alias}'s bot has not taken its dispatches: dropping the oldest"
                    " ({dropped} so far)",
                    alias=self.alias,
                    dropped=self.dropped,
                )
        else:
            self._overflowing = False
        if trimmed.up_to > self.gone_up_to:
            self.gone_up_to = trimmed.up_to
            entries = self._entries
            while entries and entries[0][0] <= trimmed.up_to:
                entries.popleft()
            self._loaded_up_to = max(self._loaded_up_to, trimmed.up_to)
            self._load_more()
        if self._trim_again or self._stored > self._limit:
            self._trim_again = False
            self._trim(None)

    def _trim_failed(self, failure: Failure) -> None:
        self._trimming = False
        self.log.failure("{alias}: could not trim the outbox", failure, alias=self.alias)


def _age_interval(max_age: float) -> float:
    # Often enough that nothing lives much past the limit, rarely enough to
    # cost nothing.
    return min(60.0, max(0.5, max_age / 4))
