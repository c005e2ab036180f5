"""
The few Discord REST calls the relay makes for its bots, over treq, within
Discord's rate limits (see :mod:`dccrelay.gateway.rest_limits`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

import orjson
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.http_headers import Headers

from dccrelay import __version__
from dccrelay.gateway.rest_limits import (
    GLOBAL_LIMIT,
    InvalidRequests,
    Route,
    TokenLimits,
    route_for,
)

# Discord asks for "DiscordBot ($url, $versionNumber)".
USER_AGENT = f"DiscordBot (dccrelay, {__version__})"


class DiscordHTTPError(Exception):
    """
    Discord answered a REST call with an error.

    :ivar status: the HTTP status code.
    :ivar message: Discord's message, safe to show (never holds the token).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Discord answered HTTP {status}: {message}")
        self.status = status
        self.message = message
        #: Discord's JSON error code, when it gave one (e.g. 40060)
        self.code: int | None = None

    @property
    def token_rejected(self) -> bool:
        """
        Whether retrying with the same token is pointless.
        """
        return self.status == 401


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """
    The answer to ``GET /gateway/bot``.
    """

    url: str
    shards: int
    max_concurrency: int
    remaining: int
    reset_after: float  # seconds


class RateLimited(DiscordHTTPError):
    """
    A call was not made, or not retried, because Discord's rate limits
    would make it wait longer than its caller allows.

    :ivar retry_after: seconds until it could go.
    """

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(429, message)
        self.retry_after = retry_after


class TokenRejected(DiscordHTTPError):
    """
    The call was not made: Discord rejected this token (401) before, and a
    rejected token is never used again.
    """

    def __init__(self) -> None:
        super().__init__(401, "Discord rejected this bot token earlier; it is not used again")


class InvalidRequestBudgetSpent(DiscordHTTPError):
    """
    The call was not made: the node made so many invalid requests (401,
    403, 429) lately that one more could get its IP address banned
    (``own_share`` False), or this token spent its own share of them
    (``own_share`` True).
    """

    def __init__(self, retry_after: float, own_share: bool = False, share: int = 0) -> None:
        if own_share:
            message = (
                f"this bot's calls to Discord failed {share} times in 10 minutes (HTTP "
                "401, 403 or 429), its share of the relay's invalid-request budget, "
                "which every bot on the relay's IP address shares; no calls for "
                f"{retry_after:.0f} s: check the bot token and the bot's permissions"
            )
        else:
            message = (
                "the relay made too many invalid requests to Discord lately; "
                f"no calls for {retry_after:.0f} s"
            )
        super().__init__(429, message)
        self.retry_after = retry_after
        self.own_share = own_share


#: 429s retried per call before giving up
MAX_RETRIES = 3

#: seconds Discord has to answer a call
TIMEOUT = 20.0

#: seconds a typing call may wait for a rate limit: later, the person has
#: seen nothing for too long for the indicator to matter
TYPING_MAX_WAIT = 5.0

#: tokens whose rejection is remembered at most
MAX_REJECTED = 10_000

#: tokens remembered as accepted by Discord at most
MAX_PROVEN = 100_000

#: seconds a token's limits are kept after its last call, once reset
_IDLE = 900.0


