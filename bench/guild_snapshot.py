"""
``python -m bench.guild_snapshot``: what keeping a bot's guild snapshot in
the store costs, on the real SQLite store (sealed with a Fernet key, as
with ``--encryption-key-file``) in a temporary directory.

For a bot in ``--guilds`` guilds (each a GUILD_CREATE of about 3 KiB: the
simulator's guild with ``--channels`` channels and its roles, and two
members), it times, as medians over ``--repeats`` runs:

- ``observe``: feeding the GUILD_CREATEs to the snapshot, on the reactor
  thread, which is all the relay did before the snapshot was stored (the
  baseline of the ratios);
- ``take + seal``: building the store update from what changed and
  encrypting each part (reactor thread, once per save);
- ``write``: the store call that writes them (SQLite's thread);
- ``load + restore``: loading, decrypting and restoring the snapshot at a
  relay's start (the store call, then the reactor thread);
- ``one change``: a CHANNEL_UPDATE observed, taken, sealed and written, as
  a busy bot's steady state costs per save.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Callable

from cryptography.fernet import Fernet
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from dccrelay.relay.guild_snapshot import GuildSnapshot
from dccrelay.store.sealed import SealedSecretsStore
from dccrelay.store.sqlite import SQLiteStore
from dccrelay.testing import guilds, objects

BOT_ID = "111111111111111111"


def guild_creates(count: int, channels: int) -> list[dict[str, Any]]:
    """``count`` GUILD_CREATE payloads as the gateway sends them."""
    member = objects.member("2024-01-01T00:00:00+00:00")
    result = []
    for n in range(count):
        guild_id = str(10**17 + n * 2)
        channel = guilds.channels(guild_id)[0]
        result.append(
            {
                "op": 0, "s": n + 2, "t": "GUILD_CREATE",
                "d": {
                    **guilds.guild(guild_id),
                    "channels": [
                        {**channel, "id": str(int(guild_id) + 1000 + c), "name": f"channel-{c}",
                         "position": c}
                        for c in range(channels)
                    ],
                    "threads": [],
                    "members": [
                        {**member, "user": objects.user(BOT_ID, "bot", bot=True)},
                        {**member, "user": objects.user("4444", "someone")},
                    ],
                    "presences": [],
                    "voice_states": [],
                },
            }
        )
    return result


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


async def once(reactor: Any, events: list[dict[str, Any]]) -> dict[str, float]:
    directory = tempfile.mkdtemp(prefix="bench-guild-snapshot-")
    plain = SQLiteStore(os.path.join(directory, "dcc.sqlite3"), reactor)
    store = SealedSecretsStore(plain, [Fernet(Fernet.generate_key())])
    try:
        await store.open()
        await store.save_relay("bot", {"token": "t"})
        snapshot = GuildSnapshot(BOT_ID)
        snapshot.ready(objects.user(BOT_ID, "bot", bot=True))
        figures: dict[str, float] = {}

        def observe_all() -> None:
            for event in events:
                snapshot.observe(event)

        figures["observe"], _ = timed(observe_all)
        figures["take + seal"], sealed = timed(
            lambda: store.seal_parts([snapshot.take_update("bot")])
        )
        start = time.perf_counter()
        await plain.save_guild_snapshots(sealed)
        figures["write"] = time.perf_counter() - start

        start = time.perf_counter()
        parts = await store.load_guild_snapshot("bot")
        restored = GuildSnapshot(BOT_ID, restore=True)
        restored.restore(parts)
        figures["load + restore"] = time.perf_counter() - start
        assert restored.status()["guilds"] == snapshot.status()["guilds"]

        first = events[0]["d"]
        change = {**first["channels"][0], "name": "renamed"}
        start = time.perf_counter()
        snapshot.observe({"t": "CHANNEL_UPDATE", "d": change})
        await store.save_guild_snapshots([snapshot.take_update("bot")])
        figures["one change"] = time.perf_counter() - start
        figures["bytes"] = float(snapshot.status()["bytes"])
        return figures
    finally:
        await store.close()
        shutil.rmtree(directory, ignore_errors=True)


async def run(reactor: Any, args: argparse.Namespace) -> None:
    events = guild_creates(args.guilds, args.channels)
    runs = [await once(reactor, events) for _ in range(args.repeats)]
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(
        f"guild snapshot of {args.guilds} guilds, {median['bytes'] / 1024 / 1024:.2f} MiB "
        f"of guild data, sealed; medians of {args.repeats} runs"
    )
    baseline = median["observe"]
    for key in ("observe", "take + seal", "write", "load + restore", "one change"):
        print(f"  {key:<16} {median[key] * 1000:9.2f} ms   {median[key] / baseline:6.2f} x observe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guilds", type=int, default=2500)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    react(lambda reactor: ensureDeferred(run(reactor, args)))


if __name__ == "__main__":
    main()
