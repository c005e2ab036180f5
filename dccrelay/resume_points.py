"""
Where each shard can safely RESUME from, given what the bot has not had yet.

The gateway seq a shard has seen runs ahead of what reached the bot: matched
dispatches may still wait in an in-memory delivery queue (the bot is asleep
or unreachable).  Saving the latest seq would lose them if the relay died;
saving the seq just before the oldest dispatch still waiting lets Discord
replay it (within its resume window), at the price of replaying some that
were delivered: at least once, never lost.
"""

from __future__ import annotations

from collections import deque
from typing import Deque


class ResumePoints:
    """
    The (shard, seq) of every matched dispatch handed to the delivery
    channel and not known to have left it, oldest first.
    """

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        # Made when first needed and dropped when empty: most bots have
        # nothing waiting, and an empty deque costs 600 bytes.
        self._waiting: Deque[tuple[int, int]] | None = None

    def handed_over(self, shard_id: int, seq: int) -> None:
        """
        A matched dispatch went into the channel's queue.
        """
        if self._waiting is None:
            self._waiting = deque()
        self._waiting.append((shard_id, seq))

    def settle(self, still_queued: int) -> None:
        """
        The channel holds ``still_queued`` dispatches: the newest ones, since
        it delivers (or drops) from the front.  Forget the older ones.
        """
        waiting = self._waiting
        if waiting is None:
            return
        while len(waiting) > still_queued:
            waiting.popleft()
        if not waiting:
            self._waiting = None

    def resume_seq(self, shard_id: int, latest: int | None) -> int | None:
        """
        The seq to RESUME ``shard_id`` from: just before its oldest dispatch
        still waiting, or ``latest`` if none is.
        """
        for waiting_shard, seq in self._waiting or ():
            if waiting_shard == shard_id:
                return seq - 1
        return latest

    def __len__(self) -> int:
        """
        How many dispatches are still waiting.
        """
        return len(self._waiting) if self._waiting is not None else 0

    def clear(self) -> None:
        """
        The sessions are gone: nothing can be replayed any more.
        """
        self._waiting = None
