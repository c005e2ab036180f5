"""
Resume points written down: every few seconds, the latest gateway seq of
every shard a node runs, so that what Discord replays after the relay was
killed without warning stays short.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from dccrelay.relay.relay import Relay
from dccrelay.store import ISessions, SessionState

#: How often the latest gateway seq of every shard is written down, bounding
#: what Discord replays after a relay is killed without warning.
CHECKPOINT_INTERVAL = 2.0

#: Relays whose resume points are gathered per reactor turn and saved per
#: store call: short turns, short transactions.
CHECKPOINT_BATCH = 250


class Checkpoints:
    """
    Saves the resume points of ``relays()`` that moved since the last
    checkpoint, every :data:`CHECKPOINT_INTERVAL` seconds once started.

    :param breathe: a reactor turn between batches.
    """

    _log = Logger()

    def __init__(
        self,
        store: ISessions,
        clock: IReactorTime,
        relays: Callable[[], Sequence[Relay]],
        breathe: Callable[[], Deferred[None]],
    ) -> None:
        self._store = store
        self._relays = relays
        self._breathe = breathe
        self._loop = LoopingCall(self.save)
        self._loop.clock = clock

    def start(self) -> None:
        """Checkpoint every interval from now on (not at once)."""
        self._loop.start(CHECKPOINT_INTERVAL, now=False)

    def stop(self) -> None:
        """No more checkpoints but those asked for with :meth:`save`."""
        if self._loop.running:
            self._loop.stop()

    @inlineCallbacks
    def save(self) -> Any:
        """
        Save the resume points that moved since the last checkpoint,
        ``CHECKPOINT_BATCH`` relays' in one store call and one reactor turn
        (a call per bot every 2 s stalled the reactor for 200 ms at 1,000
        bots).
        """
        relays = list(self._relays())
        saves = []
        for start in range(0, len(relays), CHECKPOINT_BATCH):
            if start:
                yield self._breathe()
            batch = [
                (relay, point)
                for relay in relays[start : start + CHECKPOINT_BATCH]
                for point in relay.resume_points()
            ]
            if batch:
                d = self._store.save_sessions([(relay.alias, point) for relay, point in batch])
                d.addErrback(self._failed, batch)
                saves.append(d)
        yield DeferredList(saves)

    def _failed(self, failure: Failure, batch: list[tuple[Relay, SessionState]]) -> None:
        self._log.failure("saving {count} resume points failed", failure, count=len(batch))
        for relay, point in batch:
            relay.resume_points_unsaved([point])
