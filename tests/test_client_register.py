"""
Tests for :mod:`dccrelay.client.register`: the bot's side of the
registration API, through ``StubTreq`` against the relay's real resource
tree (with Discord and the bot's endpoint faked in memory).
"""

from __future__ import annotations

import json
from random import Random
from typing import Any, TypeVar

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from dccrelay.client import (
    RegistrationError,
    delete,
    disable,
    register,
    registration_body,
    status,
)
from dccrelay.client.register import basic_authorization, relay_url_for
from dccrelay.filters import compile_criteria
from dccrelay.relay.manager import RelayManager
from dccrelay.relay.relay import RelayEnvironment
from dccrelay.relay.settings import parse_settings
from dccrelay.web.access import Access
from dccrelay.web.site import build_resource
from tests.memory_store import MemoryRelayStore
from tests.relay_harness import FakeREST, RecordingChannel

T = TypeVar("T")

RELAY = "http://relay.example"
SECRET = "admin:c2VjcmV0c2VjcmV0"
NEW_SECRET = "admin:bmV3LXNlY3JldC1ub3c="
TOKEN = "MTEx.Gg.token"
DST = "ws://127.0.0.1:9999/dcc/v1/cookout"
CRITERIA = {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout\\b"}}


class RelayUnderTest:
    """
    The relay's resource tree with a manager whose neighbours are in
    memory, and a ``StubTreq`` over it.

    :param prefix: path segments under which the relay is mounted, as
        behind a reverse proxy.
    """

    def __init__(
        self,
        allow_private_dst: bool = True,
        prefix: tuple[bytes, ...] = (),
        registration_key: str | None = None,
    ) -> None:
        self.clock = MemoryReactorClock()
        self.store = MemoryRelayStore()
        self.channels: list[RecordingChannel] = []
        env = RelayEnvironment(
            clock=self.clock,
            random=Random(0),
            store=self.store,
            rest=FakeREST(),  # type: ignore[arg-type]
            connect=lambda url, listener: Deferred(),
            compile_filter=compile_criteria,
            make_delivery=self._make_delivery,
            retry_policy=lambda attempt: 1.0,
        )
        self.manager = RelayManager(env, self.store, max_relays=3)
        self.store.open()
        self.manager.startService()
        relay = build_resource(
            self.manager,
            lambda body: parse_settings(
                body, compile_filter=compile_criteria, allow_private_dst=allow_private_dst
            ),
            access=Access(registration_key=registration_key),
        )
        root = relay
        for segment in reversed(prefix):
            parent = Resource()
            parent.putChild(segment, root)
            root = parent
        self.treq = StubTreq(root)

    def _make_delivery(self, **kwargs: Any) -> RecordingChannel:
        channel = RecordingChannel(**kwargs)
        self.channels.append(channel)
        return channel

    def stop(self) -> None:
        self.manager.stopService()


class RegisterTests(SynchronousTestCase):
    """
    ``register``, ``status``, ``disable`` and ``delete`` against the real
    resource tree.
    """

    def setUp(self) -> None:
        self.relay = RelayUnderTest()
        self.addCleanup(self.relay.stop)
        self.http = self.relay.treq

    def result(self, d: Deferred[T]) -> T:
        return self.successResultOf(d)

    def refused(self, d: Deferred[Any]) -> RegistrationError:
        failure = self.failureResultOf(d, RegistrationError)
        return failure.value  # type: ignore[return-value]

    def register(self, **overrides: Any) -> Deferred[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "token": TOKEN, "dst": DST, "client_secret": SECRET, "criteria": CRITERIA,
        }
        arguments.update(overrides)
        return register(RELAY, "cookout", http=self.http, **arguments)

    def test_register_creates_and_returns_status(self) -> None:
        """
        ``register`` creates the bot and fires with the relay's full status:
        settings as sent, token masked.
        """
        answer = self.result(self.register(intents=4608))
        self.assertEqual(answer["alias"], "cookout")
        self.assertTrue(answer["enabled"])
        self.assertEqual(answer["settings"]["dst"], DST)
        self.assertEqual(answer["settings"]["criteria"], CRITERIA)
        self.assertEqual(answer["settings"]["intents"], 4608)
        self.assertNotIn(TOKEN, json.dumps(answer))
        self.assertEqual(self.relay.channels[0].kwargs["dst"], DST)

    def test_register_is_idempotent(self) -> None:
        """
        Registering again with the same settings (every start-up) succeeds
        and changes nothing: no new delivery channel.
        """
        self.result(self.register())
        again = self.result(self.register())
        self.assertTrue(again["enabled"])
        self.assertEqual(len(self.relay.channels), 1)

    def test_optional_fields(self) -> None:
        """
        The optional fields of DESIGN.md reach the relay under their JSON
        names.
        """
        answer = self.result(self.register(shards=1, filter="mongo", delivery_protocol=1))
        self.assertEqual(answer["settings"]["shards"], 1)
        self.assertEqual(answer["settings"]["filter"], "mongo")
        self.assertEqual(answer["settings"]["delivery"], {"protocol": 1})

    def test_update_needs_current_secret(self) -> None:
        """
        Updating an existing bot with another secret fails with the relay's
        401 message; the registration is unchanged.
        """
        self.result(self.register())
        error = self.refused(self.register(client_secret=NEW_SECRET, dst=DST + "x"))
        self.assertEqual(error.code, 401)
        self.assertEqual(error.error, "wrong clientSecret for this alias")
        self.assertIsNone(error.field)
        self.assertEqual(self.relay.manager.relays["cookout"].settings.dst, DST)

    def test_rotate_secret(self) -> None:
        """
        With ``current_secret`` set to the old secret, ``client_secret``
        becomes the new one: the old stops working, the new works.
        """
        self.result(self.register())
        self.result(self.register(client_secret=NEW_SECRET, current_secret=SECRET))
        self.assertEqual(self.refused(status(RELAY, "cookout", SECRET, http=self.http)).code, 401)
        self.assertTrue(self.result(status(RELAY, "cookout", NEW_SECRET, http=self.http))["enabled"])

    def test_secret_without_colon(self) -> None:
        """
        The relay refuses a secret that is not shaped ``user:password``
        (``curl -u`` could not send it whole); the error names the form.
        The library still sends any secret whole as the Basic credentials,
        as the prototype did.
        """
        plain = "just-a-long-secret"
        error = self.refused(self.register(client_secret=plain))
        self.assertEqual((error.code, error.field), (400, "/clientSecret"))
        self.assertIn("user:password", error.error)
        self.assertEqual(basic_authorization(plain), "Basic anVzdC1hLWxvbmctc2VjcmV0")

    def test_bad_criteria_names_field(self) -> None:
        """
        Criteria the relay cannot run are refused with 400 and a pointer
        into ``/criteria``; the error's str is ``field: error``.
        """
        error = self.refused(self.register(criteria={"$where": "this.a == 1"}))
        self.assertEqual(error.code, 400)
        self.assertTrue(error.field and error.field.startswith("/criteria"), error.field)
        self.assertIn("$where", error.error)
        self.assertEqual(str(error), f"{error.field}: {error.error}")

    def test_private_dst_refused(self) -> None:
        """
        A relay that does not allow private destinations refuses a loopback
        ``dst`` with ``field`` ``/dst``.
        """
        strict = RelayUnderTest(allow_private_dst=False)
        self.addCleanup(strict.stop)
        error = self.refused(
            register(RELAY, "cookout", token=TOKEN, dst=DST, client_secret=SECRET, http=strict.treq)
        )
        self.assertEqual((error.code, error.field), (400, "/dst"))

    def test_bad_alias_reaches_relay(self) -> None:
        """
        An alias with a slash is percent-encoded, so it is the relay that
        explains what is wrong with it rather than some other path.
        """
        error = self.refused(
            register(RELAY, "a/b", token=TOKEN, dst=DST, client_secret=SECRET, http=self.http)
        )
        self.assertEqual((error.code, error.field), (400, "/alias"))

    def test_status_unknown_alias(self) -> None:
        """
        ``status`` of an alias the relay does not know fails with 404.
        """
        error = self.refused(status(RELAY, "nobody", SECRET, http=self.http))
        self.assertEqual(error.code, 404)
        self.assertIn("nobody", error.error)

    def test_disable_then_register_again(self) -> None:
        """
        ``disable`` ends the session and fires with the status; a later
        ``register`` enables the bot again.
        """
        self.result(self.register())
        answer = self.result(disable(RELAY, "cookout", SECRET, http=self.http))
        self.assertFalse(answer["enabled"])
        self.assertEqual(answer["lastDisableReason"], "disabled by its owner through the API")
        self.assertTrue(self.result(self.register())["enabled"])

    def test_delete_is_idempotent(self) -> None:
        """
        ``delete`` forgets the bot; deleting it again is no error.
        """
        self.result(self.register())
        self.assertEqual(
            self.result(delete(RELAY, "cookout", SECRET, http=self.http)),
            {"alias": "cookout", "deleted": True},
        )
        self.assertNotIn("cookout", self.relay.manager.relays)
        self.assertEqual(
            self.result(delete(RELAY, "cookout", SECRET, http=self.http)),
            {"alias": "cookout", "deleted": False},
        )

    def test_delete_wrong_secret(self) -> None:
        """
        ``delete`` with the wrong secret fails with 401 and forgets nothing.
        """
        self.result(self.register())
        self.assertEqual(self.refused(delete(RELAY, "cookout", NEW_SECRET, http=self.http)).code, 401)
        self.assertIn("cookout", self.relay.manager.relays)

    def test_relay_under_a_path(self) -> None:
        """
        A relay URL with a path (behind a reverse proxy) keeps it.
        """
        proxied = RelayUnderTest(prefix=(b"dcc",))
        self.addCleanup(proxied.stop)
        answer = self.result(
            register(
                RELAY + "/dcc/", "cookout", token=TOKEN, dst=DST, client_secret=SECRET,
                http=proxied.treq,
            )
        )
        self.assertEqual(answer["alias"], "cookout")


class _ProxyError(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setResponseCode(502)
        request.setHeader(b"Content-Type", b"text/html")
        return b"<html><body>Bad Gateway</body></html>"


class _NotJSON(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        return b"OK"


class _Recording(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[bytes, bytes, dict[bytes, bytes], bytes]] = []

    def render(self, request: Request) -> bytes:
        headers = {name.lower(): values[0] for name, values in request.requestHeaders.getAllRawHeaders()}
        content: Any = request.content
        self.requests.append((request.method, request.uri, headers, content.read()))
        request.setHeader(b"Content-Type", b"application/json")
        return b'{"alias": "cookout"}'


class WireTests(SynchronousTestCase):
    """
    What goes over the wire, and answers that are not the relay's.
    """

    def test_prototype_compatible_body(self) -> None:
        """
        ``PUT /relays/{alias}`` carries the prototype client's fields in its
        order, with ``Authorization: Basic base64(clientSecret)`` and JSON;
        fields left unset are left out for the relay to default.
        """
        recording = _Recording()
        self.successResultOf(
            register(
                RELAY, "cookout", token=TOKEN, intents=4608, criteria=CRITERIA, dst=DST,
                client_secret=SECRET, http=StubTreq(recording),
            )
        )
        [(method, uri, headers, body)] = recording.requests
        self.assertEqual((method, uri), (b"PUT", b"/relays/cookout"))
        self.assertEqual(headers[b"authorization"], basic_authorization(SECRET).encode())
        self.assertEqual(headers[b"content-type"], b"application/json")
        self.assertTrue(headers[b"user-agent"].startswith(b"dccrelay-client/"))
        self.assertEqual(
            list(json.loads(body)), ["token", "intents", "criteria", "dst", "clientSecret"]
        )

    def test_rotation_authenticates_with_current(self) -> None:
        """
        When rotating, the Authorization is the current secret and the body
        carries the new one.
        """
        recording = _Recording()
        self.successResultOf(
            register(
                RELAY, "cookout", token=TOKEN, dst=DST, client_secret=NEW_SECRET,
                current_secret=SECRET, http=StubTreq(recording),
            )
        )
        [(_, _, headers, body)] = recording.requests
        self.assertEqual(headers[b"authorization"], basic_authorization(SECRET).encode())
        self.assertEqual(json.loads(body)["clientSecret"], NEW_SECRET)

    def test_registration_body_optional_names(self) -> None:
        """
        ``registration_body`` uses the relay's JSON names for optional
        fields and leaves out what is None.
        """
        self.assertEqual(
            registration_body(
                token=TOKEN, dst=DST, client_secret=SECRET, delivery_protocol=2,
                typing_while_waking=True, defer_interactions=False, wake_url="https://w.example/",
            ),
            {
                "token": TOKEN, "dst": DST, "clientSecret": SECRET,
                "delivery": {"protocol": 2}, "typingWhileWaking": True,
                "deferInteractions": False, "wakeUrl": "https://w.example/",
            },
        )

    def test_proxy_error_page(self) -> None:
        """
        An answer that is not the relay's JSON (a proxy's 502 page) becomes
        a RegistrationError with the status and a little of the text.
        """
        d = status(RELAY, "cookout", SECRET, http=StubTreq(_ProxyError()))
        error = self.failureResultOf(d, RegistrationError).value
        assert isinstance(error, RegistrationError)
        self.assertEqual(error.code, 502)
        self.assertIsNone(error.field)
        self.assertIn("HTTP 502", error.error)
        self.assertIn("Bad Gateway", error.error)

    def test_success_without_json(self) -> None:
        """
        A 2xx answer that is not a JSON object is an error too: it is not
        the relay answering.
        """
        d = status(RELAY, "cookout", SECRET, http=StubTreq(_NotJSON()))
        error = self.failureResultOf(d, RegistrationError).value
        assert isinstance(error, RegistrationError)
        self.assertEqual(error.code, 200)

    def test_url_building(self) -> None:
        """
        ``relay_url_for`` keeps a path prefix and encodes the alias.
        """
        self.assertEqual(relay_url_for("https://r.example", "bot"), "https://r.example/relays/bot")
        self.assertEqual(
            relay_url_for("https://r.example/dcc/", "bot", "disable"),
            "https://r.example/dcc/relays/bot/disable",
        )
        self.assertEqual(relay_url_for("https://r.example", "a/b"), "https://r.example/relays/a%2Fb")


class RegistrationKeyTests(SynchronousTestCase):
    """
    A relay whose operator requires a key to create bots.
    """

    def test_register_with_key(self) -> None:
        """
        ``register(registration_key=...)`` creates the bot where the key is
        required; without it the relay's refusal comes back as an error.
        """
        relay = RelayUnderTest(registration_key="operator-given-key")
        self.addCleanup(relay.stop)
        arguments: dict[str, Any] = {"token": TOKEN, "dst": DST, "client_secret": SECRET}
        refused = self.failureResultOf(
            register(RELAY, "cookout", http=relay.treq, **arguments), RegistrationError
        ).value
        self.assertEqual(refused.code, 401)  # type: ignore[attr-defined]
        answer = self.successResultOf(
            register(RELAY, "cookout", http=relay.treq, registration_key="operator-given-key",
                     **arguments)
        )
        self.assertEqual(answer["alias"], "cookout")
