"""
One bot's gateway session: its shards, its identify limiter, and what
keeps them open: asking Discord for the gateway, retrying, resharding on
4011, resuming stored sessions and saving where each shard can resume.

It emits dispatches to its owner (the bot's relay) and knows nothing of
filters or delivery; the owner says how many handed-over dispatches are
not yet safe, which decides the resume points saved.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from dccrelay.gateway import codes
from dccrelay.gateway.commands import CommandError, GatewayCommand, shards_for
from dccrelay.gateway.limiter import IdentifyLimiter, SharedIdentifySlots
from dccrelay.gateway.rest import (
    DiscordHTTPError,
    DiscordREST,
    GatewayInfo,
    InvalidRequestBudgetSpent,
)
from dccrelay.gateway.resume_points import ResumeBook
from dccrelay.gateway.shard import GatewayTools, IShardOwner, Shard, ShardIdentity
from dccrelay.gateway.sieve import EventSieve
from dccrelay.net.tls import discord_tls_failure
from dccrelay.relay.settings import RelaySettings
from dccrelay.relay.snapshots import ShardSnapshot
from dccrelay.store import ISessions, SessionState

#: commands a shard may hold back for Discord's send limit before more are
#: refused (429)
MAX_WAITING_COMMANDS = 20

#: shard states (as shown in status) of a connection being opened
_OPENING = frozenset({"connecting", "identifying", "resuming"})


class IGatewayOwner(Interface):
    """
    What a gateway session reports to, and asks of, the bot's relay.
    """

    def dispatch_received(shard_id: int, data: bytes, payload: dict[str, Any]) -> None:
        """A dispatch from shard ``shard_id``: its original bytes and its parse."""

    def dispatch_passed_over(shard_id: int) -> None:
        """
        A dispatch from shard ``shard_id`` of a type the session's sieve
        does not want: not parsed, only counted.
        """

    def refused(reason: str) -> None:
        """Discord refused the bot for good; ``reason`` says what to fix."""

    def bot_user(user: Any) -> None:
        """A READY named the bot's user (its ``d.user``)."""

    def not_yet_safe() -> int | None:
        """
        How many of the newest dispatches handed to delivery Discord may
        still have to replay; None when no resume point may be saved now.
        """

    def status_changed() -> None:
        """
        What the session shows may have changed: its shards (their states,
        why they last closed) or its error.
        """


