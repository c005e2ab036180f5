"""
Identify slots shared through the store by every node that may run a bot
token: Discord's one IDENTIFY per bucket per 5 s holds for the token, not
for one relay process.

A node holds a (token, bucket) slot in the database from the moment it may
connect until its IDENTIFY went out (then the next one waits 5 s) or it gave
up; a hold that outlives a crashed node expires.
"""

from __future__ import annotations

import hashlib

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from dccrelay.gateway.limiter import IDENTIFY_WINDOW, SAFETY_MARGIN
from dccrelay.gateway.shard import CONNECT_TIMEOUT, HELLO_TIMEOUT
from dccrelay.store import IClusterStore

# Long enough for connecting and HELLO; a node that died holding a slot
# delays the others at most this long.
HOLD = CONNECT_TIMEOUT + HELLO_TIMEOUT


def token_key(token: str) -> str:
    """
    What the database knows of a token: enough to tell two apart, nothing
    to use it.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


class StoreIdentifySlots:
    """
    One token's identify slots, held in the shared store by ``node_id``.
    """

    _log = Logger()

    def __init__(self, store: IClusterStore, node_id: str, token: str) -> None:
        self._store = store
        self._node_id = node_id
        self._key = token_key(token)

    def acquire(self, bucket: int) -> Deferred[float]:
        """
        Fires with 0 once this node holds the slot, else with seconds to
        wait.
        """
        d: Deferred[float] = self._store.acquire_identify(self._key, bucket, self._node_id, HOLD)
        return d

    def finish(self, bucket: int, sent: bool) -> None:
        """
        Release the slot; after an IDENTIFY the next waits the window.
        """
        d = self._store.finish_identify(
            self._key, bucket, self._node_id, sent, IDENTIFY_WINDOW + SAFETY_MARGIN
        )
        d.addErrback(lambda f: self._log.failure("could not release an identify slot", f))
