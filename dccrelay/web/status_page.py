"""
``GET /``: a status page a person can read, rendered with
``twisted.web.template`` so that every value is escaped (a close reason from
Discord or an error from a bot's host may hold ``<``).  It shows what
``GET /relays`` shows: no token, secret, dst or criteria.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.template import Tag, flattenString, tags

from dccrelay import __version__

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.state { display: inline-block; padding: 0 .4em; border-radius: .3em; white-space: nowrap; }
.ok { background: #dff3df; color: #185c18; }
.busy { background: #fff3cd; color: #6b5200; }
.bad { background: #f8d7da; color: #842029; }
.idle { background: #eceff1; color: #455a64; }
.problems { margin: 0; padding-left: 1.2em; }
.summary td { border: none; padding: .1em 1em .1em 0; }
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
    What the page reads: a :class:`~dccrelay.manager.RelayManager`.
    """

    relays: Any
    max_relays: int

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


def _reasons(status: dict[str, Any]) -> list[str]:
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


def _row(status: dict[str, Any]) -> Tag:
    shards: list[Tag | str] = [
        tags.div(f"{s['id']}: ", state(s["state"])) for s in status["shards"]
    ] or ["-"]
    reasons = _reasons(status)
    counters = status["counters"]
    dropped = status["dropped"]
    return tags.tr(
        tags.td(status["alias"]),
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


def _summary(manager: StatusSource, relays: list[dict[str, Any]]) -> Tag:
    enabled = sum(1 for r in relays if r["enabled"])
    shards = [s for r in relays for s in r["shards"]]
    ready = sum(1 for s in shards if s["state"] == "ready")
    total = {
        key: sum(r["counters"][key] for r in relays)
        for key in ("received", "matched", "delivered")
    }
    uptime = manager.uptime()
    rows = [
        ("version", __version__),
        ("up for", format_duration(uptime) if uptime is not None else "starting"),
        ("bots", f"{len(relays)} of at most {manager.max_relays}: "
                 f"{enabled} enabled, {len(relays) - enabled} disabled"),
        ("shards", f"{ready} of {len(shards)} ready"),
        ("dispatches", f"{total['received']} received, {total['matched']} matched, "
                       f"{total['delivered']} delivered, "
                       f"{sum(r['dropped'] for r in relays)} dropped, "
                       f"{sum(r['queued'] for r in relays)} queued"),
    ]
    return tags.table(*[tags.tr(tags.td(k), tags.td(v)) for k, v in rows], class_="summary")


def render_status(manager: StatusSource) -> Tag:
    """
    The page, as a tag tree.
    """
    relays = [manager.relays[alias].public_status() for alias in sorted(manager.relays)]
    body = (
        tags.table(
            tags.tr(*[tags.th(c) for c in COLUMNS]),
            *[_row(status) for status in relays],
        )
        if relays
        else tags.p("No bots are registered yet.")
    )
    return tags.html(
        tags.head(
            tags.meta(charset="utf-8"),
            tags.meta(content="30", **{"http-equiv": "refresh"}),
            tags.title("dccrelay status"),
            tags.style(STYLE),
        ),
        tags.body(
            tags.h1("dccrelay"),
            _summary(manager, relays),
            tags.h2("Bots"),
            body,
            tags.p(
                "Counts since the relay started. Machine-readable: ",
                tags.a("/relays", href="relays"), ", ",
                tags.a("/metrics", href="metrics"), ".",
            ),
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
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        d = flattenString(request, render_status(self._manager))

        def done(html: bytes) -> None:
            request.write(b"<!DOCTYPE html>\n" + html)
            request.finish()

        d.addCallback(done)
        return NOT_DONE_YET
