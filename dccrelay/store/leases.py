"""
How often a node heartbeats, claims and renews, and when it must let go.

The store's lease methods take durations; this is the timing that the
coordinator (:mod:`dccrelay.coordinator`) uses with them, and what an operator
tunes.  The invariant: a node that cannot renew stops its bots (closing
their gateway connections with a resumable code) *before* its leases can
expire, so two nodes never hold one Discord session.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """
    Lease timing, in seconds.

    The worst case after a node dies (``kill -9``) right after a renew: its
    leases expire ``ttl`` later, and another node claims them within one
    ``claim_interval`` more, then RESUMEs: with the defaults every bot is
    serving again within about 12 s plus a RESUME.

    :ivar ttl: how long a claim or renew holds a lease (and a heartbeat
        keeps a node alive), on the database's clock.
    :ivar renew_interval: how often a node renews its leases and
        heartbeats; a quarter of ``ttl`` lets a few renews in a row fail
        (a database restart, a slow query) without losing anything.
    :ivar claim_interval: how often a node looks for bots without a live
        owner.
    :ivar margin: how long before the lease could expire a node that has
        not renewed stops its bots: time to close their connections, and
        slack for the database's clock running ahead of ours.
    """

    ttl: float = 10.0
    renew_interval: float = 2.5
    claim_interval: float = 2.0
    margin: float = 3.0

    def __post_init__(self) -> None:
        for name in ("ttl", "renew_interval", "claim_interval", "margin"):
            if not getattr(self, name) > 0:
                raise ValueError(f"lease {name} must be a positive number of seconds")
        if self.renew_interval + self.margin >= self.ttl:
            raise ValueError(
                f"lease ttl ({self.ttl} s) must exceed renew interval "
                f"({self.renew_interval} s) plus margin ({self.margin} s), or a "
                f"node would stop its bots between two renews"
            )

    @property
    def stop_after(self) -> float:
        """
        How long after *sending* its last successful renew (on its own
        monotonic clock) a node must stop its bots if no renew has succeeded
        since.  Measured from the send, because the database reads its
        ``now()`` after that, so the lease lasts at least this long plus
        ``margin``.
        """
        return self.ttl - self.margin
