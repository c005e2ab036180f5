"""
One bot's relay: its compiled filter, where its dispatches go, and the rule
for what to restart when its settings change.  Its gateway session
(:mod:`dccrelay.gateway.session`) and its waking
(:mod:`dccrelay.waking.assistant`) are rooms of their own.

Data flows one way through it: shard -> filter -> delivery channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from random import Random
from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from dccrelay.delivery import IChannelOwner, IDeliveryChannel, IDurableChannel
from dccrelay.filters import event_types
from dccrelay.filters.errors import CriteriaError, UnknownBackendError
from dccrelay.gateway import codes
from dccrelay.gateway.commands import CommandError, command_answer, parse_command
from dccrelay.gateway.limiter import SharedIdentifySlots
from dccrelay.gateway.rest import DiscordREST
from dccrelay.gateway.session import MAX_WAITING_COMMANDS, GatewaySession, IGatewayOwner
from dccrelay.gateway.shard import Connect, GatewayTools, Shard
from dccrelay.relay.bot_guilds import BotGuilds
from dccrelay.relay.guild_snapshot_saver import GuildSnapshotSaver
from dccrelay.relay.handle import IRelayHandle
from dccrelay.relay.member_requests import (
    ANSWER_TYPES,
    MAX_MEMBER_REQUESTS,
    MEMBER_REQUEST_TIMEOUT,
    MemberRequests,
)
from dccrelay.relay.settings import RelaySettings
from dccrelay.relay.snapshots import DispatchCounts, GuildSnapshotCounts, RelaySnapshot
from dccrelay.store import (
    IGuildSnapshots,
    IRelayStore,
    OutboxCheckpoint,
    SessionState,
    StoredRelay,
)
from dccrelay.waking.assistant import WakeAssistant
from dccrelay.waking.interactions import DEFER_AFTER
from dccrelay.waking.wake_url import INTERVAL as WAKE_INTERVAL

__all__ = [
    "MAX_MEMBER_REQUESTS", "MAX_WAITING_COMMANDS", "MEMBER_REQUEST_TIMEOUT", "Relay",
    "RelayEnvironment",
]

Predicate = Callable[[dict[str, Any]], bool]


def _matches_nothing(payload: dict[str, Any]) -> bool:
    """The filter of a bot whose stored criteria could not be compiled."""
    return False


@dataclass(frozen=True)
class RelayEnvironment:
    """
    What every relay on a node shares.
    """

    clock: IReactorTime
    random: Random
    store: IRelayStore
    rest: DiscordREST
    connect: Connect
    compile_filter: Callable[[str, Any], Predicate]
    make_delivery: Callable[..., IDeliveryChannel]
    retry_policy: Callable[[int], float]
    #: identify slots shared with other nodes, per token (several nodes)
    shared_identify: Callable[[str], SharedIdentifySlots] | None = None
    #: a treq client for bots' wakeUrl, under the outbound rules
    #: (:func:`dccrelay.net.answer_caps.outbound_http`); None: no wake requests
    wake_http: Any = None
    #: seconds between two wake requests for one bot, at least
    wake_interval: float = WAKE_INTERVAL
    #: seconds a matching interaction may take to reach a bot that asked
    #: for deferInteractions before the relay defers it
    defer_after: float = DEFER_AFTER
    #: where the bots' guild snapshots are kept: sealed, when the node
    #: seals its bots' data (:mod:`dccrelay.store.sealed`); None: ``store``
    guild_snapshots: IGuildSnapshots | None = None
    _tools: GatewayTools = field(init=False, repr=False, compare=False)
    _saver: GuildSnapshotSaver = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One object each for every relay of the node (frozen: set once, here).
        tools = GatewayTools(self.clock, self.random, self.connect, self.retry_policy)
        object.__setattr__(self, "_tools", tools)
        snapshots = self.guild_snapshots if self.guild_snapshots is not None else self.store
        object.__setattr__(self, "_saver", GuildSnapshotSaver(snapshots, self.clock))

    def gateway_tools(self) -> GatewayTools:
        """What every shard of the node is given."""
        return self._tools

    def snapshot_saver(self) -> GuildSnapshotSaver:
        """What saves every relay's guild snapshot."""
        return self._saver


