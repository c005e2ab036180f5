"""
``GET /``: a status page a person can read, rendered with
``twisted.web.template`` so that every value is escaped (a close reason from
Discord or an error from a bot's host may hold ``<``).  It shows what
``GET /relays`` shows: no token, secret, dst or criteria.

Built for a node with 10,000 bots: the totals at the top count every bot,
the table shows one bounded page of those a search (``q``, part of the
alias) and a state filter (``state``) select, and each alias links to the
bot's own page (:mod:`dccrelay.web.bot_page`).  No script: a form and
links.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.template import Tag, tags

from dccrelay import __version__
from dccrelay.web.responses import reason_phrase, write_page
from dccrelay.web.status_json import public_json
from dccrelay.web.status_query import (
    PROBLEMS,
    STATE_FILTERS,
    StatusQuery,
    StatusSelection,
    Totals,
    parse_query,
    select,
    totals,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td div { white-space: nowrap; }
.state { display: inline-block; padding: 0 .4em; border-radius: .3em; white-space: nowrap; }
.ok { background: #dff3df; color: #185c18; }
.busy { background: #fff3cd; color: #6b5200; }
.bad { background: #f8d7da; color: #842029; }
.idle { background: #eceff1; color: #455a64; }
.problems { margin: 0; padding-left: 1.2em; }
.summary td { border: none; padding: .1em 1em .1em 0; }
form { margin: 1em 0; }
form label { margin-right: 1em; }
.pager a, .pager span { margin-right: .8em; }
.totals a { margin-right: 1em; }
"""

#: The colour class of each shard and delivery state.
STATE_CLASSES = {
    "enabled": "ok",
    "ready": "ok",
    "connected": "ok",
    "waiting for identify slot": "busy",
    "connecting": "busy",
    "identifying": "busy",
    "resuming": "busy",
    "reconnecting": "busy",
    "waiting to retry": "bad",
    "disabled": "bad",
    "idle": "idle",
    "stopping": "idle",
    "stopped": "idle",
}

COLUMNS = (
    "bot", "gateway", "shards", "delivery", "received", "matched",
    "delivered", "queued", "dropped", "last reasons",
)


class StatusSource(Protocol):
    """
    What the page reads: a :class:`~dccrelay.relay.manager.RelayManager`.
    """

    relays: Any
    max_relays: int
    startup: Any

    @property
    def loaded(self) -> bool:
        """Whether every registration is loaded."""

    def uptime(self) -> float | None:
        """Seconds since the node started."""


def format_duration(seconds: float) -> str:
    """
    ``3 d 4 h``, ``5 h 12 min``, ``42 s``: a duration as a person reads it.
    """
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def state(name: str) -> Tag:
    """
    A state, coloured by what it means.
    """
    return tags.span(name, class_=f"state {STATE_CLASSES.get(name, 'idle')}")


def _reasons(status: Mapping[str, Any]) -> list[str]:
    reasons = []
    if status["lastDisableReason"]:
        prefix = "disabled" if not status["enabled"] else "last disabled"
        reasons.append(f"{prefix}: {status['lastDisableReason']}")
    if status["gatewayError"]:
        reasons.append(f"gateway: {status['gatewayError']}")
    for shard in status["shards"]:
        if shard.get("lastClose"):
            reasons.append(f"shard {shard['id']}: {shard['lastClose']}")
    if status["lastDeliveryError"]:
        reasons.append(f"delivery: {status['lastDeliveryError']}")
    return reasons


def _row(status: Mapping[str, Any]) -> Tag:
    shards: list[Tag | str] = [
        tags.div(f"{s['id']}: ", state(s["state"])) for s in status["shards"]
    ] or ["-"]
    reasons = _reasons(status)
    counters = status["counters"]
    dropped = status["dropped"]
    return tags.tr(
        tags.td(tags.a(status["alias"], href="bots/" + status["alias"])),
        tags.td(state("enabled") if status["enabled"] else state("disabled"),
                class_="gateway"),
        tags.td(*shards),
        tags.td(state(status["delivery"]["state"])),
        tags.td(str(counters["received"]), class_="n"),
        tags.td(str(counters["matched"]), class_="n"),
        tags.td(str(counters["delivered"]), class_="n"),
        tags.td(str(status["queued"]), class_="n"),
        tags.td(tags.span(str(dropped), class_="state bad") if dropped else "0", class_="n"),
        tags.td(tags.ul(*[tags.li(r) for r in reasons], class_="problems") if reasons else "-"),
    )


