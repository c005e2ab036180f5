"""
The discord.py family: discord.py and the forks that kept its internals
(py-cord, nextcord, disnake), told apart by the module that defines the
bot's ``Client`` class, so that the adapter (:mod:`dccrelay_client.discordpy`)
uses the bot's own library and never imports another.

============  ===========  ==================================================
library       import name  how it is told
============  ===========  ==================================================
discord.py    ``discord``  ``discord.client.Client``, ``discord.__title__``
                           is ``"discord"``
py-cord       ``discord``  the same class path; ``__title__`` is ``"pycord"``
nextcord      ``nextcord`` ``nextcord.client.Client`` (its ``discord``
                           compatibility package re-exports that class)
disnake       ``disnake``  ``disnake.client.Client``
============  ===========  ==================================================
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

#: import name of each library whose ``<name>.client.Client`` is recognised
FAMILY = {"discord": "discord.py", "nextcord": "nextcord", "disnake": "disnake"}

#: libraries run end to end in this project's tests; the others are
#: recognised by name and share the internals the adapter uses
TESTED = frozenset({"discord.py"})


@dataclass(frozen=True)
class DiscordLibrary:
    """
    The library of one bot of the family, as the adapter needs it.

    :ivar name: ``discord.py``, ``py-cord``, ``nextcord`` or ``disnake``.
    :ivar module: its top-level package.
    """

    name: str
    module: ModuleType

    @property
    def http(self) -> Any:
        """Its ``http`` module (``Route``, the REST client)."""
        return importlib.import_module(self.module.__name__ + ".http")

    @property
    def webhook_async(self) -> Any:
        """Its ``webhook.async_`` module (interaction responses)."""
        return importlib.import_module(self.module.__name__ + ".webhook.async_")

    @property
    def http_exception(self) -> type[Exception]:
        """What its REST calls raise for an HTTP error."""
        exception: type[Exception] = self.module.HTTPException
        return exception

    def route(self, method: str, path: str, **parameters: Any) -> Any:
        """A REST route of the library, at the base :meth:`point_at` set."""
        return self.http.Route(method, path, **parameters)

    def point_at(self, api_base: str) -> None:
        """
        Send the library's REST and webhook calls to ``api_base`` (the
        simulator's, in tests): a class attribute of its ``Route``, named
        ``BASE`` except in py-cord (``API_BASE_URL``, a format string).
        """
        for route in {self.http.Route, self.webhook_async.Route}:
            if hasattr(route, "API_BASE_URL"):
                route.API_BASE_URL = api_base.replace("{", "{{").replace("}", "}}")
            else:
                route.BASE = api_base


def discord_library(bot: object) -> DiscordLibrary | None:
    """
    The library of the discord.py family whose ``Client`` (or a subclass:
    ``Bot``, ``AutoShardedClient``...) ``bot`` is, or None.  Only libraries
    already imported are looked at: a bot's own library always is.
    """
    for cls in type(bot).__mro__:
        package, _, rest = cls.__module__.partition(".")
        if cls.__name__ != "Client" or rest != "client" or package not in FAMILY:
            continue
        module = sys.modules.get(package)
        if module is None:
            continue
        name = FAMILY[package]
        if package == "discord" and getattr(module, "__title__", "") == "pycord":
            name = "py-cord"
        return DiscordLibrary(name, module)
    return None
