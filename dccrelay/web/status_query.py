"""
What the status page shows of many bots: the query string read into a
:class:`StatusQuery` (search, state, page), each bot's problems, the node's
totals, and one bounded page of bots.  Plain functions over the public
status dicts, so that the page stays cheap at 10,000 bots and is tested
without HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlencode

#: The problems a bot can be filtered by, and what each means on the page.
PROBLEMS: dict[str, str] = {
    "disabled": "disabled",
    "not-ready": "not ready",
    "failing": "delivery failing",
    "dropping": "dropping",
}

#: ``state=`` values: every bot, or those with one problem.
STATE_FILTERS = ("all", *PROBLEMS)

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_SEARCH = 64


@dataclass(frozen=True)
class StatusQuery:
    """
    What a person asked the status page for.

    :ivar search: part of an alias, case-insensitive ("" for every bot).
    :ivar state: one of :data:`STATE_FILTERS`.
    :ivar page: 1-based page number (past the end shows the last page).
    :ivar per_page: bots per page, 1 to :data:`MAX_PER_PAGE`.
    """

    search: str = ""
    state: str = "all"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def link(self, **changes: Any) -> str:
        """
        The page's relative URL for this query with ``changes``; defaults
        are left out, so links stay short.
        """
        values = {
            "q": self.search, "state": self.state, "page": self.page, "per": self.per_page,
            **changes,
        }
        defaults = {"q": "", "state": "all", "page": 1, "per": DEFAULT_PER_PAGE}
        kept = {k: v for k, v in values.items() if v != defaults[k]}
        return "?" + urlencode(kept) if kept else "./"


def _first(args: Mapping[bytes, Sequence[bytes]], name: bytes) -> str:
    values = args.get(name) or [b""]
    return values[0].decode("utf-8", "replace").strip()


def _number(text: str, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(text), low), high)
    except ValueError:
        return default


def parse_query(args: Mapping[bytes, Sequence[bytes]]) -> StatusQuery:
    """
    Read ``request.args``.  Nonsense never fails the page: an unknown state
    means every bot, a bad number the default, sizes are clamped.
    """
    state = _first(args, b"state")
    return StatusQuery(
        search=_first(args, b"q")[:MAX_SEARCH],
        state=state if state in STATE_FILTERS else "all",
        page=_number(_first(args, b"page"), 1, 1, 10**9),
        per_page=_number(_first(args, b"per"), DEFAULT_PER_PAGE, 1, MAX_PER_PAGE),
    )


def problems(status: Mapping[str, Any]) -> list[str]:
    """
    The keys of :data:`PROBLEMS` that describe a bot, from its public status.
    """
    found = []
    if not status["enabled"]:
        found.append("disabled")
    elif not status["shards"] or any(s["state"] != "ready" for s in status["shards"]):
        found.append("not-ready")
    delivery_state = status["delivery"]["state"]
    if delivery_state == "waiting to retry" or (
        status["lastDeliveryError"] and status["queued"] and delivery_state != "connected"
    ):
        found.append("failing")
    if status["dropped"]:
        found.append("dropping")
    return found


@dataclass(frozen=True)
class Totals:
    """
    The node's figures, over every bot (not just those a query selects).
    """

    bots: int
    problems: dict[str, int]
    shards: int
    shards_ready: int
    received: int
    matched: int
    delivered: int
    dropped: int
    queued: int


def totals(statuses: Iterable[Mapping[str, Any]]) -> Totals:
    """
    Add up every bot's figures.
    """
    bots = shards = ready = received = matched = delivered = dropped = queued = 0
    counts = dict.fromkeys(PROBLEMS, 0)
    for status in statuses:
        bots += 1
        for problem in problems(status):
            counts[problem] += 1
        for shard in status["shards"]:
            shards += 1
            ready += shard["state"] == "ready"
        counters = status["counters"]
        received += counters["received"]
        matched += counters["matched"]
        delivered += counters["delivered"]
        dropped += status["dropped"]
        queued += status["queued"]
    return Totals(bots, counts, shards, ready, received, matched, delivered, dropped, queued)


@dataclass(frozen=True)
class StatusSelection:
    """
    One page of the bots a query selects.

    :ivar rows: the bots on this page, by alias.
    :ivar page: the page shown (the query's, or the last one).
    :ivar pages: how many pages the selection fills (at least 1).
    :ivar matched: how many bots the query selects, on every page.
    """

    rows: list[Mapping[str, Any]]
    page: int
    pages: int
    matched: int


def select(query: StatusQuery, statuses: Sequence[Mapping[str, Any]]) -> StatusSelection:
    """
    The page of ``statuses`` (sorted by alias) that ``query`` asks for.
    """
    needle = query.search.lower()
    chosen = [
        status for status in statuses
        if needle in status["alias"].lower()
        and (query.state == "all" or query.state in problems(status))
    ]
    pages = max(1, -(-len(chosen) // query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    return StatusSelection(chosen[start:start + query.per_page], page, pages, len(chosen))
