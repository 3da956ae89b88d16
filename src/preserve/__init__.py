"""preserve: capture web pages into WARC with provenance, keep their clean text addressed by
BLAKE3, bind both in a manifest per capture, and verify it all over time.

The public API is what this module exports; everything else is internal and may change::

    import preserve
    archive = preserve.Archive("my-archive")
    result = archive.capture("https://example.org/article")
    report = archive.verify(deep=True)
    extraction = preserve.extract(html_bytes, url="https://example.org/article")
    imported = preserve.import_file(archive, "crawl.warc.gz")  # WARC/WACZ of other tools
"""

from preserve._version import __version__
from preserve.archive import Archive, CaptureOptions, CaptureResult, CaptureSummary
from preserve.audit.findings import Code, Finding, Report, Severity
from preserve.capture.browser import BrowserOptions
from preserve.capture.fetch import FetchOptions
from preserve.errors import (
    ArchiveError,
    BlockedAddressError,
    BrowserUnavailableError,
    CaptureError,
    CaptureTimeoutError,
    ConnectError,
    DNSError,
    ImportInputError,
    ImportIntegrityError,
    InvalidURLError,
    LockTimeoutError,
    LogError,
    ManifestError,
    NetworkError,
    NotFoundError,
    NotProvedError,
    PreserveError,
    ProofError,
    ProtocolError,
    SigningKeyError,
    StorageError,
    TLSError,
    TooLargeError,
    TooManyRedirectsError,
    UnsafePathError,
    UnsupportedSchemeError,
)
from preserve.extract import Comment, Extraction, Extractor, extract
from preserve.importing import ImportOptions, ImportResult, import_file
from preserve.storage.manifest import Manifest

__all__ = [
    "Archive",
    "ArchiveError",
    "BlockedAddressError",
    "BrowserOptions",
    "BrowserUnavailableError",
    "CaptureError",
    "CaptureOptions",
    "CaptureResult",
    "CaptureSummary",
    "CaptureTimeoutError",
    "Code",
    "Comment",
    "ConnectError",
    "DNSError",
    "Extraction",
    "Extractor",
    "FetchOptions",
    "Finding",
    "ImportInputError",
    "ImportIntegrityError",
    "ImportOptions",
    "ImportResult",
    "InvalidURLError",
    "LockTimeoutError",
    "LogError",
    "Manifest",
    "ManifestError",
    "NetworkError",
    "NotFoundError",
    "NotProvedError",
    "PreserveError",
    "ProofError",
    "ProtocolError",
    "Report",
    "Severity",
    "SigningKeyError",
    "StorageError",
    "TLSError",
    "TooLargeError",
    "TooManyRedirectsError",
    "UnsafePathError",
    "UnsupportedSchemeError",
    "__version__",
    "extract",
    "import_file",
]
