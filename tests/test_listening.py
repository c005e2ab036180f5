"""
Tests for :mod:`dccrelay.listening`: the HTTP API's port.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from dccrelay.listening import CannotListen, ListeningService


class ListeningServiceTests(TestCase):
    """
    A port already in use stops start-up with one line, not a traceback.
    """

    def test_port_in_use(self) -> None:
        """
        Listening on a port another program holds logs one critical line
        naming the address, the reason and ``--listen``, and exits with
        status 1 as a :class:`SystemExit` (which twistd does not print).
        """
        holder = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(holder.stopListening)
        port = holder.getHost().port
        service = ListeningService(
            f"tcp:{port}:interface=127.0.0.1", Factory.forProtocol(Protocol), reactor
        )
        with capturedLogs() as events:
            error = self.assertRaises(CannotListen, service.privilegedStartService)
        self.assertIsInstance(error, SystemExit)
        self.assertEqual(error.code, 1)
        self.assertEqual(len(events), 1)
        text = formatEvent(events[0])
        self.assertIn(f"127.0.0.1:{port}", text)
        self.assertIn("already in use", text)
        self.assertIn("--listen", text)

    def test_free_port(self) -> None:
        """
        A free port is listened on, as strports.service would.
        """
        service = ListeningService(
            "tcp:0:interface=127.0.0.1", Factory.forProtocol(Protocol), reactor
        )
        service.startService()
        self.addCleanup(service.stopService)
        ports: list[Any] = []
        # (successResultOf would take the port away from stopService)
        service._waitingForPort.addCallback(  # type: ignore[attr-defined]
            lambda port: ports.append(port) or port
        )
        self.assertTrue(ports[0].getHost().port)