class Counters:
    """
    What a relay has seen, for status and metrics.
    """

    __slots__ = (
        "received", "matched", "earlier_delivered", "earlier_dropped", "commands", "answers",
    )

    def __init__(self) -> None:
        self.received = 0
        self.matched = 0
        # Gateway commands the bot sent, and answers to its member requests
        # delivered although its criteria did not match them.
        self.commands = 0
        self.answers = 0
        # What the bot's earlier delivery channels (before a new dst or
        # secret) delivered and dropped, so that status counts never go back.
        self.earlier_delivered = 0
        self.earlier_dropped = 0


@implementer(IRelayHandle, IGatewayOwner, IChannelOwner)
class Relay:
    """
    One registered bot, run on this node: its filter, where its dispatches
    go, and what to restart when its registration changes.  Its gateway
    session (:class:`GatewaySession`) and its waking
    (:class:`WakeAssistant`) are rooms of their own.
    """

    _log = Logger()

    def __init__(
        self,
        alias: str,
        settings: RelaySettings,
        env: RelayEnvironment,
        *,
        on_fatal: Callable[[str, str], object],
        enabled: bool = True,
        disable_reason: str | None = None,
    ) -> None:
        self.alias = alias
        self.settings = settings
        self.enabled = enabled
        self.disable_reason = disable_reason
        self._env = env
        self._on_fatal = on_fatal
        #: counts every change to what :meth:`snapshot` shows publicly: a
        #: cluster node's lease round takes the snapshot of a bot only when
        #: this moved since its last one.  Whatever changes a shown field
        #: calls :meth:`status_changed` (or, on the dispatch path, adds 1).
        self.status_changes = 0
        try:
            self._predicate = env.compile_filter(settings.filter, settings.criteria)
        except (CriteriaError, UnknownBackendError) as error:
            # Stored under looser limits (an older version, or limits the
            # operator lowered since) or for a filter plugin no longer
            # installed: the bot stays registered, disabled and saying why,
            # until its owner sends criteria this relay takes.
            self._predicate = _matches_nothing
            if enabled:
                self.enabled = False
                self.disable_reason = (
                    f"its stored criteria are refused by this relay ({error});"
                    " register it again with criteria within the filter limits"
                )
                env.clock.callLater(0, on_fatal, alias, self.disable_reason)
        self._member_requests = MemberRequests(env.clock)
        # one bound method, shared by the parts that report changes
        changed = self.status_changed
        self._waking = WakeAssistant(
            alias, settings, clock=env.clock, rest=env.rest, wake_http=env.wake_http,
            wake_interval=env.wake_interval, defer_after=env.defer_after,
            on_change=changed,
        )
        self.gateway = GatewaySession(
            alias, settings, rest=env.rest, store=env.store, tools=env.gateway_tools(),
            owner=self, shared_identify=env.shared_identify,
        )
        self._want_types(settings)
        self._resume = self.gateway.resume
        # opt-in (guildSnapshot): the bot's guilds, for its cold starts,
        # restored from the store when the relay starts
        self._guilds = BotGuilds(
            alias, settings.token, env.snapshot_saver(), on_change=changed
        )
        self._delivery = self._new_delivery(())
        self._delivery_started = False
        self._node: str | None = None
        #: in a cluster, the epoch of the lease this node runs the bot
        #: under: the outbox stores its dispatches only while that lease is
        #: current (:attr:`dccrelay.store.OutboxCheckpoint.lease_epoch`)
        self.lease_epoch: int | None = None
        self.counters = Counters()

    @property
    def node(self) -> str | None:
        """The node running this relay, when several share a store."""
        return self._node

    @node.setter
    def node(self, node: str | None) -> None:
        self._node = node
        self.status_changed()

    def status_changed(self) -> None:
        """
        Something :meth:`snapshot` shows may have changed (see
        :attr:`status_changes`).
        """
        self.status_changes += 1

    @property
    def opening(self) -> bool:
        """Whether its gateway session is being opened (the start's work)."""
        return self.gateway.opening

    @property
    def shards(self) -> list[Shard]:
        """The gateway session's shards, in order."""
        return self.gateway.shards

    # -- lifecycle ----------------------------------------------------------------

    def start(self, stored: dict[int, SessionState] | None = None) -> Deferred[None]:
        """
        Open the gateway session, resuming stored shard sessions.

        :param stored: the relay's stored sessions, if the caller loaded them
            already (the manager loads every bot's in one call at start-up);
            otherwise they are loaded here.
        """
        if not self._delivery_started:
            # Even a disabled bot gets what already waits for it.
            self._delivery_started = True
            self._delivery.start()
        if self.settings.guild_snapshot:
            self._guilds.restored()
        if not self.enabled:
            return succeed(None)
        return self.gateway.start(stored)

    def stop_gateway(self, code: int = codes.RESUMABLE_CLOSE) -> Deferred[Any]:
        """
        Close every shard; with the default code the sessions stay
        resumable and their latest seq is saved.
        """
        return self.gateway.stop(code)

    @inlineCallbacks
    def stop(self) -> Any:
        """
        Stop everything, keeping Discord sessions resumable.
        """
        self._waking.stop()
        yield self.stop_gateway()
        # for whoever runs the bot next: this node restarted, or another
        yield self._guilds.save_if_changed()
        yield self._delivery.stop()

    @inlineCallbacks
    def forget(self) -> Any:
        """
        Stop everything and end the Discord sessions (the bot is deleted).
        """
        self._waking.stop()
        self._guilds.discard()
        yield self.stop_gateway(codes.SESSION_ENDING_CLOSE)
        yield self._delivery.stop()

    def _new_delivery(self, initial: Any) -> IDeliveryChannel:
        # Built, not started: start() begins its I/O (loading the outbox).
        return self._env.make_delivery(
            alias=self.alias,
            dst=self.settings.dst,
            client_secret=self.settings.client_secret,
            initial=initial,
            protocol=self.settings.delivery_protocol,
            owner=self,
        )

    # -- settings -------------------------------------------------------------

    @inlineCallbacks
    def apply(self, settings: RelaySettings) -> Any:
        """
        Change only what the new settings change; re-enable if disabled.
        """
        old, self.settings = self.settings, settings
        # guild_snapshot shown or not, and below: counts, channel, enabled
        self.status_changed()
        if old.gateway_key() != settings.gateway_key():
            # also when turned off: the stored one goes
            self._guilds.replace(settings.token)
        if old.filter_key() != settings.filter_key():
            self._predicate = self._env.compile_filter(settings.filter, settings.criteria)
        self._want_types(settings)
        self._waking.apply(settings)
        # Disabled (perhaps by a webhook's 410): a fresh channel resumes.
        if old.delivery_key() != settings.delivery_key() or not self.enabled:
            previous = self._delivery
            yield previous.stop()
            ended = previous.snapshot()
            self.counters.earlier_delivered += ended.delivered
            self.counters.earlier_dropped += ended.dropped
            self._delivery = self._new_delivery(previous.pending())
            self._delivery_started = False
            self.status_changed()
        gateway = self.gateway
        if old.gateway_key() != settings.gateway_key() and gateway.open_or_opening:
            # Another token or intents: the old session is of no more use.
            yield gateway.stop(codes.SESSION_ENDING_CLOSE)
        gateway.settings = settings
        self.enabled = True
        self.status_changed()
        yield self.start()

    @inlineCallbacks
    def disable(self, reason: str) -> Any:
        """
        End the gateway session until the bot registers again.
        """
        self.enabled = False
        self.disable_reason = reason
        self.status_changed()
        self._waking.stop()
        yield self.stop_gateway(codes.SESSION_ENDING_CLOSE)

    def follow(self, record: StoredRelay) -> Deferred[Any]:
        """
        Catch up with the registration as stored, changed through another
        node: disable, or apply new settings (or re-enable).
        """
        settings = RelaySettings.from_json(record.settings)
        if not record.enabled:
            if self.enabled:
                return self.disable(record.disable_reason or "disabled")
        elif self.settings != settings or not self.enabled:
            return self.apply(settings)
        return succeed(None)

    # -- IChannelOwner ------------------------------------------------------------

    def channel_delivered(self, payloads: Sequence[bytes]) -> None:
        """The bot took ``payloads``."""
        self.status_changes += 1
        self._waking.delivered(payloads)

    def annotate(self, payload: bytes) -> bytes:
        """What the channel writes for ``payload`` (a deferral's note)."""
        return self._waking.annotate(payload)

    def bot_command(self, command: Any) -> tuple[int, dict[str, Any]]:
        """A gateway command the bot sent on its websocket (v2)."""
        return command_answer(self.send_command, command)

    def bot_gone(self, reason: str) -> None:
        """The bot's webhook answered 410 Gone: disabled, as a fatal close code does."""
        self.refused(reason)

    # -- IGatewayOwner ------------------------------------------------------------

    def refused(self, reason: str) -> None:
        """Discord (or the bot's webhook, with 410) refused the bot for good."""
        if not self.enabled:
            return
        # Not from inside the shard's transition: disabling stops the shard.
        self._env.clock.callLater(0, self._on_fatal, self.alias, reason)

    def dispatch_received(self, shard_id: int, data: bytes, payload: dict[str, Any]) -> None:
        """The data path: filter, then hand to delivery."""
        counters = self.counters
        counters.received += 1
        # what status_changed() does, without the call on the hot path
        self.status_changes += 1
        self._resume.moved = True
        if self.settings.guild_snapshot:
            self._guilds.observe(payload)
        try:
            matched = self._predicate(payload)
        except Exception:
            self._log.failure("{alias}: the filter raised", alias=self.alias)
            return
        # The answers to the bot's own member requests reach it whatever
        # its criteria say.
        answer = bool(self._member_requests) and self._member_requests.answered_by(payload)
        if matched or answer:
            if matched:
                counters.matched += 1
            else:
                counters.answers += 1
            self._resume.points.handed_over(shard_id, payload["s"])
            self._deliver(shard_id, data, payload)

    def dispatch_passed_over(self, shard_id: int) -> None:
        """A dispatch of a type the criteria cannot match, not parsed: counted."""
        self.counters.received += 1
        self.status_changes += 1
        self._resume.moved = True

    def _want_types(self, settings: RelaySettings) -> None:
        # The shards parse the types the criteria can match and the answers
        # to member requests; every type while a guild snapshot is kept
        # (it reads guild events) or when the backend cannot tell.
        types = None if settings.guild_snapshot else event_types(
            settings.filter, settings.criteria
        )
        self.gateway.sieve.want(None if types is None else types | ANSWER_TYPES)

    def bot_user(self, user: Any) -> None:
        """READY named the bot's user."""
        if self.settings.guild_snapshot:
            self._guilds.ready(user)

    def not_yet_safe(self) -> int | None:
        """
        How many of the newest matched dispatches Discord may have to
        replay: those still queued in memory; for a durable channel none
        once stored, and no resume point may be saved while some are being
        stored.
        """
        channel = self._delivery
        if IDurableChannel.providedBy(channel):
            return None if channel.unstored() else 0
        return channel.snapshot().queued

    def _deliver(self, shard_id: int, data: bytes, payload: dict[str, Any]) -> None:
        channel = self._delivery
        asleep = not channel.connected
        waiting = self._waking.matched(data, payload, asleep)
        if IDurableChannel.providedBy(channel):
            # Stored with the dispatch: once it is durable, Discord need
            # not replay it after a restart.
            checkpoint = None
            shards = self.shards
            if shard_id < len(shards) and isinstance(payload.get("s"), int):
                session = shards[shard_id].session
                if session is not None:
                    checkpoint = OutboxCheckpoint(
                        self.alias, shard_id, session.session_id, payload["s"],
                        self.lease_epoch,
                    )
            channel.deliver(data, checkpoint)
        else:
            channel.deliver(data)
        if waiting is not None:
            self._waking.handed_over(waiting)

    # -- gateway commands from the bot ------------------------------------------

    def guild_snapshot(self) -> Deferred[dict[str, Any] | None]:
        """
        ``GET /relays/{alias}/snapshot``: the bot's READY user and guilds as
        its gateway last described them (once the stored snapshot is
        restored), or None when the bot did not ask for them
        (:mod:`dccrelay.relay.guild_snapshot`).
        """
        if not self.settings.guild_snapshot:
            return succeed(None)

        def document(restored: dict[str, Any]) -> dict[str, Any] | None:
            # turned off while it was being restored: nothing to serve
            return restored if self.settings.guild_snapshot else None

        return self._guilds.document().addCallback(document)

    def claim_interaction(self, body: Any) -> dict[str, Any]:
        """
        ``POST /relays/{alias}/claim``: the bot, which has an interaction,
        asks whether it may answer it through the callback (see
        :meth:`dccrelay.waking.interactions.InteractionDeferrer.claim`).

        :param body: ``{"interaction": "<id>"}``.
        :return: ``{"owner": "bot"}``, or ``{"owner": "relay", "deferred":
            {"type", "ephemeral"}}``.
        :raise CommandError: (400) for another body.
        """
        return self._waking.claim(body)

    def send_command(self, body: Any) -> dict[str, Any]:
        """
        Forward a gateway command from the bot (``POST
        /relays/{alias}/commands`` or a websocket v2 frame) on the shards it
        concerns, paced to Discord's send limit.

        :param body: ``{"op": 3 | 8, "d": {...}}``, as the bot sent it.
        :return: ``{"op", "shards"}``, and for op 8 its ``nonce``.
        :raise CommandError: with the status that says why not: 400 (not
            a command the relay forwards), 409 (the bot is disabled), 429
            (too many commands or member requests waiting), 503 (the
            gateway session is not ready).
        """
        command = parse_command(body, self.settings.intents)
        if not self.enabled:
            raise CommandError(
                "the bot is disabled; register it again (PUT) first", status=409
            )
        targets = self.gateway.command_targets(command)
        if command.nonce is not None:
            self._member_requests.expect(command.nonce)
        self.gateway.send_command(command, targets)
        self.counters.commands += 1
        self.status_changed()
        result: dict[str, Any] = {"op": command.op, "shards": targets}
        if command.nonce is not None:
            result["nonce"] = command.nonce
        return result

    # -- resume points ------------------------------------------------------------

    def resume_points(self) -> list[SessionState]:
        """
        Where each shard can resume from, for the node's checkpoint: only
        the points that moved since they were last saved (see
        :meth:`GatewaySession.resume_points`).
        """
        return self.gateway.resume_points()

    def resume_points_unsaved(self, points: Sequence[SessionState]) -> None:
        """Saving ``points`` failed: offer them again at the next checkpoint."""
        self.gateway.resume_points_unsaved(points)

    # -- status -------------------------------------------------------------

    def snapshot(self, private: bool = False) -> RelaySnapshot:
        """
        The bot now; with ``private``, also what only its owner may see
        (settings, wakeUrl figures, shards' counts and seq).
        """
        channel = self._delivery.snapshot()
        counters = self.counters
        waking = self._waking
        # what every channel the bot had took, so that counts never go back
        delivered = channel.delivered + counters.earlier_delivered
        return RelaySnapshot(
            alias=self.alias,
            enabled=self.enabled,
            disable_reason=self.disable_reason,
            gateway_error=self.gateway.error,
            node=self.node,
            shards=self.gateway.shard_snapshots(private),
            delivery=replace(
                channel, dropped=channel.dropped + counters.earlier_dropped, delivered=delivered
            ),
            counters=DispatchCounts(
                received=counters.received,
                matched=counters.matched,
                delivered=delivered,
                commands=counters.commands,
                answers=counters.answers,
            ),
            interactions=waking.interaction_counts(),
            wake=waking.economy(),
            guild_snapshot=(
                GuildSnapshotCounts(**self._guilds.counts())
                if self.settings.guild_snapshot else None
            ),
            settings=self.settings if private else None,
            wake_url=waking.wake_url_snapshot() if private else None,
        )
