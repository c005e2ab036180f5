"""
One registered bot as the rest of a node sees it, wherever it runs.

A node runs some bots itself (:class:`dccrelay.relay.relay.Relay`) and, when it
shares a store with other nodes, only knows about the others
(:class:`dccrelay.relay.remote.RemoteRelay`).  Both provide
:class:`IRelayHandle`, so the manager, the web API, the status page and the
metrics treat them alike and never ask which one they hold.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IRelayHandle(Interface):
    """
    A registered bot.  Every method that changes it returns a Deferred that
    fires once the change is made (at once for a bot run elsewhere, whose
    node makes the change itself).
    """

    alias = Attribute("The bot's alias.")
    settings = Attribute("Its registration's settings, a RelaySettings.")
    enabled = Attribute("Whether it should hold a gateway session.")
    disable_reason = Attribute("Why it was last disabled (kept after re-enabling), or None.")
    shards = Attribute("The gateway shards this node runs for it (none if elsewhere).")

    def start(stored=None):  # type: ignore[no-untyped-def]
        """
        Begin what this node runs of the bot (nothing, if it runs
        elsewhere).

        :param stored: its stored sessions, if the caller loaded them.
        """

    def stop():  # type: ignore[no-untyped-def]
        """
        Stop what this node runs of the bot, keeping its Discord sessions
        resumable (by this node later, or another).
        """

    def forget():  # type: ignore[no-untyped-def]
        """
        Stop for good: the bot was deleted.
        """

    def apply(settings):  # type: ignore[no-untyped-def]
        """
        Take new settings, and be enabled.
        """

    def disable(reason):  # type: ignore[no-untyped-def]
        """
        Be disabled for ``reason`` until registered again.
        """

    def follow(record):  # type: ignore[no-untyped-def]
        """
        Catch up with the registration as stored (a
        :class:`~dccrelay.store.StoredRelay`), changed through another node.
        """

    def send_command(body):  # type: ignore[no-untyped-def]
        """
        Forward a gateway command from the bot.

        :return: what :meth:`dccrelay.relay.relay.Relay.send_command` returns.
        :raise dccrelay.gateway.commands.CommandError: if it cannot be sent (409 for
            a bot whose gateway session another node holds).
        """

    def claim_interaction(body):  # type: ignore[no-untyped-def]
        """
        The bot claims an interaction it has (``POST /relays/{alias}/claim``).

        :return: what :meth:`dccrelay.relay.relay.Relay.claim_interaction` returns.
        :raise dccrelay.gateway.commands.CommandError: 400 for another body, 409 for
            a bot whose gateway session another node holds.
        """

    def guild_snapshot():  # type: ignore[no-untyped-def]
        """
        The bot's user and guilds for ``GET /relays/{alias}/snapshot``.

        :return: Deferred firing with them, or None when it keeps none;
            failing with :class:`dccrelay.gateway.commands.CommandError`
            (409) for a bot whose gateway session another node holds.
        """

    def snapshot(private=False):  # type: ignore[no-untyped-def]
        """
        The bot now, as a :class:`~dccrelay.relay.snapshots.RelaySnapshot`; with
        ``private``, what only its owner may see too (settings).
        """
