"""
Tests for :mod:`dccrelay.gateway.sieve`: which dispatches a shard passes
over unparsed, read from the head of their JSON text.
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dccrelay.gateway.sieve import EventSieve


def _sieve(*types: str) -> EventSieve:
    sieve = EventSieve()
    sieve.want(set(types))
    return sieve


class EventSieveTests(SynchronousTestCase):
    """
    :meth:`EventSieve.passed_over` gives the seq of a dispatch of a type not
    wanted, and None for anything it is not sure of.
    """

    def test_wants_everything_by_default(self) -> None:
        """A new sieve, or one told None, passes over nothing."""
        data = b'{"t":"TYPING_START","s":2,"op":0,"d":{}}'
        self.assertIsNone(EventSieve().passed_over(data))
        sieve = _sieve("MESSAGE_CREATE")
        sieve.want(None)
        self.assertIsNone(sieve.passed_over(data))

    def test_unwanted_type(self) -> None:
        """Discord's order (t, s, op) and op first are read; another order is parsed."""
        sieve = _sieve("MESSAGE_CREATE")
        for head in (b'{"t":"TYPING_START","s":12,"op":0,', b'{"op":0,"t":"TYPING_START","s":12,'):
            self.assertEqual(sieve.passed_over(head + b'"d":{"t":"MESSAGE_CREATE"}}'), 12, head)
        self.assertIsNone(sieve.passed_over(b'{"s":12,"op":0,"t":"TYPING_START","d":{}}'))

    def test_wanted_and_session_types_parsed(self) -> None:
        """Wanted types, READY and RESUMED are always parsed."""
        sieve = _sieve("MESSAGE_CREATE", "GUILD_MEMBERS_CHUNK")
        for t in ("MESSAGE_CREATE", "GUILD_MEMBERS_CHUNK", "READY", "RESUMED"):
            for data in (
                b'{"t":"%s","s":3,"op":0,"d":{}}' % t.encode(),
                b'{"s":3,"op":0,"t":"%s","d":{}}' % t.encode(),
            ):
                self.assertIsNone(sieve.passed_over(data), data)

    def test_prefix_of_a_wanted_type(self) -> None:
        """A type that merely starts like a wanted one is not wanted."""
        sieve = _sieve("MESSAGE_CREATE")
        self.assertEqual(sieve.passed_over(b'{"t":"MESSAGE_CREATED","s":5,"op":0,"d":{}}'), 5)

    def test_nothing_wanted(self) -> None:
        """An empty set (criteria that match nothing) passes over every other dispatch."""
        sieve = _sieve()
        self.assertEqual(sieve.passed_over(b'{"t":"MESSAGE_CREATE","s":5,"op":0,"d":{}}'), 5)
        self.assertIsNone(sieve.passed_over(b'{"t":"READY","s":1,"op":0,"d":{}}'))

    def test_unsure_heads_parsed(self) -> None:
        """
        Other opcodes, null or missing members, escapes, spaces, lower case,
        d first, a non-numeric or negative seq, and what is not an object
        are all left to the parser.
        """
        sieve = _sieve("MESSAGE_CREATE")
        for data in (
            b'{"t":null,"s":null,"op":11,"d":null}',
            b'{"t":"TYPING_START","s":null,"op":0,"d":{}}',
            b'{"t":"TYPING_START","op":0,"d":{}}',
            b'{"t":"TYPING_START","s":2,"op":1,"d":{}}',
            b'{"t":"TYPING\\u005fSTART","s":2,"op":0,"d":{}}',
            b'{"t": "TYPING_START", "s": 2, "op": 0, "d": {}}',
            b'{"t":"typing_start","s":2,"op":0,"d":{}}',
            b'{"d":{},"t":"TYPING_START","s":2,"op":0}',
            b'{"t":"TYPING_START","s":"2","op":0,"d":{}}',
            b'{"t":"TYPING_START","s":-2,"op":0,"d":{}}',
            b'{"t":"TYPING_START","t":"X","op":0,"d":{}}',
            b'{"t":"TYPING_START","s":2,"op":0,"x":1,"d":{}}',
            b'{"t":"TYPING_START","s":2,"op":0}',
            b'[{"t":"TYPING_START","s":2,"op":0,"d":{}}]',
            b"",
            b"{",
        ):
            self.assertIsNone(sieve.passed_over(data), data)

    @settings(max_examples=300, deadline=None)
    @given(
        st.sampled_from(["MESSAGE_CREATE", "TYPING_START", "PRESENCE_UPDATE", "READY"]),
        st.integers(min_value=0, max_value=2**53),
        st.permutations(["t", "s", "op"]),
        st.dictionaries(st.text(max_size=5), st.integers(min_value=-(2**62), max_value=2**62), max_size=3),
    )
    def test_agrees_with_the_parse(self, t: str, s: int, order: list[str], d: dict[str, int]) -> None:
        """
        The sieve passes over a dispatch in a shape it reads exactly when
        its parse has an unwanted t, and gives its s.
        """
        members = {"t": t, "s": s, "op": 0}
        data = orjson.dumps({**{k: members[k] for k in order}, "d": d})
        seq = _sieve("MESSAGE_CREATE").passed_over(data)
        payload = orjson.loads(data)
        read = order in (["t", "s", "op"], ["op", "t", "s"])
        wanted = payload["t"] in ("MESSAGE_CREATE", "READY")
        self.assertEqual(seq, payload["s"] if read and not wanted else None)
