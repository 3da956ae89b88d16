"""``preserve import``: WARC and WACZ files other tools wrote, made into captures.

One file given to :func:`import_file` goes through these steps, all before the archive lock
is taken, in a spool directory (``archive/tmp/<id>/``) like a capture's:

1. **receive**: the file is read once, streamed to the spool while its size, SHA-256 and
   BLAKE3 are computed; the time it was read is the *receipt time*, the one time preserve
   vouches for. A WACZ is a zip: each entry is streamed and its SHA-256 and size checked
   against ``datapackage.json`` (and that file against ``datapackage-digest.json``), and each
   WARC inside is streamed out to the spool (never the whole file in memory); what the zip
   declares is bounded before a byte is streamed (each entry's size, the WARC files' total
   against the spool's free space) and no entry yields more than it declared;
2. **check**: every record of every WARC is read (:func:`preserve.warc.foreign.scan_warc`):
   block and payload digests, Content-Length, gzip members (trailer included), nothing but
   records in the file; head sizes and record counts bounded; what is kept of each record
   goes to a SQLite file in the spool, not to memory; the pages are counted (the page bound,
   and a file without pages, refused before any is extracted);
3. **pages**: each ``response`` record of an HTML page (HTTP 2xx but 204/206, media type
   ``text/html`` or ``application/xhtml+xml``, or HTML by its first bytes when the response
   has no Content-Type), and each response whose target URI is one given with ``urls``
   whatever it holds, becomes a capture, one page at a time: clean text extracted from the
   stored response with the same call ``verify --deep`` repeats and written to the spool at
   once (the commit links that file into the text store), a manifest that names the stored
   WARC file and the records of that page (its warcinfo, request, response, and metadata,
   resource or conversion records that refer to it) by offset, length and digests, and the v2
   ``import`` section (source file, framing, warcinfo claims, original WARC-Date, receipt
   time), sealed and appended to ``drafts`` in the spool (its result to an unnamed temp
   file): nothing of a page is held once the next one starts;
4. **commit**: every page of the file in one commit group (:func:`preserve.commit.commit_drafts`,
   which reads the drafts back one at a time; entry kind ``import``: the log gets ``import``
   leaves). Each WARC file is stored once, byte for byte, as
   ``archive/warc/YYYY/MM/<capture id of its first page>.warc.gz`` (``.warc`` when
   uncompressed), in the month of the receipt time; every page's manifest names it.

A file is all or nothing: any failure in steps 1-3 raises
:class:`~preserve.errors.ImportIntegrityError` (the file fails its own checks) or
:class:`~preserve.errors.ImportInputError` (not a WARC/WACZ file, or beyond preserve's bounds),
and nothing of it is committed. Memory does not grow with the size of the pages' text and
hardly with their number (a few hundred bytes a page, see ``docs/exchange.md``). Importing a
file again is idempotent: pages already imported from the same bytes (same SHA-256 of the
stored WARC file, same response record) are not imported twice; when none is left, nothing
is stored and the result says ``already-imported`` with the existing capture ids.

What the manifest says of the exchange (URL, status, headers, the server address of
``WARC-IP-Address``, the original date) is what the file claims; preserve observed none of it
(no TLS facts, ``started``/``ended`` are the receipt time). This module does no network I/O.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import lzma
import os
import re
import shutil
import weakref
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, overload
from urllib.parse import urljoin, urlsplit

from preserve import errors, log, warc
from preserve.archive import (
    EXTRACT_LIMIT,
    HTML_TYPES,
    Archive,
    CaptureResult,
    Spool,
    media_type_and_charset,
)
from preserve.capture import provenance
from preserve.capture.codings import decodable_codings
from preserve.commit import Committed, GroupOutcome, PreparedCapture, SpilledDrafts
from preserve.extract import EXTRACTOR_NAME, EXTRACTOR_SETTINGS, EXTRACTOR_VERSION
from preserve.extract import extract as extract_html
from preserve.hashing import Digests, DualHasher
from preserve.log.journal import iter_entries, read_journal
from preserve.safe_io import loads_strict, open_binary
from preserve.spill import Spill
from preserve.storage.layout import WARC_DIR, new_capture_id
from preserve.storage.manifest import RECORD_TYPES
from preserve.storage.text_store import SpooledObject, spool_object
from preserve.warc.foreign import (
    EXPANSION_FLOOR,
    FRAMING_PLAIN,
    FRAMING_STREAM,
    MAX_EXPANSION,
    ForeignRecord,
    ForeignWarc,
    RecordStore,
    block_digests,
    scan_warc,
    sniff,
)

#: Most pages imported from one WARC file, and most records one page's manifest names.
MAX_PAGES = 50_000
MAX_PAGE_RECORDS = 100
#: Bounds on a WACZ: entries, the size of its datapackage.json, the size one entry may
#: declare, and the spool space that must stay free once its WARC files are streamed out.
MAX_WACZ_ENTRIES = 100_000
#: The most bytes a WACZ's zip directory (zipfile reads it whole, whatever count it declares)
#: may take: 100,000 entries of ordinary names.
MAX_WACZ_DIRECTORY_BYTES = 16 * 2**20
MAX_DATAPACKAGE_BYTES = 16 * 2**20
MAX_WACZ_ENTRY_BYTES = 64 * 2**30
SPOOL_MARGIN_BYTES = 256 * 2**20
_BLOCK = 1 << 16
_RECORD_ID = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"]{1,2000}\Z')
_WARC_DATE = re.compile(
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?Z\Z")
_WACZ_WARC = re.compile(r"^archive/[^/]+\.warc(\.gz)?\Z")
_NOT_PAGE_STATUSES = (204, 206)
#: Zip compression methods an import reads (WACZ writers use the first two).
_ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                          zipfile.ZIP_LZMA})
#: What reading a damaged zip entry raises (bad CRC, bad deflate/bzip2/lzma data, cut short).
_ZIP_DAMAGE = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError)


@dataclass(frozen=True)
class ImportOptions:
    """What to import and who imports it."""

    #: Responses to import whatever they hold (their WARC-Target-URI, exactly).
    urls: tuple[str, ...] = ()
    operator: str | None = None


@dataclass
class ImportResult:
    """What importing one file did."""

    source: str  # the path as given
    kind: str  # "warc" | "wacz"
    size: int
    sha256: str
    blake3: str
    status: str  # "imported" | "already-imported"
    #: one a page committed, in file order (kept in a file: see :class:`CaptureResults`)
    captures: Sequence[CaptureResult] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # capture ids imported before
    stored: list[str] = field(default_factory=list)  # archive-relative WARC paths
    records: int = 0
    urls_not_found: list[str] = field(default_factory=list)
    signed: bool = False
    not_signed: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "kind": self.kind, "size": self.size,
            "sha256": self.sha256, "blake3": self.blake3, "status": self.status,
            "captures": [c.to_json() for c in self.captures], "already": self.already,
            "stored": self.stored, "records": self.records,
            "urls_not_found": self.urls_not_found, "signed": self.signed,
            "not_signed": self.not_signed,
        }


class CaptureResults(Sequence[CaptureResult]):
    """The results of an import's captures, one read from a file each time it is asked for:
    an import of tens of thousands of pages holds none of them (a few bytes each)."""

    def __init__(self, stubs: Spill, digests: bytes | bytearray, outcome: GroupOutcome) -> None:
        self._stubs = stubs
        self._digests = digests  # each manifest's SHA-256 then BLAKE3, 64 bytes a capture
        self._signed = outcome.signed is not None
        self._not_signed = outcome.not_signed
        weakref.finalize(self, stubs.close)

    def __len__(self) -> int:
        return len(self._digests) // 64

    @overload
    def __getitem__(self, index: int) -> CaptureResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[CaptureResult]: ...

    def __getitem__(self, index: int | slice) -> CaptureResult | list[CaptureResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        at = self._digests[index * 64:index * 64 + 64]
        stub = CaptureResult(*self._stubs[index])
        return dataclasses.replace(stub, manifest_sha256=at[:32].hex(),
                                   manifest_blake3=at[32:].hex(), signed=self._signed,
                                   not_signed=self._not_signed)

    def __repr__(self) -> str:
        return f"<CaptureResults of {len(self)} captures>"


class _Results:
    """The result of each page, spilled as the page is sealed (all but what its commit
    decides: the manifest's digests, the checkpoint); the commit gives the digests."""

    def __init__(self, directory: Path) -> None:
        self._stubs = Spill.anonymous(directory)
        self._digests = bytearray()
        self._expected: Iterator[Any] | None = None
        self._handed = False
        self.stored: set[str] = set()  # the WARC files the committed captures name

    def add(self, prepared: PreparedCapture) -> None:
        assert prepared.draft_manifest is not None
        stub = CaptureResult.of_manifest(prepared.draft_manifest, prepared.warc_rel)
        self._stubs.append(dataclasses.astuple(stub))

    def committed(self, done: Committed) -> None:
        """What :meth:`Archive.commit_drafts` gives each committed capture, in page order."""
        if self._expected is None:
            self._expected = iter(self._stubs)
        stub = next(self._expected)
        if stub[0] != done.capture_id:
            raise AssertionError(f"committed {done.capture_id}, expected {stub[0]}")
        self._digests += bytes.fromhex(done.ref.sha256) + bytes.fromhex(done.ref.blake3)
        self.stored.add(done.warc_rel)

    def captures(self, outcome: GroupOutcome) -> CaptureResults:
        self._handed = True
        return CaptureResults(self._stubs, self._digests, outcome)

    def close_if_unused(self) -> None:
        if not self._handed:
            self._stubs.close()


@dataclass
class _Received:
    """One WARC file received into the spool."""

    path: Path  # in the spool
    digests: Digests
    member: str | None  # its path inside the WACZ


def import_file(archive: Archive, path: str | Path, options: ImportOptions | None = None, *,
                checkpoint: bool = True) -> ImportResult:
    """Import the WARC or WACZ file ``path`` into ``archive`` (see the module docstring).

    Raises :class:`~preserve.errors.ImportIntegrityError` or
    :class:`~preserve.errors.ImportInputError` for a file that cannot be imported (nothing of
    it is committed), :class:`~preserve.errors.ArchiveError` subclasses when the archive
    cannot be written. With ``checkpoint`` and the key at hand the log is proved and signed.
    """
    options = options or ImportOptions()
    source = Path(path)
    kind = sniff(source)  # before the archive is touched
    archive.ensure_layout()
    archive.check_known_head()
    _require_logged(archive)
    spool = Spool.open(archive.layout)
    try:
        with contextlib.ExitStack() as stack:
            return _import(archive, source, str(path), kind, options, spool, stack,
                           checkpoint=checkpoint)
    finally:
        spool.close()


def _require_logged(archive: Archive) -> None:
    """StorageError when manifests are committed but not logged (an import or capture cut
    short between its commit point and its log leaves): what an earlier import committed is
    recognised by the log, so importing the file again now would store those pages twice.
    ``preserve repair`` logs them (their signed commit record names them)."""
    if not archive.has_log():
        return
    waiting = log.unlogged_manifests(archive.root)
    if waiting:  # only those a commit record names (a planted manifest is verify's: E304)
        try:
            verifier: log.Verifier | None = log.read_verifier(archive.root)
        except errors.PreserveError:
            verifier = None
        records, _bad = read_journal(archive.root, verifier)
        named = {e.capture_id for _r, e in iter_entries(records, signed_only=False)}
        waiting = [capture_id for capture_id in waiting if capture_id in named]
    if waiting:
        raise errors.StorageError(
            f"{len(waiting)} capture(s) are committed but not logged yet (e.g. {waiting[0]}: "
            "an interrupted commit); run preserve repair first, or an import could store "
            "their pages again")


def _import(archive: Archive, source: Path, given: str, kind: str, options: ImportOptions,
            spool: Spool, stack: contextlib.ExitStack, *, checkpoint: bool) -> ImportResult:
    """:func:`import_file` once the spool is open (``stack`` closes what it opens)."""
    stack.callback(_empty_dir, spool.path / "text")
    received_at = spool.started
    if kind == "zip":
        source_digests, files = _receive_wacz(source, spool.path)
    else:
        files = [_receive_warc(source, spool.path)]
        source_digests = files[0].digests
    result = ImportResult(given, "wacz" if kind == "zip" else "warc", source_digests.size,
                          source_digests.sha256, source_digests.blake3, "imported")
    scanned = [(received, stack.enter_context(scan_warc(
        received.path, name=_label(source, received),
        store=spool.path / f"records-{index}.sqlite3")))
        for index, received in enumerate(files)]
    result.records = sum(len(found.records) for _r, found in scanned)
    wanted = set(options.urls)
    found_urls: set[str] = set()
    pages = sum(_count_pages(received, found, wanted, found_urls)
                for received, found in scanned)
    result.urls_not_found = [u for u in options.urls if u not in found_urls]
    if not pages:
        raise errors.ImportInputError(
            f"{source.name}: no page to import (no HTML response with a 2xx status"
            + (", and none of the --url responses" if wanted else "; name others with --url")
            + ")")
    ended = provenance.utc_now()
    operator = options.operator or provenance.default_operator()
    drafts = SpilledDrafts(stack.enter_context(Spill.create(spool.path / "drafts")))
    results = _Results(archive.layout.tmp_dir)
    stack.callback(results.close_if_unused)
    imported_source = {"name": source.name, "size": source_digests.size,
                       "sha256": source_digests.sha256, "blake3": source_digests.blake3,
                       "kind": result.kind}
    imported_before = _ImportedBefore(archive)
    for received, found in scanned:
        _prepare_file(imported_before, received, found, wanted, _FileFacts(
            source, dict(imported_source, member=received.member), received_at, ended,
            operator, spool.path / "text"), drafts, results, result.already)
    if not len(drafts):
        result.status = "already-imported"
        return result
    outcome = archive.commit_drafts(drafts, sign=checkpoint, on_committed=results.committed)
    result.captures = results.captures(outcome)
    result.stored = sorted(results.stored)
    result.signed = outcome.signed is not None
    result.not_signed = outcome.not_signed
    return result


def _empty_dir(directory: Path) -> None:
    """Remove the files of ``directory`` (the spooled text of every page) one at a time as
    they are listed: the spool's removal lists a directory whole first."""
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


# --- receiving -----------------------------------------------------------------------------------


def _label(source: Path, received: _Received) -> str:
    """How messages name a received file: the file given, and the WARC inside a WACZ."""
    return source.name if received.member is None else f"{source.name}:{received.member}"


def _receive_warc(source: Path, spool: Path) -> _Received:
    """Stream ``source`` into the spool, hashing it."""
    target = spool / "import.warc"
    hasher = DualHasher()
    with open_binary(source, error=errors.ImportInputError,
                     follow_symlinks=True) as src, target.open("xb") as dst:
        while block := src.read(_BLOCK):
            hasher.update(block)
            dst.write(block)
    return _Received(target, hasher.digests(), None)


def _receive_wacz(source: Path, spool: Path) -> tuple[Digests, list[_Received]]:
    """Check a WACZ against its ``datapackage.json`` while streaming every entry, and stream
    each WARC file inside it into the spool. Returns the WACZ's own digests and the WARCs."""
    hasher = DualHasher()
    with open_binary(source, error=errors.ImportInputError, follow_symlinks=True) as handle:
        while block := handle.read(_BLOCK):
            hasher.update(block)
        size = handle.tell()
        handle.seek(0)
        try:
            _check_entry_count(handle, source.name)
            with zipfile.ZipFile(handle) as zf:
                received = _check_wacz(zf, source.name, spool, size)
        except zipfile.BadZipFile as exc:
            raise errors.ImportIntegrityError(f"{source.name}: not a readable zip file: {exc}") \
                from exc
    return hasher.digests(), received


def _check_entry_count(handle: BinaryIO, name: str) -> None:
    """Refuse a zip whose end record declares more than :data:`MAX_WACZ_ENTRIES` entries
    before ``zipfile`` reads its central directory (it builds an object for every entry: two
    million entries of 47 bytes each took 900 MiB)."""
    try:
        end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]
    except OSError as exc:
        raise errors.ImportIntegrityError(f"{name}: not a readable zip file: {exc}") from exc
    finally:
        handle.seek(0)
    if end is None:
        return  # zipfile says why
    entries = end[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]
    directory = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > MAX_WACZ_ENTRIES or directory > MAX_WACZ_DIRECTORY_BYTES:
        raise errors.ImportInputError(
            f"{name}: its zip directory declares {entries} entries in {directory} bytes, over "
            f"preserve's bounds ({MAX_WACZ_ENTRIES} entries, {MAX_WACZ_DIRECTORY_BYTES} bytes)")


