"""
File descriptors for a node's connections, checked at start-up.

Each bot holds a gateway connection and, while it is being delivered to, a
connection to its own URL; the API's clients, the store and the logs need a
few more.  With the usual soft limit of 1,024 descriptors a node with the
default ``--max-relays`` of 1,000 ran out: deliveries failed as "could not
connect to the bot" (blaming the bot) and ``/healthz`` stopped answering.
So the node raises its soft limit to the hard one, as far as needed, and
refuses to start when even that is too few, naming both ways out.
"""

from __future__ import annotations

import resource
from typing import Callable

#: descriptors a bot may need: its gateway connection and one to the bot
PER_BOT = 2

#: descriptors for everything else: the store, logs, DNS, and API clients
#: beyond the ``api_connections`` counted apart
RESERVE = 256

Limits = tuple[int, int]


class TooFewDescriptors(Exception):
    """The process may not open enough files for ``--max-relays`` bots."""


def descriptors_needed(max_relays: int, api_connections: int = 0) -> int:
    """
    What ``max_relays`` bots, ``api_connections`` clients of the API at once
    (``--max-api-connections``) and the rest of the node may hold open.
    """
    return max_relays * PER_BOT + api_connections + RESERVE


def ensure_descriptors(
    max_relays: int,
    get: Callable[[int], Limits] = resource.getrlimit,
    set_: Callable[[int, Limits], None] = resource.setrlimit,
    api_connections: int = 0,
) -> int:
    """
    Raise the soft limit on open files as far as ``max_relays`` bots and
    ``api_connections`` API clients need (never above the hard limit).

    :return: the soft limit now in force.
    :raise TooFewDescriptors: when the hard limit is too low, with what to
        change.
    """
    need = descriptors_needed(max_relays, api_connections)
    soft, hard = get(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if raised > soft:
            set_(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft != resource.RLIM_INFINITY and soft < need:
        raise TooFewDescriptors(
            f"--max-relays {max_relays} needs about {need} open files ({PER_BOT} per bot, "
            + (f"{api_connections} for --max-api-connections, " if api_connections else "")
            + f"{RESERVE} for the rest), but this process may open only {soft}: raise the "
            "limit (LimitNOFILE= in the systemd unit, ulimit -n in a shell) or lower "
            "--max-relays"
        )
    return soft
