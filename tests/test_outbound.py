"""
Tests for :mod:`dccrelay.net.guard`: no connection to a bot reaches a
private address, whatever its host name resolves to; no redirect is
followed; TLS to bots and to Discord is verified.
"""

from __future__ import annotations

import datetime
from typing import Any, Generator, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import treq
from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import HostnameEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
    IReactorTime,
    IResolutionReceiver,
)
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from dccrelay.delivery.errors import describe_connect_failure
from dccrelay.gateway.rest import DiscordREST
from dccrelay.net.answer_caps import AnswerCappedPool, AnswerCaps, outbound_http
from dccrelay.net.guard import (
    GuardedReactor,
    NoRedirectHTTPClient,
    PrivateAddressRefused,
    outbound_reactor,
    refusal_reason,
)
from tests.channel_builders import status_of, websocket_v1


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class ScriptedResolver:
    """
    Answers each lookup with the next list of addresses: a DNS server that
    rebinds a name between lookups.
    """

    def __init__(self, answers: Sequence[Sequence[str]]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        self.lookups.append(hostName)
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for host in self.answers.pop(0):
            kind = IPv6Address if ":" in host else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", host, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


class RefusalReasonTests(SynchronousTestCase):
    """
    Which addresses are refused, and the words that say why.
    """

    def test_refused(self) -> None:
        """
        Loopback, private, link-local (cloud metadata), multicast,
        unspecified and reserved addresses are refused, in IPv4 and IPv6,
        and so are IPv6 addresses that embed one of them.
        """
        for address, reason in (
            ("127.0.0.1", "a loopback address"),
            ("127.1.2.3", "a loopback address"),
            ("::1", "a loopback address"),
            ("10.0.0.1", "a private address"),
            ("172.16.5.4", "a private address"),
            ("192.168.1.1", "a private address"),
            ("fc00::1", "a private address"),
            ("169.254.169.254", "a link-local address"),
            ("fe80::1%eth0", "a link-local address"),
            ("224.0.0.1", "a multicast address"),
            ("ff02::1", "a multicast address"),
            ("0.0.0.0", "an unspecified address"),
            ("::", "an unspecified address"),
            ("240.0.0.1", "a reserved address"),
            ("100.64.0.1", "a reserved address"),
            ("::ffff:127.0.0.1", "a loopback address (127.0.0.1) inside an IPv6 address"),
            ("2002:a00:1::", "a private address (10.0.0.1) inside an IPv6 address"),
            ("64:ff9b::a9fe:a9fe", "a link-local address (169.254.169.254) inside an IPv6 address"),
            ("bot.example", "not a numeric address"),
        ):
            self.assertEqual((address, refusal_reason(address)), (address, reason))

    def test_public(self) -> None:
        """
        Public unicast addresses are allowed.
        """
        for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
            self.assertIsNone(refusal_reason(address), address)


class GuardedReactorTests(SynchronousTestCase):
    """
    :class:`GuardedReactor` checks the address ``HostnameEndpoint`` connects
    to, after name resolution, every time.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.refusals: list[tuple[str, str]] = []
        self.guarded = GuardedReactor(
            self.reactor, refused=lambda address, reason: self.refusals.append((address, reason))
        )

    def connect(self, host: str = "bot.example") -> Deferred[Any]:
        endpoint = HostnameEndpoint(self.guarded, host, 443, timeout=5)
        d = endpoint.connect(Factory.forProtocol(Protocol))
        # HostnameEndpoint tries the next address every 0.3 s
        self.reactor.pump([0.0] + [0.3] * 5)
        return d

    def test_provides_the_reactor_interfaces(self) -> None:
        """
        The wrapper provides what the reactor provides, so that
        HostnameEndpoint uses its pluggable name resolver, and it delegates
        everything but connecting (the clock, the resolver).
        """
        self.assertTrue(IReactorPluggableNameResolver.providedBy(self.guarded))
        self.assertTrue(IReactorTime.providedBy(self.guarded))
        self.assertIs(self.guarded.nameResolver, self.reactor.nameResolver)
        self.assertEqual(self.guarded.seconds(), self.reactor.seconds())

    def test_private_name_refused(self) -> None:
        """
        A host name that resolves to a private address is refused with
        PrivateAddressRefused, no TCP connection is attempted, and the
        reason reaches the delivery channel's lastError in words.
        """
        self.reactor.installNameResolver(ScriptedResolver([["10.1.2.3"]]))
        failure = self.failureResultOf(self.connect(), PrivateAddressRefused)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(self.refusals, [("10.1.2.3", "a private address")])
        self.assertEqual(
            describe_connect_failure(failure),
            "refused to connect: the bot's host resolved to a private address; the "
            "operator has not allowed private destinations (--allow-private-dst)",
        )

    def test_refusal_names_no_address(self) -> None:
        """
        What the bot's public status shows of a refusal names the kind of
        address, never the address, also one embedded in IPv6.
        """
        for address, kind in (("10.1.2.3", "a private address"),
                              ("::ffff:127.0.0.1", "a loopback address inside an IPv6 address")):
            text = str(PrivateAddressRefused(address, refusal_reason(address) or ""))
            self.assertIn(kind, text)
            self.assertNotIn(address, text)
            self.assertNotIn("127.0.0.1", text)

    def test_public_name_connects(self) -> None:
        """
        A host name that resolves to a public address connects as usual.
        """
        self.reactor.installNameResolver(ScriptedResolver([["93.184.215.14"]]))
        d = self.connect()
        self.assertEqual([c[:2] for c in self.reactor.tcpClients], [("93.184.215.14", 443)])
        self.assertNoResult(d)

    def test_rebinding(self) -> None:
        """
        A name that resolved to a public address once and to a loopback
        address the next time (DNS rebinding) is refused the second time.
        """
        self.reactor.installNameResolver(
            ScriptedResolver([["93.184.215.14"], ["127.0.0.1"]])
        )
        self.connect()
        self.failureResultOf(self.connect(), PrivateAddressRefused)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_mixed_answer(self) -> None:
        """
        Of an answer with both public and private addresses, only the
        public ones are ever connected to.
        """
        self.reactor.installNameResolver(
            ScriptedResolver([["169.254.169.254", "93.184.215.14", "::1"]])
        )
        self.connect()
        self.assertEqual([c[0] for c in self.reactor.tcpClients], ["93.184.215.14"])
        self.assertEqual(
            [address for address, _ in self.refusals], ["169.254.169.254", "::1"]
        )

    def test_literal_address(self) -> None:
        """
        A literal address in the URL is checked the same way.
        """
        failure = self.failureResultOf(self.connect("127.0.0.1"), PrivateAddressRefused)
        self.assertIn("resolved to a loopback address", str(failure.value))
        self.assertEqual(failure.value.address, "127.0.0.1")
        self.assertEqual(self.refusals, [("127.0.0.1", "a loopback address")])
        self.assertEqual(self.reactor.tcpClients, [])

    def test_unresolved_name_refused(self) -> None:
        """
        connectTCP with a name rather than an address (which the reactor
        would resolve itself, unchecked) is refused.
        """
        failures: list[Failure] = []

        class Recording(ClientFactory):
            def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
                failures.append(reason)

        self.guarded.connectTCP("bot.example", 80, Recording())
        self.reactor.advance(0)
        self.assertEqual(len(failures), 1)
        failures[0].trap(PrivateAddressRefused)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_cancel(self) -> None:
        """
        Cancelling a refused attempt before it fails ends it once, cleanly.
        """
        self.reactor.installNameResolver(ScriptedResolver([["10.0.0.1"]]))
        endpoint = HostnameEndpoint(self.guarded, "bot.example", 443, timeout=5)
        d = endpoint.connect(Factory.forProtocol(Protocol))
        d.cancel()
        self.failureResultOf(d, ConnectingCancelledError)
        self.reactor.advance(10)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_outbound_reactor(self) -> None:
        """
        With --allow-private-dst the reactor is used as it is; otherwise it
        is guarded.
        """
        self.assertIs(outbound_reactor(self.reactor, allow_private=True), self.reactor)
        self.assertIsInstance(outbound_reactor(self.reactor, allow_private=False), GuardedReactor)


class CountingFactory(Factory):
    """
    Counts the connections a loopback server accepted.
    """

    protocol = Protocol

    def __init__(self) -> None:
        self.accepted = 0

    def buildProtocol(self, addr: Any) -> Protocol:
        self.accepted += 1
        return super().buildProtocol(addr)  # type: ignore[return-value]


def wait_until(condition: Any, timeout: float = 5.0) -> Deferred[None]:
    """
    Poll ``condition`` on the global reactor until it is true.
    """
    done: Deferred[None] = Deferred()
    deadline = global_reactor.seconds() + timeout

    def poll() -> None:
        if condition():
            done.callback(None)
        elif global_reactor.seconds() > deadline:
            done.errback(AssertionError("condition not met in time"))
        else:
            global_reactor.callLater(0.01, poll)

    poll()
    return done


class LoopbackGuardTests(TestCase):
    """
    Over real loopback sockets: the delivery channel and the HTTP client
    that bots get never reach a loopback server unless private destinations
    are allowed.
    """

    @inlineCallbacks
    def listen(self, factory: Factory) -> Generator[Deferred[Any], Any, int]:
        port = yield TCP4ServerEndpoint(global_reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    @inlineCallbacks
    def test_websocket_delivery_refused(self) -> Generator[Deferred[Any], Any, None]:
        """
        A websocket channel to ``ws://localhost:<port>`` on the guarded
        reactor never connects, and its lastError says why.
        """
        server = CountingFactory()
        port = yield self.listen(server)
        channel = websocket_v1(
            outbound_reactor(global_reactor, allow_private=False),
            alias="cookout",
            dst=f"ws://localhost:{port}/dcc",
            client_secret="admin:secret-secret",
            retry_policy=lambda attempt: 60.0,
        )
        self.addCleanup(channel.stop)
        channel.deliver(b"{}")
        yield wait_until(lambda: status_of(channel)["lastError"] is not None)
        self.assertRegex(
            str(status_of(channel)["lastError"]),
            r"^refused to connect: the bot's host resolved to a loopback address; "
            r"the operator has not allowed private destinations",
        )
        self.assertEqual(server.accepted, 0)
        self.assertEqual(channel.pending(), [b"{}"])

    @inlineCallbacks
    def test_http_refused(self) -> Generator[Deferred[Any], Any, None]:
        """
        The treq client for webhooks refuses ``http://127.0.0.1:<port>``.
        """
        server = CountingFactory()
        port = yield self.listen(server)
        pool = AnswerCappedPool(global_reactor, AnswerCaps(), persistent=False)
        http = outbound_http(global_reactor, pool, allow_private=False)
        d = http.get(f"http://127.0.0.1:{port}/hook")
        yield self.assertFailure(d, PrivateAddressRefused)
        self.assertEqual(server.accepted, 0)


class Redirecting(Resource):
    """
    Answers everything with a redirect elsewhere, counting requests.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []

    def render(self, request: Request) -> bytes:
        self.requests.append(request.uri)
        request.redirect(b"/elsewhere")
        return b""


class RedirectTests(TestCase):
    """
    Redirects are answers, never followed: a bot cannot bounce the relay
    to another place.
    """

    @inlineCallbacks
    def test_not_followed(self) -> Generator[Deferred[Any], Any, None]:
        """
        A 302 comes back as the response; only one request was made, even
        when the caller asks for redirects to be followed.
        """
        resource = Redirecting()
        port = yield TCP4ServerEndpoint(global_reactor, 0, interface="127.0.0.1").listen(
            Site(resource)
        )
        self.addCleanup(port.stopListening)
        pool = AnswerCappedPool(global_reactor, AnswerCaps(), persistent=False)
        http = outbound_http(global_reactor, pool, allow_private=True)
        self.assertIsInstance(http, NoRedirectHTTPClient)
        url = f"http://127.0.0.1:{port.getHost().port}/hook"
        for kwargs in ({}, {"allow_redirects": True}):
            response = yield http.post(url, b"{}", **kwargs)
            yield treq.content(response)
            self.assertEqual(response.code, 302)
        self.assertEqual(resource.requests, [b"/hook", b"/hook"])


def self_signed(hostname: str) -> tuple[bytes, bytes]:
    """
    :return: a private key and a self-signed certificate for ``hostname``,
        both PEM.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


class Gateway(Resource):
    """
    A Discord ``/gateway/bot`` that answers 200.
    """

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return (
            b'{"url": "wss://gateway.example", "shards": 1, "session_start_limit":'
            b' {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}}'
        )


class TLSVerificationTests(TestCase):
    """
    HTTPS to bots and to Discord verifies the certificate chain and, with
    service_identity, the host name.
    """

    @inlineCallbacks
    def serve(self, certificate_host: str) -> Generator[Deferred[Any], Any, Certificate]:
        key_pem, cert_pem = self_signed(certificate_host)
        options = PrivateCertificate.loadPEM(key_pem + cert_pem).options()
        from twisted.internet.endpoints import SSL4ServerEndpoint

        port = yield SSL4ServerEndpoint(
            global_reactor, 0, options, interface="127.0.0.1"
        ).listen(Site(Gateway()))
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        return Certificate.loadPEM(cert_pem)

    def client(self, trust: Certificate | None) -> NoRedirectHTTPClient:
        pool = HTTPConnectionPool(global_reactor, persistent=False)
        if trust is None:
            agent = Agent(global_reactor, pool=pool)
        else:

            @implementer(IPolicyForHTTPS)
            class Trusting:
                def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
                    return optionsForClientTLS(hostname.decode("ascii"), trustRoot=trust)

            agent = Agent(global_reactor, Trusting(), pool=pool)
        return NoRedirectHTTPClient(agent)

    @inlineCallbacks
    def test_discord_untrusted(self) -> Generator[Deferred[Any], Any, None]:
        """
        The Discord REST client, built as ``twistd dcc`` builds it, refuses
        a certificate nobody vouches for.
        """
        yield self.serve("localhost")
        rest = DiscordREST(
            self.client(None), f"https://localhost:{self.port}/api/v10", clock=global_reactor
        )
        failure = yield self.assertFailure(rest.get_gateway_bot("token"), ResponseFailed)
        self.assertIn("certificate verify failed", str(failure.reasons[0].value))

    @inlineCallbacks
    def test_wrong_host_name(self) -> Generator[Deferred[Any], Any, None]:
        """
        A trusted certificate for another name is refused by
        service_identity's host name check.
        """
        trust = yield self.serve("other.example")
        d = self.client(trust).get(f"https://localhost:{self.port}/gateway/bot")
        failure = yield self.assertFailure(d, ResponseFailed)
        from service_identity import VerificationError

        self.assertTrue(failure.reasons[0].check(VerificationError))

    @inlineCallbacks
    def test_trusted(self) -> Generator[Deferred[Any], Any, None]:
        """
        The right certificate for the right name works (so the failures
        above are the checks, not a broken server).
        """
        trust = yield self.serve("localhost")
        rest = DiscordREST(
            self.client(trust), f"https://localhost:{self.port}/api/v10", clock=global_reactor
        )
        info = yield rest.get_gateway_bot("token")
        self.assertEqual(info.url, "wss://gateway.example")
