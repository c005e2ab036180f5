"""
A throw-away certificate authority, so that the simulator, test bots and
benchmarks speak TLS as Discord and most bots do, on loopback.

The CA is made in memory when asked for (an EC P-256 key: quick to make,
small on the wire) and issues server certificates for ``localhost``,
``127.0.0.1`` and ``::1``.  A relay in the same process trusts it through
:meth:`ThrowAwayCA.trust_root`; a relay process through OpenSSL's own
setting, ``SSL_CERT_FILE`` pointing at :meth:`ThrowAwayCA.write_ca`'s file.
Nothing here is fit for anything but tests: the keys live a few hours and
are never protected.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.ssl import Certificate, CertificateOptions, PrivateCertificate
from twisted.protocols.tls import TLSMemoryBIOFactory

#: the names a loopback server's certificate is valid for
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

_LIFETIME = datetime.timedelta(days=2)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class ThrowAwayCA:
    """
    A certificate authority that exists for one test run.

    :param name: the CA's common name, to tell runs apart in errors.
    """

    def __init__(self, name: str = "dccrelay test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self._not_before = now - datetime.timedelta(minutes=5)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self._servers: dict[tuple[str, ...], bytes] = {}

    @property
    def ca_pem(self) -> bytes:
        """The CA's certificate, PEM: what a client must trust."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def trust_root(self) -> Certificate:
        """The CA as a Twisted trust root (``ClientTLS(trust_root=...)``)."""
        return Certificate.loadPEM(self.ca_pem)

    def write_ca(self, path: str) -> str:
        """Write the CA certificate to ``path`` (for ``SSL_CERT_FILE``)."""
        with open(path, "wb") as f:
            f.write(self.ca_pem)
        return path

    def server_pem(self, names: tuple[str, ...] = LOOPBACK_NAMES) -> bytes:
        """
        A private key and a certificate this CA issued for ``names``, PEM,
        one file's worth (what the simulator's and receivers' ``--tls-cert``
        take).  The same ``names`` get the same certificate.
        """
        pem = self._servers.get(names)
        if pem is None:
            key = ec.generate_private_key(ec.SECP256R1())
            now = datetime.datetime.now(datetime.timezone.utc)
            cert = (
                x509.CertificateBuilder()
                .subject_name(_name(names[0]))
                .issuer_name(self.certificate.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(self._not_before)
                .not_valid_after(now + _LIFETIME)
                .add_extension(
                    x509.SubjectAlternativeName([_alt_name(n) for n in names]), critical=False
                )
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
                )
                .sign(self._key, hashes.SHA256())
            )
            pem = _pem_key(key) + cert.public_bytes(serialization.Encoding.PEM)
            self._servers[names] = pem
        return pem

    def write_server(self, path: str, names: tuple[str, ...] = LOOPBACK_NAMES) -> str:
        """Write :meth:`server_pem` to ``path``, readable by its owner only."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.server_pem(names))
        return path

    def server_options(self, names: tuple[str, ...] = LOOPBACK_NAMES) -> CertificateOptions:
        """TLS server options with a certificate for ``names``."""
        return server_options_from_pem(self.server_pem(names))


def server_options_from_pem(pem: bytes) -> CertificateOptions:
    """TLS server options from a key and certificate in one PEM blob."""
    options: CertificateOptions = PrivateCertificate.loadPEM(pem).options()
    return options


def serve_tls(options: CertificateOptions, factory: IProtocolFactory) -> Any:
    """``factory`` behind TLS: what to give a plain TCP endpoint's ``listen``."""
    return TLSMemoryBIOFactory(options, False, factory)
