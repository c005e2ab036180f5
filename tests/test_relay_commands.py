"""
Gateway commands from a bot, through its relay (:meth:`Relay.send_command`):
on which shard they go, when they are refused, and the answers to member
requests reaching the bot whatever its criteria.
"""

from __future__ import annotations

from typing import Any

import orjson
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.commands import GUILD_MEMBERS, GUILD_PRESENCES, CommandError
from dccrelay.relay.relay import MAX_MEMBER_REQUESTS, MAX_WAITING_COMMANDS, MEMBER_REQUEST_TIMEOUT
from dccrelay.web.status_json import public_json

from .relay_harness import RelayHarness

PRESENCE = {"since": None, "activities": [], "status": "idle", "afk": True}
GUILD = str(1234 << 22)
INTENTS = 4608 | GUILD_MEMBERS | GUILD_PRESENCES


def request(nonce: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"guild_id": GUILD, "query": "", "limit": 0}
    if nonce is not None:
        d["nonce"] = nonce
    return {"op": 8, "d": d}


class CommandTests(SynchronousTestCase):
    """
    Relay.send_command.
    """

    def setUp(self) -> None:
        self.harness = RelayHarness()
        self.harness.rest.shards = 3
        self.relay = self.harness.relay(self, intents=INTENTS)

    def refused(self, body: Any) -> CommandError:
        return self.assertRaises(CommandError, self.relay.send_command, body)

    def test_presence_on_every_shard(self) -> None:
        """
        A presence update goes on every shard, as the bot sent it.
        """
        result = self.relay.send_command({"op": 3, "d": PRESENCE})
        self.assertEqual(result, {"op": 3, "shards": [0, 1, 2]})
        for connection in self.harness.connections:
            self.assertEqual(connection.commands(), [{"op": 3, "d": PRESENCE}])
        self.assertEqual(public_json(self.relay.snapshot())["counters"]["commands"], 1)

    def test_member_request_on_the_guilds_shard(self) -> None:
        """
        A member request goes on its guild's shard only, with the nonce the
        relay gave it.
        """
        result = self.relay.send_command(request())
        shard = 1234 % 3
        self.assertEqual(result["shards"], [shard])
        [sent] = self.harness.connections[shard].commands()
        self.assertEqual(sent["d"]["nonce"], result["nonce"])
        others = [c for i, c in enumerate(self.harness.connections) if i != shard]
        self.assertEqual([c.commands() for c in others], [[], []])

    def test_bad_command(self) -> None:
        """
        A command that does not pass its checks is refused (400) and not
        sent.
        """
        error = self.refused({"op": 3, "d": {"status": "online"}})
        self.assertEqual(error.status, 400)
        self.assertEqual([c.commands() for c in self.harness.connections], [[], [], []])

    def test_not_ready(self) -> None:
        """
        While a shard it needs reconnects, the command is refused with 503
        and a retry hint.
        """
        self.harness.connections[0].drop(4000)
        error = self.refused({"op": 3, "d": PRESENCE})
        self.assertEqual((error.status, error.retry_after), (503, 5.0))
        self.assertIn("shard 0", error.message)

    def test_disabled(self) -> None:
        """
        A disabled bot's commands are refused with 409.
        """
        disabled = self.relay.disable("by its owner")
        self.harness.clock.advance(0)
        self.successResultOf(disabled)
        self.assertEqual(self.refused({"op": 3, "d": PRESENCE}).status, 409)

    def test_send_limit(self) -> None:
        """
        Commands beyond Discord's send limit wait in the shard (never a
        4008); once too many wait, more are refused with 429.
        """
        sent = 0
        while True:
            try:
                self.relay.send_command({"op": 3, "d": PRESENCE})
            except CommandError as e:
                self.assertEqual(e.status, 429)
                break
            sent += 1
        connection = self.harness.connections[0]
        self.assertEqual(len(connection.commands()) + MAX_WAITING_COMMANDS, sent)
        self.assertLess(len(connection.sent), 120)
        self.harness.clock.advance(60)
        self.assertEqual(len(connection.commands()), sent)


class AnswerTests(SynchronousTestCase):
    """
    GUILD_MEMBERS_CHUNK and RATE_LIMITED answers reach the bot that asked.
    """

    def setUp(self) -> None:
        self.harness = RelayHarness()
        self.relay = self.harness.relay(self, intents=INTENTS)
        self.nonce = self.relay.send_command(request())["nonce"]

    def chunk(self, nonce: str | None, index: int = 0, count: int = 1) -> bytes:
        d: dict[str, Any] = {
            "guild_id": GUILD, "members": [], "chunk_index": index, "chunk_count": count,
        }
        if nonce is not None:
            d["nonce"] = nonce
        return self.harness.dispatch("GUILD_MEMBERS_CHUNK", d)

    def test_chunks_delivered(self) -> None:
        """
        Every chunk with the request's nonce is delivered although the
        bot's criteria match only messages and interactions; chunks of
        other requests are not; after the last chunk the nonce is forgotten.
        """
        first = self.chunk(self.nonce, 0, 2)
        self.chunk("someone-elses")
        self.chunk(None)
        last = self.chunk(self.nonce, 1, 2)
        again = self.chunk(self.nonce, 0, 1)
        self.assertEqual(self.harness.channel.payloads, [first, last])
        self.assertNotIn(again, self.harness.channel.payloads)
        counters = public_json(self.relay.snapshot())["counters"]
        self.assertEqual((counters["matched"], counters["answers"]), (0, 2))

    def test_rate_limited(self) -> None:
        """
        A RATE_LIMITED answer to the request is delivered too, and ends it.
        """
        limited = self.harness.dispatch(
            "RATE_LIMITED",
            {"opcode": 8, "retry_after": 12.5, "meta": {"guild_id": GUILD, "nonce": self.nonce}},
        )
        self.assertEqual(self.harness.channel.payloads, [limited])
        self.chunk(self.nonce)
        self.assertEqual(self.harness.channel.payloads, [limited])

    def test_given_nonce(self) -> None:
        """
        The bot's own nonce is kept and its chunks delivered.
        """
        self.relay.send_command(request("bot-nonce"))
        payload = self.chunk("bot-nonce")
        self.assertEqual(orjson.loads(self.harness.channel.payloads[-1])["d"]["nonce"], "bot-nonce")
        self.assertEqual(self.harness.channel.payloads, [payload])

    def test_requests_expire(self) -> None:
        """
        A request whose answers never came is forgotten after
        MEMBER_REQUEST_TIMEOUT; at most MAX_MEMBER_REQUESTS wait at once.
        """
        self.harness.clock.advance(MEMBER_REQUEST_TIMEOUT)
        for n in range(MAX_MEMBER_REQUESTS):
            self.relay.send_command(request(f"n{n}"))
        self.chunk(self.nonce)
        self.assertEqual(self.harness.channel.payloads, [])
        error = self.assertRaises(CommandError, self.relay.send_command, request("one-more"))
        self.assertEqual(error.status, 429)