@implementer(IShardOwner)
class GatewaySession:
    """
    The shards of one bot and their life.

    :param settings: the bot's registration (token, intents, shards); the
        relay replaces it before a restart with new settings.
    :param shared_identify: identify slots shared with other nodes, per
        token (several nodes), or None.
    """

    _log = Logger()

    def __init__(
        self,
        alias: str,
        settings: RelaySettings,
        *,
        rest: DiscordREST,
        store: ISessions,
        tools: GatewayTools,
        owner: IGatewayOwner,
        shared_identify: Callable[[str], SharedIdentifySlots] | None = None,
    ) -> None:
        self.alias = alias
        self.settings = settings
        self._rest = rest
        self._store = store
        self._tools = tools
        self._owner = owner
        self._shared_identify = shared_identify
        # The shards report dispatches straight to the owner: one call less
        # on the hot path than forwarding them from here.
        self.dispatch_received = owner.dispatch_received
        self.dispatch_passed_over = owner.dispatch_passed_over
        #: the dispatch types the owner wants parsed (all, until it says),
        #: shared by the shards
        self.sieve = EventSieve()
        self.shards: list[Shard] = []
        self.resume = ResumeBook()
        #: why the session could not be opened, for status
        self.error: str | None = None
        self._limiter: IdentifyLimiter | None = None
        self._attempts = 0
        self._timer: IDelayedCall | None = None
        self._starting = False
        # stop() was called since the last start(): an opening under way ends
        self._stopped = False
        # After a 4011, at least this many shards (Discord wants more).
        self._min_shards = 1
        self._resharding = False

    @property
    def open_or_opening(self) -> bool:
        """Shards exist, or are being set up."""
        return bool(self.shards) or self._starting

    @property
    def opening(self) -> bool:
        """
        Being set up, or a shard is connecting, identifying or resuming: the
        work of opening is under way (not waiting for a slot or a retry).
        """
        return self._starting or any(shard.state in _OPENING for shard in self.shards)

    # -- opening -----------------------------------------------------------------

    def start(self, stored: dict[int, SessionState] | None = None) -> Deferred[None]:
        """
        Open the shards, resuming stored sessions.

        :param stored: the bot's stored sessions, if the caller loaded them
            already (the manager loads every bot's in one call at start-up);
            otherwise they are loaded here.
        """
        # An opening still under way (after a stop) goes on, for this start.
        self._stopped = False
        if self.open_or_opening:
            return succeed(None)
        self._starting = True

        def started(result: object) -> object:
            self._starting = False
            return result

        return self._start(stored).addBoth(started)

    @inlineCallbacks
    def _start(self, stored: dict[int, SessionState] | None) -> Any:
        if stored is None:
            stored = yield self._store.load_sessions(self.alias)
            if self._stopped or self.shards:
                return
        count = self._resumable(stored)
        if count is not None:
            # Every shard can RESUME: no need to ask Discord anything first.
            # Its limits and gateway URL are asked for if one must IDENTIFY.
            self._open_shards(count, None, stored, self._new_limiter(None))
            return
        info = yield self._gateway_info()
        if info is None or self._stopped or self.shards:
            return
        shards = self.settings.shards
        count = max(shards if isinstance(shards, int) else info.shards, self._min_shards)
        if isinstance(shards, int) and count > shards:
            self.error = (
                f"Discord requires more than the {shards} shards registered; using {count}"
            )
            self._owner.status_changed()
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
            info = yield self._rest.get_gateway_bot(self.settings.token)
        except DiscordHTTPError as e:
            if e.token_rejected:
                self._owner.refused(
                    "Discord rejected the token (HTTP 401): re-register with a valid "
                    "bot token from the Developer Portal"
                )
            elif isinstance(e, InvalidRequestBudgetSpent) and e.own_share:
                # Retries have backed off and still failed: stop spending what
                # every bot on this IP address shares.
                self._owner.refused(
                    f"{e.message}; disabled: fix the token or the bot's permissions, "
                    "then PUT the registration again"
                )
            elif isinstance(e, InvalidRequestBudgetSpent):
                self._retry(e.message)
            else:
                self._retry(f"GET /gateway/bot failed: HTTP {e.status}")
            return None
        except Exception as e:
            untrusted = discord_tls_failure(Failure(), self._rest.api_base)
            if untrusted is not None:
                self._log.warn("{alias}: {why}", alias=self.alias, why=untrusted)
            self._retry(untrusted or f"could not reach Discord: {type(e).__name__}")
            return None
        self.error = None
        self._attempts = 0
        self._owner.status_changed()
        return info

    def _new_limiter(self, info: GatewayInfo | None) -> IdentifyLimiter:
        shared = self._shared_identify
        slots = shared(self.settings.token) if shared is not None else None
        clock = self._tools.clock
        if info is None:
            return IdentifyLimiter(clock, shared=slots, ask=self._ask_limits)
        return IdentifyLimiter(
            clock, info.max_concurrency, info.remaining, info.reset_after, shared=slots
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
            identity = ShardIdentity(
                self.alias, self.settings.token, self.settings.intents, shard_id, count
            )
            self.shards.append(
                Shard(
                    identity, gateway_base=url, session=session, tools=self._tools,
                    limiter=limiter, owner=self, sieve=self.sieve,
                )
            )
        self._owner.status_changed()
        for shard in self.shards:
            shard.start()

    @inlineCallbacks
    def _ask_limits(self) -> Any:
        """
        A shard of a session that started by resuming must IDENTIFY: learn
        the bot's identify limits and gateway URL first.
        """
        limiter = self._limiter
        info = yield self._gateway_info()
        if info is None or limiter is None or limiter is not self._limiter:
            # The retry asks again; or the gateway was stopped meanwhile.
            return
        for shard in self.shards:
            shard.gateway_base = info.url
        limiter.update(info.max_concurrency, info.remaining, info.reset_after)

    def _retry(self, why: str) -> None:
        self.error = why
        self._owner.status_changed()
        delay = self._tools.retry_policy(self._attempts)
        self._attempts += 1
        self._log.info(
            "{alias}: {why}; retrying in {delay:.1f}s", alias=self.alias, why=why, delay=delay
        )
        self._timer = self._tools.clock.callLater(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._timer = None
        if self.shards and self._limiter is not None and not self._limiter.known:
            self._ask_limits()
        else:
            self.start()

    # -- closing -----------------------------------------------------------------

    def stop(self, code: int = codes.RESUMABLE_CLOSE) -> Deferred[Any]:
        """
        Close every shard; with the default code the sessions stay
        resumable and their latest resume points are saved.
        """
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        shards, self.shards = self.shards, []
        self._owner.status_changed()
        if self._limiter is not None:
            self._limiter.stop()
            self._limiter = None
        saves = []
        if code != codes.SESSION_ENDING_CLOSE:
            points = self._changed_points(shards)
            if points:
                saves.append(self._store.save_sessions([(self.alias, p) for p in points]))
        self.resume.clear()
        closing = [shard.stop(code) for shard in shards]
        return DeferredList(closing + saves, consumeErrors=True)

    def shard_snapshots(self, private: bool = False) -> tuple[ShardSnapshot, ...]:
        """Each shard now; with ``private``, its session counts and seq too."""
        if private:
            return tuple(
                ShardSnapshot(
                    shard.shard_id, shard.state, shard.last_close,
                    shard.identifies, shard.resumes, shard.seq,
                )
                for shard in self.shards
            )
        return tuple(
            ShardSnapshot(shard.shard_id, shard.state, shard.last_close) for shard in self.shards
        )

    # -- gateway commands from the bot -------------------------------------------

    def command_targets(self, command: GatewayCommand) -> list[int]:
        """
        The shards ``command`` goes on.

        :raise CommandError: 503 if the session or one of those shards is
            not ready, 429 if too many commands already wait for Discord's
            send limit on one of them.
        """
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
        return targets

    def send_command(self, command: GatewayCommand, targets: list[int]) -> None:
        """Send ``command`` on the ``targets`` shards, paced to Discord's limit."""
        payload = command.payload()
        for shard_id in targets:
            self.shards[shard_id].send_command(payload)

    # -- resume points -----------------------------------------------------------

    def resume_points(self) -> list[SessionState]:
        """
        Where each shard can resume from, so that a relay killed without
        warning loses nothing Discord can still replay: only the points that
        moved since they were last saved.  The caller saves them (the
        manager, for every relay in one store call) and calls
        :meth:`resume_points_unsaved` if that fails.
        """
        if not self.resume.moved:
            return []
        return self._changed_points(self.shards)

    def resume_points_unsaved(self, points: Sequence[SessionState]) -> None:
        """Saving ``points`` failed: offer them again at the next checkpoint."""
        self.resume.unsaved(points)

    def _changed_points(self, shards: list[Shard]) -> list[SessionState]:
        sessions = [shard.session for shard in shards if shard.session is not None]
        return self.resume.changed(sessions, self._owner.not_yet_safe())

    # -- IShardOwner ------------------------------------------------------------

    def session_changed(self, shard_id: int, state: SessionState | None) -> None:
        self.resume.saved(shard_id, state)
        if state is None:
            d = self._store.forget_session(self.alias, shard_id)
        else:
            d = self._store.save_session(self.alias, state)
        d.addErrback(self._log_store_failure)

    def ready_user(self, user: Any) -> None:
        self._owner.bot_user(user)

    def status_changed(self) -> None:
        self._owner.status_changed()

    def _log_store_failure(self, failure: Failure) -> None:
        self._log.failure("{alias}: saving session state failed", failure, alias=self.alias)

    def refused(self, reason: str) -> None:
        self._owner.refused(reason)

    def needs_more_shards(self) -> None:
        if self._resharding:
            return
        self._resharding = True
        self._min_shards = max(self._min_shards, len(self.shards) + 1)
        self._log.info(
            "{alias}: Discord requires sharding (4011); reconnecting with at least "
            "{count} shards", alias=self.alias, count=self._min_shards,
        )
        # Not from inside the shard's transition: this stops every shard.
        self._tools.clock.callLater(0, self._restart_with_more_shards)

    @inlineCallbacks
    def _restart_with_more_shards(self) -> Any:
        yield self.stop(codes.SESSION_ENDING_CLOSE)
        self._resharding = False
        yield self.start()
