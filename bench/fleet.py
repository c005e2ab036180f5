"""
A fleet for one benchmark run: the simulator with ``bots`` bulk bots, the
receiver, and the relay with those bots in its store, started and waited for
until every bot's shard is READY.  Used by every target that needs the real
processes; :meth:`Fleet.close` stops them all.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from bench.processes import (
    REPO,
    BenchTLS,
    Receiver,
    Relay,
    Simulator,
    Workdir,
    populate,
    wait_until,
)


@dataclass
class Fleet:
    workdir: Workdir
    sim: Simulator
    receiver: Receiver
    relay: Relay
    bots: int
    data_dir: str
    relay_args: tuple[str, ...]
    tls: BenchTLS | None = None
    #: the source tree the relay runs (bench.baseline for another commit's)
    code: str = REPO
    #: seconds from starting the relay until every shard was READY
    ready_after: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def wait_all(self, key: str, timeout: float) -> float:
        """Seconds until the simulator counts every bot ``key`` (and ready)."""
        started = self.relay.started

        def done() -> bool:
            summary = self.sim.summary()
            return summary[key] >= self.bots and summary["ready"] >= self.bots

        wait_until(done, timeout, f"{self.bots} bots to be {key}", every=0.2)
        return time.monotonic() - started

    def restart_relay(self) -> None:
        """SIGTERM the relay (sessions stay resumable) and start another."""
        self.relay.stop()
        os.rename(self.relay.log_path, self.relay.log_path + ".1")
        self.relay = Relay(
            self.workdir.path, self.data_dir, self.sim.api_url, *self.relay_args, tls=self.tls,
            max_relays=self.bots, code=self.code,
        )

    def close(self) -> None:
        for process in (self.relay, self.receiver, self.sim):
            process.stop()
        self.workdir.__exit__()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def bring_up(
    bots: int,
    *,
    compression: str = "zlib-stream",
    delivery: str = "ws",
    protocol: int = 1,
    relay_args: tuple[str, ...] = (),
    ready_timeout: float = 300.0,
    keep: bool = False,
    tls: bool = True,
    code: str = REPO,
) -> Fleet:
    """
    Start everything with ``bots`` bots; return once all are READY.

    :param delivery: ``"ws"`` (websocket, v1 or v2 by ``protocol``) or
        ``"webhook"``.
    :param tls: gateway, REST and bot connections over TLS, as in
        production (else plain ``ws``/``http``).
    :param code: the source tree whose relay runs (:mod:`bench.baseline`).
    """
    workdir = Workdir(keep)
    sim = receiver = relay = None
    try:
        bench_tls = BenchTLS(workdir.path) if tls else None
        sim = Simulator(workdir.path, tls=bench_tls)
        receiver = Receiver(workdir.path, tls=bench_tls)
        if bots:
            sim.add_bots(bots)
        data_dir = os.path.join(workdir.path, "data")
        dst = receiver.ws_dst if delivery == "ws" else receiver.hook_dst
        populate(workdir.path, data_dir, bots, dst, protocol)
        args = ("--gateway-compression", compression, *relay_args)
        relay = Relay(
            workdir.path, data_dir, sim.api_url, *args, tls=bench_tls, max_relays=bots, code=code
        )
        relay.wait_listening()
        fleet = Fleet(workdir, sim, receiver, relay, bots, data_dir, args, bench_tls, code=code)
        if bots:
            fleet.ready_after = fleet.wait_all("identifies", ready_timeout)
        return fleet
    except BaseException:
        for process in (relay, receiver, sim):
            if process is not None:
                process.stop()
        workdir.__exit__()
        raise
