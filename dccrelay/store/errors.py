"""
Errors that any :class:`dccrelay.store.IRelayStore` may fail with.
"""

from __future__ import annotations


class SchemaTooNew(Exception):
    """
    The database was migrated by a newer dccrelay than this one, so this code
    cannot know what its schema means.
    """

    def __init__(self, description: str, found: int, known: int) -> None:
        super().__init__(
            f"{description} has schema version {found}, but this dccrelay "
            f"only knows versions up to {known}: a newer dccrelay has "
            f"upgraded it. Run that newer dccrelay, or point this one at "
            f"another database."
        )
        self.found = found
        self.known = known


class StoreClosed(Exception):
    """
    The store was used after :meth:`dccrelay.store.IRelayStore.close`.
    """

    def __init__(self, description: str) -> None:
        super().__init__(f"{description} is closed")


class StoreUnreachable(Exception):
    """
    The database server could not be reached, or refused the connection.
    """

    def __init__(self, description: str, reason: str) -> None:
        super().__init__(
            f"Could not connect to {description}: {reason}. Check the store URL's "
            f"host, port, database, user and password, and that the server "
            f"accepts connections from this machine."
        )
        self.reason = reason


class StoreBusy(Exception):
    """
    The database is there but cannot serve this call now, and may later:
    another process holds a lock on it, or the server is still starting
    (or recovering).  Trying again later may succeed.
    """

    def __init__(self, description: str, reason: str) -> None:
        super().__init__(f"{description} is busy: {reason}")
        self.reason = reason


class StoreDamaged(Exception):
    """
    The database's file is damaged, or is not a database at all.
    """

    def __init__(self, description: str, reason: str) -> None:
        super().__init__(
            f"{description} is damaged or not a database ({reason}): restore it from a "
            f"backup, or move it away to start with an empty store"
        )
        self.reason = reason
