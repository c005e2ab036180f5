"""
Tests for :mod:`dccrelay.net.tls`: one OpenSSL context (one trust store) for
every outgoing connection, verification as strict as Twisted's, and
certificate failures named where an operator looks.
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import Error as OpenSSLError
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web._newclient import ResponseNeverReceived

from dccrelay.gateway.connection import GatewayConnector
from dccrelay.gateway.shard import gateway_url
from dccrelay.net.tls import ClientTLS, certificate_problem, discord_tls_failure
from dccrelay.testing.simulator import DiscordSimulator
from dccrelay.testing.tls import LOOPBACK_NAMES, ThrowAwayCA
from dccrelay.web.status_json import public_json
from tests.harness import (
    LOOPBACK,
    SECRET,
    TEST_CA,
    RelayProcess,
    tls_simulator,
    wait_for,
)

#: a CA nobody trusts: its certificates must be refused
STRANGER_CA = ThrowAwayCA("a stranger's CA")


def open_in_memory(creator: Any, count: int) -> list[Any]:
    """
    Start ``count`` TLS client connections through ``creator`` (each sends
    its ClientHello into a ``StringTransport``); return their TLS protocols.
    """
    factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(Protocol))
    protocols = []
    for _ in range(count):
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocols.append(protocol)
    return protocols


class SharedContextTests(SynchronousTestCase):
    """
    Every connection shares the node's one context, so the trust store is
    loaded once however many bots there are.
    """

    def test_thousand_connections_one_trust_store(self) -> None:
        """
        1,000 connections, to one host and to many, all use the same
        OpenSSL context, and so the same certificate store.
        """
        tls = ClientTLS(trust_root=TEST_CA.trust_root())
        same_host = open_in_memory(tls.creator_for("gateway.discord.gg"), 500)
        many_hosts = [
            open_in_memory(tls.creator_for(f"bot{i}.example"), 1)[0] for i in range(500)
        ]
        contexts = {id(p._tlsConnection.get_context()) for p in same_host + many_hosts}
        self.assertEqual(contexts, {id(tls.context())})
        stores = {id(p._tlsConnection.get_context().get_cert_store()) for p in same_host}
        self.assertEqual(len(stores), 1)

    def test_twisted_default_builds_a_context_per_call(self) -> None:
        """
        Why the node keeps its own: Twisted's ``optionsForClientTLS`` makes
        a new context, with its own copy of the trust store, per call.
        """
        first = open_in_memory(optionsForClientTLS("a.example", TEST_CA.trust_root()), 1)
        second = open_in_memory(optionsForClientTLS("a.example", TEST_CA.trust_root()), 1)
        self.assertIsNot(
            first[0]._tlsConnection.get_context(), second[0]._tlsConnection.get_context()
        )

    def test_creator_per_host_is_cached_and_bounded(self) -> None:
        """
        A host's creator is built once and reused; the cache keeps a bounded
        number of hosts.
        """
        from dccrelay.net import tls as module

        tls = ClientTLS(trust_root=TEST_CA.trust_root())
        self.assertIs(tls.creator_for("a.example"), tls.creator_for("a.example"))
        for i in range(module.CREATORS_KEPT + 10):
            tls.creator_for(f"h{i}.example")
        self.assertEqual(len(tls._creators), module.CREATORS_KEPT)

    def test_https_policy(self) -> None:
        """
        As treq's TLS policy it gives the same per-host creator.
        """
        tls = ClientTLS(trust_root=TEST_CA.trust_root())
        self.assertIs(tls.creatorForNetloc(b"discord.com", 443), tls.creator_for("discord.com"))


class CertificateProblemTests(SynchronousTestCase):
    """
    :func:`certificate_problem` finds the TLS cause, also inside the HTTP
    client's wrappers.
    """

    def test_openssl_reason(self) -> None:
        """OpenSSL's reason string is what is said."""
        error = OpenSSLError([("SSL routines", "", "certificate verify failed")])
        self.assertEqual(certificate_problem(Failure(error)), "certificate verify failed")

    def test_inside_response_never_received(self) -> None:
        """treq's ResponseNeverReceived hides the cause in ``reasons``."""
        error = OpenSSLError([("SSL routines", "", "certificate verify failed")])
        wrapped = Failure(ResponseNeverReceived([Failure(error)]))
        self.assertEqual(certificate_problem(wrapped), "certificate verify failed")
        self.assertEqual(
            discord_tls_failure(wrapped, "https://discord.com/api/v10"),
            "Discord's TLS certificate for discord.com was not accepted: certificate "
            "verify failed (the relay trusts the platform's CA store, or "
            "SSL_CERT_FILE/SSL_CERT_DIR)",
        )

    def test_not_tls(self) -> None:
        """Anything else is not a certificate problem."""
        self.assertIsNone(certificate_problem(Failure(ConnectionRefusedError())))
        self.assertIsNone(discord_tls_failure(Failure(ValueError()), "https://x"))


