"""
Tests for :mod:`dccrelay.gateway.commands`: which gateway commands a bot may send
through the relay, how they are checked, and where they go.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.commands import (
    GUILD_MEMBERS,
    GUILD_PRESENCES,
    CommandError,
    answers_request,
    command_answer,
    parse_command,
    shards_for,
)

PRESENCE = {
    "since": None,
    "activities": [{"name": "the grill", "type": 3}],
    "status": "online",
    "afk": False,
}
ALL_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES
GUILD = str(1234 << 22)


class ParseTests(SynchronousTestCase):
    """
    parse_command.
    """

    def refused(self, body: Any, intents: int = ALL_INTENTS) -> CommandError:
        return self.assertRaises(CommandError, parse_command, body, intents)

    def test_presence(self) -> None:
        """
        An Update Presence as Discord documents it passes unchanged.
        """
        command = parse_command({"op": 3, "d": PRESENCE}, 0)
        self.assertEqual(command.payload(), {"op": 3, "d": PRESENCE})
        self.assertIsNone(command.nonce)

    def test_presence_refused(self) -> None:
        """
        A presence missing a field, or with an unknown status, is refused
        with a pointer to it.
        """
        error = self.refused({"op": 3, "d": {**PRESENCE, "status": "busy"}})
        self.assertEqual((error.status, error.pointer), (400, "/d/status"))
        error = self.refused({"op": 3, "d": {k: v for k, v in PRESENCE.items() if k != "afk"}})
        self.assertEqual(error.pointer, "/d")
        self.assertIn("afk", error.message)

    def test_library_presence(self) -> None:
        """
        The activity fields discord.py and hikari build but Discord ignores
        from bots (assets, platform, timestamps, buttons, flags, details)
        are accepted and dropped; name, type, state and url are kept.
        """
        built = [
            {"type": 0, "name": "x", "timestamps": {}, "platform": None, "assets": {}},
            {"flags": 1, "type": 3, "name": "a", "buttons": ["b"]},
            {"type": 1, "name": "s", "url": "https://twitch.tv/x", "assets": {}, "details": "s"},
            {"type": 4, "state": "hi", "name": "Custom Status"},
        ]
        command = parse_command({"op": 3, "d": {**PRESENCE, "activities": built}}, 0)
        self.assertEqual(
            command.d["activities"],
            [
                {"type": 0, "name": "x"},
                {"type": 3, "name": "a"},
                {"type": 1, "name": "s", "url": "https://twitch.tv/x"},
                {"type": 4, "state": "hi", "name": "Custom Status"},
            ],
        )

    def test_envelope(self) -> None:
        """
        Other opcodes (identify, heartbeat, voice...), other shapes and
        extra fields are refused.
        """
        for body, pointer in [
            ({"op": 2, "d": {}}, "/op"),
            ({"op": 1, "d": {}}, "/op"),
            ({"op": 4, "d": {}}, "/op"),
            ({"op": 3}, ""),
            ({"op": 3, "d": PRESENCE, "s": 1}, ""),
            ([3, PRESENCE], ""),
            ({"op": 8, "d": "x"}, "/d"),
        ]:
            self.assertEqual(self.refused(body).pointer, pointer, body)

    def test_member_request(self) -> None:
        """
        A member request by prefix or by ids passes; without a nonce it is
        given one, which the answers will carry.
        """
        command = parse_command({"op": 8, "d": {"guild_id": GUILD, "query": "ab", "limit": 10}}, 0)
        self.assertEqual(command.d["nonce"], command.nonce)
        self.assertTrue(command.nonce and len(command.nonce) <= 32)
        command = parse_command(
            {"op": 8, "d": {"guild_id": GUILD, "user_ids": ["1", "2"], "nonce": "mine"}}, 0
        )
        self.assertEqual(command.nonce, "mine")

    def test_member_request_refused(self) -> None:
        """
        Neither query nor user_ids, a query without limit, a bad guild id or
        too long a nonce are refused.
        """
        error = self.refused({"op": 8, "d": {"guild_id": GUILD}})
        self.assertEqual(error.message, "d: one of query or user_ids is required")
        no_limit = self.refused({"op": 8, "d": {"guild_id": GUILD, "query": "a"}})
        self.assertEqual(no_limit.pointer, "/d")
        self.assertEqual(
            self.refused({"op": 8, "d": {"guild_id": "x", "user_ids": "1"}}).pointer,
            "/d/guild_id",
        )
        error = self.refused(
            {"op": 8, "d": {"guild_id": GUILD, "user_ids": "1", "nonce": "é" * 20}}
        )
        self.assertEqual(error.pointer, "/d/nonce")

    def test_intents(self) -> None:
        """
        Presences need GUILD_PRESENCES; the whole member list needs
        GUILD_MEMBERS.
        """
        error = self.refused(
            {"op": 8, "d": {"guild_id": GUILD, "user_ids": "1", "presences": True}},
            intents=GUILD_MEMBERS,
        )
        self.assertEqual(error.pointer, "/d/presences")
        error = self.refused(
            {"op": 8, "d": {"guild_id": GUILD, "query": "", "limit": 0}}, intents=GUILD_PRESENCES
        )
        self.assertEqual(error.pointer, "/d/query")
        parse_command({"op": 8, "d": {"guild_id": GUILD, "query": "", "limit": 0}}, GUILD_MEMBERS)

    def test_whole_list_names_fix(self) -> None:
        """
        docs/waking.rst's op 8 example sent by a bot with the default
        intents is refused naming the intents to register with, and the
        portal switch, or a request by name.
        """
        error = self.refused(
            {"op": 8, "d": {"guild_id": GUILD, "query": "", "limit": 0}}, intents=4608
        )
        self.assertIn("register with intents 4610", error.message)
        self.assertIn("developer portal", error.message)
        parse_command({"op": 8, "d": {"guild_id": GUILD, "query": "coo", "limit": 10}}, 4608)

    def test_size(self) -> None:
        """
        A command larger than Discord's 4096 bytes is refused.
        """
        activities = [{"name": "x" * 120, "type": 1, "url": "https://z.example/" + "z" * 400}] * 10
        error = self.refused({"op": 3, "d": {**PRESENCE, "activities": activities}})
        self.assertIn("4096", error.message)


class RoutingTests(SynchronousTestCase):
    """
    shards_for and answers_request.
    """

    def test_shards(self) -> None:
        """
        A presence goes on every shard; a member request on its guild's.
        """
        presence = parse_command({"op": 3, "d": PRESENCE}, 0)
        self.assertEqual(shards_for(presence, 3), [0, 1, 2])
        request = parse_command({"op": 8, "d": {"guild_id": GUILD, "user_ids": "1"}}, 0)
        self.assertEqual(shards_for(request, 1), [0])
        self.assertEqual(shards_for(request, 5), [1234 % 5])

    def test_answers(self) -> None:
        """
        A GUILD_MEMBERS_CHUNK, or a RATE_LIMITED for op 8, with an
        outstanding nonce answers that request; nothing else does.
        """
        nonces = {"n1": 0.0}
        chunk = {"t": "GUILD_MEMBERS_CHUNK", "d": {"nonce": "n1", "members": []}}
        self.assertEqual(answers_request(chunk, nonces), "n1")
        limited = {"t": "RATE_LIMITED", "d": {"opcode": 8, "meta": {"nonce": "n1"}}}
        self.assertEqual(answers_request(limited, nonces), "n1")
        for other in [
            {"t": "GUILD_MEMBERS_CHUNK", "d": {"nonce": "n2"}},
            {"t": "GUILD_MEMBERS_CHUNK", "d": {}},
            {"t": "MESSAGE_CREATE", "d": {"nonce": "n1"}},
            {"t": "RATE_LIMITED", "d": {"opcode": 31, "meta": {"nonce": "n1"}}},
        ]:
            self.assertIsNone(answers_request(other, nonces), other)

    def test_command_answer(self) -> None:
        """
        What the HTTP API and a v2 frame answer: 202 and the result, or the
        error's status, message, field and retry hint.
        """
        self.assertEqual(command_answer(lambda body: {"op": 3}, {}), (202, {"op": 3}))

        def busy(body: Any) -> Any:
            raise CommandError("wait", status=503, retry_after=5.0)

        self.assertEqual(
            command_answer(busy, {}), (503, {"error": "wait", "retryAfter": 5.0})
        )
        self.assertEqual(
            command_answer(lambda body: parse_command(body, 0), {"op": 9, "d": {}})[1]["field"],
            "/op",
        )
