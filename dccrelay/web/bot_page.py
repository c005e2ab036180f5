"""
``GET /bots/{alias}``: one bot's page for a person.  Anyone sees what
``GET /relays`` shows of it (shards and their last close reasons, delivery
state and error, queue, counters, the wake economy as a histogram); its
owner, presenting the clientSecret as HTTP Basic credentials (the browser
asks, after ``?private=1``), or the operator key, also sees its settings
(token masked) and its sessions' identify and resume counts.  Everything is
escaped by ``twisted.web.template``.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.template import Tag, tags

from dccrelay.relay.manager import RelayManager
from dccrelay.relay.settings import SettingsError, validate_alias
from dccrelay.web.access import Access
from dccrelay.web.responses import HTTPError, reason_phrase, write_page
from dccrelay.web.status_json import full_json, public_json
from dccrelay.web.status_page import STYLE, state
from dccrelay.web.status_query import PROBLEMS, problems
from dccrelay.web.wake_chart import wake_histogram


def _facts(rows: list[tuple[str, Any]]) -> Tag:
    return tags.table(
        *[tags.tr(tags.th(name), tags.td(value)) for name, value in rows], class_="facts"
    )


def _shards(status: Mapping[str, Any], private: bool) -> Tag:
    heads = ["shard", "state", "last close"] + (["identifies", "resumes", "seq"] if private else [])
    rows = []
    for shard in status["shards"]:
        cells = [
            tags.td(str(shard["id"]), class_="n"),
            tags.td(state(shard["state"])),
            tags.td(shard.get("lastClose") or "-"),
        ]
        if private:
            cells += [tags.td("-" if shard.get(k) is None else str(shard[k]), class_="n")
                      for k in ("identifies", "resumes", "seq")]
        rows.append(tags.tr(*cells))
    if not rows:
        return tags.p("No gateway shards are running.")
    return tags.table(tags.tr(*[tags.th(h) for h in heads]), *rows)


def _wake(status: Mapping[str, Any]) -> list[Tag | str]:
    wake = status.get("wake") or {}
    asleep = wake.get("asleepDeliveries") or {}
    count = asleep.get("count", 0)
    facts = _facts([
        ("dispatches delivered to a sleeping bot", str(count)),
        ("average wait", f"{asleep['sumSeconds'] / count:.2f} s" if count else "-"),
        ("longest wait", f"{asleep.get('maxSeconds', 0):.2f} s" if count else "-"),
        ("wake requests (wakeUrl)", str(wake.get("wakeRequests", 0))),
        ("typing indicators shown", str(wake.get("typingCalls", 0))),
        ("interactions deferred", str(wake.get("deferredInteractions", 0))),
    ])
    chart: Tag | str = (
        wake_histogram(asleep.get("buckets") or {}) if count
        else tags.p("No dispatch has waited for this bot to wake yet.")
    )
    return [facts, chart]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _settings(full: Mapping[str, Any]) -> list[Tag]:
    settings = full["settings"]
    rows: list[tuple[str, Any]] = [
        ("token", settings["token"]),
        ("dst", settings["dst"]),
        ("intents", str(settings["intents"])),
        ("filter", settings["filter"]),
        ("criteria", tags.pre(orjson.dumps(settings["criteria"], option=orjson.OPT_INDENT_2)
                              .decode("utf-8"))),
        ("shards", str(settings["shards"])),
        ("delivery protocol", str(settings["delivery"]["protocol"])),
        ("typing while waking", _yes(settings["typingWhileWaking"])),
        ("defer interactions", _yes(settings["deferInteractions"])),
        ("wakeUrl", settings["wakeUrl"] or "-"),
    ]
    wake_url = full.get("wakeUrl")
    if wake_url:
        rows.append(("wakeUrl requests", f"{wake_url['requests']} requests, "
                                         f"{wake_url['failures']} failed, last status "
                                         f"{wake_url['lastStatus']}, last error "
                                         f"{wake_url['lastError'] or '-'}"))
    return [tags.h2("Settings (private)"), _facts(rows)]


def render_bot(status: Mapping[str, Any], private: bool) -> Tag:
    """
    The page of one bot, from its public status or (``private``) its full
    status.
    """
    alias = status["alias"]
    counters = status["counters"]
    found = problems(status)
    overview = _facts([
        ("gateway", state("enabled") if status["enabled"] else state("disabled")),
        ("problems", ", ".join(PROBLEMS[p] for p in found) or "none"),
        ("last disable reason", status["lastDisableReason"] or "-"),
        ("gateway error", status["gatewayError"] or "-"),
        ("node", status.get("node") or "this one"),
    ])
    delivery = _facts([
        ("state", state(status["delivery"]["state"])),
        ("queued", str(status["queued"])),
        ("dropped", tags.span(str(status["dropped"]), class_="state bad")
         if status["dropped"] else "0"),
        ("last delivery error", status["lastDeliveryError"] or "-"),
        ("received / matched / delivered",
         f"{counters['received']} / {counters['matched']} / {counters['delivered']}"),
    ])
    private_part: list[Tag] = (
        _settings(status) if private else [tags.p(
            "Settings, session counts and the token (masked) are for the bot's owner: ",
            tags.a("show them", href="?private=1"),
            " (the browser asks for the clientSecret: user and password as in "
            "user:password).",
        )]
    )
    return _page(
        f"{alias} · dccrelay",
        tags.p(tags.a("← all bots", href="../")),
        tags.h1(alias),
        overview,
        tags.h2("Gateway shards"),
        _shards(status, private),
        tags.h2("Delivery"),
        delivery,
        tags.h2("Wake economy"),
        *_wake(status),
        *private_part,
    )


def _page(title: str, *body: Tag | str) -> Tag:
    return tags.html(
        tags.head(tags.meta(charset="utf-8"), tags.title(title), tags.style(STYLE)),
        tags.body(*body),
    )


def _write(request: Request, page: Tag) -> object:
    return write_page(request, page)


def _refuse(request: Request, error: HTTPError) -> object:
    request.setResponseCode(error.code, reason_phrase(error.code))
    for name, value in error.headers.items():
        request.setHeader(name, value)
    return _write(request, _page(
        "dccrelay", tags.p(tags.a("← all bots", href="../")), tags.h1(str(error.code)),
        tags.p(error.message),
    ))


class BotPage(Resource):
    """
    One bot's page.
    """

    isLeaf = True

    def __init__(self, manager: RelayManager, alias: str, access: Access) -> None:
        super().__init__()
        self._manager = manager
        self._alias = alias
        self._access = access

    def render_GET(self, request: Request) -> object:
        relay = self._manager.relays.get(self._alias)
        if relay is None:
            return _refuse(request, HTTPError(404, f"no bot is registered as {self._alias}"))
        wants_private = request.getHeader(b"authorization") is not None or (
            request.args.get(b"private") == [b"1"]
        )
        if not wants_private:
            return _write(request, render_bot(public_json(relay.snapshot()), private=False))
        try:
            self._access.require_owner(request, relay.settings.client_secret, alias=self._alias)
        except HTTPError as e:
            return _refuse(request, e)
        return _write(request, render_bot(full_json(relay.snapshot(private=True)), private=True))


class BotPages(Resource):
    """
    ``/bots/``: a :class:`BotPage` per alias.
    """

    def __init__(self, manager: RelayManager, access: Access) -> None:
        super().__init__()
        self._manager = manager
        self._access = access

    def getChild(self, path: bytes, request: Request) -> Resource:
        try:
            alias = path.decode("ascii")
            validate_alias(alias)
        except (UnicodeDecodeError, SettingsError):
            return _NoSuchBot()
        return BotPage(self._manager, alias, self._access)


class _NoSuchBot(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> object:
        return _refuse(request, HTTPError(404, "no such bot: aliases are A-Z, a-z, 0-9 and _"))
