"""
``GET /metrics``: the node's figures in Prometheus' exposition format.

Nothing is counted for Prometheus on the data path: a custom collector
reads the live relay objects (their counters, shards and delivery channels)
when Prometheus scrapes.  Node-wide counters stay monotonic when a bot is
deleted, or its shards or delivery channel are replaced: the collector keeps
the objects it saw at the previous scrape and folds the final counts of
those that are gone into the totals.  (What an object counted if it was
created and dropped between two scrapes is not seen.)

Per-bot series are labelled by alias only: never a token, secret or dst.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.web.resource import Resource
from twisted.web.server import Request

from dccrelay import __version__
from dccrelay.gateway.shard import Shard
from dccrelay.relay.manager import RelayManager
from dccrelay.relay.relay import Relay
from dccrelay.relay.snapshots import RelaySnapshot

#: Every state a shard shows, so each has a series even at zero.
SHARD_STATES = (
    "idle", "waiting for identify slot", "connecting", "identifying", "resuming",
    "ready", "reconnecting", "stopping", "stopped", "disabled",
)

#: The dispatch counters, as (metric name part, help).
DISPATCH_COUNTERS = (
    ("received", "Dispatches received from the gateway."),
    ("matched", "Dispatches that matched the bot's criteria."),
    ("delivered", "Dispatches delivered to the bot."),
    ("dropped", "Dispatches dropped because the bot's queue was full or too old."),
)


#: The wake economy counters, as (metric name part, WakeEconomy field, help).
WAKE_COUNTERS = (
    ("wake_requests", "wake_requests", "Requests to bots' wakeUrl."),
    ("typing_calls", "typing_calls", "Typing indicators shown while bots woke."),
    (
        "interactions_deferred", "deferred_interactions",
        "Interactions the relay deferred because the bot was not there in time.",
    ),
)


def dispatch_count(snapshot: RelaySnapshot, name: str) -> int:
    """One of :data:`DISPATCH_COUNTERS` from a bot's snapshot."""
    if name == "dropped":
        return snapshot.delivery.dropped
    value: int = getattr(snapshot.counters, name)
    return value


def wake_count(snapshot: RelaySnapshot, field: str) -> int:
    """One of :data:`WAKE_COUNTERS` from a bot's snapshot (0 if none)."""
    wake = snapshot.wake
    return getattr(wake, field) if wake is not None else 0


def snapshot_counts(snapshot: RelaySnapshot) -> dict[Hashable, float]:
    """
    A bot's dispatch and wake counters, the way ``GET /relays`` shows them.
    """
    return {
        **{name: dispatch_count(snapshot, name) for name, _ in DISPATCH_COUNTERS},
        **{name: wake_count(snapshot, field) for name, field, _ in WAKE_COUNTERS},
    }


def relay_counts(relay: Relay) -> dict[Hashable, float]:
    """A relay's counters now (for one that is gone: its final ones)."""
    return snapshot_counts(relay.snapshot())


def shard_counts(shard: Shard) -> dict[Hashable, float]:
    """
    A shard's counters: closes by code, identify waits.
    """
    counts: dict[Hashable, float] = {("close", code): n for code, n in shard.close_codes.items()}
    counts["identify_waits"] = shard.identify_waits
    counts["identify_wait_seconds"] = shard.identify_wait_seconds
    return counts


class _Lasting:
    """
    Sums of counters of objects that come and go, that never go down.

    :param read: an object's counters now.
    """

    def __init__(self, read: Callable[[Any], Mapping[Hashable, float]]) -> None:
        self._read = read
        # The objects of the previous scrape, held until the next one so
        # that their final counts can be read once they are gone.
        self._previous: dict[int, Any] = {}
        self._gone: Counter[Hashable] = Counter()

    def total(
        self,
        live: Iterable[Any],
        read_live: Callable[[Any], Mapping[Hashable, float]] | None = None,
    ) -> Counter[Hashable]:
        """
        :param read_live: reads a live object's counters, when the caller
            has them already (default: the ``read`` given at construction).
        :return: the counts of ``live`` and of every object seen before.
        """
        current = {id(o): o for o in live}
        for key, gone in self._previous.items():
            if key not in current:
                self._gone.update(self._read(gone))
        self._previous = current
        total: Counter[Hashable] = Counter(self._gone)
        read = read_live or self._read
        for o in current.values():
            total.update(read(o))
        return total


