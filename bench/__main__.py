"""
``python -m bench``: the benchmark of issue 8, against the real processes.

It starts the project's Discord simulator (``python -m dccrelay.testing
--lean``), the real relay (``twistd --nodaemon --pidfile= dcc ...
--allow-private-dst --discord-api <simulator> --lag-probe``) and a bot
receiver (``python -m bench.receiver``) as separate processes on loopback,
and prints one table per target with medians over ``--repeats`` runs:

1. ``memory``: idle RSS per bot with 100 / 1,000 / 10,000 bots READY, over
   TLS and over plain websockets, and what one bot's parts cost (socket and
   objects, inflate context, TLS connection);
2. ``restart``: SIGTERM and restart with N bots in the store: seconds until
   every shard RESUMEd, longest reactor stall;
3. ``throughput``: relay CPU per dispatch (sample-bot criteria, ~14% match,
   websocket v1), rate reached, generator and receiver CPU;
4. ``latency``: p50/p95/p99/max from gateway frame written to bot receipt at
   2,000 dispatches/s over 1,000 bots;
5. ``durable``: target 3 through the outbox (websocket v2, webhook);
6. ``filters``: p99 of the sample bot's filter (bench/filters.py);
7. ``compression``: zlib-stream against zstd-stream, per connection;
8. ``cpu`` (issue 15, goals 1 and 3): relay CPU per dispatch at 50 bots,
   zlib-stream and none, over TLS and plain, beside the relay before issue
   15 (``--baseline``) in alternating runs;
9. ``cold`` (issue 15, goal 2): first delivery to a sleeping bot at 50 bots,
   and where its time goes, beside the relay before issue 15;
10. ``tail`` (issue 15, goal 6): latency p50/p99/max at 2,000/s over 1,000
    bots and 400/s over 50 bots (``--tail-loads``), beside the relay before
    issue 15;
11. ``mixed`` (issue 15, goal 1 on other traffic): as ``cpu`` (zlib-stream,
    TLS) with ``--others`` of the dispatches other events (typing,
    presences, reactions, member updates) that the sample criteria never
    match, beside the relay before issue 15.

Gateway, REST and bot connections speak TLS, as production does (a
throw-away CA made for the run; ``--plain`` for plain ``ws``/``http``).
``--quick`` runs everything small, in a few minutes.  Every load is bounded
in count and time and every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import (
    baseline,
    cold,
    dispatch_cpu,
    durable,
    filters,
    gateway_compression,
    idle_memory,
    latency,
    lease_round,
    receive_path,
    restart,
    sieve_cost,
    tail_latency,
    throughput,
    tls_connection,
)
from bench.fleet import bring_up
from bench.processes import machine

TARGETS = (
    "memory", "restart", "throughput", "latency", "durable", "filters", "compression", "cpu",
    "cold", "lease", "tail", "mixed",
)


def median(rows: Sequence[dict[str, Any]], key: str) -> float:
    return statistics.median(float(row[key]) for row in rows)


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").split("\n\n")[1]
    )
    parser.add_argument(
        "--targets", default=",".join(TARGETS),
        help=f"comma-separated, of: {', '.join(TARGETS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one or two runs each")
    parser.add_argument("--bots", type=_counts, default=None,
                        help="bot counts for memory and restart (default 100,1000,10000)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--rate", type=float, default=20000.0,
                        help="dispatches/s offered in the throughput runs")
    parser.add_argument("--dispatches", type=int, default=None,
                        help="dispatches per throughput run (default 200000)")
    parser.add_argument("--throughput-bots", type=int, default=100)
    parser.add_argument("--latency-bots", type=int, default=1000)
    parser.add_argument("--latency-rate", type=float, default=2000.0)
    parser.add_argument("--latency-seconds", type=float, default=None)
    parser.add_argument("--tail-loads", type=tail_latency.parse_loads,
                        default=tail_latency.LOADS,
                        help="bots@rate pairs of the tail target (default 1000@2000,50@400)")
    parser.add_argument("--others", type=float, default=0.75,
                        help="share of other events in the mixed target (default 0.75)")
    parser.add_argument("--compression-bots", type=int, default=None)
    parser.add_argument("--plain", action="store_true",
                        help="plain ws/http instead of TLS (wss/https) everywhere")
    parser.add_argument("--breakdown-bots", type=int, default=None,
                        help="bots of the memory breakdown runs (default 1000)")
    parser.add_argument("--keep", action="store_true", help="keep each run's logs and store")
    parser.add_argument("--cpu-bots", type=int, default=50,
                        help="bots of the cpu and cold targets (default 50)")
    parser.add_argument("--cold-rates", type=_counts, default=[500, 5000],
                        help="dispatches/s while bots connect, cold target (default 500,5000)")
    parser.add_argument(
        "--baseline", default=baseline.BEFORE_ISSUE_15,
        help="commit whose relay runs beside the current one, for the figures before"
             f" (default {baseline.BEFORE_ISSUE_15}, before issue 15; 'none' for no baseline)",
    )
    options = parser.parse_args(argv)
    quick = options.quick
    if options.bots is None:
        options.bots = [100, 1000] if quick else [100, 1000, 10000]
    if options.repeats is None:
        options.repeats = 1 if quick else 3
    if options.dispatches is None:
        options.dispatches = 40000 if quick else 200000
    if options.latency_seconds is None:
        options.latency_seconds = 5.0 if quick else 15.0
    if options.compression_bots is None:
        options.compression_bots = 300 if quick else 1000
    if options.breakdown_bots is None:
        options.breakdown_bots = 300 if quick else 1000
    options.targets = [t.strip() for t in options.targets.split(",") if t.strip()]
    unknown = set(options.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}: use {', '.join(TARGETS)}")
    return options


def say(text: str = "") -> None:
    print(text, flush=True)


def progress(text: str) -> None:
    print(f"  ... {text}", file=sys.stderr, flush=True)


def fleet_targets(options: argparse.Namespace) -> None:
    """
    Targets 1 and 2 share their runs: bring N bots up, measure, restart.
    Memory is also measured over the other transport, to compare.
    """
    want_memory = "memory" in options.targets
    want_restart = "restart" in options.targets
    if not (want_memory or want_restart):
        return
    tls = not options.plain
    transports = [tls, not tls] if want_memory else [tls]
    memory: dict[bool, dict[int, list[dict[str, Any]]]] = {t: {} for t in transports}
    zero: dict[bool, float] = {}
    restarts: dict[tuple[int, str], list[dict[str, Any]]] = {}
    before = before_tree(options) if want_restart else None
    for transport in transports:
        if want_memory:
            progress(f"relay with no bot, {_transport(transport)}")
            zero[transport] = statistics.median(
                idle_memory.baseline(tls=transport) for _ in range(options.repeats)
            )
        restart_too = want_restart and transport == tls
        if not (want_memory or restart_too):
            continue
        for bots in options.bots:
            for run in range(options.repeats):
                progress(f"{bots} bots, {_transport(transport)}, run {run + 1}")
                fleet = bring_up(bots, keep=options.keep, tls=transport)
                try:
                    memory[transport].setdefault(bots, []).append(idle_memory.measure(fleet))
                    if restart_too:
                        progress(f"{bots} bots, restart")
                        restarts.setdefault((bots, "now"), []).append(restart.measure(fleet))
                finally:
                    fleet.close()
                if restart_too and before is not None:
                    progress(f"{bots} bots, restart, the relay before")
                    fleet = bring_up(bots, keep=options.keep, tls=transport, code=before)
                    try:
                        restarts.setdefault((bots, "before"), []).append(restart.measure(fleet))
                    finally:
                        fleet.close()
    runs = f"median of {options.repeats} run(s)"
    if want_memory:
        memory_table(memory, zero, runs)
        progress(f"memory breakdown, {options.breakdown_bots} bots")
        parts = idle_memory.breakdown(options.breakdown_bots, options.repeats, options.keep)
        say(f"\n   What one idle bot costs, at {options.breakdown_bots:,} bots ({runs}; the steps"
            " between three fleets: plain without compression, plain with zlib-stream,"
            " TLS with zlib-stream):")
        for label, key in (
            ("socket, protocol and state objects, filter, store", "rest"),
            ("zlib-stream inflate context", "inflate"),
            ("TLS connection (shared context, buffers released when idle)", "tls"),
            ("total over TLS with zlib-stream", "total"),
        ):
            say(f"   {label:64}{parts[key] / 1024:>8.1f} KiB")
        progress("TLS connection, in process")
        say("")
        for line in tls_connection.table(300 if options.quick else 1000):
            say("   " + line)
    if want_restart:
        say(f"\n2. Restart with N bots in the store, {_transport(tls)} ({runs}; target: all"
            " RESUMEd within 60 s, no stall > 100 ms)")
        if before is not None:
            say(f"   before: {baseline.describe(options.baseline)}")
        say("   (stall on CPU: the longest stall's part on the reactor thread's CPU, not"
            " waiting for a core; the relay before did not measure it)")
        say(f"   {'bots':>8}{'relay':>8}{'all RESUMEd after s':>21}{'longest stall ms':>18}"
            f"{'stall on CPU ms':>17}{'longest GC ms':>15}{'re-IDENTIFYs':>14}"
            f"{'frozen':>8}")
        # each size's "before" first
        order = sorted(restarts, key=lambda key: (key[0], key[1] != "before"))
        for bots, label in order:
            rows = restarts[(bots, label)]
            say(f"   {bots:>8,}{label:>8}{median(rows, 'resumed_after'):>21.1f}"
                f"{median(rows, 'worst_lag_ms'):>18.0f}{median(rows, 'worst_on_cpu_ms'):>17.0f}"
                f"{median(rows, 'worst_gc_ms'):>15.0f}"
                f"{median(rows, 'identifies'):>14.0f}"
                f"{'yes' if median(rows, 'frozen') else 'no':>8}")


def _transport(tls: bool) -> str:
    return "TLS" if tls else "plain"


def memory_table(
    memory: dict[bool, dict[int, list[dict[str, Any]]]], zero: dict[bool, float], runs: str
) -> None:
    say(f"\n1. Idle memory, zlib-stream, every bot READY ({runs}; target: <= 50 KB/bot,"
        " 500 MB at 10,000, over TLS)")
    say("   relay with no bot: " + ", ".join(
        f"{_transport(t)} {z / 2**20:.1f} MiB RSS" for t, z in zero.items()))
    say(f"   {'':6}{'bots':>8}{'relay RSS MiB':>15}{'KiB per bot':>13}{'KiB per added bot':>19}"
        f"{'READY after s':>15}")
    for transport, by_bots in memory.items():
        # per added bot: from the row before, so the first bot's one-off
        # costs (modules loaded, pools and caches grown) are left out
        previous = (0, zero[transport])
        for bots, rows in by_bots.items():
            rss = median(rows, "rss")
            added = (rss - previous[1]) / (bots - previous[0]) / 1024
            say(f"   {_transport(transport):6}{bots:>8,}{rss / 2**20:>15.1f}"
                f"{(rss - zero[transport]) / bots / 1024:>13.1f}"
                f"{added:>19.1f}{median(rows, 'ready_after'):>15.1f}")
            previous = (bots, rss)


def load_runs(
    options: argparse.Namespace,
    bots: int,
    run: Callable[[Any], dict[str, Any]],
    what: str,
    **bring: Any,
) -> list[dict[str, Any]]:
    rows = []
    with bring_up(bots, keep=options.keep, tls=not options.plain, **bring) as fleet:
        for n in range(options.repeats):
            progress(f"{what}, run {n + 1}")
            rows.append(run(fleet))
    return rows


def throughput_header() -> str:
    return (f"   {'':16}{'relay µs/disp':>14}{'disp/s reached':>16}{'generator µs':>14}"
            f"{'receiver µs':>13}{'matched':>9}")


def throughput_line(label: str, rows: list[dict[str, Any]]) -> str:
    return (f"   {label:16}{median(rows, 'relay_us'):>14.1f}{median(rows, 'rate'):>16,.0f}"
            f"{median(rows, 'generator_us'):>14.1f}{median(rows, 'receiver_us'):>13.1f}"
            f"{median(rows, 'matched'):>9,.0f}")


def main(argv: Sequence[str] | None = None) -> None:
    options = parse(argv)
    started = time.monotonic()
    say(f"dccrelay benchmark on {machine()}")
    say("relay, simulator and receiver are separate processes on loopback; CPU is per"
        " process, from /proc/<pid>/stat")
    say("gateway, REST and bot connections: " + ("plain ws/http (--plain)" if options.plain
        else "TLS (wss/https, a throw-away CA trusted through SSL_CERT_FILE)"))
    fleet_targets(options)
    runs = f"median of {options.repeats} run(s)"
    n, rate = options.dispatches, options.rate
    v1: list[dict[str, Any]] = []
    if "throughput" in options.targets or "durable" in options.targets:
        v1 = load_runs(options, options.throughput_bots,
                       lambda fleet: throughput.measure(fleet, rate, n), "throughput, v1")
    if "throughput" in options.targets:
        say(f"\n3. Throughput: {n:,} dispatches offered at {rate:,.0f}/s over"
            f" {options.throughput_bots} bots, sample criteria, websocket v1 ({runs};"
            " target: <= 25 µs relay CPU/dispatch, >= 20,000/s)")
        say(throughput_header())
        say(throughput_line("websocket v1", v1))
    if "latency" in options.targets:
        lrate, seconds = options.latency_rate, options.latency_seconds
        rows = load_runs(options, options.latency_bots,
                         lambda fleet: latency.measure(fleet, lrate, seconds), "latency")
        say(f"\n4. Latency at {lrate:,.0f} dispatches/s over {options.latency_bots:,} bots for"
            f" {seconds:g} s, frame written -> bot has it ({runs}; target: p50 < 1 ms,"
            " p99 < 5 ms)")
        say(f"   {'samples':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'relay µs/disp':>15}")
        say(f"   {median(rows, 'samples'):>9,.0f}{median(rows, 'p50_ms'):>9.2f}"
            f"{median(rows, 'p95_ms'):>9.2f}{median(rows, 'p99_ms'):>9.2f}"
            f"{median(rows, 'max_ms'):>9.1f}{median(rows, 'relay_us'):>15.1f}")
        say(f"   besides, {median(rows, 'cold_samples'):,.0f} dispatches waited for the relay to"
            f" open the bot's connection: p50 {median(rows, 'cold_p50_ms'):.2f} ms,"
            f" max {median(rows, 'cold_max_ms'):.1f} ms")
    if "durable" in options.targets:
        results = {}
        for label, bring in durable.MODES.items():
            results[label] = load_runs(
                options, options.throughput_bots,
                lambda fleet: throughput.measure(fleet, rate, n), label, **bring)
        say(f"\n5. Durable delivery: as 3, through the outbox ({runs}; target: >= half of 3's"
            " rate)")
        say(throughput_header() + f"{'vs v1':>8}")
        say(throughput_line("websocket v1", v1) + f"{1:>8.2f}")
        for label, rows in results.items():
            ratio = median(rows, "rate") / median(v1, "rate")
            say(throughput_line(label, rows) + f"{ratio:>8.2f}")
    if "filters" in options.targets:
        progress("filters")
        frames = filters.payloads(2000 if options.quick else 5000)
        import orjson

        parsed = [orjson.loads(f) for f in frames]
        predicate = filters.compile_criteria("mongo", filters.SAMPLE_MONGO)
        p50, p99 = filters.latencies(predicate, parsed, 3 if options.quick else 7)
        matched = sum(map(predicate, parsed)) / len(parsed)
        say(f"\n6. Filter, sample bot's criteria (mongo), {len(parsed):,} realistic MESSAGE_CREATE"
            f" payloads, {matched:.1%} match (target: p99 < 50 µs)")
        say(f"   p50 {p50:.2f} µs, p99 {p99:.2f} µs  (python -m bench.filters for more)")
    if "compression" in options.targets:
        compression_target(options)
    if "cpu" in options.targets:
        cpu_target(options)
    if "cold" in options.targets:
        cold_target(options)
    if "tail" in options.targets:
        tail_target(options)
    if "mixed" in options.targets:
        mixed_target(options)
    if "lease" in options.targets:
        progress("lease round")
        say("\nCluster lease round, status share (issue 15, goal 5: under 20 ms of reactor time"
            " a round at 10,000 bots), in process; before and every bot: the earlier code,"
            " reproduced")
        lease_round.main([
            "--bots", str(2000 if options.quick else 10_000),
            "--repeats", str(max(3, options.repeats)),
        ])
    say(f"\n(total {time.monotonic() - started:.0f} s)")


def before_tree(options: argparse.Namespace) -> str | None:
    """The baseline's source tree, or None with ``--baseline none``."""
    if options.baseline.lower() == "none":
        return None
    return baseline.source_tree(options.baseline)


