"""Capture manifests: frozen dataclasses, canonical JSON, strict parsing, write-once storage.

A manifest (schema ``preserve/manifest/2``, documented field by field in docs/format.md) binds
one capture's WARC file and records, its text objects and its provenance. Manifests of schema
``preserve/manifest/1`` are still parsed and verified as they are: manifests are write-once and
hashed into the integrity log, so they are never migrated. Version 2 adds optional sections
(``browser``, ``artifacts``, ``extraction.source``, ``import``), present only when they have
content and absent otherwise, so a v1 manifest's fields mean the same in v2. It is serialised as
canonical JSON (sorted keys, 2-space indent, UTF-8 without ASCII escaping, trailing newline),
written once to ``manifests/<capture_id>.json`` by linking a fsynced temp file into place (never
replacing an existing manifest), and identified by the BLAKE3/SHA-256 of its exact bytes.

Parsing is strict: size and nesting are bounded before ``json.loads`` runs, duplicate keys,
NaN/Infinity and unknown fields are rejected, and every id, digest, time and path is checked.
Paths are only checked lexically here (:func:`~.layout.check_relative`); resolving them
against a root (symlinks) is the job of whoever opens them. This module does not check that the
files a manifest names exist or match; :mod:`preserve.audit.verify` does.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from preserve.errors import ManifestError, NotFoundError, StorageError
from preserve.hashing import Digests, hash_bytes
from preserve.safe_io import read_regular
from preserve.storage.layout import (
    MANIFEST_SUFFIX,
    MANIFEST_TMP_PREFIX,
    ArchiveLayout,
    check_relative,
    fsync_dir,
    is_capture_id,
    is_hex_digest,
    makedirs_durable,
)

SCHEMA_V1 = "preserve/manifest/1"
SCHEMA = "preserve/manifest/2"
#: Every schema this preserve reads and verifies. Manifests are write-once and hashed into the
#: log, so they are never migrated: a v1 manifest stays v1 and is verified as v1 for ever.
SCHEMAS = (SCHEMA_V1, SCHEMA)
#: Longest string a manifest keeps from the page or the server; a longer one is cut, and the
#: cut is recorded in ``truncated`` with the original's length and SHA-256 (the full value is
#: in the WARC file). Title and byline have a smaller limit of their own.
MAX_FIELD_CHARS = 64 * 1024
MAX_TEXT_FIELD_CHARS = 4096
MAX_LIST_ITEMS = 1000
MAX_NOTES = 100
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_NESTING = 32
MAX_STRINGS = 1_000_000
MAX_CONTAINERS = 1_000_000
MANIFEST_MODE = 0o444

STATUSES = ("ok", "http-error", "not-html", "no-text", "redirect-not-followed")
#: Top-level v2 sections that are present only when they have content.
OPTIONAL_SECTIONS = ("browser", "artifacts", "import")
#: v2 ``import.source.kind``: what the user gave ``preserve import``.
IMPORT_SOURCE_KINDS = ("warc", "wacz")
#: v2 ``import.framing``: how the stored file is compressed, which says what record offsets
#: and lengths count: ``gzip-members`` and ``plain`` count bytes of the file (each record its
#: own gzip member, or no compression), ``gzip-stream`` bytes of the decompressed stream (a
#: gzip file whose members do not each hold one record).
FRAMINGS = ("gzip-members", "plain", "gzip-stream")
FRAMING_STREAM = "gzip-stream"
ARTIFACT_KINDS = ("screenshot", "pdf", "dom")
SOURCE_KINDS = ("rendered-dom", "response")
TRUNCATION_REASONS = ("length", "time", "disconnect", "unspecified")
FAILURE_SOURCES = ("proxy", "browser")
RECORD_TYPES = (
    "warcinfo", "response", "resource", "request", "metadata", "revisit", "conversion",
    "continuation",
)

_TIME_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z")
_CERT_TIME_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z\Z")
#: A certificate time that is not a real date (year 0, month 13…): kept as the certificate
#: states it, in its ASN.1 UTCTime/GeneralizedTime form.
_ASN1_TIME_RE = re.compile(r"^asn1:[0-9]{10,14}(\.[0-9]{1,9})?(Z|[+-][0-9]{4})?\Z")
_RECORD_ID_RE = re.compile(
    r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
#: A record id another tool wrote (imports only): any URI without spaces, quotes or brackets.
_FOREIGN_RECORD_ID_RE = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"]{1,2000}\Z')
_WARC_DIGEST_RE = re.compile(r"^(sha1|sha256|sha512):([A-Z2-7]+=*|[0-9a-f]+)\Z")
_DIGEST_BITS = {"sha1": 160, "sha256": 256, "sha512": 512}
_STRING_RE = re.compile(rb'"[^"]*"')
_NON_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_FOLD_BRACKETS = bytes.maketrans(b"{}", b"[]")

JSONValue = Any


# --- the dataclasses ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpStatus:
    status: int
    reason: str
    content_type: str | None


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    sha256_fingerprint: str
    subject: str
    issuer: str
    not_before: str
    not_after: str
    serial_number: str
    subject_alt_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TlsInfo:
    version: str
    cipher: str
    alpn: str | None
    verified: bool
    certificate: CertificateInfo | None


@dataclass(frozen=True, slots=True)
class Hop:
    """One HTTP exchange of the redirect chain (the last hop is the final response)."""

    url: str
    method: str
    status: int
    location: str | None
    remote_ip: str | None  # None only in an imported page whose file gave no address
    remote_port: int
    started: str
    ended: str
    transfer_encoding: str | None
    wire_sha256: str
    wire_size: int
    body_sha256: str
    body_size: int
    tls: TlsInfo | None


@dataclass(frozen=True, slots=True)
class Connection:
    remote_ip: str | None  # None only in an imported page whose file gave no address
    remote_port: int
    local_ip: str | None
    tls: TlsInfo | None


@dataclass(frozen=True, slots=True)
class WarcRecordRef:
    id: str
    type: str
    target_uri: str | None
    offset: int
    length: int
    block_digest: str | None  # None only in an imported page: the record carries none
    payload_digest: str | None
    refers_to: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class WarcFileRef:
    path: str
    size: int
    blake3: str
    sha256: str
    records: tuple[WarcRecordRef, ...]


@dataclass(frozen=True, slots=True)
class TextRef:
    blake3: str
    size: int
    path: str


@dataclass(frozen=True, slots=True)
class ExtractionSource:
    """v2: which recorded document the text was extracted from."""

    kind: str  # one of SOURCE_KINDS
    record: str  # its WARC record id


@dataclass(frozen=True, slots=True)
class ExtractionInfo:
    title: str | None
    byline: str | None
    published: str | None
    language: str | None
    reason: str | None
    source: ExtractionSource | None = None  # v2 only; absent when None
    #: v2 only, absent when None: the extractor step that produced the text (None: no text)
    method: str | None = None
    #: v2 only, absent when None: the extractor's guess of the kind of page
    page_type: str | None = None


@dataclass(frozen=True, slots=True)
class ExtractorInfo:
    name: str
    version: str
    settings: dict[str, JSONValue]


# --- v2: browser captures (see _browser_sections) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Viewport:
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class InterceptionCA:
    sha256_fingerprint: str
    record: str


@dataclass(frozen=True, slots=True)
class BrowserConnection:
    """An upstream connection the recording proxy opened, and the facts of its socket."""

    id: int
    remote_ip: str
    remote_port: int
    local_ip: str | None
    tls: TlsInfo | None


@dataclass(frozen=True, slots=True)
class BrowserResource:
    """One request/response pair the page made (its records are in the WARC file)."""

    url: str
    method: str
    status: int
    resource_type: str | None
    connection: int
    request_record: str
    response_record: str
    started: str
    ended: str
    transfer_encoding: str | None
    wire_sha256: str
    wire_size: int
    body_sha256: str
    body_size: int
    truncated: str | None


@dataclass(frozen=True, slots=True)
class FailedRequestInfo:
    url: str
    method: str
    source: str
    error: str
    message: str
    time: str


@dataclass(frozen=True, slots=True)
class BrowserInfo:
    """v2: the browser that rendered the page, and every exchange the page made."""

    product: str
    version: str
    user_agent: str
    executable: str
    viewport: Viewport
    flags: tuple[str, ...]
    timings_ms: dict[str, int]
    page_url: str
    interception_ca: InterceptionCA
    log_record: str
    max_exchanges: int
    refused_over_cap: int
    console_messages: int
    connections: tuple[BrowserConnection, ...]
    resources: tuple[BrowserResource, ...]
    failed: tuple[FailedRequestInfo, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """v2: a screenshot, PDF or rendered DOM kept as a WARC ``resource`` record."""

    kind: str  # one of ARTIFACT_KINDS
    record: str
    target_uri: str
    media_type: str
    size: int
    sha256: str
    blake3: str


# --- v2: imported pages (see _import_section) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportSource:
    """The file given to ``preserve import``: its name, size and digests as received."""

    name: str
    size: int
    sha256: str
    blake3: str
    kind: str  # one of IMPORT_SOURCE_KINDS
    member: str | None  # the WARC file's path inside a WACZ (None for a WARC file)


@dataclass(frozen=True, slots=True)
class ImportWarcinfo:
    """What the file's ``warcinfo`` record says made it (claims of the file)."""

    software: str | None
    operator: str | None
    record: str | None


