"""
Where registrations, gateway session state, the delivery outbox and the
nodes' leases live.

Every method returns a Deferred; implementations run their blocking database
calls off the reactor thread.  The store plays separate roles, each its own
interface, so that a caller depends on the one it uses:

- :class:`IRegistrations`: the bots' registrations (the manager, the web API);
- :class:`ISessions`: gateway session state, to RESUME (relays, checkpoints);
- :class:`IOutbox`: durable delivery (the outbox writer, v2 and webhooks);
- :class:`IGuildSnapshots`: the guilds a bot keeps for its framework's cold
  start (``guildSnapshot``), so that a relay restart does not lose them;
- :class:`IClusterStore`: what nodes sharing a database agree through
  (leases, change notices, IDENTIFY slots, published statuses).

:class:`IRelayStore` is the first four with opening and closing: the
SQLite store (the embedded default, one node) and the PostgreSQL store
(several nodes on one database) provide it; only the PostgreSQL store
provides :class:`IClusterStore` too, since one node has nobody to agree with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from zope.interface import Attribute, Interface

#: The shortest wait :meth:`IClusterStore.acquire_identify` answers with when
#: it does not grant the slot, in seconds: a caller that retries after it
#: never spins.
IDENTIFY_MIN_WAIT = 0.05


@dataclass(frozen=True, slots=True)
class StoredRelay:
    """
    One registration as the store keeps it.

    :ivar settings: the registration's settings as a JSON-compatible dict, in
        the form of :meth:`dccrelay.relay.settings.RelaySettings.to_json`.
    :ivar enabled: whether the relay should hold a gateway session.
    :ivar disable_reason: why it was last disabled (kept after re-enabling),
        or ``None``.
    """

    alias: str
    settings: dict[str, Any]
    enabled: bool
    disable_reason: str | None


@dataclass(frozen=True, slots=True)
class SessionState:
    """
    What a shard needs to RESUME a Discord gateway session.
    """

    shard_id: int
    shard_count: int
    session_id: str
    seq: int | None
    resume_url: str


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """
    One dispatch waiting in a bot's outbox.

    :ivar id: its outbox id: ids only grow, across every bot of the database
        (they are never reused, even after a bot is deleted), so each bot
        sees its own ids increase, not necessarily by one.
    :ivar payload: the gateway payload, byte for byte as Discord sent it.
    :ivar created_at: when it was appended, in seconds since the epoch.
    :ivar batch_last: if a batch (a webhook POST) was sent starting with
        this entry, the id of its last entry: a batch sent again (after a
        restart) holds the same entries, under the same ``webhook-id``.
    """

    id: int
    payload: bytes
    created_at: float
    batch_last: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxCheckpoint:
    """
    A shard's gateway seq to remember together with the dispatches appended
    in the same call: once a dispatch is durably in the outbox, Discord need
    not replay it after a restart.

    The stored session's seq is raised to ``seq`` only if the stored session
    is the same one (``session_id``) and its seq is lower.

    :ivar lease_epoch: in a cluster, the epoch of the lease the bot's relay
        runs under, or None (a node alone): the checkpoint, and the bot's
        entries appended with it, are stored only while that lease is the
        current one, so a node that lost the bot (and may retry an append
        once the database is back) never stores what the next owner will
        have replayed from Discord under new ids.
    """

    alias: str
    shard_id: int
    session_id: str
    seq: int
    lease_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class Trimmed:
    """
    What :meth:`IOutbox.outbox_trim` dropped.

    :ivar dropped: how many entries.
    :ivar up_to: the id of the newest entry dropped (every entry of the bot
        with an id up to it is gone), or 0 if nothing was dropped.
    """

    dropped: int
    up_to: int


@dataclass(frozen=True, slots=True)
class GuildSnapshotUpdate:
    """
    What changed in one bot's guild snapshot since it was last saved.  The
    store keeps a snapshot as named parts, opaque to it; each part is a
    document of bytes (JSON, unless the store seals it).

    :ivar parts: ``(name, document)`` pairs to insert or replace.
    :ivar dropped: names of parts to remove.
    :ivar replace: remove every part the bot had first (its snapshot
        starts over), then apply ``parts``.
    """

    alias: str
    parts: tuple[tuple[str, bytes], ...] = ()
    dropped: tuple[str, ...] = ()
    replace: bool = False


def check_guild_snapshot_updates(updates: Iterable[GuildSnapshotUpdate]) -> list[GuildSnapshotUpdate]:
    """
    Check what :meth:`IGuildSnapshots.save_guild_snapshots` is given, on
    the caller's thread.

    :return: the updates, as a list.
    :raises TypeError: naming the first update that is not a
        :class:`GuildSnapshotUpdate`, or whose documents are not ``bytes``.
    """
    checked = []
    for update in updates:
        if not isinstance(update, GuildSnapshotUpdate):
            raise TypeError(f"expected a GuildSnapshotUpdate, not {type(update).__name__}")
        for name, document in update.parts:
            if not isinstance(name, str) or not isinstance(document, bytes):
                raise TypeError(
                    f"{update.alias}: a guild snapshot part is a name (str) and a document "
                    f"(bytes), not {type(name).__name__} and {type(document).__name__}"
                )
        checked.append(update)
    return checked


def sessions_by_alias(rows: Iterable[Sequence[Any]]) -> dict[str, dict[int, SessionState]]:
    """
    ``(alias, shard_id, shard_count, session_id, seq, resume_url)`` rows,
    grouped by alias and keyed by shard id.
    """
    sessions: dict[str, dict[int, SessionState]] = {}
    for alias, *fields in rows:
        state = SessionState(*fields)
        sessions.setdefault(alias, {})[state.shard_id] = state
    return sessions


def encode_settings(settings: dict[str, Any]) -> str:
    """
    Encode what :meth:`IRegistrations.save_relay` is given, for the stores that
    keep JSON: on the caller's thread, so that a caller that changes its
    dict afterwards cannot race the write.

    :raises TypeError: if something in it is not JSON-compatible.
    :raises ValueError: if it holds a NaN or an infinity, or a loop.
    """
    return json.dumps(settings, separators=(",", ":"), allow_nan=False)


def check_payloads(entries: Iterable[tuple[str, bytes]]) -> None:
    """
    Check what :meth:`IOutbox.outbox_append` is given: payloads are
    forwarded byte for byte, so a ``str`` is refused rather than re-encoded.

    :raises TypeError: naming the type of the first payload that is not
        ``bytes``.
    """
    for _, payload in entries:
        if not isinstance(payload, bytes):
            raise TypeError(f"payloads must be bytes, not {type(payload).__name__}")


def encode_statuses(statuses: Mapping[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """
    Encode what :meth:`IClusterStore.publish_statuses` is given, for the
    stores that keep JSON: on the caller's thread, so that later changes to
    the dicts cannot race the write.

    :return: ``(alias, JSON)`` pairs.
    :raises TypeError: if an alias is not a string, a status not a dict, or
        something in it not JSON-compatible.
    :raises ValueError: if a status holds a NaN or an infinity, or a loop.
    """
    encoded = []
    for alias, status in statuses.items():
        if not isinstance(alias, str):
            raise TypeError(f"aliases must be strings, not {type(alias).__name__}")
        if not isinstance(status, dict):
            raise TypeError(f"a status must be a dict, not {type(status).__name__}")
        encoded.append((alias, json.dumps(status, separators=(",", ":"), allow_nan=False)))
    return encoded


class IRegistrations(Interface):
    """
    The bots' registrations: settings, and whether each should run.
    """

    description = Attribute("A short human description, e.g. 'SQLite at /path'.")

    def load_relays():  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with a list of :class:`StoredRelay`, sorted by
            alias.
        """

    def create_relay(alias, settings):  # type: ignore[no-untyped-def]
        """
        Register ``alias``, enabled, unless a registration of that alias
        exists: checked and inserted in one transaction, so that of several
        callers (several nodes) creating one alias at once exactly one
        succeeds, and an existing registration is never overwritten.

        :param settings: JSON-compatible dict.
        :return: Deferred firing with ``True`` if it was created, ``False``
            if the alias was taken (its registration is left as it was).
        """

    def save_relay(alias, settings):  # type: ignore[no-untyped-def]
        """
        Insert or replace a registration's settings, and mark it enabled
        (``disable_reason`` is kept).  For changing a registration the
        caller knows; a new one is made with :meth:`create_relay`.

        :param settings: JSON-compatible dict.
        :return: Deferred firing with ``None``.
        """

    def delete_relay(alias):  # type: ignore[no-untyped-def]
        """
        Forget a registration, its sessions, its outbox and its guild
        snapshot.

        :return: Deferred firing with ``True`` if it existed.
        """

    def disable_relay(alias, reason):  # type: ignore[no-untyped-def]
        """
        Mark a registration disabled, remember why, and forget its sessions
        (a disabled bot identifies afresh when re-enabled).  Its outbox is
        kept.

        :return: Deferred firing with ``None``.
        """


