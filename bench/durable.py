"""
Target 5, durable delivery: the throughput run of target 3 with every bot
delivered through the outbox (websocket v2 with acknowledgements, or
webhook batches), each matching dispatch stored before it is sent and
removed once acknowledged, with batched store writes.
"""

from __future__ import annotations

from typing import Any

#: bring_up() arguments per durable mode
MODES: dict[str, dict[str, Any]] = {
    "websocket v2": {"delivery": "ws", "protocol": 2},
    "webhook": {"delivery": "webhook"},
}