def cpu_target(options: argparse.Namespace) -> None:
    before = before_tree(options)
    count = options.dispatches // 2
    results = list(dispatch_cpu.runs(
        options.cpu_bots, options.rate, count, options.repeats, before, progress=progress,
    ))
    say(f"\n8. Relay CPU per dispatch (issue 15, goals 1 and 3): {count:,} dispatches offered at"
        f" {options.rate:,.0f}/s over {options.cpu_bots} bots, sample criteria, websocket v1"
        f" ({runs_text(options)}, before and now alternating; goal: zlib-stream halved, aim"
        " 22 µs)")
    if before is not None:
        say(f"   before: {baseline.describe(options.baseline)}")
    for line in dispatch_cpu.table(results):
        say(line)
    progress("receive path, in process")
    say("   The receive path alone, in process (bench/receive_path.py: one frame per read through"
        " the gateway protocol, inflate and orjson.loads; CPU in alternating processes, median"
        " of 3; instructions per frame under callgrind, which the machine's load does not"
        " move):")
    for line in receive_path.compare(before, baseline.REPO):
        say(line)


def mixed_target(options: argparse.Namespace) -> None:
    before = before_tree(options)
    count = options.dispatches // 2
    results = list(dispatch_cpu.runs(
        options.cpu_bots, options.rate, count, options.repeats, before, progress=progress,
        variants=(("zlib-stream", True),), others=options.others,
    ))
    say(f"\n11. Relay CPU per dispatch with {options.others:.0%} other events (typing, presences,"
        f" reactions, member updates), {count:,} dispatches offered at {options.rate:,.0f}/s over"
        f" {options.cpu_bots} bots, sample criteria, websocket v1 ({runs_text(options)}, before"
        " and now alternating)")
    say_beside_before(options, before, dispatch_cpu.table(results))
    progress("sieve, in process")
    say("   In process (bench/sieve_cost.py: per dispatch past the receive path, sample criteria,"
        " best of 5):")
    for line in sieve_cost.compare():
        say(line)


