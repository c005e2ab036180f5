"""
A discord.py ``Client``/``Bot`` (or a fork's: py-cord, nextcord, disnake)
behind the relay.  The bot's own library is used throughout
(:mod:`dccrelay_client.discord_family`): this module imports none.

- REST: ``Client.login`` alone (no gateway), with discord.py's REST and
  webhook routes pointed at the API base;
- dispatches enter where the gateway's would: ``ConnectionState.parsers``,
  after a READY for the bot's user (so ``on_ready`` fires);
- a guild the cache has not seen is fetched over REST once (guild with its
  roles, channels, the bot's member) before the dispatch that names it, so
  ``guild_only``, roles and permission checks work on a cold start;
- the gateway's ``change_presence`` and ``request_chunks`` go to the
  relay's commands endpoint; the member chunks come back as dispatches;
- interactions are claimed from the relay, so that only one of the bot
  and the relay answers the callback; a response to one the relay deferred
  becomes the follow-up call that fits (:mod:`dccrelay_client.answers`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from dccrelay_client.answers import InteractionAnswers
from dccrelay_client.discord_family import DiscordLibrary
from dccrelay_client.frameworks import guild_to_fetch, send_through_relay
from dccrelay_client.interactions import Deferral, deferral, followup_route
from dccrelay_client.registration import RelayAPI

if TYPE_CHECKING:
    import discord

log = logging.getLogger(__name__)

_PRESENCE = 3
_REQUEST_MEMBERS = 8


class RelayGateway:
    """
    Stands where discord.py keeps its gateway websocket (``client.ws``):
    the commands a bot sends on it go through the relay.
    """

    shard_id = None
    latency = 0.0

    def __init__(self, relay: RelayAPI | None) -> None:
        self._relay = relay

    def is_ratelimited(self) -> bool:
        """The relay paces commands itself."""
        return False

    async def _send(self, op: int, d: dict[str, Any]) -> None:
        await send_through_relay(self._relay, op, d)

    async def change_presence(
        self,
        *,
        activity: discord.BaseActivity | None = None,
        status: str | None = None,
        since: float = 0.0,
    ) -> None:
        """Update Presence (op 3), as discord.py's gateway builds it."""
        await self._send(
            _PRESENCE,
            {
                "activities": [activity.to_dict()] if activity is not None else [],
                "afk": False,
                "since": int(since),
                "status": status or "online",
            },
        )

    async def request_chunks(
        self,
        guild_id: int,
        query: str | None = None,
        *,
        limit: int,
        user_ids: list[int] | None = None,
        presences: bool = False,
        nonce: str | None = None,
    ) -> None:
        """Request Guild Members (op 8); the relay wants snowflakes as strings."""
        d: dict[str, Any] = {"guild_id": str(guild_id), "limit": limit}
        if presences:
            d["presences"] = True
        if nonce:
            d["nonce"] = nonce
        if user_ids:
            d["user_ids"] = [str(user_id) for user_id in user_ids]
        if query is not None or not user_ids:
            d["query"] = query or ""
        await self._send(_REQUEST_MEMBERS, d)


