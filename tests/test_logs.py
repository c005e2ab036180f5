"""
Tests for :mod:`dccrelay.ops.logs`: one line per event, text or JSON, and a log
file that SIGHUP reopens.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
from typing import Any

from twisted.application.service import Application
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ProcessTerminated
from twisted.logger import ILogObserver, LogLevel, eventsFromJSONLogFile
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from dccrelay.ops.logs import RelayRoot, ReopenableLog, format_json, format_text, twistd_observer
from tests.harness import http, wait_for
from tests.twistd_process import run_twistd


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "log_time": 1700000000.0,
        "log_level": LogLevel.info,
        "log_namespace": "dccrelay.test",
    }
    base.update(fields)
    return base


def a_failure() -> Failure:
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        return Failure()


class FormatTests(SynchronousTestCase):
    """
    Every event is exactly one line, in either format.
    """

    def test_text_one_line(self) -> None:
        """
        Text lines carry the time, namespace and level, and the message.
        """
        line = format_text(event(log_format="{alias}: registered", alias="cookout"))
        assert line is not None
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(line.count("\n"), 1)
        self.assertIn("[dccrelay.test#info] cookout: registered", line)

    def test_text_escapes_line_breaks(self) -> None:
        """
        A line break or control character in a value (a remote close
        reason, say) is escaped, so it cannot forge a log line.
        """
        line = format_text(
            event(log_format="closed: {why}", why="bye\n2038-01-19 [dccrelay#info] forged\r\x1b[2J")
        )
        assert line is not None
        self.assertEqual(line.count("\n"), 1)
        self.assertIn("bye\\n2038-01-19 [dccrelay#info] forged\\r\\x1b[2J", line)

    def test_text_traceback_on_the_line(self) -> None:
        """
        A failure's traceback stays on the event's line.
        """
        line = format_text(event(log_format="it broke", log_failure=a_failure()))
        assert line is not None
        self.assertEqual(line.count("\n"), 1)
        self.assertIn("it broke\\nTraceback", line)
        self.assertIn("ValueError: first line\\nsecond line", line)

    def test_text_nothing_to_say(self) -> None:
        """
        An event without text writes nothing.
        """
        self.assertIsNone(format_text(event()))

    def test_json(self) -> None:
        """
        JSON lines are twisted.logger's eventAsJSON, readable back with
        eventsFromJSONLogFile, with the message in log_text and the
        traceback in log_traceback.
        """
        out = format_json(
            event(log_format="{alias}: broke", alias="cook\nout", log_failure=a_failure())
        )
        self.assertEqual(out.count("\n"), 1)
        loaded = json.loads(out)
        self.assertEqual(loaded["log_text"], "cook\nout: broke")
        self.assertEqual(loaded["alias"], "cook\nout")
        self.assertIn("ValueError: first line", loaded["log_traceback"])
        [read] = eventsFromJSONLogFile(io.StringIO(out))
        self.assertEqual(read["log_level"], LogLevel.info)


class ObserverChoiceTests(SynchronousTestCase):
    """
    The relay logs where twistd would, and leaves twistd's other choices
    (syslog, --logger) alone.
    """

    def test_stdout_without_logfile(self) -> None:
        """
        --nodaemon without --logfile, or with --logfile -, writes to stdout.
        """
        for options in ({"nodaemon": True}, {"nodaemon": True, "logfile": "-"}):
            out = io.StringIO()
            chosen = twistd_observer(options, "json", reactor, stdout=out)
            assert chosen is not None
            observer, log_file = chosen
            self.assertIsNone(log_file)
            observer(event(log_format="hello"))
            self.assertEqual(json.loads(out.getvalue())["log_text"], "hello")

    def test_connection_chatter_dropped(self) -> None:
        """
        Twisted's "Starting factory" lines for each HTTP connection are not
        written; that namespace's warnings are, and so is everyone else's
        info.
        """
        out = io.StringIO()
        chosen = twistd_observer({"nodaemon": True}, "text", reactor, stdout=out)
        assert chosen is not None
        observer, _ = chosen
        chatter = "twisted.web.client._HTTP11ClientFactory"
        observer(event(log_format="Starting factory", log_namespace=chatter))
        observer(event(log_format="a warning", log_namespace=chatter, log_level=LogLevel.warn))
        observer(event(log_format="relay news"))
        self.assertNotIn("Starting factory", out.getvalue())
        self.assertIn("a warning", out.getvalue())
        self.assertIn("relay news", out.getvalue())

    def test_logfile(self) -> None:
        """
        --logfile writes to that file.
        """
        path = self.mktemp()
        chosen = twistd_observer({"logfile": path}, "text", reactor)
        assert chosen is not None
        observer, log_file = chosen
        assert log_file is not None
        self.addCleanup(log_file.file.close)
        observer(event(log_format="hello"))
        with open(path) as f:
            self.assertIn("hello", f.read())

    def test_left_to_twistd(self) -> None:
        """
        --syslog, --logger, and a daemon told to log to stdout (which twistd
        refuses itself) are twistd's business.
        """
        for options in ({"syslog": True}, {"logger": "x.y"}, {"logfile": "-"}):
            self.assertIsNone(twistd_observer(options, "text", reactor))

    def test_root_offers_observer(self) -> None:
        """
        The root service gives twistd's application its observer; outside
        twistd it does not.
        """
        application = Application("dcc")
        RelayRoot({"nodaemon": True}, "text", reactor).setServiceParent(application)
        self.assertTrue(ILogObserver.providedBy(application.getComponent(ILogObserver)))
        application = Application("dcc")
        RelayRoot(None, "text", reactor).setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver))


class ReopenTests(TestCase):
    """
    SIGHUP reopens the log file after logrotate moved it.
    """

    timeout = 60

    def test_reopen(self) -> None:
        """
        After the file is renamed, reopen() starts a new file by the old
        name and says so in it.
        """
        path = self.mktemp()
        log_file = ReopenableLog(path, reactor)
        self.addCleanup(log_file.file.close)
        log_file.file.write("before\n")
        os.rename(path, path + ".1")
        log_file.reopen()
        log_file.file.write("after\n")
        with open(path) as f:
            self.assertEqual(f.read(), "after\n")

    def test_sighup_under_twistd(self) -> Deferred[None]:
        """
        ``twistd --logfile`` with the relay: SIGHUP reopens the file instead
        of ending the process, SIGUSR1 rotates it, and SIGTERM still stops
        it cleanly.
        """
        return ensureDeferred(self._sighup())

    async def _sighup(self) -> None:
        log_path = os.path.abspath(self.mktemp())
        process = run_twistd(
            self, "--nodaemon", "--pidfile=", "--logfile", log_path, "dcc",
            "--listen", "tcp:0:interface=127.0.0.1", "--data-dir", self.mktemp(),
            "--log-format", "json",
        )

        def read(path: str) -> str:
            try:
                with open(path) as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        found = await wait_for(
            lambda: re.search(r"Site starting on (\d+)", read(log_path)),
            timeout=30, what="the relay to listen",
        )
        port = int(found.group(1))
        for line in read(log_path).splitlines():
            json.loads(line)
        os.rename(log_path, log_path + ".old")
        process.transport.signalProcess(signal.SIGHUP)
        await wait_for(lambda: "reopened the log file" in read(log_path), what="reopen")
        response = await http.get(f"http://127.0.0.1:{port}/healthz")
        await response.content()
        await wait_for(lambda: "GET /healthz" in read(log_path), what="the request's log line")
        self.assertNotIn("GET /healthz", read(log_path + ".old"))

        process.transport.signalProcess(signal.SIGUSR1)
        await wait_for(lambda: os.path.exists(log_path + ".1"), what="rotation")
        process.transport.signalProcess(signal.SIGTERM)
        reason = await process.ended
        self.assertIsInstance(reason, ProcessTerminated)
        self.assertEqual(reason.signal, signal.SIGTERM)
        self.assertIn("Server Shut Down", read(log_path))
