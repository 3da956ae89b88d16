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

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from preserve._version import __version__
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
    UnsupportedKeyError,
    UnsupportedSchemeError,
    UnverifiedManifestError,
)

if TYPE_CHECKING:
    from preserve.archive import Archive, CaptureOptions, CaptureResult, CaptureSummary
    from preserve.audit.findings import Code, Finding, Report, Severity
    from preserve.capture.browser import BrowserOptions
    from preserve.capture.fetch import FetchOptions
    from preserve.extract import Comment, Extraction, Extractor, extract
    from preserve.importing import ImportOptions, ImportResult, import_file
    from preserve.storage.manifest import Manifest

# Imported on first use, so that ``import preserve`` (and the CLI's start-up) does not load
# httpcore, lxml, warcio, cryptography or rich.
_LAZY = {
    "Archive": "preserve.archive",
    "CaptureOptions": "preserve.archive",
    "CaptureResult": "preserve.archive",
    "CaptureSummary": "preserve.archive",
    "Code": "preserve.audit.findings",
    "Finding": "preserve.audit.findings",
    "Report": "preserve.audit.findings",
    "Severity": "preserve.audit.findings",
    "FetchOptions": "preserve.capture.fetch",
    "BrowserOptions": "preserve.capture.browser",
    "Comment": "preserve.extract",
    "Extraction": "preserve.extract",
    "Extractor": "preserve.extract",
    "Manifest": "preserve.storage.manifest",
    "ImportOptions": "preserve.importing",
    "ImportResult": "preserve.importing",
    "import_file": "preserve.importing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'preserve' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``preserve.extract`` is the function (as it always was), not the subpackage of the
    same name: importing the subpackage later would otherwise rebind the attribute."""

    @property
    def extract(self) -> Any:
        from preserve.extract import extract as function  # noqa: PLC0415

        return function

    @extract.setter
    def extract(self, value: Any) -> None:
        pass  # the import system binding the subpackage; sys.modules still has it


sys.modules[__name__].__class__ = _Package


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
    "UnsupportedKeyError",
    "UnsupportedSchemeError",
    "UnverifiedManifestError",
    "__version__",
    "extract",
    "import_file",
]
