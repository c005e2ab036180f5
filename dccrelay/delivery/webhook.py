"""
Webhook delivery: for an ``http://`` or ``https://`` dst, for bot hosts
without websockets.

The wire protocol:

- the relay ``POST``\\ s a batch of dispatches to ``dst``, one batch in
  flight per bot, oldest first, with ``Content-Type: application/json``,
  ``User-Agent: dccrelay/<version>`` and this body (no spaces)::

      {"type":"dispatches","dispatches":[<payload>,...],"ids":[N,...]}

  each ``<payload>`` the gateway payload byte for byte as Discord sent it,
  and ``ids`` their outbox ids, in the same order (increasing, never
  repeated for a bot: a bot that remembers the highest id it handled can
  drop redelivered ones).  A batch holds at most ``batch_limit``
  dispatches and about ``batch_bytes`` bytes (:class:`DeliveryConfig`);
- it is signed per the Standard Webhooks specification: ``webhook-id``
  (``dcc-<first id>-<last id>``: the same on every retry of the batch,
  also after a relay restart: the batch's ids are stored in the outbox
  before it is first sent, and a batch sent again holds the same entries),
  ``webhook-timestamp`` (unix seconds of this attempt) and
  ``webhook-signature`` (``v1,`` then the base64 HMAC-SHA256 of
  ``<webhook-id>.<webhook-timestamp>.<body>``, keyed with the UTF-8 bytes of
  the bot's clientSecret), so the specification's verifier libraries
  accept it (given the secret's bytes, not a ``whsec_`` string);
- any 2xx answer acknowledges the whole batch; redirects are not followed
  (a 3xx is a failure, as the specification says);
- the answer is read within caps (:class:`~dccrelay.net.answer_caps.AnswerCaps`:
  its headers, and its body, which is dropped); past them the connection is
  cut and the attempt fails;
- any other answer, no answer within ``webhook_timeout`` seconds, or no
  connection, is retried with the same batch after a growing delay
  (:func:`default_retry_policy`), or after ``Retry-After`` on a 429 or 503; new
  dispatches wait behind it, in order;
- a 410 Gone stops delivery and disables the bot with a reason; its
  dispatches stay in the outbox until it registers again.
"""

from __future__ import annotations

import hashlib
import hmac
from base64 import b64encode
from email.utils import parsedate_to_datetime
from random import Random
from typing import Any, Callable

import treq
from automat import MethodicalMachine
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from zope.interface import implementer

from dccrelay.delivery import ChannelSnapshot, IChannelOwner, IDurableChannel, NoOwner
from dccrelay.delivery.config import DEFAULTS, DeliveryConfig
from dccrelay.delivery.errors import describe_connect_failure, describe_tls_failure
from dccrelay.delivery.feed import IFeed
from dccrelay.delivery.timers import Deadline, RetryTimer
from dccrelay.net.answer_caps import AnswerTooLarge
from dccrelay.store import OutboxCheckpoint

#: seconds a bot has to answer a POST (the default of
#: :attr:`DeliveryConfig.webhook_timeout`)
TIMEOUT = DEFAULTS.webhook_timeout

#: the default of :attr:`DeliveryConfig.webhook_retry_schedule`
RETRY_SCHEDULE = DEFAULTS.webhook_retry_schedule

# What status() shows for each state of the machine...
_SHOWN = {
    "new": "idle",
    "idle": "idle",
    "sending": "connecting",
    "backoff": "waiting to retry",
    "stopped": "stopped",
}
# ...except that in these a bot that took a batch within the last
# idle_timeout seconds shows as "connected": it is probably awake.
_MAY_BE_WARM = frozenset({"new", "idle", "sending"})


def default_retry_policy(random: Random, schedule: tuple[float, ...] = RETRY_SCHEDULE) -> Callable[[int], float]:
    """
    The default retry delays: :data:`RETRY_SCHEDULE`, each with ±20 %
    jitter so many bots failing together do not retry together.

    :return: seconds to wait, given the number of consecutive failures
        (from 1).
    """

    def delay(attempt: int) -> float:
        base = schedule[min(max(attempt, 1), len(schedule)) - 1]
        return base * random.uniform(0.8, 1.2)

    return delay


