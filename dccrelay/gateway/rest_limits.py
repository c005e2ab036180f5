"""
Discord's REST rate limits, as the relay keeps them for the bots it calls
Discord for.

What Discord documents (``developers/topics/rate-limits.mdx``), and what is
kept here:

- **per-route buckets**: each answer may carry ``X-RateLimit-Bucket`` (a
  hash shared by routes that share a limit), ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset-After`` (seconds).  A
  bucket is the hash *and* the route's top-level resource (channel, guild,
  webhook; for the relay also the interaction), so ``/channels/1/typing``
  and ``/channels/2/typing`` are limited apart.  A request on a bucket with
  nothing remaining waits for its reset;
- **the global limit**: 50 requests per second per bot, which the relay
  paces itself to; interaction endpoints are exempt.  A 429 with
  ``"global": true`` stops every request of that bot for ``retry_after``;
- **429**: ``retry_after`` (body) or ``Retry-After`` (header) is honoured,
  for the bucket or, when global, for the bot;
- **invalid requests** (401, 403, and 429 unless ``X-RateLimit-Scope:
  shared``): 10,000 per 10 minutes from one IP address get every bot on it
  banned by Cloudflare.  A 401 means the token is no good: no more requests
  are made with it (:attr:`TokenLimits.rejected`); and the node counts its
  invalid requests (:class:`InvalidRequests`) and stops calling Discord
  before it comes near the ban.  No one bot may spend that budget for the
  others: each token has a share of it, and part of it is kept for tokens
  Discord has accepted, so that bots already running keep calling while
  new, unproven tokens (5,000 bogus ones were once registered in 30 s) are
  refused.

Nothing here does I/O or reads the time: callers pass ``now``.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass

#: requests per second a bot may make (Discord's global limit)
GLOBAL_LIMIT = 50

#: seconds of the invalid request window
INVALID_WINDOW = 600.0

#: invalid requests the node allows itself per window: half of Discord's
#: 10,000, so that a node never nears the ban, whatever its bots do
INVALID_BUDGET = 5000

#: invalid requests one token may make per window: its share of the budget
INVALID_SHARE = 50

#: invalid requests of the budget that only tokens Discord accepted may
#: spend, so that the bots already running keep calling
INVALID_RESERVE = 2500

@dataclass(frozen=True, slots=True)
class Route:
    """
    One request's route: its template (``POST /channels/{id}/typing``) and
    its top-level resource (the channel id; for a webhook or interaction
    token, a digest of it).
    """

    template: str
    major: str
    #: not bound by the global limit (interaction endpoints)
    exempt: bool = False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]


def route_for(method: str, path: str, *, exempt: bool = False) -> Route:
    """
    The route of a request, from its method and its path under the API
    base (``/channels/123/typing``).

    The top-level id stays in :attr:`Route.major`, other ids become
    ``{id}``; a webhook's or interaction's token is replaced by
    ``{token}`` and only a digest of it is kept.

    :param exempt: the route is an interaction endpoint, not bound by the
        global limit.
    """
    segments = path.strip("/").split("/")
    head = segments[0]
    template = [head]
    major = ""
    rest = segments[1:]
    if head in ("channels", "guilds", "webhooks", "interactions") and rest:
        template.append("{id}")
        major = rest[0]
        rest = rest[1:]
        if head in ("webhooks", "interactions") and rest:
            template.append("{token}")
            major += "/" + _digest(rest[0])
            rest = rest[1:]
    template.extend("{id}" if segment.isdigit() else segment for segment in rest)
    return Route(f"{method.upper()} /" + "/".join(template), major, exempt)


@dataclass(slots=True)
class Bucket:
    """
    What Discord last said of one bucket.
    """

    remaining: int | None = None
    reset_at: float = 0.0

    def wait(self, now: float) -> float:
        """
        Seconds before a request may go on this bucket.
        """
        if self.remaining is not None and self.remaining <= 0 and self.reset_at > now:
            return self.reset_at - now
        return 0.0


class TokenLimits:
    """
    The rate limit state of one bot token.

    :ivar rejected: Discord answered 401 to it: never use it again.
    """

    __slots__ = (
        "rejected", "global_until", "_hashes", "_buckets", "_recent", "_unlimited", "last_used"
    )

    def __init__(self) -> None:
        self.rejected = False
        self.global_until = 0.0
        # route template -> Discord's bucket hash, once seen
        self._hashes: dict[str, str] = {}
        self._buckets: dict[str, Bucket] = {}
        # when the latest requests bound by the global limit went
        self._recent: deque[float] = deque()
        # route templates Discord answered without rate limit headers
        self._unlimited: set[str] = set()
        self.last_used = 0.0

    def key(self, route: Route) -> str:
        """
        The bucket a request on ``route`` counts against, as far as known.
        """
        return self._hashes.get(route.template, route.template) + ":" + route.major

    _key = key

    def known(self, route: Route, now: float) -> bool:
        """
        Whether what remains in the route's bucket is known (or it has no
        limit).  Until it is, requests on it go one at a time, so that a
        burst cannot overrun a limit nobody has seen yet.
        """
        if route.template in self._unlimited:
            return True
        bucket = self._buckets.get(self._key(route))
        return bucket is not None and bucket.remaining is not None and bucket.reset_at > now

    def bucket(self, route: Route) -> Bucket | None:
        """
        The route's bucket, if Discord has said anything of it.
        """
        return self._buckets.get(self._key(route))

    def wait(self, route: Route, now: float, global_limit: int = GLOBAL_LIMIT) -> float:
        """
        Seconds before a request on ``route`` may go.
        """
        wait = max(0.0, self.global_until - now)
        bucket = self._buckets.get(self._key(route))
        if bucket is not None:
            wait = max(wait, bucket.wait(now))
        if not route.exempt:
            recent = self._recent
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= global_limit:
                wait = max(wait, recent[0] + 1.0 - now)
        return wait

    def take(self, route: Route, now: float) -> None:
        """
        A request on ``route`` goes now.
        """
        self.last_used = now
        bucket = self._buckets.get(self._key(route))
        if bucket is not None and bucket.remaining is not None:
            if bucket.reset_at <= now:
                # reset meanwhile: the answer will say how much is left
                bucket.remaining = None
            else:
                bucket.remaining -= 1
        if not route.exempt:
            self._recent.append(now)

    def update(
        self,
        route: Route,
        now: float,
        *,
        bucket_hash: str | None,
        remaining: int | None,
        reset_after: float | None,
    ) -> None:
        """
        Keep what an answer's ``X-RateLimit-*`` headers say.
        """
        if bucket_hash:
            self._hashes[route.template] = bucket_hash
        if remaining is None or reset_after is None:
            if not bucket_hash:
                self._unlimited.add(route.template)
            return
        self._unlimited.discard(route.template)
        key = self._key(route)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket()
        if bucket.remaining is not None and bucket.reset_at > now:
            # Same window: answers to calls made together come back in any
            # order, and an earlier one must not give back what later calls
            # already took.
            bucket.remaining = min(bucket.remaining, remaining)
            bucket.reset_at = max(bucket.reset_at, now + reset_after)
        else:
            bucket.remaining = remaining
            bucket.reset_at = now + reset_after
        self._forget_reset(now)

    def limited(self, route: Route, now: float, retry_after: float, is_global: bool) -> None:
        """
        A 429: nothing more on the bucket (or, if global, at all) for
        ``retry_after`` seconds.
        """
        if is_global:
            self.global_until = max(self.global_until, now + retry_after)
            return
        key = self._key(route)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket()
        bucket.remaining = 0
        bucket.reset_at = max(bucket.reset_at, now + retry_after)

    def idle(self, now: float) -> bool:
        """
        Whether nothing here matters any more (except a rejection): every
        bucket and the global limit have reset.
        """
        self._forget_reset(now)
        return not self._buckets and self.global_until <= now and not self._recent_within(now)

    def _recent_within(self, now: float) -> bool:
        return bool(self._recent) and self._recent[-1] > now - 1.0

    def _forget_reset(self, now: float) -> None:
        # Buckets are per channel and interaction: without this, one per
        # channel the bot ever typed in would stay.
        if len(self._buckets) > 64:
            for key in [k for k, b in self._buckets.items() if b.reset_at <= now]:
                del self._buckets[key]


class InvalidRequests:
    """
    The node's invalid requests (401, 403, unshared 429) in the last
    :data:`INVALID_WINDOW` seconds, against a budget well under Discord's
    ban threshold, with a share per token and a reserve for tokens Discord
    accepted.

    :param budget: invalid requests the node allows itself per window.
    :param share: invalid requests one token may make per window.
    :param reserve: the part of ``budget`` only proven tokens may spend.
    """

    __slots__ = ("budget", "share", "reserve", "window", "_times", "_per_subject", "total")

    def __init__(
        self,
        budget: int = INVALID_BUDGET,
        window: float = INVALID_WINDOW,
        *,
        share: int = INVALID_SHARE,
        reserve: int = INVALID_RESERVE,
    ) -> None:
        self.budget = budget
        self.share = share
        self.reserve = min(reserve, budget)
        self.window = window
        # (when, subject) of each invalid request in the window
        self._times: deque[tuple[float, str]] = deque()
        # subject -> its invalid requests in the window
        self._per_subject: dict[str, int] = {}
        #: every invalid request counted, for metrics
        self.total = 0

    def count(self, now: float, subject: str = "") -> None:
        """
        One more invalid request, now, made for ``subject`` (a token's
        digest; "" for none in particular).
        """
        self._times.append((now, subject))
        self._per_subject[subject] = self._per_subject.get(subject, 0) + 1
        self.total += 1
        self._expire(now)

    def recent(self, now: float) -> int:
        """
        Invalid requests in the window ending now.
        """
        self._expire(now)
        return len(self._times)

    def spent_by(self, subject: str, now: float) -> int:
        """
        Invalid requests ``subject`` made in the window ending now.
        """
        self._expire(now)
        return self._per_subject.get(subject, 0)

    def exhausted(self, now: float, proven: bool = True) -> float:
        """
        Seconds until the node may call Discord again, 0 if it may now: for
        a token Discord accepted before (``proven``), the whole budget; for
        another, the budget less the reserve.
        """
        self._expire(now)
        allowed = self.budget if proven else max(1, self.budget - self.reserve)
        times = self._times
        if len(times) < allowed:
            return 0.0
        return times[len(times) - allowed][0] + self.window - now

    def share_spent(self, subject: str, now: float) -> float:
        """
        Seconds until ``subject`` may call Discord again, 0 if its share of
        invalid requests is not spent.
        """
        self._expire(now)
        if self._per_subject.get(subject, 0) < self.share:
            return 0.0
        # Rare (a token over its share): a scan of the window is fine.
        mine = [when for when, who in self._times if who == subject]
        return mine[len(mine) - self.share] + self.window - now

    def _expire(self, now: float) -> None:
        times = self._times
        per_subject = self._per_subject
        while times and times[0][0] <= now - self.window:
            _, subject = times.popleft()
            left = per_subject[subject] - 1
            if left:
                per_subject[subject] = left
            else:
                del per_subject[subject]