def _check_wacz(zf: zipfile.ZipFile, name: str, spool: Path,
                file_size: int) -> list[_Received]:
    infos = zf.infolist()
    if len(infos) > MAX_WACZ_ENTRIES:
        raise errors.ImportInputError(f"{name}: more than {MAX_WACZ_ENTRIES} zip entries")
    entries = {info.filename: info for info in infos if not info.is_dir()}
    names = [info.filename for info in infos if not info.is_dir()]
    if len(entries) != len(names):
        twice = next(n for n, count in Counter(names).items() if count > 1)
        raise errors.ImportIntegrityError(
            f"{name}: {twice} is in the zip more than once (tools disagree on which copy "
            "it holds)")
    package = entries.get("datapackage.json")
    if package is None:
        raise errors.ImportInputError(f"{name}: no datapackage.json (not a WACZ file)")
    if package.file_size > MAX_DATAPACKAGE_BYTES:
        raise errors.ImportInputError(f"{name}: datapackage.json is larger than "
                                      f"{MAX_DATAPACKAGE_BYTES} bytes")
    package_bytes = _read_entry(zf, package, name)
    try:
        document = loads_strict(package_bytes, max_bytes=MAX_DATAPACKAGE_BYTES,
                                what="datapackage.json", error=errors.ImportInputError)
    except errors.ImportInputError as exc:
        raise errors.ImportInputError(f"{name}: {exc}") from exc
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list) or not resources:
        raise errors.ImportInputError(f"{name}: datapackage.json lists no resources")
    _check_package_digest(zf, entries, package_bytes, name)
    listed: dict[str, tuple[str, int]] = {}
    for item in resources:
        where = item.get("path") if isinstance(item, dict) else None
        digest = item.get("hash") if isinstance(item, dict) else None
        size = item.get("bytes") if isinstance(item, dict) else None
        if not (isinstance(where, str) and isinstance(digest, str)
                and digest.startswith("sha256:") and type(size) is int and size >= 0):
            raise errors.ImportInputError(f"{name}: a datapackage.json resource lacks its "
                                          "path, sha256 hash or size in bytes")
        if where in listed:
            raise errors.ImportIntegrityError(f"{name}: datapackage.json lists {where} more "
                                              "than once")
        listed[where] = (digest.removeprefix("sha256:").lower(), size)
    warcs = sorted(p for p in entries if _WACZ_WARC.match(p))
    unlisted = [p for p in warcs if p not in listed]
    if unlisted:
        raise errors.ImportIntegrityError(f"{name}: {unlisted[0]} is not listed in "
                                          "datapackage.json, so it cannot be checked")
    if not warcs:
        raise errors.ImportInputError(f"{name}: no WARC file under archive/")
    _check_declared_sizes(entries, listed, warcs, spool, name, file_size)
    received: list[_Received] = []
    for index, (where, (expected, size)) in enumerate(sorted(listed.items())):
        info = entries.get(where)
        if info is None:
            raise errors.ImportIntegrityError(f"{name}: {where} is listed in datapackage.json "
                                              "but not in the package")
        target = spool / f"member-{index}.warc" if where in warcs else None
        digests = _stream_entry(zf, info, size, target, name)
        if digests.sha256 != expected or digests.size != size:
            raise errors.ImportIntegrityError(f"{name}: {where}: SHA-256 or size differs from "
                                              "datapackage.json")
        if target is not None:
            received.append(_Received(target, digests, where))
    return received


