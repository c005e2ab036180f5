"""
``guildSnapshot``: a bot's guilds as its gateway last described them, for
a bot framework starting cold behind the relay.

A framework on the gateway learns its user from READY and its guilds from
one GUILD_CREATE per guild; behind the relay it sees only what its
criteria match.  With ``"guildSnapshot": true`` the relay keeps, per bot,
the user of its last READY and each guild's GUILD_CREATE without its
member list (only the bot's own member stays, known by its user id),
presences or voice states, kept current from guild, channel, role and
thread events, and the bot's own member updates.
``GET /relays/{alias}/snapshot`` serves it to the bot (its clientSecret),
which feeds it to its framework before the first dispatch
(``dccrelay-bot`` does), so channels, roles and permission checks work
without a REST call per guild.

Bounded: at most :data:`MAX_GUILDS` guilds and about :data:`MAX_BYTES`
bytes of guild data per bot; a guild past either is left out and counted
(``skipped``), so memory per bot stays bounded.  Kept in the store too
(:class:`~dccrelay.store.IGuildSnapshots`, as the parts :data:`USER_PART`
and :func:`guild_part`): what changed is saved every few seconds
(:mod:`dccrelay.relay.guild_snapshot_saver`) and when the relay stops, and
loaded when it starts, so a restarted relay, which RESUMEs and gets no
GUILD_CREATEs, still has it.  Guild events need the GUILDS intent (1 << 0).
"""

from __future__ import annotations

import binascii
from base64 import urlsafe_b64decode
from typing import Any, Mapping

import orjson

from dccrelay.store import GuildSnapshotUpdate

#: guilds kept per bot, at most
MAX_GUILDS = 2500

#: bytes of guild data kept per bot, about, at most
MAX_BYTES = 8 * 1024 * 1024

#: the store's part for the bot's READY user
USER_PART = "user"

_GUILD_PREFIX = "guild:"

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


def guild_part(guild_id: str) -> str:
    """The store's part for one guild."""
    return _GUILD_PREFIX + guild_id


