"""
One data directory, one relay: the relay holds an exclusive lock on
``--data-dir`` while it runs.

Two relays on one SQLite store would both run its bots, take each Discord
session from the other every few seconds, and deliver every dispatch twice.
The lock is ``flock`` on ``dcc.lock`` in the directory: the kernel releases
it when the process ends, however it ends (SIGKILL, a crash), so a stale
lock file never keeps a relay from starting.  ``flock`` rather than
``fcntl``/``lockf`` record locks: those belong to the process and are lost
when *any* descriptor of the file is closed, while a ``flock`` belongs to
the open file itself.
"""

from __future__ import annotations

import errno
import fcntl
import os

from twisted.logger import Logger

from dccrelay.store.sqlite import private_directory

#: the lock file, in the data directory
LOCK_FILE = "dcc.lock"


class DataDirInUse(Exception):
    """
    Another process holds the data directory's lock.
    """

    def __init__(self, directory: str, holder: str) -> None:
        who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"--data-dir {directory} is in use by another relay ({who} holds "
            f"{os.path.join(directory, LOCK_FILE)}); one data directory serves one relay: "
            "stop that relay, or give this one another --data-dir"
        )


class CannotLockDataDir(SystemExit):
    """
    The relay cannot have its data directory; twistd exits with status 1
    and no traceback (a :class:`SystemExit`), after the reason was logged.
    """


def lock_data_dir(directory: str) -> int:
    """
    Take the data directory's lock, making the directory if needed.

    :return: the lock file's descriptor: the lock lasts while it is open.
    :raises DataDirInUse: if another process (or another open of it in
        this one) holds it.
    """
    private_directory(directory)
    path = os.path.join(directory, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise DataDirInUse(directory, holder) from None
        raise
    # Who holds it, for the message the next relay gives.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


class DataDirLock:
    """
    The lock of one data directory, held from :meth:`acquire` to
    :meth:`release` (or until the process ends).
    """

    _log = Logger()

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._fd: int | None = None

    def acquire(self) -> None:
        """
        Take the lock, or stop start-up with one line saying why.

        :raises CannotLockDataDir: if another relay holds it, or the
            directory or file cannot be made.
        """
        try:
            self._fd = lock_data_dir(self.directory)
        except (DataDirInUse, OSError) as e:
            self._log.critical("cannot start: {why}", why=str(e))
            raise CannotLockDataDir(1) from None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock now."""
        return self._fd is not None

    def release(self) -> None:
        """
        Let another relay have the directory.
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