def _check_declared_sizes(entries: dict[str, zipfile.ZipInfo],
                          listed: dict[str, tuple[str, int]], warcs: list[str], spool: Path,
                          name: str, file_size: int) -> None:
    """Before a byte is streamed: each entry's size in the zip is the one datapackage.json
    lists (exit 1 otherwise), at most :data:`MAX_WACZ_ENTRY_BYTES`; the entries together
    expand to at most :data:`MAX_EXPANSION` times the file plus :data:`EXPANSION_FLOOR` (as a
    WARC file's records: a few hundred bytes of bzip2 each unpack to a GiB of zeros, a minute
    of CPU for a 9 KB file), and the WARC files together fit in the spool's free space,
    :data:`SPOOL_MARGIN_BYTES` left over (exit 2): a zip declaring terabytes of deflated
    zeros never fills the disk."""
    for where, (_digest, size) in sorted(listed.items()):
        info = entries.get(where)
        if info is None:
            continue  # reported as missing when its turn comes
        if info.file_size != size:
            raise errors.ImportIntegrityError(
                f"{name}: {where}: the zip declares {info.file_size} bytes, datapackage.json "
                f"{size}")
        if size > MAX_WACZ_ENTRY_BYTES:
            raise errors.ImportInputError(
                f"{name}: {where} declares {size} bytes, over preserve's bound of "
                f"{MAX_WACZ_ENTRY_BYTES} bytes for one WACZ entry")
        if size > MAX_EXPANSION * info.compress_size + EXPANSION_FLOOR:
            raise errors.ImportInputError(
                f"{name}: {where} declares {size} bytes from {info.compress_size} in the zip, "
                f"over {MAX_EXPANSION} times (a decompression bomb?); preserve does not "
                "unpack it")
    declared = sum(entries[where].file_size for where in listed if where in entries)
    if declared > MAX_EXPANSION * file_size + EXPANSION_FLOOR:
        raise errors.ImportInputError(
            f"{name}: its entries declare {declared} bytes from a file of {file_size}, over "
            f"{MAX_EXPANSION} times its size plus {EXPANSION_FLOOR} (a decompression bomb?); "
            "preserve does not unpack it")
    needed = sum(listed[where][1] for where in warcs if where in listed)
    free = spool_free_bytes(spool)
    if needed + SPOOL_MARGIN_BYTES > free:
        raise errors.ImportInputError(
            f"{name}: its WARC files declare {needed} bytes, more than the {free} bytes free "
            f"where they would be spooled ({spool.parent}) less a margin of "
            f"{SPOOL_MARGIN_BYTES}")


