"""
What a bot author imports to use a relay:

- :func:`register`, :func:`status`, :func:`disable`, :func:`delete`: the
  registration API over treq, failing with :class:`RegistrationError`;
- :func:`send_command`: a gateway command (presence, member request) sent
  through the relay over HTTP (a websocket v2 bot can also use its
  receiver's ``send_command``);
- :func:`receiver_resource`: a twisted.web resource for websocket delivery
  (see :mod:`dccrelay.client.receiver`);
- :func:`answer_interaction`, :func:`deferral`: answering an interaction
  whether or not the relay deferred it while the bot woke up (see
  :mod:`dccrelay.client.interactions`);
- :func:`verify_webhook`: checks a webhook delivery's Standard Webhooks
  signature in any web framework, failing with
  :class:`WebhookVerificationError`;
- the ``dccctl`` command (:mod:`dccrelay.client.cli`).

The logic it shares with the asyncio client (webhook verification, v2
framing, deferral routing, registration bodies) lives once, in the client
distribution ``dccrelay-client`` (``client/`` in the repository), which
must be installed beside dccrelay for this package and ``dccctl``.
"""

try:
    import dccrelay_client  # noqa: F401
except ImportError:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "dccrelay.client and dccctl need the client distribution too: "
        "pip install ./client (dccrelay-client) from the dccrelay checkout"
    ) from None

from dccrelay.client.interactions import (  # noqa: E402
    Deferral,
    InteractionError,
    answer_interaction,
    deferral,
    reply_route,
)
from dccrelay.client.receiver import NotConnected, receiver_resource
from dccrelay.client.register import (
    RegistrationError,
    delete,
    disable,
    register,
    registration_body,
    send_command,
    status,
)
from dccrelay.client.webhook import WebhookVerificationError, verify_webhook

__all__ = [
    "Deferral",
    "InteractionError",
    "NotConnected",
    "RegistrationError",
    "WebhookVerificationError",
    "answer_interaction",
    "deferral",
    "delete",
    "disable",
    "receiver_resource",
    "register",
    "registration_body",
    "reply_route",
    "send_command",
    "status",
    "verify_webhook",
]
