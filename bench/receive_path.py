"""
``python -m bench.receive_path``: the relay's receive path for one gateway
frame in process, from the bytes of a read to the parsed payload: an opened
:class:`dccrelay.gateway.connection.GatewayProtocol` (Autobahn's real
opening handshake over a ``StringTransport``) is given one websocket frame
per ``dataReceived``, as from Discord, carrying realistic MESSAGE_CREATE
payloads (zlib-stream or plain JSON text); its listener parses each with
``orjson.loads`` as the shard does.

It prints the CPU microseconds per frame as JSON.  ``python -m bench``
runs it for the current tree and for the baseline's (``PYTHONPATH``), in
alternating processes, and under ``valgrind --tool=callgrind`` where
present, whose instruction counts do not move with the machine's load:
the count for ``--frames 0`` is subtracted, which leaves the frames alone.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from typing import Any

from bench.gateway_compression import ParsingListener

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(payload: bytes, opcode: int) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x80 | opcode, n]) + payload
    if n < 65536:
        return bytes([0x80 | opcode, 126]) + struct.pack("!H", n) + payload
    return bytes([0x80 | opcode, 127]) + struct.pack("!Q", n) + payload


def _opened(compressed: bool) -> Any:
    from autobahn.twisted.websocket import WebSocketClientFactory
    from twisted.internet.testing import StringTransport

    from dccrelay.gateway.connection import GatewayProtocol

    factory = WebSocketClientFactory("ws://gateway.test/?v=10")
    protocol = GatewayProtocol()
    protocol.factory = factory
    protocol.listener = ParsingListener()
    protocol.opened = None
    if compressed:
        protocol.inflater = zlib.decompressobj()
    transport = StringTransport()
    protocol.makeConnection(transport)
    key = next(line.split(b":", 1)[1].strip() for line in transport.value().split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    protocol.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    return protocol


def frames(n: int, compressed: bool) -> list[bytes]:
    from bench.filters import payloads

    plain = payloads(max(n, 1))[:n]
    if not compressed:
        return [_frame(p, 1) for p in plain]
    compressor = zlib.compressobj(1)
    return [_frame(compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH), 2)
            for p in plain]


#: frames built whatever is measured, so that the 0-frame count subtracts
#: building them too
BUILT = 1000


def run(n: int, compressed: bool, repeats: int) -> float:
    """Median CPU µs per frame over ``repeats`` passes of ``n`` frames."""
    data = frames(max(n, BUILT), compressed)[:n]
    times = []
    for _ in range(repeats):
        protocol = _opened(compressed)
        gc.collect()
        start = time.process_time()
        for frame in data:
            protocol.dataReceived(frame)
        times.append((time.process_time() - start) / max(n, 1) * 1e6)
        assert protocol.listener.count == n
    return statistics.median(times)


def instructions(code: str, repo: str, n: int, compressed: bool) -> float | None:
    """
    Instructions per frame under callgrind for the tree ``code`` (None
    without valgrind): the ``n``-frame count minus the 0-frame count
    (``n`` at most :data:`BUILT`).
    """
    if shutil.which("valgrind") is None:
        return None
    counts = []
    for frames_run in (0, n):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
                 sys.executable, "-m", "bench.receive_path", "--frames", str(frames_run),
                 "--repeats", "1"] + ([] if compressed else ["--plain"]),
                check=True, capture_output=True, timeout=900, cwd=code,
                env={"PYTHONPATH": code + ":" + repo, "PATH": "/usr/bin:/bin"},
            )
            with open(f"{out}/cg.out") as result:
                totals = [line for line in result if line.startswith("totals:")]
            counts.append(int(totals[-1].split()[1]))
    return (counts[1] - counts[0]) / n


def cpu_in_process(code: str, repo: str, compressed: bool) -> float:
    """
    :func:`run` in a process of its own whose ``dccrelay`` is ``code``'s
    (run from ``code``: ``-m`` puts the working directory first on the path).
    """
    done = subprocess.run(
        [sys.executable, "-m", "bench.receive_path"] + ([] if compressed else ["--plain"]),
        check=True, capture_output=True, text=True, timeout=300, cwd=code,
        env={"PYTHONPATH": code + ":" + repo, "PATH": "/usr/bin:/bin"},
    )
    us: float = json.loads(done.stdout)["us_per_frame"]
    return us


def compare(before: str | None, repo: str, repeats: int = 3) -> list[str]:
    """
    The receive path now and before (``before``: a source tree): CPU per
    frame in alternating processes, and instructions per frame where
    valgrind is installed.  Lines of a table.
    """
    lines = [f"   {'':14}{'before µs':>11}{'now µs':>9}{'now/before':>12}"
             f"{'before instr.':>15}{'now instr.':>12}{'now/before':>12}"]
    codes = {"now": repo} | ({"before": before} if before else {})
    for compressed in (True, False):
        us: dict[str, list[float]] = {label: [] for label in codes}
        for _ in range(repeats):
            for label, code in codes.items():
                us[label].append(cpu_in_process(code, repo, compressed))
        count = {label: instructions(code, repo, 1000, compressed) for label, code in codes.items()}
        now_us, old_us = statistics.median(us["now"]), (
            statistics.median(us["before"]) if "before" in us else None)
        now_i, old_i = count["now"], count.get("before")

        def cell(value: float | None, width: int, spec: str) -> str:
            return f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}"

        lines.append(
            f"   {'zlib-stream' if compressed else 'none':14}{cell(old_us, 11, '.2f')}"
            f"{cell(now_us, 9, '.2f')}{cell(now_us / old_us if old_us else None, 12, '.2f')}"
            f"{cell(old_i, 15, ',.0f')}{cell(now_i, 12, ',.0f')}"
            f"{cell(now_i / old_i if now_i and old_i else None, 12, '.2f')}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.receive_path")
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--plain", action="store_true", help="plain JSON text, no zlib-stream")
    options = parser.parse_args()
    us = run(options.frames, not options.plain, options.repeats)
    print(json.dumps({"us_per_frame": us}))


if __name__ == "__main__":
    main()
