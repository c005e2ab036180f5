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

An append the store refuses (a lock, a database restarting) is tried
again, in order, after a growing but bounded delay, for as long as the node
runs: until it is stored the bot's relay saves no resume point past it, so
a node killed meanwhile RESUMEs from before it and Discord replays it.  Only
a node shutting down gives up; from then on it stores no later dispatch
either, so the stored resume point stays before the first one not stored.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable

from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from dccrelay.delivery.config import DEFAULTS
from dccrelay.delivery.feed import IFeed
from dccrelay.delivery.timers import Deadline, RetryTimer
from dccrelay.store import IRelayStore, OutboxCheckpoint, OutboxEntry, Trimmed

#: seconds before the next try of an append the store refused, given the
#: consecutive failures (from 1): 0.1, 0.2, 0.4... quick for a lock that
#: passes, at most 5 s for a database that restarts.  No jitter: one writer
#: per node makes these calls, so there is no herd to spread.
APPEND_RETRY = backoffPolicy(initialDelay=0.05, maxDelay=5.0, factor=2.0, jitter=lambda: 0.0)


class OutboxNotStored(Exception):
    """
    The node stopped before the store took these dispatches: they were not
    stored, and Discord may replay them after a restart.
    """


class OutboxWriter:
    """
    Batches every bot's outbox writes into few store calls.

    At most one append call and one ack call are in flight at a time; what
    comes meanwhile waits for the next, which starts as soon as the previous
    ones finish (or on the next reactor turn when idle).

    Appends the store refuses are retried (see the module's description);
    meanwhile later ones wait behind them, so the store never holds a
    dispatch (or a resume point) newer than one it does not hold.

    :param store: where the outbox lives.
    :param clock: for scheduling, and ``created_at`` (its ``seconds()``).
    :param retry_policy: seconds before the next try of refused appends,
        given the consecutive failures (from 1).
    """

    log = Logger()

    def __init__(
        self,
        store: IRelayStore,
        clock: IReactorTime,
        retry_policy: Callable[[int], float] = APPEND_RETRY,
    ) -> None:
        self._store = store
        self._clock = clock
        # (alias, payload, lease epoch, waiter)
        self._appends: list[tuple[str, bytes, int | None, Deferred[int | None]]] = []
        self._checkpoints: dict[tuple[str, int, int | None], OutboxCheckpoint] = {}
        self._acks: dict[str, tuple[int, list[Deferred[int]]]] = {}
        self._batches: dict[str, tuple[int, int, list[Deferred[None]]]] = {}
        self._scheduled = False
        self._busy = False
        self._idle_waiters: list[Deferred[None]] = []
        # Appends wait for this before the next try, after a refusal.
        self._append_retry = RetryTimer(clock, retry_policy, self._schedule)
        self._stopping = False
        # Set once an append was given up: no later one may be stored.
        self._gave_up = False
        #: store calls made, for the benchmark and tests
        self.calls = 0
        #: appends that failed and were tried again, for status and tests
        self.append_retries = 0

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
        if self._gave_up:
            d.errback(OutboxNotStored("the node stopped before the store took this dispatch"))
            return d
        # Stored only under the lease the checkpoint names (in a cluster).
        fence = checkpoint.lease_epoch if checkpoint is not None else None
        self._appends.append((alias, payload, fence, d))
        if checkpoint is not None:
            self._merge_checkpoint(checkpoint)
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

    def record_batch(self, alias: str, first: int, last: int) -> Deferred[None]:
        """
        Record that ``alias``'s entries ``first`` to ``last`` (ids) are
        about to be sent as one batch (written with the acks: one call).

        :return: fires once recorded; fails if the store did.
        """
        d: Deferred[None] = Deferred()
        earlier = self._batches.get(alias)
        waiters = earlier[2] if earlier is not None else []
        waiters.append(d)
        self._batches[alias] = (first, last, waiters)
        self._schedule()
        return d

    def stop(self) -> None:
        """
        The node is shutting down: appends waiting for their next try get
        one more, now; an append the store refuses from now on is given up
        (its Deferred fails with :class:`OutboxNotStored`), and so is every
        later one.  What the store takes is stored as before.
        """
        self._stopping = True
        if self._append_retry.active:
            self._append_retry.cancel()
            self._schedule()

    def idle(self) -> Deferred[None]:
        """
        :return: fires once everything given so far is written (or failed).
        """
        if not self._busy and not self._scheduled and not self._append_retry.active:
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
        calls: list[Deferred[object]] = []
        if not self._append_retry.active:
            appends, self._appends = self._appends, []
            checkpoints, self._checkpoints = list(self._checkpoints.values()), {}
            if appends or checkpoints:
                calls.append(self._write_appends(appends, checkpoints))
        acks, self._acks = self._acks, {}
        batches, self._batches = self._batches, {}
        if acks or batches:
            calls.append(self._write_acks(acks, batches))
        if not calls:
            if not self._append_retry.active:
                self._went_idle()
            return
        self._busy = True
        DeferredList(calls, consumeErrors=True).addCallback(self._written)

    def _write_appends(
        self,
        appends: list[tuple[str, bytes, int | None, Deferred[int | None]]],
        checkpoints: list[OutboxCheckpoint],
    ) -> Deferred[object]:
        self.calls += 1
        entries = [(alias, payload) for alias, payload, _, _ in appends]
        fences = [fence for _, _, fence, _ in appends]
        if any(fence is not None for fence in fences):
            d = self._store.outbox_append(entries, self._clock.seconds(), checkpoints, fences)
        else:
            # a node alone: nothing to fence
            d = self._store.outbox_append(entries, self._clock.seconds(), checkpoints)

        def stored(ids: list[int | None]) -> None:
            if self._append_retry.attempt:
                self.log.info(
                    "The outbox took {count} dispatches after {attempts} refused tries",
                    count=len(appends), attempts=self._append_retry.attempt,
                )
            self._append_retry.succeeded()
            for (_, _, _, waiter), entry_id in zip(appends, ids):
                waiter.callback(entry_id)

        def failed(failure: Failure) -> None:
            # Back in front, in order, with their resume points: what came
            # meanwhile goes in the same transaction, after them.
            self._appends[:0] = appends
            for checkpoint in checkpoints:
                # one given meanwhile for the same shard is newer
                self._checkpoints.setdefault(_checkpoint_key(checkpoint), checkpoint)
            if self._stopping:
                self.log.failure(
                    "Could not append {count} dispatches to the outbox while stopping;"
                    " Discord may replay them after a restart",
                    failure, count=len(self._appends),
                )
                self._give_up()
                return
            self.append_retries += 1
            delay = self._append_retry.failed()
            log = self.log.failure if self._append_retry.attempt == 1 else self.log.warn
            log(
                "Could not append {count} dispatches to the outbox ({problem});"
                " trying again in {delay:.1f} s (try {attempt})",
                failure=failure, count=len(self._appends),
                problem=failure.getErrorMessage(), delay=delay,
                attempt=self._append_retry.attempt + 1,
            )

        d.addCallbacks(stored, failed)
        return d

    def _merge_checkpoint(self, checkpoint: OutboxCheckpoint) -> None:
        key = _checkpoint_key(checkpoint)
        earlier = self._checkpoints.get(key)
        if earlier is None or earlier.seq < checkpoint.seq or (
            earlier.session_id != checkpoint.session_id
        ):
            self._checkpoints[key] = checkpoint

    def _give_up(self) -> None:
        self._gave_up = True
        appends, self._appends = self._appends, []
        self._checkpoints = {}
        problem = OutboxNotStored("the node stopped before the store took this dispatch")
        for _, _, _, waiter in appends:
            waiter.errback(problem)

    def _write_acks(
        self,
        acks: dict[str, tuple[int, list[Deferred[int]]]],
        batches: dict[str, tuple[int, int, list[Deferred[None]]]],
    ) -> Deferred[object]:
        self.calls += 1
        d = self._store.outbox_ack(
            {alias: up_to for alias, (up_to, _) in acks.items()},
            {alias: (first, last) for alias, (first, last, _) in batches.items()},
        )

        def removed(counts: dict[str, int]) -> None:
            for alias, (_, waiters) in acks.items():
                for waiter in waiters[:-1]:
                    waiter.callback(0)
                waiters[-1].callback(counts.get(alias, 0))
            for _, _, recorded in batches.values():
                for done in recorded:
                    done.callback(None)

        def failed(failure: Failure) -> None:
            self.log.failure("Could not remove acknowledged dispatches from the outbox", failure)
            for _, waiters in acks.values():
                for waiter in waiters:
                    waiter.errback(failure)
            for _, _, recorded in batches.values():
                for done in recorded:
                    done.errback(failure)

        d.addCallbacks(removed, failed)
        return d

    def _written(self, _: object) -> None:
        self._busy = False
        retrying = self._append_retry.active
        if self._acks or self._batches or ((self._appends or self._checkpoints) and not retrying):
            self._scheduled = True
            self._clock.callLater(0, self._flush)
        elif not retrying:
            self._went_idle()

    def _went_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)


