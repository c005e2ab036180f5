"""
The registration API: ``/relays`` and ``/relays/{alias}``.

See DESIGN.md, "Registration API".  A ``PUT`` creates a relay without
credentials and updates one only with its current clientSecret; the body's
secret may differ from the one presented, which is how a secret is rotated.
"""

from __future__ import annotations

import hmac
import math
from typing import Any, Callable

import orjson
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from dccrelay.gateway.commands import CommandError, command_answer
from dccrelay.relay.handle import IRelayHandle
from dccrelay.relay.manager import AliasTaken, RelayManager, TooManyRelays
from dccrelay.relay.settings import RelaySettings, SettingsError, validate_alias
from dccrelay.web.access import Access
from dccrelay.web.request import MAX_BODY, CappedRequest
from dccrelay.web.responses import HTTPError, json_handler
from dccrelay.web.status_json import full_json, public_json

ParseSettings = Callable[[Any], RelaySettings]


def read_json_body(request: Request) -> Any:
    """
    The request's JSON body.

    :raise HTTPError: 413 or 400, saying what is wrong.
    """
    if isinstance(request, CappedRequest) and request.too_large:
        raise HTTPError(413, f"the body is larger than {MAX_BODY} bytes")
    content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
    if content_type and "json" not in content_type.lower():
        raise HTTPError(415, f"the body must be application/json, not {content_type[:80]!r}")
    if isinstance(request, CappedRequest):
        raw = request.read_body()
    else:
        # A request made by another factory (tests' StubTreq): cap it here.
        content: Any = request.content
        raw = content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise HTTPError(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise HTTPError(400, f"the body is not valid JSON: {e}", "")


class RelayCollection(Resource):
    """
    ``GET /relays``: the public status of every relay.
    """

    def __init__(
        self, manager: RelayManager, parse_settings: ParseSettings, access: Access | None = None
    ) -> None:
        super().__init__()
        self._manager = manager
        self._parse_settings = parse_settings
        self._access = access if access is not None else Access()

    def getChild(self, path: bytes, request: Request) -> Resource:
        try:
            require_loaded(self._manager)
        except HTTPError as e:
            return NotLoaded(e)
        try:
            alias = path.decode("ascii")
            validate_alias(alias)
        except (UnicodeDecodeError, SettingsError):
            return InvalidAlias()
        return RelayResource(self._manager, self._parse_settings, alias, self._access)

    @json_handler
    def render_GET(self, request: Request) -> tuple[int, Any]:
        require_loaded(self._manager)
        relays = self._manager.relays
        if self._access.is_operator(request):
            return 200, {"relays": [full_json(relays[alias].snapshot(private=True)) for alias in sorted(relays)]}
        return 200, {"relays": [public_json(relays[alias].snapshot()) for alias in sorted(relays)]}


def require_loaded(manager: RelayManager) -> None:
    """
    Until the registrations are loaded, the node cannot say which aliases
    exist: nothing is answered as if it knew, and nothing is changed.

    :raise HTTPError: 503, saying what the node waits for.
    """
    if not manager.loaded:
        raise HTTPError(
            503,
            "this relay has not loaded its registrations yet "
            f"({manager.startup.waiting_for}); try again shortly",
            headers={b"Retry-After": b"5"},
        )


class NotLoaded(Resource):
    """
    ``/relays/{alias}`` and below, for every method, before the
    registrations are loaded: ``refusal``.
    """

    isLeaf = True

    def __init__(self, refusal: HTTPError) -> None:
        super().__init__()
        self._refusal = refusal

    def render(self, request: Request) -> object:
        return self._refuse(request)

    @json_handler
    def _refuse(self, request: Request) -> tuple[int, Any]:
        raise self._refusal


class InvalidAlias(Resource):
    """
    Anything under ``/relays/`` that is not a valid alias.
    """

    isLeaf = True

    def render(self, request: Request) -> object:
        return self._refuse(request)

    @json_handler
    def _refuse(self, request: Request) -> tuple[int, Any]:
        raise HTTPError(
            400, "alias must be 1 to 64 characters of A-Z, a-z, 0-9 and _", "/alias"
        )


def registered(manager: RelayManager, alias: str) -> IRelayHandle:
    """
    The relay registered as ``alias``.

    :raise HTTPError: 404 if there is none.
    """
    relay = manager.relays.get(alias)
    if relay is None:
        raise HTTPError(404, f"no relay is registered as {alias}")
    return relay


def refuse_second_alias(manager: RelayManager, alias: str, token: str) -> None:
    """
    One bot, one gateway session: a token already registered under another
    alias would open a second session for the same bot, each getting every
    dispatch (and spending its daily identifies twice).

    :raise HTTPError: 409, naming the alias that has the token (only whoever
        holds the token can learn it).
    """
    presented = token.encode("utf-8")
    for other, relay in manager.relays.items():
        if other != alias and hmac.compare_digest(
            relay.settings.token.encode("utf-8"), presented
        ):
            raise HTTPError(
                409,
                f"this bot token is already registered as {other!r}: one bot has one gateway "
                f"session, so update {other!r} (PUT /relays/{other}) or delete it first",
                "/token",
            )


class RelayResource(Resource):
    """
    ``/relays/{alias}``: one bot's registration.
    """

    def __init__(
        self,
        manager: RelayManager,
        parse_settings: ParseSettings,
        alias: str,
        access: Access | None = None,
    ) -> None:
        super().__init__()
        self._manager = manager
        self._parse_settings = parse_settings
        self.alias = alias
        self._access = access if access is not None else Access()
        self.putChild(b"disable", DisableResource(manager, alias, self._access))
        self.putChild(b"commands", CommandsResource(manager, alias, self._access))
        self.putChild(b"claim", ClaimResource(manager, alias, self._access))
        self.putChild(b"snapshot", SnapshotResource(manager, alias, self._access))

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        return super().getChild(path, request)

    @json_handler
    def render_PUT(self, request: Request) -> Any:
        def authorize(current: RelaySettings | None) -> None:
            # Only the owner changes a bot's settings; creating may need the
            # registration key.  Checked again once the manager is ready to
            # apply the change, in case this alias was created meanwhile.
            if current is None:
                self._access.require_registrant(request)
            else:
                self._access.require_owner(
                    request, current.client_secret, operator_may=False, alias=self.alias
                )

        relay = self._manager.relays.get(self.alias)
        authorize(relay.settings if relay is not None else None)
        body = read_json_body(request)
        try:
            settings = self._parse_settings(body)
        except SettingsError as e:
            raise HTTPError(400, e.message, e.pointer)

        def authorize_alone(current: RelaySettings | None) -> None:
            authorize(current)
            refuse_second_alias(self._manager, self.alias, settings.token)

        refuse_second_alias(self._manager, self.alias, settings.token)
        if relay is None or not hmac.compare_digest(
            relay.settings.token.encode("utf-8"), settings.token.encode("utf-8")
        ):
            # A new token costs a call to Discord, and a bad one an invalid
            # request the whole node shares.
            self._access.count_new_token(request, self.alias)
        d = self._manager.put(self.alias, settings, authorize_alone)

        def answered(created: bool) -> tuple[int, Any]:
            status = full_json(self._manager.relays[self.alias].snapshot(private=True))
            return (201 if created else 200), status

        def full(failure: Any) -> None:
            if failure.check(AliasTaken):
                raise HTTPError(
                    503, f"{self.alias} is being registered and deleted as this request "
                    "comes; try again", headers={b"Retry-After": b"1"},
                )
            failure.trap(TooManyRelays)
            raise HTTPError(
                503,
                f"this relay already holds its maximum of {self._manager.max_relays} bots",
                headers={b"Retry-After": b"3600"},
            )

        return d.addCallbacks(answered, full)

    @json_handler
    def render_DELETE(self, request: Request) -> Any:
        relay = self._manager.relays.get(self.alias)
        if relay is None:
            return 200, {"alias": self.alias, "deleted": False}
        self._access.require_owner(request, relay.settings.client_secret, alias=self.alias)
        d = self._manager.delete(self.alias)
        return d.addCallback(lambda existed: (200, {"alias": self.alias, "deleted": existed}))

    @json_handler
    def render_GET(self, request: Request) -> tuple[int, Any]:
        relay = registered(self._manager, self.alias)
        self._access.require_owner(request, relay.settings.client_secret, alias=self.alias)
        return 200, full_json(relay.snapshot(private=True))


class _RelayAction(Resource):
    """
    ``POST /relays/{alias}/<action>``.
    """

    isLeaf = True

    def __init__(self, manager: RelayManager, alias: str, access: Access | None = None) -> None:
        super().__init__()
        self._manager = manager
        self.alias = alias
        self._access = access if access is not None else Access()

    def _owner_command(
        self, request: Request, method: Callable[[IRelayHandle], Callable[[Any], dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]]:
        """
        With the bot's own secret, hand the JSON body to ``method(relay)``
        (through :func:`command_answer`).  An error answer is raised as
        :class:`HTTPError`, with ``Retry-After`` when it gives one; a bot
        another node runs answers 409, naming that node.
        """
        relay = registered(self._manager, self.alias)
        self._access.require_owner(
            request, relay.settings.client_secret, operator_may=False, alias=self.alias
        )
        body = read_json_body(request)
        status, answer = command_answer(method(relay), body)
        if status >= 400:
            retry_after = answer.get("retryAfter")
            headers = {b"Retry-After": b"%d" % math.ceil(retry_after)} if retry_after else None
            raise HTTPError(status, answer["error"], answer.get("field"), headers=headers)
        return status, answer


class DisableResource(_RelayAction):
    """
    ``POST /relays/{alias}/disable``: end the gateway session; a later PUT
    re-enables.
    """

    @json_handler
    def render_POST(self, request: Request) -> Any:
        relay = registered(self._manager, self.alias)
        who = self._access.require_owner(request, relay.settings.client_secret, alias=self.alias)
        by = "the relay's operator" if who == "operator" else "its owner"
        d = self._manager.disable(self.alias, f"disabled by {by} through the API")
        return d.addCallback(lambda _: (200, full_json(relay.snapshot(private=True))))


class SnapshotResource(_RelayAction):
    """
    ``GET /relays/{alias}/snapshot``: the bot's guilds, for its framework's
    cold start (``guildSnapshot``, see :mod:`dccrelay.relay.guild_snapshot`).
    """

    @json_handler
    def render_GET(self, request: Request) -> Deferred[tuple[int, Any]]:
        relay = registered(self._manager, self.alias)
        self._access.require_owner(
            request, relay.settings.client_secret, operator_may=False, alias=self.alias
        )

        def answer(snapshot: dict[str, Any] | None) -> tuple[int, Any]:
            if snapshot is None:
                raise HTTPError(
                    404, 'this bot keeps no guild snapshot: register it with "guildSnapshot": true'
                )
            return 200, snapshot

        def elsewhere(failure: Failure) -> None:
            failure.trap(CommandError)  # a bot another node runs: 409
            error: CommandError = failure.value  # type: ignore[assignment]
            raise HTTPError(error.status, error.message)

        return relay.guild_snapshot().addCallbacks(answer, elsewhere)


class ClaimResource(_RelayAction):
    """
    ``POST /relays/{alias}/claim``: the bot has an interaction and asks
    whether it may answer it through Discord's callback, or whether the
    relay deferred it (see :mod:`dccrelay.waking.interactions`).
    """

    @json_handler
    def render_POST(self, request: Request) -> tuple[int, Any]:
        _, answer = self._owner_command(request, lambda relay: relay.claim_interaction)
        return 200, answer


class CommandsResource(_RelayAction):
    """
    ``POST /relays/{alias}/commands``: a gateway command from the bot
    (presence update, member request), forwarded on its gateway session
    (see :mod:`dccrelay.gateway.commands`).
    """

    @json_handler
    def render_POST(self, request: Request) -> tuple[int, Any]:
        return self._owner_command(request, lambda relay: relay.send_command)
