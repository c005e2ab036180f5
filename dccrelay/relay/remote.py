"""
A bot registered in the shared store whose gateway session another node
holds (or nobody yet): what this node knows of it, to answer the API.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from dccrelay.delivery import ChannelSnapshot
from dccrelay.gateway.commands import CommandError
from dccrelay.gateway.shard import Shard
from dccrelay.relay.handle import IRelayHandle
from dccrelay.relay.settings import RelaySettings
from dccrelay.relay.snapshots import DispatchCounts, RelaySnapshot
from dccrelay.store import SessionState, StoredRelay


@implementer(IRelayHandle)
class RemoteRelay:
    """
    A registration this node does not run.

    Its :class:`IRelayHandle` is a :class:`dccrelay.relay.relay.Relay`'s: no
    shards, no counters of its own; changes only update what this node
    knows (the owner's node makes them on its own bot).

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
        #: the owner's last published public snapshot, if any
        self.published: RelaySnapshot | None = None

    @classmethod
    def of(cls, record: StoredRelay) -> RemoteRelay:
        """
        What this node knows of a stored registration.
        """
        return cls(
            record.alias, RelaySettings.from_json(record.settings),
            enabled=record.enabled, disable_reason=record.disable_reason,
        )

    def start(self, stored: dict[int, SessionState] | None = None) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def forget(self) -> Deferred[None]:
        return succeed(None)

    def apply(self, settings: RelaySettings) -> Deferred[None]:
        self.settings, self.enabled = settings, True
        return succeed(None)

    def disable(self, reason: str) -> Deferred[None]:
        self.enabled, self.disable_reason = False, reason
        return succeed(None)

    def follow(self, record: StoredRelay) -> Deferred[None]:
        self.settings = RelaySettings.from_json(record.settings)
        self.enabled, self.disable_reason = record.enabled, record.disable_reason
        return succeed(None)

    def send_command(self, body: Any) -> dict[str, Any]:
        """
        :raise CommandError: 409 always: the gateway session is another
            node's, or nobody's yet.
        """
        where = f"relay node {self.owner}" if self.owner else "no relay node yet"
        raise CommandError(
            f"this bot's gateway session is held by {where}: send commands there", status=409
        )

    def claim_interaction(self, body: Any) -> dict[str, Any]:
        """
        :raise CommandError: 409 always: the interactions are the owner's.
        """
        raise CommandError(self._elsewhere("claim interactions there"), status=409)

    def guild_snapshot(self) -> Deferred[dict[str, Any] | None]:
        """
        :return: a Deferred failing with :class:`CommandError`, 409, always:
            the snapshot is the owner's.
        """
        return fail(CommandError(self._elsewhere("ask that node"), status=409))

    def _elsewhere(self, what: str) -> str:
        where = f"relay node {self.owner}" if self.owner else "no relay node yet"
        return f"this bot's gateway session is held by {where}: {what}"

    def snapshot(self, private: bool = False) -> RelaySnapshot:
        """
        The owner's last published snapshot of the bot, or its
        registration's state and owner; with ``private``, its settings too.
        """
        settings = self.settings if private else None
        if self.published is not None:
            # The registration's own state is newer than any snapshot.
            return replace(
                self.published, enabled=self.enabled, disable_reason=self.disable_reason,
                node=self.owner, settings=settings,
            )
        return RelaySnapshot(
            alias=self.alias,
            enabled=self.enabled,
            disable_reason=self.disable_reason,
            gateway_error=None,
            node=self.owner,
            shards=(),
            delivery=ChannelSnapshot(
                state="on another node" if self.owner else "unowned",
                queued=0, dropped=0, delivered=0, last_error=None,
            ),
            counters=DispatchCounts(received=0, matched=0, delivered=0),
            settings=settings,
        )