class TokenBook:
    """
    What a node keeps per bot token: its rate limits, whether Discord
    rejected it (as a digest, never the token), and the calls probing its
    buckets, whose answers other callers wait for.
    """

    def __init__(self) -> None:
        self._limits: dict[str, TokenLimits] = {}
        # (token, bucket key) -> callers waiting for the answer of a call
        # that will tell what remains in that bucket
        self._probes: dict[tuple[str, str], list[Deferred[None]]] = {}
        # digests of rejected tokens, oldest first
        self._rejected: dict[str, None] = {}
        # digests of tokens Discord accepted, oldest first
        self._proven: dict[str, None] = {}

    def proven(self, token: str) -> bool:
        """
        Whether Discord accepted ``token`` (answered a call with it 2xx).
        """
        return _digest(token) in self._proven

    def accepted(self, token: str) -> None:
        """
        Remember that Discord accepted ``token``.
        """
        digest = _digest(token)
        if digest in self._proven:
            return
        self._proven[digest] = None
        while len(self._proven) > MAX_PROVEN:
            del self._proven[next(iter(self._proven))]

    def rejected(self, token: str) -> bool:
        """
        Whether Discord rejected ``token``.
        """
        return _digest(token) in self._rejected

    def limits_for(self, token: str, now: float) -> TokenLimits:
        """
        The limits of ``token``, new ones if none are kept; making room
        drops those idle and reset for a while.
        """
        limits = self._limits.get(token)
        if limits is None:
            if len(self._limits) >= 256:
                for key in [
                    k for k, v in self._limits.items()
                    if v.last_used < now - _IDLE and v.idle(now)
                ]:
                    del self._limits[key]
            limits = self._limits[token] = TokenLimits()
            limits.last_used = now
        return limits

    def reject(self, token: str) -> None:
        """
        Remember that Discord rejected ``token`` and drop its limits.
        """
        self._limits.pop(token, None)
        self._proven.pop(_digest(token), None)
        self._rejected[_digest(token)] = None
        while len(self._rejected) > MAX_REJECTED:
            del self._rejected[next(iter(self._rejected))]

    def forget(self, token: str) -> None:
        """
        Drop the limits of ``token``; a rejection is kept.
        """
        self._limits.pop(token, None)

    def begin_probe(self, probe: tuple[str, str]) -> Deferred[None] | None:
        """
        Start finding out what remains in a bucket, unless a call already
        is: then return a Deferred that fires once that call's answer is in.
        """
        if probe in self._probes:
            waiter: Deferred[None] = Deferred()
            self._probes[probe].append(waiter)
            return waiter
        self._probes[probe] = []
        return None

    def end_probe(self, probe: tuple[str, str]) -> None:
        """
        The probing call has its answer: let its waiters go.
        """
        for waiter in self._probes.pop(probe, []):
            waiter.callback(None)


