"""
The PostgreSQL store's schema, and the migration that every node runs when
it opens the store.

Nodes that start together all try to migrate; a transaction-level advisory
lock lets one of them at a time in, and each reads the version again once
inside, so the schema is changed once and the others find it done.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from .errors import SchemaTooNew

#: Step ``n`` takes the schema from version ``n`` to ``n + 1``.  Append
#: steps; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # COLLATE "C" everywhere an alias is: code point order (what
        # load_relays promises) and the same on every server, whatever the
        # database's default collation.  Times the relay passes in are
        # seconds since the epoch (double precision), as in the SQLite store;
        # lease times are the database's own (timestamptz).
        """
        CREATE TABLE relays (
            alias text COLLATE "C" PRIMARY KEY,
            settings text NOT NULL,  -- JSON, as RelaySettings.to_json
            enabled boolean NOT NULL,
            disable_reason text,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL
        )
        """,
        """
        CREATE TABLE sessions (
            alias text COLLATE "C" NOT NULL REFERENCES relays (alias) ON DELETE CASCADE,
            shard_id integer NOT NULL,
            shard_count integer NOT NULL,
            session_id text NOT NULL,
            seq bigint,
            resume_url text NOT NULL,
            PRIMARY KEY (alias, shard_id)
        )
        """,
        # An identity never hands out an id twice, even after every row is
        # gone.  No foreign key to relays: one append carries many bots, and
        # one deleted meanwhile must not fail the others' (the append skips
        # it instead).
        """
        CREATE TABLE outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            alias text COLLATE "C" NOT NULL,
            payload bytea NOT NULL,  -- the gateway payload's bytes, verbatim
            created_at double precision NOT NULL
        )
        """,
        "CREATE INDEX outbox_by_alias ON outbox (alias, id)",
        """
        CREATE TABLE nodes (
            node_id text COLLATE "C" PRIMARY KEY,
            started_at timestamptz NOT NULL,
            last_seen timestamptz NOT NULL,
            expires_at timestamptz NOT NULL
        )
        """,
        # One row per registered bot, made with it.  owner has no foreign
        # key: a node's row may be gone while its leases run out.
        """
        CREATE TABLE leases (
            alias text COLLATE "C" PRIMARY KEY REFERENCES relays (alias) ON DELETE CASCADE,
            owner text COLLATE "C",  -- a node_id; NULL when nobody holds it
            epoch bigint NOT NULL DEFAULT 0,  -- fencing token; 0 until first claimed
            expires_at timestamptz
        )
        """,
        "CREATE INDEX leases_by_owner ON leases (owner)",
        # Every claim's epoch, for any bot: never repeated, even for a bot
        # deleted and registered again.
        "CREATE SEQUENCE lease_epochs AS bigint",
    ),
    (
        # One row per IDENTIFY slot (a hash of a bot token, and a bucket),
        # made the first time a node asks for it; times are the database's.
        # next_free is NULL until an IDENTIFY was sent.
        """
        CREATE TABLE identify_slots (
            key text COLLATE "C" NOT NULL,
            bucket integer NOT NULL,
            holder text COLLATE "C",  -- a node_id; NULL when nobody holds it
            held_until timestamptz,
            next_free timestamptz,
            PRIMARY KEY (key, bucket)
        )
        """,
        # What each node published of its bots' public status.  No foreign
        # key to nodes: a node may publish before its row is made, and
        # forget_node drops the statuses itself.
        """
        CREATE TABLE statuses (
            node_id text COLLATE "C" NOT NULL,
            alias text COLLATE "C" NOT NULL,
            status text NOT NULL,  -- JSON (text: jsonb refuses \\u0000)
            published_at timestamptz NOT NULL,
            PRIMARY KEY (node_id, alias)
        )
        """,
    ),
    (
        # Each bot's guild snapshot (guildSnapshot) as named parts ('user',
        # and 'guild:' and an id per guild), so that a change rewrites one
        # row, not the whole snapshot.  Gone with the bot's registration.
        """
        CREATE TABLE guild_snapshots (
            alias text COLLATE "C" NOT NULL REFERENCES relays (alias) ON DELETE CASCADE,
            part text COLLATE "C" NOT NULL,
            document bytea NOT NULL,  -- JSON, or sealed (dccrelay.store.sealed)
            PRIMARY KEY (alias, part)
        )
        """,
    ),
)

#: The advisory lock that migrations hold; any 64-bit number that other
#: applications on the same database are unlikely to pick ("dccrelay").
MIGRATION_LOCK = int.from_bytes(b"dccrelay", "big")

# One row: the schema's version.  The CHECK keeps it one row.
_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS dccrelay_schema (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    version integer NOT NULL
)
"""


def migrate(connection: psycopg.Connection[TupleRow], description: str) -> tuple[int, int]:
    """
    Bring the schema up to date, in one transaction.

    :param connection: in autocommit mode, not in a transaction.
    :return: the versions before and after.
    :raises SchemaTooNew: if a newer dccrelay migrated the database; then
        nothing is changed.
    """
    known = len(MIGRATIONS)
    with connection.transaction():
        # Held until this transaction ends, even if the connection drops.
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        connection.execute(_VERSION_TABLE)
        row = connection.execute("SELECT version FROM dccrelay_schema").fetchone()
        before = version = 0 if row is None else int(row[0])
        if version > known:
            # Raising rolls the transaction back: the database stays as it was.
            raise SchemaTooNew(description, version, known)
        for step in MIGRATIONS[version:]:
            for statement in step:
                connection.execute(statement)
            version += 1
        if row is None:
            connection.execute("INSERT INTO dccrelay_schema (version) VALUES (%s)", (version,))
        elif version != before:
            connection.execute("UPDATE dccrelay_schema SET version = %s", (version,))
    return before, version