class LoopbackVerificationTests(TestCase):
    """
    Over real loopback TLS: the simulator's certificate is accepted only
    when its CA is trusted and it names the host connected to.
    """

    timeout = 30

    async def connect(self, tls: ClientTLS, names: tuple[str, ...] = LOOPBACK_NAMES) -> Any:
        sim = DiscordSimulator(reactor, tls=TEST_CA.server_options(names))
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        url = gateway_url(sim.gateway_url)
        connector = GatewayConnector(reactor, tls_options_for=tls.creator_for)
        return await connector.connect(url, _Listener())

    def test_trusted(self) -> None:
        """A certificate from the trusted CA opens the websocket."""

        async def go() -> None:
            connection = await self.connect(ClientTLS(trust_root=TEST_CA.trust_root()))
            connection.abort()

        return ensureDeferred(go())

    def test_untrusted_ca(self) -> None:
        """A certificate from an untrusted CA is refused: verify failed."""

        async def go() -> None:
            try:
                await self.connect(ClientTLS(trust_root=STRANGER_CA.trust_root()))
            except Exception:
                problem = certificate_problem(Failure())
            else:
                self.fail("connected to an untrusted server")
            self.assertEqual(problem, "certificate verify failed")

        return ensureDeferred(go())

    def test_wrong_host_name(self) -> None:
        """
        A trusted certificate that does not name the host connected to is
        refused (service_identity).
        """

        async def go() -> None:
            try:
                await self.connect(
                    ClientTLS(trust_root=TEST_CA.trust_root()), ("elsewhere.example",)
                )
            except Exception:
                problem = certificate_problem(Failure())
            else:
                self.fail("accepted a certificate for another host")
            self.assertEqual(problem, "the certificate does not name this host")

        return ensureDeferred(go())


class _Listener:
    def frame_received(self, data: bytes) -> None:
        pass

    def connection_closed(self, code: int | None, reason: str) -> None:
        pass


class RelayNamesCertificateFailuresTests(TestCase):
    """
    A relay that does not trust Discord's certificate says so, in the bot's
    status and in the log, instead of "could not reach Discord".
    """

    timeout = 30

    def test_rest_certificate_refused(self) -> None:
        """
        ``GET /gateway/bot`` refused for its certificate: the bot's
        ``gatewayError`` names the host and OpenSSL's reason, and a warning
        is logged.
        """
        return ensureDeferred(self._rest_refused())

    async def _rest_refused(self) -> None:
        sim = tls_simulator()
        await sim.listen(LOOPBACK)
        self.addCleanup(sim.stop)
        sim.add_bot(token="TOKEN.x.y", user_id="1")
        relay = RelayProcess(
            self.mktemp(), sim.api_url, tls=ClientTLS(trust_root=STRANGER_CA.trust_root())
        )
        await relay.start()
        self.addCleanup(relay.stop)
        with capturedLogs() as events:
            code, _ = await relay.register(
                {"token": "TOKEN.x.y", "dst": "wss://127.0.0.1:1/", "clientSecret": SECRET}
            )
            self.assertEqual(code, 201)
            status = await wait_for(
                lambda: public_json(relay.relay().snapshot()).get("gatewayError"),
                what="a gateway error",
            )
        self.assertEqual(
            status,
            "Discord's TLS certificate for 127.0.0.1 was not accepted: certificate verify "
            "failed (the relay trusts the platform's CA store, or SSL_CERT_FILE/SSL_CERT_DIR)",
        )
        warnings = [e for e in events if "TLS certificate" in e.get("why", "")]
        self.assertTrue(warnings, "no warning logged")