def spool_free_bytes(spool: Path) -> int:
    """Bytes free to an unprivileged writer on the file system holding ``spool``."""
    try:
        return shutil.disk_usage(spool).free
    except OSError as exc:
        raise errors.StorageError(f"cannot tell the free space of {spool}: {exc}") from exc


def _check_package_digest(zf: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo],
                          package_bytes: bytes, name: str) -> None:
    """``datapackage-digest.json``, when present, must hold the hash of datapackage.json."""
    info = entries.get("datapackage-digest.json")
    if info is None:
        return
    if info.file_size > 1 << 20:
        raise errors.ImportInputError(f"{name}: datapackage-digest.json is too large")
    try:
        digest = loads_strict(_read_entry(zf, info, name), max_bytes=1 << 20,
                              what="datapackage-digest.json", error=errors.ImportInputError)
    except errors.ImportInputError as exc:
        raise errors.ImportInputError(f"{name}: {exc}") from exc
    claimed = digest.get("hash") if isinstance(digest, dict) else None
    own = "sha256:" + hashlib.sha256(package_bytes).hexdigest()
    if not isinstance(claimed, str) or claimed.lower() != own:
        raise errors.ImportIntegrityError(f"{name}: datapackage-digest.json does not hold the "
                                          "SHA-256 of datapackage.json")