def sign(client_secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """
    The ``webhook-signature`` value for one attempt (Standard Webhooks,
    symmetric ``v1``).
    """
    signed = b"%s.%d.%s" % (webhook_id.encode("ascii"), timestamp, body)
    digest = hmac.new(client_secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return "v1," + b64encode(digest).decode("ascii")


class _Batch:
    """
    One batch: its entries, body and webhook-id, the same on every retry.
    """

    __slots__ = ("ids", "payloads", "body", "webhook_id", "recorded")

    def __init__(self, entries: list[tuple[int, bytes]], recorded: bool = False) -> None:
        self.ids = [entry_id for entry_id, _ in entries]
        self.payloads = [payload for _, payload in entries]
        self.body = self._body(self.payloads)
        self.webhook_id = f"dcc-{self.ids[0]}-{self.ids[-1]}"
        #: whether the outbox holds its boundaries (sent before)
        self.recorded = recorded

    def _body(self, payloads: list[bytes]) -> bytes:
        return (
            b'{"type":"dispatches","dispatches":['
            + b",".join(payloads)
            + b'],"ids":['
            + b",".join(b"%d" % entry_id for entry_id in self.ids)
            + b"]}"
        )

    def body_for(self, annotate: Callable[[bytes], bytes]) -> bytes:
        """
        The body of this attempt: the same on every retry, except for what
        ``annotate`` changed meanwhile (an interaction deferred since).
        """
        sent = [annotate(payload) for payload in self.payloads]
        if all(a is b for a, b in zip(sent, self.payloads)):
            return self.body
        return self._body(sent)


class _Answer(Exception):
    """
    The bot answered with a status that is not 2xx.
    """

    def __init__(self, code: int, retry_after: bytes | None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


@implementer(IDurableChannel)
class WebhookDelivery:
    """
    Delivers one bot's dispatches as signed webhook batches from its
    durable outbox, one batch in flight at a time.  Building it does no
    I/O: :meth:`start` does.

    :param reactor: for timers and the clock of ``webhook-timestamp``.
    :param alias: the bot's alias, for logs.
    :param dst: the ``http(s)://`` URL to POST to.
    :param client_secret: the HMAC key (its UTF-8 bytes).
    :param outbox: the bot's durable outbox (its
        :class:`~dccrelay.delivery.outbox.BotOutbox`).
    :param http: a treq ``HTTPClient`` (a ``StubTreq`` in tests).
    :param config: timeouts, batch sizes, retry schedule; ``idle_timeout``
        is how long after a success the bot counts as awake.
    :param owner: told of each batch the bot answered 2xx and of a 410;
        changes payloads as they are sent.
    :param random: for the retry jitter.
    """

    _machine = MethodicalMachine()
    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        alias: str,
        dst: str,
        client_secret: str,
        outbox: IFeed,
        http: Any,
        config: DeliveryConfig = DEFAULTS,
        owner: IChannelOwner | None = None,
        random: Random | None = None,
    ) -> None:
        if not dst.lower().startswith(("http://", "https://")):
            raise ValueError("a webhook dst must be an http:// or https:// URL")
        self._clock = reactor
        self._alias = alias
        self._dst = dst.encode("utf-8")
        self._client_secret = client_secret
        self._http = http
        self._config = config
        self._owner: IChannelOwner = owner if owner is not None else NoOwner()
        self._user_agent = config.user_agent.encode("utf-8")
        policy = config.webhook_retry_policy or default_retry_policy(
            random if random is not None else Random(), config.webhook_retry_schedule
        )
        # a plain method, not the input: automat builds a new function each
        # time an input is looked up, which a stored one would keep
        self._retry = RetryTimer(reactor, policy, self._retry_passed)
        self._deadline = Deadline(reactor, self._timed_out)
        # The snapshot shows "connected" until _warm_until, then not: no
        # event marks that moment but this timer, which tells the owner.
        self._cooled = Deadline(reactor, self._owner.status_changed)
        # the batch in flight, or to retry: the same until the bot takes it
        self._batch: _Batch | None = None
        self._request: Deferred[Any] | None = None
        self._timed_out_request = False
        self._kick_scheduled = False
        self._warm_until = float("-inf")
        self._delivered = 0
        self._last_error: str | None = None
        self._outbox = outbox

    # -- the machine ------------------------------------------------------------

    @_machine.state(initial=True, serialized="new")
    def _new(self) -> None:
        "Built; start() not called yet."

    @_machine.state(serialized="idle")
    def _idle(self) -> None:
        "Nothing in flight."

    @_machine.state(serialized="sending")
    def _sending(self) -> None:
        "A batch is POSTed; waiting for the answer."

    @_machine.state(serialized="backoff")
    def _backoff(self) -> None:
        "The last POST failed; waiting to send the batch again."

    @_machine.state(serialized="stopped")
    def _stopped(self) -> None:
        "Stopped, or the bot answered 410 Gone."

    @_machine.serializer()
    def _state_name(self, state: str) -> str:
        return state

    @_machine.input()
    def _begin(self) -> None:
        "start()."

    @_machine.input()
    def _post(self) -> None:
        "A batch is ready to go."

    @_machine.input()
    def _taken(self, batch: _Batch) -> None:
        "The bot answered 2xx."

    @_machine.input()
    def _refused(self, problem: str, retry_after: float | None) -> None:
        "The POST failed (no answer, or not 2xx)."

    @_machine.input()
    def _gone(self) -> None:
        "The bot answered 410 Gone."

    @_machine.input()
    def _retry_due(self) -> None:
        "The backoff is over."

    @_machine.input()
    def _stop(self) -> None:
        "stop()."

    @_machine.output()
    def _send(self) -> None:
        batch = self._batch
        assert batch is not None
        if batch.recorded:
            self._post_batch(batch)
            return
        # Its boundaries go into the outbox first: if the relay dies after
        # the bot took it, the next relay sends the same batch again.
        d = self._outbox.record_batch(batch.ids[0], batch.ids[-1])
        d.addCallbacks(
            self._recorded, self._record_failed, callbackArgs=(batch,), errbackArgs=(batch,)
        )

    def _recorded(self, _: object, batch: _Batch) -> None:
        if batch is self._batch and self._state_name() == "sending":
            batch.recorded = True
            self._post_batch(batch)

    def _record_failed(self, failure: Failure, batch: _Batch) -> None:
        if batch is self._batch and self._state_name() == "sending":
            self._owner.status_changed()
            self._refused(
                f"could not record the batch in the outbox ({failure.getErrorMessage()})", None
            )

    def _post_batch(self, batch: _Batch) -> None:
        timestamp = int(self._clock.seconds())
        try:
            body = batch.body_for(self._owner.annotate)
        except Exception:
            self.log.failure("{alias}: annotate failed", alias=self._alias)
            body = batch.body
        headers = {
            b"Content-Type": [b"application/json"],
            b"User-Agent": [self._user_agent],
            b"webhook-id": [batch.webhook_id.encode("ascii")],
            b"webhook-timestamp": [b"%d" % timestamp],
            b"webhook-signature": [
                sign(self._client_secret, batch.webhook_id, timestamp, body).encode("ascii")
            ],
        }
        self._timed_out_request = False
        self._deadline.start(self._config.webhook_timeout)
        try:
            request: Deferred[Any] = self._http.request(
                "POST", self._dst, data=body, headers=headers, allow_redirects=False
            )
        except Exception:
            # e.g. a URL treq cannot use; settings validation should stop
            # those, so this is logged with its traceback
            self.log.failure("Could not POST to {alias}'s bot", alias=self._alias)
            request = Deferred()
            request.errback(Failure(ValueError("bad dst")))
        request.addCallback(self._answered)
        self._request = request
        request.addCallbacks(self._succeeded, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    @_machine.output()
    def _acknowledge(self, batch: _Batch) -> None:
        self._request = None
        self._deadline.cancel()
        self._batch = None
        self._retry.succeeded()
        self._last_error = None
        self._warm_until = self._clock.seconds() + self._config.idle_timeout
        self._cooled.start(self._config.idle_timeout)
        self._outbox.take(batch.ids[-1])
        self._delivered += len(batch.ids)
        try:
            self._owner.channel_delivered(batch.payloads)
        except Exception:
            self.log.failure("{alias}: on_delivered failed", alias=self._alias)

    @_machine.output()
    def _send_next(self) -> None:
        self._kick()

    @_machine.output()
    def _cool_down(self) -> None:
        self._request = None
        self._deadline.cancel()
        self._warm_until = float("-inf")

    @_machine.output()
    def _schedule_retry(self, problem: str, retry_after: float | None) -> None:
        self._last_error = problem
        delay = self._retry.failed(retry_after)
        self.log.warn(
            "Could not deliver to {alias}'s bot ({problem}); {queued} dispatches wait,"
            " next attempt in {delay:.1f} s",
            alias=self._alias,
            problem=problem,
            queued=self._outbox.queued,
            delay=delay,
        )

    @_machine.output()
    def _report_gone(self) -> None:
        reason = (
            "the bot's webhook URL (dst) answered 410 Gone, so delivery stopped; "
            "register again (PUT) with a working dst to resume"
        )
        self._last_error = "the bot answered HTTP 410 Gone"
        self.log.warn("{alias}'s bot answered 410 Gone: stopping delivery", alias=self._alias)
        try:
            self._owner.bot_gone(reason)
        except Exception:
            self.log.failure("{alias}: on_gone failed", alias=self._alias)

    @_machine.output()
    def _forget_dropped_batch(self) -> None:
        batch = self._batch
        if batch is not None and batch.ids[0] <= self._outbox.gone_up_to:
            # Entries of the batch were dropped meanwhile (too old, or too
            # many): send what is left instead, under a new webhook-id.
            self._batch = None

    @_machine.output()
    def _cancel_all(self) -> None:
        self._retry.cancel()
        self._deadline.cancel()
        self._cooled.cancel()
        request, self._request = self._request, None
        if request is not None:
            request.cancel()

    _new.upon(_begin, enter=_idle, outputs=[])
    _idle.upon(_post, enter=_sending, outputs=[_send])
    # one batch in flight: what comes meanwhile waits behind it, in order
    _sending.upon(_taken, enter=_idle, outputs=[_acknowledge, _send_next])
    _sending.upon(_refused, enter=_backoff, outputs=[_cool_down, _schedule_retry])
    _sending.upon(_gone, enter=_stopped, outputs=[_cool_down, _report_gone])
    _backoff.upon(_retry_due, enter=_idle, outputs=[_forget_dropped_batch, _send_next])
    for _busy in (_new, _sending, _backoff, _stopped):
        _busy.upon(_post, enter=_busy, outputs=[])
    del _busy
    # news of a request cancelled by stop() changes nothing
    _stopped.upon(_taken, enter=_stopped, outputs=[])
    _stopped.upon(_refused, enter=_stopped, outputs=[])
    _stopped.upon(_gone, enter=_stopped, outputs=[])
    for _any in (_new, _idle, _sending, _backoff, _stopped):
        _any.upon(_stop, enter=_stopped, outputs=[_cancel_all])
    del _any

    # -- IDurableChannel ---------------------------------------------------------

    def start(self) -> None:
        """
        Load the outbox; what it holds is POSTed as it comes in.
        """
        # Each way in that may change what snapshot() shows tells the owner
        # (on the same reactor turn); deliver() does not: the owner calls it.
        self._owner.status_changed()
        self._begin()
        self._outbox.start(self._kick_soon)

    def deliver(self, payload: bytes, checkpoint: OutboxCheckpoint | None = None) -> None:
        """
        Append ``payload`` to the outbox; it is POSTed once stored, after
        what is before it.
        """
        try:
            self._outbox.append(payload, checkpoint)
        except Exception:
            self.log.failure("Could not deliver a dispatch to {alias}", alias=self._alias)

    def stop(self) -> Deferred[None]:
        """
        Cancel the request in flight and every timer; fires once the outbox
        writes made so far are stored.
        """
        self._owner.status_changed()
        self._stop()
        return self._outbox.stop()

    def unstored(self) -> int:
        """
        :return: dispatches given to :meth:`deliver` not in the store yet.
        """
        return self._outbox.unstored()

    def pending(self) -> list[bytes]:
        """
        :return: nothing: what waits is in the outbox, where the next
            channel for this bot finds it.
        """
        return []

    @property
    def connected(self) -> bool:
        """
        Whether the bot took a batch within the last ``idle_timeout``
        seconds (and has not failed since): it is probably awake.
        """
        return self._clock.seconds() < self._warm_until and self._state_name() in _MAY_BE_WARM

    def snapshot(self) -> ChannelSnapshot:
        state = self._state_name()
        shown = _SHOWN[state]
        if state in _MAY_BE_WARM and self._clock.seconds() < self._warm_until:
            shown = "connected"
        outbox = self._outbox
        return ChannelSnapshot(
            shown, outbox.queued, outbox.dropped, self._delivered, self._last_error
        )

    # -- sending ------------------------------------------------------------------

    def _retry_passed(self) -> None:
        self._owner.status_changed()
        self._retry_due()

    def _kick_soon(self) -> None:
        # Entries stored together arrive one callback each: gather them into
        # one batch by sending on the next reactor turn.
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self._clock.callLater(0, self._kick)

    def _kick(self) -> None:
        self._owner.status_changed()
        self._kick_scheduled = False
        if self._batch is None:
            self._batch = self._next_batch()
            if self._batch is None:
                return
        self._post()

    def _next_batch(self) -> _Batch | None:
        outbox = self._outbox
        entries = outbox.entries_after(0, self._config.batch_limit)
        if not entries:
            return None
        end = outbox.batch_end(entries[0][0])
        if end is not None:
            # Sent before (perhaps taken by the bot): the same batch again.
            again = [entry for entry in outbox.entries_after(0) if entry[0] <= end]
            if again[-1][0] == end:
                return _Batch(again, recorded=True)
            # Not all in memory (a batch larger than the outbox's window):
            # a new batch, under a new webhook-id.
        size = 0
        for count, (_, payload) in enumerate(entries):
            size += len(payload)
            if size > self._config.batch_bytes and count:
                entries = entries[:count]
                break
        return _Batch(entries)

    def _answered(self, response: Any) -> Deferred[Any]:
        # Read (and drop) the body, so the connection can be reused; the
        # deadline covers this too.
        code = response.code
        retry_after = response.headers.getRawHeaders(b"retry-after", [None])[0]

        def judged(_: object) -> int:
            if 200 <= code < 300:
                return int(code)
            raise _Answer(code, retry_after)

        d: Deferred[Any] = treq.collect(response, lambda data: None)
        return d.addCallback(judged)

    def _succeeded(self, code: int, batch: _Batch) -> None:
        if batch is self._batch:
            self._owner.status_changed()
            self._taken(batch)

    def _failed(self, failure: Failure, batch: _Batch) -> None:
        if batch is not self._batch or self._request is None:
            # cancelled by stop(), or an answer to a batch given up on
            return
        self._owner.status_changed()
        if failure.check(_Answer):
            answer: _Answer = failure.value  # type: ignore[assignment]
            if answer.code == 410:
                self._gone()
                return
            problem = f"the bot answered HTTP {answer.code}"
            retry_after = (
                self._retry_after(answer.retry_after) if answer.code in (429, 503) else None
            )
        else:
            problem = self._describe(failure)
            retry_after = None
        self._refused(problem, retry_after)

    def _describe(self, failure: Failure) -> str:
        if failure.check(AnswerTooLarge):
            return f"the bot's answer was cut off: {failure.value}"
        if self._timed_out_request or failure.check(CancelledError):
            return f"the bot did not answer within {self._config.webhook_timeout:g} s"
        reason = failure
        if failure.check(ResponseNeverReceived, ResponseFailed, RequestTransmissionFailed):
            reasons = getattr(failure.value, "reasons", None) or [failure]
            reason = reasons[0]
            tls = describe_tls_failure(reason)
            if tls is not None:
                return tls
            if failure.check(ResponseNeverReceived, ResponseFailed):
                return "the bot closed the connection without answering"
        tls = describe_tls_failure(reason)
        if tls is not None:
            return tls
        return describe_connect_failure(reason)

    def _retry_after(self, value: bytes | None) -> float | None:
        """
        Seconds from a ``Retry-After`` value (delay-seconds or an HTTP
        date), at least 1 and at most ``max_retry_after``; None if
        there is none or it makes no sense.
        """
        if value is None:
            return None
        text = value.decode("latin-1").strip()
        try:
            seconds = float(int(text))
        except ValueError:
            try:
                seconds = parsedate_to_datetime(text).timestamp() - self._clock.seconds()
            except (TypeError, ValueError, IndexError):
                return None
        return min(self._config.max_retry_after, max(1.0, seconds))

    def _timed_out(self) -> None:
        request = self._request
        if request is not None:
            self._timed_out_request = True
            request.cancel()
