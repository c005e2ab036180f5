"""
What a bot's relay shows of itself at one moment, as frozen dataclasses:
the contract between the relay and whoever reads it (the API and the
status page in ``web/``, the metrics, the cluster's published statuses).

Nothing here is JSON for the API: ``dccrelay.web.status_json`` renders
that, so renaming an API field cannot silently break the metrics or the
cluster.  The cluster stores snapshots in their own record form
(:func:`to_record`, :func:`from_record`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from dccrelay.delivery import ChannelSnapshot
from dccrelay.relay.settings import RelaySettings


@dataclass(frozen=True)
class ShardSnapshot:
    """One gateway shard."""

    id: int
    state: str
    #: why the shard last closed or could not connect
    last_close: str | None
    #: the owner's to see (None in a public snapshot): sessions begun and
    #: resumed, and the last seq
    identifies: int | None = None
    resumes: int | None = None
    seq: int | None = None


@dataclass(frozen=True)
class DispatchCounts:
    """
    What the relay has seen of the bot's dispatches, and the gateway
    commands the bot sent; None where a remote bot's owner published none.
    """

    received: int
    matched: int
    delivered: int
    commands: int | None = None
    answers: int | None = None


@dataclass(frozen=True)
class InteractionCounts:
    """Interactions the relay deferred, and how the others went."""

    deferred: int
    in_time: int
    answered_first: int
    defer_failed: int


@dataclass(frozen=True)
class WakeEconomy:
    """
    What waking the bot cost and gained: how long dispatches that matched
    while it was not connected took to reach it, and the calls made.
    """

    count: int
    sum_seconds: float
    max_seconds: float
    #: cumulative histogram: (upper bound in seconds, as text; count)
    buckets: tuple[tuple[str, int], ...]
    wake_requests: int
    typing_calls: int
    deferred_interactions: int


@dataclass(frozen=True)
class WakeUrlSnapshot:
    """The bot's wakeUrl requests."""

    requests: int
    failures: int
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class GuildSnapshotCounts:
    """The bot's guild snapshot (``guildSnapshot``): guilds kept, their bytes, guilds left out."""

    guilds: int
    bytes: int
    skipped: int


@dataclass(frozen=True)
class RelaySnapshot:
    """
    One bot.  ``settings`` and ``wake_url`` are its owner's to see: they are
    None in a public snapshot.
    """

    alias: str
    enabled: bool
    disable_reason: str | None
    gateway_error: str | None
    node: str | None
    shards: tuple[ShardSnapshot, ...]
    #: the channel's figures, with what earlier channels delivered and dropped
    delivery: ChannelSnapshot
    counters: DispatchCounts
    interactions: InteractionCounts | None = None
    wake: WakeEconomy | None = None
    guild_snapshot: GuildSnapshotCounts | None = None
    settings: RelaySettings | None = None
    wake_url: WakeUrlSnapshot | None = None


def to_record(snapshot: RelaySnapshot) -> dict[str, Any]:
    """
    A public snapshot as plain data, for the cluster's shared statuses:
    what ``dataclasses.asdict`` gives, without its deep copies (of the
    settings, too, only to drop them), as a node publishes every bot's
    snapshot every lease round.
    """
    return {
        "alias": snapshot.alias,
        "enabled": snapshot.enabled,
        "disable_reason": snapshot.disable_reason,
        "gateway_error": snapshot.gateway_error,
        "node": snapshot.node,
        "shards": tuple(_flat(shard) for shard in snapshot.shards),
        "delivery": _flat(snapshot.delivery),
        "counters": _flat(snapshot.counters),
        "interactions": _flat_or_none(snapshot.interactions),
        "wake": _flat_or_none(snapshot.wake),
        "guild_snapshot": _flat_or_none(snapshot.guild_snapshot),
        "settings": None,
        "wake_url": None,
    }


# each snapshot part's field names, looked up once per class
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _flat(value: Any) -> dict[str, Any]:
    # The parts of a snapshot hold numbers, text and tuples of them only.
    names = _FIELD_NAMES.get(type(value))
    if names is None:
        names = _FIELD_NAMES[type(value)] = tuple(field.name for field in fields(value))
    return {name: getattr(value, name) for name in names}


def _flat_or_none(value: Any) -> dict[str, Any] | None:
    return None if value is None else _flat(value)


def from_record(record: dict[str, Any]) -> RelaySnapshot:
    """The snapshot :func:`to_record` stored."""
    interactions = record.get("interactions")
    wake = record.get("wake")
    guilds = record.get("guild_snapshot")
    return RelaySnapshot(
        alias=record["alias"],
        enabled=record["enabled"],
        disable_reason=record["disable_reason"],
        gateway_error=record["gateway_error"],
        node=record["node"],
        shards=tuple(ShardSnapshot(**shard) for shard in record["shards"]),
        delivery=ChannelSnapshot(**record["delivery"]),
        counters=DispatchCounts(**record["counters"]),
        interactions=InteractionCounts(**interactions) if interactions else None,
        wake=(
            WakeEconomy(**{**wake, "buckets": tuple(tuple(b) for b in wake["buckets"])})
            if wake else None
        ),
        guild_snapshot=GuildSnapshotCounts(**guilds) if guilds else None,
    )