class RelayCollector(Collector):
    """
    Reads a node's relays at scrape time.
    """

    def __init__(self, manager: RelayManager) -> None:
        self._manager = manager
        self._relays = _Lasting(relay_counts)
        self._shards = _Lasting(shard_counts)

    def collect(self) -> Iterator[Metric]:
        manager = self._manager
        # This node's bots only: with several nodes, each reports what it runs,
        # so sums across nodes count every bot once.
        relays = sorted(manager.local_relays(), key=lambda relay: relay.alias)
        shards = [shard for relay in relays for shard in relay.shards]
        yield from _node(manager, relays)
        yield from _shard_states(shards)
        per_bot = [(relay.alias, relay.snapshot()) for relay in relays]
        # One snapshot per bot and scrape, for its own figures and the totals.
        snapshots = {id(relay): snapshot for relay, (_, snapshot) in zip(relays, per_bot)}
        totals = self._relays.total(
            relays, lambda relay: snapshot_counts(snapshots[id(relay)])
        )
        yield from _dispatches(per_bot, totals)
        yield from _queues(per_bot)
        yield from _wake_economy(per_bot, totals)
        yield from _enabled(relays)
        yield from _latency(manager)
        yield from _reconnects_and_identify_waits(self._shards.total(shards))


#: a bot's alias and its snapshot at this scrape
_PerBot = list[tuple[str, RelaySnapshot]]


def _node(manager: RelayManager, relays: list[Relay]) -> Iterator[Metric]:
    """
    The relay's version and uptime, and its bots by state and at most.
    """
    info = GaugeMetricFamily("dcc_info", "The relay's version.", labels=["version"])
    info.add_metric([__version__], 1)
    yield info
    uptime = manager.uptime()
    if uptime is not None:
        yield GaugeMetricFamily(
            "dcc_uptime_seconds", "Seconds since the relay started.", value=uptime
        )

    by_state = GaugeMetricFamily(
        "dcc_relays", "Registered bots, by whether their gateway session is enabled.",
        labels=["state"],
    )
    enabled = sum(1 for relay in relays if relay.enabled)
    by_state.add_metric(["enabled"], enabled)
    by_state.add_metric(["disabled"], len(relays) - enabled)
    yield by_state
    yield GaugeMetricFamily(
        "dcc_relays_max", "Bots this relay accepts (--max-relays).", value=manager.max_relays
    )


def _shard_states(shards: list[Shard]) -> Iterator[Metric]:
    """
    Every bot's shards, by state (each state listed, even at zero).
    """
    shard_states = Counter({state: 0 for state in SHARD_STATES})
    shard_states.update(shard.state for shard in shards)
    gauge = GaugeMetricFamily(
        "dcc_shards", "Gateway shards of every bot, by state.", labels=["state"]
    )
    for state, count in shard_states.items():
        gauge.add_metric([state], count)
    yield gauge


def _dispatches(per_bot: _PerBot, totals: Counter[Hashable]) -> Iterator[Metric]:
    """
    Each dispatch counter, for all bots and per bot.
    """
    for name, help_text in DISPATCH_COUNTERS:
        yield CounterMetricFamily(
            f"dcc_dispatches_{name}", help_text + " All bots, deleted ones included.",
            value=totals[name],
        )
        family = CounterMetricFamily(
            f"dcc_bot_dispatches_{name}", help_text, labels=["alias"]
        )
        for alias, snapshot in per_bot:
            family.add_metric([alias], dispatch_count(snapshot, name))
        yield family