def _readable(info: zipfile.ZipInfo, name: str) -> None:
    """Refuse (exit 2) a zip entry that is encrypted or uses a compression method preserve
    does not read, before opening it."""
    if info.flag_bits & 0x1:
        raise errors.ImportInputError(f"{name}: {info.filename} is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        raise errors.ImportInputError(f"{name}: {info.filename} uses zip compression method "
                                      f"{info.compress_type}, which preserve does not read")


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    """A small zip entry whole (its size was checked against a bound by the caller)."""
    _readable(info, name)
    try:
        return zf.read(info)
    except _ZIP_DAMAGE as exc:
        raise errors.ImportIntegrityError(f"{name}: {info.filename} cannot be read: {exc}") \
            from exc


def _stream_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, declared: int,
                  target: Path | None, name: str) -> Digests:
    """Hash one zip entry while streaming it (to ``target`` when given). Reading stops, and
    the file is refused, as soon as the entry yields more than ``declared`` bytes: no more
    than that is ever written, whatever its compressed data expands to."""
    _readable(info, name)
    hasher = DualHasher()
    out: contextlib.AbstractContextManager[BinaryIO | None] = (
        target.open("xb") if target is not None else contextlib.nullcontext())
    read = 0
    try:
        with zf.open(info) as entry, out as sink:
            while block := entry.read(min(_BLOCK, declared - read + 1)):
                read += len(block)
                if read > declared:
                    raise errors.ImportIntegrityError(
                        f"{name}: {info.filename} holds more than the {declared} bytes "
                        "datapackage.json lists")
                hasher.update(block)
                if sink is not None:
                    sink.write(block)
    except _ZIP_DAMAGE as exc:
        raise errors.ImportIntegrityError(f"{name}: {info.filename} cannot be read: {exc}") \
            from exc
    return hasher.digests()


