"""
A bot's side of dccrelay on asyncio, without Twisted:

- :mod:`dccrelay_client.registration`: register with a relay, send gateway
  commands through it;
- :mod:`dccrelay_client.webhook`: verify a signed webhook delivery;
- :mod:`dccrelay_client.receiver`: webhook and websocket v2 deliveries
  served with aiohttp; :func:`asgi` the same for any ASGI server;
- :mod:`dccrelay_client.interactions`: where an answer to an interaction
  goes when the relay deferred it;
- ``dccrelay-bot`` (:mod:`dccrelay_client.runner`): a discord.py or hikari
  bot, unchanged, behind a relay.
"""

__version__ = "0.1.0"

from dccrelay_client.asgi_app import DeliveryASGI, asgi  # noqa: E402

__all__ = ["DeliveryASGI", "__version__", "asgi"]

