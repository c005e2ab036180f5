"""
The API of a node that has not loaded its registrations (its store is
busy, or cannot be read): it says so, changes nothing and never answers as
if an alias were free; and creating an alias that the store has but the
node did not know answers as for any alias that exists.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.store import StoredRelay
from dccrelay.store.errors import StoreBusy
from dccrelay.store.sealed import SealedSecretsError
from tests.api_harness import BODY, SECRET, Node, answer, basic
from tests.memory_store import MemoryDatabase, MemoryRelayStore


class FaultyStore(MemoryRelayStore):
    """
    A memory store whose loading fails with :attr:`fault` while it is set.
    """

    def __init__(self, database: MemoryDatabase | None = None) -> None:
        super().__init__(database)
        self.fault: Exception | None = None
        self.loads = 0

    def load_relays(self) -> Deferred[list[StoredRelay]]:
        self.loads += 1
        if self.fault is not None:
            return fail(self.fault)
        return super().load_relays()


def registered_store() -> FaultyStore:
    """
    A store where ``cookout`` was registered (with ``BODY``) by an earlier run.
    """
    owner = Node()
    answer(SynchronousTestCase(), owner, "PUT", "/relays/cookout", BODY)
    store = FaultyStore(owner.store.database)
    store.fault = StoreBusy("the database", "database is locked")
    return store


class NotLoadedTests(SynchronousTestCase):
    """
    Until the registrations are loaded, the API refuses with 503.
    """

    def setUp(self) -> None:
        self.store = registered_store()
        self.node = Node(store=self.store)
        self.addCleanup(self.node.stop)

    def refused(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        code, body, response = answer(self, self.node, method, path, **kwargs)
        self.assertEqual((code, path), (503, path), body)
        self.assertEqual(response.headers.getRawHeaders("Retry-After"), ["5"])
        self.assertIn("has not loaded its registrations yet", body["error"])
        self.assertIn("database is locked", body["error"])
        return body

    def test_busy_store(self) -> None:
        """
        While the store is busy, ``/healthz`` says why with 503; reading a
        bot (with its secret) or the list, creating, updating, deleting and
        disabling are all refused with 503 (never a 404 or a 201 for a bot
        that exists); once the store answers, the node serves the stored
        bot, and a stranger's PUT of its alias gets 401.
        """
        code, body, _ = answer(self, self.node, "GET", "/healthz")
        self.assertEqual(code, 503)
        self.assertEqual(body["status"], "starting")
        self.assertIn("could not load the registrations (the database is busy: database "
                      "is locked); trying again in 1 s", body["reason"])
        self.refused("GET", "/relays")
        self.refused("GET", "/relays/cookout", headers=basic())
        self.refused("PUT", "/relays/cookout", body={**BODY, "clientSecret": "thief:secret-x"})
        self.refused("PUT", "/relays/newbot", body={**BODY, "token": "MTEx.Gg.other"})
        self.refused("DELETE", "/relays/cookout", headers=basic())
        self.refused("POST", "/relays/cookout/disable", headers=basic())
        self.assertEqual(self.store.database.relays["cookout"].settings["client_secret"], SECRET)
        self.assertNotIn("newbot", self.store.database.relays)
        for page in ("/", "/bots/cookout"):
            code, html, _ = answer(self, self.node, "GET", page)
            self.assertEqual(code, 503, page)
            self.assertIn(b"has not loaded its registrations yet", html)
            self.assertIn(b"database is locked", html)

        self.store.fault = None
        self.node.clock.advance(1)
        code, body, _ = answer(self, self.node, "GET", "/healthz")
        self.assertEqual((code, body), (200, {"status": "ok", "relays": 1}))
        self.assertEqual(answer(self, self.node, "GET", "/relays/cookout", headers=basic())[0], 200)
        self.assertEqual(answer(self, self.node, "GET", "/bots/cookout")[0], 200)
        self.assertEqual(answer(self, self.node, "GET", "/")[0], 200)
        thief = {**BODY, "clientSecret": "thief:secret-x"}
        self.assertEqual(answer(self, self.node, "PUT", "/relays/cookout", thief)[0], 401)

    def test_tried_again_with_backoff(self) -> None:
        """
        Loading is tried again after 1, 2, 4 ... seconds while the store
        stays busy.
        """
        self.assertEqual(self.store.loads, 1)
        for wait in (1, 2, 4, 8):
            self.node.clock.advance(wait - 0.5)
            loads = self.store.loads
            self.node.clock.advance(0.5)
            self.assertEqual(self.store.loads, loads + 1)
        self.assertFalse(self.node.manager.loaded)

    def test_cannot_load(self) -> None:
        """
        A store whose secrets the keys do not open fails for good:
        ``/healthz`` says so (503) and the registry is never served.
        """
        store = registered_store()
        store.fault = SealedSecretsError("cookout: none of the keys decrypts its token")
        node = Node(store=store)
        self.addCleanup(node.stop)
        self.flushLoggedErrors()
        code, body, _ = answer(self, node, "GET", "/healthz")
        self.assertEqual(code, 503)
        self.assertEqual(
            body,
            {"status": "failed",
             "reason": "could not load the registrations: cookout: none of the keys "
                       "decrypts its token"},
        )
        node.clock.advance(60)
        self.assertEqual(store.loads, 1)
        self.assertEqual(answer(self, node, "GET", "/relays/cookout", headers=basic())[0], 503)


class LostCreationTests(SynchronousTestCase):
    """
    The store, not the node's memory, says whether an alias is free.
    """

    def test_alias_taken_behind_the_nodes_back(self) -> None:
        """
        An alias another node registered (its notice not come yet) is not
        overwritten by a create here: a stranger gets 401 as for any alias
        that exists, the stored registration is unchanged, and the node
        now knows the bot (its owner may read and update it).
        """
        node = Node()
        self.addCleanup(node.stop)
        other = Node(store=MemoryRelayStore(node.store.database))
        self.addCleanup(other.stop)
        self.assertEqual(answer(self, other, "PUT", "/relays/cookout", BODY)[0], 201)
        self.assertNotIn("cookout", node.manager.relays)

        thief = {**BODY, "token": "MTEx.Gg.thief", "clientSecret": "thief:secret-x"}
        code, body, _ = answer(self, node, "PUT", "/relays/cookout", thief)
        self.assertEqual(code, 401, body)
        stored = node.store.database.relays["cookout"].settings
        self.assertEqual((stored["token"], stored["client_secret"]), (BODY["token"], SECRET))
        self.assertIn("cookout", node.manager.relays)
        self.assertEqual(answer(self, node, "GET", "/relays/cookout", headers=basic())[0], 200)
        update = {**BODY, "dst": "wss://bot.example/dcc/v1/other"}
        code, body, _ = answer(self, node, "PUT", "/relays/cookout", update, headers=basic())
        self.assertEqual(code, 200, body)
        self.assertEqual(node.store.database.relays["cookout"].settings["dst"], update["dst"])

    def test_alias_taken_and_gone(self) -> None:
        """
        A create that finds the alias taken, and then finds no registration
        when it looks (deleted meanwhile), is refused with 503 and
        Retry-After: neither created nor overwritten.
        """

        class Flickering(MemoryRelayStore):
            def create_relay(self, alias: str, settings: dict[str, Any]) -> Deferred[bool]:
                return succeed(False)

        node = Node(store=Flickering())
        self.addCleanup(node.stop)
        code, body, response = answer(self, node, "PUT", "/relays/cookout", BODY)
        self.assertEqual(code, 503, body)
        self.assertIn("being registered and deleted", body["error"])
        self.assertEqual(response.headers.getRawHeaders("Retry-After"), ["1"])
        self.assertEqual((node.manager.relays, node.store.database.relays), ({}, {}))