@dataclass(frozen=True, slots=True)
class ImportInfo:
    """v2: this capture is a page of a file another tool wrote, imported by preserve.

    preserve vouches for ``received`` (when it read the bytes) and the digests of what it
    read; everything else the file states (dates, addresses, headers) is its claim."""

    source: ImportSource
    framing: str  # one of FRAMINGS
    warcinfo: ImportWarcinfo | None
    original_date: str  # the response record's WARC-Date, as the file states it
    received: str


@dataclass(frozen=True, slots=True)
class Truncation:
    """A string the manifest keeps cut short: where, its full length and the SHA-256 of its
    full UTF-8 bytes (so the original, found in the WARC, can be matched)."""

    field: str
    length: int
    sha256: str


#: Top-level fields that exist from schema 2 on (absent from v1 manifests).
_V2_FIELDS = ("truncated", "notes")
#: Statuses of a response that cannot be the document a tab shows (no content, a redirect).
_NOT_SHOWN_STATUSES = frozenset({204, 205, *range(300, 400)})
_V2_EXTRACTION_FIELDS = ("source", "method", "page_type")


@dataclass(frozen=True, slots=True)
class Manifest:
    """One capture, as recorded in ``manifests/<capture_id>.json``."""

    capture_id: str
    status: str
    requested_url: str
    final_url: str
    started: str
    ended: str
    http: HttpStatus
    redirects: tuple[Hop, ...]
    connection: Connection
    warc: WarcFileRef
    text: TextRef | None
    comments: TextRef | None
    extraction: ExtractionInfo
    extractor: ExtractorInfo
    software: dict[str, str]
    host: str
    operator: str
    previous: tuple[str, ...]
    schema: str = SCHEMA
    #: v2: strings cut to a length limit (``{"field", "length", "sha256"}``, see bound_fields)
    truncated: tuple[Truncation, ...] = ()
    #: v2: what the capture did not do and why (a redirect not followed, a list cut short, ...)
    notes: tuple[str, ...] = ()
    browser: BrowserInfo | None = None  # v2 only; absent when None
    artifacts: tuple[ArtifactRef, ...] | None = None  # v2 only; absent when None
    #: v2: the section ``import`` (a page imported from another tool's file); absent when None
    imported: ImportInfo | None = None

    @property
    def stream_offsets(self) -> bool:
        """Whether record offsets count bytes of the decompressed stream (an imported gzip
        file whose members do not each hold one record), not of the file."""
        return self.imported is not None and self.imported.framing == FRAMING_STREAM

    # A browser capture records two addresses: ``final_url``, where the HTTP request for the
    # requested URL and its redirects ended, and ``browser.page_url``, what the tab showed
    # when the screenshot, PDF and rendered DOM were taken. They differ after a client-side
    # navigation (a script loading another document, history.pushState); whatever shows the
    # screenshot or the text must then name the second, not the first.

    @property
    def rendered_url(self) -> str | None:
        """The address the browser showed when it took the screenshot, PDF and rendered DOM,
        when that is not ``final_url``'s document; None otherwise (an HTTP capture or an
        import, a browser capture that took no snapshot, one whose tab still showed the final
        URL, or the final URL with a fragment: the requested URL's own, a redirect's, or one a
        script set, the same document all the same)."""
        browser = self.browser
        if browser is None or not self.artifacts or \
                browser.page_url.split("#", 1)[0] == self.final_url.split("#", 1)[0]:
            return None
        return browser.page_url

    @property
    def text_url(self) -> str:
        """The address of the document the title and text were extracted from: the rendered
        page's for text from the rendered DOM, else ``final_url`` (the final response)."""
        source = self.extraction.source
        rendered = self.rendered_url
        if rendered is not None and source is not None and source.kind == "rendered-dom":
            return rendered
        return self.final_url

    @property
    def rendered_document(self) -> BrowserResource | None:
        """The recorded response of the document shown at :attr:`rendered_url` when the browser
        loaded another document after the final URL (a script's navigation): the last ``GET``
        the browser made as a ``document`` request of that address (fragment aside) whose
        status can be a shown document (not 1xx, 204, 205, 3xx). None when there is no
        rendered URL, or when no such response was recorded (history.pushState changes the
        address and loads nothing)."""
        rendered = self.rendered_url
        if rendered is None or self.browser is None:
            return None
        address = rendered.split("#", 1)[0]
        shown = [r for r in self.browser.resources
                 if r.method == "GET" and r.resource_type == "document"
                 and r.url.split("#", 1)[0] == address
                 and r.status >= 200 and r.status not in _NOT_SHOWN_STATUSES]
        return shown[-1] if shown else None

    def to_dict(self) -> dict[str, JSONValue]:
        """A JSON-ready dict (tuples become lists; absent v2 sections left out); a v1
        manifest without the v2 fields."""
        data = _json_of(self)
        assert isinstance(data, dict)
        data["import"] = data.pop("imported")
        data = _drop_absent_sections(data)
        if self.schema == SCHEMA_V1:
            for key in _V2_FIELDS:
                data.pop(key, None)
        return data

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, 2-space indent, UTF-8, no ASCII escaping, final newline."""
        return canonical_bytes(self.to_dict())


def canonical_bytes(document: Mapping[str, JSONValue]) -> bytes:
    """The canonical serialisation of a manifest document (see :meth:`Manifest.to_bytes`);
    ManifestError if it holds what JSON cannot (NaN, a lone surrogate, a non-JSON object)."""
    try:
        text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False,
                          allow_nan=False)
        return (text + "\n").encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ManifestError(f"manifest {document.get('capture_id')} cannot be serialised: "
                            f"{exc}") from exc


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """A written manifest: where it is and the digests of its exact bytes."""

    path: Path
    blake3: str
    sha256: str
    size: int


def _drop_absent_sections(document: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """The optional v2 sections are written only when present (v1 manifests never have them)."""
    for key in OPTIONAL_SECTIONS:
        if document.get(key) is None:
            document.pop(key, None)
    extraction = document.get("extraction")
    if isinstance(extraction, dict):
        for key in _V2_EXTRACTION_FIELDS:
            if extraction.get(key) is None:
                extraction.pop(key, None)
    return document


#: The field names of each manifest dataclass met by :func:`_json_of`.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, float, bool)


def _json_of(value: Any) -> JSONValue:
    """A manifest dataclass (or what one holds) as plain JSON values: what
    ``_plain(dataclasses.asdict(value))`` gives, without asdict's copy of every value
    (a manifest is serialised on every capture and checked on every verify)."""
    if value is None or isinstance(value, _SCALARS):
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: _json_of(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {key: _json_of(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_of(item) for item in value]
    return value


# --- decoding: bounded bytes -> JSON object ----------------------------------------------------


def _reject_constant(name: str) -> None:
    raise ManifestError(f"manifest JSON contains {name}")


def _no_duplicates(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    result: dict[str, JSONValue] = {}
    for key, value in pairs:
        if key in result:
            raise ManifestError(f"manifest JSON has a duplicate key {key!r}")
        result[key] = value
    return result


def _brackets_outside_strings(data: bytes) -> bytes:
    """The JSON text's brackets outside strings, ``{}`` folded into ``[]`` (C-speed passes).

    Escaped backslashes and quotes are dropped first, so every remaining ``"`` delimits a
    string. Raises ManifestError if there are more strings or containers than any manifest
    has, which also bounds the memory ``json.loads`` could take.
    """
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    if unescaped.count(b'"') > 2 * MAX_STRINGS:
        raise ManifestError(f"manifest JSON has more than {MAX_STRINGS} strings")
    brackets = _STRING_RE.sub(b"", unescaped).translate(_FOLD_BRACKETS, _NON_BRACKET)
    if len(brackets) > 2 * MAX_CONTAINERS:
        raise ManifestError(f"manifest JSON has more than {MAX_CONTAINERS} objects and lists")
    return brackets


def nesting_depth(data: bytes, limit: int = MAX_NESTING) -> int:
    """Bracket nesting depth of JSON text, without parsing it: exact up to ``limit``, some
    value above ``limit`` for anything deeper (or unbalanced in a way that could be).

    Innermost ``[]`` pairs are peeled off one level per pass (``bytes.replace``), at most
    ``limit + 1`` passes; openers left unmatched count as depth.
    """
    brackets = _brackets_outside_strings(data)
    depth = 0
    while brackets and depth <= limit:
        peeled = brackets.replace(b"[]", b"")
        if peeled == brackets:  # what is left is ]]]...[[[ : unbalanced, count the openers
            return depth + brackets.count(b"[")
        brackets = peeled
        depth += 1
    return depth


def decode_manifest_json(data: bytes) -> dict[str, JSONValue]:
    """Bounded, strict JSON decoding of manifest bytes to a dict (ManifestError otherwise)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest is not UTF-8: {exc}") from exc
    if text.startswith("\ufeff"):
        raise ManifestError("manifest starts with a byte-order mark")
    if nesting_depth(data) > MAX_NESTING:
        raise ManifestError(f"manifest JSON is nested deeper than {MAX_NESTING} levels")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ManifestError("manifest JSON is not an object")
    return obj


