"""
The discord.py family (:mod:`dccrelay_client.discord_family`): discord.py
and its forks py-cord, nextcord and disnake are told apart by the module
that defines the bot's ``Client``.  The forks are not installed here (py-cord
cannot share a virtualenv with discord.py: both are ``discord``), so they
are played by small module trees under their real module and class names.
"""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from dccrelay_client.discord_family import discord_library
from dccrelay_client.discordpy import DiscordPyBot
from dccrelay_client.frameworks import adapt

DISCORD_BASE = "https://discord.com/api/v10"


def library_tree(package: str, title: str, pycord_routes: bool = False) -> dict[str, ModuleType]:
    """
    Modules named as a library of the family names them: ``<package>``
    (with ``__title__``, ``Client``, ``HTTPException``),
    ``<package>.client``, ``<package>.http`` (``Route``) and
    ``<package>.webhook.async_`` (the same ``Route``, as the libraries
    import it); py-cord's ``Route`` keeps its base in ``API_BASE_URL``.
    """
    top = ModuleType(package)
    top.__title__ = title  # type: ignore[attr-defined]
    client = ModuleType(f"{package}.client")

    class Client:
        def __init__(self) -> None:
            self.intents = SimpleNamespace(value=513)

    Client.__module__ = client.__name__

    class HTTPException(Exception):
        pass

    class Route:
        BASE = DISCORD_BASE

        def __init__(self, method: str, path: str, **parameters: Any) -> None:
            self.url = self.base + path.format_map(parameters)

        @property
        def base(self) -> str:
            return self.BASE

    class PycordRoute(Route):
        API_BASE_URL = "https://discord.com/api/v{API_VERSION}"

        @property
        def base(self) -> str:
            return self.API_BASE_URL.format(API_VERSION=10)

    client.Client = Client  # type: ignore[attr-defined]
    top.Client = Client  # type: ignore[attr-defined]
    top.HTTPException = HTTPException  # type: ignore[attr-defined]
    http = ModuleType(f"{package}.http")
    http.Route = PycordRoute if pycord_routes else Route  # type: ignore[attr-defined]
    webhook = ModuleType(f"{package}.webhook")
    webhook_async = ModuleType(f"{package}.webhook.async_")
    webhook_async.Route = http.Route  # type: ignore[attr-defined]
    return {m.__name__: m for m in (top, client, http, webhook, webhook_async)}


class FamilyTests(SynchronousTestCase):
    """Which library a bot object belongs to, and its REST base."""

    def install(self, modules: dict[str, ModuleType]) -> dict[str, ModuleType]:
        """
        Put ``modules`` in ``sys.modules`` for this test, in place of any of
        the same package (the real discord.py, for py-cord's tree).
        """
        packages = {name.partition(".")[0] for name in modules}
        saved = {
            name: module for name, module in sys.modules.items()
            if name.partition(".")[0] in packages
        }

        def restore() -> None:
            for name in list(sys.modules):
                if name.partition(".")[0] in packages:
                    del sys.modules[name]
            sys.modules.update(saved)

        self.addCleanup(restore)
        for name in saved:
            del sys.modules[name]
        sys.modules.update(modules)
        return modules

    def test_forks_by_module(self) -> None:
        """
        A ``Client`` of nextcord or disnake, or of a subclass defined
        elsewhere (``commands.Bot``), gets the discord.py adapter with its
        own library.
        """
        for package in ("nextcord", "disnake"):
            tree = self.install(library_tree(package, package))
            client_class = tree[f"{package}.client"].Client  # type: ignore[attr-defined]
            bot_class = type("Bot", (client_class,), {"__module__": f"{package}.ext.commands.bot"})
            for bot in (client_class(), bot_class()):
                adapter = adapt(bot)
                self.assertIsInstance(adapter, DiscordPyBot)
                assert isinstance(adapter, DiscordPyBot)
                self.assertEqual(adapter.library.name, package)
                self.assertIs(adapter.library.module, tree[package])
                self.assertEqual(adapter.intents, 513)

    def test_pycord(self) -> None:
        """
        py-cord is imported as ``discord`` too: its ``__title__`` tells it
        from discord.py, and its REST base is set where its ``Route`` keeps
        it.
        """
        tree = self.install(library_tree("discord", "pycord", pycord_routes=True))
        library = discord_library(tree["discord.client"].Client())  # type: ignore[attr-defined]
        assert library is not None
        self.assertEqual(library.name, "py-cord")
        library.point_at("http://127.0.0.1:8000/api/v10")
        route = library.route("GET", "/guilds/{guild_id}", guild_id=2222)
        self.assertEqual(route.url, "http://127.0.0.1:8000/api/v10/guilds/2222")

    def test_nextcord_compatibility_package(self) -> None:
        """
        nextcord's ``discord`` package re-exports nextcord's classes: a bot
        made through it is nextcord's.
        """
        tree = self.install(library_tree("nextcord", "nextcord"))
        shim = ModuleType("discord")
        shim.Client = tree["nextcord"].Client  # type: ignore[attr-defined]
        shim.__title__ = "nextcord"  # type: ignore[attr-defined]
        self.install({"discord": shim})
        library = discord_library(shim.Client())  # type: ignore[attr-defined]
        assert library is not None
        self.assertEqual(library.name, "nextcord")

    def test_rest_base(self) -> None:
        """
        A fork's REST and webhook routes go to the API base given, as
        discord.py's do.
        """
        tree = self.install(library_tree("disnake", "disnake"))
        library = discord_library(tree["disnake.client"].Client())  # type: ignore[attr-defined]
        assert library is not None
        library.point_at("https://sim.example/api/v10")
        self.assertEqual(library.route("GET", "/users/@me").url, "https://sim.example/api/v10/users/@me")
        self.assertEqual(library.webhook_async.Route.BASE, "https://sim.example/api/v10")
        self.assertIs(library.http_exception, tree["disnake"].HTTPException)  # type: ignore[attr-defined]

    def test_discordpy(self) -> None:
        """The real discord.py is told as such."""
        import discord

        library = discord_library(discord.Client(intents=discord.Intents.default()))
        assert library is not None
        self.assertEqual((library.name, library.module), ("discord.py", discord))

    def test_lookalikes(self) -> None:
        """
        A class named ``Client`` in another package's ``client`` module,
        or a family's class of another name, is no bot of the family.
        """
        other = type("Client", (), {"__module__": "mylib.client"})
        helper = type("Helper", (), {"__module__": "discord.client"})
        for bot in (other(), helper()):
            self.assertIsNone(discord_library(bot))
            with self.assertRaises(TypeError) as caught:
                adapt(bot)
            self.assertIn("nextcord", str(caught.exception))
