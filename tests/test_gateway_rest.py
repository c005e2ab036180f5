"""
Tests for :mod:`dccrelay.gateway.rest` and its rate limits
(:mod:`dccrelay.gateway.rest_limits`), against ``StubTreq`` and a memory clock.
"""

from __future__ import annotations

from typing import Any

import orjson
from treq.testing import StringStubbingResource, StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.rest import (
    DiscordHTTPError,
    DiscordREST,
    GatewayInfo,
    InvalidRequestBudgetSpent,
    RateLimited,
    TokenRejected,
)
from dccrelay.gateway.rest_limits import InvalidRequests, Route, route_for

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
        d = DiscordREST(treq, API, clock=Clock()).get_gateway_bot("TOKEN")
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
        d = DiscordREST(treq, API, clock=Clock()).trigger_typing("TOKEN", channel_id)
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


class Discord:
    """
    A scripted Discord for StubTreq: answers from ``script`` (status,
    headers, body) in order, then 204; records every request.
    """

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[bytes, bytes], bytes]] = []
        self.seen: list[tuple[bytes, str, dict, bytes]] = []

    def __call__(self, method: bytes, url: str, params: dict, headers: dict, data: bytes) -> tuple:
        self.seen.append((method, url, headers, data))
        if self.script:
            return self.script.pop(0)
        return 204, {}, b""

    @property
    def paths(self) -> list[str]:
        return [url[len(API):] for _, url, _, _ in self.seen]


def limited(remaining: int, reset_after: float, bucket: bytes = b"abcd1234") -> dict[bytes, bytes]:
    return {
        b"X-RateLimit-Limit": b"5",
        b"X-RateLimit-Remaining": b"%d" % remaining,
        b"X-RateLimit-Reset-After": str(reset_after).encode(),
        b"X-RateLimit-Bucket": bucket,
    }


TOO_MANY = b'{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}'


class RouteTests(SynchronousTestCase):
    """
    :func:`route_for`: what a bucket is keyed by.
    """

    def test_major_parameter_kept(self) -> None:
        """
        The channel, guild or webhook id is the bucket's top-level resource;
        other ids become ``{id}``.
        """
        self.assertEqual(
            route_for("post", "/channels/123/typing"),
            Route("POST /channels/{id}/typing", "123"),
        )
        self.assertEqual(
            route_for("DELETE", "/channels/1/messages/99"),
            Route("DELETE /channels/{id}/messages/{id}", "1"),
        )
        self.assertEqual(route_for("GET", "/gateway/bot"), Route("GET /gateway/bot", ""))

    def test_tokens_not_kept(self) -> None:
        """
        An interaction's or webhook's token is neither in the template nor
        in the key, only a digest of it.
        """
        route = route_for("POST", "/interactions/77/secret-token/callback", exempt=True)
        self.assertEqual(route.template, "POST /interactions/{id}/{token}/callback")
        self.assertTrue(route.major.startswith("77/"))
        self.assertNotIn("secret-token", route.major)
        self.assertTrue(route.exempt)
        hook = route_for("PATCH", "/webhooks/55/secret-token/messages/@original")
        self.assertEqual(hook.template, "PATCH /webhooks/{id}/{token}/messages/@original")
        self.assertNotIn("secret-token", hook.major)


