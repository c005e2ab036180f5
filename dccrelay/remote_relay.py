"""
A bot registered in the shared store whose gateway session another node
holds (or nobody yet): what this node knows of it, to answer the API.
"""

from __future__ import annotations

from typing import Any

from dccrelay.gateway.shard import Shard
from dccrelay.settings import RelaySettings


class RemoteRelay:
    """
    A registration this node does not run.

    It looks like a :class:`dccrelay.relay.Relay` to the web API, the status
    page and the metrics: no shards, no counters of its own.

    :ivar owner: the node holding the bot's lease, or None.
    """

    shards: list[Shard] = []

    def __init__(
        self,
        alias: str,
        settings: RelaySettings,
        *,
        enabled: bool = True,
        disable_reason: str | None = None,
        owner: str | None = None,
    ) -> None:
        self.alias = alias
        self.settings = settings
        self.enabled = enabled
        self.disable_reason = disable_reason
        self.owner = owner
        #: the owner's last published public status, if any
        self.snapshot: dict[str, Any] | None = None

    def public_status(self) -> dict[str, Any]:
        """
        What anyone may see: the owner's last published status of the bot,
        or its registration's state and owner.
        """
        if self.snapshot is not None:
            # The registration's own state is newer than any snapshot.
            return {
                **self.snapshot,
                "enabled": self.enabled,
                "lastDisableReason": self.disable_reason,
                "node": self.owner,
            }
        return {
            "alias": self.alias,
            "enabled": self.enabled,
            "lastDisableReason": self.disable_reason,
            "gatewayError": None,
            "node": self.owner,
            "shards": [],
            "delivery": {"state": "on another node" if self.owner else "unowned"},
            "queued": 0,
            "dropped": 0,
            "lastDeliveryError": None,
            "counters": {"received": 0, "matched": 0, "delivered": 0},
        }

    def full_status(self) -> dict[str, Any]:
        """
        What the bot's owner may see (settings as a local relay shows them).
        """
        from dccrelay.relay import settings_status

        status = self.public_status()
        status["settings"] = settings_status(self.settings)
        return status
