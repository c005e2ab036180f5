"""
Where registrations, gateway session state and the delivery outbox live.

Every method returns a Deferred; implementations run their blocking database
calls off the reactor thread.  :class:`IRelayStore` is the contract that the
SQLite store (the embedded default) and later stores implement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zope.interface import Attribute, Interface


@dataclass(frozen=True, slots=True)
class StoredRelay:
    """
    One registration as the store keeps it.

    :ivar settings: the registration's settings as a JSON-compatible dict, in
        the form of :meth:`dccrelay.settings.RelaySettings.to_json`.
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
    """

    id: int
    payload: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class OutboxCheckpoint:
    """
    A shard's gateway seq to remember together with the dispatches appended
    in the same call: once a dispatch is durably in the outbox, Discord need
    not replay it after a restart.

    The stored session's seq is raised to ``seq`` only if the stored session
    is the same one (``session_id``) and its seq is lower.
    """

    alias: str
    shard_id: int
    session_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Trimmed:
    """
    What :meth:`IRelayStore.outbox_trim` dropped.

    :ivar dropped: how many entries.
    :ivar up_to: the id of the newest entry dropped (every entry of the bot
        with an id up to it is gone), or 0 if nothing was dropped.
    """

    dropped: int
    up_to: int


class IRelayStore(Interface):
    """
    Durable storage for registrations and gateway sessions.
    """

    description = Attribute("A short human description, e.g. 'SQLite at /path'.")

    def open():  # type: ignore[no-untyped-def]
        """
        Create or migrate the schema and get ready for use.

        :return: Deferred that fires with ``None``.
        """

    def close():  # type: ignore[no-untyped-def]
        """
        Finish pending writes and release the database.

        :return: Deferred that fires with ``None``.
        """

    def load_relays():  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with a list of :class:`StoredRelay`, sorted by
            alias.
        """

    def save_relay(alias, settings):  # type: ignore[no-untyped-def]
        """
        Insert or replace a registration's settings, and mark it enabled
        (``disable_reason`` is kept).

        :param settings: JSON-compatible dict.
        :return: Deferred firing with ``None``.
        """

    def delete_relay(alias):  # type: ignore[no-untyped-def]
        """
        Forget a registration, its sessions and its outbox.

        :return: Deferred firing with ``True`` if it existed.
        """

    def disable_relay(alias, reason):  # type: ignore[no-untyped-def]
        """
        Mark a registration disabled, remember why, and forget its sessions
        (a disabled bot identifies afresh when re-enabled).  Its outbox is
        kept.

        :return: Deferred firing with ``None``.
        """

    def load_sessions(alias):  # type: ignore[no-untyped-def]
        """
        :return: Deferred firing with a dict mapping shard id to
            :class:`SessionState`.
        """

    def save_session(alias, state):  # type: ignore[no-untyped-def]
        """
        Remember (insert or replace) one shard's session state.

        :param state: :class:`SessionState`.
        :return: Deferred firing with ``None``.
        """

    def forget_session(alias, shard_id):  # type: ignore[no-untyped-def]
        """
        Drop one shard's session (after an invalid session or a fatal close).

        :return: Deferred firing with ``None``.
        """

    # -- the outbox ---------------------------------------------------------
    #
    # Durable delivery (websocket v2, webhooks) keeps each bot's matched
    # dispatches here until the bot acknowledges them.  Callers batch: one
    # call carries the appends (or acks) of every bot for a moment.

    def outbox_append(entries, now, checkpoints=()):  # type: ignore[no-untyped-def]
        """
        Append dispatches, for any number of bots, in one transaction.

        An entry for an alias that is not registered (deleted meanwhile) is
        not stored: a later registration of the same alias must never get
        another bot's dispatches.

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

    def outbox_ack(acks):  # type: ignore[no-untyped-def]
        """
        Remove acknowledged entries, for any number of bots, in one
        transaction.

        :param acks: a mapping of alias to an id: every entry of that alias
            with an id up to it is removed.
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
