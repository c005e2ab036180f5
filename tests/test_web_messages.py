"""
Tests for what the registration API says when a newcomer gets something
wrong: each refusal names the fix and never echoes a secret.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import Request
from twisted.web.test.requesthelper import DummyChannel

from dccrelay.web.responses import reason_phrase, write_json
from tests import test_web_relays as api
from tests.test_web_relays import PROTOTYPE_BODY, auth


class _API(SynchronousTestCase):
    # RegistrationAPITests' relay and helpers, without running its tests again.
    setUp = api.RegistrationAPITests.setUp
    connect = api.RegistrationAPITests.connect
    make_delivery = api.RegistrationAPITests.make_delivery
    request = api.RegistrationAPITests.request
    put = api.RegistrationAPITests.put


class RefusalMessageTests(_API):
    """
    The first mistakes of the README's reader, answered with the fix.
    """

    def test_secret_without_colon(self) -> None:
        """
        A clientSecret with no ``user:password`` colon is refused (curl -u
        would prompt for a password), saying the form and the length range,
        without echoing the secret.
        """
        code, body, _ = self.put({**PROTOTYPE_BODY, "clientSecret": "nocolonsecret"})
        self.assertEqual((code, body["field"]), (400, "/clientSecret"))
        self.assertIn("user:password", body["error"])
        self.assertIn("without a ':'", body["error"])
        self.assertNotIn("nocolonsecret", body["error"])

    def test_short_secret_names_minimum(self) -> None:
        """
        A too-short clientSecret gets the minimum and the length it had,
        not the secret itself.
        """
        code, body, _ = self.put({**PROTOTYPE_BODY, "clientSecret": "a:bc"})
        self.assertEqual(code, 400)
        self.assertIn("8 to 256", body["error"])
        self.assertIn("got 4 characters", body["error"])
        self.assertNotIn("a:bc", body["error"])

    def test_missing_credentials_say_bots_secret(self) -> None:
        """
        Updating without credentials asks for the bot's clientSecret as
        ``curl -u`` sends it, not "the relay's".
        """
        self.assertEqual(self.put()[0], 201)
        code, body, _ = self.put()
        self.assertEqual(code, 401)
        self.assertIn("the bot's clientSecret", body["error"])
        self.assertIn("curl -u", body["error"])
        self.assertEqual(self.put(headers=auth())[0], 200)

    def test_backspace_in_criteria(self) -> None:
        """
        Criteria holding a backspace (a shell's ``"^cookout\\b"``) are
        refused, pointing at the string and saying how to write ``\\b``.
        """
        criteria = {"t": "MESSAGE_CREATE", "d.content": {"$regex": "^cookout\b"}}
        code, body, _ = self.put({**PROTOTYPE_BODY, "criteria": criteria})
        self.assertEqual((code, body["field"]), (400, "/criteria/d.content/$regex"))
        self.assertIn("U+0008", body["error"])
        self.assertIn("word boundary", body["error"])

    def test_line_breaks_in_criteria_allowed(self) -> None:
        """
        Tab and line breaks, which Discord messages hold, stay allowed.
        """
        criteria = {"d.content": {"$in": ["a\nb", "c\td"]}}
        self.assertEqual(self.put({**PROTOTYPE_BODY, "criteria": criteria})[0], 201)

    def test_private_dst_names_option(self) -> None:
        """
        A loopback dst is refused naming ``--allow-private-dst``.
        """
        code, body, _ = self.put({**PROTOTYPE_BODY, "dst": "ws://127.0.0.1:8091/"})
        self.assertEqual(code, 400)
        self.assertIn("--allow-private-dst", body["error"])


class SameTokenTests(_API):
    """
    One bot token, one alias: a second alias would open a second gateway
    session for the same bot.
    """

    def test_second_alias_refused(self) -> None:
        """
        Registering a token that another alias has is a 409 naming that
        alias and what to do; no second session starts.
        """
        self.assertEqual(self.put(alias="first")[0], 201)
        code, body, _ = self.put(alias="second")
        self.assertEqual((code, body["field"]), (409, "/token"))
        self.assertIn("'first'", body["error"])
        self.assertIn("delete it first", body["error"])
        self.assertNotIn("second", self.manager.relays)
        self.assertEqual(len(self.gateway_urls), 1)

    def test_same_alias_updates(self) -> None:
        """
        The alias that has the token updates as before, and once it is
        deleted another alias may take the token.
        """
        self.assertEqual(self.put(alias="first")[0], 201)
        self.assertEqual(self.put(alias="first", headers=auth())[0], 200)
        self.assertEqual(self.request("DELETE", "/relays/first", headers=auth())[0], 200)
        self.assertEqual(self.put(alias="second")[0], 201)


class ReasonPhraseTests(SynchronousTestCase):
    """
    Status lines carry the standard reason phrase.
    """

    def test_429_phrase(self) -> None:
        """
        A 429 goes out as "Too Many Requests", not twisted.web's "Unknown
        Status".
        """
        self.assertEqual(reason_phrase(429), b"Too Many Requests")
        request = Request(DummyChannel())
        write_json(request, 429, {"error": "slow down"})
        self.assertEqual(request.code_message, b"Too Many Requests")
