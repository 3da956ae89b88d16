"""The archive audit behind ``preserve verify``: returns a :class:`~preserve.audit.findings.Report`.

Default pass, for every manifest in ``manifests/``: it reads (bounded) and validates; its file
name matches its capture id, which no other manifest claims; its WARC file exists with the
recorded size, BLAKE3 and SHA-256 (hashed once, both digests in one streaming pass); its text
and comments objects exist and hash to their names (one larger than any text object can be is
reported from its size, unread). Then the tree is swept: files under
``archive/warc`` or ``archive/text`` that no manifest names, anything in ``archive/tmp``,
``manifests/.tmp-*`` debris, and entries the layout does not expect are reported.

``deep=True`` adds, per capture (:mod:`preserve.audit.deep`): every WARC record re-read
and matched with the manifest's record list; a browser capture's screenshot, PDF and rendered
DOM records re-hashed against the manifest's ``artifacts`` (E216/E217); and the document the
text came from (``extraction.source``: the rendered DOM of a browser capture, else the final
response) re-extracted and its text and comments hashes compared (a difference is an error
with the same extractor version, a warning when the version changed). Manifests of schema v1
and v2 are both checked. The catalog (``archive/index``) is compared with the manifests
(W507).

The manifests can also be checked in parts elsewhere (:func:`check_manifests`, on Dask
workers) and the audit finished here (:func:`finish_audit`).

Findings are data: nothing here raises because of what it finds; :class:`ArchiveError` is
raised only when the root cannot be audited at all. Every path taken from a manifest goes
through :func:`~preserve.storage.layout.resolve_inside`; files are opened with
``O_NOFOLLOW | O_NONBLOCK`` and read only if ``fstat`` says they are regular; symlinks are
never followed while sweeping, so nothing outside the root is opened. The integrity log
(``manifests/log``) is checked elsewhere (E3xx). The audit takes no lock: run it while no
capture is committing, or expect warnings for the capture in flight.

Speed and memory: manifests are checked by a pool of threads (``workers``, one per core;
hashing releases the GIL), a bounded number ahead of the one being reported, and merged in
manifest order, so the findings and their order do not depend on thread timing. With
``deep`` the record re-reads and re-extractions run in as many processes. Memory does not
depend on file sizes (one read buffer per thread) and grows with the archive only by compact
keys: the sorted manifest names, one byte per manifest, and a 16- or 32-byte key per
referenced WARC file and text object (what the tree sweep compares against).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import stat
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve.audit.file_index import IN_MEMORY_BELOW, FileIndex
from preserve.audit.findings import Code, Finding, Report
from preserve.audit.listing import sorted_entries
from preserve.audit.merged import MergedChecks, merge_all
from preserve.errors import ArchiveError, ManifestError, PreserveError, UnsafePathError
from preserve.hashing import BLOCK_SIZE, Digests, hash_fd
from preserve.log.archive_log import CHECKPOINT_DIR, KEY_FILE, LATEST_CHECKPOINT
from preserve.log.journal import JOURNAL_DIR
from preserve.log.storage import (
    ENTRIES_NAME,
    HEAD_NAME,
    INDEX_NAME,
    TREE_DIR_NAME,
    TransparencyLog,
)
from preserve.storage.catalog import (
    CATALOG_FILE,
    INDEX_DIR,
    CatalogRow,
    check_catalog,
    row_digest,
)
from preserve.storage.layout import (
    LOCK_FILE,
    LOG_DIR,
    MANIFEST_SUFFIX,
    MANIFEST_TMP_PREFIX,
    MANIFESTS_DIR,
    TEXT_DIR,
    TMP_DIR,
    WARC_DIR,
    WARC_SUFFIX,
    ArchiveLayout,
    InsideResolver,
    check_relative,
    is_hex_digest,
    relative_to_root,
    resolve_inside,
)
from preserve.storage.manifest import (
    SCHEMAS,
    Manifest,
    TextRef,
    WarcRecordRef,
    decode_manifest_json,
    manifest_from_dict,
    read_manifest_bytes,
)
from preserve.storage.text_store import MAX_OBJECT_BYTES

if TYPE_CHECKING:
    from preserve.audit.deep import DeepPool, DeepResult

#: Most bytes of a decoded response body handed to the extractor; must equal the limit used
#: at capture time (``preserve.archive.EXTRACT_LIMIT``; a test keeps them equal). A capture
#: records the limit it used (extractor setting ``max_input_bytes``) and is re-extracted
#: with that; captures that do not record one were made with ``LEGACY_REEXTRACT_LIMIT``.
REEXTRACT_LIMIT = 3 * 2**20
LEGACY_REEXTRACT_LIMIT = 16 * 2**20

#: Most bytes of holes a WARC file may have and still be read: preserve writes every byte of
#: its files (gzip output has no runs of zeros a copy could turn into holes); a manifest
#: edited to claim terabytes, beside a sparse file of that size, would otherwise have verify
#: hash terabytes of zeros before the log audit finds the manifest changed.
MAX_HOLE_BYTES = 2**30
#: Entries allowed directly below archive/ (index: storage.catalog; quarantine: repair).
_ARCHIVE_ENTRIES = frozenset(
    {"warc", "text", "tmp", "index", "quarantine", os.path.basename(LOCK_FILE)}
)
#: Manifests checked ahead of the one being reported, per worker thread (bounds memory).
_AHEAD_PER_WORKER = 4
#: Text object states kept for manifests that share a text (bounded; re-hashed if evicted).
_OBJECT_CACHE = 4096
#: Previous links looked up at once (see FileIndex: one statement, not one a link).
_PREVIOUS_BATCH = 512
#: Below this many manifests ``verify --deep`` checks in-line rather than starting processes.
DEEP_POOL_MIN_MANIFESTS = 8
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))

Progress = Callable[[int, int], None]
_SYMLINK, _DIR, _FILE, _OTHER = range(4)
#: What the integrity log's directory holds (name: kind); anything else there is W505.
_LOG_DIR_ENTRIES = {
    ENTRIES_NAME: _FILE, INDEX_NAME: _FILE, HEAD_NAME: _FILE, TREE_DIR_NAME: _DIR,
    KEY_FILE: _FILE, CHECKPOINT_DIR: _DIR, LATEST_CHECKPOINT: _FILE,
    LATEST_CHECKPOINT + ".tsr": _FILE, JOURNAL_DIR: _DIR,
}


@dataclass(slots=True)
class _ObjectState:
    """The outcome of reading one text object (cached: many manifests may share one)."""

    digests: Digests | None = None
    missing: bool = False
    error: str | None = None
    wrong_size: int | None = None  # its size, when not the one expected (then not hashed)
    too_large: int | None = None  # its size, when larger than any text object can be


@dataclass(slots=True)
class _Outcome:
    """What checking one manifest found, merged into the report in manifest order: ``head``
    (before the capture-id claim is checked), the claim, then ``tail`` and the deep result."""

    name: str
    rel: str
    head: list[Finding] = field(default_factory=list)
    capture_id: str | None = None
    previous: tuple[str, ...] = ()
    tail: list[Finding] = field(default_factory=list)
    warc_key: bytes | None = None
    warc_rel: str | None = None  # the WARC path the manifest names (for a split audit)
    catalog_row: bytes | None = None  # the digest of its catalog row (see storage.catalog)
    own_warc: bool = False  # names its own WARC file at the expected place: no key kept
    #: a page imported from another tool's file: (file, offsets count the decompressed
    #: stream, this page's records), re-read once per file after every manifest (deep)
    imported_records: tuple[Path, bool, tuple[WarcRecordRef, ...]] | None = None
    warc_checked: bool = False
    bytes_hashed: int = 0
    texts: list[tuple[bytes, bool]] = field(default_factory=list)  # (digest, hashed)
    deep: list[Future[DeepResult]] = field(default_factory=list)

    def add(self, code: Code, path: str, message: str, capture_id: str | None = None,
            **detail: Any) -> None:
        self.tail.append(Finding(code, path, message, capture_id, detail or None))


def _path_key(path: Path) -> bytes:
    """A compact key for a real path (what the sweep compares against)."""
    return hashlib.blake2b(os.fsencode(path), digest_size=16).digest()


_buffers = threading.local()


def _buffer() -> bytearray:
    buffer: bytearray | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = bytearray(BLOCK_SIZE)
    return buffer


@dataclass(slots=True)
class _SharedFile:
    """A WARC file imported from another tool that several manifests may name (one per page
    in it): its records are re-read once for all of them (deep)."""

    rel: str
    capture_id: str  # the first page's (the file is named after it)
    decompressed: bool
    pages: list[tuple[str, tuple[WarcRecordRef, ...]]] = field(default_factory=list)


@dataclass(slots=True)
class _Audit:
    root: Path
    deep: bool
    report: Report
    workers: int = 1
    layout: ArchiveLayout = field(init=False)
    resolve: InsideResolver = field(init=False)  # resolve_inside(self.root, ...), faster
    # What the audit keeps of every manifest (its name and two flags, the text objects it
    # names, its catalog row's digest) is in a scratch database, opened when first needed
    _index: FileIndex | None = field(default=None, init=False)
    small: bool = False  # a few manifests: the scratch database in memory
    odd_claims: dict[str, str] = field(default_factory=dict)  # id -> rel, file named otherwise
    # (capture id, previous id, rel) of previous links not yet looked up (in batches) ...
    pending_previous: list[tuple[str, str, str]] = field(default_factory=list)
    # ... and of those whose previous capture was not claimed when they were
    forward_previous: list[tuple[str, str, str]] = field(default_factory=list)
    # WARC files named other than by their own capture's manifest at the expected place
    # (that case is derived by the sweep from the file name): 16-byte keys
    referenced_warcs: set[bytes] = field(default_factory=set)
    #: a split audit's merged parts (:func:`finish_audit`): which WARC files they name
    merged: MergedChecks | None = None
    objects: OrderedDict[tuple[str, int], Future[_ObjectState]] = field(
        default_factory=OrderedDict)
    objects_lock: threading.Lock = field(default_factory=threading.Lock)
    deep_pool: DeepPool | None = None
    #: imported WARC files (several manifests name one): hashed once (a future per file)
    import_digests: dict[Path, Future[Digests]] = field(default_factory=dict)
    #: deep: the pages of each imported file, their records checked once per file at the end
    shared: dict[Path, _SharedFile] = field(default_factory=dict)
    #: the log's size when the manifests were listed (None: no log, or not known)
    log_size_at_start: int | None = None

    def __post_init__(self) -> None:
        self.layout = ArchiveLayout(self.root)
        self.resolve = InsideResolver(self.root)

    @property
    def index(self) -> FileIndex:
        if self._index is None:
            self._index = FileIndex(in_memory=self.small)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # --- helpers ---------------------------------------------------------------------------

    def rel(self, path: Path) -> str:
        try:
            return relative_to_root(self.root, path)
        except ValueError:
            return str(path)

    def add(self, code: Code, path: str, message: str, capture_id: str | None = None,
            **detail: Any) -> None:
        self.report.add(Finding(code, path, message, capture_id, detail or None))

    def safe_dir(self, directory: Path) -> bool:
        """True if ``directory`` is a real directory (not a symlink) that can be walked."""
        try:
            st = directory.lstat()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self.add(Code.E506, self.rel(directory), f"cannot inspect directory: {exc}")
            return False
        if stat.S_ISLNK(st.st_mode):
            self.report_symlink(directory)
            return False
        if not stat.S_ISDIR(st.st_mode):
            self.add(Code.W505, self.rel(directory), "expected a directory, found a file")
            return False
        return True

    def report_symlink(self, path: Path) -> None:
        try:
            resolve_inside(self.root, self.rel(path))
        except UnsafePathError:
            self.add(Code.E107, self.rel(path), "symlink leads outside the archive root; "
                     "not followed")
            return
        self.add(Code.W505, self.rel(path), "unexpected symlink; not followed")

    def scan(self, directory: Path) -> Iterator[tuple[str, int]]:
        """``(name, kind)`` of every entry, in the directory's order; kind is one of
        _SYMLINK, _DIR, _FILE, _OTHER, from the directory entry itself (symlinks not
        followed). A directory that cannot be read is E506 (after what it gave)."""
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        kind = _SYMLINK
                    elif entry.is_dir(follow_symlinks=False):
                        kind = _DIR
                    elif entry.is_file(follow_symlinks=False):
                        kind = _FILE
                    else:
                        kind = _OTHER
                    yield entry.name, kind
        except FileNotFoundError:
            return
        except OSError as exc:
            self.add(Code.E506, self.rel(directory), f"cannot list directory: {exc}")

    def listing(self, directory: Path) -> Iterator[tuple[str, int]]:
        """:meth:`scan`, sorted by name (names and kinds only; a large directory is sorted
        on disk: :mod:`preserve.audit.listing`)."""
        return sorted_entries(self.scan(directory))

    def walk_files(self, top: Path) -> Iterator[Path]:
        """Regular files below ``top`` in sorted order; symlinks and special files are
        reported, not followed (iterative: no recursion limit on hostile trees)."""
        pending: list[tuple[Path, Iterator[tuple[str, int]]]] = [(top, self.listing(top))]
        while pending:
            directory, entries = pending[-1]
            entry = next(entries, None)
            if entry is None:
                pending.pop()
                continue
            name, kind = entry
            path = directory / name
            if kind == _SYMLINK:
                self.report_symlink(path)
            elif kind == _DIR:
                pending.append((path, self.listing(path)))
            elif kind == _FILE:
                yield path
            else:
                self.add(Code.W505, self.rel(path), "unexpected special file")

    # --- the audit -------------------------------------------------------------------------

    def run(self, progress: Progress | None, only: AbstractSet[str] | None = None) -> None:
        """Check every manifest (or, with ``only``, those captures' manifests and files,
        without the cross-checks and the sweep), then sweep the tree and the catalog."""
        self.log_size_at_start = _log_size(self.layout.root)
        listed = self.list_manifests()
        if only is not None:
            listed = (n for n in listed if n[: -len(MANIFEST_SUFFIX)] in only)
        self.index.add_manifests(listed)
        total = self.index.manifest_count
        if self.deep:
            from preserve.audit.deep import DeepPool  # noqa: PLC0415 - only for --deep

            processes = self.workers if total >= DEEP_POOL_MIN_MANIFESTS else 1
            self.deep_pool = DeepPool(processes)
        ahead: deque[Future[_Outcome]] = deque()
        try:
            with ThreadPoolExecutor(max_workers=self.workers,
                                    thread_name_prefix="preserve-verify") as pool:
                done = 0
                for name in self.index.manifests():
                    ahead.append(pool.submit(self.check_manifest, name))
                    while ahead and (len(ahead) > self.workers * _AHEAD_PER_WORKER
                                     or _finished(ahead[0])):
                        done = self.merge(ahead.popleft().result(), done, total, progress)
                while ahead:
                    done = self.merge(ahead.popleft().result(), done, total, progress)
        finally:
            for pending in ahead:
                pending.cancel()
            if self.deep_pool is not None:
                self.deep_pool.close()
        self.report.stats.text_objects_checked += self.index.texts_hashed()
        self.check_shared_files()
        if only is not None:
            return
        self.look_up_previous()
        for capture_id, previous_id, rel in self.forward_previous:
            if self.claimant(previous_id) is None:
                self.add(Code.W110, rel, f"previous capture {previous_id} has no manifest",
                         capture_id)
        self.sweep_archive()
        self.check_catalog()

    def check_shared_files(self) -> None:
        """Deep, for files imported from other tools: each re-read once, every page's records
        matched by offset (records of other pages are expected there: no W215), and damage
        in records no page names reported once per file (E207)."""
        if not self.shared:  # (not even their modules: importing them is a fifth of a verify)
            return
        from preserve import warc  # noqa: PLC0415 - warcio: only for --deep
        from preserve.audit.deep import DeepResult, compare_record  # noqa: PLC0415

        for path, shared in sorted(self.shared.items()):
            out = DeepResult()
            checks: dict[int, warc.RecordCheck] = {}
            damaged: list[warc.RecordCheck] = []
            try:
                for found in warc.check_warc(path, decompressed=shared.decompressed):
                    out.records_checked += 1
                    if found.problems and len(damaged) < 100:
                        damaged.append(found)
                    if found.length:
                        checks[found.offset] = found
            except (OSError, ArchiveError) as exc:
                self.add(Code.E205, shared.rel, f"cannot re-read WARC records: {exc}",
                         shared.capture_id)
                continue
            cut_at = min((c.offset for c in damaged if not c.length), default=None)
            claimed: set[int] = set()
            for cid, records in shared.pages:
                for record in records:
                    claimed.add(record.offset)
                    check = checks.get(record.offset)
                    if check is None:
                        after = "" if cut_at is None or record.offset < cut_at else \
                            f" (file unreadable from offset {cut_at})"
                        out.add(Code.E210, shared.rel, f"no record {record.id} at offset "
                                f"{record.offset}{after}", cid, offset=record.offset,
                                record_id=record.id)
                        continue
                    compare_record(out, cid, shared.rel, record, check)
            for check in damaged:
                if check.length and check.offset in claimed:
                    continue  # reported with the page that names it
                out.add(Code.E207, shared.rel, f"offset {check.offset}: "
                        + "; ".join(check.problems), shared.capture_id, offset=check.offset)
            self.report.findings.extend(out.findings)
            self.report.stats.records_checked += out.records_checked

    def check_catalog(self) -> None:
        """The catalog must be derived from the manifests just checked (else W507); rows of
        leaves appended since the manifests were listed (a capture committed meanwhile) are
        not held to them."""
        meanwhile = range(0)
        if self.log_size_at_start is not None:
            meanwhile = range(self.log_size_at_start,
                              _log_size(self.layout.root) or self.log_size_at_start)
        from preserve.catalog_sync import logged_captures  # noqa: PLC0415

        for problem in check_catalog(self.layout, self.index.catalog_rows(), meanwhile,
                                     functools.partial(logged_captures, self.layout.root)):
            self.add(Code.W507, f"{INDEX_DIR}/{CATALOG_FILE}", f"the catalog is not derived "
                     f"from the manifests: {problem}; it is not trusted (repair rebuilds it)")

    def merge(self, outcome: _Outcome, done: int, total: int,
              progress: Progress | None) -> int:
        """Report one manifest's findings (in manifest order, whatever the thread timing)."""
        stats = self.report.stats
        stats.manifests_checked += 1
        self.report.findings.extend(outcome.head)
        cid = outcome.capture_id
        claims = False
        if cid is not None:
            named_so = outcome.name == cid + MANIFEST_SUFFIX
            # the manifest named after cid is this one, merged only now: not claimed yet
            claimant = self.odd_claims.get(cid) if named_so else self.claimant(cid)
            if claimant is not None:
                self.add(Code.E106, outcome.rel, f"capture id {cid} is also claimed by "
                         f"{claimant}", cid)
            elif named_so:
                claims = True
            else:
                self.odd_claims[cid] = outcome.rel
            if outcome.catalog_row is not None:
                self.index.add_catalog_rows((outcome.catalog_row,))
            if claims:  # before its previous links: a capture may name itself
                self.index.mark(outcome.name, claimed=True, own_warc=outcome.own_warc)
            self.pending_previous += [(cid, previous_id, outcome.rel)
                                      for previous_id in outcome.previous]
            if len(self.pending_previous) >= _PREVIOUS_BATCH:
                self.look_up_previous()
        if outcome.own_warc and not claims:
            self.index.mark(outcome.name, claimed=False, own_warc=True)
        self.report.findings.extend(outcome.tail)
        if not outcome.own_warc and outcome.warc_key is not None:
            self.referenced_warcs.add(outcome.warc_key)
        stats.warc_files_checked += outcome.warc_checked
        stats.bytes_hashed += outcome.bytes_hashed
        if outcome.texts:
            self.index.add_texts(outcome.texts)
        if outcome.imported_records is not None and outcome.capture_id is not None:
            path, decompressed, records = outcome.imported_records
            shared = self.shared.get(path)
            if shared is None:
                shared = self.shared[path] = _SharedFile(outcome.warc_rel or "",
                                                         outcome.capture_id, decompressed)
            shared.pages.append((outcome.capture_id, records))
        for future in outcome.deep:
            result = future.result()
            self.report.findings.extend(result.findings)
            stats.records_checked += result.records_checked
            stats.texts_reextracted += result.texts_reextracted
        done += 1
        if progress is not None:
            progress(done, total)
        return done

    def look_up_previous(self) -> None:
        """Keep the pending previous links whose previous capture is not claimed yet (a
        later manifest may still claim it; checked again at the end)."""
        pending, self.pending_previous = self.pending_previous, []
        claimed = self.index.claimed_among(
            {previous + MANIFEST_SUFFIX for _, previous, _ in pending})
        self.forward_previous += [
            (cid, previous, rel) for cid, previous, rel in pending
            if previous not in self.odd_claims and previous + MANIFEST_SUFFIX not in claimed]

    def claimant(self, capture_id: str) -> str | None:
        """The manifest already reported as claiming ``capture_id``, if any."""
        odd = self.odd_claims.get(capture_id)
        if odd is not None:
            return odd
        name = capture_id + MANIFEST_SUFFIX
        return f"{MANIFESTS_DIR}/{name}" if self.index.claimed(name) else None

    def list_manifests(self) -> Iterator[str]:
        """The names of the manifest files, in the directory's order; every other entry is
        reported, in name order, when the listing ends."""
        directory = self.layout.manifests_dir
        if not self.safe_dir(directory):
            return
        others: list[tuple[str, int]] = []
        for name, kind in self.scan(directory):
            if kind == _FILE and name.endswith(MANIFEST_SUFFIX) \
                    and not name.startswith(MANIFEST_TMP_PREFIX):
                yield name
            else:
                others.append((name, kind))
        log_name = LOG_DIR.rsplit("/", 1)[-1]
        for name, kind in sorted(others):
            path = directory / name
            if name.startswith(MANIFEST_TMP_PREFIX):
                self.add(Code.W504, self.rel(path), "leftover temporary manifest file")
            elif kind == _SYMLINK:
                self.report_symlink(path)
            elif kind == _DIR:
                if name != log_name:
                    self.add(Code.W505, self.rel(path), "unexpected directory in manifests/")
                else:
                    self.sweep_log_dir(path)
            else:
                self.add(Code.W505, self.rel(path), "unexpected file in manifests/")

    def sweep_log_dir(self, directory: Path) -> None:
        """Report what the integrity log's directory holds beyond what preserve keeps there
        (its own files are checked by the log audit; temporary files of a write in progress
        are left alone: the next writer removes those of an interrupted one)."""
        for name, kind in self.listing(directory):
            if name.startswith(".tmp-") and kind == _FILE:
                continue
            expected = _LOG_DIR_ENTRIES.get(name)
            if expected is None or kind not in (expected, _SYMLINK):
                what = "directory" if kind == _DIR else "file"
                self.add(Code.W505, self.rel(directory / name),
                         f"unexpected {what} in {LOG_DIR}/")

    def check_manifest(self, name: str) -> _Outcome:
        """Check one manifest (in a worker thread); touches only thread-safe shared state."""
        path = self.layout.manifests_dir / name
        rel = self.rel(path)
        out = _Outcome(name, rel)
        head = out.head

        def early(code: Code, message: str, capture_id: str | None = None) -> _Outcome:
            head.append(Finding(code, rel, message, capture_id, None))
            return out

        try:
            data = read_manifest_bytes(path)
        except (OSError, ArchiveError) as exc:
            return early(Code.E101, f"cannot read manifest: {exc}")
        try:
            obj = decode_manifest_json(data)
        except ManifestError as exc:
            return early(Code.E102, str(exc))
        claimed = obj.get("capture_id")
        claimed_id = claimed if isinstance(claimed, str) else None
        if obj.get("schema") not in SCHEMAS:
            self.mark_referenced_leniently(out, obj)
            return early(Code.E104, f"unsupported schema {obj.get('schema')!r}", claimed_id)
        try:
            manifest = manifest_from_dict(obj)
        except UnsafePathError as exc:
            self.mark_referenced_leniently(out, obj)
            return early(Code.E107, str(exc), claimed_id)
        except ManifestError as exc:
            self.mark_referenced_leniently(out, obj)
            return early(Code.E103, str(exc), claimed_id)
        del obj
        cid = manifest.capture_id
        out.catalog_row = row_digest(CatalogRow.of(manifest, hashlib.sha256(data).hexdigest()))
        try:
            canonical = manifest.to_bytes() == data
        except ManifestError:
            canonical = False
        del data
        if not canonical:
            head.append(Finding(Code.W109, rel, "manifest bytes are not in canonical form",
                                cid, None))
        if name != cid + MANIFEST_SUFFIX:
            head.append(Finding(Code.E105, rel, f"file name should be {cid}{MANIFEST_SUFFIX}",
                                cid, None))
        out.capture_id = cid
        out.previous = manifest.previous
        warc_path = self.check_warc_file(out, manifest)
        for ref, kind in ((manifest.text, "text"), (manifest.comments, "comments")):
            if ref is not None:
                self.check_text_ref(out, manifest, ref, kind)
        if self.deep_pool is not None and warc_path is not None:
            if manifest.imported is not None:  # records once per file, in check_shared_files
                out.imported_records = (warc_path, manifest.stream_offsets,
                                        manifest.warc.records)
                out.deep = self.deep_pool.submit(manifest, warc_path, parts="text")
            else:
                out.deep = self.deep_pool.submit(manifest, warc_path)
        return out

    def mark_referenced_leniently(self, out: _Outcome, obj: Mapping[str, Any]) -> None:
        """Note what an invalid manifest names, so those files are not also called orphans."""
        warc_ref = obj.get("warc")
        if isinstance(warc_ref, Mapping):
            with contextlib.suppress(UnsafePathError):
                out.warc_key = _path_key(resolve_inside(self.root, str(warc_ref.get("path")),
                                                        under="archive"))
                out.warc_rel = str(warc_ref.get("path"))
        for key in ("text", "comments"):
            ref = obj.get(key)
            if isinstance(ref, Mapping) and is_hex_digest(ref.get("blake3")):
                out.texts.append((bytes.fromhex(ref["blake3"]), False))

    def check_no_detour(self, out: _Outcome, rel: str, real: Path, cid: str) -> None:
        """E107 when a file a manifest names is reached through a symlink inside the root:
        preserve makes none, and its bytes then live where nothing protects them (moved into
        ``archive/tmp``, a repair would clear them away). They are still checked."""
        if real != self.root / rel:
            out.add(Code.E107, rel, "reached through a symlink inside the archive, at "
                    f"{self.rel(real)!r}: the layout has none, and nothing protects a file "
                    "kept there", cid)

    # --- WARC files ------------------------------------------------------------------------

    def check_warc_file(self, out: _Outcome, manifest: Manifest) -> Path | None:
        """Check size and digests; returns the real path if the file can be read further."""
        ref = manifest.warc
        cid = manifest.capture_id
        try:
            path = self.resolve(ref.path, under="archive")
        except UnsafePathError as exc:
            out.add(Code.E107, ref.path, str(exc), cid)
            return None
        self.check_no_detour(out, ref.path, path, cid)
        out.warc_rel = ref.path
        started = datetime.strptime(cid[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expected_rel = self.layout.warc_rel_for(cid, started)
        if manifest.imported is not None:  # named after the first page imported from it
            if not _import_rel_ok(ref.path):
                out.add(Code.W111, ref.path, "expected archive/warc/YYYY/MM/<capture id>"
                        ".warc.gz (or .warc), the month of that capture id", cid)
        elif ref.path != expected_rel:
            out.add(Code.W111, ref.path, f"expected {expected_rel}", cid)
        if (ref.path == expected_rel and out.name == cid + MANIFEST_SUFFIX
                and path == self.root / expected_rel):
            out.own_warc = True
        else:
            out.warc_key = _path_key(path)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            out.add(Code.E201, ref.path, "WARC file named by the manifest is missing", cid)
            return None
        except OSError as exc:
            message = "WARC path is not a regular file" if exc.errno == errno.ELOOP else \
                f"cannot inspect WARC file: {exc}"
            out.add(Code.E205, ref.path, message, cid)
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                out.add(Code.E205, ref.path, "WARC path is not a regular file", cid)
                return None
            if st.st_size < ref.size:
                out.add(Code.E206, ref.path, f"WARC file is {st.st_size} bytes, manifest "
                        f"records {ref.size}", cid, actual_size=st.st_size,
                        expected_size=ref.size)
                return path
            if st.st_size > ref.size:
                out.add(Code.E202, ref.path, f"WARC file is {st.st_size} bytes, manifest "
                        f"records {ref.size}", cid, actual_size=st.st_size,
                        expected_size=ref.size)
                return None  # not re-read (deep): what is beyond the manifest is not ours
            holes = _hole_bytes(fd, st, MAX_HOLE_BYTES)
            if holes > MAX_HOLE_BYTES:
                out.add(Code.E205, ref.path, f"WARC file is sparse: at least {holes} of its "
                        f"{st.st_size} bytes are holes, never written; not read", cid)
                return None
            try:
                digests = self.shared_digests(out, fd, path) if manifest.imported is not None \
                    else self.own_digests(out, fd)
            except OSError as exc:
                out.add(Code.E205, ref.path, f"cannot read WARC file: {exc}", cid)
                return None
        except OSError as exc:
            out.add(Code.E205, ref.path, f"cannot inspect WARC file: {exc}", cid)
            return None
        finally:
            os.close(fd)
        if digests.size != ref.size:  # changed while we read it
            out.add(Code.E202, ref.path, f"WARC file size changed during the audit "
                    f"({digests.size} bytes read)", cid)
        if digests.blake3 != ref.blake3:
            out.add(Code.E203, ref.path, "WARC file BLAKE3 differs from the manifest", cid,
                    expected=ref.blake3, actual=digests.blake3)
        if digests.sha256 != ref.sha256:
            out.add(Code.E204, ref.path, "WARC file SHA-256 differs from the manifest", cid,
                    expected=ref.sha256, actual=digests.sha256)
        return path

    @staticmethod
    def own_digests(out: _Outcome, fd: int) -> Digests:
        digests = hash_fd(fd, _buffer())
        out.warc_checked = True
        out.bytes_hashed += digests.size
        return digests

    def shared_digests(self, out: _Outcome, fd: int, path: Path) -> Digests:
        """An imported file's digests, hashed (and counted) once for all its pages."""
        with self.objects_lock:
            future = self.import_digests.get(path)
            owner = future is None
            if future is None:
                future = self.import_digests[path] = Future()
        if not owner:
            return future.result()
        try:
            digests = self.own_digests(out, fd)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(digests)
        return digests

    # --- text objects ----------------------------------------------------------------------

    def check_text_ref(self, out: _Outcome, manifest: Manifest, ref: TextRef,
                       kind: str) -> None:
        cid = manifest.capture_id
        missing_code, corrupt_code = (Code.E401, Code.E402) if kind == "text" else \
            (Code.E403, Code.E404)
        expected_rel = self.layout.text_rel_for(ref.blake3)
        if ref.path != expected_rel:
            out.add(Code.E108, ref.path, f"{kind} path should be {expected_rel}", cid)
            return
        try:
            self.check_no_detour(out, ref.path, self.resolve(ref.path, under=TEXT_DIR), cid)
        except UnsafePathError as exc:
            out.add(Code.E107, ref.path, str(exc), cid)
            return
        state = self.referenced_object(out, ref.blake3, ref.size)
        if state.missing:
            out.add(missing_code, ref.path, f"{kind} object is missing", cid)
        elif state.wrong_size is not None:
            out.add(corrupt_code, ref.path, f"{kind} object is {state.wrong_size} bytes, "
                    f"manifest says {ref.size}", cid)
        elif state.too_large is not None:
            out.add(corrupt_code, ref.path, _too_large(kind, state.too_large), cid)
        elif state.error is not None:
            out.add(Code.E405, ref.path, f"cannot read {kind} object: {state.error}", cid)
        elif state.digests is not None:
            if state.digests.blake3 != ref.blake3:
                out.add(corrupt_code, ref.path, f"{kind} object does not hash to its name",
                        cid, actual=state.digests.blake3)
            elif state.digests.size != ref.size:
                out.add(corrupt_code, ref.path, f"{kind} object is {state.digests.size} "
                        f"bytes, manifest says {ref.size}", cid)

    def referenced_object(self, out: _Outcome, hex_id: str, size: int) -> _ObjectState:
        """The state of a text object a manifest names with ``size`` bytes; each object is
        hashed once while in the (bounded) cache, and counted once. One of another size is
        not hashed at all (a sparse file of terabytes would take hours)."""
        owner = False
        key = (hex_id, size)
        with self.objects_lock:
            future = self.objects.get(key)
            if future is not None:
                self.objects.move_to_end(key)
            else:
                future = self.objects[key] = Future()
                owner = True
                if len(self.objects) > _OBJECT_CACHE:
                    self.objects.popitem(last=False)
        if owner:
            try:
                state = self.object_state(hex_id, out, expected_size=size)
            except BaseException as exc:
                future.set_exception(exc)
                raise
            future.set_result(state)
        else:
            state = future.result()
        out.texts.append((bytes.fromhex(hex_id), state.digests is not None))
        return state

    def object_state(self, hex_id: str, out: _Outcome | None = None, *,
                     expected_size: int | None = None) -> _ObjectState:
        state = _ObjectState()
        path = self.resolve(self.layout.text_rel_for(hex_id), under=TEXT_DIR)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            state.missing = True
            return state
        except OSError as exc:
            state.error = "not a regular file" if exc.errno == errno.ELOOP else str(exc)
            return state
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                state.error = "not a regular file"
            elif expected_size is not None and st.st_size != expected_size:
                state.wrong_size = st.st_size
            elif st.st_size > MAX_OBJECT_BYTES:  # a sparse file of terabytes: never read
                state.too_large = st.st_size
            else:
                state.digests = hash_fd(fd, _buffer())
                if out is not None:
                    out.bytes_hashed += state.digests.size
                else:
                    self.report.stats.bytes_hashed += state.digests.size
        except OSError as exc:
            state.error = str(exc)
        finally:
            os.close(fd)
        return state

    # --- sweep -----------------------------------------------------------------------------

    def sweep_archive(self) -> None:
        archive_dir = self.layout.archive_dir
        if not self.safe_dir(archive_dir):
            return
        for name, kind in self.listing(archive_dir):
            if name not in _ARCHIVE_ENTRIES:
                path = archive_dir / name
                if kind == _SYMLINK:
                    self.report_symlink(path)
                else:
                    self.add(Code.W505, self.rel(path), "unexpected entry in archive/")
        tmp_dir = self.root / TMP_DIR
        if self.safe_dir(tmp_dir):
            for name, _ in self.listing(tmp_dir):
                self.add(Code.W503, self.rel(tmp_dir / name),
                         "leftover temporary file or directory")
        warc_dir = self.root / WARC_DIR
        if self.safe_dir(warc_dir):
            for path in self.walk_files(warc_dir):
                if not self.warc_referenced(path):
                    self.add(Code.W501, self.rel(path), "no manifest names this WARC file")
        text_dir = self.root / TEXT_DIR
        if self.safe_dir(text_dir):
            for path in self.walk_files(text_dir):
                self.sweep_text_object(path)

    def warc_referenced(self, path: Path) -> bool:
        """Whether a manifest names the WARC file at ``path`` (a real path)."""
        if self.merged is not None:
            return self.merged.names_warc(path.relative_to(self.root).as_posix())
        name = path.name
        if name.endswith(WARC_SUFFIX):
            cid = name[: -len(WARC_SUFFIX)]
            if self.index.own_warc(cid + MANIFEST_SUFFIX):
                started = datetime.strptime(cid[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                if path == self.root / self.layout.warc_rel_for(cid, started):
                    return True
        return _path_key(path) in self.referenced_warcs

    def sweep_text_object(self, path: Path) -> None:
        rel = self.rel(path)
        name = path.name
        try:
            check_relative(rel, under=TEXT_DIR)
            well_placed = is_hex_digest(name) and rel == self.layout.text_rel_for(name)
        except UnsafePathError:
            well_placed = False
        if not well_placed:
            self.add(Code.W505, rel, "file in archive/text is not at archive/text/ab/cd/<hash>")
            return
        if self.index.text_named(bytes.fromhex(name)):
            return
        self.add(Code.W502, rel, "no manifest names this text object")
        state = self.object_state(name)
        if state.digests is not None:
            self.report.stats.text_objects_checked += 1
        if state.too_large is not None:
            self.add(Code.E402, rel, _too_large("text", state.too_large))
        elif state.error is not None:
            self.add(Code.E405, rel, f"cannot read text object: {state.error}")
        elif state.digests is not None and state.digests.blake3 != name:
            self.add(Code.E402, rel, "text object does not hash to its name",
                     actual=state.digests.blake3)


def _hole_bytes(fd: int, st: os.stat_result, limit: int) -> int:
    """Bytes of holes in the file ``fd`` (``st`` its stat), counted up to a little past
    ``limit`` (SEEK_DATA/SEEK_HOLE; 0 where the system cannot tell). A file whose blocks
    cover its size has none and is not searched."""
    if st.st_blocks * 512 >= st.st_size or not hasattr(os, "SEEK_DATA"):
        return 0
    holes = offset = 0
    try:
        while offset < st.st_size and holes <= limit:
            try:
                data = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no data past offset, a hole to the end
                    raise
                data = st.st_size
            holes += data - offset
            offset = os.lseek(fd, data, os.SEEK_HOLE) if data < st.st_size else data
    except OSError:
        return 0  # not supported here: the file is read as any other
    finally:
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
    return holes


def _too_large(kind: str, size: int) -> str:
    return (f"{kind} object is {size} bytes, larger than any text object can be "
            f"({MAX_OBJECT_BYTES}); not read")


_IMPORT_REL = re.compile(
    r"^archive/warc/([0-9]{4})/([0-9]{2})/"
    r"(([0-9]{4})([0-9]{2})[0-9]{2}T[0-9]{6}Z-[a-z2-7]{10})\.warc(\.gz)?$")


def _import_rel_ok(rel: str) -> bool:
    """An imported file is ``archive/warc/YYYY/MM/<capture id>.warc.gz`` (``.warc`` when
    uncompressed), named after the first page imported from it, in that id's month."""
    match = _IMPORT_REL.match(rel)
    return match is not None and match.group(1, 2) == match.group(4, 5)


def _finished(checked: Future[_Outcome]) -> bool:
    """A manifest's check is done, its deep jobs (run in other processes) too: merging it
    then does not wait. (Merging one whose deep jobs still ran held up the next manifests'
    checks, and a core sat idle while one large file was re-read.)"""
    if not checked.done():
        return False
    return checked.exception() is not None or all(job.done() for job in checked.result().deep)


def verify(root: Path, *, deep: bool = False, progress: Progress | None = None,
           workers: int | None = None, only: AbstractSet[str] | None = None) -> Report:
    """Audit the archive at ``root``; see the module docstring. ``progress(done, total)`` is
    called after each manifest, in order. ``workers``: threads hashing files (and, with
    ``deep``, processes re-reading records), default one per core; the findings and their
    order do not depend on it. ``only`` restricts the audit to these capture ids (their
    files and hashes, without the sweep for unreferenced files). Raises ArchiveError only if
    ``root`` cannot be audited."""
    root = Path(root)
    if not root.is_dir():
        raise ArchiveError(f"archive root {root} does not exist or is not a directory")
    real_root = root.resolve()
    layout = ArchiveLayout(real_root)
    if not (layout.archive_dir.exists() or layout.manifests_dir.exists()):
        raise ArchiveError(f"{root} is not an archive (no archive/ or manifests/ directory)")
    started = time.monotonic()
    report = Report(root=str(root), deep=deep,
                    started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    workers = max(1, workers if workers is not None else os.cpu_count() or 1)
    audit = _Audit(real_root, deep, report, workers)
    try:
        audit.run(progress, only)
    finally:
        audit.close()
    report.stats.duration_seconds = time.monotonic() - started
    return report


def _log_size(root: Path) -> int | None:
    """How many leaves the archive's log holds now (its head; None if it cannot be read)."""
    try:
        with TransparencyLog.open(root / LOG_DIR, readonly=True) as opened:
            return opened.size
    except (PreserveError, OSError):
        return None


# --- a split audit (Dask workers check parts; the client finishes) ---------------------------


@dataclass(slots=True)
class ManifestChecks:
    """What checking some manifests found (picklable: a Dask worker returns it): the findings
    in manifest order, counters, and what the sweep and cross-checks need."""

    findings: list[Finding]
    stats: dict[str, int]
    warcs: set[str]  # relative paths of WARC files the manifests name
    texts: set[str]  # BLAKE3 names of text objects they name
    capture_ids: dict[str, str]  # capture id -> manifest path
    catalog_rows: set[bytes]
    previous: list[tuple[str, str, str]]
    #: manifest path -> (sha256, blake3, size) of the bytes checked (an object-store verify
    #: compares the log leaves with these, not with a second read that may differ)
    manifest_digests: dict[str, tuple[str, str, int]] = field(default_factory=dict)


_COUNTERS = ("manifests_checked", "warc_files_checked", "records_checked",
             "text_objects_checked", "texts_reextracted", "bytes_hashed")


def check_manifests(root: Path, manifest_rels: list[str], *, deep: bool = False) -> ManifestChecks:
    """Check the manifests ``manifest_rels`` (paths relative to ``root``, in manifest order)
    and every file they name, exactly as :func:`verify` does, without the sweep: one part of
    a split audit (see :func:`finish_audit`)."""
    real_root = Path(root).resolve()
    report = Report(root=str(root), deep=deep)
    audit = _Audit(real_root, deep, report, small=len(manifest_rels) < IN_MEMORY_BELOW)
    names = sorted(rel.rsplit("/", 1)[-1] for rel in manifest_rels)
    checks = ManifestChecks([], {}, set(), set(), {}, set(), [])
    try:
        audit.index.add_manifests(names)
        if deep:
            from preserve.audit.deep import DeepPool  # noqa: PLC0415 - only for --deep

            audit.deep_pool = DeepPool(1)
        for done, name in enumerate(names):
            outcome = audit.check_manifest(name)
            audit.merge(outcome, done, len(names), None)
            if outcome.warc_rel is not None:
                checks.warcs.add(outcome.warc_rel)
            checks.texts.update(key.hex() for key, _ in outcome.texts)
            cid = outcome.capture_id
            if cid is not None:
                checks.capture_ids.setdefault(cid, outcome.rel)
                checks.previous += [(cid, previous, outcome.rel)
                                    for previous in outcome.previous]
                if outcome.catalog_row is not None:
                    checks.catalog_rows.add(outcome.catalog_row)
        report.stats.text_objects_checked += audit.index.texts_hashed()
    finally:
        audit.close()
    checks.findings = report.findings
    checks.stats = {name: getattr(report.stats, name) for name in _COUNTERS}
    return checks


def manifest_rels(root: Path, report: Report) -> list[str]:
    """The manifests :func:`verify` checks, in its order (relative paths); what listing them
    finds (temp files, unexpected entries) goes into ``report``, first, as in verify."""
    audit = _Audit(Path(root).resolve(), report.deep, report)
    return [f"{MANIFESTS_DIR}/{name}" for name in sorted(audit.list_manifests())]


def merge_checks(report: Report, parts: list[ManifestChecks]) -> ManifestChecks:
    """Add the parts' findings and counters to ``report`` in the order given; a capture id
    claimed in two parts is E106, as within one. In memory: for the few parts of one chunk
    (a whole audit's parts are merged by :class:`~preserve.audit.merged.MergedChecks`)."""
    merged = ManifestChecks([], {}, set(), set(), {}, set(), [])
    for part in parts:
        for finding in part.findings:
            report.add(finding)
        for name, value in part.stats.items():
            setattr(report.stats, name, getattr(report.stats, name) + value)
        for cid, rel in part.capture_ids.items():
            if cid in merged.capture_ids:
                report.add(Finding(Code.E106, rel, f"capture id {cid} is also claimed by "
                                   f"{merged.capture_ids[cid]}", cid))
            else:
                merged.capture_ids[cid] = rel
        merged.warcs |= part.warcs
        merged.texts |= part.texts
        merged.catalog_rows |= part.catalog_rows
        merged.previous += part.previous
        merged.manifest_digests.update(part.manifest_digests)
    return merged


def finish_audit(root: Path, report: Report, parts: Iterable[ManifestChecks]) -> Report:
    """The rest of :func:`verify` after the manifests were checked in ``parts`` (in manifest
    order, merged as they come: see :mod:`preserve.audit.merged`): their findings,
    ``previous`` links, the sweep of the tree, the catalog."""
    real_root = Path(root).resolve()
    audit = _Audit(real_root, report.deep, report)
    with merge_all(report, parts) as merged:
        audit.merged = merged
        audit._index = merged.index  # the text objects and catalog rows the parts named
        for capture_id, previous_id, rel in merged.dangling_previous():
            audit.add(Code.W110, rel, f"previous capture {previous_id} has no manifest",
                      capture_id)
        audit.sweep_archive()
        audit.check_catalog()
    return report


__all__ = ["DEEP_POOL_MIN_MANIFESTS", "LEGACY_REEXTRACT_LIMIT", "MAX_HOLE_BYTES", "REEXTRACT_LIMIT",
           "ManifestChecks", "check_manifests", "finish_audit", "manifest_rels",
           "merge_checks", "verify"]
