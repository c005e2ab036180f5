"""
Bots' tokens, secrets and guild snapshots encrypted at rest, for any store.

:class:`SealedSecretsStore` wraps an :class:`~dccrelay.store.IRelayStore`
(SQLite, PostgreSQL, the in-memory one) and encrypts the ``token`` and
``client_secret`` of each registration's settings, and each part of a
bot's guild snapshot (its guilds' names, channels and roles), with Fernet
(``cryptography``) before they reach the store, decrypting them as they
come back.  Everything else passes through unchanged.

An encrypted field is stored as ``{"fernet": "<Fernet token>"}`` instead of
the string, and an encrypted snapshot part as ``fernet:`` and the token
(a plain part is JSON, which begins with ``{``), so a plain value and an
encrypted one can never be mistaken for each other.

Keys rotate: the first key encrypts, every key decrypts.  When the relays
are loaded, a value that is still plain, or that an older key encrypted,
is encrypted again with the first key and written back, so that once a
relay has started with a new key first, the old keys may be removed; a
bot's snapshot parts likewise when the bot's snapshot is loaded.  A
snapshot part no key decrypts is left out, with a warning: the gateway's
guild events fill it again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from zope.interface import implementer

from . import GuildSnapshotUpdate, IRelayStore, StoredRelay

#: the settings fields (of :meth:`RelaySettings.to_json`) that are sealed
SEALED_FIELDS = ("token", "client_secret")

_SEALED = "fernet"

#: how a sealed guild snapshot part begins
SEALED_PART = b"fernet:"


class SealedSecretsError(Exception):
    """
    The stored secrets cannot be read with the keys given.
    """


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {_SEALED} and isinstance(value[_SEALED], str)


@implementer(IRelayStore)
class SealedSecretsStore:
    """
    ``store``, with tokens and secrets encrypted by ``keys``.

    :param store: the store that keeps the data.
    :param keys: Fernet keys, the one to encrypt with first; empty for no
        encryption (values are stored plain, and encrypted ones found in
        the store are an error that says which option is missing).
    """

    log = Logger()

    def __init__(self, store: Any, keys: Sequence[Fernet] = ()) -> None:
        self._store = store
        self._keys = list(keys)
        self._all = MultiFernet(self._keys) if self._keys else None
        self.description = store.description

    def __getattr__(self, name: str) -> Any:
        # Sessions, the outbox, open/close and whatever a store offers
        # besides: nothing secret there.
        return getattr(self._store, name)

    # -- sealing ----------------------------------------------------------

    def seal(self, settings: dict[str, Any]) -> dict[str, Any]:
        """
        ``settings`` with its secret fields encrypted (if there are keys).
        """
        if not self._keys:
            return settings
        sealed = dict(settings)
        for name in SEALED_FIELDS:
            value = sealed.get(name)
            if isinstance(value, str):
                token = self._keys[0].encrypt(value.encode("utf-8"))
                sealed[name] = {_SEALED: token.decode("ascii")}
        return sealed

    def _open(self, alias: str, settings: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """
        :return: the plain settings, and whether the stored form should be
            encrypted again (plain, or encrypted with an older key).
        """
        opened = dict(settings)
        stale = False
        for name in SEALED_FIELDS:
            value = opened.get(name)
            if isinstance(value, str):
                stale = stale or bool(self._keys)
                continue
            if not isinstance(value, dict) or not _is_sealed(value):
                continue
            if self._all is None:
                raise SealedSecretsError(
                    f"{alias}: its {name} is encrypted in {self.description}, but no "
                    "--encryption-key-file was given; start the relay with the key file "
                    "it was encrypted with"
                )
            token = value[_SEALED].encode("ascii")
            try:
                plain = self._all.decrypt(token)
            except InvalidToken:
                raise SealedSecretsError(
                    f"{alias}: none of the keys in --encryption-key-file decrypts its "
                    f"{name}; add the key it was encrypted with (below the new one)"
                )
            try:
                self._keys[0].decrypt(token)
            except InvalidToken:
                stale = True
            opened[name] = plain.decode("utf-8")
        return opened, stale

    # -- IRelayStore, where secrets pass --------------------------------------

    def save_relay(self, alias: str, settings: dict[str, Any]) -> Deferred[None]:
        result: Deferred[None] = self._store.save_relay(alias, self.seal(settings))
        return result

    @inlineCallbacks
    def load_relays(self) -> Any:
        """
        The stored relays with their secrets decrypted; those stored plain
        or under an older key are encrypted with the first key and written
        back first.
        """
        stored: list[StoredRelay] = yield self._store.load_relays()
        opened: list[StoredRelay] = []
        resealed = 0
        for record in stored:
            settings, stale = self._open(record.alias, record.settings)
            if stale:
                yield self._rewrite(record)
                resealed += 1
            opened.append(
                StoredRelay(record.alias, settings, record.enabled, record.disable_reason)
            )
        if resealed:
            self.log.info(
                "Encrypted the token and secret of {count} relays with the first key "
                "of --encryption-key-file",
                count=resealed,
            )
        return opened

    @inlineCallbacks
    def _rewrite(self, record: StoredRelay) -> Any:
        settings, _ = self._open(record.alias, record.settings)
        yield self._store.save_relay(record.alias, self.seal(settings))
        if not record.enabled:
            # save_relay enables; put the relay back as it was.
            yield self._store.disable_relay(record.alias, record.disable_reason or "")

    # -- guild snapshots: each part sealed whole ------------------------------

    def save_guild_snapshots(self, updates: Iterable[GuildSnapshotUpdate]) -> Deferred[None]:
        result: Deferred[None] = self._store.save_guild_snapshots(self.seal_parts(updates))
        return result

    def seal_parts(self, updates: Iterable[GuildSnapshotUpdate]) -> list[GuildSnapshotUpdate]:
        """
        ``updates`` with each part's document encrypted (if there are keys).
        """
        if not self._keys:
            return list(updates)
        return [
            replace(update, parts=tuple((name, self._seal_part(document))
                                        for name, document in update.parts))
            if isinstance(update, GuildSnapshotUpdate) else update
            for update in updates
        ]

    def _seal_part(self, document: bytes) -> bytes:
        if not isinstance(document, bytes):
            return document  # the store refuses it, saying why
        return SEALED_PART + self._keys[0].encrypt(document)

    @inlineCallbacks
    def load_guild_snapshot(self, alias: str) -> Any:
        """
        The bot's snapshot parts decrypted; those stored plain or under an
        older key are encrypted with the first key and written back first,
        and those no key decrypts are left out (and removed).
        """
        stored: dict[str, bytes] = yield self._store.load_guild_snapshot(alias)
        opened: dict[str, bytes] = {}
        stale: list[tuple[str, bytes]] = []
        unreadable: list[str] = []
        for name, document in stored.items():
            if not document.startswith(SEALED_PART):
                opened[name] = document
                if self._keys:
                    stale.append((name, self._seal_part(document)))
                continue
            token = document[len(SEALED_PART):]
            # The first key first: the usual case decrypts once.
            try:
                if not self._keys:
                    raise InvalidToken()
                opened[name] = self._keys[0].decrypt(token)
                continue
            except InvalidToken:
                pass
            try:
                if self._all is None:
                    raise InvalidToken()
                opened[name] = self._all.decrypt(token)
            except InvalidToken:
                unreadable.append(name)
                continue
            stale.append((name, self._seal_part(opened[name])))
        if unreadable:
            self.log.warn(
                "{alias}: {count} parts of its guild snapshot in {store} could not be "
                "decrypted (no key of --encryption-key-file fits); left out, the "
                "gateway's guild events fill them again",
                alias=alias, count=len(unreadable), store=self.description,
            )
        if stale or unreadable:
            yield self._store.save_guild_snapshots(
                [GuildSnapshotUpdate(alias, tuple(stale), dropped=tuple(unreadable))]
            )
        return opened