class OutboxWriterService(Service):
    """
    Stops the node's :class:`OutboxWriter` retrying when the node stops.
    """

    def __init__(self, writer: OutboxWriter) -> None:
        self.writer = writer

    def stopService(self) -> None:
        super().stopService()
        self.writer.stop()


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
    :param on_change: called when a store's answer changed what the channel
        shows of the outbox (:attr:`queued`, :attr:`dropped`,
        :meth:`has_work`); changes made by a call of the channel's are the
        channel's to report.
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
        on_change: Callable[[], object] = lambda: None,
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
        self._on_change = on_change
        # In memory, oldest first: the oldest unacknowledged entries.
        self._entries: deque[tuple[int, bytes]] = deque()
        # Batches sent before, by first id: their last id (as stored).
        self._batch_ends: dict[int, int] = {}
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
        # Appends given up as the node stopped: never stored, so the resume
        # point must stay before them.
        self._not_stored = 0
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
        Entries given to :meth:`append` and not stored yet, or never to be
        (the node stopped first: :class:`OutboxNotStored`).
        """
        return self._appending + self._not_stored

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

    def batch_end(self, first: int) -> int | None:
        """
        :return: the last id of the batch recorded as sent from entry
            ``first`` on, or None if none was.
        """
        return self._batch_ends.get(first)

    def record_batch(self, first: int, last: int) -> Deferred[None]:
        """
        Store that entries ``first`` to ``last`` are about to be sent as one
        batch, so that it is sent again whole, even after a restart.

        :return: fires once stored.
        """
        self._batch_ends[first] = last
        # Not tracked for stop(): the channel handles its failure, and a
        # record that comes too late only costs a new webhook-id.
        return self._writer.record_batch(self.alias, first, last)

    def take(self, up_to: int) -> list[bytes]:
        """
        The bot has every entry up to id ``up_to``: forget them.

        :return: the payloads of the entries in memory that this took,
            oldest first.
        """
        taken: list[bytes] = []
        entries = self._entries
        while entries and entries[0][0] <= up_to:
            entry_id, payload = entries.popleft()
            taken.append(payload)
            self._batch_ends.pop(entry_id, None)
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
        self._on_change()
        self._after_store_change()

    def _count_failed(self, failure: Failure) -> None:
        self.log.failure("{alias}: could not count the outbox", failure, alias=self.alias)

    def _appended(self, entry_id: int | None, payload: bytes) -> None:
        self._appending -= 1
        self._on_change()
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
        # The writer logged it; Discord may replay it, as the resume point
        # stays before it (unstored() keeps counting it).
        self._appending -= 1
        self._not_stored += 1
        self.dropped += 1
        self._on_change()

    def _removed(self, count: int) -> None:
        self._stored -= count
        self._on_change()

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
        # has_work() may change (what the store holds is now known)
        self._on_change()
        added = False
        for entry in entries:
            if entry.id > self._loaded_up_to:
                self._entries.append((entry.id, entry.payload))
                self._loaded_up_to = entry.id
                if entry.batch_last is not None:
                    self._batch_ends[entry.id] = entry.batch_last
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
        self._on_change()
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
                self._batch_ends.pop(entries.popleft()[0], None)
            self._loaded_up_to = max(self._loaded_up_to, trimmed.up_to)
            self._load_more()
        if self._trim_again or self._stored > self._limit:
            self._trim_again = False
            self._trim(None)

    def _trim_failed(self, failure: Failure) -> None:
        self._trimming = False
        self.log.failure("{alias}: could not trim the outbox", failure, alias=self.alias)


def _checkpoint_key(checkpoint: OutboxCheckpoint) -> tuple[str, int, int | None]:
    # Per lease too: a relay stopped on this node and the one running the bot
    # again under a new lease may both have appends waiting.
    return (checkpoint.alias, checkpoint.shard_id, checkpoint.lease_epoch)


def _age_interval(max_age: float) -> float:
    # Often enough that nothing lives much past the limit, rarely enough to
    # cost nothing.
    return min(60.0, max(0.5, max_age / 4))
