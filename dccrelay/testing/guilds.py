"""
Guilds as the simulator's REST API shows them to a bot framework logging
in without a gateway (discord.py, hikari behind dccrelay-bot): the
application, a guild with its roles, its channels, and members.

Shapes follow discord/discord-api-docs ``developers/resources/guild.mdx``,
``channel.mdx`` and ``application.mdx``.  Every guild the simulator is asked
about exists, with one text channel (``3333`` for guild ``2222``, the
simulator's default guild), an ``@everyone`` role whose permissions are
:data:`EVERYONE_PERMISSIONS`, and an owner who is nobody the tests play.
"""

from __future__ import annotations

from typing import Any

from dccrelay.testing import objects

#: VIEW_CHANNEL, SEND_MESSAGES, READ_MESSAGE_HISTORY, USE_APPLICATION_COMMANDS:
#: what a person may do in the simulator's guilds (not MANAGE_MESSAGES, not
#: ADMINISTRATOR)
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31)

OWNER_ID = "9999"


def channel_id_for(guild_id: str) -> str:
    """The guild's one text channel: 3333 in 2222, else the guild id + 1."""
    return "3333" if guild_id == "2222" else str(int(guild_id) + 1)


def application(user: dict[str, Any]) -> dict[str, Any]:
    """``GET /oauth2/applications/@me`` for the bot whose user is ``user``."""
    return {
        "id": user["id"],
        "name": user["username"],
        "icon": None,
        "description": "",
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": 0,
        "owner": objects.user(OWNER_ID, "owner"),
        "team": None,
        "summary": "",
        "bot": user,
    }


def role(role_id: str, name: str, permissions: int) -> dict[str, Any]:
    """A role object."""
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": 0,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def guild(guild_id: str) -> dict[str, Any]:
    """``GET /guilds/{id}``: the guild with its roles."""
    return {
        "id": guild_id,
        "name": f"guild {guild_id}",
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": OWNER_ID,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [role(guild_id, "@everyone", EVERYONE_PERMISSIONS)],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
    }


def channels(guild_id: str) -> list[dict[str, Any]]:
    """``GET /guilds/{id}/channels``."""
    return [
        {
            "id": channel_id_for(guild_id),
            "type": 0,
            "guild_id": guild_id,
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }
    ]


def member(user: dict[str, Any], now: float) -> dict[str, Any]:
    """``GET /guilds/{id}/members/{user_id}``: a member without roles."""
    found = objects.member(objects.timestamp(now))
    found["user"] = user
    return found
