"""The ephemeral interception CA of one browser capture.

A browser capture sends the page's HTTPS traffic through preserve's recording proxy, which
terminates TLS towards the browser with certificates it makes on the fly. :class:`InterceptionCA`
is the authority for those certificates: a fresh EC P-256 key and self-signed CA certificate
made in memory for one capture, valid for two days around the moment it is made, and trusted
only by the one browser instance launched for that capture (its SPKI hashes are passed to
Chromium as ``--ignore-certificate-errors-spki-list``; no trust store, system or profile, is
changed). Leaf certificates, one per host name or IP address, share one leaf key and are made
on demand.

The CA certificate is recorded in the capture's WARC file, so anyone can see that the TLS the
browser saw was the capturing machine's own; upstream TLS (the server's certificate, verified
or not as the capture options say) is recorded separately by the proxy. The private keys are
written only to the capture's spool directory (``ssl`` loads keys from files; mode 0600) and
are removed with it.

This module makes certificates and server-side ``ssl.SSLContext`` objects; it does not speak
TLS or HTTP.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: How long before and after "now" the certificates are valid (clock skew, long captures).
VALIDITY = datetime.timedelta(days=1)


def _spki_hash(key: ec.EllipticCurvePublicKey) -> str:
    """Base64 SHA-256 of the DER SubjectPublicKeyInfo (Chromium's SPKI-list format)."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class InterceptionCA:
    """A per-capture CA; :meth:`server_context` gives the TLS context for one host."""

    def __init__(self, directory: Path, label: str) -> None:
        """``directory``: a private, existing directory for key and certificate files;
        ``label``: names the capture in the CA's subject (e.g. the capture's spool name)."""
        self._directory = directory
        now = datetime.datetime.now(datetime.UTC)
        self._not_before = now - VALIDITY
        self._not_after = now + VALIDITY
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "preserve"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"preserve interception CA {label}"[:64]),
        ])
        ca_public = self._ca_key.public_key()
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_public), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.certificate_der = self._ca_cert.public_bytes(serialization.Encoding.DER)
        self.certificate_pem = self._ca_cert.public_bytes(serialization.Encoding.PEM)
        #: SHA-256 of the CA certificate's DER, lower-case hex.
        self.fingerprint = hashlib.sha256(self.certificate_der).hexdigest()
        #: SPKI hashes the browser is told to accept: the leaf key's and the CA's.
        self.spki_hashes = (_spki_hash(self._leaf_key.public_key()), _spki_hash(ca_public))
        self._key_path = directory / "leaf-key.pem"
        _write_private(self._key_path, self._leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._serial = 0

    def _leaf_pem(self, host: str) -> bytes:
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            alt = x509.DNSName(host)
        public = self._leaf_key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64] or "-")]))
            .issuer_name(self._ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._ca_key.public_key()), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def server_context(self, host: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a certificate for ``host`` (cached per host).

        Only HTTP/1.1 is offered (ALPN), so the browser speaks to the proxy as the recorder
        expects. Raises ValueError for a host name no certificate can be made for.
        """
        host = host.strip("[]").lower()
        with self._lock:
            context = self._contexts.get(host)
            if context is not None:
                return context
            self._serial += 1
            chain = self._directory / f"leaf-{self._serial}.pem"
            chain.write_bytes(self._leaf_pem(host) + self.certificate_pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(chain, self._key_path)
            context.set_alpn_protocols(["http/1.1"])
            self._contexts[host] = context
            return context


__all__ = ["VALIDITY", "InterceptionCA"]
