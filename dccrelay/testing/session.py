"""
A simulated gateway session: the sequence, the replay buffer RESUME draws
from, and how long the session outlives its connection.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from dccrelay.testing import codes

if TYPE_CHECKING:
    from dccrelay.testing.connection import SimulatedConnection
    from dccrelay.testing.simulator import SimulatedBot


class SimulatedSession:
    """
    One session started by an accepted IDENTIFY.

    :ivar session_id: the id given in READY.
    :ivar shard_id: the shard this session serves.
    :ivar shard_count: the shard count from IDENTIFY (1 without ``shard``).
    :ivar intents: the intents from IDENTIFY.
    :ivar seq: the last sequence number used.
    :ivar connection: the connection currently attached, if any.
    :ivar resumable: False once the session was invalidated or expired.
    :ivar end_reason: why it stopped being resumable, e.g. ``"expired"``.
    """

    def __init__(
        self,
        *,
        bot: SimulatedBot,
        session_id: str,
        shard_id: int,
        shard_count: int,
        intents: int,
        clock: IReactorTime,
        timeout: float,
        replay_limit: int | None,
        on_expired: Callable[[SimulatedSession], None],
    ) -> None:
        self.bot = bot
        self.session_id = session_id
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.intents = intents
        self.seq = 0
        self.connection: SimulatedConnection | None = None
        self.resumable = True
        self.end_reason: str | None = None
        self._clock = clock
        self._timeout = timeout
        self._buffer: deque[tuple[int, bytes]] = deque(maxlen=replay_limit)
        self._evicted_through = 0
        self._on_expired = on_expired
        self._expiry: IDelayedCall | None = None

    def next_dispatch(self, t: str, d: Any, *, buffered: bool = True) -> bytes:
        """
        Number a dispatch with the next sequence and keep it for replay.

        :param buffered: False for RESUMED, which takes a sequence number but
            is never replayed.
        :return: the payload bytes.
        """
        self.seq += 1
        frame = codes.payload(codes.DISPATCH, d, s=self.seq, t=t)
        if buffered:
            self.keep(self.seq, frame)
        return frame

    def keep(self, seq: int, frame: bytes) -> None:
        """
        Keep dispatch ``seq`` (already numbered, e.g. by a load generator
        that encodes its own frames) for RESUME to replay.
        """
        if self._buffer.maxlen is not None and len(self._buffer) == self._buffer.maxlen:
            self._evicted_through = self._buffer[0][0]
        self._buffer.append((seq, frame))

    def replay_after(self, seq: int) -> list[bytes] | None:
        """
        The dispatches after ``seq``, in order.

        :return: None when some of them have already left the replay buffer.
        """
        if seq < self._evicted_through:
            return None
        return [frame for s, frame in self._buffer if s > seq]

    def attach(self, connection: SimulatedConnection) -> None:
        """Bind a live connection; a pending expiry no longer applies."""
        self._cancel_expiry()
        self.connection = connection

    def detach(self, connection: SimulatedConnection) -> None:
        """
        Forget ``connection`` if it is the attached one, and start the clock
        after which the session can no longer be resumed.
        """
        if self.connection is not connection:
            return
        self.connection = None
        if self.resumable and self._expiry is None:
            self._expiry = self._clock.callLater(self._timeout, self._expire)

    def invalidate(self, reason: str) -> None:
        """End the session: RESUME will be refused from now on."""
        self._cancel_expiry()
        if self.resumable:
            self.resumable = False
            self.end_reason = reason

    def stop(self) -> None:
        """Cancel timers (the simulator is shutting down)."""
        self._cancel_expiry()

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for the control API."""
        return {
            "session_id": self.session_id,
            "shard": [self.shard_id, self.shard_count],
            "seq": self.seq,
            "buffered": len(self._buffer),
            "connected": self.connection is not None,
            "resumable": self.resumable,
            "end_reason": self.end_reason,
        }

    def _expire(self) -> None:
        self._expiry = None
        if self.resumable and self.connection is None:
            self.invalidate("expired")
            self._on_expired(self)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            if self._expiry.active():
                self._expiry.cancel()
            self._expiry = None