def _summary(manager: StatusSource, total: Totals) -> Tag:
    enabled = total.bots - total.problems["disabled"]
    uptime = manager.uptime()
    rows = [
        ("version", __version__),
        ("up for", format_duration(uptime) if uptime is not None else "starting"),
        ("bots", f"{total.bots} of at most {manager.max_relays}: "
                 f"{enabled} enabled, {total.problems['disabled']} disabled"),
        ("shards", f"{total.shards_ready} of {total.shards} ready"),
        ("dispatches", f"{total.received} received, {total.matched} matched, "
                       f"{total.delivered} delivered, {total.dropped} dropped, "
                       f"{total.queued} queued"),
    ]
    return tags.table(*[tags.tr(tags.td(k), tags.td(v)) for k, v in rows], class_="summary")


def _problem_links(query: StatusQuery, total: Totals) -> Tag:
    links: list[Tag | str] = [tags.a(f"all {total.bots}", href=query.link(state="all", page=1))]
    for key, label in PROBLEMS.items():
        count = total.problems[key]
        text = f"{label}: {count}"
        links.append(
            tags.a(tags.span(text, class_="state bad") if count else text,
                   href=query.link(state=key, page=1))
        )
    return tags.p(*links, class_="totals")


def _form(query: StatusQuery) -> Tag:
    options = [
        tags.option(
            "every bot" if key == "all" else PROBLEMS[key], value=key,
            **({"selected": "selected"} if key == query.state else {}),
        )
        for key in STATE_FILTERS
    ]
    return tags.form(
        tags.label("alias contains ", tags.input(type="search", name="q", value=query.search)),
        tags.label("state ", tags.select(*options, name="state")),
        tags.label("per page ", tags.input(
            type="number", name="per", value=str(query.per_page), min="1", max="200",
        )),
        tags.button("show", type="submit"),
        method="get", action="./",
    )


def _pager(query: StatusQuery, chosen: StatusSelection) -> Tag:
    parts: list[Tag | str] = [
        tags.span(f"{chosen.matched} bots match; page {chosen.page} of {chosen.pages}")
    ]
    if chosen.page > 1:
        parts.append(tags.a("first", href=query.link(page=1)))
        parts.append(tags.a("previous", href=query.link(page=chosen.page - 1), rel="prev"))
    if chosen.page < chosen.pages:
        parts.append(tags.a("next", href=query.link(page=chosen.page + 1), rel="next"))
        parts.append(tags.a("last", href=query.link(page=chosen.pages)))
    return tags.p(*parts, class_="pager")


def render_status(manager: StatusSource, query: StatusQuery | None = None) -> Tag:
    """
    The page, as a tag tree.
    """
    query = query or StatusQuery()
    relays = manager.relays
    statuses = [public_json(relays[alias].snapshot()) for alias in sorted(relays)]
    total = totals(statuses)
    chosen = select(query, statuses)
    if chosen.rows:
        body: Tag = tags.table(
            tags.tr(*[tags.th(c) for c in COLUMNS]),
            *[_row(status) for status in chosen.rows],
        )
    elif statuses:
        body = tags.p("No bot matches this search.")
    else:
        body = tags.p("No bots are registered yet.")
    return _page(
        30,
        _summary(manager, total),
        _problem_links(query, total),
        tags.h2("Bots"),
        _form(query),
        _pager(query, chosen),
        body,
        _pager(query, chosen) if len(chosen.rows) > 20 else "",
        tags.p(
            "Counts since the relay started. Machine-readable: ",
            tags.a("/relays", href="relays"), ", ",
            tags.a("/metrics", href="metrics"), ".",
        ),
    )


class StatusPage(Resource):
    """
    The human status page.
    """

    def __init__(self, manager: StatusSource) -> None:
        super().__init__()
        self._manager = manager

    def render_GET(self, request: Request) -> object:
        if not self._manager.loaded:
            # An empty list would read as "no bots": say what the node waits for.
            request.setResponseCode(503, reason_phrase(503))
            request.setHeader(b"Retry-After", b"5")
            return write_page(request, render_not_loaded(self._manager))
        return write_page(request, render_status(self._manager, parse_query(request.args)))


def render_not_loaded(manager: StatusSource) -> Tag:
    """
    The page while the registrations are not loaded yet.
    """
    return _page(
        5,
        tags.p(
            "This relay has not loaded its registrations yet ",
            f"({manager.startup.waiting_for}); its bots are shown once it has.",
        ),
    )


def _page(refresh: int, *content: Tag | str) -> Tag:
    """
    The status page's frame: reloaded every ``refresh`` seconds.
    """
    return tags.html(
        tags.head(
            tags.meta(charset="utf-8"),
            tags.meta(content=str(refresh), **{"http-equiv": "refresh"}),
            tags.title("dccrelay status"),
            tags.style(STYLE),
        ),
        tags.body(tags.h1("dccrelay"), *content),
    )