class ISessions(Interface):
    """
    Each shard's gateway session state, so that a restarted or moved bot
    RESUMEs instead of identifying afresh.
    """

    def load_sessions(alias):  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with a dict mapping shard id to
            :class:`SessionState`.
        """

    def load_all_sessions():  # type: ignore[no-untyped-def]
        """
        Every relay's sessions in one call, for a node starting thousands.

        :return: Deferred firing with a dict mapping alias to what
            :meth:`load_sessions` gives for it (relays with none left out).
        """

    def save_session(alias, state):  # type: ignore[no-untyped-def]
        """
        Remember (insert or replace) one shard's session state.

        :param state: :class:`SessionState`.
        :return: Deferred firing with ``None``.
        """

    def save_sessions(states):  # type: ignore[no-untyped-def]
        """
        Remember many shards' session states in one transaction, each as
        :meth:`save_session` would: the periodic checkpoint of every bot on
        a node is one call, not thousands.

        :param states: a sequence of ``(alias, SessionState)``.
        :return: Deferred firing with ``None``.
        """

    def forget_session(alias, shard_id):  # type: ignore[no-untyped-def]
        """
        Drop one shard's session (after an invalid session or a fatal close).

        :return: Deferred firing with ``None``.
        """


class IOutbox(Interface):
    """
    Durable delivery (websocket v2, webhooks) keeps each bot's matched
    dispatches here until the bot acknowledges them.  Callers batch: one
    call carries the appends (or acks) of every bot for a moment.
    """

    def outbox_append(entries, now, checkpoints=(), fences=None):  # type: ignore[no-untyped-def]
        """
        Append dispatches, for any number of bots, in one transaction.

        An entry for an alias that is not registered (deleted meanwhile) is
        not stored: a later registration of the same alias must never get
        another bot's dispatches.  Nor is one whose fence (a lease epoch,
        see :attr:`OutboxCheckpoint.lease_epoch`) is not the bot's current
        lease's, in a store with a cluster role; a store without one ignores
        fences.

        :param fences: None, or one lease epoch (or None) per entry.

        :param entries: a sequence of ``(alias, payload)`` with ``payload``
            bytes, in the order to deliver them.
        :param now: ``created_at`` for all of them (seconds since the epoch).
        :param checkpoints: :class:`OutboxCheckpoint` values applied in the
            same transaction.
        :return: Deferred firing with a list, one item per entry: its new id,
            or ``None`` if it was not stored.  Ids increase in entry order.
        """

    def outbox_load(alias, after_id, limit):  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with at most ``limit`` :class:`OutboxEntry`
            of ``alias`` with an id above ``after_id``, oldest first.
        """

    def outbox_ack(acks, batches=None):  # type: ignore[no-untyped-def]
        """
        Remove acknowledged entries, for any number of bots, and record the
        batches about to be sent, in one transaction.

        :param acks: a mapping of alias to an id: every entry of that alias
            with an id up to it is removed.
        :param batches: a mapping of alias to ``(first id, last id)``: the
            batch about to be sent, recorded on its first entry (its
            :attr:`OutboxEntry.batch_last`), once the acks are done.
        :return: Deferred firing with a dict of alias to how many entries
            were removed.
        """

    def outbox_trim(alias, max_count, created_before=None):  # type: ignore[no-untyped-def]
        """
        Drop a bot's oldest entries: those that leave at most ``max_count``,
        and those created before ``created_before`` (seconds since the epoch;
        ``None`` for no age limit).  What is dropped is always a prefix of
        the bot's entries in id order.

        :return: Deferred firing with :class:`Trimmed`.
        """

    def outbox_count(alias):  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with how many entries ``alias`` has.
        """


class IGuildSnapshots(Interface):
    """
    Each bot's guild snapshot (``guildSnapshot``, see
    :mod:`dccrelay.relay.guild_snapshot`), kept as named parts (the bot's
    user, one part per guild) so that a change rewrites only what changed.
    A relay saves the changes of many bots in one call, every few seconds,
    and loads a bot's snapshot when it starts.  A bot's parts go with its
    registration (:meth:`IRegistrations.delete_relay`); a disabled bot keeps
    them.
    """

    def load_guild_snapshot(alias):  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with a dict mapping part name to document
            (``bytes``); empty for a bot with none, or not registered.
        """

    def save_guild_snapshots(updates):  # type: ignore[no-untyped-def]
        """
        Apply :class:`GuildSnapshotUpdate` values, for any number of bots,
        in one transaction.  An update for an alias that is not registered
        (deleted meanwhile) is skipped: a later registration of the same
        alias must never get another bot's guilds.

        :param updates: a sequence of :class:`GuildSnapshotUpdate`.
        :return: Deferred firing with ``None``; failing with ``TypeError``
            (and changing nothing) if an update or a document is of the
            wrong type.
        """