def say_beside_before(options: argparse.Namespace, before: str | None, lines: list[str]) -> None:
    """A table of figures now and before, after the commit it was before."""
    if before is not None:
        say(f"   before: {baseline.describe(options.baseline)}")
    for line in lines:
        say(line)


def tail_target(options: argparse.Namespace) -> None:
    before = before_tree(options)
    seconds = options.latency_seconds
    results = list(tail_latency.runs(
        options.tail_loads, seconds, options.repeats, before, tls=not options.plain,
        progress=progress,
    ))
    say(f"\n10. Latency, frame written -> bot has it (issue 15, goal 6), {seconds:g} s a run,"
        f" {_transport(not options.plain)} ({runs_text(options)}, before and now alternating;"
        " goal: p99 < 5 ms)")
    say_beside_before(options, before, tail_latency.table(results))


def cold_target(options: argparse.Namespace) -> None:
    before = before_tree(options)
    for rate in options.cold_rates:
        rows: dict[tuple[bool, str], list[dict[str, Any]]] = {}
        for tls in (True, False):
            for n, label, code in baseline.alternating(before, options.repeats):
                progress(f"first delivery at {rate:g}/s, {_transport(tls)}, {label},"
                         f" run {n + 1}")
                with bring_up(options.cpu_bots, tls=tls, code=code) as fleet:
                    rows.setdefault((tls, label), []).append(cold.measure(fleet, rate))
        say(f"\n9. First delivery to a sleeping bot (issue 15, goal 2): {options.cpu_bots} bots"
            f" connecting on demand under {rate:,.0f} dispatches/s; each bot's first dispatch, ms,"
            f" medians over bots then over runs ({runs_text(options)}; goal: p50 < 40 ms)")
        say(f"   {'':58}" + "".join(f"{f'{_transport(t)} {label}':>14}" for t, label in rows))
        for phase, _, _ in cold.PHASES:
            say(f"   {phase:58}" + "".join(f"{median(r, phase):>14.1f}" for r in rows.values()))
        say(f"   {'p90 / max of the first delivery':58}" + "".join(
            f"{median(r, 'p90'):>8.0f} /{median(r, 'max'):>4.0f}" for r in rows.values()))


