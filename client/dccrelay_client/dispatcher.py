"""
Feeding delivered dispatches into a framework, in order, and saying when
each is handled (see :mod:`dccrelay_client.settle`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dccrelay_client.frameworks import FrameworkBot
from dccrelay_client.registration import RelayAPI
from dccrelay_client.settle import Handling, feeding, settled

log = logging.getLogger(__name__)

#: seconds a delivery waits for its handlers at most: below the relay's
#: 15 s webhook timeout, so a slow handler never makes the relay retry
CAP = 10.0


async def warm(bot: FrameworkBot, relay: RelayAPI | None) -> int:
    """
    Give the framework the guilds the relay keeps for the bot
    (``guildSnapshot``), if it keeps any.

    :return: how many.
    """
    if relay is None:
        return 0
    try:
        snapshot = await relay.guild_snapshot()
    except Exception as e:
        log.warning("no guild snapshot from the relay (%s): guilds come from REST", e)
        return 0
    guilds = snapshot.get("guilds") if isinstance(snapshot, dict) else None
    if not isinstance(guilds, list):
        return 0
    bot.adopt([guild for guild in guilds if isinstance(guild, dict) and "id" in guild])
    return len(guilds)


class Dispatcher:
    """
    One bot's deliveries.  Ids are the relay's outbox ids; one already fed
    (a redelivery) is not fed again.
    """

    def __init__(self, bot: FrameworkBot, cap: float = CAP) -> None:
        self._bot = bot
        self._cap = cap
        self._order = asyncio.Lock()
        self._last_id = -1
        # set once the framework is ready for dispatches (logged in, warm)
        self._ready = asyncio.Event()

    def ready(self) -> None:
        """Dispatches may be fed from now on."""
        self._ready.set()

    async def begin(self, entry_id: int | None, payload: dict[str, Any]) -> Handling | None:
        """
        Feed one dispatch, after every one begun before it.

        :return: what it started, or None for a redelivered id.
        """
        await self._ready.wait()
        async with self._order:
            if entry_id is not None:
                if entry_id <= self._last_id:
                    return None
                self._last_id = entry_id
            await self._bot.prepare(payload)
            handling = Handling(self._bot.waiters())
            feeding(handling, lambda: self._bot.feed(payload))
            return handling

    async def finish(self, handling: Handling | None) -> None:
        """Return once what ``handling`` started is settled."""
        if handling is not None:
            await settled(handling, self._bot.waiters, self._cap)