class RateLimitTests(SynchronousTestCase):
    """
    Discord's rate limits, honoured from response headers and 429s.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.discord = Discord()
        self.treq = StubTreq(StringStubbingResource(self.discord))
        self.invalid = InvalidRequests()
        self.rest = DiscordREST(self.treq, API, clock=self.clock, invalid=self.invalid)

    def typing(self, channel_id: str = "123", token: str = "TOKEN", **kwargs: Any) -> Any:
        d = self.rest.trigger_typing(token, channel_id, **kwargs)
        self.treq.flush()
        return d

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.treq.flush()

    def test_exhausted_bucket_waits_for_reset(self) -> None:
        """
        When an answer says nothing remains in the bucket, the next call on
        it waits until the bucket resets, and then goes.
        """
        self.discord.script = [(204, limited(0, 2.0), b"")]
        self.successResultOf(self.typing())
        second = self.typing()
        self.assertNoResult(second)
        self.assertEqual(len(self.discord.seen), 1)
        self.advance(1.9)
        self.assertEqual(len(self.discord.seen), 1)
        self.advance(0.1)
        self.successResultOf(second)
        self.assertEqual(len(self.discord.seen), 2)
        self.assertEqual(self.rest.calls["waited"], 1)

    def test_buckets_per_channel(self) -> None:
        """
        The same bucket hash on another channel is another bucket.
        """
        self.discord.script = [(204, limited(0, 5.0), b"")]
        self.successResultOf(self.typing("1"))
        self.successResultOf(self.typing("2"))
        self.assertNoResult(self.typing("1"))

    def test_remaining_counted_down(self) -> None:
        """
        Calls made before the next answer count down what remains: with one
        left, one call goes and the next waits.
        """
        self.discord.script = [(204, limited(1, 3.0), b"")]
        self.successResultOf(self.typing())
        first = self.rest.trigger_typing("TOKEN", "123")
        second = self.rest.trigger_typing("TOKEN", "123")
        self.treq.flush()
        self.successResultOf(first)
        self.assertNoResult(second)
        self.advance(3.0)
        self.successResultOf(second)

    def test_429_retried_after_retry_after(self) -> None:
        """
        A 429 is retried once ``retry_after`` seconds have passed; the call
        then succeeds.
        """
        self.discord.script = [(429, {b"Retry-After": b"2"}, TOO_MANY)]
        d = self.typing(max_wait=None)
        self.assertNoResult(d)
        self.advance(1.4)
        self.assertEqual(len(self.discord.seen), 1)
        self.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(len(self.discord.seen), 2)
        self.assertEqual(self.rest.calls["rate_limited"], 1)
        self.assertEqual(self.invalid.recent(self.clock.seconds()), 1)

    def test_429_without_body(self) -> None:
        """
        Without a JSON body, the Retry-After header gives the wait.
        """
        self.discord.script = [(429, {b"Retry-After": b"3"}, b"")]
        d = self.typing(max_wait=None)
        self.advance(2.9)
        self.assertNoResult(d)
        self.advance(0.1)
        self.successResultOf(d)

    def test_global_429_stops_every_route(self) -> None:
        """
        A global 429 holds back the bot's calls on every route, not those
        of another bot.
        """
        self.discord.script = [
            (429, {b"X-RateLimit-Global": b"true", b"X-RateLimit-Scope": b"global"},
             b'{"message": "You are being rate limited.", "retry_after": 4, "global": true}'),
        ]
        first = self.typing("1", max_wait=None)
        other_channel = self.typing("2", max_wait=None)
        self.assertEqual(len(self.discord.seen), 1)
        self.successResultOf(self.typing("3", token="OTHER"))
        self.advance(4.0)
        self.successResultOf(first)
        self.successResultOf(other_channel)

    def test_max_wait(self) -> None:
        """
        A call that would wait longer than its caller allows fails at once
        with RateLimited, and is not made.
        """
        self.discord.script = [(204, limited(0, 30.0), b"")]
        self.successResultOf(self.typing())
        error = self.failureResultOf(self.typing(max_wait=5.0), RateLimited).value
        self.assertEqual((error.status, error.retry_after), (429, 30.0))
        self.assertEqual(len(self.discord.seen), 1)

    def test_too_many_429s(self) -> None:
        """
        After a few 429s in a row the call gives up with RateLimited.
        """
        self.discord.script = [(429, {}, TOO_MANY)] * 10
        d = self.typing(max_wait=None)
        for _ in range(5):
            self.advance(1.5)
        self.failureResultOf(d, RateLimited)
        self.assertEqual(len(self.discord.seen), 4)

    def test_global_pacing(self) -> None:
        """
        At most 50 calls a second go for one bot; the 51st waits for the
        window to move.  Interaction callbacks are exempt.
        """
        calls = [self.rest.trigger_typing("TOKEN", str(100 + i)) for i in range(51)]
        callback = self.rest.create_interaction_response("TOKEN", "9", "tok", {"type": 5})
        self.treq.flush()
        self.assertEqual(len(self.discord.seen), 51)
        self.successResultOf(callback)
        self.assertNoResult(calls[-1])
        self.advance(1.0)
        self.successResultOf(calls[-1])

    def test_401_stops_the_token(self) -> None:
        """
        After Discord rejects a token (401), no call at all is made with
        it, on any route; other bots' calls go on.
        """
        self.discord.script = [(401, {}, b'{"message": "401: Unauthorized", "code": 0}')]
        error = self.failureResultOf(self.typing(), DiscordHTTPError).value
        self.assertTrue(error.token_rejected)
        self.assertTrue(self.rest.token_rejected("TOKEN"))
        self.failureResultOf(self.typing("456"), TokenRejected)
        gateway = self.rest.get_gateway_bot("TOKEN")
        self.treq.flush()
        self.assertTrue(self.failureResultOf(gateway, DiscordHTTPError).value.token_rejected)
        self.assertEqual(len(self.discord.seen), 1)
        self.successResultOf(self.typing(token="OTHER"))
        self.assertEqual(self.rest.calls["refused"], 2)

    def test_401_while_waiting(self) -> None:
        """
        A call waiting for its bucket when the token is rejected is not
        made either.
        """
        self.discord.script = [
            (204, limited(0, 2.0), b""),
            (401, {}, b'{"message": "401: Unauthorized", "code": 0}'),
        ]
        self.successResultOf(self.typing("1"))
        waiting = self.typing("1")
        self.failureResultOf(self.typing("2"), DiscordHTTPError)
        self.advance(2.0)
        self.failureResultOf(waiting, TokenRejected)
        self.assertEqual(len(self.discord.seen), 2)

    def test_invalid_request_budget(self) -> None:
        """
        Once the node's invalid requests in the window reach its budget,
        no call is made, for any bot, until the oldest leave the window.
        """
        self.invalid.budget = 3
        self.invalid.reserve = 0  # the reserve has its own tests
        self.discord.script = [(403, {}, b'{"message": "Missing Access", "code": 50001}')] * 3
        for channel in ("1", "2", "3"):
            self.failureResultOf(self.typing(channel), DiscordHTTPError)
        refused = self.failureResultOf(self.typing(token="OTHER"), InvalidRequestBudgetSpent)
        self.assertEqual(refused.value.retry_after, 600.0)
        self.assertEqual(len(self.discord.seen), 3)
        self.advance(600.0)
        self.successResultOf(self.typing(token="OTHER"))

    def test_share_per_token(self) -> None:
        """
        A token that spent its share of invalid requests makes no more calls
        until they leave the window, with an error saying so; other tokens'
        calls go on.
        """
        self.invalid.share = 2
        self.discord.script = [(403, {}, b'{"message": "Missing Access", "code": 50001}')] * 2
        for channel in ("1", "2"):
            self.failureResultOf(self.typing(channel), DiscordHTTPError)
        refused = self.failureResultOf(self.typing("3"), InvalidRequestBudgetSpent).value
        self.assertTrue(refused.own_share)
        self.assertIn("failed 2 times in 10 minutes", refused.message)
        self.assertEqual(refused.retry_after, 600.0)
        self.assertEqual(len(self.discord.seen), 2)
        self.successResultOf(self.typing(token="OTHER"))
        self.advance(600.0)
        self.successResultOf(self.typing("3"))

    def test_reserve_for_proven_tokens(self) -> None:
        """
        Once invalid requests reach the budget less the reserve, tokens
        Discord never accepted make no calls, while one it accepted still
        does, up to the whole budget.
        """
        self.invalid.budget, self.invalid.reserve = 4, 2
        self.successResultOf(self.typing(token="GOOD"))
        self.discord.script = [(401, {}, b'{"message": "401: Unauthorized", "code": 0}')] * 2
        for bogus in ("BAD1", "BAD2"):
            self.failureResultOf(self.typing(token=bogus), DiscordHTTPError)
        refused = self.failureResultOf(self.typing(token="NEW"), InvalidRequestBudgetSpent).value
        self.assertFalse(refused.own_share)
        self.assertEqual(len(self.discord.seen), 3)
        self.successResultOf(self.typing(token="GOOD"))
        self.assertEqual(len(self.discord.seen), 4)

    def test_shared_429_not_invalid(self) -> None:
        """
        A 429 with ``X-RateLimit-Scope: shared`` does not count against
        the invalid request budget.
        """
        self.discord.script = [(429, {b"X-RateLimit-Scope": b"shared"}, TOO_MANY)]
        d = self.typing(max_wait=None)
        self.advance(1.5)
        self.successResultOf(d)
        self.assertEqual(self.invalid.total, 0)


class InteractionCallbackTests(SynchronousTestCase):
    """
    ``POST /interactions/{id}/{token}/callback``.
    """

    def setUp(self) -> None:
        self.discord = Discord()
        self.treq = StubTreq(StringStubbingResource(self.discord))
        self.rest = DiscordREST(self.treq, API, clock=Clock())

    def test_callback(self) -> None:
        """
        The response goes as JSON to the interaction's callback route,
        without the bot's Authorization.
        """
        d = self.rest.create_interaction_response(
            "TOKEN", "123", "aW50ZXJhY3Rpb24", {"type": 5, "data": {"flags": 64}}
        )
        self.treq.flush()
        self.successResultOf(d)
        method, url, headers, data = self.discord.seen[0]
        self.assertEqual(
            (method, url), (b"POST", API + "/interactions/123/aW50ZXJhY3Rpb24/callback")
        )
        self.assertNotIn(b"Authorization", headers)
        self.assertEqual(headers[b"Content-Type"], [b"application/json"])
        self.assertEqual(orjson.loads(data), {"type": 5, "data": {"flags": 64}})

    def test_already_acknowledged(self) -> None:
        """
        Discord's JSON error code comes with the error (40060: the
        interaction was answered already).
        """
        self.discord.script = [
            (400, {}, b'{"message": "Interaction has already been acknowledged.", "code": 40060}')
        ]
        d = self.rest.create_interaction_response("TOKEN", "123", "tok", {"type": 5})
        self.treq.flush()
        error = self.failureResultOf(d, DiscordHTTPError).value
        self.assertEqual((error.status, error.code), (400, 40060))
        self.assertFalse(self.rest.token_rejected("TOKEN"))

    def test_bad_id_or_token(self) -> None:
        """
        An id that is not a number, or an empty or overlong token, never
        reaches the URL, and the error says which.
        """
        d = self.rest.create_interaction_response("TOKEN", "1/../2", "tok", {"type": 5})
        self.assertIn("id is not a number", str(self.failureResultOf(d, ValueError).value))
        d = self.rest.create_interaction_response("TOKEN", "1", "", {"type": 5})
        self.assertIn("token is empty", str(self.failureResultOf(d, ValueError).value))
        d = self.rest.create_interaction_response("TOKEN", "1", "x" * 513, {"type": 5})
        self.failureResultOf(d, ValueError)
        self.assertEqual(self.discord.seen, [])

    def test_token_quoted(self) -> None:
        """
        A token with characters outside what Discord uses today still goes,
        quoted as one path segment, rather than being refused.
        """
        d = self.rest.create_interaction_response("TOKEN", "123", "a/b+c=", {"type": 5})
        self.treq.flush()
        self.successResultOf(d)
        method, url, headers, data = self.discord.seen[0]
        self.assertEqual(url, API + "/interactions/123/a%2Fb%2Bc%3D/callback")
