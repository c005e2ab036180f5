"""
Discord's REST rate limits, as the simulator enforces them.

Source: discord/discord-api-docs, ``developers/topics/rate-limits.mdx``.

- every answer on a limited route carries ``X-RateLimit-Limit``,
  ``-Remaining``, ``-Reset`` (epoch seconds), ``-Reset-After`` (seconds) and
  ``-Bucket`` (a hash per route, the same for every top-level resource: the
  bucket itself is the hash and the channel, guild, webhook or interaction);
- a request on an exhausted bucket is answered 429 ``{"message": "You are
  being rate limited.", "retry_after": <seconds>, "global": false}`` with
  ``Retry-After`` and ``X-RateLimit-Scope: user``;
- more than :data:`GLOBAL_LIMIT` requests in a second from one bot token
  are answered 429 with ``"global": true``, ``X-RateLimit-Global: true`` and
  ``X-RateLimit-Scope: global`` (interaction endpoints are exempt);
- 401, 403 and 429 (unless ``shared``) are *invalid requests*, counted in
  :attr:`SimulatedRateLimits.invalid`: Discord bans an IP after 10,000 in
  10 minutes.

Buckets here are fixed windows, with the limits of :data:`ROUTE_LIMITS`
(Discord's real ones are undocumented and change; these are of the same
order for typing and messages, and generous elsewhere).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

#: requests per second per bot token
GLOBAL_LIMIT = 50

#: (requests, seconds) per bucket, by route name
ROUTE_LIMITS: dict[str, tuple[int, float]] = {
    "gateway_bot": (50, 5.0),
    "typing": (5, 5.0),
    "messages": (5, 5.0),
    "interaction_callback": (5, 5.0),
    "webhook": (5, 2.0),
}


@dataclass
class _Window:
    started: float
    count: int = 0


@dataclass(frozen=True)
class Verdict:
    """
    What the limits say of one request.

    :ivar headers: the rate limit headers to answer with.
    :ivar retry_after: seconds to wait, when the request is refused (429).
    :ivar is_global: the refusal is the global limit's.
    """

    headers: dict[bytes, bytes]
    retry_after: float | None = None
    is_global: bool = False

    def body(self) -> dict[str, Any]:
        """The JSON body of the 429."""
        return {
            "message": "You are being rate limited.",
            "retry_after": round(self.retry_after or 0.0, 3),
            "global": self.is_global,
        }


class SimulatedRateLimits:
    """
    The simulator's rate limit state.

    :ivar invalid: invalid requests answered (401, 403, 429 not shared).
    :ivar limited: 429s answered, by route name (``"global"`` for the
        global limit).
    :ivar enabled: set to False to answer every request.
    """

    def __init__(
        self,
        clock: Any,
        routes: dict[str, tuple[int, float]] | None = None,
        global_limit: int = GLOBAL_LIMIT,
    ) -> None:
        self._clock = clock
        self.routes = dict(ROUTE_LIMITS if routes is None else routes)
        self.global_limit = global_limit
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._recent: dict[str, deque[float]] = {}
        self.invalid = 0
        self.limited: dict[str, int] = {}
        self.enabled = True

    def check(self, who: str, route: str, major: str, *, exempt: bool = False) -> Verdict:
        """
        Count one request by ``who`` (a bot token) on ``route`` for the
        top-level resource ``major``.
        """
        now = self._clock.seconds()
        if not self.enabled:
            return Verdict({})
        if not exempt:
            recent = self._recent.setdefault(who, deque())
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= self.global_limit:
                retry_after = recent[0] + 1.0 - now
                self._refused("global")
                return Verdict(
                    {
                        b"Retry-After": b"%d" % math.ceil(retry_after),
                        b"X-RateLimit-Global": b"true",
                        b"X-RateLimit-Scope": b"global",
                    },
                    retry_after,
                    is_global=True,
                )
            recent.append(now)
        limit_window = self.routes.get(route)
        if limit_window is None:
            return Verdict({})
        limit, window = limit_window
        key = (who, route, major)
        current = self._windows.get(key)
        if current is None or current.started + window <= now:
            current = self._windows[key] = _Window(now)
            self._forget_old(now)
        reset_after = current.started + window - now
        headers = {
            b"X-RateLimit-Limit": b"%d" % limit,
            b"X-RateLimit-Reset": b"%.3f" % (current.started + window),
            b"X-RateLimit-Reset-After": b"%.3f" % reset_after,
            b"X-RateLimit-Bucket": _bucket_hash(route).encode("ascii"),
        }
        if current.count >= limit:
            self._refused(route)
            headers[b"X-RateLimit-Remaining"] = b"0"
            headers[b"Retry-After"] = b"%d" % math.ceil(reset_after)
            headers[b"X-RateLimit-Scope"] = b"user"
            return Verdict(headers, reset_after)
        current.count += 1
        headers[b"X-RateLimit-Remaining"] = b"%d" % (limit - current.count)
        return Verdict(headers)

    def answered(self, code: int, shared: bool = False) -> None:
        """
        Count an answer: 401, 403 and unshared 429 are invalid requests.
        """
        if code in (401, 403) or (code == 429 and not shared):
            self.invalid += 1

    def _refused(self, name: str) -> None:
        self.limited[name] = self.limited.get(name, 0) + 1

    def _forget_old(self, now: float) -> None:
        if len(self._windows) > 4096:
            for key in [
                k for k, w in self._windows.items() if w.started + self.routes[k[1]][1] <= now
            ]:
                del self._windows[key]


def _bucket_hash(route: str) -> str:
    return hashlib.sha256(route.encode("ascii")).hexdigest()[:16]
