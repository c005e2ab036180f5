"""
Discord objects as the simulator sends them: snowflakes, users, messages.

Shapes follow discord/discord-api-docs ``developers/resources/user.mdx`` and
``developers/resources/message.mdx``; only fields a relay might look at are
filled with anything but their empty value.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

#: Milliseconds since the Unix epoch at the first second of 2015.
DISCORD_EPOCH_MS = 1420070400000


class SnowflakeMaker:
    """Snowflakes whose timestamp part comes from the simulator's clock."""

    def __init__(self) -> None:
        self._increment = 0

    def make(self, now: float) -> str:
        """
        A new snowflake for the time ``now`` (seconds since the Unix epoch).
        """
        self._increment = (self._increment + 1) % 4096
        ms = max(0, int(now * 1000) - DISCORD_EPOCH_MS)
        return str(ms << 22 | 1 << 17 | self._increment)


def timestamp(now: float) -> str:
    """An ISO 8601 timestamp as Discord writes them."""
    return datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="microseconds")


def user(user_id: str, username: str, *, bot: bool = False) -> dict[str, Any]:
    """A user object; ``bot`` appears only for bots, as Discord does."""
    obj: dict[str, Any] = {
        "id": user_id,
        "username": username,
        "global_name": None if bot else username.capitalize(),
        "discriminator": "0",
        "avatar": None,
        "public_flags": 0,
    }
    if bot:
        obj["bot"] = True
    return obj


def member(joined_at: str) -> dict[str, Any]:
    """A partial guild member, as attached to MESSAGE_CREATE."""
    return {
        "roles": [],
        "nick": None,
        "avatar": None,
        "joined_at": joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }


def message(
    *,
    message_id: str,
    channel_id: str,
    guild_id: str | None,
    author: dict[str, Any],
    content: str,
    now: float,
    mentions: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """
    A message object, as the ``d`` of MESSAGE_CREATE (with ``guild_id`` and
    ``member`` in a guild) or as the body of a REST response.
    """
    sent_at = timestamp(now)
    obj: dict[str, Any] = {
        "type": 0,
        "tts": False,
        "timestamp": sent_at,
        "pinned": False,
        "mentions": list(mentions),
        "mention_roles": [],
        "mention_everyone": False,
        "id": message_id,
        "flags": 0,
        "embeds": [],
        "edited_timestamp": None,
        "content": content,
        "components": [],
        "channel_id": channel_id,
        "author": author,
        "attachments": [],
    }
    if guild_id is not None:
        obj["member"] = member(sent_at)
        obj["guild_id"] = guild_id
    return obj


def content_exempt(message: dict[str, Any], bot_user_id: str) -> bool:
    """
    Whether Discord sends ``message`` whole to a bot without the
    MESSAGE_CONTENT intent: a direct message, the bot's own message, or
    one that mentions the bot.
    """
    return (
        "guild_id" not in message
        or message["author"].get("id") == bot_user_id
        or any(user.get("id") == bot_user_id for user in message["mentions"])
    )


def blank_content(message: dict[str, Any]) -> None:
    """
    Empty what the MESSAGE_CONTENT intent guards, as Discord does.
    """
    message["content"] = ""
    message["embeds"] = []
    message["attachments"] = []
    message["components"] = []
