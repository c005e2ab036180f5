"""
Where registrations and gateway session state live.

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
        Forget a registration and its sessions.

        :return: Deferred firing with ``True`` if it existed.
        """

    def disable_relay(alias, reason):  # type: ignore[no-untyped-def]
        """
        Mark a registration disabled, remember why, and forget its sessions
        (a disabled bot identifies afresh when re-enabled).

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