class IRelayStore(IRegistrations, ISessions, IOutbox, IGuildSnapshots):
    """
    A store that one node may run on: registrations, sessions, the outbox
    and guild snapshots, in a database it opens and closes.
    """

    def open():  # type: ignore[no-untyped-def]
        """
        Create or migrate the schema and get ready for use.

        :return: Deferred that fires with ``None``.
        """

    def close():  # type: ignore[no-untyped-def]
        """
        Finish pending writes and release the database.  Safe to call more
        than once; calls after it fail with
        :class:`~dccrelay.store.errors.StoreClosed`.

        :return: Deferred that fires with ``None``.
        """


class IClusterStore(Interface):
    """
    What several relay nodes sharing one database agree through.
    """

    # -- nodes, leases and change notices ------------------------------------
    #
    # Several relay nodes may share one database (PostgreSQL).  Every node
    # heartbeats a row of its own, and every registered bot, enabled or not,
    # has one lease: the node that owns it, a fencing epoch and an expiry.
    # Expiries are on the database's clock (PostgreSQL's ``now()``), so the
    # nodes' clocks need not agree; the durations passed in are seconds.  A
    # node id names one run of one process: a restarted node takes a new id,
    # so it never renews leases that its previous run held.
    # :mod:`dccrelay.store.leases` says how often to call these, and when a
    # node that cannot renew must stop using its bots.

    def heartbeat_node(node_id, ttl):  # type: ignore[no-untyped-def]
        """
        Say that ``node_id`` is alive for ``ttl`` more seconds (the first
        call also records when it started).

        :return: Deferred firing with ``None``.
        """

    def live_nodes():  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with the ids of the nodes whose last
            heartbeat has not expired, sorted.
        """

    def forget_node(node_id):  # type: ignore[no-untyped-def]
        """
        Remove a node that is stopping cleanly, and release every lease it
        holds, so that others need not wait for them to expire.

        :return: Deferred firing with ``None``.
        """

    def claim_leases(node_id, ttl, limit):  # type: ignore[no-untyped-def]
        """
        Take up to ``limit`` bots that have no owner or whose lease has
        expired, for ``ttl`` seconds.  Each one taken gets a new epoch, a
        fencing token higher than every epoch the database gave out before,
        to any bot (so a bot deleted and registered again never repeats
        one): whatever a previous owner may still try carries a lower epoch.
        Concurrent claims by several nodes never take the same bot; a bot
        locked by another node's claim is skipped, not waited for.

        :return: Deferred firing with a list of ``(alias, epoch)``, sorted
            by alias.
        """

    def renew_leases(node_id, ttl):  # type: ignore[no-untyped-def]
        """
        Extend every unexpired lease that ``node_id`` holds to ``ttl``
        seconds from now.  An expired lease is not renewed, even if no other
        node took it yet: the node must claim it again (a new epoch).

        :return: Deferred firing with the aliases still held, sorted; a bot
            missing from it was lost (expired, or deleted) and must be
            stopped.
        """

    def release_leases(node_id, aliases):  # type: ignore[no-untyped-def]
        """
        Give up ``node_id``'s leases of ``aliases`` (after stopping those
        bots resumably), so that another node may claim them at once.
        Leases held by other nodes are left alone.

        :return: Deferred firing with the aliases released, sorted.
        """

    def lease_owners():  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with a dict mapping alias to the node that
            holds its unexpired lease; bots without one are absent.
        """

    def notify_change(alias):  # type: ignore[no-untyped-def]
        """
        Tell every node listening with :meth:`listen_changes` (this one
        included) that ``alias``'s registration changed.  Call it after the
        change's own call has succeeded.

        :return: Deferred firing with ``None`` once the notice is sent.
        """

    def listen_changes(callback):  # type: ignore[no-untyped-def]
        """
        Call ``callback(alias)`` on the reactor thread for every
        :meth:`notify_change` from any node, until the store closes.  Notices
        may be lost while the database is unreachable, so after listening
        again the store calls ``callback(None)``: anything may have changed,
        reload everything.

        :return: Deferred firing with ``None`` once listening: notices sent
            after that are heard.
        """

    # -- IDENTIFY slots ------------------------------------------------------
    #
    # Discord lets a bot token send one IDENTIFY per bucket (shard id modulo
    # max_concurrency) every 5 s, counted across every connection of the
    # token, so the nodes take turns through the store.  A slot is named by
    # an opaque ``key`` (a hash of the token: never the token itself) and
    # the bucket; its row is made the first time it is asked for.  Times
    # are the database's clock, as for leases; durations are seconds.

    def acquire_identify(key, bucket, node_id, hold):  # type: ignore[no-untyped-def]
        """
        Try to take the IDENTIFY slot ``(key, bucket)`` for ``node_id``, in
        one transaction.

        The slot is granted if no node holds it (a hold that has run out
        counts as none) and its ``next_free`` time (see
        :meth:`finish_identify`) has come: ``node_id`` then holds it until
        ``hold`` seconds from now, or until it calls :meth:`finish_identify`.
        A node that already holds the slot is not granted it again.
        Concurrent calls by several nodes grant it to one of them at most.

        :return: Deferred firing with ``0.0`` if the slot was granted, else
            with how many seconds to wait before trying again: until the
            hold runs out if the slot is held (the holder usually finishes
            sooner, so a caller may cap it), else until ``next_free``;
            never less than :data:`IDENTIFY_MIN_WAIT`.
        """

    def finish_identify(key, bucket, node_id, sent, window):  # type: ignore[no-untyped-def]
        """
        Give the slot ``(key, bucket)`` back after an IDENTIFY attempt, in
        one transaction.

        If ``node_id`` holds the slot (it was granted the slot last and has
        not finished since, even if its hold has run out meanwhile, as long
        as no other node was granted the slot after it), the hold is
        released and, if ``sent`` (the IDENTIFY may have reached Discord),
        the slot's ``next_free`` becomes ``window`` seconds from now.
        Otherwise nothing changes.  :meth:`forget_node` leaves slots alone:
        a hold of a node that stopped runs out by itself.

        :return: Deferred firing with ``None``.
        """

    # -- public status, shared by the nodes ----------------------------------
    #
    # Each node publishes the public status of the bots it runs, so that
    # any node can answer for every bot.  Statuses are public: they must
    # hold no secret.

    def publish_statuses(node_id, statuses):  # type: ignore[no-untyped-def]
        """
        Replace everything ``node_id`` published before with ``statuses``,
        stamped with the database's time, in one transaction.  An empty
        mapping withdraws all of the node's statuses.

        A node's statuses are read only while it heartbeats (see
        :meth:`load_statuses`): a node heartbeats before it publishes.
        Statuses of a node that has not heartbeated for a day may be
        dropped by any node's publish.

        :param statuses: a mapping of alias to a JSON-compatible dict,
            encoded before this returns (later changes to it are not seen).
        :return: Deferred firing with ``None``; failing with ``TypeError``
            or ``ValueError`` (and changing nothing) if a status is not
            JSON-compatible.
        """

    def update_statuses(node_id, changed, withdrawn):  # type: ignore[no-untyped-def]
        """
        Change part of what ``node_id`` published, in one transaction:
        ``changed`` (alias to status) replaces or adds those aliases'
        statuses, stamped with the database's time; the ``withdrawn``
        aliases' are removed; every other status of the node stays as it
        was published, with its time.  A node publishes what changed since
        its last publish this way, rather than every bot's status each round.

        :return: as :meth:`publish_statuses`.
        """

    def load_statuses():  # type: ignore[no-untyped-def]
        """
        The statuses of live nodes only: those whose heartbeat (see
        :meth:`heartbeat_node`) has not expired.  A node removed by
        :meth:`forget_node` has none.  If several live nodes published one
        alias (a bot changing hands), the one published last (on the
        database's clock) wins; on a tie, the lowest node id.

        Aliases are not checked against the registrations: a caller that
        shows statuses matches them with its own relays.

        :return: Deferred firing with a dict mapping alias to
            ``(node_id, status)``.
        """
