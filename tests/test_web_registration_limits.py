"""
Tests for :mod:`dccrelay.web.registration_limits`: new bot tokens are
limited per client network and per alias (issue 17, item 5).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.web.access import Access
from dccrelay.web.api_request import APIRequest
from dccrelay.web.registration_limits import RegistrationLimits, RegistrationRates
from dccrelay.web.responses import HTTPError
from dccrelay.web.throttle import AliasGuessLimiter
from tests.api_harness import BODY, SECRET, Node, answer, basic


OPERATOR_KEY = "operator-key-0123456789"


class LimitsTests(SynchronousTestCase):
    """
    :class:`RegistrationLimits` on its own.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.limits = RegistrationLimits(
            self.clock, RegistrationRates(client_burst=3, client_refill=60.0, alias_burst=2, alias_refill=100.0)
        )

    def test_per_network_burst_then_refill(self) -> None:
        """A network gets its burst of new tokens, then one per refill period; another network is not slowed."""
        for n in range(3):
            self.limits.new_token(f"192.0.2.{n}", f"alias{n}")
        with self.assertRaises(HTTPError) as raised:
            self.limits.new_token("192.0.2.77", "other")
        self.assertEqual(raised.exception.code, 429)
        self.assertIn("from your network", raised.exception.message)
        self.assertEqual(raised.exception.headers, {b"Retry-After": b"60"})
        self.limits.new_token("198.51.100.1", "other")
        self.clock.advance(60)
        self.limits.new_token("192.0.2.77", "third")

    def test_per_alias(self) -> None:
        """One alias's token changes are limited whatever the networks they come from."""
        self.limits.new_token("192.0.2.1", "cookout")
        self.limits.new_token("198.51.100.1", "cookout")
        with self.assertRaises(HTTPError) as raised:
            self.limits.new_token("203.0.113.1", "cookout")
        self.assertIn("too many token changes for 'cookout'", raised.exception.message)
        self.assertEqual(raised.exception.headers, {b"Retry-After": b"100"})

    def test_refused_not_counted(self) -> None:
        """A refused attempt spends nothing: the other bucket is left as it was."""
        self.limits.new_token("192.0.2.1", "cookout")
        self.limits.new_token("192.0.2.2", "cookout")
        for _ in range(5):
            self.assertRaises(HTTPError, self.limits.new_token, "198.51.100.1", "cookout")
        for n in range(3):
            self.limits.new_token("198.51.100.1", f"alias{n}")


class APITests(SynchronousTestCase):
    """
    The registration API counts creations and token changes, and only those.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        limits = RegistrationLimits(
            self.clock, RegistrationRates(client_burst=3, client_refill=60.0, alias_burst=2, alias_refill=100.0)
        )
        self.node = Node(
            max_relays=50, access=Access(operator_key=OPERATOR_KEY, registrations=limits)
        )
        self.addCleanup(self.node.stop)

    def put(self, alias: str, token: str, **kwargs: Any) -> tuple[int, Any, Any]:
        return answer(self, self.node, "PUT", f"/relays/{alias}", {**BODY, "token": token}, **kwargs)

    def test_flood_of_new_tokens(self) -> None:
        """
        PUTs with a new token each get 429 with Retry-After once the client's
        network spent its burst; nothing is registered for them.
        """
        for n in range(3):
            code, body, _ = self.put(f"bot{n}", f"MTEx.Gg.token{n}")
            self.assertEqual(code, 201, body)
        code, body, response = self.put("bot3", "MTEx.Gg.token3")
        self.assertEqual(code, 429, body)
        self.assertIn("too many new registrations and token changes", body["error"])
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"60"])
        self.assertNotIn("bot3", self.node.manager.relays)

    def test_same_token_not_counted(self) -> None:
        """Updating other settings, with the same token, is not limited."""
        self.assertEqual(self.put("bot", "MTEx.Gg.token")[0], 201)
        for n in range(5):
            code, body, _ = answer(
                self, self.node, "PUT", "/relays/bot", {**BODY, "intents": 4608 + (n % 2) * 512},
                headers=basic(),
            )
            self.assertEqual(code, 200, body)

    def test_token_changes_per_alias(self) -> None:
        """The owner's token changes for one alias are limited per alias."""
        self.assertEqual(self.put("bot", "MTEx.Gg.first")[0], 201)
        self.assertEqual(self.put("bot", "MTEx.Gg.second", headers=basic())[0], 200)
        code, body, _ = self.put("bot", "MTEx.Gg.third", headers=basic())
        self.assertEqual(code, 429, body)
        self.assertIn("too many token changes for 'bot'", body["error"])
        self.assertEqual(self.node.manager.relays["bot"].settings.token, "MTEx.Gg.second")


    def test_operator_not_limited(self) -> None:
        """
        The operator's key provisions as many bots as the node takes: the
        limits are for strangers (Discord's budget still has its shares).
        """
        operator = {"Authorization": [f"Bearer {OPERATOR_KEY}"]}
        for n in range(5):
            code, body, _ = self.put(f"bot{n}", f"MTEx.Gg.token{n}", headers=operator)
            self.assertEqual(code, 201, body)
        # nor did the operator spend the network's allowance
        self.assertEqual(self.put("stranger", "MTEx.Gg.stranger")[0], 201)


class AliasGuessTests(SynchronousTestCase):
    """
    Failed authentications are limited per alias too, from every network
    together; a network that authenticated for the alias before is not
    held back, so the owner is not locked out by strangers' guesses.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.guesses = AliasGuessLimiter(self.clock, burst=3, refill=20.0)
        self.node = Node(access=Access(guesses=self.guesses))
        self.addCleanup(self.node.stop)

    def get(self, secret: str, host: str) -> tuple[int, Any]:
        self.node.treq._agent._serverFactory.requestFactory = _from(host)  # type: ignore[attr-defined]
        code, body, _ = answer(self, self.node, "GET", "/relays/bot", headers=basic(secret))
        return code, body

    def test_spread_guesses_limited_owner_not(self) -> None:
        """Guesses from three networks use the alias's burst; a fourth network waits; the owner's network does not."""
        self.assertEqual(answer(self, self.node, "PUT", "/relays/bot", BODY)[0], 201)
        self.assertEqual(self.get(SECRET, "192.0.2.10")[0], 200)
        for network in ("198.51.100.1", "203.0.113.1", "198.18.0.1"):
            self.assertEqual(self.get("admin:wrong-guess", network)[0], 401)
        code, body = self.get("admin:wrong-guess", "198.18.1.1")
        self.assertEqual(code, 429, body)
        self.assertIn("too many failed authentications for 'bot'", body["error"])
        self.assertEqual(self.get(SECRET, "198.18.2.1")[0], 429)
        self.assertEqual(self.get(SECRET, "192.0.2.99")[0], 200)
        self.clock.advance(20)
        self.assertEqual(self.get(SECRET, "198.18.2.1")[0], 200)


def _from(host: str) -> Any:
    """A request class whose client is ``host``, as StubTreq's are all the same."""

    class FromHost(APIRequest):
        def getClientAddress(self) -> IPv4Address:
            return IPv4Address("TCP", host, 40000)

    return FromHost
