"""
A hikari bot as hikari's documentation writes one: listeners for guild
messages and interactions, a presence update, a member request answered by
member chunks, ``wait_for``.  Only ``bot.run()`` is missing:
``dccrelay-bot tests.framework_bots.hikari_bot:bot`` runs it.
"""

from __future__ import annotations

import asyncio
import os

import hikari

bot = hikari.GatewayBot(
    token=os.environ["DISCORD_TOKEN"],
    intents=hikari.Intents.ALL_UNPRIVILEGED | hikari.Intents.MESSAGE_CONTENT,
)


@bot.listen()
async def on_message(event: hikari.GuildMessageCreateEvent) -> None:
    """Commands prefixed ``hk.``, from people only."""
    if not event.is_human or not event.content or not event.content.startswith("hk."):
        return
    command, _, rest = event.content[3:].partition(" ")
    if command == "ping":
        await event.message.respond("Pong!")
    elif command == "where":
        guild = event.get_guild()
        channel = event.get_channel()
        await event.message.respond(
            f"in {guild.name if guild else '?'}, #{channel.name if channel else '?'}"
        )
    elif command == "status":
        await bot.update_presence(activity=hikari.Activity(name=rest), status=hikari.Status.IDLE)
        await event.message.respond("status set")
    elif command == "members":
        await bot.request_guild_members(event.guild_id, query=rest, limit=10, nonce="hk-members")
        chunk = await bot.wait_for(
            hikari.MemberChunkEvent, timeout=20, predicate=lambda e: e.nonce == "hk-members"
        )
        names = sorted(member.username for member in chunk.members.values())
        await event.message.respond(f"found {len(names)}: {', '.join(names)}")
    elif command == "guess":
        await event.message.respond("Guess a number between 1 and 10.")
        guess = await bot.wait_for(
            hikari.GuildMessageCreateEvent,
            timeout=20,
            predicate=lambda e: e.author_id == event.author_id and (e.content or "").isdigit(),
        )
        await event.message.respond(f"You guessed {guess.content}.")


@bot.listen()
async def on_interaction(event: hikari.InteractionCreateEvent) -> None:
    """Slash commands ``/chips`` (at once) and ``/slowchips`` (after the relay deferred it)."""
    interaction = event.interaction
    if not isinstance(interaction, hikari.CommandInteraction):
        return
    if interaction.command_name == "slowchips":
        await asyncio.sleep(2.5)
        await interaction.create_initial_response(
            hikari.ResponseType.MESSAGE_CREATE, "Slow chips are on me."
        )
    elif interaction.command_name == "chips":
        await interaction.create_initial_response(
            hikari.ResponseType.MESSAGE_CREATE, "Chips are on me."
        )
