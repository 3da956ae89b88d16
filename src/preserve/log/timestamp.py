"""RFC 3161 timestamps for checkpoints: request a token from a TSA, verify it later.

A token binds SHA-256 of the signed checkpoint bytes to a time asserted by an outside Time
Stamping Authority, which the archive's own clock cannot do. The request is an RFC 3161
TimeStampReq (with a nonce, asking for the TSA certificate) POSTed as
``application/timestamp-query``; the whole TimeStampResp is stored (``.tsr``), so
``openssl ts -verify -data <checkpoint> -in <token.tsr> -CAfile <roots>`` can check it too.

This is the only module that imports ``rfc3161_client``; it uses the standard library's
``urllib`` for the single POST. It does not decide which TSA roots to trust: callers pass them.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import rfc3161_client
from cryptography import x509

from ..errors import LogError
from ..safe_io import read_regular

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY = 1 << 20
#: Largest PEM file of trusted TSA roots read (``--tsa-roots``).
MAX_ROOTS_FILE = 1 << 20


class TimestampError(LogError):
    """A timestamp could not be obtained from the TSA, or its reply is unusable."""


def check_tsa_url(tsa_url: str) -> str:
    """``tsa_url`` if it is an http(s) URL with a host; TimestampError otherwise."""
    try:
        parts = urllib.parse.urlsplit(tsa_url)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise TimestampError(f"not a valid TSA URL {tsa_url!r}: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise TimestampError(f"a TSA URL must be http(s)://host/...: {tsa_url!r}")
    return tsa_url


def request_timestamp(data: bytes, tsa_url: str, *, timeout: float = 30.0) -> bytes:
    """Ask the TSA at ``tsa_url`` (http or https) to timestamp ``data``; return the reply (DER)."""
    check_tsa_url(tsa_url)
    request = (
        rfc3161_client.TimestampRequestBuilder()
        .data(data)
        .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    http_request = urllib.request.Request(
        tsa_url,
        data=request.as_bytes(),
        headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as reply:
            body = reply.read(MAX_REPLY + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TimestampError(f"timestamp request to {tsa_url} failed: {exc}") from exc
    if len(body) > MAX_REPLY:
        raise TimestampError("timestamp reply is too large")
    try:
        response = rfc3161_client.decode_timestamp_response(body)
    except ValueError as exc:
        raise TimestampError(f"the TSA's reply is not a TimeStampResp: {exc}") from exc
    if response.status != rfc3161_client.PKIStatus.GRANTED:
        raise TimestampError(f"the TSA refused: status {response.status}")
    info = response.tst_info
    if info.nonce != request.nonce:
        raise TimestampError("the TSA's reply does not carry our nonce")
    if info.message_imprint.message != hashlib.sha256(data).digest():
        raise TimestampError("the TSA timestamped something else")
    return response.as_bytes()


def timestamp_time(token: bytes) -> datetime:
    """The time the TSA asserts in a stored TimeStampResp (not verified)."""
    try:
        return rfc3161_client.decode_timestamp_response(token).tst_info.gen_time
    except ValueError as exc:
        raise TimestampError(f"not a TimeStampResp: {exc}") from exc


def load_roots(pem: bytes) -> list[x509.Certificate]:
    """Trusted TSA root certificates from PEM bytes."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TimestampError(f"cannot read TSA root certificates: {exc}") from exc


def load_roots_file(path: Path | str) -> list[x509.Certificate]:
    """Trusted TSA root certificates from a PEM file given by the user: read bounded, never
    through a FIFO or device (:func:`~preserve.safe_io.read_regular`)."""
    return load_roots(read_regular(path, MAX_ROOTS_FILE, what="TSA roots"))


def verify_timestamp(data: bytes, token: bytes, roots: Sequence[x509.Certificate]) -> str | None:
    """Check a stored token over ``data`` against trusted roots: None if valid, else why not.

    Checks the status, the CMS signature and chain (valid at the token's time), the TSA
    certificate's critical id-kp-timeStamping EKU, and that the imprint is SHA-256 of ``data``.
    """
    if not roots:
        return "no trusted TSA roots were given"
    try:
        response = rfc3161_client.decode_timestamp_response(token)
        builder = rfc3161_client.VerifierBuilder()
        for root in roots:
            builder = builder.add_root_certificate(root)
        builder.build().verify_message(response, data)
    except (rfc3161_client.VerificationError, ValueError) as exc:
        return f"timestamp token does not verify: {exc}"
    return None


class TimestampChecker:
    """``verify_log(timestamp_check=TimestampChecker(roots))``: a callable over (data, token)."""

    def __init__(self, roots: Sequence[x509.Certificate]) -> None:
        self._roots = list(roots)

    def __call__(self, data: bytes, token: bytes) -> str | None:
        return verify_timestamp(data, token, self._roots)


class Timestamper:
    """``write_checkpoint(timestamper=Timestamper(url))``: a callable returning a token."""

    def __init__(self, tsa_url: str, *, timeout: float = 30.0) -> None:
        self.tsa_url = check_tsa_url(tsa_url)
        self.timeout = timeout

    def __call__(self, data: bytes) -> bytes:
        return request_timestamp(data, self.tsa_url, timeout=self.timeout)
