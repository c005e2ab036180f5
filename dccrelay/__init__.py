"""
dccrelay holds Discord gateway connections on behalf of bots that sleep,
filters each bot's dispatches with criteria the bot chose, and delivers the
matching ones to the bot's own URL.
"""

__version__ = "0.1.0"