class DiscordPyBot:
    """
    :class:`~dccrelay_client.frameworks.FrameworkBot` for discord.py and its
    forks.

    :param library: the bot's library
        (:func:`~dccrelay_client.discord_family.discord_library`).
    """

    def __init__(self, client: discord.Client, library: DiscordLibrary) -> None:
        self.client = client
        self.library = library
        self.intents = client.intents.value
        self._api_base = ""
        self._answers = InteractionAnswers(None)
        self._fetched: set[int] = set()

    async def start(self, token: str, api_base: str, relay: RelayAPI | None) -> None:
        """Log in over REST; presence and member requests go to ``relay``."""
        self._api_base = api_base.rstrip("/")
        self.library.point_at(self._api_base)
        self._answers = InteractionAnswers(relay)
        self._route_interaction_responses()
        await self.client.login(token)
        self.client.ws = RelayGateway(relay)  # type: ignore[assignment]
        # What the gateway would say first: the bot's user and no guilds
        # (they are fetched as they are named).  on_ready follows, and
        # wait_until_ready() returns.
        me = await self.client.http.request(self.library.route("GET", "/users/@me"))
        # discord.py fetches its application at login; the forks do not
        # (a bot's application id is its user id, bar old bots).
        application = getattr(self.client, "application", None)
        self.client._connection.parsers["READY"](
            {
                "v": 10,
                "user": me,
                "guilds": [],
                "session_id": "dccrelay",
                "resume_gateway_url": "",
                "application": {
                    "id": str(application.id) if application else me["id"],
                    "flags": application.flags.value if application else 0,
                },
            }
        )

    def adopt(self, guilds: list[dict[str, Any]]) -> None:
        """Guilds from the relay's snapshot into discord.py's cache."""
        state = self.client._connection
        for guild in guilds:
            try:
                state._add_guild_from_data(guild)  # type: ignore[arg-type]
            except (KeyError, TypeError, ValueError) as e:
                log.warning("guild %s from the snapshot not usable (%r): fetched later", guild["id"], e)
                continue
            self._fetched.add(int(guild["id"]))

    async def announce(self) -> None:
        """The constructor's ``activity=``/``status=``, which IDENTIFY would carry."""
        state = self.client._connection
        if state._activity is not None or state._status is not None:
            await self.client.change_presence(
                activity=self.client.activity, status=state._status  # type: ignore[arg-type]
            )

    async def prepare(self, payload: dict[str, Any]) -> None:
        """
        Fetch the guild a dispatch names, the first time one is seen; claim
        an interaction (:mod:`dccrelay_client.answers`).
        """
        d = payload.get("d")
        if payload.get("t") == "INTERACTION_CREATE" and isinstance(d, dict):
            await self._answers.arrived(d, deferral(payload), self._defer_now)
        gid = guild_to_fetch(payload)
        state = self.client._connection
        if gid is None or gid in self._fetched or state._get_guild(gid) is not None:
            return
        self._fetched.add(gid)
        try:
            data = await self._guild_data(gid)
        except self.library.http_exception as e:
            log.warning("could not fetch guild %s for the cache: %s", gid, e)
            return
        state._add_guild_from_data(data)  # type: ignore[arg-type]

    async def _guild_data(self, guild_id: int) -> dict[str, Any]:
        http = self.client.http
        guild: dict[str, Any] = dict(await http.get_guild(guild_id))
        guild["channels"] = await http.get_all_guild_channels(guild_id)
        me = self.client.user
        guild["members"] = [await http.get_member(guild_id, me.id)] if me is not None else []
        guild.setdefault("threads", [])
        guild.setdefault("unavailable", False)
        return guild

    def feed(self, payload: dict[str, Any]) -> None:
        """Into discord.py's parser for the dispatch's event."""
        t = payload.get("t")
        d = payload.get("d")
        if not isinstance(t, str) or not isinstance(d, dict):
            return
        parser = self.client._connection.parsers.get(t)
        if parser is not None:
            parser(d)

    def waiters(self) -> frozenset[int]:
        """``wait_for`` futures and member requests waiting for chunks."""
        found = {id(future) for entries in self.client._listeners.values() for future, _ in entries}
        found.update(id(request) for request in self.client._connection._chunk_requests.values())
        return frozenset(found)

    async def close(self) -> None:
        """Close discord.py's HTTP session."""
        await self.client.http.close()

    def _route_interaction_responses(self) -> None:
        adapter = self.library.webhook_async.async_context.get()
        original = adapter.create_interaction_response
        bot = self

        def create_interaction_response(
            interaction_id: int, token: str, *, session: aiohttp.ClientSession, **kwargs: Any
        ) -> Any:
            return bot._respond(original, interaction_id, token, session=session, **kwargs)

        adapter.create_interaction_response = create_interaction_response

    async def _respond(
        self, original: Any, interaction_id: int, token: str, **kwargs: Any
    ) -> Any:
        return await self._answers.respond(
            int(interaction_id),
            lambda: original(interaction_id, token, **kwargs),
            lambda d, how: self._follow_up(d, how, kwargs["params"]),
            # the family's HTTPException carries Discord's JSON error code
            lambda e: getattr(e, "code", None) if isinstance(e, self.library.http_exception) else None,
        )

    async def _defer_now(self, d: dict[str, Any], how: Deferral) -> None:
        body: dict[str, Any] = {"type": how.type}
        if how.ephemeral:
            body["data"] = {"flags": 1 << 6}
        route = self.library.route(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            interaction_id=d["id"],
            interaction_token=d["token"],
        )
        await self.client.http.request(route, json=body)

    async def _follow_up(self, interaction: dict[str, Any], how: Deferral, params: Any) -> dict[str, Any]:
        payload = params.payload or {}
        response_type = int(payload.get("type", 4))
        data = dict(payload.get("data") or {})
        route = followup_route(interaction, how, response_type, data)
        message = None
        if route is not None:
            method, path, body = route
            body = {key: value for key, value in body.items() if key != "flags"}
            message = await self.client.http.request(self.library.route(method, path), json=body)
        answered: dict[str, Any] = {
            "id": str(interaction["id"]),
            "type": interaction.get("type"),
            "response_message_loading": how.type == 5 and message is None,
            "response_message_ephemeral": how.ephemeral,
        }
        resource: dict[str, Any] = {"type": response_type}
        if isinstance(message, dict):
            answered["response_message_id"] = message.get("id")
            resource["message"] = message
        return {"interaction": answered, "resource": resource}