# --- pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    response: ForeignRecord
    records: tuple[ForeignRecord, ...]  # in file order, the response among them
    request: ForeignRecord | None
    warcinfo: ForeignRecord | None
    named: bool  # given with --url


@dataclass(frozen=True)
class _PageAt:
    """A page's response, where it is in the file and the last warcinfo record before it."""

    index: int
    response: ForeignRecord
    last_info: ForeignRecord | None
    named: bool


def _page_responses(found: ForeignWarc, wanted: set[str], found_urls: set[str],
                    sniff_html: Callable[[ForeignRecord], bool]) -> Iterator[_PageAt]:
    """The responses of one scanned file that are pages, in file order (``sniff_html``
    tells whether a response without a Content-Type holds HTML); ImportInputError past
    :data:`MAX_PAGES`."""
    last_info: ForeignRecord | None = None
    count = 0
    for index, record in enumerate(found.records):
        if record.type == "warcinfo":
            last_info = record
        if record.type != "response" or record.http is None or record.target_uri is None:
            continue
        named = record.target_uri in wanted
        if named:
            found_urls.add(record.target_uri)
        if not (named or _is_html_page(record, sniff_html)):
            continue
        if count >= MAX_PAGES:
            raise errors.ImportInputError(f"more than {MAX_PAGES} pages in one WARC file")
        count += 1
        yield _PageAt(index, record, last_info, named)


def _count_pages(received: _Received, found: ForeignWarc, wanted: set[str],
                 found_urls: set[str]) -> int:
    """How many pages one scanned file holds (every bound checked before any is imported)."""
    sniff_html = functools.partial(_sniff_html, received, found)
    return sum(1 for _at in _page_responses(found, wanted, found_urls, sniff_html))


def _pages(received: _Received, found: ForeignWarc, wanted: set[str]) -> Iterator[_Page]:
    """The pages of one scanned file, one at a time, with the records each manifest names."""
    sniff_html = functools.partial(_sniff_html, received, found)
    for at in _page_responses(found, wanted, set(), sniff_html):
        yield _page(found.records, at)


def _page(records: RecordStore, at: _PageAt) -> _Page:
    record = at.response
    request = _request_of(record, records, at.index)
    info = records.by_id(record.warcinfo_id or "")
    warcinfo = info if info is not None and info.type == "warcinfo" else at.last_info
    related = [r for r in records.linked(record.record_id)
               if r.type in ("metadata", "resource", "conversion")]
    chosen = {r.offset: r for r in [record, *related[:MAX_PAGE_RECORDS]]
              if r.type in RECORD_TYPES}
    for extra in (request, warcinfo):
        if extra is not None:
            chosen[extra.offset] = extra
    return _Page(record, tuple(chosen[o] for o in sorted(chosen)), request, warcinfo, at.named)


def _is_html_page(record: ForeignRecord, sniff_html: Callable[[ForeignRecord], bool]) -> bool:
    assert record.http is not None
    status = record.http.status
    if status is None or not 200 <= status < 300 or status in _NOT_PAGE_STATUSES:
        return False
    media_type, _ = media_type_and_charset(record.http.get("content-type"))
    return media_type in HTML_TYPES if media_type is not None else sniff_html(record)


def _sniff_html(received: _Received, found: ForeignWarc, record: ForeignRecord) -> bool:
    """Whether the first bytes of a response's (decoded) payload look like HTML."""
    try:
        head, _ = warc.read_record_payload(received.path, record.offset, 512,
                                           decompressed=found.framing == FRAMING_STREAM)
    except errors.ArchiveError:
        return False
    return _looks_like_html(head)


