"""
Tests for :mod:`dccrelay.waking.wake_url`: one bounded request to a sleeping
bot's ``wakeUrl``, at most once per interval; and when the relay makes it.
"""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from dccrelay.net.guard import NoRedirectHTTPClient
from dccrelay.waking.wake_url import TIMEOUT, WakeHook
from dccrelay.web.status_json import full_json

from .relay_harness import RelayHarness

URL = "https://bot.example/healthz"


class Host(Resource):
    """
    The bot's host: answers ``code``, or nothing at all while ``hang``.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.code = 200
        self.hang = False

    def render(self, request: Request) -> bytes | int:
        self.requests.append(request)
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        return b"starting up" * 100


class WakeHookTests(SynchronousTestCase):
    """
    WakeHook.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.host = Host()
        self.treq = StubTreq(self.host)
        self.hook = WakeHook(self.clock, self.treq, URL, alias="cookout", interval=60.0)

    def poke(self) -> bool:
        started = self.hook.poke()
        self.treq.flush()
        return started

    def test_request(self) -> None:
        """
        A GET to the wakeUrl, with the relay's User-Agent and no
        credentials; its answer is read and dropped.
        """
        self.assertTrue(self.poke())
        [request] = self.host.requests
        self.assertEqual((request.method, request.uri), (b"GET", b"/healthz"))
        self.assertTrue(request.getHeader(b"user-agent").startswith(b"dccrelay/"))
        self.assertIsNone(request.getHeader(b"authorization"))
        self.assertEqual((self.hook.requests, self.hook.failures), (1, 0))
        self.assertEqual(self.hook.last_status, 200)

    def test_once_per_interval(self) -> None:
        """
        However many dispatches match, one request per interval.
        """
        self.assertTrue(self.poke())
        self.clock.advance(30)
        self.assertFalse(self.poke())
        self.clock.advance(29.9)
        self.assertFalse(self.poke())
        self.clock.advance(0.1)
        self.assertTrue(self.poke())
        self.assertEqual(len(self.host.requests), 2)

    def test_any_answer_counts(self) -> None:
        """
        A host that answers 503 while it starts was woken all the same.
        """
        self.host.code = 503
        self.poke()
        self.assertEqual((self.hook.failures, self.hook.last_error), (0, None))
        self.assertEqual(self.hook.last_status, 503)

    def test_timeout(self) -> None:
        """
        A request with no answer is abandoned after TIMEOUT seconds and
        counted as a failure, with a reason; nothing is retried before the
        interval.
        """
        self.host.hang = True
        self.poke()
        self.clock.advance(TIMEOUT - 0.1)
        self.assertEqual(self.hook.failures, 0)
        self.clock.advance(0.1)
        self.assertEqual(self.hook.failures, 1)
        self.assertEqual(self.hook.last_error, f"the wakeUrl: no answer within {TIMEOUT:g} s")
        self.assertFalse(self.poke())
        self.assertEqual(len(self.host.requests), 1)

    def test_no_redirects(self) -> None:
        """
        The request never follows a redirect (the outbound client's rule,
        asked for here too).
        """
        seen: list[dict[str, Any]] = []

        class Recording(NoRedirectHTTPClient):
            def request(self, method: str, url: Any, **kwargs: Any) -> Any:
                seen.append(kwargs)
                return super().request(method, url, **kwargs)

        hook = WakeHook(self.clock, Recording(self.treq._agent), URL)
        hook.poke()
        self.treq.flush()
        self.assertIs(seen[0]["allow_redirects"], False)

    def test_stop(self) -> None:
        """
        Stopping abandons the request in flight without counting it.
        """
        self.host.hang = True
        self.poke()
        self.hook.stop()
        self.assertEqual(self.hook.failures, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RelayWakeTests(SynchronousTestCase):
    """
    When a relay requests its bot's wakeUrl.
    """

    def setUp(self) -> None:
        self.harness = RelayHarness(wake_interval=60.0)

    def message(self) -> bytes:
        return self.harness.dispatch("MESSAGE_CREATE", {"channel_id": "42", "content": "hi"})

    def test_asleep(self) -> None:
        """
        A dispatch that matches while the bot is not connected requests the
        wakeUrl, once per interval.
        """
        relay = self.harness.relay(self, wake_url=URL)
        self.message()
        self.message()
        self.assertEqual([url for url, _ in self.harness.wake_http.requests], [URL])
        self.harness.wake_http.pending[0].errback(Exception("refused"))
        self.harness.clock.advance(60)
        self.message()
        self.assertEqual(len(self.harness.wake_http.requests), 2)
        self.assertEqual(full_json(relay.snapshot(private=True))["wakeUrl"]["requests"], 2)

    def test_awake(self) -> None:
        """
        Nothing is requested while the bot is connected, nor for what does
        not match.
        """
        self.harness.relay(self, wake_url=URL)
        self.harness.channel.state = "connected"
        self.message()
        self.harness.channel.state = "idle"
        self.harness.dispatch("TYPING_START", {"channel_id": "42"})
        self.assertEqual(self.harness.wake_http.requests, [])

    def test_without_wake_url(self) -> None:
        """
        A bot that registered no wakeUrl gets no request, and its status
        says nothing of one.
        """
        relay = self.harness.relay(self)
        self.message()
        self.assertEqual(self.harness.wake_http.requests, [])
        self.assertNotIn("wakeUrl", full_json(relay.snapshot(private=True)))

    def test_new_wake_url(self) -> None:
        """
        A new wakeUrl takes effect at once, with a fresh interval.
        """
        relay = self.harness.relay(self, wake_url=URL)
        self.message()
        self.successResultOf(relay.apply(self.harness.settings(wake_url=URL + "?again")))
        self.message()
        self.assertEqual(
            [url for url, _ in self.harness.wake_http.requests], [URL, URL + "?again"]
        )
