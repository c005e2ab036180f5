"""
One bot's relay: its gateway shards, its compiled filter and its delivery
channel, and the rule for what to restart when its settings change.

Data flows one way through it: shard -> filter -> delivery channel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from random import Random
from typing import Any, Callable, Sequence, cast

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from dccrelay.commands import (
    CommandError,
    answers_request,
    command_answer,
    parse_command,
    shards_for,
)
from dccrelay.delivery import IDeliveryChannel, IDurableChannel
from dccrelay.gateway import codes
from dccrelay.gateway.limiter import IdentifyLimiter, SharedIdentifySlots
from dccrelay.gateway.rest import DiscordHTTPError, DiscordREST, GatewayInfo
from dccrelay.gateway.shard import Connect, Shard
from dccrelay.guild_snapshot import GuildSnapshot, bot_user_id
from dccrelay.interactions import DEFER_AFTER, DISCORD_DEADLINE, InteractionDeferrer
from dccrelay.resume_points import ResumePoints
from dccrelay.settings import RelaySettings
from dccrelay.stats import WAKE_BUCKETS, LatencyHistogram
from dccrelay.store import IRelayStore, OutboxCheckpoint, SessionState
from dccrelay.tls import discord_tls_failure
from dccrelay.wake import TypingWhileWaking
from dccrelay.wake_url import INTERVAL as WAKE_INTERVAL
from dccrelay.wake_url import WakeHook
from dccrelay.watch import DeliveryWatches, Watch

Predicate = Callable[[dict[str, Any]], bool]

#: commands a shard may hold back for Discord's send limit before more are
#: refused (429)
MAX_WAITING_COMMANDS = 20

#: member requests of one bot waiting for their answers, at most
MAX_MEMBER_REQUESTS = 100

#: seconds a member request's answers are waited for
MEMBER_REQUEST_TIMEOUT = 120.0


@dataclass
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
    #: (:func:`dccrelay.outbound.outbound_http`); None: no wake requests
    wake_http: Any = None
    #: seconds between two wake requests for one bot, at least
    wake_interval: float = WAKE_INTERVAL
    #: seconds a matching interaction may take to reach a bot that asked
    #: for deferInteractions before the relay defers it
    defer_after: float = DEFER_AFTER


class Counters:
    """
    What a relay has seen, for status and metrics.
    """

    __slots__ = (
        "received", "matched", "earlier_delivered", "earlier_dropped", "commands", "answers",
        "earlier_wake_requests", "wake_times", "slowest_wake",
    )

    def __init__(self) -> None:
        self.received = 0
        self.matched = 0
        # Gateway commands the bot sent, and answers to its member requests
        # delivered although its criteria did not match them.
        self.commands = 0
        self.answers = 0
        # wakeUrl requests made for an earlier wakeUrl
        self.earlier_wake_requests = 0
        #: seconds from matching to delivery of what matched while the bot
        #: was not connected
        self.wake_times = LatencyHistogram(WAKE_BUCKETS)
        self.slowest_wake = 0.0
        # What the bot's earlier delivery channels (before a new dst or
        # secret) delivered and dropped, so that status counts never go back.
        self.earlier_delivered = 0
        self.earlier_dropped = 0


class Relay:
    """
    One registered bot.
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
        self._predicate = env.compile_filter(settings.filter, settings.criteria)
        self._typing = TypingWhileWaking(env.clock, self._post_typing, alias=alias)
        self._watches = DeliveryWatches(env.clock)
        self._deferrer = InteractionDeferrer(
            env.clock, self._defer_interaction, after=env.defer_after, alias=alias
        )
        # nonce of each member request the bot made -> when to stop waiting
        # for its answers
        self._member_requests: dict[str, float] = {}
        # opt-in (guildSnapshot): the bot's guilds, for its cold starts
        self._snapshot = GuildSnapshot(bot_user_id(settings.token))
        self._wake = self._new_wake_hook()
        self._delivery = self._new_delivery(())
        self.shards: list[Shard] = []
        self._limiter: IdentifyLimiter | None = None
        self._gateway_error: str | None = None
        self._gateway_attempts = 0
        self._gateway_timer: IDelayedCall | None = None
        self._starting = False
        # After a 4011, at least this many shards (Discord wants more).
        self._min_shards = 1
        self._resharding = False
        self._resume_points = ResumePoints()
        # What each shard's stored session says, as far as this relay knows,
        # and whether a dispatch came since: the checkpoint of thousands of
        # idle bots then writes nothing.
        self._saved_points: dict[int, SessionState] = {}
        self._points_moved = False
        #: the node running this relay, when several share a store
        self.node: str | None = None
        self.counters = Counters()

    # -- lifecycle ----------------------------------------------------------------

    def start(self, stored: dict[int, SessionState] | None = None) -> Deferred[None]:
        """
        Open the gateway session, resuming stored shard sessions.

        :param stored: the relay's stored sessions, if the caller loaded them
            already (the manager loads every bot's in one call at start-up);
            otherwise they are loaded here.
        """
        if not self.enabled or self.shards or self._starting:
            return succeed(None)
        self._starting = True

        def started(result: object) -> object:
            self._starting = False
            return result

        return self._start_gateway(stored).addBoth(started)

    @inlineCallbacks
    def _start_gateway(self, stored: dict[int, SessionState] | None) -> Any:
        if stored is None:
            stored = yield self._env.store.load_sessions(self.alias)
            if not self.enabled or self.shards:
                return
        count = self._resumable(stored)
        if count is not None:
            # Every shard can RESUME: no need to ask Discord anything first.
            # Its limits and gateway URL are asked for if one must IDENTIFY.
            self._open_shards(count, None, stored, self._new_limiter(None))
            return
        info = yield self._gateway_info()
        if info is None or not self.enabled or self.shards:
            return
        shards = self.settings.shards
        count = max(shards if isinstance(shards, int) else info.shards, self._min_shards)
        if isinstance(shards, int) and count > shards:
            self._gateway_error = (
                f"Discord requires more than the {shards} shards registered; using {count}"
            )
        self._open_shards(count, info.url, stored, self._new_limiter(info))

    def _resumable(self, stored: dict[int, SessionState]) -> int | None:
        """
        The shard count, if ``stored`` has a session for every shard.
        """
        if not stored:
            return None
        shards = self.settings.shards
        counts = {session.shard_count for session in stored.values()}
        if len(counts) != 1:
            return None
        (count,) = counts
        if count < self._min_shards or (isinstance(shards, int) and count != shards):
            return None
        if set(stored) != set(range(count)):
            return None
        return count

    @inlineCallbacks
    def _gateway_info(self) -> Any:
        """
        ``GET /gateway/bot``, or None (a fatal error or a retry is under way).
        """
        try:
            info = yield self._env.rest.get_gateway_bot(self.settings.token)
        except DiscordHTTPError as e:
            if e.token_rejected:
                self._fatal(
                    "Discord rejected the token (HTTP 401): re-register with a valid "
                    "bot token from the Developer Portal"
                )
            else:
                self._retry_gateway(f"GET /gateway/bot failed: HTTP {e.status}")
            return None
        except Exception as e:
            untrusted = discord_tls_failure(Failure(), self._env.rest.api_base)
            if untrusted is not None:
                self._log.warn("{alias}: {why}", alias=self.alias, why=untrusted)
            self._retry_gateway(untrusted or f"could not reach Discord: {type(e).__name__}")
            return None
        self._gateway_error = None
        self._gateway_attempts = 0
        return info

    def _new_limiter(self, info: GatewayInfo | None) -> IdentifyLimiter:
        shared = self._env.shared_identify
        shared_slots = shared(self.settings.token) if shared is not None else None
        if info is None:
            return IdentifyLimiter(self._env.clock, shared=shared_slots, ask=self._ask_limits)
        return IdentifyLimiter(
            self._env.clock, info.max_concurrency, info.remaining, info.reset_after,
            shared=shared_slots,
        )

    def _open_shards(
        self,
        count: int,
        url: str | None,
        stored: dict[int, SessionState],
        limiter: IdentifyLimiter,
    ) -> None:
        self._limiter = limiter
        for shard_id in range(count):
            session = stored.get(shard_id)
            if session is not None and session.shard_count != count:
                session = None
            self.shards.append(self._new_shard(shard_id, count, url, session))
        for shard in self.shards:
            shard.start()

    @inlineCallbacks
    def _ask_limits(self) -> Any:
        """
        A shard of a relay that started by resuming must IDENTIFY: learn the
        bot's identify limits and gateway URL first.
        """
        limiter = self._limiter
        info = yield self._gateway_info()
        if info is None or limiter is None or limiter is not self._limiter:
            # The retry asks again; or the gateway was stopped meanwhile.
            return
        for shard in self.shards:
            shard.gateway_base = info.url
        limiter.update(info.max_concurrency, info.remaining, info.reset_after)

    def _retry_gateway(self, why: str) -> None:
        self._gateway_error = why
        delay = self._env.retry_policy(self._gateway_attempts)
        self._gateway_attempts += 1
        self._log.info(
            "{alias}: {why}; retrying in {delay:.1f}s", alias=self.alias, why=why, delay=delay
        )
        self._gateway_timer = self._env.clock.callLater(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._gateway_timer = None
        if self.shards and self._limiter is not None and not self._limiter.known:
            self._ask_limits()
        else:
            self.start()

    def _new_shard(
        self, shard_id: int, count: int, url: str | None, session: SessionState | None
    ) -> Shard:
        assert self._limiter is not None
        return Shard(
            alias=self.alias,
            token=self.settings.token,
            intents=self.settings.intents,
            shard_id=shard_id,
            shard_count=count,
            gateway_base=url,
            session=session,
            clock=self._env.clock,
            random=self._env.random,
            connect=self._env.connect,
            limiter=self._limiter,
            on_dispatch=partial(self._on_dispatch, shard_id),
            on_session=partial(self._save_session, shard_id),
            on_fatal=self._fatal,
            retry_policy=self._env.retry_policy,
            on_reshard=self._reshard,
        )

    def _new_delivery(self, initial: Any) -> IDeliveryChannel:
        return self._env.make_delivery(
            alias=self.alias,
            dst=self.settings.dst,
            client_secret=self.settings.client_secret,
            initial=initial,
            protocol=self.settings.delivery_protocol,
            # a webhook answering 410 Gone disables the bot, as a fatal
            # close code does
            on_gone=self._fatal,
            on_delivered=self._on_delivered,
            on_command=partial(command_answer, self.send_command),
            annotate=self._deferrer.annotate,
        )

    def _new_wake_hook(self) -> WakeHook | None:
        url = self.settings.wake_url
        if url is None or self._env.wake_http is None:
            return None
        return WakeHook(
            self._env.clock,
            self._env.wake_http,
            url,
            alias=self.alias,
            interval=self._env.wake_interval,
        )

    def _stop_waking(self) -> None:
        self._typing.stop()
        self._deferrer.stop()
        if self._wake is not None:
            self._wake.stop()

    def stop_gateway(self, code: int = codes.RESUMABLE_CLOSE) -> Deferred[Any]:
        """
        Close every shard; with the default code the sessions stay
        resumable and their latest seq is saved.
        """
        if self._gateway_timer is not None and self._gateway_timer.active():
            self._gateway_timer.cancel()
        self._gateway_timer = None
        shards, self.shards = self.shards, []
        if self._limiter is not None:
            self._limiter.stop()
            self._limiter = None
        saves = []
        if code != codes.SESSION_ENDING_CLOSE:
            points = self._moved_resume_points(shards)
            if points:
                saves.append(self._env.store.save_sessions([(self.alias, p) for p in points]))
        self._resume_points.clear()
        self._saved_points.clear()
        closing = [shard.stop(code) for shard in shards]
        return DeferredList(closing + saves, consumeErrors=True)

    @inlineCallbacks
    def stop(self) -> Any:
        """
        Stop everything, keeping Discord sessions resumable.
        """
        self._stop_waking()
        yield self.stop_gateway()
        yield self._delivery.stop()

    @inlineCallbacks
    def forget(self) -> Any:
        """
        Stop everything and end the Discord sessions (the bot is deleted).
        """
        self._stop_waking()
        yield self.stop_gateway(codes.SESSION_ENDING_CLOSE)
        yield self._delivery.stop()

    # -- settings -------------------------------------------------------------

    @inlineCallbacks
    def apply(self, settings: RelaySettings) -> Any:
        """
        Change only what the new settings change; re-enable if disabled.
        """
        old, self.settings = self.settings, settings
        if old.gateway_key() != settings.gateway_key():
            # another bot, or a new session whose GUILD_CREATEs fill it again
            self._snapshot = GuildSnapshot(bot_user_id(settings.token))
        if old.filter_key() != settings.filter_key():
            self._predicate = self._env.compile_filter(settings.filter, settings.criteria)
        if old.wake_url != settings.wake_url:
            if self._wake is not None:
                self._wake.stop()
                self.counters.earlier_wake_requests += self._wake.requests
            self._wake = self._new_wake_hook()
        # Disabled (perhaps by a webhook's 410): a fresh channel resumes.
        if old.delivery_key() != settings.delivery_key() or not self.enabled:
            previous = self._delivery
            yield previous.stop()
            ended = previous.status()
            self.counters.earlier_delivered += cast(int, ended["delivered"])
            self.counters.earlier_dropped += cast(int, ended["dropped"])
            self._delivery = self._new_delivery(previous.pending())
        if old.gateway_key() != settings.gateway_key() and (self.shards or self._starting):
            # Another token or intents: the old session is of no more use.
            yield self.stop_gateway(codes.SESSION_ENDING_CLOSE)
        self.enabled = True
        yield self.start()

    @inlineCallbacks
    def disable(self, reason: str) -> Any:
        """
        End the gateway session until the bot registers again.
        """
        self.enabled = False
        self.disable_reason = reason
        self._stop_waking()
        yield self.stop_gateway(codes.SESSION_ENDING_CLOSE)

    def _reshard(self) -> None:
        if self._resharding:
            return
        self._resharding = True
        self._min_shards = max(self._min_shards, len(self.shards) + 1)
        self._log.info(
            "{alias}: Discord requires sharding (4011); reconnecting with at least "
            "{count} shards", alias=self.alias, count=self._min_shards,
        )
        # Not from inside the shard's transition: this stops every shard.
        self._env.clock.callLater(0, self._restart_with_more_shards)

    @inlineCallbacks
    def _restart_with_more_shards(self) -> Any:
        yield self.stop_gateway(codes.SESSION_ENDING_CLOSE)
        self._resharding = False
        yield self.start()

    def _fatal(self, reason: str) -> None:
        if not self.enabled:
            return
        # Not from inside the shard's transition: disabling stops the shard.
        self._env.clock.callLater(0, self._on_fatal, self.alias, reason)

    # -- the data path ------------------------------------------------------------

    def _on_dispatch(self, shard_id: int, data: bytes, payload: dict[str, Any]) -> None:
        counters = self.counters
        counters.received += 1
        self._points_moved = True
        if self.settings.guild_snapshot:
            self._snapshot.observe(payload)
        try:
            matched = self._predicate(payload)
        except Exception:
            self._log.failure("{alias}: the filter raised", alias=self.alias)
            return
        # The answers to the bot's own member requests reach it whatever
        # its criteria say.
        answer = bool(self._member_requests) and self._answers_request(payload)
        if matched or answer:
            if matched:
                counters.matched += 1
            else:
                counters.answers += 1
            self._resume_points.handed_over(shard_id, payload["s"])
            self._deliver(shard_id, data, payload)

    def _answers_request(self, payload: dict[str, Any]) -> bool:
        nonce = answers_request(payload, self._member_requests)
        if nonce is None:
            return False
        d = payload["d"]
        index, count = d.get("chunk_index"), d.get("chunk_count")
        if payload.get("t") == "RATE_LIMITED" or (
            isinstance(index, int) and isinstance(count, int) and index >= count - 1
        ):
            # the last answer to that request
            del self._member_requests[nonce]
        return True

    # -- gateway commands from the bot ------------------------------------------

    def guild_snapshot(self) -> dict[str, Any] | None:
        """
        ``GET /relays/{alias}/snapshot``: the bot's guilds as its gateway
        last described them, or None when the bot did not ask for them
        (:mod:`dccrelay.guild_snapshot`).
        """
        if not self.settings.guild_snapshot:
            return None
        return self._snapshot.document()

    def claim_interaction(self, body: Any) -> dict[str, Any]:
        """
        ``POST /relays/{alias}/claim``: the bot, which has an interaction,
        asks whether it may answer it through the callback (see
        :meth:`dccrelay.interactions.InteractionDeferrer.claim`).

        :param body: ``{"interaction": "<id>"}``.
        :return: ``{"owner": "bot"}``, or ``{"owner": "relay", "deferred":
            {"type", "ephemeral"}}``.
        :raise CommandError: (400) for another body.
        """
        interaction_id = body.get("interaction") if isinstance(body, dict) else None
        if not (isinstance(interaction_id, str) and interaction_id.isdigit() and len(body) == 1):
            raise CommandError(
                'the body must be {"interaction": "<the interaction\'s id>"}', "/interaction"
            )
        deferred = self._deferrer.claim(interaction_id)
        if deferred is None:
            return {"owner": "bot"}
        return {"owner": "relay", "deferred": deferred}

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
        shards = self.shards
        if not shards:
            raise CommandError(
                "the bot's gateway session is not open yet", status=503, retry_after=5.0
            )
        targets = shards_for(command, len(shards))
        for shard_id in targets:
            shard = shards[shard_id]
            if shard.state != "ready":
                raise CommandError(
                    f"the bot's gateway shard {shard_id} is {shard.state}, not ready",
                    status=503,
                    retry_after=5.0,
                )
            if shard.commands_waiting >= MAX_WAITING_COMMANDS:
                raise CommandError(
                    f"{shard.commands_waiting} commands already wait for Discord's send "
                    f"limit on shard {shard_id} (120 a minute, heartbeats included)",
                    status=429,
                    retry_after=30.0,
                )
        if command.nonce is not None:
            now = self._env.clock.seconds()
            requests = self._member_requests
            for nonce in [n for n, until in requests.items() if until <= now]:
                del requests[nonce]
            if len(requests) >= MAX_MEMBER_REQUESTS and command.nonce not in requests:
                raise CommandError(
                    f"{len(requests)} member requests still wait for their answers",
                    status=429,
                    retry_after=MEMBER_REQUEST_TIMEOUT,
                )
            requests[command.nonce] = now + MEMBER_REQUEST_TIMEOUT
        payload = command.payload()
        for shard_id in targets:
            shards[shard_id].send_command(payload)
        self.counters.commands += 1
        result: dict[str, Any] = {"op": command.op, "shards": targets}
        if command.nonce is not None:
            result["nonce"] = command.nonce
        return result

    def _deliver(self, shard_id: int, data: bytes, payload: dict[str, Any]) -> None:
        channel = self._delivery
        asleep = channel.status()["state"] != "connected"
        if self._wake is not None and asleep:
            # asleep, or not known to be awake: wake its host now rather
            # than after the channel's own attempts
            self._wake.poke()
        # typing is for a bot that is waking, not one that is connected
        typing_in = self._typing_channel(payload) if asleep else None
        interaction = self._interaction(payload)
        watch = None
        if asleep or typing_in is not None or interaction is not None:
            watch = self._watches.watch(data, asleep)
            if asleep:
                watch.when_done(self._woke)
        if IDurableChannel.providedBy(channel):
            # Stored with the dispatch: once it is durable, Discord need
            # not replay it after a restart.
            checkpoint = None
            shards = self.shards
            if shard_id < len(shards) and isinstance(payload.get("s"), int):
                session = shards[shard_id].session
                if session is not None:
                    checkpoint = OutboxCheckpoint(
                        self.alias, shard_id, session.session_id, payload["s"]
                    )
            channel.deliver(data, checkpoint)
        else:
            channel.deliver(data)
        if typing_in is not None and watch is not None:
            self._typing.waiting(typing_in, watch.is_done)
        if interaction is not None and watch is not None:
            self._deferrer.arrived(interaction, watch, self.settings.defer_ephemeral)

    def _interaction(self, payload: dict[str, Any]) -> Any:
        """
        The interaction in ``payload``, if the relay may have to defer it.
        """
        if not self.settings.defer_interactions or payload.get("t") != "INTERACTION_CREATE":
            return None
        return payload.get("d")

    def _defer_interaction(
        self, interaction_id: str, token: str, response: dict[str, Any]
    ) -> Deferred[None]:
        # within what is left of Discord's 3 s, less a margin for the call
        left = DISCORD_DEADLINE - self._env.defer_after - 0.3
        return self._env.rest.create_interaction_response(
            self.settings.token, interaction_id, token, response, max_wait=max(left, 0.0)
        )

    def _woke(self, watch: Watch) -> None:
        assert watch.delivered_at is not None
        seconds = watch.delivered_at - watch.arrived_at
        self.counters.wake_times.observe(seconds)
        self.counters.slowest_wake = max(self.counters.slowest_wake, seconds)

    def wake_economy(self) -> dict[str, Any]:
        """
        What waking this bot cost and gained: the time dispatches that
        matched while it was not connected took to reach it, and the calls
        made meanwhile.
        """
        times = self.counters.wake_times
        wake = self._wake
        return {
            "asleepDeliveries": {
                "count": times.count,
                "sumSeconds": round(times.sum, 3),
                "maxSeconds": round(self.counters.slowest_wake, 3),
                "buckets": dict(times.cumulative()),
            },
            "wakeRequests": self.counters.earlier_wake_requests
            + (wake.requests if wake is not None else 0),
            "typingCalls": self._typing.calls,
            "deferredInteractions": self._deferrer.deferred,
        }

    def _typing_channel(self, payload: dict[str, Any]) -> str | None:
        """
        The channel to show typing in while ``payload`` waits, if any.
        """
        if not self.settings.typing_while_waking or payload.get("t") != "MESSAGE_CREATE":
            return None
        d = payload.get("d")
        channel_id = d.get("channel_id") if isinstance(d, dict) else None
        if isinstance(channel_id, str) and channel_id.isdigit():
            return channel_id
        return None

    def _on_delivered(self, payloads: Sequence[bytes]) -> None:
        self._watches.delivered(payloads)

    def _post_typing(self, channel_id: str) -> Deferred[None]:
        return self._env.rest.trigger_typing(self.settings.token, channel_id)

    def _not_yet_safe(self) -> int:
        """
        How many of the newest matched dispatches Discord may have to
        replay: those still queued in memory, or for a durable channel those
        not yet in the store.
        """
        channel = self._delivery
        if IDurableChannel.providedBy(channel):
            return channel.unstored()
        return cast(int, channel.status()["queued"])

    def _save_session(self, shard_id: int, state: SessionState | None) -> None:
        if state is None:
            self._saved_points.pop(shard_id, None)
            d = self._env.store.forget_session(self.alias, shard_id)
        else:
            self._saved_points[shard_id] = state
            d = self._env.store.save_session(self.alias, state)
        d.addErrback(self._log_store_failure)

    def _log_store_failure(self, failure: Failure) -> None:
        self._log.failure("{alias}: saving session state failed", failure, alias=self.alias)

    def resume_points(self) -> list[SessionState]:
        """
        Where each shard can resume from, so that a relay killed without
        warning loses nothing Discord can still replay: only the points that
        moved since they were last saved.  The caller saves them (the
        manager, for every relay in one store call) and calls
        :meth:`resume_points_unsaved` if that fails.
        """
        if not self._points_moved:
            return []
        return self._moved_resume_points(self.shards)

    def resume_points_unsaved(self, points: Sequence[SessionState]) -> None:
        """
        Saving ``points`` failed: offer them again at the next checkpoint.
        """
        for point in points:
            if self._saved_points.get(point.shard_id) == point:
                del self._saved_points[point.shard_id]
        self._points_moved = True

    def _moved_resume_points(self, shards: list[Shard]) -> list[SessionState]:
        channel = self._delivery
        if IDurableChannel.providedBy(channel) and channel.unstored():
            # Each dispatch being stored raises the stored seq itself, in its
            # own transaction (OutboxCheckpoint); a save now could land after
            # one and lower the seq below a stored dispatch, which Discord
            # would then replay as a duplicate.
            return []
        resume_points = self._resume_points
        resume_points.settle(self._not_yet_safe())
        moved = []
        for shard in shards:
            session = shard.session
            if session is not None:
                point = replace(session, seq=resume_points.resume_seq(shard.shard_id, session.seq))
                if self._saved_points.get(shard.shard_id) != point:
                    self._saved_points[shard.shard_id] = point
                    moved.append(point)
        # A point held back before an undelivered dispatch moves once that
        # is delivered, with no new dispatch to say so.
        self._points_moved = bool(resume_points)
        return moved

    # -- status -------------------------------------------------------------

    def public_status(self) -> dict[str, Any]:
        """
        What anyone may see: no token, secret, dst or criteria.
        """
        delivery = self._delivery.status()
        return {
            "alias": self.alias,
            "enabled": self.enabled,
            "lastDisableReason": self.disable_reason,
            "gatewayError": self._gateway_error,
            "node": self.node,
            "shards": [
                {"id": shard.shard_id, "state": shard.state, "lastClose": shard.last_close}
                for shard in self.shards
            ],
            "delivery": {"state": delivery["state"]},
            "queued": delivery["queued"],
            "dropped": cast(int, delivery["dropped"]) + self.counters.earlier_dropped,
            "lastDeliveryError": delivery["lastError"],
            "interactions": {
                "deferred": self._deferrer.deferred,
                "inTime": self._deferrer.in_time,
                "answeredFirst": self._deferrer.answered_first,
                "deferFailed": self._deferrer.failed,
            },
            "wake": self.wake_economy(),
            **(
                {"guildSnapshot": self._snapshot.status()}
                if self.settings.guild_snapshot
                else {}
            ),
            "counters": {
                "received": self.counters.received,
                "matched": self.counters.matched,
                "commands": self.counters.commands,
                "answers": self.counters.answers,
                "delivered": cast(int, delivery["delivered"]) + self.counters.earlier_delivered,
            },
        }

    def full_status(self) -> dict[str, Any]:
        """
        What the bot's owner may see: status and settings, token masked.
        """
        status = self.public_status()
        status["settings"] = settings_status(self.settings)
        for entry, shard in zip(status["shards"], self.shards):
            entry["identifies"] = shard.identifies
            entry["resumes"] = shard.resumes
            entry["seq"] = shard.seq
        wake = self._wake
        if wake is not None:
            status["wakeUrl"] = {
                "requests": wake.requests,
                "failures": wake.failures,
                "lastStatus": wake.last_status,
                "lastError": wake.last_error,
            }
        return status


def settings_status(s: RelaySettings) -> dict[str, Any]:
    """
    A registration's settings as its owner sees them: the token masked.
    """
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
