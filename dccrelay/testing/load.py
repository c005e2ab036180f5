"""
A load generator for benchmarks: realistic MESSAGE_CREATE traffic written to
the simulator's ready gateway connections at a steady rate, from frames
encoded before the clock starts.

Each dispatch's JSON is encoded once, up front, with a placeholder where the
message's ``nonce`` goes; sending one only splices in the session's next
sequence number and the wall-clock time in nanoseconds (the nonce), so that
a receiver on the same machine can tell how long the frame took to reach it.
Transport compression and websocket framing still happen per frame, on the
connection, as Discord does them.

The messages (:func:`chatter`) are guild chatter and DMs, mentions of the
bot and of others, bot authors and messages starting with the bot's prefix
word, in proportions that make about 14% of them match the tutorial's sample
bot (SEED.md, step 8, with :data:`BOT_USER_ID`).
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from dccrelay.testing.objects import message, user

if TYPE_CHECKING:
    from dccrelay.testing.connection import SimulatedConnection
    from dccrelay.testing.simulator import DiscordSimulator

#: The user id :func:`chatter` mentions as "the bot".
BOT_USER_ID = "111111111111111111"

_WORDS = (
    "bring buns plates hamburgers hot dogs drinks who is coming at noon tomorrow"
    " please the park grill charcoal ice cream lunch anyone free later"
).split()

_NONCE = "dccrelay-load-nonce"
_HEAD = b'{"op":0,"t":"MESSAGE_CREATE","s":'


def chatter(n: int, seed: int = 9535) -> list[dict[str, Any]]:
    """
    ``n`` MESSAGE_CREATE ``d`` objects, as Discord would send them.
    """
    rng = _random.Random(seed)
    people = [user(str(200000000000000000 + i), f"person{i}") for i in range(40)]
    bots = [user(str(300000000000000000 + i), f"helper{i}", bot=True) for i in range(3)]
    bot_self = user(BOT_USER_ID, "cookout", bot=True)
    out = []
    for i in range(n):
        roll = rng.random()
        author = rng.choice(people)
        if roll < 0.10:
            author = rng.choice(bots + [bot_self])
        guild_id = None if rng.random() < 0.05 else "1160000000000000001"
        words = rng.choices(_WORDS, k=rng.randint(1, 30))
        prefix = rng.random()
        if prefix < 0.05:
            words.insert(0, "cookout")
        elif prefix < 0.07:
            words.insert(0, rng.choice(["Cookout", "cookouts", "cookout's"]))
        mentioned = rng.sample(people, k=rng.choice([0, 0, 0, 0, 1, 1, 2, 3]))
        if rng.random() < 0.05:
            mentioned.append(bot_self)
            words.insert(rng.randrange(len(words) + 1), f"<@{BOT_USER_ID}>")
        out.append(
            message(
                message_id=str(1190000000000000000 + i),
                channel_id="1180000000000000001" if guild_id else "1170000000000000001",
                guild_id=guild_id,
                author=author,
                content=" ".join(words),
                now=1_700_000_000.0 + i,
                mentions=mentioned,
            )
        )
    return out


def message_index(i: int, connections: int, messages: int) -> int:
    """
    Which of ``messages`` the ``i``-th dispatch over ``connections``
    carries: each round over the connections starts one message further, so
    that every connection sees the whole mix (with as many connections as
    messages, ``i % messages`` would send each the same message every time,
    and only the connections whose message matches would ever deliver).
    """
    return (i + i // connections) % messages


def encode_bodies(messages: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """
    Each message's JSON, split where its nonce goes: ``(before, after)``.
    """
    marker = orjson.dumps(_NONCE)
    bodies = []
    for d in messages:
        encoded = orjson.dumps({**d, "nonce": _NONCE})
        before, after = encoded.split(marker, 1)
        bodies.append((before, after))
    return bodies


class LoadGenerator:
    """
    Sends ``count`` dispatches at ``rate`` per second, round-robin over the
    connections that were ready when it started, one batch per ``tick``
    seconds.

    :param wall_clock: nanoseconds since the epoch, written as each frame's
        nonce (a receiver compares it with its own clock).
    """

    def __init__(
        self,
        simulator: DiscordSimulator,
        *,
        rate: float,
        count: int,
        bodies: list[tuple[bytes, bytes]],
        tick: float = 0.001,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if rate <= 0 or count < 0 or not bodies:
            raise ValueError("rate must be positive, count not negative, bodies not empty")
        self._sim = simulator
        self._clock = simulator.clock
        self.rate = rate
        self.count = count
        self._bodies = bodies
        self._wall_clock = wall_clock
        self._targets: list[SimulatedConnection] = []
        self._loop = LoopingCall(self._tick)
        self._loop.clock = simulator.clock
        self._tick_seconds = tick
        self.sent = 0
        self.skipped = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.done: Deferred[None] = Deferred()

    def start(self) -> int:
        """
        Start sending; fires :attr:`done` once all were sent.

        :return: how many connections take part.
        :raise LookupError: when no connection is ready.
        """
        self._targets = [c for c in self._sim.connections if c.ready]
        if not self._targets:
            raise LookupError("no gateway connection is ready to receive dispatches")
        self.started_at = self._clock.seconds()
        self._loop.start(self._tick_seconds, now=True)
        return len(self._targets)

    def stop(self) -> None:
        """Stop early."""
        if self._loop.running:
            self._loop.stop()
        self._finish()

    def status(self) -> dict[str, Any]:
        """Progress, for ``GET /_sim/load``."""
        end = self.finished_at if self.finished_at is not None else self._clock.seconds()
        return {
            "rate": self.rate,
            "count": self.count,
            "sent": self.sent,
            "skipped": self.skipped,
            "connections": len(self._targets),
            "elapsed": end - self.started_at if self.started_at is not None else 0.0,
            "done": self.finished_at is not None,
        }

    def _tick(self) -> None:
        assert self.started_at is not None
        due = min(self.count, int(self.rate * (self._clock.seconds() - self.started_at)) + 1)
        targets, bodies, now_ns = self._targets, self._bodies, self._wall_clock
        n_targets, n_bodies = len(targets), len(bodies)
        for i in range(self.sent, due):
            connection = targets[i % n_targets]
            session = connection.session
            if session is None:
                self.skipped += 1
                continue
            seq = session.seq + 1
            session.seq = seq
            before, after = bodies[message_index(i, n_targets, n_bodies)]
            frame = b"".join(
                (_HEAD, str(seq).encode(), b',"d":', before, b'"%d"' % now_ns(), after, b"}")
            )
            session.keep(seq, frame)
            connection.send_dispatch(frame)
        self.sent = due
        if due >= self.count:
            self.stop()

    def _finish(self) -> None:
        if self.finished_at is None:
            self.finished_at = self._clock.seconds()
            self.done.callback(None)
