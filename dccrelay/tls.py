"""
Outgoing TLS for the whole node: one OpenSSL context per trust
configuration, shared by every connection the relay opens (Discord's
gateway and REST API, bots' ``dst`` and ``wakeUrl``).

Twisted's ``optionsForClientTLS`` builds a new context for every call, and a
context loads the whole trust store (the platform's: 145 certificates,
~870 KB, on a Debian machine).  The relay opened one gateway connection per
bot shard with its own context, so 1,000 bots over TLS held 1,000 copies of
the trust store.  Host-name verification does not need a context of its own:
Twisted checks the name per connection (``ClientTLSOptions`` installs its
verify callback on the ``SSL.Connection``), so here every host shares one
context, and only the small per-host creator is cached.

Verification is exactly Twisted's (its ``ClientTLSOptions``, which
``optionsForClientTLS`` returns but does not export): the chain against the
trust roots, the host name with ``service_identity``.  The trust roots are the platform's by
default, which OpenSSL lets an operator replace with ``SSL_CERT_FILE`` and
``SSL_CERT_DIR``; tests pass a throw-away CA instead.

The context keeps ``MODE_RELEASE_BUFFERS`` (Twisted's default), so an idle
connection gives its read and write buffers back to the allocator.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from OpenSSL.SSL import Error as OpenSSLError
from service_identity import VerificationError
from twisted.internet._sslverify import ClientTLSOptions, IOpenSSLTrustRoot
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import CertificateOptions, platformTrust
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

#: per-host creators kept; past this the least recently used is rebuilt on
#: its next use (a creator is a few hundred bytes: this bounds a node whose
#: bots name many hosts, not the context, which is shared regardless)
CREATORS_KEPT = 4096


@implementer(IPolicyForHTTPS)
class ClientTLS:
    """
    The node's TLS client configuration: a connection creator per host name,
    all on one OpenSSL context.  It is also treq's/``Agent``'s TLS policy.

    :param trust_root: what to trust; None: the platform's trust store
        (honouring ``SSL_CERT_FILE``/``SSL_CERT_DIR``).
    """

    def __init__(self, trust_root: IOpenSSLTrustRoot | None = None) -> None:
        self._options = CertificateOptions(
            trustRoot=trust_root if trust_root is not None else platformTrust()
        )
        self._creators: OrderedDict[str, IOpenSSLClientConnectionCreator] = OrderedDict()

    def context(self) -> Any:
        """The one ``OpenSSL.SSL.Context`` every connection uses."""
        return self._options.getContext()

    def creator_for(self, hostname: str) -> IOpenSSLClientConnectionCreator:
        """
        What ``wrapClientTLS`` needs for a connection to ``hostname``: the
        certificate must be trusted and name that host.
        """
        creator = self._creators.get(hostname)
        if creator is None:
            creator = ClientTLSOptions(self._options.clientConnectionForTLS, hostname)
            self._creators[hostname] = creator
            if len(self._creators) > CREATORS_KEPT:
                self._creators.popitem(last=False)
        else:
            self._creators.move_to_end(hostname)
        return creator

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        """``IPolicyForHTTPS``: the creator for an HTTPS request's host."""
        return self.creator_for(hostname.decode("ascii"))


def certificate_problem(failure: Failure) -> str | None:
    """
    Why a TLS handshake failed, in OpenSSL's fixed words (e.g. ``certificate
    verify failed``), or None if ``failure`` did not come from TLS.

    Looks inside the wrappers of Twisted's HTTP client
    (``ResponseNeverReceived``, ``RequestTransmissionFailed``: their
    ``reasons``), which otherwise hide the cause.  Built only from OpenSSL's
    reason strings and our own words, so it is safe to show a bot's owner.
    """
    for reason in _causes(failure):
        if reason.check(VerificationError):
            return "the certificate does not name this host"
        if reason.check(OpenSSLError):
            return openssl_reason(reason.value) or "the TLS handshake failed"
    return None


def discord_tls_failure(failure: Failure, url: str) -> str | None:
    """
    What to say when a connection to Discord (``url``: its REST API or
    gateway) was refused for its certificate, naming the host, the reason
    and where the trust store is set; None if ``failure`` is not about TLS.
    """
    problem = certificate_problem(failure)
    if problem is None:
        return None
    host = urlsplit(url).hostname or url
    return (
        f"Discord's TLS certificate for {host} was not accepted: {problem} "
        "(the relay trusts the platform's CA store, or SSL_CERT_FILE/SSL_CERT_DIR)"
    )


def _causes(failure: Failure) -> list[Failure]:
    found = [failure]
    for inner in getattr(failure.value, "reasons", None) or ():
        if isinstance(inner, Failure):
            found.extend(_causes(inner))
    return found


def openssl_reason(error: BaseException | None) -> str | None:
    """
    OpenSSL's fixed reason string of an ``OpenSSL.SSL.Error`` (e.g.
    ``certificate verify failed``), or None.
    """
    if error is None:
        return None
    # OpenSSL.SSL.Error carries [(library, function, reason), ...]
    try:
        reason = error.args[0][0][2]
    except (IndexError, TypeError, KeyError):
        return None
    return reason if isinstance(reason, str) and reason else None
