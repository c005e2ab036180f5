"""
The backlog: dispatches waiting for a bot, bounded, oldest dropped first.

The prototype emptied its whole queue when the 1,001st item arrived; here a
full backlog drops exactly one item, the oldest, for each new one, and counts
it so that the loss is shown in the bot's status rather than silent.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


class Backlog(Generic[T]):
    """
    A FIFO of at most ``limit`` items.

    :param limit: how many items are kept; at least 1.
    :param initial: items to start with, oldest first (the same overflow
        rule applies to them).
    :param clock: with ``on_taken``, the time of each :meth:`append`...
    :param on_taken: ...gets how long each item waited when
        :meth:`popleft` takes it (dropped items are not reported).
    """

    __slots__ = ("_limit", "_items", "dropped", "_clock", "_on_taken", "_times")

    def __init__(
        self,
        limit: int,
        initial: Iterable[T] = (),
        *,
        clock: Callable[[], float] | None = None,
        on_taken: Callable[[float], object] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the queue limit must be at least 1, got {limit!r}")
        self._limit = limit
        # Made on the first append and dropped when emptied: most bots'
        # backlogs are empty, and an empty deque costs 600 bytes.
        self._items: deque[T] | None = None
        self._clock = clock if on_taken is not None else None
        self._on_taken = on_taken
        # append times, in step with _items (dropped with them by maxlen)
        self._times: deque[float] | None = None
        #: how many items were pushed out by newer ones
        self.dropped = 0
        for item in initial:
            self.append(item)

    def append(self, item: T) -> bool:
        """
        Add ``item`` as the newest.

        :return: True if that pushed the oldest item out.
        """
        items = self._items
        if items is None:
            items = self._items = deque(maxlen=self._limit)
            if self._clock is not None:
                self._times = deque(maxlen=self._limit)
        full = len(items) == self._limit
        if full:
            self.dropped += 1
        # deque(maxlen=...) discards from the left by itself
        items.append(item)
        if self._clock is not None and self._times is not None:
            self._times.append(self._clock())
        return full

    def first(self) -> T:
        """
        :return: the oldest item, leaving it queued.
        :raise IndexError: when empty.
        """
        if self._items is None:
            raise IndexError("the backlog is empty")
        return self._items[0]

    def popleft(self) -> T:
        """
        Remove and return the oldest item.

        :raise IndexError: when empty.
        """
        items = self._items
        if items is None:
            raise IndexError("the backlog is empty")
        item = items.popleft()
        times = self._times
        if times is not None and self._clock is not None and self._on_taken is not None:
            self._on_taken(self._clock() - times.popleft())
        if not items:
            self._items = self._times = None
        return item

    def items(self) -> list[T]:
        """
        :return: a copy of what is queued, oldest first.
        """
        return list(self._items or ())

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0