class CallGate:
    """
    Whether and when a call may go, and what its answer tells: the node's
    invalid request count, each token's limits and rejection, and the
    calls made, by outcome.

    :param log: the logger of the :class:`DiscordREST` it serves, so that
        its events keep that namespace.
    """

    def __init__(
        self, clock: IReactorTime, invalid: InvalidRequests, global_limit: int, log: Logger
    ) -> None:
        self._clock = clock
        self._log = log
        self.invalid = invalid
        self._global_limit = global_limit
        self.tokens = TokenBook()
        #: calls made, by outcome: "ok", "error", "rate_limited" (429s),
        #: "waited" (calls that waited for a limit), "refused" (not made)
        self.calls: Counter[str] = Counter()

    def refuse_if_rejected(self, token: str) -> None:
        """
        :raise TokenRejected: Discord rejected ``token``: no call is made.
        """
        if self.tokens.rejected(token):
            self.calls["refused"] += 1
            raise TokenRejected()

    async def turn(
        self,
        token: str,
        route: Route,
        limits: TokenLimits,
        waited: float,
        max_wait: float | None,
        authorize: bool = True,
    ) -> tuple[tuple[str, str] | None, float]:
        """
        Wait until the limits let the call go, then take its place in them.

        :param authorize: the call carries ``token`` as the bot's; one that
            does not (an interaction's token) is vouched for by the
            interaction Discord sent, so the reserve is open to it.

        :return: the bucket this call probes (None if its remains are
            known), and the seconds waited so far.
        :raise DiscordHTTPError: a subclass, when the call must not be made.
        """
        while True:
            now = self._clock.seconds()
            subject = _digest(token)
            spent = self.invalid.share_spent(subject, now)
            if spent > 0:
                self.calls["refused"] += 1
                raise InvalidRequestBudgetSpent(spent, own_share=True, share=self.invalid.share)
            banned = self.invalid.exhausted(now, not authorize or self.tokens.proven(token))
            if banned > 0:
                self.calls["refused"] += 1
                raise InvalidRequestBudgetSpent(banned)
            wait = limits.wait(route, now, self._global_limit)
            if wait > 0:
                waited = await self._wait_for_limit(token, wait, waited, max_wait)
                continue
            probe = None
            if not limits.known(route, now):
                probe = (token, limits.key(route))
                waiter = self.tokens.begin_probe(probe)
                if waiter is not None:
                    # another call is finding out what remains: wait for it
                    await waiter
                    continue
            limits.take(route, now)
            return probe, waited

    async def _wait_for_limit(
        self, token: str, wait: float, waited: float, max_wait: float | None
    ) -> float:
        """
        Wait ``wait`` seconds for a limit, if the caller can.

        :return: the seconds waited so far, this wait included.
        """
        if max_wait is not None and waited + wait > max_wait:
            self.calls["refused"] += 1
            raise RateLimited(wait, f"Discord's rate limit allows no call for {wait:.1f} s")
        if not waited:
            self.calls["waited"] += 1
        waited += wait
        await deferLater(self._clock, wait, lambda: None)
        # Discord may have rejected the token meanwhile, in another call
        self.refuse_if_rejected(token)
        return waited

    def answered(
        self, token: str, route: Route, code: int, parsed: Any, authorize: bool, now: float
    ) -> tuple[int, Any]:
        """
        Count an answer other than 429; a 401 rejects the token for good.
        """
        if code == 401 and authorize:
            self.invalid.count(now, _digest(token))
            self.tokens.reject(token)
            self.calls["error"] += 1
            self._log.warn(
                "Discord rejected a bot token (HTTP 401 on {route}): no more calls with it",
                route=route.template,
            )
            raise DiscordHTTPError(401, _message(parsed))
        if code in (401, 403):
            self.invalid.count(now, _digest(token))
        if 200 <= code < 300 and authorize:
            self.tokens.accepted(token)
        self.calls["ok" if 200 <= code < 300 else "error"] += 1
        return code, parsed

    def rate_limited(
        self,
        route: Route,
        limits: TokenLimits,
        headers: Headers,
        parsed: Any,
        now: float,
        token: str = "",
    ) -> float:
        """
        Note a 429 in the limits and the invalid request count.

        :return: the seconds Discord asks to wait.
        """
        self.calls["rate_limited"] += 1
        scope = _header(headers, b"x-ratelimit-scope")
        # a shared resource's limit is no fault of ours: Discord does not count it
        if scope != "shared":
            self.invalid.count(now, _digest(token) if token else "")
        retry_after = _retry_after(parsed, headers)
        is_global = bool(isinstance(parsed, dict) and parsed.get("global")) or (
            _header(headers, b"x-ratelimit-global") is not None
        )
        limits.limited(route, now, retry_after, is_global)
        self._log.info(
            "Discord rate limited {route} ({scope}) for {retry_after:.2f} s",
            route=route.template,
            scope="global" if is_global else (scope or "route"),
            retry_after=retry_after,
        )
        return retry_after


