"""
The relay's HTTP resource tree, built in one place.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from dccrelay.relay.manager import RelayManager
from dccrelay.web.access import Access
from dccrelay.web.api_request import APIRequest
from dccrelay.web.bot_page import BotPages
from dccrelay.web.channel import IDLE_TIMEOUT, DeadlineChannel
from dccrelay.web.metrics import MetricsPage
from dccrelay.web.openapi import OpenAPIDocument
from dccrelay.web.relays import ParseSettings, RelayCollection
from dccrelay.web.responses import json_handler
from dccrelay.web.status_page import StatusPage


class Health(Resource):
    """
    ``GET /healthz``: 200 once the relays are loaded; 503 before, saying
    what the node waits for (or why it is stopping: it could not start).
    """

    isLeaf = True

    def __init__(self, manager: RelayManager) -> None:
        super().__init__()
        self._manager = manager

    @json_handler
    def render_GET(self, request: Request) -> tuple[int, object]:
        manager = self._manager
        if manager.loaded:
            return 200, {"status": "ok", "relays": len(manager.relays)}
        startup = manager.startup
        if startup.failed is not None:
            return 503, {"status": "failed", "reason": startup.failed}
        return 503, {"status": "starting", "reason": startup.waiting_for}


def build_resource(
    manager: RelayManager, parse_settings: ParseSettings, access: Access | None = None
) -> Resource:
    """
    ``/``, ``/bots/{alias}``, ``/relays``, ``/relays/{alias}``, ``/healthz``,
    ``/openapi.json``.
    """
    root = Resource()
    access = access if access is not None else Access()
    status = StatusPage(manager)
    root.putChild(b"", status)
    root.putChild(b"bots", BotPages(manager, access))
    root.putChild(b"relays", RelayCollection(manager, parse_settings, access))
    root.putChild(b"openapi.json", OpenAPIDocument())
    root.putChild(b"healthz", Health(manager))
    root.putChild(b"metrics", MetricsPage(manager))
    return root


def build_site(
    manager: RelayManager,
    parse_settings: ParseSettings,
    access: Access | None = None,
    reactor: Any = None,
) -> Site:
    """
    The site the relay serves, with bodies capped, errors in JSON, and
    deadlines for slow clients.
    """
    site = Site(
        build_resource(manager, parse_settings, access), timeout=IDLE_TIMEOUT, reactor=reactor
    )
    site.protocol = DeadlineChannel  # type: ignore[assignment]
    site.requestFactory = APIRequest
    site.displayTracebacks = False
    return site
