"""
The backlog: dispatches waiting for a bot, bounded, oldest dropped first.

The prototype emptied its whole queue when the 1,001st item arrived; here a
full backlog drops exactly one item, the oldest, for each new one, and counts
it so that the loss is shown in the bot's status rather than silent.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Iterable, TypeVar

T = TypeVar("T")


class Backlog(Generic[T]):
    """
    A FIFO of at most ``limit`` items.

    :param limit: how many items are kept; at least 1.
    :param initial: items to start with, oldest first (the same overflow
        rule applies to them).
    """

    __slots__ = ("_items", "dropped")

    def __init__(self, limit: int, initial: Iterable[T] = ()) -> None:
        if limit < 1:
            raise ValueError(f"the queue limit must be at least 1, got {limit!r}")
        self._items: deque[T] = deque(maxlen=limit)
        #: how many items were pushed out by newer ones
        self.dropped = 0
        for item in initial:
            self.append(item)

    def append(self, item: T) -> bool:
        """
        Add ``item`` as the newest.

        :return: True if that pushed the oldest item out.
        """
        full = len(self._items) == self._items.maxlen
        if full:
            self.dropped += 1
        # deque(maxlen=...) discards from the left by itself
        self._items.append(item)
        return full

    def first(self) -> T:
        """
        :return: the oldest item, leaving it queued.
        :raise IndexError: when empty.
        """
        return self._items[0]

    def popleft(self) -> T:
        """
        Remove and return the oldest item.

        :raise IndexError: when empty.
        """
        return self._items.popleft()

    def items(self) -> list[T]:
        """
        :return: a copy of what is queued, oldest first.
        """
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)
