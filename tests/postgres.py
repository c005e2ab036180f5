"""
A real PostgreSQL server for the tests, and an empty database for each test.

Where the server comes from, in this order:

1. ``DCC_TEST_POSTGRES_URL``: a server you run, e.g.
   ``postgresql://postgres@127.0.0.1:5432/postgres``; its user must be
   allowed to create databases.  If it cannot be reached, the tests fail.
2. A throw-away cluster that this module starts on first use: ``initdb``
   and ``pg_ctl`` from ``PATH`` or from Debian's packages, in a temporary
   directory, as the ``postgres`` user when the tests run as root
   (PostgreSQL refuses to run as root), listening on 127.0.0.1 only, on a
   free port, trusting every local connection.  It is stopped and deleted
   when the test process exits.
3. No PostgreSQL at all: the tests are skipped, saying how to install it,
   unless ``DCC_REQUIRE_POSTGRES`` is set (``.ci/run`` sets it), when they
   fail instead.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from twisted.trial.unittest import SkipTest, TestCase

URL_VARIABLE = "DCC_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "DCC_REQUIRE_POSTGRES"

INSTALL_HINT = (
    "PostgreSQL is not installed, so the PostgreSQL store's tests cannot run: "
    "install it (Debian/Ubuntu: apt-get install postgresql) or set "
    f"{URL_VARIABLE} to a server whose user may create databases"
)

# Debian and Ubuntu put initdb and pg_ctl here, not on PATH.
_DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"

_server_url: str | None = None
_server_error: str | None = None
_database: str | None = None


class PostgresUnavailable(Exception):
    """
    A PostgreSQL server was asked for and could not be had.
    """


def find_binaries() -> str | None:
    """
    :return: the directory with ``initdb`` and ``pg_ctl`` (the newest
        version's, if several are installed), or ``None``.
    """
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return os.path.dirname(os.path.realpath(initdb))

    def version(directory: str) -> tuple[int, ...]:
        name = os.path.basename(os.path.dirname(directory))
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    found = [
        directory
        for directory in glob.glob(_DEBIAN_BINARIES)
        if os.path.exists(os.path.join(directory, "initdb"))
        and os.path.exists(os.path.join(directory, "pg_ctl"))
    ]
    return max(found, key=version) if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ThrowawayCluster:
    """
    A PostgreSQL cluster in a temporary directory, for one test run.
    """

    def __init__(self, binaries: str) -> None:
        self.binaries = binaries
        self.as_postgres = os.geteuid() == 0
        self.directory = tempfile.mkdtemp(prefix="dccrelay-postgres-")
        self.data = os.path.join(self.directory, "data")
        self.log = os.path.join(self.directory, "server.log")
        self.port = 0
        self._options = ""

    def _run(self, *command: str) -> None:
        program = os.path.join(self.binaries, command[0])
        argv = [program, *command[1:]]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(
            argv,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{command[0]} failed ({done.returncode}): {done.stdout}{done.stderr}"
                f"{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            with open(self.log) as log:
                return "\nserver log:\n" + log.read()[-2000:]
        except OSError:
            return ""

    def start(self, standby: bool = False) -> str:
        """
        Create and start the cluster.

        :param standby: start it as a standby that accepts no connections
            (``hot_standby`` off): every connection is refused with SQLSTATE
            57P03, as while a server starts or recovers, until
            :meth:`promote`.
        :return: a URL of its ``postgres`` database, as superuser.
        """
        if self.as_postgres:
            try:
                shutil.chown(self.directory, "postgres", "postgres")
            except LookupError:
                raise PostgresUnavailable(
                    "the tests run as root, PostgreSQL refuses to, and there is "
                    "no postgres user to run it as (Debian's postgresql package "
                    "creates one)"
                ) from None
        self._run(
            "initdb",
            "--pgdata", self.data,
            "--username", "postgres",
            "--auth", "trust",
            "--encoding", "UTF8",
            "--no-locale",
            "--no-sync",
        )
        # A port that was free a moment ago may be taken by now: try again.
        for attempt in range(3):
            self.port = _free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    f"-c unix_socket_directories={self.directory}",
                    # Nothing here needs to survive a crash.
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                    *(["-c hot_standby=off"] if standby else []),
                ]
            )
            if standby:
                # Standby mode with nowhere to replicate from: it waits.
                open(os.path.join(self.data, "standby.signal"), "w").close()
            self._options = options
            try:
                self.resume()
            except PostgresUnavailable:
                if attempt == 2:
                    raise
            else:
                break
        atexit.register(self.stop)
        return self.url

    @property
    def url(self) -> str:
        """A URL of its ``postgres`` database, as superuser."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def promote(self) -> None:
        """
        End a standby's recovery: it accepts connections from now on.
        """
        self._run("pg_ctl", "promote", "--pgdata", self.data, "--wait", "--timeout", "60")

    def pause(self) -> None:
        """
        Stop the server (fast: open connections are cut), keeping its
        data, for tests of what clients do while it is down.  Blocks.
        """
        self._run("pg_ctl", "stop", "--pgdata", self.data, "--mode", "fast", "--wait")

    def resume(self) -> None:
        """
        Start the server (again), on the same port and data.  Blocks.
        """
        self._run(
            "pg_ctl", "start", "--pgdata", self.data, "--log", self.log,
            "--wait", "--timeout", "60", "-o", self._options,
        )

    def stop(self) -> None:
        """
        Stop the server at once and delete the cluster (once: later calls
        do nothing).
        """
        if not os.path.isdir(self.directory):
            return  # stopped already (a test's cleanup, then atexit)
        try:
            self._run("pg_ctl", "stop", "--pgdata", self.data, "--mode", "immediate", "--wait")
        except PostgresUnavailable:
            pass  # Already gone: nothing to stop.
        shutil.rmtree(self.directory, ignore_errors=True)


def server_url() -> str:
    """
    :return: a URL of a reachable server, as a user that may create
        databases.
    :raises SkipTest: if there is no PostgreSQL and none is required.
    :raises PostgresUnavailable: if there is one but it does not work.
    """
    global _server_url, _server_error
    if _server_url is not None:
        return _server_url
    if _server_error is not None:
        raise PostgresUnavailable(_server_error)
    given = os.environ.get(URL_VARIABLE)
    try:
        if given:
            try:
                psycopg.connect(given, connect_timeout=10).close()
            except psycopg.Error as e:
                raise PostgresUnavailable(f"{URL_VARIABLE} is set, but: {e}") from None
            _server_url = given
            return given
        binaries = find_binaries()
        if binaries is None:
            if os.environ.get(REQUIRE_VARIABLE):
                raise PostgresUnavailable(f"{REQUIRE_VARIABLE} is set, but {INSTALL_HINT}")
            raise SkipTest(INSTALL_HINT)
        _server_url = ThrowawayCluster(binaries).start()
        return _server_url
    except PostgresUnavailable as e:
        # Every later test fails the same way, without trying again.
        _server_error = str(e)
        raise


def _own_cluster() -> ThrowawayCluster:
    binaries = find_binaries()
    if binaries is None:
        if os.environ.get(REQUIRE_VARIABLE):
            raise PostgresUnavailable(f"{REQUIRE_VARIABLE} is set, but {INSTALL_HINT}")
        raise SkipTest(INSTALL_HINT)
    return ThrowawayCluster(binaries)


def standby_cluster() -> ThrowawayCluster:
    """
    A throw-away cluster of its own, started as a standby that refuses
    connections until promoted (see :meth:`ThrowawayCluster.start`); it is
    stopped when the test process exits.

    :raises SkipTest: if PostgreSQL is not installed and not required.
    :raises PostgresUnavailable: if it is required and missing, or fails.
    """
    cluster = _own_cluster()
    cluster.start(standby=True)
    return cluster


def private_server(case: TestCase) -> ThrowawayCluster:
    """
    A throw-away PostgreSQL server of ``case``'s own, which the test may
    stop and start (:meth:`ThrowawayCluster.pause`, :meth:`~ThrowawayCluster.resume`)
    without disturbing other tests; deleted when ``case`` ends.  Needs
    PostgreSQL's binaries even when ``DCC_TEST_POSTGRES_URL`` is set (a
    server you run cannot be stopped by the tests).

    :raises SkipTest: without binaries, unless ``DCC_REQUIRE_POSTGRES`` is
        set (then :class:`PostgresUnavailable`).
    """
    cluster = _own_cluster()
    cluster.start()
    case.addCleanup(cluster.stop)
    return cluster


def with_database(url: str, name: str) -> str:
    """
    :return: ``url`` (of the server) naming database ``name`` instead.
    """
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def fresh_database(case: TestCase) -> str:
    """
    Empty this process's test database for ``case`` (creating it the first
    time): its schema dropped and made again, and whatever connections an
    earlier test left cut.  Much quicker than a new database per test.

    :return: its URL.
    """
    global _database
    server = server_url()
    if _database is None:
        name = f"dcc_test_{os.getpid()}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        _database = name
        atexit.register(_drop_database, server, name)
    url = with_database(server, _database)
    with psycopg.connect(url, autocommit=True) as database:
        database.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        database.execute("DROP SCHEMA IF EXISTS public CASCADE")
        database.execute("CREATE SCHEMA public")
    return url


def _drop_database(server: str, name: str) -> None:
    # A server of the developer's own should not keep our databases.
    try:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error:
        pass  # The server went first; nothing is left to drop.
