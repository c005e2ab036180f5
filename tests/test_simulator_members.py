"""
The simulator's answers to Update Presence (op 3) and Request Guild
Members (op 8) (:mod:`dccrelay.testing.members`), over loopback websockets.
"""

from __future__ import annotations

from typing import Any

from tests.harness import wait_for
from tests.test_simulator import SimulatorTestCase, identify_payload

GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD = str(1234 << 22)
PRESENCE = {
    "since": None, "activities": [{"name": "x", "type": 0}], "status": "dnd", "afk": False
}


class MembersTests(SimulatorTestCase):
    """Presence and member requests."""

    async def client(
        self, intents: int = 513 | GUILD_MEMBERS | GUILD_PRESENCES, **extra: Any
    ) -> Any:
        self.sim.add_bot(
            token="token-m", user_id="42", privileged_intents=GUILD_MEMBERS | GUILD_PRESENCES
        )
        client = await self.connect()
        client.send_json(identify_payload(token="token-m", intents=intents, **extra))
        ready = await client.next()
        self.assertEqual(ready["t"], "READY")
        return client

    async def test_presence(self) -> None:
        """An Update Presence is kept for the shard and recorded."""
        client = await self.client()
        client.send_json({"op": 3, "d": PRESENCE})
        await wait_for(lambda: ("presence", 0) in self.sim.events, what="the presence")
        self.assertEqual(self.sim.bots["token-m"].presences, {0: PRESENCE})

    async def test_bad_presence(self) -> None:
        """A presence without its required fields closes with 4002."""
        client = await self.client()
        client.send_json({"op": 3, "d": {"status": "dnd"}})
        await self.assert_closed_with(client, 4002)

    async def test_chunks(self) -> None:
        """
        The whole member list comes in chunks with the nonce, chunk_index
        and chunk_count.
        """
        client = await self.client()
        self.sim.bots["token-m"].add_members(GUILD, 5)
        self.sim.member_chunk_size = 2
        client.send_json(
            {"op": 8, "d": {"guild_id": GUILD, "query": "", "limit": 0, "nonce": "n1"}}
        )
        chunks = [await client.next() for _ in range(3)]
        self.assertEqual({c["t"] for c in chunks}, {"GUILD_MEMBERS_CHUNK"})
        self.assertEqual([c["d"]["chunk_index"] for c in chunks], [0, 1, 2])
        self.assertEqual({c["d"]["chunk_count"] for c in chunks}, {3})
        self.assertEqual({c["d"]["nonce"] for c in chunks}, {"n1"})
        self.assertEqual(sum(len(c["d"]["members"]) for c in chunks), 5)
        self.assertIn(("member_request", "n1"), self.sim.events)

    async def test_all_members_rate_limited(self) -> None:
        """
        Asking for the whole list again within 30 s gets RATE_LIMITED with
        the nonce.
        """
        client = await self.client()
        request = {"op": 8, "d": {"guild_id": GUILD, "query": "", "limit": 0, "nonce": "a"}}
        client.send_json(request)
        self.assertEqual((await client.next())["t"], "GUILD_MEMBERS_CHUNK")
        request["d"]["nonce"] = "b"
        client.send_json(request)
        limited = await client.next()
        self.assertEqual(limited["t"], "RATE_LIMITED")
        self.assertEqual(limited["d"]["opcode"], 8)
        self.assertEqual(limited["d"]["meta"], {"guild_id": GUILD, "nonce": "b"})
        self.assertTrue(0 < limited["d"]["retry_after"] <= 30)

    async def test_user_ids_and_query(self) -> None:
        """
        user_ids finds those members and lists the others in not_found; a
        query finds members by name prefix; presences only with
        GUILD_PRESENCES.
        """
        client = await self.client(intents=513 | GUILD_MEMBERS)
        bot = self.sim.bots["token-m"]
        members = bot.add_members(GUILD, 12)
        wanted = [members[3]["user"]["id"], "1"]
        client.send_json(
            {"op": 8, "d": {"guild_id": GUILD, "user_ids": wanted, "presences": True}}
        )
        chunk = (await client.next())["d"]
        self.assertEqual([m["user"]["id"] for m in chunk["members"]], wanted[:1])
        self.assertEqual(chunk["not_found"], ["1"])
        self.assertNotIn("presences", chunk)
        client.send_json({"op": 8, "d": {"guild_id": GUILD, "query": "member1", "limit": 5}})
        chunk = (await client.next())["d"]
        self.assertEqual(
            [m["user"]["username"] for m in chunk["members"]],
            ["member1", "member10", "member11"],
        )

    async def test_all_members_needs_intent(self) -> None:
        """Without GUILD_MEMBERS the whole list is not sent."""
        client = await self.client(intents=513)
        client.send_json({"op": 8, "d": {"guild_id": GUILD, "query": "", "limit": 0}})
        client.send_json({"op": 8, "d": {"guild_id": GUILD, "user_ids": "9"}})
        chunk = await client.next()
        self.assertEqual(chunk["d"]["not_found"], ["9"])

    async def test_wrong_shard(self) -> None:
        """A guild another shard serves gets no answer on this one."""
        self.sim.add_bot(token="token-s", user_id="43", shards=2)
        client = await self.connect()
        client.send_json(identify_payload(token="token-s", shard=[0, 2]))
        await client.next()
        other = str(1 << 22)
        client.send_json({"op": 8, "d": {"guild_id": other, "user_ids": "9"}})
        client.send_json({"op": 8, "d": {"guild_id": GUILD, "user_ids": "9"}})
        chunk = await client.next()
        self.assertEqual(chunk["d"]["guild_id"], GUILD)

    async def test_bad_request(self) -> None:
        """A request without query or user_ids closes with 4002."""
        client = await self.client()
        client.send_json({"op": 8, "d": {"guild_id": GUILD}})
        await self.assert_closed_with(client, 4002)
