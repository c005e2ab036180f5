"""
``python -m bench.gateway_compression``: what Discord's ``zlib-stream``
transport compression costs the relay per dispatch and per connection, and
what it saves on the wire, against plain JSON text.

It feeds realistic MESSAGE_CREATE payloads (the simulator's) through the
relay's own receive path (:class:`dccrelay.gateway.connection.GatewayProtocol`
then ``orjson.loads``, as the shard does), compressed by one zlib stream per
connection as Discord does, and prints medians over repeated runs.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
import tracemalloc
import zlib
from typing import Any

import orjson

from dccrelay.gateway.connection import GatewayProtocol

WORDS = "cookout bring buns plates hamburgers hot dogs drinks who is coming at noon tomorrow please".split()


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    def frame_received(self, data: bytes) -> None:
        orjson.loads(data)
        self.count += 1

    def connection_closed(self, code: int | None, reason: str) -> None:
        pass


def payloads(n: int) -> list[bytes]:
    """
    ``n`` MESSAGE_CREATE payloads shaped like Discord's (and the simulator's).
    """
    out = []
    for i in range(n):
        content = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(3 + i % 12))
        out.append(
            orjson.dumps(
                {
                    "t": "MESSAGE_CREATE", "s": i + 2, "op": 0,
                    "d": {
                        "type": 0, "tts": False, "timestamp": "2026-11-28T04:19:19.888500+00:00",
                        "pinned": False, "mentions": [], "mention_roles": [],
                        "mention_everyone": False, "id": str(1576090090395009025 + i),
                        "flags": 0, "embeds": [], "edited_timestamp": None,
                        "content": content, "components": [], "channel_id": "3333",
                        "author": {"id": str(4444 + i % 50), "username": f"user{i % 50}",
                                   "global_name": f"User {i % 50}", "discriminator": "0",
                                   "avatar": None, "public_flags": 0, "bot": i % 9 == 0},
                        "attachments": [],
                        "member": {"roles": [], "nick": None, "avatar": None,
                                   "joined_at": "2026-11-28T04:19:19.888500+00:00",
                                   "premium_since": None, "deaf": False, "mute": False,
                                   "flags": 0, "pending": False,
                                   "communication_disabled_until": None},
                        "guild_id": "2222",
                    },
                }
            )
        )
    return out


def frames_for(plain: list[bytes]) -> list[bytes]:
    compressor = zlib.compressobj()
    return [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in plain]


def receive(frames: list[bytes], compressed: bool) -> float:
    """
    Seconds of CPU to take ``frames`` through the receive path.
    """
    protocol = GatewayProtocol()
    sink = _Sink()
    protocol.listener = sink  # type: ignore[assignment]
    if compressed:
        protocol.inflater = zlib.decompressobj()
    gc.collect()
    start = time.process_time()
    for frame in frames:
        protocol.onMessage(frame, compressed)
    elapsed = time.process_time() - start
    assert sink.count == len(frames)
    return elapsed


def memory_per_inflater(count: int = 2000) -> float:
    """
    Bytes one connection's inflate context holds once it has inflated a
    payload (zlib's window and state), by tracemalloc.
    """
    sample = frames_for(payloads(1))[0]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    inflaters: list[Any] = []
    for _ in range(count):
        inflater = zlib.decompressobj()
        inflater.decompress(sample)
        inflaters.append(inflater)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / count


def main() -> None:
    n, repeats = 20000, 7
    plain = payloads(n)
    compressed = frames_for(plain)
    plain_times = [receive(plain, False) for _ in range(repeats)]
    zlib_times = [receive(compressed, True) for _ in range(repeats)]
    plain_us = statistics.median(plain_times) / n * 1e6
    zlib_us = statistics.median(zlib_times) / n * 1e6
    plain_bytes = sum(map(len, plain)) / n
    zlib_bytes = sum(map(len, compressed)) / n
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"{n} MESSAGE_CREATE payloads, median of {repeats} runs, receive path = frame -> orjson.loads")
    print(f"{'':16}{'CPU µs/dispatch':>18}{'bytes/dispatch':>16}")
    print(f"{'plain JSON':16}{plain_us:>18.2f}{plain_bytes:>16.0f}")
    print(f"{'zlib-stream':16}{zlib_us:>18.2f}{zlib_bytes:>16.0f}")
    print(f"ratio zlib/plain: CPU {zlib_us / plain_us:.2f}x, bytes {zlib_bytes / plain_bytes:.2f}x")
    print(f"memory per zlib-stream connection (inflate context): {memory_per_inflater() / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
