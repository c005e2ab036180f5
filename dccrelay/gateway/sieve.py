"""
Which dispatches a shard need not parse.

For many bots most of the gateway's traffic is of types their criteria never
match: presence updates, typing, reactions.  Parsing such a dispatch is most
of what the relay would do with it.  When a bot's criteria name the only
types they can match (:class:`dccrelay.filters.interfaces.IEventTypes`), the
shard reads a dispatch's type and sequence number from the head of its JSON
text and, for a type not wanted, keeps only the sequence number (what a
resume needs) and passes over the rest.

Discord writes a payload's scalar members before ``d``:
``{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{...}}``.  The head is read only
when it has exactly that shape (``t``, ``s`` and ``op``, in any order,
compact, before ``d``; the type in capitals, digits and underscores);
anything else is parsed whole, as before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Optional

#: what the gateway session itself reads, whatever the bot wants
SESSION_TYPES = frozenset({"READY", "RESUMED"})

# One scalar member of the head and its comma.
_MEMBER = re.compile(rb'"(t|s|op)":("[A-Z0-9_]+"|[0-9]+|null),')
_DATA = b'"d":'


@functools.lru_cache(maxsize=1024)
def _shared(wanted: frozenset[str]) -> tuple[frozenset[str], tuple[bytes, ...]]:
    # One set and one tuple of heads for every bot wanting the same types
    # (most share their criteria): ~1.5 KiB a bot otherwise.
    names = sorted(t.encode() for t in wanted)
    heads = tuple(b'{"t":"' + name + b'"' for name in names) + tuple(
        b'{"op":0,"t":"' + name + b'"' for name in names
    )
    return wanted, heads


class EventSieve:
    """
    The dispatch types one bot's relay wants parsed; by default all of them.
    """

    __slots__ = ("wanted", "_heads")

    def __init__(self) -> None:
        #: the types parsed, or None for every type
        self.wanted: Optional[frozenset[str]] = None
        # Heads of a wanted dispatch in the usual orders, checked first so
        # that a wanted dispatch costs one startswith.
        self._heads: tuple[bytes, ...] = ()

    def want(self, types: Optional[Iterable[str]]) -> None:
        """Parse only dispatches of ``types`` (and the session's own); None: all."""
        if types is None:
            self.wanted, self._heads = None, ()
            return
        self.wanted, self._heads = _shared(frozenset(types) | SESSION_TYPES)

    def passed_over(self, data: bytes) -> Optional[int]:
        """
        The sequence number of ``data`` (a gateway message's JSON text)
        when it is a dispatch of a type not wanted; None when it is to be
        parsed.
        """
        wanted = self.wanted
        if wanted is None or data.startswith(self._heads) or data[:1] != b"{":
            return None
        members: dict[bytes, bytes] = {}
        at = 1
        for _ in range(3):
            found = _MEMBER.match(data, at)
            if found is None:
                return None
            members[found.group(1)] = found.group(2)
            at = found.end()
        t, s = members.get(b"t"), members.get(b"s")
        if (
            not data.startswith(_DATA, at)
            or members.get(b"op") != b"0"
            or t is None
            or s is None
            or not t.startswith(b'"')
            or not s.isdigit()
        ):
            return None
        if t[1:-1].decode("ascii") in wanted:
            return None
        return int(s)
