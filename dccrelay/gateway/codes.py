"""
Discord gateway opcodes and close codes, and what the relay does about each.

Source: discord/discord-api-docs, developers/topics/opcodes-and-status-codes.mdx
and developers/events/gateway.mdx.
"""

from __future__ import annotations

DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
RESUME = 6
RECONNECT = 7
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11

# Closing with 1000 or 1001 ends the Discord session (the bot shows offline);
# any other code keeps it resumable.  4000 is what the relay sends when it
# means to come back and RESUME (zombie connection, op 7, shutdown).
RESUMABLE_CLOSE = 4000
SESSION_ENDING_CLOSE = 1000

# The bot has outgrown its shard count: fetch the recommended one and start
# again with it, rather than giving up.
SHARDING_REQUIRED = 4011

# Close codes after which the session cannot be resumed: identify afresh.
NEW_SESSION_CODES = frozenset({4007, 4009})

# Close codes after which reconnecting cannot help: the bot is disabled with
# a reason that tells its author what to fix.
FATAL_CLOSE_REASONS: dict[int, str] = {
    4004: "Discord rejected the token (4004 authentication failed): "
    "re-register with a valid bot token from the Developer Portal",
    4010: "Discord rejected the shard (4010 invalid shard): "
    "re-register with a shard count of 'auto' or the right number",
    4012: "Discord rejected the gateway API version (4012 invalid API version): "
    "this relay needs an update",
    4013: "Discord rejected the intents (4013 invalid intents): "
    "re-register with a valid intents bitfield",
    4014: "Discord refused privileged intents (4014 disallowed intents): enable "
    "them for the bot in the Developer Portal, or re-register without them",
}
