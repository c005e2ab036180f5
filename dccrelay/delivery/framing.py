"""
What differs between websocket v1 and v2, as a strategy the one websocket
link (:mod:`dccrelay.delivery.websocket`) is given: the subprotocol, how a
dispatch is framed, when the bot has it, and what the bot may say back.

Websocket v1, as C1 (the Node.js prototype) spoke it:

- no subprotocol, no extension;
- each matching gateway payload goes as one text frame whose bytes are
  exactly the bytes Discord sent;
- the bot sends nothing back (whatever it sends is ignored) and there are no
  acknowledgements: a dispatch counts as delivered once written, so what was
  written to a connection that then drops is lost.

Websocket v2 (subprotocol ``dcc.v2``), acknowledged, durable, in order:

- a bot that does not select ``dcc.v2`` is not spoken to (it is reported in
  the bot's status and retried with backoff);
- the relay sends each dispatch as one text frame::

      {"op":"dispatch","id":N,"d":<the gateway payload, byte for byte>}

  exactly those bytes: the frame is the payload with a fixed prefix and a
  closing brace, so a bot may slice the payload out instead of
  re-serialising it;
- the bot answers ``{"op":"ack","id":N}`` once it has handled dispatch ``N``
  *and every one before it* (acks are cumulative; one ack may cover many);
- the bot may send gateway commands, ``{"op":"command","ref":R,"d":{"op":3
  or 8,"d":{...}}}`` (``ref``, optional, a string of at most 64 characters or
  an integer, is echoed back); the relay answers each, in order, with
  ``{"op":"command_result","ref":R,"status":202,"result":{...}}`` or
  ``{"op":"command_result","ref":R,"status":S,"error":...,"field":...,
  "retryAfter":...}``: the status and body ``POST /relays/{alias}/commands``
  would answer (see :mod:`dccrelay.commands`);
- ids come from the relay's durable outbox: they increase (not necessarily
  by one) and never repeat for a bot, so a bot that remembers the highest id
  it handled can drop a redelivered one;
- everything not acknowledged is sent again, in order, on the next
  connection: after the bot reconnects, or the relay restarts
  (at-least-once);
- the relay pings every ``ping_interval`` seconds and drops a connection
  whose pong does not come within ``ping_timeout``: a dead bot host is
  noticed and its dispatches redelivered;
- a bot that leaves a dispatch unacknowledged for ``idle_timeout`` seconds
  is disconnected and retried with backoff.
"""

from __future__ import annotations

from typing import Any

import orjson
from zope.interface import Attribute, Interface, implementer

SUBPROTOCOL = "dcc.v2"

_FRAME_START = b'{"op":"dispatch","id":%d,"d":'

#: characters of a command's ``ref``, at most
MAX_REF = 64


def dispatch_frame(entry_id: int, payload: bytes) -> bytes:
    """
    The v2 frame for one dispatch: the payload's bytes untouched inside.
    """
    return _FRAME_START % entry_id + payload + b"}"


class IBotFrames(Interface):
    """
    What a framing reports of the frames a bot sends.
    """

    def acked(up_to: int) -> None:
        """
        The bot has every dispatch up to id ``up_to``.
        """

    def commanded(ref: str | int | None, command: Any) -> None:
        """
        The bot sent a gateway command (``command``: its ``d``); answer it
        with :meth:`IFraming.command_result` and ``ref``.
        """


class IFraming(Interface):
    """
    How dispatches go to a bot over a websocket, and what it says back.
    """

    subprotocols = Attribute("websocket subprotocols offered in the handshake, or None")
    delivered_when_written = Attribute(
        "True if a dispatch counts as taken once written (no acknowledgements)"
    )
    pings = Attribute("True if the link pings the bot and drops it when no pong comes")

    def refusal(subprotocol: str | None) -> str | None:
        """
        :param subprotocol: the subprotocol the bot selected.
        :return: why the opened connection cannot be used, or None.
        """

    def frame(entry_id: int, payload: bytes) -> bytes:
        """
        :return: the text frame that carries ``payload``, never re-encoded.
        """

    def received(data: bytes, frames: IBotFrames) -> bool:
        """
        Read one frame from the bot, reporting what it says to ``frames``.

        :return: False if it was ignored.
        """

    def command_result(ref: str | int | None, status: int, answer: dict[str, Any]) -> bytes:
        """
        :return: the frame answering a command.
        """


@implementer(IFraming)
class V1Framing:
    """
    The prototype's websocket protocol: raw payloads, no acknowledgements.
    """

    subprotocols = None
    delivered_when_written = True
    pings = False

    def refusal(self, subprotocol: str | None) -> str | None:
        return None

    def frame(self, entry_id: int, payload: bytes) -> bytes:
        return payload

    def received(self, data: bytes, frames: IBotFrames) -> bool:
        # v1 bots have nothing to say to the relay
        return False

    def command_result(self, ref: str | int | None, status: int, answer: dict[str, Any]) -> bytes:
        raise NotImplementedError("v1 bots send no commands")


@implementer(IFraming)
class V2Framing:
    """
    ``dcc.v2``: framed dispatches with ids, cumulative acks, bot commands.
    """

    subprotocols = [SUBPROTOCOL]
    delivered_when_written = False
    pings = True

    def refusal(self, subprotocol: str | None) -> str | None:
        if subprotocol != SUBPROTOCOL:
            return (
                "the bot did not accept the dcc.v2 websocket subprotocol: update its "
                "receiver, or register with delivery protocol 1"
            )
        return None

    def frame(self, entry_id: int, payload: bytes) -> bytes:
        return dispatch_frame(entry_id, payload)

    def received(self, data: bytes, frames: IBotFrames) -> bool:
        try:
            message = orjson.loads(data)
            op = message.get("op")
            up_to = message.get("id")
        except (orjson.JSONDecodeError, AttributeError):
            return False
        if op == "command":
            ref = message.get("ref")
            if not ((isinstance(ref, str) and len(ref) <= MAX_REF) or type(ref) is int):
                ref = None
            frames.commanded(ref, message.get("d"))
            return True
        if op != "ack" or type(up_to) is not int:
            return False
        frames.acked(up_to)
        return True

    def command_result(self, ref: str | int | None, status: int, answer: dict[str, Any]) -> bytes:
        frame: dict[str, Any] = {"op": "command_result", "ref": ref, "status": status}
        if status == 202:
            frame["result"] = answer
        else:
            frame.update(answer)
        return orjson.dumps(frame)
