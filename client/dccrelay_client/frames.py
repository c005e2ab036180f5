"""
Websocket v2 delivery frames (subprotocol ``dcc.v2``), as the relay writes
them and a bot answers them:

- relay to bot: ``{"op":"dispatch","id":N,"d":<payload>}``, the payload byte
  for byte as Discord sent it; ``{"op":"command_result","ref":R,
  "status":S,...}`` answering a command;
- bot to relay: ``{"op":"ack","id":N}`` (cumulative: N and everything
  before it), ``{"op":"command","ref":R,"d":{"op":3|8,"d":{...}}}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: the websocket subprotocol of delivery v2
SUBPROTOCOL_V2 = "dcc.v2"

# The relay builds v2 frames by concatenation, so the payload is everything
# between this prefix and the final "}".
_V2_FRAME = re.compile(rb'\{"op":"dispatch","id":(\d{1,19}),"d":')


def parse_v2_frame(frame: bytes) -> tuple[int, bytes] | None:
    """
    :return: ``(id, payload)`` of a v2 dispatch frame, the payload's bytes
        as the relay had them, or None if ``frame`` is not a dispatch.
    """
    found = _V2_FRAME.match(frame)
    if found is not None and frame.endswith(b"}"):
        return int(found.group(1)), frame[found.end() : -1]
    # Not in the relay's exact form: parse it (the payload is re-encoded).
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("op") != "dispatch":
        return None
    entry_id = message.get("id")
    if type(entry_id) is not int or "d" not in message:
        return None
    return entry_id, json.dumps(message["d"], separators=(",", ":")).encode("utf-8")


def ack_frame(entry_id: int) -> str:
    """The acknowledgement of dispatch ``entry_id`` and all before it."""
    return '{"op":"ack","id":%d}' % entry_id


def command_frame(ref: str, op: int, d: dict[str, Any]) -> str:
    """A gateway command for the relay to send on the bot's session."""
    return json.dumps({"op": "command", "ref": ref, "d": {"op": op, "d": d}})
