"""
Tests for access control of the registration API (:mod:`dccrelay.web.access`,
:mod:`dccrelay.web.throttle`): the registration key, the operator key, the
owner's clientSecret, and failed attempts limited per client address.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.web.access import Access
from dccrelay.web.throttle import FailedAuthLimiter, client_key

from .api_harness import BODY, SECRET, Node, answer, basic, bearer

REGISTRATION_KEY = "registration-key-0123456789"
OPERATOR_KEY = "operator-key-0123456789abcdef"


class LimiterTests(SynchronousTestCase):
    """
    :class:`FailedAuthLimiter`: a bucket of failures per client address.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.limiter = FailedAuthLimiter(self.clock, burst=3, refill=10.0, max_clients=4)

    def test_burst_then_wait(self) -> None:
        """
        ``burst`` failures in a row are allowed; then the client waits for
        the bucket to refill, one failure per ``refill`` seconds.
        """
        for _ in range(3):
            self.assertIsNone(self.limiter.retry_after("192.0.2.1"))
            self.limiter.failed("192.0.2.1")
        self.assertEqual(self.limiter.retry_after("192.0.2.1"), 10)
        self.clock.advance(4)
        self.assertEqual(self.limiter.retry_after("192.0.2.1"), 6)
        self.clock.advance(6)
        self.assertIsNone(self.limiter.retry_after("192.0.2.1"))
        self.limiter.failed("192.0.2.1")
        self.assertEqual(self.limiter.retry_after("192.0.2.1"), 10)

    def test_per_network(self) -> None:
        """
        One network's failures do not slow another's.
        """
        for _ in range(3):
            self.limiter.failed("192.0.2.1")
        self.assertIsNotNone(self.limiter.retry_after("192.0.2.1"))
        self.assertIsNone(self.limiter.retry_after("198.51.100.1"))

    def test_ipv4_per_24(self) -> None:
        """
        IPv4 clients count per /24: guesses spread over the addresses of one
        block share one bucket (60 addresses once made 600 guesses in 1.1 s).
        """
        self.assertEqual(client_key("192.0.2.1"), "192.0.2.0/24")
        for n in range(3):
            self.limiter.failed(f"192.0.2.{n + 1}")
        self.assertIsNotNone(self.limiter.retry_after("192.0.2.200"))
        self.assertIsNone(self.limiter.retry_after("192.0.3.1"))

    def test_ipv6_per_64(self) -> None:
        """
        IPv6 clients count per /64: hopping addresses inside one's own
        block does not reset the count; IPv4-mapped addresses count as IPv4.
        """
        self.assertEqual(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:2:ffff::9"))
        self.assertNotEqual(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:3::1"))
        self.assertEqual(client_key("::ffff:192.0.2.1"), "192.0.2.0/24")
        for n in range(3):
            self.limiter.failed(f"2001:db8:1:2::{n + 1}")
        self.assertIsNotNone(self.limiter.retry_after("2001:db8:1:2::99"))

    def test_bounded_memory(self) -> None:
        """
        At most ``max_clients`` addresses are remembered, the least recently
        failing forgotten first; a refilled bucket is forgotten when seen.
        """
        for n in range(100):
            self.limiter.failed(f"10.{n}.0.1")
        self.assertEqual(len(self.limiter), 4)
        self.clock.advance(1000)
        for n in range(96, 100):
            self.assertIsNone(self.limiter.retry_after(f"10.{n}.0.1"))
        self.assertEqual(len(self.limiter), 0)


class AccessTestCase(SynchronousTestCase):
    def make_node(self, **access: Any) -> Node:
        self.limiter = FailedAuthLimiter(MemoryReactorClock(), burst=3, refill=10.0)
        node = Node(access=Access(limiter=self.limiter, **access))
        self.addCleanup(node.stop)
        return node


class RegistrationKeyTests(AccessTestCase):
    """
    With a registration key, creating a relay needs it; updating needs the
    owner's secret as before.
    """

    def setUp(self) -> None:
        self.node = self.make_node(registration_key=REGISTRATION_KEY, operator_key=OPERATOR_KEY)

    def test_create_needs_key(self) -> None:
        """
        Without the key the PUT is refused with 401 naming what is needed.
        """
        code, body, response = answer(self, self.node, "PUT", "/relays/cookout", BODY)
        self.assertEqual(code, 401)
        self.assertIn("registration key", body["error"])
        self.assertEqual(
            response.headers.getRawHeaders("WWW-Authenticate"), ['Bearer realm="dccrelay"']
        )
        self.assertEqual(self.node.manager.relays, {})

    def test_create_with_bearer(self) -> None:
        """
        ``Authorization: Bearer <registration key>`` creates.
        """
        code, _, _ = answer(
            self, self.node, "PUT", "/relays/cookout", BODY, headers=bearer(REGISTRATION_KEY)
        )
        self.assertEqual(code, 201)

    def test_create_with_header_and_basic(self) -> None:
        """
        ``Dcc-Registration-Key`` next to Basic credentials creates, and the
        same idempotent PUT later updates with the Basic credentials.
        """
        headers = {**basic(), "Dcc-Registration-Key": [REGISTRATION_KEY]}
        self.assertEqual(answer(self, self.node, "PUT", "/relays/a", BODY, headers)[0], 201)
        self.assertEqual(answer(self, self.node, "PUT", "/relays/a", BODY, headers)[0], 200)

    def test_operator_key_creates(self) -> None:
        """
        The operator key may create relays too.
        """
        code, _, _ = answer(
            self, self.node, "PUT", "/relays/cookout", BODY, headers=bearer(OPERATOR_KEY)
        )
        self.assertEqual(code, 201)

    def test_wrong_key(self) -> None:
        """
        A wrong key is refused and counted as a failed attempt.
        """
        code, body, _ = answer(
            self, self.node, "PUT", "/relays/cookout", BODY, headers=bearer("x" * 20)
        )
        self.assertEqual((code, body), (401, {"error": "wrong registration key"}))
        self.assertEqual(len(self.limiter), 1)

    def test_update_needs_secret_not_key(self) -> None:
        """
        Updating an existing relay needs its secret; the registration key is
        not a way around it.
        """
        answer(self, self.node, "PUT", "/relays/cookout", BODY, headers=bearer(REGISTRATION_KEY))
        changed = {**BODY, "dst": "wss://evil.example/"}
        code, body, _ = answer(
            self, self.node, "PUT", "/relays/cookout", changed, headers=bearer(REGISTRATION_KEY)
        )
        self.assertEqual(code, 401)
        self.assertIn("owner", body["error"])
        self.assertEqual(self.node.manager.relays["cookout"].settings.dst, BODY["dst"])
        code, _, _ = answer(self, self.node, "PUT", "/relays/cookout", changed, headers=basic())
        self.assertEqual(code, 200)


class OperatorKeyTests(AccessTestCase):
    """
    The operator key sees every bot in full and may disable or delete any;
    it cannot change a bot's settings.
    """

    def setUp(self) -> None:
        self.node = self.make_node(operator_key=OPERATOR_KEY)
        for alias in ("a", "b"):
            body = {**BODY, "token": f"{BODY['token']}.{alias}"}
            self.assertEqual(answer(self, self.node, "PUT", f"/relays/{alias}", body)[0], 201)

    def test_list_full(self) -> None:
        """
        ``GET /relays`` with the operator key lists every bot's settings
        (token masked); without it, only the public status.
        """
        _, public, _ = answer(self, self.node, "GET", "/relays")
        self.assertNotIn("settings", public["relays"][0])
        code, full, _ = answer(self, self.node, "GET", "/relays", headers=bearer(OPERATOR_KEY))
        self.assertEqual(code, 200)
        self.assertEqual([r["settings"]["dst"] for r in full["relays"]], [BODY["dst"]] * 2)
        self.assertNotIn(BODY["token"], repr(full))
        self.assertNotIn(SECRET, repr(full))

    def test_wrong_operator_key(self) -> None:
        """
        A wrong Bearer token on ``GET /relays`` is a 401, not the public list.
        """
        code, body, _ = answer(self, self.node, "GET", "/relays", headers=bearer("nope" * 5))
        self.assertEqual((code, body), (401, {"error": "wrong operator key"}))

    def test_get_disable_delete(self) -> None:
        """
        The operator gets, disables (with a reason saying who) and deletes
        any bot.
        """
        headers = bearer(OPERATOR_KEY)
        self.assertEqual(answer(self, self.node, "GET", "/relays/a", headers=headers)[0], 200)
        code, status, _ = answer(self, self.node, "POST", "/relays/a/disable", headers=headers)
        self.assertEqual(code, 200)
        self.assertEqual(
            status["lastDisableReason"], "disabled by the relay's operator through the API"
        )
        code, body, _ = answer(self, self.node, "DELETE", "/relays/b", headers=headers)
        self.assertEqual((code, body), (200, {"alias": "b", "deleted": True}))

    def test_cannot_update(self) -> None:
        """
        The operator key cannot change a bot's settings (so it cannot
        redirect a bot's dispatches).
        """
        changed = {**BODY, "dst": "wss://elsewhere.example/"}
        code, _, _ = answer(
            self, self.node, "PUT", "/relays/a", changed, headers=bearer(OPERATOR_KEY)
        )
        self.assertEqual(code, 401)
        self.assertEqual(self.node.manager.relays["a"].settings.dst, BODY["dst"])

    def test_no_operator_key_configured(self) -> None:
        """
        Without an operator key, no Bearer token is one.
        """
        node = self.make_node()
        answer(self, node, "PUT", "/relays/a", BODY)
        self.assertEqual(answer(self, node, "GET", "/relays", headers=bearer(""))[0], 401)
        code, _, _ = answer(self, node, "DELETE", "/relays/a", headers=bearer("anything-at-all"))
        self.assertEqual(code, 401)
        self.assertIn("a", node.manager.relays)


class ThrottleTests(AccessTestCase):
    """
    Failed attempts are limited per client address: over the limit, 429
    with Retry-After, before the credentials are even checked.
    """

    def setUp(self) -> None:
        self.node = self.make_node(operator_key=OPERATOR_KEY)
        answer(self, self.node, "PUT", "/relays/cookout", BODY)

    def test_guessing_secrets(self) -> None:
        """
        After three wrong secrets the fourth attempt, even with the right
        secret, is answered 429 with Retry-After; other routes that check
        credentials are throttled too.
        """
        for n in range(3):
            code, body, _ = answer(
                self, self.node, "GET", "/relays/cookout", headers=basic(f"guess-{n:04d}")
            )
            self.assertEqual((code, body["error"]), (401, "wrong clientSecret for this alias"))
        code, body, response = answer(self, self.node, "GET", "/relays/cookout", headers=basic())
        self.assertEqual(code, 429)
        self.assertIn("too many failed authentication attempts", body["error"])
        self.assertEqual(response.headers.getRawHeaders("Retry-After"), ["10"])
        code, _, _ = answer(self, self.node, "DELETE", "/relays/cookout", headers=basic())
        self.assertEqual(code, 429)
        self.assertIn("cookout", self.node.manager.relays)

    def test_public_routes_unaffected(self) -> None:
        """
        A throttled client still gets what needs no credentials.
        """
        for n in range(4):
            answer(self, self.node, "GET", "/relays/cookout", headers=basic(f"guess-{n:04d}"))
        self.assertEqual(answer(self, self.node, "GET", "/relays")[0], 200)
        self.assertEqual(answer(self, self.node, "GET", "/healthz")[0], 200)

    def test_success_not_counted(self) -> None:
        """
        Right credentials never count against a client.
        """
        for _ in range(10):
            self.assertEqual(
                answer(self, self.node, "GET", "/relays/cookout", headers=basic())[0], 200
            )
        self.assertEqual(len(self.limiter), 0)


class CreationRaceTests(SynchronousTestCase):
    """
    Two PUTs for a new alias at once: the second must not update, without
    the secret, what the first created.
    """

    def test_second_creator_refused(self) -> None:
        """
        While the first creation waits for the store, a second PUT with other
        settings and no credentials is refused once the first has finished.
        """
        node = Node()
        self.addCleanup(node.stop)
        gate: Deferred[None] = Deferred()
        original = node.store.create_relay

        def slow_create(alias: str, settings: dict[str, Any]) -> Deferred[bool]:
            d = original(alias, settings)
            return gate.addCallback(lambda _: d) if not gate.called else d

        node.store.create_relay = slow_create  # type: ignore[method-assign]
        first = node.treq.put(
            "http://relay.example/relays/cookout", json=BODY
        )
        evil = {**BODY, "dst": "wss://evil.example/", "clientSecret": "evil:secret-123"}
        second = node.treq.put("http://relay.example/relays/cookout", json=evil)
        gate.callback(None)
        node.treq.flush()
        self.assertEqual(self.successResultOf(first).code, 201)
        self.assertEqual(self.successResultOf(second).code, 401)
        self.assertEqual(node.manager.relays["cookout"].settings.dst, BODY["dst"])
