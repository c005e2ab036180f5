"""
Every setting of the delivery channels, with its default, in one place.

``tap.py`` builds one :class:`DeliveryConfig` from the operator's options
and gives it whole to :class:`~dccrelay.delivery.factory.DeliveryFactory`;
the channels read their figures from it and from nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from twisted.application.internet import backoffPolicy

from dccrelay import __version__
from dccrelay.net.answer_caps import AnswerCaps


@dataclass(frozen=True)
class DeliveryConfig:
    """
    How the relay reaches bots.  Every field has the default the relay runs
    with when the operator says nothing.
    """

    #: seconds with nothing to send before a bot's connection is closed (so
    #: its host can sleep); for webhooks, how long after a 2xx the bot
    #: counts as awake (``--idle-timeout``)
    idle_timeout: float = 60.0

    #: dispatches kept per bot while it is unreachable; past it the oldest
    #: is dropped and counted (``--queue-limit``)
    queue_limit: int = 1000

    #: seconds a dispatch waits at most in the durable outbox (v2,
    #: webhooks), or None for no age limit (``--queue-max-age``)
    queue_max_age: float | None = 86400.0

    #: the ``User-Agent`` of every connection and request to a bot
    user_agent: str = f"dccrelay/{__version__}"

    #: seconds allowed for TCP, TLS and the websocket handshake together
    connect_timeout: float = 30.0

    #: seconds the bot gets to finish a websocket close handshake before
    #: the TCP connection is cut (Autobahn's own timers are switched off)
    close_timeout: float = 5.0

    #: seconds to wait before retrying an unreachable websocket bot, given
    #: the number of consecutive failures (from 1)
    retry_policy: Callable[[int], float] = backoffPolicy(initialDelay=1.0, maxDelay=60.0)

    #: bytes one websocket message (or frame) from a bot may hold: a bot
    #: sends only v2 acknowledgements and gateway commands (at most 4 KiB),
    #: and a larger one ends the connection before it is buffered
    #: (``--max-bot-message``)
    max_bot_message: int = 64 * 1024

    #: what the relay reads at most of an answer from the bot's URL: the
    #: head of a webhook answer or of the websocket handshake's, a webhook
    #: answer's body (``--max-answer-head``, ``--max-answer-headers``,
    #: ``--max-answer-body``)
    answer_caps: AnswerCaps = AnswerCaps()

    #: v2: seconds between pings on an open connection
    ping_interval: float = 20.0

    #: v2: seconds a pong may take before the connection counts as dead
    ping_timeout: float = 10.0

    #: durable outbox: entries of one bot kept in memory; also the most a v2
    #: channel has in flight, unacknowledged, at once
    outbox_window: int = 256

    #: durable outbox: seconds between tries to page entries in after the
    #: store failed to
    outbox_load_retry: float = 5.0

    #: webhooks: seconds a bot has to answer a POST (Svix's, and within the
    #: Standard Webhooks recommendation of 15 to 30)
    webhook_timeout: float = 15.0

    #: webhooks: most dispatches in one batch
    batch_limit: int = 100

    #: webhooks: a batch stops growing past this many bytes of payloads (one
    #: larger dispatch still goes, alone)
    batch_bytes: int = 512 * 1024

    #: webhooks: seconds before each retry of a failed batch, by attempt,
    #: each with ±20 % jitter: shaped like Svix's schedule (quick retries
    #: first, then minutes), compressed and capped at the last value,
    #: because a chat dispatch loses its worth in minutes, not days;
    #: ``queue_max_age`` bounds the total wait
    webhook_retry_schedule: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 300.0, 600.0)

    #: webhooks: seconds before the next try given the number of consecutive
    #: failures, instead of ``webhook_retry_schedule`` (for tests)
    webhook_retry_policy: Callable[[int], float] | None = None

    #: webhooks: the most a ``Retry-After`` is honoured for, in seconds
    max_retry_after: float = 3600.0


#: the settings of a relay whose operator set nothing
DEFAULTS = DeliveryConfig()