class DiscordREST:
    """
    Discord's REST API for one relay node, within Discord's rate limits
    (:mod:`dccrelay.gateway.rest_limits`): per-route buckets and the global
    limit of each bot token, 429s honoured, no call ever again with a token
    Discord rejected, and none at all while the node's invalid requests near
    the level at which Discord bans its IP address.

    :param client: a treq ``HTTPClient`` (a ``StubTreq`` in tests).
    :param api_base: e.g. ``https://discord.com/api/v10``.
    :param clock: for waiting on limits and for timeouts.
    :param invalid: the node's invalid request count (a fresh one if None).
    """

    _log = Logger()

    def __init__(
        self,
        client: HTTPClient,
        api_base: str,
        *,
        clock: IReactorTime,
        invalid: InvalidRequests | None = None,
        global_limit: int = GLOBAL_LIMIT,
        timeout: float = TIMEOUT,
    ) -> None:
        self._client = client
        self._api_base = api_base.rstrip("/")
        self._clock = clock
        self.invalid = invalid if invalid is not None else InvalidRequests()
        self._timeout = timeout
        self._gate = CallGate(clock, self.invalid, global_limit, self._log)
        #: calls made, by outcome: "ok", "error", "rate_limited" (429s),
        #: "waited" (calls that waited for a limit), "refused" (not made)
        self.calls = self._gate.calls


    @property
    def api_base(self) -> str:
        """The REST base URL, e.g. ``https://discord.com/api/v10``."""
        return self._api_base
    def _headers(
        self, token: str | None, json: bool = False
    ) -> dict[bytes | str, list[bytes | str]]:
        headers: dict[bytes | str, list[bytes | str]] = {
            b"User-Agent": [USER_AGENT.encode("ascii")],
        }
        if token is not None:
            headers[b"Authorization"] = [b"Bot " + token.encode("ascii")]
        if json:
            headers[b"Content-Type"] = [b"application/json"]
        return headers

    # -- the limits of each token ------------------------------------------------

    def token_rejected(self, token: str) -> bool:
        """
        Whether Discord rejected ``token`` (401): no call is made with it.
        """
        return self._gate.tokens.rejected(token)

    def forget(self, token: str) -> None:
        """
        Drop what is kept of ``token``'s limits (its bot is gone).  A
        rejection is kept.
        """
        self._gate.tokens.forget(token)

    # -- one call -------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        token: str,
        *,
        body: Any = None,
        authorize: bool = True,
        exempt: bool = False,
        max_wait: float | None = None,
    ) -> tuple[int, Any]:
        """
        Make one call for the bot whose token is ``token``, waiting for its
        limits and retrying 429s.

        :param authorize: send ``Authorization: Bot <token>`` (interaction
            endpoints take none; the token still keys the limits).
        :param exempt: an interaction endpoint: not bound by the global limit.
        :param max_wait: seconds the caller can wait for a limit at most;
            past it the call fails with :class:`RateLimited`.
        :return: the status code and the parsed JSON body (None if none).
        :raise DiscordHTTPError: 401 (and the token is never used again), or
            one of its subclasses when the call was not made.
        """
        gate = self._gate
        gate.refuse_if_rejected(token)
        route = route_for(method, path, exempt=exempt)
        limits = gate.tokens.limits_for(token, self._clock.seconds())
        retries = 0
        # seconds waited for limits, over every try of this call
        waited = 0.0
        while True:
            probe, waited = await gate.turn(token, route, limits, waited, max_wait, authorize)
            code, headers, parsed, now = await self._send(
                method, path, token, body, authorize, route, limits, probe
            )
            if code != 429:
                return gate.answered(token, route, code, parsed, authorize, now)
            retry_after = gate.rate_limited(route, limits, headers, parsed, now, token)
            retries += 1
            if retries > MAX_RETRIES:
                raise RateLimited(retry_after, _message(parsed))

    async def _send(
        self,
        method: str,
        path: str,
        token: str,
        body: Any,
        authorize: bool,
        route: Route,
        limits: TokenLimits,
        probe: tuple[str, str] | None,
    ) -> tuple[int, Headers, Any, float]:
        """
        Make the call and note what its answer says of the limits.

        :return: the status code, headers, parsed body and the time of the
            answer.
        """
        try:
            code, headers, parsed = await self._exchange(method, path, token, body, authorize)
            now = self._clock.seconds()
            limits.update(
                route,
                now,
                bucket_hash=_header(headers, b"x-ratelimit-bucket"),
                remaining=_number(_header(headers, b"x-ratelimit-remaining"), int),
                reset_after=_number(_header(headers, b"x-ratelimit-reset-after"), float),
            )
        finally:
            # only now: the waiters must see what this answer said
            if probe is not None:
                self._gate.tokens.end_probe(probe)
        return code, headers, parsed, now

    async def _exchange(
        self, method: str, path: str, token: str, body: Any, authorize: bool
    ) -> tuple[int, Headers, Any]:
        kwargs: dict[str, Any] = {
            "headers": self._headers(token if authorize else None, json=body is not None)
        }
        if body is not None:
            kwargs["data"] = orjson.dumps(body)
        request = self._client.request(method, self._api_base + path, **kwargs)

        async def answered() -> tuple[int, Headers, bytes]:
            response = await request
            content = await response.content()
            return response.code, response.headers, content

        exchange = Deferred.fromCoroutine(answered())
        exchange.addTimeout(self._timeout, self._clock)
        code, headers, content = await exchange
        try:
            parsed = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            parsed = None
        return code, headers, parsed

    # -- the calls --------------------------------------------------------------

    def get_gateway_bot(self, token: str) -> Deferred[GatewayInfo]:
        """
        Ask where to connect, how many shards to use and how many sessions
        the bot may still start.
        """
        return Deferred.fromCoroutine(self._gateway_bot(token))

    async def _gateway_bot(self, token: str) -> GatewayInfo:
        code, answer = await self._request("GET", "/gateway/bot", token)
        if code != 200:
            raise DiscordHTTPError(code, _message(answer))
        if answer is None:
            raise DiscordHTTPError(code, "the body was not JSON")
        try:
            limit = answer["session_start_limit"]
            return GatewayInfo(
                url=str(answer["url"]),
                shards=int(answer["shards"]),
                max_concurrency=max(1, int(limit["max_concurrency"])),
                remaining=int(limit["remaining"]),
                reset_after=float(limit["reset_after"]) / 1000.0,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DiscordHTTPError(200, f"unexpected /gateway/bot answer ({e!r})")

    def trigger_typing(
        self, token: str, channel_id: str, max_wait: float | None = TYPING_MAX_WAIT
    ) -> Deferred[None]:
        """
        ``POST /channels/{channel_id}/typing``: show the bot as typing in
        that channel (for about 10 s, or until it sends a message).

        :param max_wait: seconds the call may wait for a rate limit.
        :raise DiscordHTTPError: (in the Deferred) unless Discord answers 2xx.
        """
        return Deferred.fromCoroutine(self._typing(token, channel_id, max_wait))

    async def _typing(self, token: str, channel_id: str, max_wait: float | None) -> None:
        if not channel_id.isdigit():
            # a snowflake; anything else must not reach the URL
            raise ValueError("a channel id is a number")
        code, answer = await self._request(
            "POST", f"/channels/{channel_id}/typing", token, max_wait=max_wait
        )
        if not 200 <= code < 300:
            raise DiscordHTTPError(code, _message(answer))

    def create_interaction_response(
        self,
        token: str,
        interaction_id: str,
        interaction_token: str,
        response: dict[str, Any],
        max_wait: float | None = None,
    ) -> Deferred[None]:
        """
        ``POST /interactions/{id}/{token}/callback``: answer an interaction
        for the bot whose token is ``token`` (which keys the limits; the
        call itself carries no Authorization, as Discord's interaction
        endpoints take none).

        :param response: the interaction response (``{"type": 5, ...}``).
        :raise DiscordHTTPError: (in the Deferred) unless Discord answers 2xx.
        """
        return Deferred.fromCoroutine(
            self._callback(token, interaction_id, interaction_token, response, max_wait)
        )

    async def _callback(
        self,
        token: str,
        interaction_id: str,
        interaction_token: str,
        response: dict[str, Any],
        max_wait: float | None,
    ) -> None:
        if not interaction_id.isdigit():
            raise ValueError("the interaction's id is not a number")
        if not 0 < len(interaction_token) <= MAX_INTERACTION_TOKEN:
            raise ValueError(
                f"the interaction's token is empty or over {MAX_INTERACTION_TOKEN} characters"
            )
        # Quoted whole, rather than guessing Discord's alphabet: whatever the
        # token holds stays one path segment.
        segment = quote(interaction_token, safe="")
        code, answer = await self._request(
            "POST",
            f"/interactions/{interaction_id}/{segment}/callback",
            token,
            body=response,
            authorize=False,
            exempt=True,
            max_wait=max_wait,
        )
        if not 200 <= code < 300:
            error = DiscordHTTPError(code, _message(answer))
            code_given = answer.get("code") if isinstance(answer, dict) else None
            error.code = code_given if type(code_given) is int else None
            raise error


#: characters in an interaction token, at most (Discord's are ~200)
MAX_INTERACTION_TOKEN = 512


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _header(headers: Headers, name: bytes) -> str | None:
    values = headers.getRawHeaders(name)
    if not values:
        return None
    return str(values[0].decode("latin-1").strip())


def _number(text: str | None, kind: Callable[[str], float | int]) -> Any:
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        return None
    if value != value or value < 0 or value > 86400 * 7:  # NaN, negative, absurd
        return None
    return value


def _retry_after(parsed: Any, headers: Headers) -> float:
    """
    Seconds to wait after a 429: the body's ``retry_after``, else the
    ``Retry-After`` header, else a second.
    """
    value = parsed.get("retry_after") if isinstance(parsed, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 86400:
        return float(value)
    header = _number(_header(headers, b"retry-after"), float)
    return float(header) if header is not None else 1.0


def _message(parsed: Any) -> str:
    message = (parsed.get("message") if isinstance(parsed, dict) else None) or "no message"
    return str(message)[:200]