# --- validation: JSON object -> dataclasses ----------------------------------------------------


def real_date_time(value: str) -> bool:
    """Whether ``value``, which starts ``YYYY-MM-DDTHH:MM:SS`` (digits where the pattern
    has them: the caller matched it), names a real date and time: what
    ``datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")`` accepts (it too refuses seconds
    60 and 61, which its pattern lets through), a tenth of its cost."""
    try:
        datetime(int(value[0:4]), int(value[5:7]), int(value[8:10]), int(value[11:13]),
                 int(value[14:16]), int(value[17:19]))
    except ValueError:
        return False
    return True


class _Fields:
    """Typed access to one JSON object, with the JSON path in every error message."""

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected an object, got {type(obj).__name__}")
        self.obj: dict[str, JSONValue] = obj
        self.where = where
        self.seen: set[str] = set()

    def _get(self, key: str) -> JSONValue:
        self.seen.add(key)
        if key not in self.obj:
            raise ManifestError(f"{self.where}.{key}: required field missing")
        return self.obj[key]

    def _fail(self, key: str, what: str, value: JSONValue) -> ManifestError:
        shown = repr(value)
        return ManifestError(f"{self.where}.{key}: expected {what}, got {shown[:120]}")

    def string(self, key: str, *, nonempty: bool = True, pattern: re.Pattern[str] | None = None,
            choices: tuple[str, ...] | None = None) -> str:
        value = self._get(key)
        if not isinstance(value, str) or (nonempty and not value):
            raise self._fail(key, "a non-empty string" if nonempty else "a string", value)
        _check_encodable(value, f"{self.where}.{key}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self._fail(key, f"a string matching {pattern.pattern}", value)
        if choices is not None and value not in choices:
            raise self._fail(key, f"one of {', '.join(choices)}", value)
        return value

    def opt_string(self, key: str) -> str | None:
        if self._get(key) is None:
            return None
        return self.string(key, nonempty=False)

    def integer(self, key: str, *, low: int = 0, high: int | None = None) -> int:
        value = self._get(key)
        if type(value) is not int or value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in {low}..{high}"
            raise self._fail(key, f"an integer {bounds}", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def digest(self, key: str) -> str:
        value = self._get(key)
        if not is_hex_digest(value):
            raise self._fail(key, "64 lower-case hex characters", value)
        assert isinstance(value, str)
        return value

    def time(self, key: str, *, strict: bool = True) -> str:
        if not strict and isinstance(self.obj.get(key), str) \
                and _ASN1_TIME_RE.fullmatch(self.obj[key]):
            return self.string(key)  # a certificate date that is no real date, kept as given
        value = self.string(key, pattern=_TIME_RE if strict else _CERT_TIME_RE)
        if not real_date_time(value):
            raise self._fail(key, "a real RFC 3339 date and time", value)
        return value

    def ip(self, key: str) -> str:
        value = self.string(key)
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise self._fail(key, "an IP address", value) from exc
        return value

    def opt_ip(self, key: str) -> str | None:
        return None if self._get(key) is None else self.ip(key)

    def path(self, key: str) -> str:
        value = self.string(key)
        check_relative(value, under="archive")  # raises UnsafePathError (a ManifestError)
        return value

    def sub(self, key: str) -> _Fields:
        return _Fields(self._get(key), f"{self.where}.{key}")

    def opt_sub(self, key: str) -> _Fields | None:
        return None if self._get(key) is None else self.sub(key)

    def has(self, key: str) -> bool:
        """Whether an optional (v2) key is present; reading it later marks it seen."""
        return key in self.obj

    def record_id(self, key: str, *, foreign: bool = False) -> str:
        """A record id: ``urn:uuid:…`` as preserve writes them, or (``foreign``: a page
        imported from another tool's file) any URI that tool wrote."""
        return self.string(key, pattern=_FOREIGN_RECORD_ID_RE if foreign else _RECORD_ID_RE)

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.array(key)
        if not all(isinstance(v, str) for v in values):
            raise ManifestError(f"{self.where}.{key}: expected a list of strings")
        for i, v in enumerate(values):
            _check_encodable(v, f"{self.where}.{key}[{i}]")
        return tuple(values)

    def array(self, key: str) -> list[JSONValue]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._fail(key, "a list", value)
        return value

    def raw(self, key: str) -> JSONValue:
        return self._get(key)

    def done(self) -> None:
        extra = sorted(set(self.obj) - self.seen)
        if extra:
            raise ManifestError(f"{self.where}: unknown field(s) {', '.join(extra)}")


def _check_encodable(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ManifestError(f"{where}: string is not valid Unicode (lone surrogate)") from exc


#: Bytes lost from the last 8-character base32 group, by its count of padding characters.
_BASE32_PAD_LOSS = {0: 0, 1: 1, 3: 2, 4: 3, 6: 4}


def base32_decoded_length(encoded: str) -> int | None:
    """How many bytes ``base64.b32decode`` would give for ``encoded`` (RFC 4648 base32,
    upper case, trailing ``=`` optional), or None where it would refuse the padding.

    The alphabet is checked by the caller's pattern; this only counts, so a digest label is
    checked without decoding it (``b32decode`` is pure Python and was a visible share of the
    per-capture CPU). A test compares it with ``b32decode`` on arbitrary strings.
    """
    length = len(encoded.rstrip("="))
    padding = -length % 8
    loss = _BASE32_PAD_LOSS.get(padding)
    if loss is None:
        return None
    return (length + padding) // 8 * 5 - loss


def recordable_warc_digest(value: str) -> bool:
    """Whether a WARC digest label is one a manifest records, and so one preserve checks:
    sha1, sha256 or sha512, in upper-case base32 or lower-case hex, of the right length."""
    match = _WARC_DIGEST_RE.match(value)
    if match is None:
        return False
    bits = _DIGEST_BITS[match[1]]
    encoded = match[2]
    if len(encoded) == bits // 4 and all(c in "0123456789abcdef" for c in encoded):
        return True
    raw_bytes = base32_decoded_length(encoded)
    return raw_bytes is not None and raw_bytes * 8 == bits


def _warc_digest(f: _Fields, key: str, *, optional: bool) -> str | None:
    if optional and f.raw(key) is None:
        return None
    value = f.string(key, pattern=_WARC_DIGEST_RE)
    algo, _, encoded = value.partition(":")
    bits = _DIGEST_BITS[algo]
    if len(encoded) == bits // 4 and all(c in "0123456789abcdef" for c in encoded):
        return value  # hex form
    raw_bytes = base32_decoded_length(encoded)
    if raw_bytes is None:
        raise ManifestError(f"{f.where}.{key}: undecodable digest {value!r}")
    if raw_bytes * 8 != bits:
        raise ManifestError(f"{f.where}.{key}: {algo} digest of the wrong length: {value!r}")
    return value


def _tls(f: _Fields | None) -> TlsInfo | None:
    if f is None:
        return None
    c = f.opt_sub("certificate")
    cert = None
    if c is not None:
        sans = c.array("subject_alt_names")
        if not all(isinstance(s, str) for s in sans):
            raise ManifestError(f"{c.where}.subject_alt_names: expected a list of strings")
        cert = CertificateInfo(
            sha256_fingerprint=c.digest("sha256_fingerprint"),
            subject=c.string("subject", nonempty=False),
            issuer=c.string("issuer", nonempty=False),
            not_before=c.time("not_before", strict=False),
            not_after=c.time("not_after", strict=False),
            serial_number=c.string("serial_number"),
            subject_alt_names=tuple(sans),
        )
        c.done()
    tls = TlsInfo(version=f.string("version"), cipher=f.string("cipher"), alpn=f.opt_string("alpn"),
                  verified=f.boolean("verified"), certificate=cert)
    f.done()
    return tls


def _hop(obj: JSONValue, where: str, imported: bool = False) -> Hop:
    f = _Fields(obj, where)
    hop = Hop(
        url=f.string("url"), method=f.string("method"),
        status=f.integer("status", low=100, high=999),
        location=f.opt_string("location"),
        remote_ip=f.opt_ip("remote_ip") if imported else f.ip("remote_ip"),
        remote_port=f.integer("remote_port", high=65535), started=f.time("started"),
        ended=f.time("ended"), transfer_encoding=f.opt_string("transfer_encoding"),
        wire_sha256=f.digest("wire_sha256"), wire_size=f.integer("wire_size"),
        body_sha256=f.digest("body_sha256"), body_size=f.integer("body_size"),
        tls=_tls(f.opt_sub("tls")),
    )
    f.done()
    return hop


def _record(obj: JSONValue, where: str, foreign: bool = False) -> WarcRecordRef:
    """One record of ``warc.records``; ``foreign`` (an imported page): the record id may be
    any URI the other tool wrote, and a record without a block digest has ``null``."""
    f = _Fields(obj, where)
    id_re = _FOREIGN_RECORD_ID_RE if foreign else _RECORD_ID_RE
    refers_to = f.opt_string("refers_to")
    if refers_to is not None and not id_re.fullmatch(refers_to):
        raise ManifestError(f"{where}.refers_to: not a record id: {refers_to!r}")
    record = WarcRecordRef(
        id=f.string("id", pattern=id_re), type=f.string("type", choices=RECORD_TYPES),
        target_uri=f.opt_string("target_uri"), offset=f.integer("offset"),
        length=f.integer("length", low=1),
        block_digest=_warc_digest(f, "block_digest", optional=foreign),
        payload_digest=_warc_digest(f, "payload_digest", optional=True),
        refers_to=refers_to, content_type=f.opt_string("content_type"),
    )
    f.done()
    return record


def _warc(f: _Fields, imported: ImportInfo | None = None) -> WarcFileRef:
    foreign = imported is not None
    records = tuple(_record(r, f"{f.where}.records[{i}]", foreign)
                    for i, r in enumerate(f.array("records")))
    warc = WarcFileRef(path=f.path("path"), size=f.integer("size"), blake3=f.digest("blake3"),
                       sha256=f.digest("sha256"), records=records)
    f.done()
    end = 0
    ids: set[str] = set()
    for i, record in enumerate(records):
        if record.offset < end:
            raise ManifestError(f"{f.where}.records[{i}]: overlaps or precedes the previous record")
        end = record.offset + record.length
        if record.id in ids:
            raise ManifestError(f"{f.where}.records[{i}]: duplicate record id {record.id}")
        ids.add(record.id)
    stream = imported is not None and imported.framing == FRAMING_STREAM
    if end > warc.size and not stream:  # (stream offsets count decompressed bytes)
        raise ManifestError(f"{f.where}.records: extend past the end of the file ({warc.size})")
    return warc


def _text_ref(f: _Fields | None) -> TextRef | None:
    if f is None:
        return None
    ref = TextRef(blake3=f.digest("blake3"), size=f.integer("size"), path=f.path("path"))
    f.done()
    return ref


def _json_settings(value: JSONValue, where: str) -> dict[str, JSONValue]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{where}: expected an object")
    try:  # normalise to plain JSON types (tuples -> lists), rejecting what JSON cannot hold
        normal = json.loads(json.dumps(dict(value), allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: not JSON-serialisable: {exc}") from exc
    assert isinstance(normal, dict)
    return normal


# --- v2 sections (browser captures) ---------------------------------------------------------


def _v2_optional(ex: _Fields, key: str, schema: str) -> str | None:
    """An optional v2 string of ``extraction`` (absent or null: None; never in v1)."""
    if schema == SCHEMA_V1 or not ex.has(key):
        return None
    return ex.opt_string(key)


def _extraction_source(ex: _Fields, schema: str,
                       foreign: bool = False) -> ExtractionSource | None:
    """``extraction.source`` (v2, optional): the kind and record id of the extracted document."""
    if schema == SCHEMA_V1 or not ex.has("source"):
        return None
    f = ex.sub("source")
    source = ExtractionSource(kind=f.string("kind", choices=SOURCE_KINDS),
                              record=f.record_id("record", foreign=foreign))
    f.done()
    return source


def _browser_connection(obj: JSONValue, where: str) -> BrowserConnection:
    f = _Fields(obj, where)
    connection = BrowserConnection(
        id=f.integer("id", low=1), remote_ip=f.ip("remote_ip"),
        remote_port=f.integer("remote_port", high=65535), local_ip=f.opt_ip("local_ip"),
        tls=_tls(f.opt_sub("tls")))
    f.done()
    return connection


def _browser_resource(obj: JSONValue, where: str) -> BrowserResource:
    f = _Fields(obj, where)
    truncated = f.opt_string("truncated")
    if truncated is not None and truncated not in TRUNCATION_REASONS:
        raise f._fail("truncated", f"null or one of {', '.join(TRUNCATION_REASONS)}", truncated)
    resource = BrowserResource(
        url=f.string("url"), method=f.string("method"),
        status=f.integer("status", low=100, high=999),
        resource_type=f.opt_string("resource_type"), connection=f.integer("connection", low=1),
        request_record=f.record_id("request_record"),
        response_record=f.record_id("response_record"),
        started=f.time("started"), ended=f.time("ended"),
        transfer_encoding=f.opt_string("transfer_encoding"),
        wire_sha256=f.digest("wire_sha256"), wire_size=f.integer("wire_size"),
        body_sha256=f.digest("body_sha256"), body_size=f.integer("body_size"),
        truncated=truncated)
    f.done()
    return resource


def _failed_request(obj: JSONValue, where: str) -> FailedRequestInfo:
    f = _Fields(obj, where)
    failed = FailedRequestInfo(
        url=f.string("url"), method=f.string("method"),
        source=f.string("source", choices=FAILURE_SOURCES), error=f.string("error"),
        message=f.string("message", nonempty=False), time=f.time("time"))
    f.done()
    return failed


def _browser(f: _Fields) -> BrowserInfo:
    view = f.sub("viewport")
    viewport = Viewport(width=view.integer("width", low=1), height=view.integer("height", low=1))
    view.done()
    ca = f.sub("interception_ca")
    interception_ca = InterceptionCA(sha256_fingerprint=ca.digest("sha256_fingerprint"),
                                     record=ca.record_id("record"))
    ca.done()
    timings = f.raw("timings_ms")
    if not isinstance(timings, Mapping) or not all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in timings.items()):
        raise ManifestError(f"{f.where}.timings_ms: expected an object of integers >= 0")
    info = BrowserInfo(
        product=f.string("product", nonempty=False), version=f.string("version"),
        user_agent=f.string("user_agent", nonempty=False), executable=f.string("executable"),
        viewport=viewport, flags=f.strings("flags"), timings_ms=dict(timings),
        page_url=f.string("page_url"), interception_ca=interception_ca,
        log_record=f.record_id("log_record"), max_exchanges=f.integer("max_exchanges", low=1),
        refused_over_cap=f.integer("refused_over_cap"),
        console_messages=f.integer("console_messages"),
        connections=tuple(_browser_connection(c, f"{f.where}.connections[{i}]")
                          for i, c in enumerate(f.array("connections"))),
        resources=tuple(_browser_resource(r, f"{f.where}.resources[{i}]")
                        for i, r in enumerate(f.array("resources"))),
        failed=tuple(_failed_request(r, f"{f.where}.failed[{i}]")
                     for i, r in enumerate(f.array("failed"))),
        notes=f.strings("notes"))
    f.done()
    ids = [c.id for c in info.connections]
    if len(set(ids)) != len(ids):
        raise ManifestError(f"{f.where}.connections: duplicate connection id")
    for i, resource in enumerate(info.resources):
        if resource.connection not in ids:
            raise ManifestError(f"{f.where}.resources[{i}].connection: no connection "
                                f"{resource.connection}")
    return info


def _artifact(obj: JSONValue, where: str) -> ArtifactRef:
    f = _Fields(obj, where)
    artifact = ArtifactRef(
        kind=f.string("kind", choices=ARTIFACT_KINDS), record=f.record_id("record"),
        target_uri=f.string("target_uri"), media_type=f.string("media_type"),
        size=f.integer("size"), sha256=f.digest("sha256"), blake3=f.digest("blake3"))
    f.done()
    return artifact


def _browser_sections(root: _Fields, schema: str) -> dict[str, JSONValue]:
    """The optional v2 top-level sections ``browser`` and ``artifacts`` (absent: None)."""
    if schema == SCHEMA_V1:
        return {}  # a v1 manifest that has them fails as having unknown fields
    sections: dict[str, JSONValue] = {}
    if root.has("browser"):
        sections["browser"] = _browser(root.sub("browser"))
    if root.has("artifacts"):
        artifacts = tuple(_artifact(a, f"manifest.artifacts[{i}]")
                          for i, a in enumerate(root.array("artifacts")))
        if len({a.kind for a in artifacts}) != len(artifacts):
            raise ManifestError("manifest.artifacts: more than one artifact of a kind")
        sections["artifacts"] = artifacts
    return sections


def _import_section(root: _Fields, schema: str) -> ImportInfo | None:
    """The optional v2 section ``import`` (absent: None): the file a page was imported from,
    as preserve received it, and what that file claims about itself."""
    if schema == SCHEMA_V1 or not root.has("import"):
        return None  # a v1 manifest that has it fails as having an unknown field
    f = root.sub("import")
    src = f.sub("source")
    member = src.opt_string("member")
    if member is not None and not member:
        raise ManifestError(f"{src.where}.member: expected a non-empty string or null")
    source = ImportSource(name=src.string("name"), size=src.integer("size"),
                          sha256=src.digest("sha256"), blake3=src.digest("blake3"),
                          kind=src.string("kind", choices=IMPORT_SOURCE_KINDS), member=member)
    src.done()
    if (source.kind == "wacz") != (member is not None):
        raise ManifestError(f"{src.where}.member: names the WARC file inside a WACZ, and only "
                            "then")
    info = f.opt_sub("warcinfo")
    warcinfo = None
    if info is not None:
        record = None if info.raw("record") is None else info.record_id("record", foreign=True)
        warcinfo = ImportWarcinfo(software=info.opt_string("software"),
                                  operator=info.opt_string("operator"), record=record)
        info.done()
    imported = ImportInfo(source=source, framing=f.string("framing", choices=FRAMINGS),
                          warcinfo=warcinfo, original_date=f.string("original_date"),
                          received=f.time("received"))
    f.done()
    return imported


def _check_v2_references(manifest: Manifest) -> None:
    """Every record id a v2 section names is a record of the manifest's WARC file, of the
    right type."""
    types = {r.id: r.type for r in manifest.warc.records}

    def need(record: str, wanted: tuple[str, ...], where: str) -> None:
        if types.get(record) not in wanted:
            raise ManifestError(f"{where}: {record} is not a {'/'.join(wanted)} record of "
                                "the WARC file")

    source = manifest.extraction.source
    if source is not None:
        need(source.record, ("resource",) if source.kind == "rendered-dom" else ("response",),
             "manifest.extraction.source.record")
    imported = manifest.imported
    if imported is not None:
        if source is None or source.kind != "response":
            raise ManifestError("manifest.extraction.source: an imported page names the "
                                "response record it was extracted from")
        if imported.warcinfo is not None and imported.warcinfo.record is not None:
            need(imported.warcinfo.record, ("warcinfo",), "manifest.import.warcinfo.record")
        if manifest.browser is not None or manifest.artifacts is not None:
            raise ManifestError("manifest: an imported page has no browser or artifacts")
    for i, artifact in enumerate(manifest.artifacts or ()):
        need(artifact.record, ("resource",), f"manifest.artifacts[{i}].record")
    browser = manifest.browser
    if browser is not None:
        need(browser.interception_ca.record, ("metadata",),
             "manifest.browser.interception_ca.record")
        need(browser.log_record, ("metadata",), "manifest.browser.log_record")
        for i, resource in enumerate(browser.resources):
            need(resource.request_record, ("request",), f"manifest.browser.resources[{i}]")
            need(resource.response_record, ("response",), f"manifest.browser.resources[{i}]")


def manifest_from_dict(obj: Mapping[str, JSONValue]) -> Manifest:
    """Validate a JSON-shaped mapping and build a :class:`Manifest` (ManifestError otherwise)."""
    root = _Fields(dict(obj) if isinstance(obj, Mapping) else obj, "manifest")
    schema = root.raw("schema")
    if schema not in SCHEMAS:
        raise ManifestError(f"manifest.schema: unsupported schema {schema!r} "
                            f"(expected one of {', '.join(SCHEMAS)})")
    assert isinstance(schema, str)
    imported = _import_section(root, schema)
    foreign = imported is not None
    capture_id = root.string("capture_id")
    if not is_capture_id(capture_id):
        raise ManifestError(f"manifest.capture_id: not a capture id: {capture_id!r}")
    http = root.sub("http")
    http_status = HttpStatus(status=http.integer("status", low=100, high=999),
                             reason=http.string("reason", nonempty=False),
                             content_type=http.opt_string("content_type"))
    http.done()
    conn = root.sub("connection")
    connection = Connection(remote_ip=conn.opt_ip("remote_ip") if foreign else conn.ip("remote_ip"),
                            remote_port=conn.integer("remote_port", high=65535),
                            local_ip=conn.opt_ip("local_ip"), tls=_tls(conn.opt_sub("tls")))
    conn.done()
    ex = root.sub("extraction")
    extraction = ExtractionInfo(title=ex.opt_string("title"), byline=ex.opt_string("byline"),
                                published=ex.opt_string("published"),
                                language=ex.opt_string("language"), reason=ex.opt_string("reason"),
                                source=_extraction_source(ex, schema, foreign),
                                method=_v2_optional(ex, "method", schema),
                                page_type=_v2_optional(ex, "page_type", schema))
    ex.done()
    tool = root.sub("extractor")
    extractor = ExtractorInfo(name=tool.string("name"), version=tool.string("version"),
                              settings=_json_settings(tool.raw("settings"),
                                                      "manifest.extractor.settings"))
    tool.done()
    software = root.raw("software")
    if not isinstance(software, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in software.items()
    ):
        raise ManifestError("manifest.software: expected an object of strings")
    previous = root.array("previous")
    if not all(is_capture_id(p) for p in previous):
        raise ManifestError("manifest.previous: expected a list of capture ids")
    manifest = Manifest(
        capture_id=capture_id,
        status=root.string("status", choices=STATUSES),
        requested_url=root.string("requested_url"),
        final_url=root.string("final_url"),
        started=root.time("started"),
        ended=root.time("ended"),
        http=http_status,
        redirects=tuple(_hop(h, f"manifest.redirects[{i}]", foreign)
                        for i, h in enumerate(root.array("redirects"))),
        connection=connection,
        warc=_warc(root.sub("warc"), imported),
        text=_text_ref(root.opt_sub("text")),
        comments=_text_ref(root.opt_sub("comments")),
        extraction=extraction,
        extractor=extractor,
        software=dict(software),
        host=root.string("host", nonempty=False),
        operator=root.string("operator", nonempty=False),
        previous=tuple(previous),
        schema=schema,
        truncated=_truncations(root) if schema != SCHEMA_V1 else (),
        notes=_notes(root) if schema != SCHEMA_V1 else (),
        **_browser_sections(root, schema),
        imported=imported,
    )
    root.done()
    if manifest.ended < manifest.started:
        raise ManifestError("manifest.ended is earlier than manifest.started")
    _check_v2_references(manifest)
    return manifest


def _truncations(root: _Fields) -> tuple[Truncation, ...]:
    if "truncated" not in root.obj:  # optional in input; always written
        return ()
    items = root.array("truncated")
    if len(items) > MAX_LIST_ITEMS:
        raise ManifestError(f"manifest.truncated: more than {MAX_LIST_ITEMS} entries")
    found = []
    for i, item in enumerate(items):
        f = _Fields(item, f"manifest.truncated[{i}]")
        found.append(Truncation(field=f.string("field"), length=f.integer("length"),
                                sha256=f.digest("sha256")))
        f.done()
    return tuple(found)


def _notes(root: _Fields) -> tuple[str, ...]:
    if "notes" not in root.obj:
        return ()
    notes = root.array("notes")
    if len(notes) > MAX_NOTES or not all(isinstance(n, str) and n for n in notes):
        raise ManifestError(f"manifest.notes: expected up to {MAX_NOTES} non-empty strings")
    for note in notes:
        _check_encodable(note, "manifest.notes")
    return tuple(notes)


#: Strings taken from the page (title, byline) get the smaller limit.
_TEXT_FIELDS = frozenset({"extraction.title", "extraction.byline", "extraction.published",
                          "extraction.language"})


def bound_fields(document: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """A copy of a manifest document whose strings and lists respect the manifest's limits.

    Every string longer than its limit (:data:`MAX_TEXT_FIELD_CHARS` for the page's title,
    byline, date and language; :data:`MAX_FIELD_CHARS` for anything else a server sent) is cut,
    and the cut is listed in ``truncated`` with the original length and SHA-256; a list longer
    than :data:`MAX_LIST_ITEMS` (certificate names, say) is cut and a note says so. Lone
    surrogates are replaced. A hostile page therefore cannot push its own manifest past the
    size limit and so block its capture: the evidence (the WARC) is always committed.
    """
    truncated: list[dict[str, JSONValue]] = list(document.get("truncated") or [])
    notes: list[str] = list(document.get("notes") or [])

    def bound(value: JSONValue, where: str) -> JSONValue:
        if isinstance(value, str):
            clean = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace") \
                if _has_surrogate(value) else value
            limit = MAX_TEXT_FIELD_CHARS if where in _TEXT_FIELDS else MAX_FIELD_CHARS
            if len(clean) > limit:
                digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
                truncated.append({"field": where, "length": len(value), "sha256": digest})
                return clean[:limit]
            return clean
        if isinstance(value, Mapping):
            return {k: bound(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            items = list(value)
            if len(items) > MAX_LIST_ITEMS and where not in _UNBOUNDED_LISTS:
                notes.append(f"{where}: {len(items)} items, only the first {MAX_LIST_ITEMS} kept")
                items = items[:MAX_LIST_ITEMS]
            return [bound(v, f"{where}[]") for v in items]
        return value

    bounded = {k: bound(v, k) for k, v in document.items() if k not in ("truncated", "notes")}
    if len(notes) > MAX_NOTES:
        notes = [*notes[: MAX_NOTES - 1], f"{len(notes) - MAX_NOTES + 1} more notes not kept"]
    bounded["truncated"] = truncated[:MAX_LIST_ITEMS]
    bounded["notes"] = notes
    return bounded


#: Lists whose length preserve itself bounds (records of its own WARC file, its own ids).
_UNBOUNDED_LISTS = frozenset({"warc.records", "previous", "redirects", "truncated",
                              "browser.resources", "browser.connections", "artifacts"})


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_manifest(data: bytes) -> Manifest:
    """Strictly parse manifest bytes (ManifestError, or its child UnsafePathError, if invalid)."""
    return manifest_from_dict(decode_manifest_json(data))


#: What :func:`summary_of` gives: a listing's fields, in the order of
#: :data:`preserve.storage.catalog.SUMMARY_FIELDS` (capture id, requested and final URL,
#: started, HTTP status, status, title, text BLAKE3).
ManifestSummary = tuple[str, str, str, str, int, str, str | None, str | None]


def summary_of(data: bytes) -> ManifestSummary:
    """A listing's fields of manifest bytes (:data:`ManifestSummary`): the same decoding, and
    the same checks of these fields, as :func:`parse_manifest` (ManifestError otherwise), in
    a fraction of its time; the manifest's other fields are not checked here (verify checks
    them). How a catalog of 100,000 captures is built from their manifests."""
    root = _Fields(decode_manifest_json(data), "manifest")
    if root.raw("schema") not in SCHEMAS:
        raise ManifestError(f"manifest.schema: unsupported schema {root.raw('schema')!r}")
    capture_id = root.string("capture_id")
    if not is_capture_id(capture_id):
        raise ManifestError(f"manifest.capture_id: not a capture id: {capture_id!r}")
    text = root.opt_sub("text")
    return (capture_id, root.string("requested_url"), root.string("final_url"),
            root.time("started"), root.sub("http").integer("status", low=100, high=999),
            root.string("status", choices=STATUSES),
            root.sub("extraction").opt_string("title"),
            text.digest("blake3") if text is not None else None)


# --- files -------------------------------------------------------------------------------------


def read_manifest_bytes(path: Path) -> bytes:
    """The bytes of a manifest file, refusing more than MAX_MANIFEST_BYTES.

    Raises ManifestError if too large, NotFoundError if missing; other OSErrors propagate.
    """
    if not path.exists() and not path.is_symlink():
        raise NotFoundError(f"no manifest at {path}")
    return read_regular(path, MAX_MANIFEST_BYTES, what="manifest", error=ManifestError)


def read_manifest(path: Path) -> tuple[Manifest, Digests]:
    """Read and parse one manifest file; also return the digests of its exact bytes."""
    try:
        data = read_manifest_bytes(path)
    except OSError as exc:
        raise StorageError(f"cannot read manifest {path}: {exc}") from exc
    try:
        return parse_manifest(data), hash_bytes(data)
    except ManifestError as exc:
        raise type(exc)(f"{path.name}: {exc}") from exc


def iter_manifest_paths(layout: ArchiveLayout) -> Iterator[Path]:
    """Committed manifest files (``manifests/*.json``, not temp files), sorted by name."""
    try:
        with os.scandir(layout.manifests_dir) as scan:
            names = sorted(e.name for e in scan if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(MANIFEST_SUFFIX) and not name.startswith("."):
            yield layout.manifests_dir / name


def iter_manifests(layout: ArchiveLayout) -> Iterator[tuple[Path, Manifest, Digests]]:
    """Every committed manifest, parsed. Raises on the first invalid one (verify reports all)."""
    for path in iter_manifest_paths(layout):
        manifest, digests = read_manifest(path)
        yield path, manifest, digests


def write_manifest(layout: ArchiveLayout, manifest: Manifest) -> ManifestRef:
    """Commit ``manifest`` as ``manifests/<capture_id>.json``; never replaces an existing file.

    Temp file ``manifests/.tmp-<capture_id>-*`` -> write -> fsync -> hard link to the final name
    (fails if it exists) -> unlink temp -> fsync the directory. StorageError on any failure.
    """
    data = manifest.to_bytes()
    parse_manifest(data)  # never write what we could not read back
    final = layout.manifest_path_for(manifest.capture_id)
    directory = layout.manifests_dir
    try:
        makedirs_durable(directory)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{MANIFEST_TMP_PREFIX}{manifest.capture_id}-",
                                        dir=directory)
    except OSError as exc:
        raise StorageError(f"cannot create a manifest temp file in {directory}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), MANIFEST_MODE)
            os.fsync(f.fileno())
        link_no_replace(tmp, final)
        tmp.unlink()
        fsync_dir(directory)
    except FileExistsError as exc:
        raise StorageError(f"manifest {final.name} already exists; not rewritten") from exc
    except OSError as exc:
        raise StorageError(f"cannot write manifest {final.name}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    digests = hash_bytes(data)
    return ManifestRef(final, digests.blake3, digests.sha256, digests.size)


def link_no_replace(tmp: Path, final: Path) -> None:
    """Hard-link ``tmp`` to ``final`` (FileExistsError if ``final`` exists); where the file
    system has no hard links, rename after checking ``final`` is free (callers hold the lock)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP,
                             errno.EOPNOTSUPP}:
            raise
        # No hard links here: rename after checking the name is free (callers hold the lock).
        if final.exists():
            raise FileExistsError(errno.EEXIST, "manifest exists", str(final)) from exc
        os.rename(tmp, final)


__all__ = [
    "ARTIFACT_KINDS",
    "FRAMINGS",
    "FRAMING_STREAM",
    "IMPORT_SOURCE_KINDS",
    "MAX_CONTAINERS",
    "MAX_FIELD_CHARS",
    "MAX_MANIFEST_BYTES",
    "MAX_NESTING",
    "MAX_STRINGS",
    "MAX_TEXT_FIELD_CHARS",
    "OPTIONAL_SECTIONS",
    "RECORD_TYPES",
    "SCHEMA",
    "SCHEMAS",
    "SCHEMA_V1",
    "SOURCE_KINDS",
    "STATUSES",
    "ArtifactRef",
    "BrowserConnection",
    "BrowserInfo",
    "BrowserResource",
    "CertificateInfo",
    "Connection",
    "ExtractionInfo",
    "ExtractionSource",
    "ExtractorInfo",
    "FailedRequestInfo",
    "Hop",
    "HttpStatus",
    "ImportInfo",
    "ImportSource",
    "ImportWarcinfo",
    "InterceptionCA",
    "Manifest",
    "ManifestRef",
    "ManifestSummary",
    "TextRef",
    "TlsInfo",
    "Truncation",
    "Viewport",
    "WarcFileRef",
    "WarcRecordRef",
    "bound_fields",
    "canonical_bytes",
    "decode_manifest_json",
    "iter_manifest_paths",
    "iter_manifests",
    "link_no_replace",
    "manifest_from_dict",
    "nesting_depth",
    "parse_manifest",
    "read_manifest",
    "read_manifest_bytes",
    "summary_of",
    "write_manifest",
]