def _queues(per_bot: _PerBot) -> Iterator[Metric]:
    """
    Dispatches waiting for their bots, per bot and in all.
    """
    queued = GaugeMetricFamily(
        "dcc_bot_queued", "Dispatches waiting for the bot.", labels=["alias"]
    )
    for alias, snapshot in per_bot:
        queued.add_metric([alias], snapshot.delivery.queued)
    yield queued
    yield GaugeMetricFamily(
        "dcc_queued", "Dispatches waiting for their bots, all bots.",
        value=sum(snapshot.delivery.queued for _, snapshot in per_bot),
    )


def _wake_economy(per_bot: _PerBot, totals: Counter[Hashable]) -> Iterator[Metric]:
    """
    Each wake counter, for all bots and per bot, and how long bots took to
    wake.
    """
    for name, field, help_text in WAKE_COUNTERS:
        yield CounterMetricFamily(
            f"dcc_{name}", help_text + " All bots, deleted ones included.",
            value=totals[name],
        )
        family = CounterMetricFamily(f"dcc_bot_{name}", help_text, labels=["alias"])
        for alias, snapshot in per_bot:
            family.add_metric([alias], wake_count(snapshot, field))
        yield family
    wake_times = HistogramMetricFamily(
        "dcc_bot_wake_seconds",
        "From a dispatch matching while its bot was not connected to its delivery "
        "(acknowledged, for websocket v2 and webhooks).",
        labels=["alias"],
    )
    for alias, snapshot in per_bot:
        wake = snapshot.wake
        if wake is not None:
            wake_times.add_metric([alias], list(wake.buckets), wake.sum_seconds)
    yield wake_times


def _enabled(relays: list[Relay]) -> Iterator[Metric]:
    """
    Whether each bot's gateway session is enabled.
    """
    up = GaugeMetricFamily(
        "dcc_bot_enabled", "1 if the bot's gateway session is enabled.", labels=["alias"]
    )
    for relay in relays:
        up.add_metric([relay.alias], 1 if relay.enabled else 0)
    yield up


def _latency(manager: RelayManager) -> Iterator[Metric]:
    """
    The node's delivery latency (websocket v1).
    """
    latency = manager.delivery_latency
    yield HistogramMetricFamily(
        "dcc_delivery_latency_seconds",
        "From a dispatch's gateway frame arriving to its being written to the bot "
        "(websocket v1 delivery).",
        buckets=latency.cumulative(),
        sum_value=latency.sum,
    )


def _reconnects_and_identify_waits(shard_totals: Counter[Hashable]) -> Iterator[Metric]:
    """
    Gateway connections ended, by close code, and identify waits, from the
    shards' lasting totals.
    """
    closes = CounterMetricFamily(
        "dcc_gateway_reconnects",
        "Gateway connections that ended other than by the relay stopping, by close "
        "code ('none': the connection was lost without a close frame).",
        labels=["code"],
    )
    for key, count in sorted(
        ((k, v) for k, v in shard_totals.items() if isinstance(k, tuple)),
        key=lambda item: (item[0][1] is None, item[0][1] or 0),
    ):
        code = key[1]
        closes.add_metric(["none" if code is None else str(code)], count)
    yield closes
    yield CounterMetricFamily(
        "dcc_identify_waits",
        "Times a shard had to wait for an identify slot (Discord's identify limits).",
        value=shard_totals["identify_waits"],
    )
    yield CounterMetricFamily(
        "dcc_identify_wait_seconds",
        "Seconds shards spent waiting for an identify slot.",
        value=shard_totals["identify_wait_seconds"],
    )


def build_registry(manager: RelayManager) -> CollectorRegistry:
    """
    The node's registry: its relays, and the process (memory, CPU, open
    files) and Python runtime.
    """
    registry = CollectorRegistry()
    registry.register(RelayCollector(manager))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class MetricsPage(Resource):
    """
    ``GET /metrics``, in the format the scraper asks for (``Accept``).
    """

    isLeaf = True

    def __init__(self, manager: RelayManager) -> None:
        super().__init__()
        self._registry = build_registry(manager)

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        output: bytes = encoder(self._registry)
        return output