def _request_of(response: ForeignRecord, records: RecordStore,
                index: int) -> ForeignRecord | None:
    """The request record of a response: linked by WARC-Concurrent-To either way, else the
    nearest request before it for the same URI."""
    for record_id in response.concurrent_to:
        found = records.by_id(record_id)
        if found is not None and found.type == "request":
            return found
    for found in records.linked(response.record_id):
        if found.type == "request":
            return found
    return records.nearest_before(index, 50, "request", response.target_uri)


class _ImportedBefore:
    """Which pages an earlier import committed: the capture id under which it committed a
    response record of a stored WARC file, read from the logged manifests of the record's
    URL (never a planted manifest). The catalog is brought up to the log once, and the
    captures of the URLs met last are remembered (a crawl names a URL many times)."""

    def __init__(self, archive: Archive) -> None:
        self._captures_of = functools.lru_cache(maxsize=1024)(self._imports_of)
        self._logged = archive.logged_captures_lookup()

    def __call__(self, sha256: str, response: ForeignRecord) -> str | None:
        """The capture id of ``response`` of the stored WARC file of SHA-256 ``sha256``."""
        if not response.target_uri:
            return None
        return self._captures_of(response.target_uri).get((sha256, response.record_id))

    def _imports_of(self, url: str) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        for m in self._logged(url):
            if m.imported is not None and m.extraction.source is not None:
                found.setdefault((m.warc.sha256, m.extraction.source.record), m.capture_id)
        return found


# --- manifests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileFacts:
    """What every page of one stored WARC file shares."""

    source: Path  # the file given
    imported_source: dict[str, Any]  # the manifests' import.source
    received_at: datetime
    ended: str
    operator: str
    objects: Path  # where text and comments are spooled


def _prepare_file(imported_before: _ImportedBefore, received: _Received, found: ForeignWarc,
                  wanted: set[str], facts: _FileFacts, drafts: SpilledDrafts,
                  results: _Results, already: list[str]) -> None:
    """Every page of one stored WARC file not imported before, sealed and added to
    ``drafts`` as it is reached (its text and comments spooled, its result to ``results``);
    the ids of pages imported before go to ``already``."""
    suffix = ".warc" if found.framing == FRAMING_PLAIN else ".warc.gz"
    rel: str | None = None
    for page in _pages(received, found, wanted):
        before = imported_before(received.digests.sha256, page.response)
        if before is not None:
            already.append(before)
            continue
        capture_id = new_capture_id(facts.received_at)
        rel = rel or f"{WARC_DIR}/{facts.received_at:%Y/%m}/{capture_id}{suffix}"
        try:
            prepared = _prepare_page(
                received, found, page, capture_id=capture_id, rel=rel,
                imported_source=facts.imported_source, received_at=facts.received_at,
                ended=facts.ended, operator=facts.operator, objects=facts.objects)
        except errors.ManifestError as exc:  # a claim of the file that no manifest can hold
            raise errors.ImportInputError(f"{facts.source.name}: record "
                                          f"{page.response.record_id} cannot be recorded: "
                                          f"{exc}") from exc
        except errors.ArchiveError as exc:  # the spooled file, read again, is not as scanned
            raise errors.ImportIntegrityError(f"{facts.source.name}: record "
                                              f"{page.response.record_id}: {exc}") from exc
        drafts.add(prepared.to_draft())
        results.add(prepared)


