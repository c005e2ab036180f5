"""
How ``twistd dcc`` writes its log: one line per event, as text or as JSON.

twistd takes an application's log observer if the application offers one
(the ``ILogObserver`` component a ``.tac`` file would set); the relay's root
service offers one when twistd adds it to its application.  It writes where
twistd would (``--logfile``, else stdout with ``--nodaemon``, else
``twistd.log``) in the format of ``--log-format``:

``text``
    ``<time> [<namespace>#<level>] <message>``; a traceback and any line
    break or control character inside the message are escaped (``\\n``), so
    that every event is exactly one line, and what a remote party put in a
    close reason or status line cannot forge a line of its own;
``json``
    :func:`twisted.logger.eventAsJSON` of the event, one object per line
    (readable with :func:`twisted.logger.eventsFromJSONLogFile`), with the
    formatted message added as ``log_text`` and any traceback as
    ``log_traceback``: what journald and log shippers want.

When logging to a file, SIGHUP reopens it (for logrotate and the like;
twistd itself has no SIGHUP handler, and SIGHUP's default action would end
the relay) and SIGUSR1 rotates it as twistd's own ``--logfile`` does.  The
file is not rotated by size behind the operator's back.

With twistd's ``--syslog`` or ``--logger`` the relay leaves logging to
twistd.
"""

from __future__ import annotations

import signal
import sys
from typing import IO, Any, Callable, Mapping

from twisted.application.service import MultiService
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    Logger,
    LogLevel,
    PredicateResult,
    eventAsJSON,
    eventAsText,
    formatEvent,
)
from twisted.python.components import Componentized
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile
from zope.interface import implementer

FORMATS = ("text", "json")

# Every C0 control character but tab, and DEL, escaped: one event, one line.
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if c != 0x09}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r"})


def log_format(value: str) -> str:
    """
    The coerce function of ``--log-format``.
    """
    if value not in FORMATS:
        raise ValueError(f"--log-format must be text or json, got {value!r}")
    return value


log_format.coerceDoc = "text or json."  # type: ignore[attr-defined]


def format_text(event: dict[str, Any]) -> str | None:
    """
    One event as one line of text (with its newline), or None if it has no
    text.
    """
    text = eventAsText(event, includeTraceback=True, includeTimestamp=True, includeSystem=True)
    if not text:
        return None
    return text.translate(_ESCAPES) + "\n"


def format_json(event: dict[str, Any]) -> str:
    """
    One event as one line of JSON (with its newline).
    """
    event = dict(event)
    event["log_text"] = formatEvent(event)
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        try:
            event["log_traceback"] = failure.getTraceback()
        except Exception:
            event["log_traceback"] = "(the traceback could not be formatted)"
    return eventAsJSON(event) + "\n"


FORMATTERS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "text": format_text,
    "json": format_json,
}


# Twisted logs "Starting factory" and "Stopping factory" at info level for
# every HTTP connection the relay opens (``GET /gateway/bot`` for each bot,
# webhooks, wake requests): thousands of lines at start-up that tell an
# operator nothing.
_CONNECTION_CHATTER = frozenset({"twisted.web.client._HTTP11ClientFactory"})


@implementer(ILogFilterPredicate)
class _NoConnectionChatter:
    def __call__(self, event: dict[str, Any]) -> PredicateResult:
        if event.get("log_namespace") in _CONNECTION_CHATTER and event.get("log_level") in (
            LogLevel.debug,
            LogLevel.info,
        ):
            return PredicateResult.no
        return PredicateResult.maybe


def observer(out: IO[Any], fmt: str) -> ILogObserver:
    """
    A log observer writing each event as one line of ``fmt`` to ``out``.
    """
    return FilteringLogObserver(FileLogObserver(out, FORMATTERS[fmt]), [_NoConnectionChatter()])


class ReopenableLog:
    """
    A log file that an operator's signal reopens (SIGHUP) or rotates
    (SIGUSR1).  The work is done on the reactor thread, between writes.
    """

    _log = Logger()

    def __init__(self, path: str, reactor: Any) -> None:
        self.file = LogFile.fromFullPath(path, rotateLength=None)
        self._reactor = reactor

    def reopen(self) -> None:
        """
        Close the file and open it again by name: after logrotate moved it,
        a new file.
        """
        self.file.reopen()
        self._log.info("reopened the log file {path}", path=self.file.path)

    def rotate(self) -> None:
        """
        Move the file to ``<name>.1`` (older ones up by one) and start a new one.
        """
        self.file.rotate()
        self._log.info("rotated the log file {path}", path=self.file.path)

    def install_signal_handlers(self) -> None:
        """
        SIGHUP reopens, SIGUSR1 rotates.
        """
        for signum, action in ((signal.SIGHUP, self.reopen), (signal.SIGUSR1, self.rotate)):
            signal.signal(signum, self._handler(action))

    def _handler(self, action: Callable[[], None]) -> Callable[[int, Any], None]:
        def handle(signum: int, frame: Any) -> None:
            self._reactor.callFromThread(action)

        return handle


def twistd_observer(
    twistd: Mapping[str, Any], fmt: str, reactor: Any, stdout: IO[str] | None = None
) -> tuple[ILogObserver, ReopenableLog | None] | None:
    """
    The observer twistd should use, given twistd's own options (``logfile``,
    ``nodaemon``, ``syslog``, ``logger``): or None to leave logging to twistd.

    :return: the observer, and the log file it writes to, if any.
    """
    if twistd.get("syslog") or twistd.get("logger"):
        return None
    path = twistd.get("logfile") or ""
    nodaemon = bool(twistd.get("nodaemon"))
    if path == "-" or (not path and nodaemon):
        if not nodaemon:
            # twistd refuses this itself, with its own message.
            return None
        return observer(stdout if stdout is not None else sys.stdout, fmt), None
    log_file = ReopenableLog(path or "twistd.log", reactor)
    return observer(log_file.file, fmt), log_file


class RelayRoot(MultiService):
    """
    The relay node's root service.  When twistd adds it to its application
    it offers the application the relay's log observer (see the module
    docstring); anywhere else it is a plain :class:`MultiService`.

    :param twistd: twistd's options (``Options().parent``), or None outside
        twistd.
    :param fmt: ``--log-format``.
    """

    def __init__(self, twistd: Mapping[str, Any] | None, fmt: str, reactor: Any) -> None:
        super().__init__()
        self._twistd = twistd
        self._format = fmt
        self._reactor = reactor
        #: the log file written to, once twistd has taken the observer
        self.log_file: ReopenableLog | None = None

    def setServiceParent(self, parent: Any) -> None:
        if isinstance(parent, Componentized) and self._twistd is not None:
            chosen = twistd_observer(self._twistd, self._format, self._reactor)
            if chosen is not None:
                observer, self.log_file = chosen
                parent.setComponent(ILogObserver, observer)
                if self.log_file is not None:
                    self.log_file.install_signal_handlers()
        super().setServiceParent(parent)
