"""
``guildSnapshot``: a bot's guilds as its gateway last described them, for
a bot framework starting cold behind the relay.

A framework on the gateway learns its guilds from READY and one
GUILD_CREATE per guild; behind the relay it sees only what its criteria
match.  With ``"guildSnapshot": true`` the relay keeps, per bot, each
guild's GUILD_CREATE without its member list (only the bot's own member
stays, known by the user id its token begins with), presences or voice
states, kept current from guild, channel, role and thread events, and the
bot's own member updates.  (READY stays with the relay's shard, which keeps
the session; the bot's user comes from its own REST login.)
``GET /relays/{alias}/snapshot`` serves it to the bot (its clientSecret),
which feeds it to its framework before the first dispatch
(``dccrelay-bot`` does), so channels, roles and permission checks work
without a REST call per guild.

Bounded: at most :data:`MAX_GUILDS` guilds and about :data:`MAX_BYTES`
bytes of guild data per bot; a guild past either is left out and counted
(``skipped``), so memory per bot stays bounded.  Kept in memory only: after
a relay restart the snapshot fills again from the gateway's GUILD_CREATEs,
and the bot falls back to REST for guilds not in it yet.  Guild events
need the GUILDS intent (1 << 0).
"""

from __future__ import annotations

import binascii
from base64 import urlsafe_b64decode
from typing import Any

import orjson

#: guilds kept per bot, at most
MAX_GUILDS = 2500

#: bytes of guild data kept per bot, about, at most
MAX_BYTES = 8 * 1024 * 1024

#: what a framework's GUILD_CREATE needs that the snapshot does not keep
_DROPPED = ("members", "presences", "voice_states", "activity_instances")

_GUILD_EVENTS = frozenset(
    {
        "GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE",
        "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE",
        "GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE", "GUILD_ROLE_DELETE",
        "THREAD_CREATE", "THREAD_UPDATE", "THREAD_DELETE", "GUILD_MEMBER_UPDATE",
    }
)


class GuildSnapshot:
    """
    One bot's snapshot; fed every dispatch the bot's gateway sends.

    :ivar skipped: guilds left out for the bounds.
    """

    def __init__(
        self, user_id: str | None, max_guilds: int = MAX_GUILDS, max_bytes: int = MAX_BYTES
    ) -> None:
        self._user_id = user_id
        self._max_guilds = max_guilds
        self._max_bytes = max_bytes
        self._guilds: dict[str, dict[str, Any]] = {}
        self._sizes: dict[str, int] = {}
        self.skipped = 0

    def observe(self, payload: dict[str, Any]) -> None:
        """Update from one dispatch (anything else is ignored cheaply)."""
        t = payload.get("t")
        d = payload.get("d")
        if t not in _GUILD_EVENTS or not isinstance(d, dict):
            return
        if t == "GUILD_CREATE":
            self._put(d)
        elif t == "GUILD_DELETE":
            if not d.get("unavailable"):
                self._drop(str(d.get("id")))
        elif t == "GUILD_UPDATE":
            guild = self._guilds.get(str(d.get("id")))
            if guild is not None:
                self._put({**guild, **d})
        else:
            self._update_part(t, d)

    def _update_part(self, t: str, d: dict[str, Any]) -> None:
        guild = self._guilds.get(str(d.get("guild_id")))
        if guild is None:
            return
        guild = dict(guild)
        if t.startswith("CHANNEL_") or t.startswith("THREAD_"):
            key = "channels" if t.startswith("CHANNEL_") else "threads"
            guild[key] = _replaced(guild.get(key, []), d, t.endswith("_DELETE"))
        elif t.startswith("GUILD_ROLE_"):
            role = d.get("role") if t != "GUILD_ROLE_DELETE" else {"id": d.get("role_id")}
            if isinstance(role, dict):
                guild["roles"] = _replaced(guild.get("roles", []), role, t.endswith("_DELETE"))
        elif t == "GUILD_MEMBER_UPDATE":
            user = d.get("user")
            if not (isinstance(user, dict) and user.get("id") == self._user_id):
                return
            member = {k: v for k, v in d.items() if k != "guild_id"}
            guild["members"] = [member]
        self._put(guild)

    def _put(self, guild: dict[str, Any]) -> None:
        guild_id = str(guild.get("id"))
        kept = {k: v for k, v in guild.items() if k not in _DROPPED}
        own = [
            m for m in guild.get("members", [])
            if isinstance(m, dict) and (m.get("user") or {}).get("id") == self._user_id
        ]
        if own:
            kept["members"] = own[:1]
        size = len(orjson.dumps(kept))
        others = sum(self._sizes.values()) - self._sizes.get(guild_id, 0)
        count = len(self._guilds) + (guild_id not in self._guilds)
        if count > self._max_guilds or others + size > self._max_bytes:
            if guild_id not in self._guilds:
                self.skipped += 1
            else:
                self._drop(guild_id)
                self.skipped += 1
            return
        self._guilds[guild_id] = kept
        self._sizes[guild_id] = size

    def _drop(self, guild_id: str) -> None:
        self._guilds.pop(guild_id, None)
        self._sizes.pop(guild_id, None)

    def status(self) -> dict[str, int]:
        """For the bot's status: guilds kept, their bytes, guilds left out."""
        return {"guilds": len(self._guilds), "bytes": sum(self._sizes.values()),
                "skipped": self.skipped}

    def document(self) -> dict[str, Any]:
        """What ``GET /relays/{alias}/snapshot`` serves."""
        return {"guilds": list(self._guilds.values())}


def bot_user_id(token: str) -> str | None:
    """
    The bot's user id: a bot token begins with it, base64-encoded, before
    its first dot.  None for a token of another shape.
    """
    first = token.split(".", 1)[0]
    try:
        decoded = urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded.isdigit() else None


def _replaced(items: list[Any], item: dict[str, Any], delete: bool) -> list[Any]:
    kept = [i for i in items if not (isinstance(i, dict) and i.get("id") == item.get("id"))]
    if not delete:
        kept.append(item)
    return kept
