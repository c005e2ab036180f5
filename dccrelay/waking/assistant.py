"""
Everything the relay does for a bot that is not connected when something
matches: wake its host (``wakeUrl``), show the person that the bot is
coming (typing), answer Discord for it when an interaction would otherwise
time out (deferral), and time how long waking took.

The relay's data path calls :meth:`WakeAssistant.matched` for each
dispatch going to the bot (and :meth:`WakeAssistant.handed_over` with what
it answered, once the channel has it, for the rare dispatch that must be
watched), and the delivery channel's owner calls
:meth:`WakeAssistant.delivered` with what the bot took.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from dccrelay.gateway.commands import CommandError
from dccrelay.ops.stats import WAKE_BUCKETS, LatencyHistogram
from dccrelay.relay.settings import RelaySettings
from dccrelay.relay.snapshots import InteractionCounts, WakeEconomy, WakeUrlSnapshot
from dccrelay.waking.interactions import DISCORD_DEADLINE, InteractionDeferrer
from dccrelay.waking.typing import TypingWhileWaking
from dccrelay.waking.wake_url import WakeHook
from dccrelay.waking.watch import DeliveryWatches, Watch


@dataclass(frozen=True)
class _Waiting:
    """A dispatch on its way to the bot, and what to do while it waits."""

    watch: Watch
    typing_in: str | None
    interaction: Any


class WakeAssistant:
    """
    One bot's waking.

    :param rest: Discord's REST API (typing, interaction callbacks).
    :param wake_http: a treq client for ``wakeUrl`` under the outbound
        rules, or None for no wake requests.
    :param on_change: called whenever what :meth:`interaction_counts` or
        :meth:`economy` show may have changed (later than a call of the
        relay's: the relay counts its own calls).
    """

    def __init__(
        self,
        alias: str,
        settings: RelaySettings,
        *,
        clock: IReactorTime,
        rest: Any,
        wake_http: Any,
        wake_interval: float,
        defer_after: float,
        on_change: Callable[[], object],
    ) -> None:
        self.alias = alias
        self._on_change = on_change
        self.settings = settings
        self._clock = clock
        self._rest = rest
        self._wake_http = wake_http
        self._wake_interval = wake_interval
        self._defer_after = defer_after
        self._typing = TypingWhileWaking(clock, self._post_typing, alias=alias)
        self._watches = DeliveryWatches(clock)
        self.deferrer = InteractionDeferrer(
            clock, self._defer_interaction, after=defer_after, alias=alias, on_change=on_change
        )
        self.hook = self._new_hook()
        #: seconds from matching to delivery of what matched while the bot
        #: was not connected
        self.wake_times = LatencyHistogram(WAKE_BUCKETS)
        self.slowest_wake = 0.0
        # wakeUrl requests made for an earlier wakeUrl
        self._earlier_wake_requests = 0

    def annotate(self, payload: bytes) -> bytes:
        """What the delivery channel writes for ``payload`` (deferral notes)."""
        return self.deferrer.annotate(payload)

    # -- the data path -----------------------------------------------------------

    def matched(self, data: bytes, payload: dict[str, Any], asleep: bool) -> _Waiting | None:
        """
        ``data`` is about to go to the bot; ``asleep``: the bot is not
        connected (or not known to be).  What comes back, if anything, goes
        to :meth:`handed_over` once the channel has the dispatch.
        """
        if self.hook is not None and asleep:
            # wake its host now rather than after the channel's own attempts
            self.hook.poke()
        # typing is for a bot that is waking, not one that is connected
        typing_in = self._typing_channel(payload) if asleep else None
        interaction = self._interaction(payload)
        if not (asleep or typing_in is not None or interaction is not None):
            return None
        watch = self._watches.watch(data, asleep)
        if asleep:
            watch.when_done(self._woke)
        return _Waiting(watch, typing_in, interaction)

    def handed_over(self, waiting: _Waiting) -> None:
        """
        The channel has the dispatch (and may have delivered it already, to
        a connected bot): start typing or the deferral clock if it still
        waits.
        """
        if waiting.typing_in is not None:
            self._typing.waiting(waiting.typing_in, waiting.watch.is_done)
        if waiting.interaction is not None:
            self.deferrer.arrived(waiting.interaction, waiting.watch, self.settings.defer_ephemeral)

    def claim(self, body: Any) -> dict[str, Any]:
        """
        The bot, which has an interaction, asks whether it may answer it
        through the callback (``POST /relays/{alias}/claim``; see
        :meth:`dccrelay.waking.interactions.InteractionDeferrer.claim`).

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
        deferred = self.deferrer.claim(interaction_id)
        if deferred is None:
            return {"owner": "bot"}
        return {"owner": "relay", "deferred": deferred}

    def delivered(self, payloads: Sequence[bytes]) -> None:
        """The bot took ``payloads``."""
        self._watches.delivered(payloads)

    def _typing_channel(self, payload: dict[str, Any]) -> str | None:
        """The channel to show typing in while ``payload`` waits, if any."""
        if not self.settings.typing_while_waking or payload.get("t") != "MESSAGE_CREATE":
            return None
        d = payload.get("d")
        channel_id = d.get("channel_id") if isinstance(d, dict) else None
        if isinstance(channel_id, str) and channel_id.isdigit():
            return channel_id
        return None

    def _interaction(self, payload: dict[str, Any]) -> Any:
        """The interaction in ``payload``, if the relay may have to defer it."""
        if not self.settings.defer_interactions or payload.get("t") != "INTERACTION_CREATE":
            return None
        return payload.get("d")

    def _woke(self, watch: Watch) -> None:
        assert watch.delivered_at is not None
        seconds = watch.delivered_at - watch.arrived_at
        self.wake_times.observe(seconds)
        self.slowest_wake = max(self.slowest_wake, seconds)
        self._on_change()

    # -- calls to Discord and the bot's host --------------------------------------

    def _post_typing(self, channel_id: str) -> Deferred[None]:
        # one more typing call (TypingWhileWaking.calls), on a timer
        self._on_change()
        return self._rest.trigger_typing(self.settings.token, channel_id)

    def _defer_interaction(
        self, interaction_id: str, token: str, response: dict[str, Any]
    ) -> Deferred[None]:
        # within what is left of Discord's 3 s, less a margin for the call
        left = DISCORD_DEADLINE - self._defer_after - 0.3
        return self._rest.create_interaction_response(
            self.settings.token, interaction_id, token, response, max_wait=max(left, 0.0)
        )

    def _new_hook(self) -> WakeHook | None:
        url = self.settings.wake_url
        if url is None or self._wake_http is None:
            return None
        return WakeHook(
            self._clock, self._wake_http, url, alias=self.alias, interval=self._wake_interval
        )

    # -- life ----------------------------------------------------------------------

    def apply(self, settings: RelaySettings) -> None:
        """New settings: a new ``wakeUrl`` gets a new hook (its count is kept)."""
        old, self.settings = self.settings, settings
        if old.wake_url != settings.wake_url:
            if self.hook is not None:
                self.hook.stop()
                self._earlier_wake_requests += self.hook.requests
            self.hook = self._new_hook()

    def stop(self) -> None:
        """No more typing, deferrals or wake requests."""
        self._typing.stop()
        self.deferrer.stop()
        if self.hook is not None:
            self.hook.stop()

    # -- what it shows -----------------------------------------------------------

    def interaction_counts(self) -> InteractionCounts:
        """Interactions deferred, and how the others went."""
        deferrer = self.deferrer
        return InteractionCounts(
            deferrer.deferred, deferrer.in_time, deferrer.answered_first, deferrer.failed
        )

    def economy(self) -> WakeEconomy:
        """What waking the bot cost and gained."""
        times = self.wake_times
        return WakeEconomy(
            count=times.count,
            sum_seconds=round(times.sum, 3),
            max_seconds=round(self.slowest_wake, 3),
            buckets=tuple(times.cumulative()),
            wake_requests=self.wake_requests,
            typing_calls=self.typing_calls,
            deferred_interactions=self.deferrer.deferred,
        )

    def wake_url_snapshot(self) -> WakeUrlSnapshot | None:
        """The wakeUrl's requests, if the bot has one."""
        hook = self.hook
        if hook is None:
            return None
        return WakeUrlSnapshot(hook.requests, hook.failures, hook.last_status, hook.last_error)

    @property
    def wake_requests(self) -> int:
        """wakeUrl requests made, for every wakeUrl the bot had."""
        hook = self.hook
        return self._earlier_wake_requests + (hook.requests if hook is not None else 0)

    @property
    def typing_calls(self) -> int:
        return self._typing.calls


#: what builds a bot's assistant, from the node's shared parts
WakeAssistantFactory = Callable[[str, RelaySettings], WakeAssistant]
