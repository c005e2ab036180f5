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
from dataclasses import replace
from typing import Deque, Iterable, Sequence

from dccrelay.store import SessionState


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


class ResumeBook:
    """
    One bot's resume points and what the store holds of them: which moved
    since they were last saved, so that the checkpoint of thousands of idle
    bots writes nothing.

    :ivar moved: a dispatch came (or a save failed) since the last
        checkpoint; the relay sets it on every dispatch.
    """

    __slots__ = ("points", "_saved", "moved")

    def __init__(self) -> None:
        self.points = ResumePoints()
        # What each shard's stored session says, as far as this relay knows.
        self._saved: dict[int, SessionState] = {}
        self.moved = False

    def saved(self, shard_id: int, state: SessionState | None) -> None:
        """The shard's session was stored as ``state`` (None: forgotten)."""
        if state is None:
            self._saved.pop(shard_id, None)
        else:
            self._saved[shard_id] = state

    def unsaved(self, points: Sequence[SessionState]) -> None:
        """Saving ``points`` failed: offer them again at the next checkpoint."""
        for point in points:
            if self._saved.get(point.shard_id) == point:
                del self._saved[point.shard_id]
        self.moved = True

    def changed(self, sessions: Iterable[SessionState], not_yet_safe: int | None) -> list[SessionState]:
        """
        The resume point of each of ``sessions`` that differs from what was
        saved, now taken as saved.

        :param not_yet_safe: how many of the newest handed-over dispatches
            Discord may have to replay; None when no point may be saved now
            (a durable channel is storing dispatches, each of which raises
            the stored seq in its own transaction: a save now could land
            after one and lower the seq below a stored dispatch, which
            Discord would then replay as a duplicate).
        """
        if not_yet_safe is None:
            return []
        points = self.points
        points.settle(not_yet_safe)
        changed = []
        for session in sessions:
            point = replace(session, seq=points.resume_seq(session.shard_id, session.seq))
            if self._saved.get(session.shard_id) != point:
                self._saved[session.shard_id] = point
                changed.append(point)
        # A point held back before an undelivered dispatch moves once that
        # is delivered, with no new dispatch to say so.
        self.moved = bool(points)
        return changed

    def clear(self) -> None:
        """The sessions are closed: nothing is waiting, nothing is known saved."""
        self.points.clear()
        self._saved.clear()