def runs_text(options: argparse.Namespace) -> str:
    return f"median of {options.repeats} run(s)"


def compression_target(options: argparse.Namespace) -> None:
    progress("compression, in process")
    micro = gateway_compression.compare(5000 if options.quick else 20000,
                                        3 if options.quick else 7)
    bots = options.compression_bots
    per_process: dict[str, dict[str, float]] = {}
    zero: dict[str, float] = {}
    for kind in ("zlib-stream", "zstd-stream"):
        zero[kind] = idle_memory.baseline(kind, tls=not options.plain)
        mem, cpu = [], []
        for run in range(options.repeats):
            progress(f"compression, {kind}, {bots} bots, run {run + 1}")
            with bring_up(
                bots, compression=kind, keep=options.keep, tls=not options.plain
            ) as fleet:
                mem.append(idle_memory.measure(fleet))
                cpu.append(throughput.measure(
                    fleet, options.rate, options.dispatches // 2))
                mem[-1]["rss_busy"] = fleet.relay.rss_bytes()
        per_process[kind] = {
            "idle": (median(mem, "rss") - zero[kind]) / bots,
            "busy": (median(mem, "rss_busy") - zero[kind]) / bots,
            "relay_us": median(cpu, "relay_us"),
            "generator_us": median(cpu, "generator_us"),
        }
    say("\n7. Transport compression: zlib-stream vs zstd-stream (zstd level 3, 2 MiB window)")
    say(f"   in process, receive path (frame -> orjson.loads), {'median of runs'}:")
    for line in gateway_compression.table(micro):
        say("   " + line)
    say(f"   real relay, {bots} bots ({options.repeats} run(s)); busy = after "
        f"{options.dispatches // 2:,} dispatches:")
    say(f"   {'':14}{'KiB/bot idle':>13}{'KiB/bot busy':>13}{'relay µs/disp':>15}"
        f"{'generator µs':>14}")
    for kind, row in per_process.items():
        say(f"   {kind:14}{row['idle'] / 1024:>13.1f}{row['busy'] / 1024:>13.1f}"
            f"{row['relay_us']:>15.1f}{row['generator_us']:>14.1f}")


if __name__ == "__main__":
    main()
