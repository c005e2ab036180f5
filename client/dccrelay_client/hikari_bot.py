"""
A hikari ``GatewayBot`` behind the relay.

- REST: hikari's REST client started alone (no gateway shards), at the API
  base;
- dispatches enter where the gateway's would:
  ``event_manager.consume_raw_event(t, shard, d)``, with a stand-in shard
  (:class:`RelayShard`) whose presence updates and member requests go to the
  relay's commands endpoint; a READY for the bot's user comes first;
- a guild the cache has not seen is fetched over REST once and fed as its
  GUILD_CREATE before the dispatch that names it;
- interactions are claimed from the relay, so that only one of the bot
  and the relay answers the callback; a response to one the relay deferred
  becomes the follow-up call that fits (:mod:`dccrelay_client.answers`).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import aiohttp
import hikari
from hikari import undefined

from dccrelay_client.answers import InteractionAnswers
from dccrelay_client.frameworks import guild_to_fetch, send_through_relay
from dccrelay_client.interactions import (
    CHANNEL_MESSAGE_WITH_SOURCE,
    DEFERRED_UPDATE_MESSAGE,
    UPDATE_MESSAGE,
    Deferral,
    deferral,
)
from dccrelay_client.registration import RelayAPI

log = logging.getLogger(__name__)

_PRESENCE = 3
_REQUEST_MEMBERS = 8

# what a follow-up or an edit takes of an interaction response's arguments
_MESSAGE_ARGUMENTS = (
    "content", "attachment", "attachments", "component", "components", "embed", "embeds",
    "mentions_everyone", "user_mentions", "role_mentions",
)


def _activity(activity: hikari.Activity | None) -> dict[str, Any] | None:
    if activity is None:
        return None
    return {"name": activity.name, "type": int(activity.type), "state": activity.state,
            "url": activity.url}


async def _dispatched(bot: hikari.GatewayBot, event: hikari.Event) -> None:
    # the lifecycle events a gateway start dispatches, for bots listening to them
    listeners: Any = bot.dispatch(event)
    if listeners is not None:
        await listeners


class RelayShard:
    """
    Stands where hikari keeps a gateway shard: the one shard the bot sees;
    its commands go through the relay.
    """

    id = 0
    shard_count = 1
    is_alive = True
    is_connected = True
    heartbeat_latency = 0.0

    def __init__(self, relay: RelayAPI | None, intents: hikari.Intents, user_id: int) -> None:
        self._relay = relay
        self.intents = intents
        self._user_id = user_id
        self._presence: dict[str, Any] = {
            "since": None, "afk": False, "status": "online", "activities": [],
        }

    def get_user_id(self) -> hikari.Snowflake:
        """The bot's user id."""
        return hikari.Snowflake(self._user_id)

    async def _send(self, op: int, d: dict[str, Any]) -> None:
        await send_through_relay(self._relay, op, d)

    async def update_presence(
        self,
        *,
        idle_since: undefined.UndefinedNoneOr[datetime.datetime] = undefined.UNDEFINED,
        afk: undefined.UndefinedOr[bool] = undefined.UNDEFINED,
        activity: undefined.UndefinedNoneOr[hikari.Activity] = undefined.UNDEFINED,
        status: undefined.UndefinedOr[hikari.Status] = undefined.UNDEFINED,
    ) -> None:
        """Update Presence (op 3): hikari's partial update over the last one."""
        presence = dict(self._presence)
        if idle_since is not undefined.UNDEFINED:
            presence["since"] = int(idle_since.timestamp() * 1000) if idle_since else None
        if afk is not undefined.UNDEFINED:
            presence["afk"] = afk
        if status is not undefined.UNDEFINED:
            presence["status"] = str(status)
        if activity is not undefined.UNDEFINED:
            shown = _activity(activity)
            presence["activities"] = [] if shown is None else [shown]
        await self._send(_PRESENCE, presence)
        self._presence = presence

    async def request_guild_members(
        self,
        guild: hikari.SnowflakeishOr[hikari.PartialGuild],
        *,
        include_presences: undefined.UndefinedOr[bool] = undefined.UNDEFINED,
        query: str = "",
        limit: int = 0,
        users: undefined.UndefinedOr[hikari.SnowflakeishSequence[hikari.User]] = undefined.UNDEFINED,
        nonce: undefined.UndefinedOr[str] = undefined.UNDEFINED,
    ) -> None:
        """Request Guild Members (op 8)."""
        d: dict[str, Any] = {"guild_id": str(int(guild))}
        if users is not undefined.UNDEFINED:
            d["user_ids"] = [str(int(user)) for user in users]
        else:
            d["query"] = query
            d["limit"] = limit
        if include_presences is not undefined.UNDEFINED:
            d["presences"] = include_presences
        if nonce is not undefined.UNDEFINED:
            d["nonce"] = nonce
        await self._send(_REQUEST_MEMBERS, d)


