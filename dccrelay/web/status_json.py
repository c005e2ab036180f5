"""
A bot's status as the API shows it (``GET /relays``, ``GET
/relays/{alias}``): JSON rendered from a :class:`RelaySnapshot`, here and
nowhere else.  The field names are the API's (see :mod:`dccrelay.web.openapi`).
"""

from __future__ import annotations

from typing import Any

from dccrelay.relay.settings import RelaySettings
from dccrelay.relay.snapshots import RelaySnapshot


def public_json(snapshot: RelaySnapshot) -> dict[str, Any]:
    """What anyone may see: no token, secret, dst or criteria."""
    delivery = snapshot.delivery
    counters = snapshot.counters
    status: dict[str, Any] = {
        "alias": snapshot.alias,
        "enabled": snapshot.enabled,
        "lastDisableReason": snapshot.disable_reason,
        "gatewayError": snapshot.gateway_error,
        "node": snapshot.node,
        "shards": [
            {"id": shard.id, "state": shard.state, "lastClose": shard.last_close}
            for shard in snapshot.shards
        ],
        "delivery": {"state": delivery.state},
        "queued": delivery.queued,
        "dropped": delivery.dropped,
        "lastDeliveryError": delivery.last_error,
    }
    interactions = snapshot.interactions
    if interactions is not None:
        status["interactions"] = {
            "deferred": interactions.deferred,
            "inTime": interactions.in_time,
            "answeredFirst": interactions.answered_first,
            "deferFailed": interactions.defer_failed,
        }
    wake = snapshot.wake
    if wake is not None:
        status["wake"] = {
            "asleepDeliveries": {
                "count": wake.count,
                "sumSeconds": wake.sum_seconds,
                "maxSeconds": wake.max_seconds,
                "buckets": dict(wake.buckets),
            },
            "wakeRequests": wake.wake_requests,
            "typingCalls": wake.typing_calls,
            "deferredInteractions": wake.deferred_interactions,
        }
    guilds = snapshot.guild_snapshot
    if guilds is not None:
        status["guildSnapshot"] = {
            "guilds": guilds.guilds, "bytes": guilds.bytes, "skipped": guilds.skipped
        }
    status["counters"] = {"received": counters.received, "matched": counters.matched}
    if counters.commands is not None:
        status["counters"]["commands"] = counters.commands
    if counters.answers is not None:
        status["counters"]["answers"] = counters.answers
    status["counters"]["delivered"] = counters.delivered
    return status


def full_json(snapshot: RelaySnapshot) -> dict[str, Any]:
    """
    What the bot's owner may see (a private snapshot): status and settings,
    token masked.
    """
    status = public_json(snapshot)
    if snapshot.settings is not None:
        status["settings"] = settings_json(snapshot.settings)
    for entry, shard in zip(status["shards"], snapshot.shards):
        if shard.identifies is not None:
            entry["identifies"] = shard.identifies
            entry["resumes"] = shard.resumes
            entry["seq"] = shard.seq
    wake_url = snapshot.wake_url
    if wake_url is not None:
        status["wakeUrl"] = {
            "requests": wake_url.requests,
            "failures": wake_url.failures,
            "lastStatus": wake_url.last_status,
            "lastError": wake_url.last_error,
        }
    return status


def settings_json(s: RelaySettings) -> dict[str, Any]:
    """A registration's settings as its owner sees them: the token masked."""
    return {
        "token": mask_token(s.token),
        "intents": s.intents,
        "criteria": s.criteria,
        "filter": s.filter,
        "dst": s.dst,
        "shards": s.shards,
        "delivery": {"protocol": s.delivery_protocol},
        "typingWhileWaking": s.typing_while_waking,
        "deferInteractions": s.defer_interactions,
        "deferEphemeral": s.defer_ephemeral,
        "guildSnapshot": s.guild_snapshot,
        "wakeUrl": s.wake_url,
    }


def mask_token(token: str) -> str:
    """
    Enough of a token to recognise it, not to use it: a Discord token's
    first part is the bot's base64 user id, which is public anyway; nothing
    of any other token is shown.
    """
    parts = token.split(".")
    if len(parts) == 3 and len(parts[0]) >= 8:
        return parts[0][:8] + "…"
    return "…"
