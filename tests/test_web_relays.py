"""
Tests for the registration API (:mod:`dccrelay.web`), through ``StubTreq``
against the real resource tree, with a relay manager whose neighbours
(Discord, the bot, the store) are in memory.
"""

from __future__ import annotations

from base64 import b64encode
from random import Random
from typing import Any

import orjson
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.filters import compile_criteria
from dccrelay.relay.manager import RelayManager
from dccrelay.relay.relay import RelayEnvironment
from dccrelay.relay.settings import parse_settings
from dccrelay.web.site import build_resource
from tests.memory_store import MemoryRelayStore
from tests.relay_harness import FakeREST, RecordingChannel

SECRET = "admin:c2VjcmV0c2VjcmV0"
PROTOTYPE_BODY = {
    "token": "MTEx.Gg.token",
    "intents": 4608,
    "criteria": {"t": "MESSAGE_CREATE", "$not": {"d.author.bot": True}},
    "dst": "wss://bot.example/dcc/v1/cookout",
    "clientSecret": SECRET,
}
BASE = "http://relay.example"


def auth(secret: str = SECRET) -> dict[str, list[str]]:
    return {"Authorization": ["Basic " + b64encode(secret.encode()).decode()]}


class RegistrationAPITests(SynchronousTestCase):
    """
    ``/relays`` and ``/relays/{alias}`` as DESIGN.md specifies them.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.rest = FakeREST()
        self.gateway_urls: list[str] = []
        self.channels: list[RecordingChannel] = []
        self.store = MemoryRelayStore()
        env = RelayEnvironment(
            clock=self.clock,
            random=Random(0),
            store=self.store,
            rest=self.rest,  # type: ignore[arg-type]
            connect=self.connect,
            compile_filter=compile_criteria,
            make_delivery=self.make_delivery,
            retry_policy=lambda attempt: 1.0,
        )
        self.manager = RelayManager(env, self.store, max_relays=3)
        self.store.open()
        self.manager.startService()
        self.addCleanup(self.manager.stopService)
        self.allow_private = False
        self.treq = StubTreq(
            build_resource(
                self.manager,
                lambda body: parse_settings(
                    body, compile_filter=compile_criteria, allow_private_dst=self.allow_private
                ),
            )
        )

    def connect(self, url: str, listener: Any) -> Deferred[Any]:
        self.gateway_urls.append(url)
        return Deferred()

    def make_delivery(self, **kwargs: Any) -> RecordingChannel:
        channel = RecordingChannel(**kwargs)
        self.channels.append(channel)
        return channel

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, list[str]] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, Any]:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        all_headers = {"Content-Type": ["application/json"], **(headers or {})}
        response = self.successResultOf(
            self.treq.request(method, BASE + path, data=data, headers=all_headers)
        )
        content = self.successResultOf(response.content())
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError:
            parsed = content
        return response.code, parsed, response

    def put(self, body: Any = PROTOTYPE_BODY, alias: str = "cookout", **kwargs: Any) -> tuple[int, Any, Any]:
        return self.request("PUT", f"/relays/{alias}", body, **kwargs)

    def test_prototype_body_creates(self) -> None:
        """
        The body the prototype's client sends creates a relay (201), which
        connects to the gateway straight away.
        """
        code, body, _ = self.put()
        self.assertEqual(code, 201)
        self.assertEqual(body["alias"], "cookout")
        self.assertTrue(body["enabled"])
        self.assertEqual(body["settings"]["intents"], 4608)
        self.assertNotIn(PROTOTYPE_BODY["token"], orjson.dumps(body).decode())
        self.assertEqual(len(self.gateway_urls), 1)
        self.assertEqual(self.channels[0].kwargs["dst"], PROTOTYPE_BODY["dst"])

    def test_public_list_hides_secrets(self) -> None:
        """
        ``GET /relays`` shows every bot's status without token, secret, dst
        or criteria.
        """
        self.put()
        code, body, _ = self.request("GET", "/relays")
        self.assertEqual(code, 200)
        self.assertEqual([r["alias"] for r in body["relays"]], ["cookout"])
        text = orjson.dumps(body).decode()
        for hidden in ("token", "clientSecret", SECRET, "bot.example", "criteria"):
            self.assertNotIn(hidden, text)
        self.assertEqual(body["relays"][0]["shards"][0]["state"], "connecting")

    def test_identical_put_changes_nothing(self) -> None:
        """
        Registering again with the same settings (a bot's every start-up)
        restarts nothing.
        """
        self.put()
        code, _, _ = self.put(headers=auth())
        self.assertEqual(code, 200)
        self.assertEqual(len(self.gateway_urls), 1)
        self.assertEqual(len(self.channels), 1)
        self.assertEqual(self.rest.calls, 1)

    def test_update_needs_current_secret(self) -> None:
        """
        Updating an existing alias without credentials, or with the wrong
        secret, is 401 with a Basic challenge.
        """
        self.put()
        code, body, response = self.put()
        self.assertEqual(code, 401)
        self.assertIn(b"Basic", response.headers.getRawHeaders("WWW-Authenticate")[0].encode())
        code, body, _ = self.put(headers=auth("admin:wrongwrong"))
        self.assertEqual(code, 401)
        self.assertEqual(body["error"], "wrong clientSecret for this alias")

    def test_new_criteria_only_recompile(self) -> None:
        """
        New criteria change the filter and nothing else.
        """
        self.put()
        code, body, _ = self.put(
            {**PROTOTYPE_BODY, "criteria": {"t": "MESSAGE_REACTION_ADD"}}, headers=auth()
        )
        self.assertEqual(code, 200)
        self.assertEqual(body["settings"]["criteria"], {"t": "MESSAGE_REACTION_ADD"})
        self.assertEqual(len(self.gateway_urls), 1)
        self.assertEqual(len(self.channels), 1)

    def test_new_dst_only_reconnects_delivery(self) -> None:
        """
        A new dst replaces the delivery channel, handing over what was
        queued, and keeps the gateway session.
        """
        self.put()
        self.channels[0].delivered.append(b"queued")
        self.put({**PROTOTYPE_BODY, "dst": "wss://elsewhere.example/"}, headers=auth())
        self.assertEqual(len(self.channels), 2)
        self.assertTrue(self.channels[0].stopped)
        self.assertEqual(self.channels[1].delivered, [b"queued"])
        self.assertEqual(len(self.gateway_urls), 1)

    def test_new_token_new_session(self) -> None:
        """
        A new token or new intents start a new gateway session.
        """
        self.put()
        self.put({**PROTOTYPE_BODY, "token": "other.token"}, headers=auth())
        self.assertEqual(len(self.gateway_urls), 2)
        self.put({**PROTOTYPE_BODY, "token": "other.token", "intents": 513}, headers=auth())
        self.assertEqual(len(self.gateway_urls), 3)
        self.assertEqual(len(self.channels), 1)

    def test_secret_rotation(self) -> None:
        """
        The secret in the body may differ from the one presented: that
        rotates it.
        """
        self.put()
        new = "admin:bmV3c2VjcmV0"
        code, _, _ = self.put({**PROTOTYPE_BODY, "clientSecret": new}, headers=auth())
        self.assertEqual(code, 200)
        self.assertEqual(self.request("GET", "/relays/cookout", headers=auth())[0], 401)
        self.assertEqual(self.request("GET", "/relays/cookout", headers=auth(new))[0], 200)

    def test_bad_criteria(self) -> None:
        """
        Criteria that cannot run are refused at registration, naming where.
        """
        code, body, _ = self.put({**PROTOTYPE_BODY, "criteria": {"$where": "1"}})
        self.assertEqual(code, 400)
        self.assertTrue(body["field"].startswith("/criteria"), body)
        self.assertIn("$where", body["error"])
        code, body, _ = self.put({**PROTOTYPE_BODY, "criteria": {"d.content": {"$regex": "(?=x)"}}})
        self.assertEqual(code, 400)
        self.assertEqual(self.manager.relays, {})

    def test_unknown_filter(self) -> None:
        """
        An unknown filter backend is refused, listing the installed ones.
        """
        code, body, _ = self.put({**PROTOTYPE_BODY, "filter": "nosuch"})
        self.assertEqual(code, 400)
        self.assertEqual(body["field"], "/filter")
        self.assertIn("mongo", body["error"])

    def test_malformed_bodies(self) -> None:
        """
        Malformed JSON, wrong types, missing and unknown fields each get a
        400 that names the problem and its field.
        """
        code, body, _ = self.put(raw=b'{"token": ')
        self.assertEqual((code, body["field"]), (400, ""))
        self.assertIn("not valid JSON", body["error"])
        cases = [
            ({**PROTOTYPE_BODY, "intents": "4608"}, "/intents"),
            ({**PROTOTYPE_BODY, "intents": 1 << 30}, "/intents"),
            ({**PROTOTYPE_BODY, "clientSecret": "short"}, "/clientSecret"),
            ({**PROTOTYPE_BODY, "dst": "ftp://x.example/"}, "/dst"),
            ({**PROTOTYPE_BODY, "dst": "not a url"}, "/dst"),
            ({**PROTOTYPE_BODY, "shards": 0}, "/shards"),
            ({k: v for k, v in PROTOTYPE_BODY.items() if k != "token"}, ""),
            ({**PROTOTYPE_BODY, "tokne": "x"}, ""),
            ([1, 2], ""),
        ]
        for sent, field in cases:
            code, body, _ = self.put(sent)
            self.assertEqual((code, body.get("field")), (400, field), (sent, body))
            self.assertTrue(body["error"])
        self.assertEqual(self.manager.relays, {})

    def test_private_dst(self) -> None:
        """
        A dst on a loopback or private address is refused unless the
        operator allows private destinations.
        """
        for dst in ("ws://127.0.0.1:9000/", "ws://localhost/", "ws://[::1]/", "ws://10.1.2.3/"):
            code, body, _ = self.put({**PROTOTYPE_BODY, "dst": dst})
            self.assertEqual((code, body["field"]), (400, "/dst"), dst)
        self.allow_private = True
        self.assertEqual(self.put({**PROTOTYPE_BODY, "dst": "ws://127.0.0.1:9000/"})[0], 201)

    def test_huge_body(self) -> None:
        """
        A body over 64 KiB is 413, and nothing is registered.
        """
        code, body, _ = self.put(raw=b'{"token": "' + b"x" * (65 * 1024) + b'"}')
        self.assertEqual(code, 413)
        self.assertIn("larger than", body["error"])

    def test_max_relays(self) -> None:
        """
        At ``--max-relays`` a new alias gets 503; existing ones still update.
        """
        for alias in ("a", "b", "c"):
            self.assertEqual(self.put({**PROTOTYPE_BODY, "token": f"token.{alias}"}, alias)[0], 201)
        code, body, _ = self.put({**PROTOTYPE_BODY, "token": "token.d"}, alias="d")
        self.assertEqual(code, 503)
        self.assertIn("maximum of 3", body["error"])
        self.assertEqual(
            self.put({**PROTOTYPE_BODY, "token": "token.a"}, "a", headers=auth())[0], 200
        )

    def test_invalid_alias(self) -> None:
        """
        Aliases outside ``[A-Za-z0-9_]{1,64}`` are 400.
        """
        for alias in ("a-b", "x" * 65, "%C3%A9", "a.b"):
            code, body, _ = self.put(alias=alias)
            self.assertEqual((code, body["field"]), (400, "/alias"), alias)

    def test_delete(self) -> None:
        """
        DELETE needs the secret, forgets the bot, and is 200 when the alias
        is already absent.
        """
        self.put()
        self.assertEqual(self.request("DELETE", "/relays/cookout")[0], 401)
        code, body, _ = self.request("DELETE", "/relays/cookout", headers=auth())
        self.assertEqual((code, body["deleted"]), (200, True))
        self.assertEqual(self.manager.relays, {})
        self.assertEqual(self.store.database.relays, {})
        code, body, _ = self.request("DELETE", "/relays/cookout")
        self.assertEqual((code, body["deleted"]), (200, False))

    def test_disable_then_reenable(self) -> None:
        """
        POST disable ends the gateway session and says why; a later PUT
        re-enables and the reason stays visible.
        """
        self.put()
        self.assertEqual(self.request("POST", "/relays/cookout/disable")[0], 401)
        code, body, _ = self.request("POST", "/relays/cookout/disable", headers=auth())
        self.assertEqual(code, 200)
        self.assertFalse(body["enabled"])
        self.assertIn("disabled by its owner", body["lastDisableReason"])
        self.assertEqual(body["shards"], [])
        code, body, _ = self.put(headers=auth())
        self.assertTrue(body["enabled"])
        self.assertIn("disabled by its owner", body["lastDisableReason"])
        self.assertEqual(len(self.gateway_urls), 2)

    def test_get_one(self) -> None:
        """
        ``GET /relays/{alias}`` needs the secret; an unknown alias is 404.
        """
        self.put()
        self.assertEqual(self.request("GET", "/relays/cookout")[0], 401)
        code, body, _ = self.request("GET", "/relays/cookout", headers=auth())
        self.assertEqual(code, 200)
        self.assertEqual(body["settings"]["dst"], PROTOTYPE_BODY["dst"])
        self.assertNotIn(PROTOTYPE_BODY["token"], orjson.dumps(body).decode())
        self.assertEqual(self.request("GET", "/relays/nobody", headers=auth())[0], 404)

    def test_status_page(self) -> None:
        """
        ``GET /`` is an HTML page listing the bots, with no secrets.
        """
        self.put()
        code, body, response = self.request("GET", "/")
        self.assertEqual(code, 200)
        self.assertIn(b"text/html", response.headers.getRawHeaders("Content-Type")[0].encode())
        self.assertIn(b"cookout", body)
        for hidden in (PROTOTYPE_BODY["token"], SECRET, "bot.example"):
            self.assertNotIn(hidden.encode(), body)

    def test_pages_not_sniffed_or_scripted(self) -> None:
        """
        The HTML pages (the list and a bot's page) forbid type sniffing,
        scripts, frames and foreign loads; JSON answers forbid sniffing.
        """
        self.put()
        for path in ("/", "/bots/cookout"):
            _, _, response = self.request("GET", path)
            self.assertEqual(response.headers.getRawHeaders("X-Content-Type-Options"), ["nosniff"])
            policy = response.headers.getRawHeaders("Content-Security-Policy")[0]
            self.assertIn("default-src 'none'", policy)
            self.assertNotIn("script-src", policy)
            self.assertIn("frame-ancestors 'none'", policy)
        _, _, response = self.request("GET", "/relays")
        self.assertEqual(response.headers.getRawHeaders("X-Content-Type-Options"), ["nosniff"])

    def test_healthz(self) -> None:
        """
        ``GET /healthz`` is 200 once the relays are loaded.
        """
        code, body, _ = self.request("GET", "/healthz")
        self.assertEqual((code, body["status"]), (200, "ok"))


class MaskTokenTests(SynchronousTestCase):
    """
    Status shows a token only as much as identifies the bot.
    """

    def test_discord_token(self) -> None:
        """
        A Discord-shaped token shows the start of its public user-id part.
        """
        from dccrelay.web.status_json import mask_token

        self.assertEqual(mask_token("MTExMTExMTEx.GgAbCd.secretpart"), "MTExMTEx…")

    def test_other_tokens(self) -> None:
        """
        Any other token shows nothing of itself.
        """
        from dccrelay.web.status_json import mask_token

        for token in ("sim-token", "a.b", "short.x.y", "x" * 80):
            self.assertEqual(mask_token(token), "…")
