"""
``wakeUrl``: ask a sleeping bot's host to start, as soon as something
matches for it.

A host that scales to zero (a free web service, a serverless container)
starts on an HTTP request.  Delivery alone would get there too, but only
after its own connection attempts and their backoff; a request to the URL
the bot registered (often its health URL) starts the host at once, while the
dispatch waits in the bot's queue.

The rules:

- when a dispatch matches and the bot is not connected, the relay sends
  ``GET <wakeUrl>`` with ``User-Agent: dccrelay/<version>`` and nothing
  else: no credentials, no body (the URL may belong to the platform rather
  than to the bot);
- at most one request per ``interval`` seconds for a bot, and one at a time;
- the request (connecting, the answer and its body, which is read and
  dropped) must end within ``timeout`` seconds, or it is abandoned; an
  answer past the caps of :class:`~dccrelay.net.answer_caps.AnswerCaps`
  (headers, body) is cut off and counted as failed;
- any answer counts: what matters is that the host noticed.  A failure is
  counted and shown in the bot's status, never retried before the next
  interval;
- it goes through the same outbound rules as delivery
  (:mod:`dccrelay.net.guard`): redirects are not followed, and private
  addresses are refused unless the operator allows them.
"""

from __future__ import annotations

from typing import Any

import treq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from dccrelay import __version__
from dccrelay.delivery.errors import describe_connect_failure, describe_tls_failure
from dccrelay.net.answer_caps import AnswerTooLarge

#: seconds between two wake requests for one bot, at least
INTERVAL = 60.0

#: seconds one wake request may take, body included
TIMEOUT = 5.0


class WakeHook:
    """
    Wake requests for one bot.

    :param clock: for the interval and the timeout.
    :param http: a treq client that follows the outbound rules
        (:func:`dccrelay.net.answer_caps.outbound_http`).
    :param url: the bot's ``wakeUrl``.
    :param alias: the bot, for logs.
    :param interval: seconds between requests, at least.
    :param timeout: seconds a request may take.

    :ivar requests: requests started.
    :ivar failures: requests that got no answer (in time).
    :ivar last_error: why the latest one failed, for the bot's status; None
        once one is answered.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        http: Any,
        url: str,
        *,
        alias: str = "",
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
    ) -> None:
        self._clock = clock
        self._http = http
        self._url = url
        self._alias = alias
        self._interval = interval
        self._timeout = timeout
        self._last: float | None = None
        self._request: Deferred[Any] | None = None
        self._deadline: IDelayedCall | None = None
        self._timed_out = False
        self.requests = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_status: int | None = None

    def poke(self) -> bool:
        """
        Something matched while the bot is not connected: wake its host,
        unless a request was started less than ``interval`` seconds ago.

        :return: whether a request was started.
        """
        now = self._clock.seconds()
        if self._request is not None:
            return False
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        self.requests += 1
        try:
            request: Deferred[Any] = self._http.get(
                self._url,
                headers={b"User-Agent": [f"dccrelay/{__version__}".encode("ascii")]},
                allow_redirects=False,
            )
        except Exception:
            self.log.failure("{alias}: could not request its wakeUrl", alias=self._alias)
            self.failures += 1
            self.last_error = "the wakeUrl could not be requested"
            return True
        self._request = request
        self._timed_out = False
        self._deadline = self._clock.callLater(self._timeout, self._give_up, request)
        request.addCallback(self._answered)
        request.addCallbacks(
            self._woke, self._failed, callbackArgs=(request,), errbackArgs=(request,)
        )
        self.log.info("{alias}: requested its wakeUrl", alias=self._alias)
        return True

    def stop(self) -> None:
        """
        Abandon the request in flight, if any.
        """
        request, self._request = self._request, None
        self._cancel_deadline()
        if request is not None:
            request.cancel()

    def _give_up(self, request: Deferred[Any]) -> None:
        self._deadline = None
        if request is self._request:
            self._timed_out = True
            request.cancel()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _answered(self, response: Any) -> Deferred[int]:
        code = int(response.code)
        d: Deferred[Any] = treq.collect(response, lambda data: None)
        return d.addCallback(lambda _: code)

    def _woke(self, code: int, request: Deferred[Any]) -> None:
        if request is not self._request:
            return
        self._request = None
        self._cancel_deadline()
        self.last_status = code
        self.last_error = None

    def _failed(self, failure: Failure, request: Deferred[Any]) -> None:
        if request is not self._request:
            # stopped
            return
        self._request = None
        self._cancel_deadline()
        self.failures += 1
        problem = "the wakeUrl: " + self._describe(failure)
        self.last_error = problem
        self.log.info("{alias}: {problem}", alias=self._alias, problem=problem)

    def _describe(self, failure: Failure) -> str:
        if failure.check(AnswerTooLarge):
            return f"the answer was cut off: {failure.value}"
        if self._timed_out or failure.check(CancelledError):
            return f"no answer within {self._timeout:g} s"
        if failure.check(ResponseNeverReceived, ResponseFailed):
            reasons = getattr(failure.value, "reasons", None) or [failure]
            tls = describe_tls_failure(reasons[0])
            return tls or "the host closed the connection without answering"
        return describe_tls_failure(failure) or describe_connect_failure(failure)
