"""The exception hierarchy of preserve.

Every error the library raises on purpose is a :class:`PreserveError`. Errors from the
libraries underneath (httpcore, warcio, the OS) are translated into these at the one module that
talks to that library (``raise ... from exc``), so callers catch one family.

Findings of an audit are *not* exceptions: :mod:`preserve.audit.verify` returns them as data.
This module does not log, print or decide exit codes (the CLI maps classes to exit codes).
"""

from __future__ import annotations


class PreserveError(Exception):
    """Base class of every error preserve raises on purpose."""


# --- capture: what went wrong while fetching --------------------------------------------------


class CaptureError(PreserveError):
    """A capture could not be completed; nothing was committed."""


class InvalidURLError(CaptureError):
    """The URL cannot be parsed or has no host."""


class UnsupportedSchemeError(InvalidURLError):
    """The URL's scheme is not http or https."""


class NetworkError(CaptureError):
    """The server could not be reached or the connection failed."""


class DNSError(NetworkError):
    """The host name could not be resolved."""


class ConnectError(NetworkError):
    """The TCP connection was refused or could not be established."""


class TLSError(NetworkError):
    """The TLS handshake failed (for example an untrusted or invalid certificate)."""


class CaptureTimeoutError(NetworkError):
    """A per-operation timeout or the capture's total time limit was exceeded."""


class ProtocolError(NetworkError):
    """The server sent something that is not valid HTTP, or closed the connection mid-message."""


class TooLargeError(CaptureError):
    """The response body exceeded the configured maximum size."""


class TooManyRedirectsError(CaptureError):
    """The redirect chain was longer than allowed, or looped. Kept for callers that catch
    it: a capture now keeps such a chain instead (status ``redirect-not-followed``,
    the reason in its notes), as it keeps one whose later hop fails."""


class BlockedAddressError(CaptureError):
    """The host resolved to an address the capture policy refuses (SSRF guard)."""


class BrowserUnavailableError(PreserveError):
    """A browser capture was asked for, but playwright or a Chromium cannot be found or
    started here (not a CaptureError: nothing about the URL is wrong; the CLI exits 3)."""


# --- archive: what went wrong with the archive on disk ------------------------------------------


class ArchiveError(PreserveError):
    """The archive root cannot be used (missing, unwritable, locked, or damaged)."""


class StorageError(ArchiveError):
    """A write to the archive failed (disk full, permission denied, read-only media)."""


class ManifestNotLoggedError(StorageError):
    """A manifest an export or report would use is not the one a log leaf records (changed
    after it was logged, or never logged: planted, or its commit interrupted)."""


class LockTimeoutError(ArchiveError):
    """Another process holds the archive lock for longer than we were willing to wait."""


class NotFoundError(ArchiveError):
    """A capture, object or file named by the caller is not in the archive."""


class ManifestError(ArchiveError):
    """A manifest does not parse or does not validate against its schema."""


class UnsafePathError(ManifestError):
    """A path in archive data would escape the archive root."""


# --- integrity log and proofs ------------------------------------------------------------------


class LogError(ArchiveError):
    """The transparency log or a checkpoint cannot be read or is inconsistent."""


class NotProvedError(LogError):
    """preserve refused to sign: the log could not be proved (it does not extend a trusted
    head, or a leaf has no manifest or commit record to back it). Nothing was signed."""


class UnverifiedManifestError(LogError):
    """A manifest is not the one its log leaf records (changed after it was logged, missing,
    unreadable): reading commands do not show what it says."""


class UnverifiedTextError(UnverifiedManifestError):
    """A capture's text object is not the one its manifest names (another size or BLAKE3):
    reading commands do not show it."""


class SigningKeyError(PreserveError):
    """A signing key is missing, unreadable or of the wrong kind."""


class UnsupportedKeyError(SigningKeyError):
    """A signing key given by the user is of a type or curve preserve does not sign with
    (for example a secp256k1 key for a WACZ signature); nothing was written (the CLI exits
    2)."""


class ProofError(PreserveError):
    """A proof bundle is malformed or does not verify."""


class ImportInputError(PreserveError):
    """A file given to ``preserve import`` cannot be imported: not a WARC or WACZ file, or one
    beyond preserve's bounds or support (an unknown digest algorithm, too many records, a
    header block too large). Nothing of that file was committed (the CLI exits 2)."""


class ImportIntegrityError(ImportInputError):
    """A file given to ``preserve import`` fails its own integrity checks: a record whose
    block or payload digest does not match, a truncated record or gzip member, bytes that
    are not a WARC record, a WACZ entry whose SHA-256 or size differs from its
    ``datapackage.json``. Nothing of that file was committed (the CLI exits 1)."""


__all__ = [
    "ArchiveError",
    "BlockedAddressError",
    "BrowserUnavailableError",
    "CaptureError",
    "CaptureTimeoutError",
    "ConnectError",
    "DNSError",
    "ImportInputError",
    "ImportIntegrityError",
    "InvalidURLError",
    "LockTimeoutError",
    "LogError",
    "ManifestError",
    "NetworkError",
    "NotFoundError",
    "NotProvedError",
    "PreserveError",
    "ProofError",
    "ProtocolError",
    "SigningKeyError",
    "StorageError",
    "TLSError",
    "TooLargeError",
    "TooManyRedirectsError",
    "UnsafePathError",
    "UnsupportedKeyError",
    "UnsupportedSchemeError",
    "UnverifiedManifestError",
]