class GuildSnapshot:
    """
    One bot's snapshot; fed every dispatch the bot's gateway sends, and
    its READY user.  It remembers what changed since it was last saved
    (:meth:`take_update`).

    :param restore: whether the store may hold this bot's snapshot from an
        earlier run, to :meth:`restore`; if not (a new token, the setting
        just turned on or off), the stored one is replaced at the next save.
    :ivar skipped: guilds left out for the bounds.
    """

    def __init__(
        self,
        user_id: str | None,
        max_guilds: int = MAX_GUILDS,
        max_bytes: int = MAX_BYTES,
        *,
        restore: bool = False,
    ) -> None:
        self._user_id = user_id
        self._max_guilds = max_guilds
        self._max_bytes = max_bytes
        self._guilds: dict[str, dict[str, Any]] = {}
        self._sizes: dict[str, int] = {}
        # the sum of _sizes, kept as it changes (summing per guild made a
        # burst of GUILD_CREATEs quadratic)
        self._bytes = 0
        self.user: dict[str, Any] | None = None
        self.skipped = 0
        # What the store lacks: guild id to its JSON (None: dropped), the
        # user, and whether the stored snapshot must go first.
        self._unsaved: dict[str, bytes | None] = {}
        self._user_unsaved = False
        self._replace = not restore
        # Guilds the gateway spoke of before the stored snapshot was
        # restored: theirs is newer.  None once restored (or never to be).
        self._seen: set[str] | None = set() if restore else None

    @property
    def changed(self) -> bool:
        """Whether there is something to save."""
        return bool(self._unsaved) or self._user_unsaved or self._replace

    @property
    def awaiting_restore(self) -> bool:
        """Whether the stored snapshot is still to be restored (:meth:`restore`)."""
        return self._seen is not None

    def observe(self, payload: dict[str, Any]) -> bool:
        """
        Update from one dispatch (anything else is ignored cheaply).

        :return: whether the snapshot changed.
        """
        t = payload.get("t")
        d = payload.get("d")
        if t not in _GUILD_EVENTS or not isinstance(d, dict):
            return False
        if t == "GUILD_CREATE":
            self._put(d)
        elif t == "GUILD_DELETE":
            if d.get("unavailable"):
                return False
            self._drop(str(d.get("id")))
        elif t == "GUILD_UPDATE":
            guild = self._guilds.get(str(d.get("id")))
            if guild is None:
                return False
            self._put({**guild, **d})
        else:
            return self._update_part(t, d)
        return True

    def ready(self, user: Any) -> bool:
        """
        The user of a READY: kept, and its id names the bot's own member.

        :return: whether the snapshot changed.
        """
        if not isinstance(user, dict) or user == self.user:
            return False
        self.user = user
        if isinstance(user.get("id"), str):
            self._user_id = user["id"]
        self._user_unsaved = True
        return True

    def _update_part(self, t: str, d: dict[str, Any]) -> bool:
        guild = self._guilds.get(str(d.get("guild_id")))
        if guild is None:
            return False
        guild = dict(guild)
        if t.startswith("CHANNEL_") or t.startswith("THREAD_"):
            key = "channels" if t.startswith("CHANNEL_") else "threads"
            guild[key] = _replaced(guild.get(key, []), d, t.endswith("_DELETE"))
        elif t.startswith("GUILD_ROLE_"):
            role = d.get("role") if t != "GUILD_ROLE_DELETE" else {"id": d.get("role_id")}
            if not isinstance(role, dict):
                return False
            guild["roles"] = _replaced(guild.get("roles", []), role, t.endswith("_DELETE"))
        elif t == "GUILD_MEMBER_UPDATE":
            user = d.get("user")
            if not (isinstance(user, dict) and user.get("id") == self._user_id):
                return False
            member = {k: v for k, v in d.items() if k != "guild_id"}
            guild["members"] = [member]
        self._put(guild)
        return True

    def _put(self, guild: dict[str, Any]) -> None:
        guild_id = str(guild.get("id"))
        if self._seen is not None:
            self._seen.add(guild_id)
        kept = {k: v for k, v in guild.items() if k not in _DROPPED}
        own = [
            m for m in guild.get("members", [])
            if isinstance(m, dict) and (m.get("user") or {}).get("id") == self._user_id
        ]
        if own:
            kept["members"] = own[:1]
        encoded = orjson.dumps(kept)
        if self._keep(guild_id, kept, len(encoded)):
            self._unsaved[guild_id] = encoded

    def _keep(self, guild_id: str, kept: dict[str, Any], size: int) -> bool:
        """
        Keep a guild, within the bounds.

        :return: whether it was kept; if not, it is counted in
            :attr:`skipped`, and dropped if it was kept before.
        """
        others = self._bytes - self._sizes.get(guild_id, 0)
        count = len(self._guilds) + (guild_id not in self._guilds)
        if count > self._max_guilds or others + size > self._max_bytes:
            self.skipped += 1
            self._drop(guild_id)
            return False
        self._guilds[guild_id] = kept
        self._bytes = others + size
        self._sizes[guild_id] = size
        return True

    def _drop(self, guild_id: str) -> None:
        if self._seen is not None:
            self._seen.add(guild_id)
        self._guilds.pop(guild_id, None)
        self._bytes -= self._sizes.pop(guild_id, 0)
        self._unsaved[guild_id] = None

    # -- the store's copy -------------------------------------------------------

    def restore(self, parts: Mapping[str, bytes]) -> None:
        """
        Fill in what the store kept (:meth:`take_update`'s parts) from an
        earlier run, under what the gateway said since, which is newer.  A
        stored snapshot of another bot's user is not used, and replaced at
        the next save.
        """
        seen, self._seen = self._seen, None
        if seen is None:
            return
        try:
            user = orjson.loads(parts[USER_PART]) if USER_PART in parts else None
        except orjson.JSONDecodeError:
            user = None
        stored_id = user.get("id") if isinstance(user, dict) else None
        if stored_id is None or (self._user_id is not None and stored_id != self._user_id):
            # Parts nobody can vouch for: not this bot's, or from no READY.
            self._replace = bool(parts)
            if self._replace:
                self._resave_all()
            return
        if self.user is None:
            self.user = user
            self._user_id = stored_id
        for name, document in parts.items():
            guild_id = name[len(_GUILD_PREFIX):]
            if not name.startswith(_GUILD_PREFIX) or guild_id in seen:
                continue
            try:
                guild = orjson.loads(document)
            except orjson.JSONDecodeError:
                guild = None
            # Stored as _put kept it: its size is the document's.
            if not (isinstance(guild, dict) and guild.get("id") == guild_id):
                self._unsaved[guild_id] = None
            elif not self._keep(guild_id, guild, len(document)):
                self._unsaved[guild_id] = None  # the store's copy goes too

    def take_update(self, alias: str) -> GuildSnapshotUpdate | None:
        """
        What changed since the last call, for the store; it is then taken
        as saved (:meth:`unsaved` if saving failed).  None if nothing did.
        """
        if not self.changed:
            return None
        parts: list[tuple[str, bytes]] = []
        dropped: list[str] = []
        if self._user_unsaved and self.user is not None:
            parts.append((USER_PART, orjson.dumps(self.user)))
        for guild_id, encoded in self._unsaved.items():
            if encoded is None:
                dropped.append(guild_part(guild_id))
            else:
                parts.append((guild_part(guild_id), encoded))
        update = GuildSnapshotUpdate(alias, tuple(parts), tuple(dropped), self._replace)
        self._unsaved = {}
        self._user_unsaved = self._replace = False
        return update

    def unsaved(self) -> None:
        """
        Saving the last update failed: the store may hold anything, so the
        next one replaces it with everything kept.
        """
        self._replace = True
        self._resave_all()

    def _resave_all(self) -> None:
        self._unsaved = {gid: orjson.dumps(guild) for gid, guild in self._guilds.items()}
        self._user_unsaved = self.user is not None

    # -- what the relay shows ---------------------------------------------------------

    def status(self) -> dict[str, int]:
        """For the bot's status: guilds kept, their bytes, guilds left out."""
        return {"guilds": len(self._guilds), "bytes": self._bytes, "skipped": self.skipped}

    def document(self) -> dict[str, Any]:
        """What ``GET /relays/{alias}/snapshot`` serves: READY's user, and the guilds."""
        return {"user": self.user, "guilds": list(self._guilds.values())}


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
