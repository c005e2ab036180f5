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

A share of the dispatches (``others``) can be other events, as a bot with
more intents receives (:func:`other_events`: typing, presence updates,
reactions, member updates), spread evenly among the messages
(:func:`layout`); they carry no nonce.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from dccrelay.testing.objects import member, message, timestamp, user

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

#: a frame's parts: its head up to the seq, then its ``d`` before and after
#: the nonce (None: no nonce, ``d`` is all in the middle part)
Body = tuple[bytes, bytes, "bytes | None"]


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


def other_events(n: int, seed: int = 9536) -> list[tuple[str, dict[str, Any]]]:
    """
    ``n`` dispatches other than messages, ``(t, d)``, as Discord sends them
    to a bot with the guild, member, presence, reaction and typing intents.
    """
    rng = _random.Random(seed)
    guild_id, channel_id = "1160000000000000001", "1180000000000000001"
    people = [user(str(200000000000000000 + i), f"person{i}") for i in range(40)]
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        person = rng.choice(people)
        now = 1_700_000_000.0 + i
        kind = i % 4
        if kind == 0:
            out.append(("TYPING_START", {
                "user_id": person["id"], "timestamp": int(now), "channel_id": channel_id,
                "guild_id": guild_id, "member": {**member(timestamp(now)), "user": person},
            }))
        elif kind == 1:
            activities = [{
                "type": 0, "name": rng.choice(["Minecraft", "Factorio", "chess"]),
                "id": f"{i:x}", "created_at": int(now * 1000),
                "timestamps": {"start": int(now * 1000) - 60_000},
            }] if rng.random() < 0.6 else []
            out.append(("PRESENCE_UPDATE", {
                "user": {"id": person["id"]}, "status": rng.choice(["online", "idle", "dnd"]),
                "guild_id": guild_id, "client_status": {"desktop": "online"},
                "activities": activities,
            }))
        elif kind == 2:
            out.append(("MESSAGE_REACTION_ADD", {
                "user_id": person["id"], "type": 0, "message_id": str(1190000000000000000 + i),
                "message_author_id": rng.choice(people)["id"], "channel_id": channel_id,
                "guild_id": guild_id, "burst": False,
                "member": {**member(timestamp(now)), "user": person},
                "emoji": {"id": None, "name": rng.choice(["\U0001f354", "\U0001f525", "+1"])},
            }))
        else:
            out.append(("GUILD_MEMBER_UPDATE", {
                **member(timestamp(now - 86400)), "guild_id": guild_id, "user": person,
                "roles": [str(1150000000000000000 + r) for r in range(rng.randint(0, 3))],
            }))
    return out


def layout(messages: int, others: float) -> list[int | None]:
    """
    The order of the generator's bodies: each entry a message's index in
    :func:`chatter`, or None for the next of :func:`other_events`, so that
    ``others`` (0 <= others < 1) of them are other events, spread evenly.
    """
    if not 0 <= others < 1:
        raise ValueError("others must be at least 0 and less than 1")
    total = max(messages, round(messages / (1 - others)))
    slots: list[int | None] = []
    taken = 0
    for j in range(total):
        if int((j + 1) * (total - messages) / total) > int(j * (total - messages) / total):
            slots.append(None)
        else:
            slots.append(taken)
            taken += 1
    return slots


def message_index(i: int, connections: int, messages: int) -> int:
    """
    Which of ``messages`` the ``i``-th dispatch over ``connections``
    carries: each round over the connections starts one message further, so
    that every connection sees the whole mix (with as many connections as
    messages, ``i % messages`` would send each the same message every time,
    and only the connections whose message matches would ever deliver).
    """
    return (i + i // connections) % messages


def encode_bodies(
    messages: Sequence[dict[str, Any]],
    others: Sequence[tuple[str, dict[str, Any]]] = (),
    slots: Sequence[int | None] | None = None,
) -> list[Body]:
    """
    Each dispatch's parts (:data:`Body`): a message's JSON split where its
    nonce goes, another event's whole; in the order of ``slots``
    (:func:`layout`; by default the messages alone).
    """
    marker = orjson.dumps(_NONCE)
    bodies: list[Body] = []
    taken = 0
    for slot in slots if slots is not None else range(len(messages)):
        if slot is None:
            t, d = others[taken % len(others)]
            taken += 1
            head = b'{"op":0,"t":"' + t.encode() + b'","s":'
            bodies.append((head, orjson.dumps(d), None))
            continue
        encoded = orjson.dumps({**messages[slot], "nonce": _NONCE})
        before, after = encoded.split(marker, 1)
        bodies.append((_HEAD, before, after))
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
        bodies: list[Body],
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
            head, before, after = bodies[message_index(i, n_targets, n_bodies)]
            if after is None:
                frame = b"".join((head, str(seq).encode(), b',"d":', before, b"}"))
            else:
                frame = b"".join(
                    (head, str(seq).encode(), b',"d":', before, b'"%d"' % now_ns(), after, b"}")
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
