"""
Tests for :mod:`dccrelay.gateway.rest`, against ``StubTreq``.
"""

from __future__ import annotations

from treq.testing import StringStubbingResource, StubTreq
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.rest import DiscordHTTPError, DiscordREST, GatewayInfo

API = "https://discord.example/api/v10"
GATEWAY_BOT = (
    b'{"url": "wss://gateway.example", "shards": 2, "session_start_limit": '
    b'{"total": 1000, "remaining": 998, "reset_after": 14400000, "max_concurrency": 1}}'
)


class GatewayBotTests(SynchronousTestCase):
    """
    ``GET /gateway/bot``.
    """

    def call(self, status: int, body: bytes) -> tuple[object, list[tuple]]:
        seen: list[tuple] = []

        def answer(method: bytes, url: str, params: dict, headers: dict, data: bytes) -> tuple:
            seen.append((method, url, headers))
            return status, {b"Content-Type": b"application/json"}, body

        treq = StubTreq(StringStubbingResource(answer))
        d = DiscordREST(treq, API).get_gateway_bot("TOKEN")
        treq.flush()
        return d, seen

    def test_answer_parsed(self) -> None:
        """
        The URL, shard count and session start limit are read; the token
        goes in ``Authorization: Bot``.
        """
        d, seen = self.call(200, GATEWAY_BOT)
        self.assertEqual(
            self.successResultOf(d),
            GatewayInfo("wss://gateway.example", 2, 1, 998, 14400.0),
        )
        method, url, headers = seen[0]
        self.assertEqual((method, url), (b"GET", API + "/gateway/bot"))
        self.assertEqual(headers[b"Authorization"], [b"Bot TOKEN"])
        self.assertTrue(headers[b"User-Agent"][0].startswith(b"DiscordBot ("))

    def test_unauthorized(self) -> None:
        """
        401 is an error that says the token was rejected, without the token.
        """
        d, _ = self.call(401, b'{"message": "401: Unauthorized", "code": 0}')
        error = self.failureResultOf(d, DiscordHTTPError).value
        self.assertTrue(error.token_rejected)
        self.assertNotIn("TOKEN", str(error))

    def test_server_error_and_garbage(self) -> None:
        """
        A 502 with HTML, or a 200 without the expected fields, is a
        DiscordHTTPError that can be retried.
        """
        d, _ = self.call(502, b"<html>bad gateway</html>")
        error = self.failureResultOf(d, DiscordHTTPError).value
        self.assertEqual(error.status, 502)
        self.assertFalse(error.token_rejected)
        d, _ = self.call(200, b'{"url": "wss://x"}')
        self.failureResultOf(d, DiscordHTTPError)


class TypingTests(SynchronousTestCase):
    """
    ``POST /channels/{id}/typing``.
    """

    def call(self, status: int, channel_id: str = "123") -> tuple[object, list[tuple]]:
        seen: list[tuple] = []

        def answer(method: bytes, url: str, params: dict, headers: dict, data: bytes) -> tuple:
            seen.append((method, url, headers))
            return status, {}, b"" if status == 204 else b'{"message": "Missing Access", "code": 50001}'

        treq = StubTreq(StringStubbingResource(answer))
        d = DiscordREST(treq, API).trigger_typing("TOKEN", channel_id)
        treq.flush()
        return d, seen

    def test_typing(self) -> None:
        """
        A POST to the channel's typing route, authorised as the bot; 204 is
        success.
        """
        d, seen = self.call(204)
        self.assertIsNone(self.successResultOf(d))
        method, url, headers = seen[0]
        self.assertEqual((method, url), (b"POST", API + "/channels/123/typing"))
        self.assertEqual(headers[b"Authorization"], [b"Bot TOKEN"])

    def test_refused(self) -> None:
        """
        Anything but 2xx is a DiscordHTTPError with Discord's message.
        """
        d, _ = self.call(403)
        error = self.failureResultOf(d, DiscordHTTPError).value
        self.assertEqual((error.status, error.message), (403, "Missing Access"))

    def test_not_a_snowflake(self) -> None:
        """
        A channel id that is not a number never reaches the URL.
        """
        d, seen = self.call(204, channel_id="../gateway")
        self.failureResultOf(d, ValueError)
        self.assertEqual(seen, [])