class HikariBot:
    """:class:`~dccrelay_client.frameworks.FrameworkBot` for hikari."""

    def __init__(self, bot: hikari.GatewayBot) -> None:
        self.bot = bot
        self.intents = int(bot.intents)
        self._api_base = ""
        self._token = ""
        self._session: aiohttp.ClientSession | None = None
        self._shard: RelayShard | None = None
        self._answers = InteractionAnswers(None)
        self._base_respond: Any = None
        self._fetched: set[int] = set()

    async def _get(self, path: str) -> Any:
        assert self._session is not None
        async with self._session.get(
            self._api_base + path, headers={"Authorization": "Bot " + self._token}
        ) as response:
            response.raise_for_status()
            return await response.json()

    async def start(self, token: str, api_base: str, relay: RelayAPI | None) -> None:
        """Start hikari's REST client and say READY for the bot's user."""
        self._api_base = api_base.rstrip("/")
        self._token = token
        self._session = aiohttp.ClientSession()
        bot = self.bot
        bot._rest._rest_url = self._api_base
        bot._closed_event = asyncio.Event()
        bot._rest.start()
        me = await self._get("/users/@me")
        application = await self._get("/oauth2/applications/@me")
        self._shard = RelayShard(relay, bot.intents, int(me["id"]))
        bot._shards[0] = self._shard  # type: ignore[assignment]
        self._answers = InteractionAnswers(relay)
        self._route_interaction_responses()
        await _dispatched(bot, hikari.StartingEvent(app=bot))
        ready = {
            "v": 10, "user": me, "guilds": [], "session_id": "dccrelay",
            "resume_gateway_url": "", "shard": [0, 1],
            "application": {"id": application["id"], "flags": application.get("flags", 0)},
        }
        bot.event_manager.consume_raw_event("READY", self._shard, ready)  # type: ignore[arg-type]
        await _dispatched(bot, hikari.StartedEvent(app=bot))

    def adopt(self, guilds: list[dict[str, Any]]) -> None:
        """Guilds from the relay's snapshot, fed as their GUILD_CREATEs."""
        assert self._shard is not None
        for guild in guilds:
            self._fetched.add(int(guild["id"]))
            complete = {
                "threads": [], "presences": [], "voice_states": [], "members": [],
                "stage_instances": [], "guild_scheduled_events": [], "large": False,
                "member_count": len(guild.get("members", [])), **guild, "unavailable": False,
            }
            try:
                self.bot.event_manager.consume_raw_event("GUILD_CREATE", self._shard, complete)  # type: ignore[arg-type]
            except (KeyError, TypeError, ValueError) as e:
                log.warning("guild %s from the snapshot not usable (%r): fetched later", guild["id"], e)
                self._fetched.discard(int(guild["id"]))

    async def announce(self) -> None:
        """hikari sets no presence before ``start()``: nothing to announce."""

    async def prepare(self, payload: dict[str, Any]) -> None:
        """
        Fetch the guild a dispatch names, the first time one is seen; claim
        an interaction (:mod:`dccrelay_client.answers`).
        """
        d = payload.get("d")
        if payload.get("t") == "INTERACTION_CREATE" and isinstance(d, dict):
            await self._answers.arrived(d, deferral(payload), self._defer_now)
        gid = guild_to_fetch(payload)
        if gid is None or gid in self._fetched or self.bot.cache.get_guild(gid) is not None:
            return
        self._fetched.add(gid)
        assert self._shard is not None
        try:
            guild = await self._get(f"/guilds/{gid}")
            guild["channels"] = await self._get(f"/guilds/{gid}/channels")
            me = await self._get(f"/guilds/{gid}/members/{int(self._shard.get_user_id())}")
        except aiohttp.ClientError as e:
            log.warning("could not fetch guild %s for the cache: %s", gid, e)
            return
        guild.update(
            members=[me], threads=[], presences=[], voice_states=[], unavailable=False,
            large=False, member_count=1, joined_at=me.get("joined_at"),
        )
        guild.setdefault("stage_instances", [])
        guild.setdefault("guild_scheduled_events", [])
        self.bot.event_manager.consume_raw_event("GUILD_CREATE", self._shard, guild)  # type: ignore[arg-type]

    def feed(self, payload: dict[str, Any]) -> None:
        """Into hikari's raw event consumer for the dispatch's event."""
        t = payload.get("t")
        d = payload.get("d")
        if not isinstance(t, str) or not isinstance(d, dict) or self._shard is None:
            return
        self.bot.event_manager.consume_raw_event(t, self._shard, d)  # type: ignore[arg-type]

    def waiters(self) -> frozenset[int]:
        """Futures of ``wait_for`` and streams waiting for events."""
        waiting = self.bot.event_manager._waiters  # type: ignore[attr-defined]
        return frozenset(id(waiter) for waiters in waiting.values() for waiter in waiters)

    async def close(self) -> None:
        """Close hikari's REST client and our session."""
        await self.bot.rest.close()
        if self._session is not None:
            await self._session.close()

    def _route_interaction_responses(self) -> None:
        rest = self.bot.rest
        adapter = self
        base: Any = type(rest)

        # hikari's REST client has slots, so its method is overridden in a
        # subclass of the same layout rather than on the instance
        class RoutedREST(base):
            __slots__ = ()

            async def create_interaction_response(
                self, interaction: Any, token: str, response_type: Any, *args: Any, **kwargs: Any
            ) -> Any:
                original = super().create_interaction_response
                return await adapter._respond(
                    original, interaction, token, response_type, *args, **kwargs
                )

        rest.__class__ = RoutedREST
        self._base_respond = base.create_interaction_response

    async def _respond(
        self, original: Any, interaction: Any, token: str, response_type: Any,
        *args: Any, **kwargs: Any,
    ) -> Any:
        return await self._answers.respond(
            int(interaction),
            lambda: original(interaction, token, response_type, *args, **kwargs),
            lambda d, how: self._follow_up(d, how, int(response_type), args, kwargs),
            lambda e: e.code if isinstance(e, hikari.HTTPResponseError) else None,
        )

    async def _defer_now(self, d: dict[str, Any], how: Deferral) -> None:
        flags = hikari.MessageFlag.EPHEMERAL if how.ephemeral else hikari.MessageFlag.NONE
        await self._base_respond(
            self.bot.rest, hikari.Snowflake(int(d["id"])), d["token"], how.type, flags=flags
        )

    async def _follow_up(
        self, d: dict[str, Any], how: Deferral, response_type: int,
        args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> None:
        if args:
            kwargs = {"content": args[0], **kwargs}
        message = {key: value for key, value in kwargs.items() if key in _MESSAGE_ARGUMENTS}
        rest = self.bot.rest
        application = hikari.Snowflake(int(d["application_id"]))
        if response_type in (5, DEFERRED_UPDATE_MESSAGE):
            return  # the deferral is that answer already
        if response_type == CHANNEL_MESSAGE_WITH_SOURCE and how.type == DEFERRED_UPDATE_MESSAGE:
            await rest.execute_webhook(application, d["token"], **message)
        elif response_type in (CHANNEL_MESSAGE_WITH_SOURCE, UPDATE_MESSAGE):
            await rest.edit_interaction_response(application, d["token"], **message)
        else:
            raise ValueError(
                f"an interaction response of type {response_type} cannot follow the relay's "
                "deferral"
            )
