"""
A discord.py bot as discord.py's documentation writes one: prefix commands
in a cog, a guild-only command with a permission check, a slash command, a
presence change, a member query and ``wait_for``.  Only ``bot.run(token)``
is missing: ``dccrelay-bot tests.framework_bots.discordpy_bot:bot`` runs it.
"""

from __future__ import annotations

import asyncio

import discord
from discord.ext import commands

intents = discord.Intents.default()
intents.message_content = True

bot = commands.Bot(command_prefix="!", intents=intents, activity=discord.Game("cookout"))


READY_SEEN: list[bool] = []


@bot.event
async def on_ready() -> None:
    """Noted, for the !ready command."""
    READY_SEEN.append(True)


class Cookout(commands.Cog):
    """The cookout's commands."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @commands.command()
    async def bring(self, ctx: commands.Context[commands.Bot], *, item: str) -> None:
        """Say what you bring."""
        await ctx.send(f"Thanks for the {item}!")

    @commands.command()
    @commands.guild_only()
    @commands.has_permissions(send_messages=True)
    async def where(self, ctx: commands.Context[commands.Bot]) -> None:
        """Where the cookout is: needs the guild and its channels in the cache."""
        assert ctx.guild is not None
        await ctx.send(f"in {ctx.guild.name}, #{ctx.channel}")  # type: ignore[str-bytes-safe]

    @commands.command()
    @commands.guild_only()
    @commands.has_permissions(manage_messages=True)
    async def purge(self, ctx: commands.Context[commands.Bot]) -> None:
        """Only for people who may manage messages."""
        await ctx.send("purged")

    @commands.command()
    async def status(self, ctx: commands.Context[commands.Bot], *, text: str) -> None:
        """Change the bot's presence."""
        await self.bot.change_presence(activity=discord.Game(text), status=discord.Status.idle)
        await ctx.send("status set")

    @commands.command()
    @commands.guild_only()
    async def members(self, ctx: commands.Context[commands.Bot], prefix: str) -> None:
        """Ask Discord for members whose name starts with ``prefix``."""
        assert ctx.guild is not None
        found = await ctx.guild.query_members(prefix, limit=10)
        await ctx.send(f"found {len(found)}: {', '.join(sorted(m.name for m in found))}")

    @commands.command()
    async def ready(self, ctx: commands.Context[commands.Bot]) -> None:
        """Whether on_ready came, as on the gateway."""
        await ctx.send(f"ready: {self.bot.is_ready()}, on_ready seen: {bool(READY_SEEN)}")

    @commands.command()
    async def guess(self, ctx: commands.Context[commands.Bot]) -> None:
        """discord.py's guessing game: waits for the person's next message."""
        await ctx.send("Guess a number between 1 and 10.")

        def is_guess(m: discord.Message) -> bool:
            return m.author == ctx.author and m.content.isdigit()

        guess = await self.bot.wait_for("message", check=is_guess, timeout=20.0)
        await ctx.send(f"You guessed {guess.content}.")

    async def cog_command_error(
        self, ctx: commands.Context[commands.Bot], error: commands.CommandError
    ) -> None:
        """Tell the person why a command was refused."""
        await ctx.send(f"refused: {type(error).__name__}")


@bot.tree.command()
async def chips(interaction: discord.Interaction) -> None:
    """Answered at once."""
    await interaction.response.send_message("Chips are on me.")


@bot.tree.command()
async def slowchips(interaction: discord.Interaction) -> None:
    """Answered after the relay's --defer-after: the relay defers it first."""
    await asyncio.sleep(2.5)
    await interaction.response.send_message("Slow chips are on me.")


async def setup_hook() -> None:
    """Load the cog, as discord.py's extensions do."""
    await bot.add_cog(Cookout(bot))


bot.setup_hook = setup_hook  # type: ignore[method-assign]
