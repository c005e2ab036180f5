"""
Outbound safety: the relay connects only where a bot's owner may send it.

A bot's ``dst`` (and ``wakeUrl``) is chosen by whoever registers the bot,
so without a check it could point the relay at the node's own network: its
loopback services, a cloud metadata address, the LAN.  Registration refuses
literal private addresses (:mod:`dccrelay.relay.settings`), but a host name can
resolve anywhere, and resolve differently later (DNS rebinding).  So the
check that counts is made here, on the address actually connected to, after
name resolution, for every connection:

- :class:`GuardedReactor` wraps the reactor that delivery channels and the
  webhook agent are given.  ``HostnameEndpoint`` (used by both) resolves
  the name and then calls ``connectTCP`` with each numeric address; the
  wrapper refuses those that are not public with
  :class:`PrivateAddressRefused`, whose message says why.
- :class:`NoRedirectHTTPClient` is a treq client that never follows a
  redirect: a 3xx answer is the answer, so a bot cannot bounce the relay
  onto another host (:func:`dccrelay.net.answer_caps.outbound_http` builds
  the one for bots, with caps on what it reads).

TLS is verified as Twisted's ``optionsForClientTLS`` verifies it, on the
node's one shared context (:mod:`dccrelay.net.tls`): the chain against the
system's trust roots, the host name with ``service_identity``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from treq.client import HTTPClient
from twisted.internet import error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.base import BaseConnector
from twisted.internet.interfaces import IAddress, IConnector, IReactorTime
from twisted.internet.protocol import ClientFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgent, IPolicyForHTTPS
from zope.interface import directlyProvides, providedBy

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NOT_ALLOWED = "the operator has not allowed private destinations (--allow-private-dst)"


class PrivateAddressRefused(error.ConnectError):
    """
    A connection to a loopback, private, link-local, multicast or reserved
    address was refused.  Its text says why, in words that are safe to show
    in the bot's public status: the kind of address, not the address (a
    private address tells strangers about the node's network); the
    operator's log has the address.

    :ivar address: the numeric address refused.
    :ivar reason: why, from :func:`refusal_reason`.
    """

    def __init__(self, address: str, reason: str) -> None:
        kind = re.sub(r" \(.*?\)", "", reason)
        super().__init__(
            string=f"refused to connect: the bot's host resolved to {kind}; {_NOT_ALLOWED}"
        )
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


def _kind(address: Address) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refusal_reason(address: Address | str) -> str | None:
    """
    Why the relay must not connect to ``address`` (e.g. ``"a private
    address"``), or ``None`` if it is a public unicast address.

    An IPv6 address that embeds an IPv4 address (IPv4-mapped, 6to4, Teredo,
    NAT64) is judged by the embedded one first, so that ``::ffff:127.0.0.1``
    is loopback.

    :param address: a numeric address (an IPv6 scope suffix is allowed);
        anything else is refused, since only numeric addresses are checked.
    """
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return "not a numeric address"
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            kind = _kind(inner)
            if kind is not None:
                return f"{kind} ({inner}) inside an IPv6 address"
            if address.ipv4_mapped is not None:
                return None  # the connection goes to that public IPv4 address
    return _kind(address)


class _RefusedTransport:
    """
    Stands in for the TCP transport of a refused connection, so the
    connector behaves as a real one: it fails once, soon, or at once when
    the caller stops connecting.
    """

    def __init__(self, connector: _RefusedConnector, reactor: IReactorTime, reason: Exception) -> None:
        self._connector: _RefusedConnector | None = connector
        self._call = reactor.callLater(0, self.failIfNotConnected, reason)

    def failIfNotConnected(self, err: Exception) -> None:
        if self._call.active():
            self._call.cancel()
        connector, self._connector = self._connector, None
        if connector is not None:
            connector.connectionFailed(Failure(err))


class _RefusedConnector(BaseConnector):
    """
    The ``IConnector`` of a refused connection.
    """

    def __init__(
        self,
        host: str,
        port: int,
        factory: ClientFactory,
        timeout: float,
        reactor: Any,
        reason: Exception,
    ) -> None:
        self._host = host
        self._port = port
        self._reason = reason
        super().__init__(factory, timeout, reactor)

    def _makeTransport(self) -> Any:
        return _RefusedTransport(self, self.reactor, self._reason)

    def getDestination(self) -> IAddress:
        if ":" in self._host:
            return IPv6Address("TCP", self._host, self._port)
        return IPv4Address("TCP", self._host, self._port)


class GuardedReactor:
    """
    A reactor that refuses TCP connections to addresses that are not
    public; everything else is the wrapped reactor's.

    It provides every interface the wrapped reactor provides, so
    ``HostnameEndpoint`` and ``Agent`` use it as they would the reactor.

    :param reactor: the real reactor (or a test's memory reactor).
    :param refused: called with ``(address, reason)`` for each refusal; the
        default logs a warning.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        refused: Callable[[str, str], object] | None = None,
    ) -> None:
        self._reactor = reactor
        self._refused = refused if refused is not None else self._log_refusal
        directlyProvides(self, *providedBy(reactor))

    def _log_refusal(self, address: str, reason: str) -> None:
        self._log.warn(
            "Refused an outgoing connection to {address}: {reason}",
            address=address,
            reason=reason,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: ClientFactory,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> IConnector:
        """
        Connect, unless ``host`` is not a public numeric address: then the
        factory's ``clientConnectionFailed`` gets
        :class:`PrivateAddressRefused` soon after.
        """
        reason = refusal_reason(host)
        if reason is None:
            connector: IConnector = self._reactor.connectTCP(
                host, port, factory, timeout=timeout, bindAddress=bindAddress
            )
            return connector
        self._refused(host, reason)
        refused = _RefusedConnector(
            host, port, factory, timeout, self._reactor, PrivateAddressRefused(host, reason)
        )
        refused.connect()
        return refused

    def connectSSL(self, *args: Any, **kwargs: Any) -> IConnector:
        raise NotImplementedError("the relay connects with TLS over connectTCP only")

    def connectUNIX(self, *args: Any, **kwargs: Any) -> IConnector:
        raise NotImplementedError("the relay connects to bots over TCP only")


def outbound_reactor(reactor: Any, *, allow_private: bool) -> Any:
    """
    The reactor to give whatever connects to bots: ``reactor`` itself if
    the operator allows private destinations, else a :class:`GuardedReactor`.
    """
    if allow_private:
        return reactor
    return GuardedReactor(reactor)


class NoRedirectHTTPClient(HTTPClient):
    """
    A treq client that never follows redirects, whatever a caller asks.
    """

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        kwargs["allow_redirects"] = False
        return super().request(method, url, **kwargs)


def outbound_agent(
    reactor: Any,
    pool: HTTPConnectionPool,
    *,
    allow_private: bool,
    tls: IPolicyForHTTPS | None = None,
) -> IAgent:
    """
    The ``Agent`` for HTTP(S) requests to bots (webhooks, ``wakeUrl``):
    verified TLS (``tls``: the node's :class:`dccrelay.net.tls.ClientTLS`, else
    Twisted's default policy), and the private-address guard unless allowed.
    """
    guarded = outbound_reactor(reactor, allow_private=allow_private)
    if tls is None:
        return Agent(guarded, pool=pool)
    return Agent(guarded, contextFactory=tls, pool=pool)

