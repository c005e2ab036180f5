"""
What the runner needs of a bot framework: :class:`FrameworkBot`, one
implementation per framework (:mod:`dccrelay_client.discordpy`,
:mod:`dccrelay_client.hikari_bot`), chosen by the bot object's type.
"""

from __future__ import annotations

from typing import Any, Protocol

from dccrelay_client.discord_family import discord_library
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
    The adapter for ``bot``, found by its class: a discord.py ``Client``
    (or ``Bot``, or a fork's: py-cord, nextcord, disnake; see
    :mod:`dccrelay_client.discord_family`), or a hikari ``GatewayBot``.

    :raise TypeError: for anything else, saying what is accepted.
    """
    library = discord_library(bot)
    if library is not None:
        from dccrelay_client.discordpy import DiscordPyBot

        return DiscordPyBot(bot, library)  # type: ignore[arg-type]
    if _is_hikari(bot):
        from dccrelay_client.hikari_bot import HikariBot

        return HikariBot(bot)  # type: ignore[arg-type]
    raise TypeError(
        f"{type(bot).__module__}.{type(bot).__qualname__} is neither a discord.py Client/Bot "
        "(or one of py-cord, nextcord or disnake) nor a hikari GatewayBot"
    )


def _is_hikari(bot: object) -> bool:
    # By name, as for the discord.py family: only an imported hikari counts.
    return any(
        cls.__name__ == "GatewayBot" and cls.__module__ == "hikari.impl.gateway_bot"
        for cls in type(bot).__mro__
    )


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


class NoRelay(RuntimeError):
    """A gateway command with no relay to send it through."""


async def send_through_relay(relay: RelayAPI | None, op: int, d: dict[str, Any]) -> None:
    """
    Send the framework's gateway command (presence, member requests) to
    the relay's commands endpoint, which holds the bot's gateway session.

    :raise NoRelay: if the runner was given no relay to send it through.
    """
    if relay is None:
        raise NoRelay(
            "gateway commands (presence, member requests) go through the relay: "
            "give dccrelay-bot --relay and --alias"
        )
    await relay.send_command(op, d)
