"""
The simulator's guild members, and its answers to the two gateway commands
a bot sends besides heartbeats and identifying: Update Presence (op 3) and
Request Guild Members (op 8).

Source: discord/discord-api-docs, ``developers/events/gateway-events.mdx``
and the change log's "Introducing Rate Limit When Requesting All Guild
Members".  As simulated:

- op 3 must carry ``since``, ``activities``, ``status`` (``online``,
  ``dnd``, ``idle``, ``invisible``, ``offline``) and ``afk``, else the
  connection closes with 4002; the presence is kept per shard;
- op 8 must name a ``guild_id`` and one of ``query`` or ``user_ids``; the
  guild must be on the connection's shard (``(guild_id >> 22) % shards``),
  else nothing is answered;
- the answer is ``GUILD_MEMBERS_CHUNK`` dispatches of at most
  ``chunk_size`` (1000) members, with ``chunk_index``, ``chunk_count``,
  the request's ``nonce`` (if valid: at most 32 bytes), ``not_found`` for
  unknown ``user_ids``, and ``presences`` if asked for and the session has
  GUILD_PRESENCES;
- ``user_ids`` and a ``query`` prefix return at most 100 members; the whole
  list (``query: ""``, ``limit: 0``) needs GUILD_MEMBERS (without it nothing
  is answered) and may be asked once per guild per 30 s: a second request
  gets a ``RATE_LIMITED`` dispatch (``opcode`` 8, ``retry_after``, ``meta``
  with the guild and nonce).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dccrelay.testing import codes, objects

if TYPE_CHECKING:
    from dccrelay.testing.connection import SimulatedConnection

#: members per GUILD_MEMBERS_CHUNK, at most
CHUNK_SIZE = 1000

#: seconds between two requests for a guild's whole member list
ALL_MEMBERS_INTERVAL = 30.0

_STATUSES = {"online", "dnd", "idle", "invisible", "offline"}


def presence_problem(d: dict[str, Any]) -> str | None:
    """
    Why an Update Presence payload is refused, or None.
    """
    since = d.get("since", ...)
    if since is ... or not (since is None or type(since) is int):
        return "presence update: since must be an integer or null"
    if not isinstance(d.get("activities"), list):
        return "presence update: activities must be an array"
    if d.get("status") not in _STATUSES:
        return "presence update: unknown status"
    if type(d.get("afk")) is not bool:
        return "presence update: afk must be a boolean"
    return None


def _snowflake(value: Any) -> bool:
    return isinstance(value, str) and value.isdigit() and len(value) <= 20


def request_problem(d: dict[str, Any]) -> str | None:
    """
    Why a Request Guild Members payload is refused, or None.
    """
    if not _snowflake(d.get("guild_id")):
        return "request guild members: guild_id must be a snowflake"
    if "query" not in d and "user_ids" not in d:
        return "request guild members: one of query or user_ids is required"
    if "query" in d and (not isinstance(d["query"], str) or type(d.get("limit")) is not int):
        return "request guild members: query needs a string and an integer limit"
    user_ids = d.get("user_ids")
    if user_ids is not None and not (
        _snowflake(user_ids)
        or (isinstance(user_ids, list) and all(_snowflake(u) for u in user_ids))
    ):
        return "request guild members: user_ids must be snowflakes"
    return None


def add_members(
    guilds: dict[str, list[dict[str, Any]]],
    guild_id: str,
    count: int,
    *,
    first_user_id: int = 700_000_000_000_000_000,
    now: float = 0.0,
) -> list[dict[str, Any]]:
    """
    Give a guild ``count`` more members, users ``member0``, ``member1``...

    :return: the new member objects.
    """
    members = guilds.setdefault(guild_id, [])
    start = len(members)
    added = []
    for n in range(start, start + count):
        member = objects.member(objects.timestamp(now))
        member["user"] = objects.user(str(first_user_id + n), f"member{n}")
        added.append(member)
    members.extend(added)
    return added


def answer_request(
    connection: SimulatedConnection,
    d: dict[str, Any],
    guilds: dict[str, list[dict[str, Any]]],
    last_all: dict[str, float],
    now: float,
    chunk_size: int = CHUNK_SIZE,
) -> list[tuple[str, dict[str, Any]]]:
    """
    The dispatches answering a (valid) Request Guild Members on
    ``connection``: ``(t, d)`` pairs, possibly none.

    :param last_all: when each guild's whole member list was last asked
        for, updated here.
    """
    session = connection.session
    assert session is not None
    guild_id = d["guild_id"]
    if (int(guild_id) >> 22) % session.shard_count != session.shard_id:
        return []
    nonce = d.get("nonce")
    if not isinstance(nonce, str) or len(nonce.encode("utf-8")) > 32:
        nonce = None
    members = guilds.get(guild_id, [])
    query = d.get("query")
    limit = d.get("limit", 0)
    not_found: list[str] | None = None
    if "user_ids" in d:
        wanted = d["user_ids"] if isinstance(d["user_ids"], list) else [d["user_ids"]]
        wanted = wanted[:100]
        by_id = {m["user"]["id"]: m for m in members}
        chosen = [by_id[u] for u in wanted if u in by_id]
        not_found = [u for u in wanted if u not in by_id]
    elif query == "":
        if not session.intents & codes.GUILD_MEMBERS:
            return []
        last = last_all.get(guild_id)
        if last is not None and now - last < ALL_MEMBERS_INTERVAL:
            meta: dict[str, Any] = {"guild_id": guild_id}
            if nonce is not None:
                meta["nonce"] = nonce
            retry_after = round(last + ALL_MEMBERS_INTERVAL - now, 3)
            return [("RATE_LIMITED", {"opcode": 8, "retry_after": retry_after, "meta": meta})]
        last_all[guild_id] = now
        chosen = members[: limit] if limit else list(members)
    else:
        prefix = str(query).lower()
        chosen = [m for m in members if m["user"]["username"].lower().startswith(prefix)]
        chosen = chosen[: min(limit or 100, 100)]
    presences = bool(d.get("presences")) and bool(session.intents & codes.GUILD_PRESENCES)
    count = max(1, math.ceil(len(chosen) / chunk_size))
    answers = []
    for index in range(count):
        part = chosen[index * chunk_size : (index + 1) * chunk_size]
        chunk: dict[str, Any] = {
            "guild_id": guild_id,
            "members": part,
            "chunk_index": index,
            "chunk_count": count,
        }
        if not_found is not None and index == 0:
            chunk["not_found"] = not_found
        if presences:
            chunk["presences"] = [
                {"user": {"id": m["user"]["id"]}, "status": "offline", "activities": []}
                for m in part
            ]
        if nonce is not None:
            chunk["nonce"] = nonce
        answers.append(("GUILD_MEMBERS_CHUNK", chunk))
    return answers
