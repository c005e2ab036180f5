"""
``GET /``: a status page a person can read, rendered with
``twisted.web.template`` so that every value is escaped.  It shows what
``GET /relays`` shows: no token, secret, dst or criteria.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.template import Tag, flattenString, tags

from dccrelay import __version__
from dccrelay.manager import RelayManager

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.off { color: #a00; }
"""

COLUMNS = (
    "bot", "enabled", "shards", "delivery", "received", "matched",
    "delivered", "queued", "dropped", "last problem",
)


def _row(status: dict[str, Any]) -> Tag:
    shards = ", ".join(f"{s['id']}: {s['state']}" for s in status["shards"]) or "-"
    problems = [
        status["lastDisableReason"], status["gatewayError"], status["lastDeliveryError"],
    ]
    counters = status["counters"]
    return tags.tr(
        tags.td(status["alias"]),
        tags.td("yes" if status["enabled"] else tags.span("no", class_="off")),
        tags.td(shards),
        tags.td(status["delivery"]["state"]),
        tags.td(str(counters["received"])),
        tags.td(str(counters["matched"])),
        tags.td(str(counters["delivered"])),
        tags.td(str(status["queued"])),
        tags.td(str(status["dropped"])),
        tags.td("; ".join(p for p in problems if p) or "-"),
    )


def render_status(manager: RelayManager) -> Tag:
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
            tags.title("dccrelay status"),
            tags.style(STYLE),
        ),
        tags.body(
            tags.h1("dccrelay"),
            tags.p(f"{len(relays)} of at most {manager.max_relays} bots, version {__version__}."),
            body,
        ),
    )


class StatusPage(Resource):
    """
    The human status page.
    """

    def __init__(self, manager: RelayManager) -> None:
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
