"""
Short descriptions of why a bot could not be reached, for ``lastError``.

They are shown to the bot's author in the relay's status, so they say what
went wrong on the bot's side in a few words, and are built only from our own
words, numbers and OpenSSL's fixed reason strings: never from other exception
text, which could echo a URL or a header back.
"""

from __future__ import annotations

from OpenSSL.SSL import Error as TLSError
from service_identity import VerificationError
from twisted.internet import error
from twisted.python.failure import Failure

from dccrelay.outbound import PrivateAddressRefused
from dccrelay.tls import openssl_reason

CONNECTION_LOST = "the connection to the bot was lost"

_CONNECT_ERRORS: tuple[tuple[type[BaseException], str], ...] = (
    (error.DNSLookupError, "the bot's host name could not be resolved"),
    (error.ConnectionRefusedError, "connection refused"),
    (error.NoRouteError, "no route to the bot's host"),
    (error.TCPTimedOutError, "connection timed out"),
    (error.TimeoutError, "connection timed out"),
    (error.ConnectingCancelledError, "connection timed out"),
    (ValueError, "the bot's host name is not valid"),
)


def describe_connect_failure(failure: Failure) -> str:
    """
    Describe why opening a TCP connection to the bot failed.

    ``ConnectingCancelledError`` reads as a time-out because the channels
    cancel a connection attempt only when it took too long (a cancel from
    ``stop()`` is never reported).  A private address refused by
    :mod:`dccrelay.outbound` says which address and why.
    """
    if failure.check(PrivateAddressRefused):
        return str(failure.value)
    for kind, text in _CONNECT_ERRORS:
        if failure.check(kind):
            return text
    return "could not connect to the bot"


def describe_tls_failure(failure: Failure) -> str | None:
    """
    Describe a failed TLS handshake, with OpenSSL's reason when it has one
    (e.g. ``certificate verify failed``): that names what to fix.

    :return: None if ``failure`` did not come from TLS.
    """
    if failure.check(VerificationError):
        # service_identity: the certificate is trusted but names another host
        return "the bot's TLS certificate does not match its host name"
    if not failure.check(TLSError):
        return None
    reason = openssl_reason(failure.value)
    if reason is not None:
        return f"TLS handshake with the bot failed: {reason}"
    return "TLS handshake with the bot failed"
