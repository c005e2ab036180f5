"""
Tests for :mod:`dccrelay.delivery.errors`: the words behind ``lastError``.
"""

from __future__ import annotations

from OpenSSL.SSL import Error as TLSError
from service_identity import VerificationError
from twisted.internet import error
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from dccrelay.delivery.errors import describe_connect_failure, describe_tls_failure


class ConnectFailureTests(TestCase):
    """
    describe_connect_failure.
    """

    def test_known(self) -> None:
        """
        Each connection error Twisted reports has a short description that
        does not repeat the exception's text (which may name the host).
        """
        cases = [
            (error.DNSLookupError("bot.example"), "the bot's host name could not be resolved"),
            (error.ConnectionRefusedError(), "connection refused"),
            (error.NoRouteError(), "no route to the bot's host"),
            (error.TCPTimedOutError(), "connection timed out"),
            (error.TimeoutError(), "connection timed out"),
            (error.ConnectingCancelledError(None), "connection timed out"),
            (ValueError("invalid hostname: bot..example"), "the bot's host name is not valid"),
        ]
        for exception, text in cases:
            self.assertEqual(describe_connect_failure(Failure(exception)), text)

    def test_unknown(self) -> None:
        """
        Anything else is a plain "could not connect".
        """
        described = describe_connect_failure(Failure(RuntimeError("secret-ish detail")))
        self.assertEqual(described, "could not connect to the bot")


class TLSFailureTests(TestCase):
    """
    describe_tls_failure.
    """

    def test_openssl_reason(self) -> None:
        """
        OpenSSL's reason string is kept: it says what to fix.
        """
        failure = Failure(TLSError([("SSL routines", "", "certificate verify failed")]))
        self.assertEqual(
            describe_tls_failure(failure),
            "TLS handshake with the bot failed: certificate verify failed",
        )

    def test_openssl_without_reason(self) -> None:
        """
        An OpenSSL error without details still reads as a TLS failure.
        """
        self.assertEqual(
            describe_tls_failure(Failure(TLSError())), "TLS handshake with the bot failed"
        )

    def test_name_mismatch(self) -> None:
        """
        service_identity's verdict reads as a host name mismatch.
        """
        self.assertEqual(
            describe_tls_failure(Failure(VerificationError(errors=[]))),
            "the bot's TLS certificate does not match its host name",
        )

    def test_not_tls(self) -> None:
        """
        Other failures are not TLS failures.
        """
        self.assertIsNone(describe_tls_failure(Failure(error.ConnectionLost())))
