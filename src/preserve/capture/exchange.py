"""What one HTTP exchange looked like on the wire: the data passed from fetch to warc.

These are plain, immutable records. :mod:`~preserve.capture.fetch` produces them;
:mod:`preserve.warc` turns them into WARC records; :mod:`preserve.archive` copies their
facts into the manifest.
This module does no I/O except opening the spooled body file on request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Certificate:
    """The peer's leaf certificate as presented on the connection that fetched the bytes."""

    sha256_fingerprint: str  # lower-case hex SHA-256 of the DER bytes
    subject: str  # RFC 4514 string
    issuer: str  # RFC 4514 string
    not_before: str  # RFC 3339 UTC
    not_after: str  # RFC 3339 UTC
    serial_number: str  # hex
    subject_alt_names: tuple[str, ...] = ()
    der_path: Path | None = None  # spooled DER bytes (kept in the WARC metadata record)


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """TLS facts read from the very socket the response came over."""

    version: str  # e.g. "TLSv1.3"
    cipher: str  # e.g. "TLS_AES_256_GCM_SHA384"
    certificate: Certificate | None
    verified: bool  # False only when the caller asked for --insecure
    alpn: str | None = None
    #: the peer's leaf certificate as sent (spooled DER), kept in the WARC even when
    #: ``certificate`` is None because no description of it could be made
    der_path: Path | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request/response hop, with the response body spooled to a file (never in memory).

    ``request_bytes`` is the request exactly as sent (request line, headers, CRLF CRLF, body);
    when ``request_body_path`` is set it is the head alone, and that file holds the body as
    sent (``request_body_size`` bytes of SHA-256 ``request_body_sha256``; a browser capture's
    POSTs are spooled, not held in memory).
    ``response_head`` is the status line and header block exactly as received, ending in CRLF
    CRLF. ``body_path`` holds the entity body as received with any transfer coding (chunked)
    removed but content coding (gzip, br) kept; ``transfer_encoding`` names the removed coding
    (or is None). ``wire_sha256``/``wire_size`` describe the exact bytes read from the socket
    for this response (head + body with transfer framing), so that framing is still provable.
    """

    url: str
    method: str
    request_bytes: bytes
    response_head: bytes
    status: int
    reason: str
    http_version: str
    headers: tuple[tuple[str, str], ...]  # as received, decoded latin-1, in order
    body_path: Path
    body_size: int
    body_sha256: str  # hex, over body_path's bytes
    transfer_encoding: str | None
    wire_sha256: str
    wire_size: int
    started: str  # RFC 3339 UTC, microseconds
    ended: str
    remote_ip: str
    remote_port: int
    local_ip: str | None = None
    tls: TLSInfo | None = None
    location: str | None = None  # resolved absolute redirect target, if any
    request_body_path: Path | None = None
    request_body_size: int = 0
    request_body_sha256: str | None = None  # hex, over request_body_path's bytes

    def header(self, name: str) -> str | None:
        """First value of a response header, case-insensitive."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def content_type(self) -> str | None:
        return self.header("content-type")

    def iter_body(self, block_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the spooled body."""
        with self.body_path.open("rb") as f:
            while block := f.read(block_size):
                yield block


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Every hop of one capture, first request to final response, in order."""

    requested_url: str
    exchanges: tuple[Exchange, ...]
    started: str
    ended: str
    redirects_followed: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def final(self) -> Exchange:
        return self.exchanges[-1]

    @property
    def final_url(self) -> str:
        return self.final.url
