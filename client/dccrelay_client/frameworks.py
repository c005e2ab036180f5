"""
What the runner needs of a bot framework: :class:`FrameworkBot`, one
implementation per framework (:mod:`dccrelay_client.discordpy`,
:mod:`dccrelay_client.hikari_bot`), chosen by the bot object's type.
"""

from __future__ import annotations

from typing import Any, Protocol

from dccrelay_client.registration import RelayAPI


class FrameworkBot(Protocol):
    """
    A framework's bot, run without a gateway connection.
    """

    #: the gateway intents the bot was built with
    intents: int

    async def start(self, token: str, api_base: str, relay: RelayAPI | None) -> None:
        """
        Log in over REST at ``api_base``; gateway commands (presence,
        member requests) go through ``relay`` (None: they fail, saying
        why).
        """

    def adopt(self, guilds: list[dict[str, Any]]) -> None:
        """
        Put guilds (GUILD_CREATE data from the relay's snapshot) in the
        framework's cache, as the gateway's GUILD_CREATEs would.
        """

    async def announce(self) -> None:
        """
        Send the presence the bot was built with (what IDENTIFY would
        carry), once it is registered.
        """

    async def prepare(self, payload: dict[str, Any]) -> None:
        """
        Whatever must happen before ``payload`` is fed (fetch a guild the
        cache has not seen yet, say).
        """

    def feed(self, payload: dict[str, Any]) -> None:
        """
        Give one gateway dispatch to the framework, as if its gateway had
        received it.  Synchronous: the handlers it starts are tasks.
        """

    def waiters(self) -> frozenset[int]:
        """
        Ids of whatever in the framework waits for a future event now
        (``wait_for``, member chunks).
        """

    async def close(self) -> None:
        """Log out and close the framework's HTTP sessions."""


def adapt(bot: object) -> FrameworkBot:
    """
    The adapter for ``bot``: a discord.py ``Client`` (or ``Bot``, or a
    fork's), or a hikari ``GatewayBot``.

    :raise TypeError: for anything else, saying what is accepted.
    """
    for module in ("discord", "hikari"):
        adapter = _try(module, bot)
        if adapter is not None:
            return adapter
    raise TypeError(
        f"{type(bot).__module__}.{type(bot).__qualname__} is neither a discord.py Client/Bot "
        "nor a hikari GatewayBot"
    )


def _try(module: str, bot: object) -> FrameworkBot | None:
    try:
        if module == "discord":
            import discord

            if isinstance(bot, discord.Client):
                from dccrelay_client.discordpy import DiscordPyBot

                return DiscordPyBot(bot)
        else:
            import hikari

            if isinstance(bot, hikari.GatewayBot):
                from dccrelay_client.hikari_bot import HikariBot

                return HikariBot(bot)
    except ImportError:
        return None
    return None


def guild_to_fetch(payload: dict[str, Any]) -> int | None:
    """
    The guild a dispatch names, which an adapter must have in its
    framework's cache before the dispatch is fed to it; None for a dispatch
    of no guild, and for GUILD_CREATE and GUILD_DELETE, which bring or end
    the guild themselves.
    """
    if payload.get("t") in ("GUILD_CREATE", "GUILD_DELETE"):
        return None
    d = payload.get("d")
    guild_id = d.get("guild_id") if isinstance(d, dict) else None
    return None if guild_id is None else int(guild_id)
