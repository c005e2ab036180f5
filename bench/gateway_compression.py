"""
``python -m bench.gateway_compression``: what Discord's ``zlib-stream`` and
``zstd-stream`` transport compressions cost the relay per dispatch and per
connection, and what they save on the wire, against plain JSON text.

It feeds realistic MESSAGE_CREATE payloads (the simulator's) through the
relay's own receive path (:class:`dccrelay.gateway.connection.GatewayProtocol`
then ``orjson.loads``, as the shard does), compressed by one stream per
connection as Discord does (zstd: a flushed block per payload at the
simulator's level, 3, whose window is 2 MiB), and prints medians over
repeated runs.  The memory of one decompression context is measured after
a given amount of traffic: zstd's grows with what passed, up to its window.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
import zlib
from typing import Any

import orjson
import zstandard

from dccrelay.gateway.connection import GatewayProtocol

WORDS = "cookout bring buns plates hamburgers hot dogs drinks who is coming at noon tomorrow please".split()


class ParsingListener:
    """Parses each frame's payload, as the shard does, and counts them."""

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


def frames_for(plain: list[bytes], kind: str = "zlib-stream") -> list[bytes]:
    """The binary messages of one connection carrying ``plain``."""
    if kind == "zstd-stream":
        zstd = zstandard.ZstdCompressor(level=3).compressobj()
        block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        return [zstd.compress(p) + zstd.flush(block) for p in plain]
    compressor = zlib.compressobj()
    return [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in plain]


def _context(kind: str) -> Any:
    if kind == "zstd-stream":
        return zstandard.ZstdDecompressor().decompressobj()
    return zlib.decompressobj()


def receive(frames: list[bytes], kind: str | None) -> float:
    """
    Seconds of CPU to take ``frames`` through the receive path.
    """
    protocol = GatewayProtocol()
    sink = ParsingListener()
    protocol.listener = sink
    if kind == "zlib-stream":
        protocol.inflater = _context(kind)
    elif kind == "zstd-stream":
        protocol.zstd = _context(kind)
    gc.collect()
    start = time.process_time()
    for frame in frames:
        protocol.onMessage(frame, kind is not None)
    elapsed = time.process_time() - start
    assert sink.count == len(frames)
    return elapsed


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_per_context(kind: str, traffic: list[bytes], count: int = 200) -> float:
    """
    Bytes of resident memory one connection's decompression context holds
    once ``traffic`` went through it (the process's RSS growth over
    ``count`` contexts: zstd allocates outside Python's allocator).
    """
    frames = frames_for(traffic, kind)
    gc.collect()
    before = _rss()
    contexts: list[Any] = []
    for _ in range(count):
        context = _context(kind)
        for frame in frames:
            context.decompress(frame)
        contexts.append(context)
    return (_rss() - before) / count


def compare(n: int = 20000, repeats: int = 7) -> list[dict[str, Any]]:
    """Per kind: receive CPU per dispatch, bytes on the wire, memory."""
    plain = payloads(n)
    rows = []
    for kind in (None, "zlib-stream", "zstd-stream"):
        frames = plain if kind is None else frames_for(plain, kind)
        times = [receive(frames, kind) for _ in range(repeats)]
        row: dict[str, Any] = {
            "kind": kind or "plain JSON",
            "cpu_us": statistics.median(times) / n * 1e6,
            "bytes": sum(map(len, frames)) / n,
        }
        if kind is not None:
            row["mem_ready"] = memory_per_context(kind, plain[:1])
            # ~1 MiB and ~5 MiB of JSON: a busy connection's first minutes
            row["mem_1mb"] = memory_per_context(kind, plain[:1500], count=50)
            row["mem_5mb"] = memory_per_context(kind, plain[:7200], count=20)
        rows.append(row)
    return rows


def main() -> None:
    n, repeats = 20000, 7
    rows = compare(n, repeats)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"{n} MESSAGE_CREATE payloads, median of {repeats} runs, receive path = frame -> orjson.loads")
    for line in table(rows):
        print(line)


def table(rows: list[dict[str, Any]]) -> list[str]:
    """
    :func:`compare`'s rows as text: a header, then a line per kind.
    """
    lines = [
        f"{'':14}{'CPU µs/disp':>12}{'bytes/disp':>12}{'KiB/conn READY':>16}"
        f"{'after 1 MiB':>13}{'after 5 MiB':>13}"
    ]
    for row in rows:
        memory = "".join(
            f"{row[key] / 1024:>{width}.0f}" if key in row else f"{'-':>{width}}"
            for key, width in (("mem_ready", 16), ("mem_1mb", 13), ("mem_5mb", 13))
        )
        lines.append(f"{row['kind']:14}{row['cpu_us']:>12.2f}{row['bytes']:>12.0f}{memory}")
    return lines


if __name__ == "__main__":
    main()