def _prepare_page(received: _Received, found: ForeignWarc, page: _Page, *, capture_id: str,
                  rel: str, imported_source: dict[str, Any], received_at: datetime,
                  ended: str, operator: str, objects: Path) -> PreparedCapture:
    response = page.response
    http = response.http
    assert http is not None and response.target_uri is not None and http.status is not None
    url = response.target_uri
    for record in page.records:
        if not _RECORD_ID.match(record.record_id):
            raise errors.ImportInputError(f"record id {record.record_id!r} is not a URI")
    stream = found.framing == FRAMING_STREAM
    body, _headers = warc.read_record_body(received.path, response.offset, EXTRACT_LIMIT,
                                           decompressed=stream)
    payload = body.data
    content_type = http.get("content-type")
    media_type, charset = media_type_and_charset(content_type)
    is_html = (media_type in HTML_TYPES if media_type is not None
               else _looks_like_html(payload[:512]))
    notes: list[str] = []
    reason: str | None
    if is_html and not body.decoded:  # as a capture (and a browser): no text from raw bytes
        extraction = extract_html(b"", url)
        reason = f"content coding not decoded: {body.problem}"
    elif is_html:
        extraction = extract_html(payload, url, charset=charset)
        reason = extraction.reason
    else:
        extraction = extract_html(b"", url)
        reason = f"not HTML: content type {media_type or 'unknown'}"
    status = ("http-error" if http.status >= 400 else
              "redirect-not-followed" if 300 <= http.status < 400 else
              "not-html" if not is_html else "ok" if extraction.text else "no-text")
    if status == "redirect-not-followed":
        notes.append("an imported redirect response: its target is not part of this capture")
    original = response.date or ""
    when = _normal_date(original)
    if when is None:
        when = provenance.rfc3339(received_at)
        notes.append(f"the response's WARC-Date {original[:100]!r} is not an RFC 3339 UTC "
                     "time; the hop's times are the receipt time")
    ip = _ip(response.ip_address)
    if ip is None:
        notes.append("the file gives no valid WARC-IP-Address for the response"
                     if response.ip_address is None else
                     f"WARC-IP-Address {response.ip_address[:100]!r} is not an IP address")
    if response.truncated:
        notes.append(f"the writing tool marked the response truncated ({response.truncated})")
    if response.segment is not None:
        notes.append(f"the response is segment {response.segment[:20]!r} of a segmented record: "
                     "its text and digests are of this segment alone, not of the continuation "
                     "records that hold the rest")
    unhashed = [r.record_id for r in page.records if r.block_digest is None]
    if unhashed:
        notes.append(f"{len(unhashed)} record(s) carry no WARC-Block-Digest: only the file's "
                     "own SHA-256 and BLAKE3 vouch for them")
    wire = block_digests(received.path, response.offset, decompressed=stream)
    location = http.get("location")
    port = _port(url)
    hop = {
        "url": url,
        "method": (page.request.http.first if page.request is not None
                   and page.request.http is not None and page.request.http.first else "GET"),
        "status": http.status,
        "location": _joined(url, location) if location and 300 <= http.status < 400 else None,
        "remote_ip": ip, "remote_port": port, "started": when, "ended": when,
        "transfer_encoding": http.get("transfer-encoding"),
        "wire_sha256": wire.sha256, "wire_size": wire.size,
        "body_sha256": response.payload_sha256, "body_size": response.payload_size,
        "tls": None,
    }
    info = page.warcinfo
    started = provenance.rfc3339(received_at)
    document: dict[str, Any] = {
        "capture_id": capture_id,
        "requested_url": url,
        "final_url": url,
        "started": started,
        "ended": max(ended, started),
        "http": {"status": http.status, "reason": http.reason, "content_type": content_type},
        "redirects": [hop],
        "connection": {"remote_ip": ip, "remote_port": port, "local_ip": None, "tls": None},
        "software": provenance.software(),
        "host": provenance.host_name(),
        "operator": operator,
        "extractor": {"name": EXTRACTOR_NAME, "version": EXTRACTOR_VERSION,
                      "settings": {**EXTRACTOR_SETTINGS, "max_input_bytes": EXTRACT_LIMIT,
                                   "content_codings": decodable_codings()}},
        "status": status,
        "extraction": {
            "title": extraction.title, "byline": extraction.byline,
            "published": extraction.published, "language": extraction.language,
            "reason": reason, "source": {"kind": "response", "record": response.record_id},
        },
        "notes": notes,
        "import": {
            "source": imported_source,
            "framing": found.framing,
            "warcinfo": None if info is None else {
                "software": info.field("software"), "operator": info.field("operator"),
                "record": info.record_id},
            "original_date": original or "-",
            "received": started,
        },
    }
    text = _spooled(extraction.text, objects)
    comments = _spooled(extraction.comments_text, objects)
    written = warc.WarcWriteResult(
        records=tuple(warc.RecordRef(
            record_id=r.record_id, type=r.type, target_uri=r.target_uri, offset=r.offset,
            length=r.length, block_digest=r.block_digest, payload_digest=r.payload_digest,
            refers_to=r.refers_to if r.refers_to and _RECORD_ID.match(r.refers_to) else None,
            content_type=r.content_type) for r in page.records),
        digests=received.digests)
    prepared = PreparedCapture(capture_id=capture_id, started_at=received_at, kind="import",
                               requested_url=url, warc_tmp=received.path, warc=written,
                               text=text, comments=comments, document=document, warc_path=rel)
    prepared.seal()
    return prepared


def _spooled(text: str | None, objects: Path) -> SpooledObject | None:
    """``text`` (UTF-8) written to the spool directory ``objects``, or None when empty."""
    return spool_object(text.encode("utf-8"), objects) if text else None


def _looks_like_html(head: bytes) -> bool:
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return sample.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _normal_date(value: str) -> str | None:
    """A WARC-Date as the manifest's time (microseconds), or None if it is not RFC 3339 UTC."""
    match = _WARC_DATE.match(value.strip())
    if match is None:
        return None
    try:
        datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    fraction = (match.group(2) or "")[:6].ljust(6, "0")
    return f"{match.group(1)}.{fraction}Z"


def _ip(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _port(url: str) -> int:
    """The port of ``url`` (the scheme's default when it names none)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return 0
    if port is not None:
        return port
    return 443 if parts.scheme.lower() == "https" else 80



def _joined(url: str, location: str) -> str:
    """``location`` resolved against ``url``; as given when it cannot be (``http://[::1/``,
    say), as a live capture keeps it."""
    try:
        return urljoin(url, location)
    except ValueError:
        return location

__all__ = ["CaptureResults", "ImportOptions", "ImportResult", "import_file",
           "spool_free_bytes"]
