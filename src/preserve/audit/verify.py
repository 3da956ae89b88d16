"""The archive audit behind ``preserve verify``: returns a :class:`~preserve.audit.findings.Report`.

Default pass, for every manifest in ``manifests/``: it reads (bounded) and validates; its file
name matches its capture id, which no other manifest claims; its WARC file exists with the
recorded size, BLAKE3 and SHA-256 (hashed once, both digests in one streaming pass); its text
and comments objects exist and hash to their names. Then the tree is swept: files under
``archive/warc`` or ``archive/text`` that no manifest names, anything in ``archive/tmp``,
``manifests/.tmp-*`` debris, and entries the layout does not expect are reported.

``deep=True`` adds: every WARC record is re-read (:func:`preserve.warc.check_warc`) and each
manifest record's offset, id, type, target, length and digests are checked against the file
and the digests recomputed; a browser capture's screenshot, PDF and rendered DOM records are
re-hashed against the manifest's ``artifacts`` (E216/E217); the document the text came from
(``extraction.source``: the rendered DOM of a browser capture, else the final response) is
re-extracted (:func:`preserve.warc.read_record_block` / :func:`preserve.warc.read_record_payload`
+ :func:`preserve.extract.extract`) and the BLAKE3 of the text and comments compared with the
manifest (a difference is an error with the same extractor version, a warning when the version
changed). Manifests of schema v1 and v2 are both checked.

Findings are data: nothing here raises because of what it finds; :class:`ArchiveError` is
raised only when the root cannot be audited at all. Every path taken from a manifest goes
through :func:`~preserve.storage.layout.resolve_inside`, symlinks are never
followed while sweeping, so nothing outside the root is opened. Files are streamed; memory
stays bounded (one manifest, one text object, one extraction input at a time). The integrity
log (``manifests/log``) is checked elsewhere (E3xx). The audit takes no lock: run it while
no capture is committing, or expect warnings for the capture in flight (temp files, a WARC
not yet named by a manifest).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

from preserve import warc
from preserve.audit.findings import Code, Finding, Report
from preserve.errors import ArchiveError, ManifestError, StorageError, UnsafePathError
from preserve.extract import EXTRACTOR_NAME, EXTRACTOR_VERSION, extract
from preserve.hashing import BLOCK_SIZE, Digests, DualHasher, blake3_hex, warc_digest_to_hex
from preserve.safe_io import open_binary
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
    TEXT_DIR,
    TMP_DIR,
    WARC_DIR,
    ArchiveLayout,
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

#: Most bytes of a decoded response body handed to the extractor; must equal the limit used
#: at capture time (``preserve.archive.EXTRACT_LIMIT``; a test keeps them equal).
REEXTRACT_LIMIT = 16 * 2**20

#: Entries allowed directly below archive/ (index: storage.catalog; quarantine: repair).
_ARCHIVE_ENTRIES = frozenset(
    {"warc", "text", "tmp", "index", "quarantine", os.path.basename(LOCK_FILE)}
)
_NOT_REEXTRACTED_REASONS = ("not HTML", "content coding not decoded")

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class _ObjectState:
    """The outcome of reading one text object (cached: many manifests may share one)."""

    digests: Digests | None = None
    missing: bool = False
    error: str | None = None


@dataclass(slots=True)
class _SharedFile:
    """A WARC file imported from another tool, which several manifests may name (one per page
    in it): its records are re-read once, and damage in records no manifest names is
    reported once, at the end."""

    rel: str
    capture_id: str
    claimed: set[int] = field(default_factory=set)
    damaged: list[warc.RecordCheck] = field(default_factory=list)


@dataclass(slots=True)
class _Audit:
    root: Path
    deep: bool
    report: Report
    layout: ArchiveLayout = field(init=False)
    referenced_warcs: set[Path] = field(default_factory=set)
    referenced_texts: set[str] = field(default_factory=set)
    objects: dict[str, _ObjectState] = field(default_factory=dict)
    capture_ids: dict[str, str] = field(default_factory=dict)
    catalog_rows: dict[str, bytes] = field(default_factory=dict)
    previous: list[tuple[str, str, str]] = field(default_factory=list)
    #: imported WARC files (several manifests may name one): digests, records, damage
    import_digests: dict[Path, Digests] = field(default_factory=dict)
    shared: dict[Path, _SharedFile] = field(default_factory=dict)
    #: the records of the last imported file re-read (its pages' manifests usually follow
    #: one another, so one file's records are kept, not every file's)
    record_cache: tuple[Path, dict[int, warc.RecordCheck]] | None = None

    def __post_init__(self) -> None:
        self.layout = ArchiveLayout(self.root)

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

    def scandir(self, directory: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as scan:
                return sorted(scan, key=lambda e: e.name)
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.add(Code.E506, self.rel(directory), f"cannot list directory: {exc}")
            return []

    def walk_files(self, top: Path) -> Iterator[Path]:
        """Regular files below ``top`` in sorted order; symlinks and special files are
        reported, not followed (iterative: no recursion limit on hostile trees)."""
        pending: list[list[os.DirEntry[str]]] = [self.scandir(top)[::-1]]
        while pending:
            if not pending[-1]:
                pending.pop()
                continue
            entry = pending[-1].pop()
            path = Path(entry.path)
            if entry.is_symlink():
                self.report_symlink(path)
            elif entry.is_dir(follow_symlinks=False):
                pending.append(self.scandir(path)[::-1])
            elif entry.is_file(follow_symlinks=False):
                yield path
            else:
                self.add(Code.W505, self.rel(path), "unexpected special file")

    # --- the audit -------------------------------------------------------------------------

    def run(self, progress: Progress | None, only: AbstractSet[str] | None = None) -> None:
        manifests = self.list_manifests()
        if only is not None:  # just these captures: no cross-checks, no sweep of the tree
            manifests = [p for p in manifests if p.name[: -len(MANIFEST_SUFFIX)] in only]
            for path in manifests:
                self.check_manifest(path)
            self.report_shared_damage()
            return
        total = len(manifests)
        for done, path in enumerate(manifests, start=1):
            self.check_manifest(path)
            if progress is not None:
                progress(done, total)
        self.report_shared_damage()
        for capture_id, previous_id, rel in self.previous:
            if previous_id not in self.capture_ids:
                self.add(Code.W110, rel, f"previous capture {previous_id} has no manifest",
                         capture_id)
        self.sweep_archive()
        for problem in check_catalog(self.layout, self.catalog_rows):
            self.add(Code.W507, f"{INDEX_DIR}/{CATALOG_FILE}", f"the catalog is not derived "
                     f"from the manifests: {problem}; it is not trusted (repair rebuilds it)")

    def list_manifests(self) -> list[Path]:
        directory = self.layout.manifests_dir
        if not self.safe_dir(directory):
            return []
        log_name = LOG_DIR.rsplit("/", 1)[-1]
        found: list[Path] = []
        for entry in self.scandir(directory):
            path = Path(entry.path)
            if entry.name.startswith(MANIFEST_TMP_PREFIX):
                self.add(Code.W504, self.rel(path), "leftover temporary manifest file")
            elif entry.is_symlink():
                self.report_symlink(path)
            elif entry.is_dir(follow_symlinks=False):
                if entry.name != log_name:
                    self.add(Code.W505, self.rel(path), "unexpected directory in manifests/")
            elif entry.is_file(follow_symlinks=False) and entry.name.endswith(MANIFEST_SUFFIX):
                found.append(path)
            else:
                self.add(Code.W505, self.rel(path), "unexpected file in manifests/")
        return found

    def check_manifest(self, path: Path) -> None:
        rel = self.rel(path)
        self.report.stats.manifests_checked += 1
        try:
            data = read_manifest_bytes(path)
        except (OSError, ArchiveError) as exc:
            self.add(Code.E101, rel, f"cannot read manifest: {exc}")
            return
        try:
            obj = decode_manifest_json(data)
        except ManifestError as exc:
            self.add(Code.E102, rel, str(exc))
            return
        claimed = obj.get("capture_id")
        claimed_id = claimed if isinstance(claimed, str) else None
        if obj.get("schema") not in SCHEMAS:
            self.add(Code.E104, rel, f"unsupported schema {obj.get('schema')!r}", claimed_id)
            self.mark_referenced_leniently(obj)
            return
        try:
            manifest = manifest_from_dict(obj)
        except UnsafePathError as exc:
            self.add(Code.E107, rel, str(exc), claimed_id)
            self.mark_referenced_leniently(obj)
            return
        except ManifestError as exc:
            self.add(Code.E103, rel, str(exc), claimed_id)
            self.mark_referenced_leniently(obj)
            return
        cid = manifest.capture_id
        self.catalog_rows[cid] = row_digest(CatalogRow.of(manifest,
                                                          hashlib.sha256(data).hexdigest()))
        try:
            canonical = manifest.to_bytes() == data
        except ManifestError:
            canonical = False
        if not canonical:
            self.add(Code.W109, rel, "manifest bytes are not in canonical form", cid)
        if path.name != cid + MANIFEST_SUFFIX:
            self.add(Code.E105, rel, f"file name should be {cid}{MANIFEST_SUFFIX}", cid)
        if cid in self.capture_ids:
            self.add(Code.E106, rel, f"capture id {cid} is also claimed by "
                     f"{self.capture_ids[cid]}", cid)
        else:
            self.capture_ids[cid] = rel
        self.previous.extend((cid, prev, rel) for prev in manifest.previous)
        warc_path = self.check_warc_file(manifest)
        for ref, kind in ((manifest.text, "text"), (manifest.comments, "comments")):
            if ref is not None:
                self.check_text_ref(manifest, ref, kind)
        if self.deep and warc_path is not None:
            self.check_records(manifest, warc_path)
            self.check_artifacts(manifest, warc_path)
            self.check_reextraction(manifest, warc_path)

    def mark_referenced_leniently(self, obj: Mapping[str, Any]) -> None:
        """Note what an invalid manifest names, so those files are not also called orphans."""
        warc_ref = obj.get("warc")
        if isinstance(warc_ref, Mapping):
            with contextlib.suppress(UnsafePathError):
                self.referenced_warcs.add(resolve_inside(self.root, str(warc_ref.get("path")),
                                                         under="archive"))
        for key in ("text", "comments"):
            ref = obj.get(key)
            if isinstance(ref, Mapping) and is_hex_digest(ref.get("blake3")):
                self.referenced_texts.add(ref["blake3"])

    # --- WARC files ------------------------------------------------------------------------

    def check_warc_file(self, manifest: Manifest) -> Path | None:
        """Check size and digests; returns the real path if the file can be read further."""
        ref = manifest.warc
        cid = manifest.capture_id
        try:
            path = resolve_inside(self.root, ref.path, under="archive")
        except UnsafePathError as exc:
            self.add(Code.E107, ref.path, str(exc), cid)
            return None
        self.referenced_warcs.add(path)
        started = datetime.strptime(cid[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expected_rel = self.layout.warc_rel_for(cid, started)
        if manifest.imported is not None:  # named after the first page imported from it
            if not _import_rel_ok(ref.path):
                self.add(Code.W111, ref.path, "expected archive/warc/YYYY/MM/<capture id>"
                         ".warc.gz (or .warc), the month of that capture id", cid)
        elif ref.path != expected_rel:
            self.add(Code.W111, ref.path, f"expected {expected_rel}", cid)
        try:
            st = path.stat()
        except FileNotFoundError:
            self.add(Code.E201, ref.path, "WARC file named by the manifest is missing", cid)
            return None
        except OSError as exc:
            self.add(Code.E205, ref.path, f"cannot inspect WARC file: {exc}", cid)
            return None
        if not stat.S_ISREG(st.st_mode):
            self.add(Code.E205, ref.path, "WARC path is not a regular file", cid)
            return None
        if path not in self.import_digests:  # an imported file shared by pages: once
            self.report.stats.warc_files_checked += 1
        if st.st_size < ref.size:
            self.add(Code.E206, ref.path, f"WARC file is {st.st_size} bytes, manifest records "
                     f"{ref.size}", cid, actual_size=st.st_size, expected_size=ref.size)
            return path
        if st.st_size > ref.size:
            self.add(Code.E202, ref.path, f"WARC file is {st.st_size} bytes, manifest records "
                     f"{ref.size}", cid, actual_size=st.st_size, expected_size=ref.size)
            return path
        try:
            digests = self.import_digests.get(path) or self.hash_file(path)
        except (OSError, StorageError) as exc:
            self.add(Code.E205, ref.path, f"cannot read WARC file: {exc}", cid)
            return None
        if manifest.imported is not None:  # other pages of the file: hashed once
            self.import_digests[path] = digests
        if digests.size != ref.size:  # changed while we read it
            self.add(Code.E202, ref.path, f"WARC file size changed during the audit "
                     f"({digests.size} bytes read)", cid)
        if digests.blake3 != ref.blake3:
            self.add(Code.E203, ref.path, "WARC file BLAKE3 differs from the manifest", cid,
                     expected=ref.blake3, actual=digests.blake3)
        if digests.sha256 != ref.sha256:
            self.add(Code.E204, ref.path, "WARC file SHA-256 differs from the manifest", cid,
                     expected=ref.sha256, actual=digests.sha256)
        return path

    def hash_file(self, path: Path) -> Digests:
        hasher = DualHasher()
        with open_binary(path, error=StorageError) as f:
            while block := f.read(BLOCK_SIZE):
                hasher.update(block)
        digests = hasher.digests()
        self.report.stats.bytes_hashed += digests.size
        return digests

    def check_records(self, manifest: Manifest, path: Path) -> None:
        """Deep: every record re-read; manifest records matched by offset."""
        if manifest.imported is not None:
            self.check_imported_records(manifest, path)
            return
        cid = manifest.capture_id
        rel = manifest.warc.path
        expected = {r.offset: r for r in manifest.warc.records}
        seen: set[int] = set()
        damaged_at: int | None = None
        try:
            for check in warc.check_warc(path):
                self.report.stats.records_checked += 1
                record = expected.get(check.offset) if check.length else None
                if record is None:
                    if check.problems:
                        damaged_at = check.offset if damaged_at is None else damaged_at
                        self.add(Code.E207, rel, f"offset {check.offset}: "
                                 + "; ".join(check.problems), cid, offset=check.offset)
                    else:
                        self.add(Code.W215, rel, f"record {check.record_id} ({check.type}) at "
                                 f"offset {check.offset} is not in the manifest", cid,
                                 offset=check.offset, record_id=check.record_id)
                    continue
                seen.add(check.offset)
                self.compare_record(cid, rel, record, check)
        except (OSError, ArchiveError) as exc:
            self.add(Code.E205, rel, f"cannot re-read WARC records: {exc}", cid)
            return
        for offset, record in sorted(expected.items()):
            if offset not in seen:
                after = "" if damaged_at is None or offset < damaged_at else \
                    f" (file unreadable from offset {damaged_at})"
                self.add(Code.E210, rel, f"no record {record.id} at offset {offset}{after}",
                         cid, offset=offset, record_id=record.id)

    def check_imported_records(self, manifest: Manifest, path: Path) -> None:
        """Deep, for a page imported from another tool's file: the file holds the records of
        other pages too, so records the manifest does not name are expected (no W215); the
        file is re-read once for all its pages, and damage anywhere in it is reported (E207,
        once per file, see :meth:`report_shared_damage`) as well as in this page's records."""
        cid = manifest.capture_id
        rel = manifest.warc.path
        shared = self.shared.get(path)
        if self.record_cache is not None and self.record_cache[0] == path:
            checks = self.record_cache[1]
        else:
            checks = {}
            damaged: list[warc.RecordCheck] = []
            try:
                for found in warc.check_warc(path, decompressed=manifest.stream_offsets):
                    if shared is None:
                        self.report.stats.records_checked += 1
                    if found.problems:
                        damaged.append(found)
                    if found.length:
                        checks[found.offset] = found
            except (OSError, ArchiveError) as exc:
                self.add(Code.E205, rel, f"cannot re-read WARC records: {exc}", cid)
                return
            self.record_cache = (path, checks)
            if shared is None:
                shared = self.shared[path] = _SharedFile(rel, cid, damaged=damaged[:100])
        if shared is None:
            shared = self.shared[path] = _SharedFile(rel, cid)
        damaged_at = min((c.offset for c in shared.damaged if not c.length), default=None)
        for record in manifest.warc.records:
            check = checks.get(record.offset)
            shared.claimed.add(record.offset)
            if check is None:
                after = "" if damaged_at is None or record.offset < damaged_at else \
                    f" (file unreadable from offset {damaged_at})"
                self.add(Code.E210, rel, f"no record {record.id} at offset {record.offset}"
                         f"{after}", cid, offset=record.offset, record_id=record.id)
                continue
            self.compare_record(cid, rel, record, check)

    def report_shared_damage(self) -> None:
        """Damage in an imported file's records that no manifest names (E207, once)."""
        for shared in self.shared.values():
            for check in shared.damaged:
                if check.length and check.offset in shared.claimed:
                    continue  # reported with the page that names it
                self.add(Code.E207, shared.rel, f"offset {check.offset}: "
                         + "; ".join(check.problems), shared.capture_id, offset=check.offset)

    def compare_record(self, cid: str, rel: str, record: WarcRecordRef,
                       check: warc.RecordCheck) -> None:
        where = f"record at offset {check.offset}"
        if check.record_id != record.id:
            self.add(Code.E211, rel, f"{where}: id is {check.record_id}, manifest says "
                     f"{record.id}", cid, offset=check.offset)
        differing = {
            name: (mine, theirs) for name, mine, theirs in (
                ("type", record.type, check.type),
                ("target_uri", record.target_uri, check.target_uri),
                ("length", record.length, check.length),
                ("block_digest", _digest_key(record.block_digest),
                 _digest_key(check.block_digest)),
                ("payload_digest", _digest_key(record.payload_digest),
                 _digest_key(check.payload_digest)),
            ) if mine != theirs
        }
        if differing:
            self.add(Code.E212, rel, f"{where}: {', '.join(sorted(differing))} differ from the "
                     "manifest", cid, offset=check.offset,
                     fields={k: {"manifest": v[0], "warc": v[1]} for k, v in differing.items()})
        truncated = any("truncated" in p for p in check.problems)
        if check.block_ok is False and not truncated:
            self.add(Code.E213, rel, f"{where}: block does not match WARC-Block-Digest", cid,
                     offset=check.offset)
        if check.payload_ok is False and not truncated:
            self.add(Code.E214, rel, f"{where}: payload does not match WARC-Payload-Digest",
                     cid, offset=check.offset)
        other = [p for p in check.problems if "digest" not in p or truncated]
        if other:
            self.add(Code.E207, rel, f"{where}: " + "; ".join(other), cid, offset=check.offset)

    def check_artifacts(self, manifest: Manifest, path: Path) -> None:
        """Deep: every screenshot/PDF/DOM record re-hashed against the manifest's artifacts."""
        cid = manifest.capture_id
        rel = manifest.warc.path
        offsets = {r.id: r.offset for r in manifest.warc.records}
        for artifact in manifest.artifacts or ():
            offset = offsets.get(artifact.record)
            if offset is None:  # the parser refuses this; kept for defence in depth
                self.add(Code.E216, rel, f"{artifact.kind} record {artifact.record} is not in "
                         "the manifest's record list", cid)
                continue
            try:
                _, digests = warc.read_record_block(path, offset, artifact.record, 0)
            except (OSError, ArchiveError) as exc:
                self.add(Code.E216, rel, f"cannot read the {artifact.kind} record: {exc}", cid,
                         offset=offset, record_id=artifact.record)
                continue
            self.report.stats.bytes_hashed += digests.size
            if (digests.sha256, digests.blake3, digests.size) != (
                    artifact.sha256, artifact.blake3, artifact.size):
                self.add(Code.E217, rel, f"the {artifact.kind} record does not match the "
                         "manifest's digests or size", cid, offset=offset,
                         record_id=artifact.record, expected=artifact.sha256,
                         actual=digests.sha256)

    # --- text objects ----------------------------------------------------------------------

    def check_text_ref(self, manifest: Manifest, ref: TextRef, kind: str) -> None:
        cid = manifest.capture_id
        missing_code, corrupt_code = (Code.E401, Code.E402) if kind == "text" else \
            (Code.E403, Code.E404)
        expected_rel = self.layout.text_rel_for(ref.blake3)
        if ref.path != expected_rel:
            self.add(Code.E108, ref.path, f"{kind} path should be {expected_rel}", cid)
            return
        try:
            resolve_inside(self.root, ref.path, under=TEXT_DIR)
        except UnsafePathError as exc:
            self.add(Code.E107, ref.path, str(exc), cid)
            return
        self.referenced_texts.add(ref.blake3)
        state = self.object_state(ref.blake3)
        if state.missing:
            self.add(missing_code, ref.path, f"{kind} object is missing", cid)
        elif state.error is not None:
            self.add(Code.E405, ref.path, f"cannot read {kind} object: {state.error}", cid)
        elif state.digests is not None:
            if state.digests.blake3 != ref.blake3:
                self.add(corrupt_code, ref.path, f"{kind} object does not hash to its name",
                         cid, actual=state.digests.blake3)
            elif state.digests.size != ref.size:
                self.add(corrupt_code, ref.path, f"{kind} object is {state.digests.size} bytes, "
                         f"manifest says {ref.size}", cid)

    def object_state(self, hex_id: str) -> _ObjectState:
        state = self.objects.get(hex_id)
        if state is None:
            state = _ObjectState()
            path = resolve_inside(self.root, self.layout.text_rel_for(hex_id), under=TEXT_DIR)
            try:
                if not stat.S_ISREG(path.lstat().st_mode):
                    state.error = "not a regular file"
                else:
                    state.digests = self.hash_file(path)
                    self.report.stats.text_objects_checked += 1
            except FileNotFoundError:
                state.missing = True
            except (OSError, StorageError) as exc:
                state.error = str(exc)
            self.objects[hex_id] = state
        return state

    # --- re-extraction ---------------------------------------------------------------------

    def check_reextraction(self, manifest: Manifest, path: Path) -> None:
        """Deep: re-extract the final response and compare text/comments hashes."""
        cid = manifest.capture_id
        # Not re-extracted: responses the capture did not extract from (not HTML, or a content
        # coding it could not undo); their text is null by construction.
        reason = manifest.extraction.reason or ""
        claims_text = manifest.text is not None or manifest.comments is not None
        if not claims_text and (manifest.status == "not-html"
                                or reason.startswith(_NOT_REEXTRACTED_REASONS)):
            return
        rel = manifest.warc.path
        source = manifest.extraction.source
        responses = [r for r in manifest.warc.records if r.type == "response"]
        final = [r for r in responses if r.target_uri == manifest.final_url] or responses
        if source is not None:
            final = [r for r in manifest.warc.records if r.id == source.record]
        if not final:
            self.add(Code.E408, rel, "no response record to re-extract from", cid)
            return
        record = final[-1]
        try:
            stream = manifest.stream_offsets
            if record.type == "resource":  # a rendered DOM: UTF-8 HTML as the browser made it
                payload, _ = warc.read_record_block(path, record.offset, record.id,
                                                    REEXTRACT_LIMIT, decompressed=stream)
                charset: str | None = "utf-8"
            else:
                payload, headers = warc.read_record_payload(path, record.offset,
                                                            REEXTRACT_LIMIT, decompressed=stream)
                # the capture decided the charset from the final response's first Content-Type
                charset = _charset(manifest.http.content_type or next(
                    (v for k, v in headers.items() if k.lower() == "content-type"), None))
        except (OSError, ArchiveError) as exc:
            self.add(Code.E408, rel, f"cannot read the {record.type} record to re-extract: "
                     f"{exc}", cid, offset=record.offset)
            return
        try:
            extraction = extract(payload, manifest.final_url, charset=charset)
        except Exception as exc:  # the extractor must not stop the audit; report what broke
            self.add(Code.E408, rel, f"extractor failed: {type(exc).__name__}: {exc}", cid)
            return
        self.report.stats.texts_reextracted += 1
        changed = (manifest.extractor.version != EXTRACTOR_VERSION
                   or manifest.extractor.name != EXTRACTOR_NAME)
        for kind, ref, produced in (("text", manifest.text, extraction.text),
                                    ("comments", manifest.comments, extraction.comments_text)):
            expected = ref.blake3 if ref is not None else None
            actual = blake3_hex(produced.encode("utf-8")) if produced else None
            if expected == actual:
                continue
            code = Code.W407 if changed else Code.E406
            self.add(code, ref.path if ref is not None else rel,
                     f"re-extracted {kind} differs from the manifest (extractor "
                     f"{manifest.extractor.name} {manifest.extractor.version} then, "
                     f"{EXTRACTOR_NAME} {EXTRACTOR_VERSION} now)", cid,
                     object=kind, expected=expected, actual=actual)

    # --- sweep -----------------------------------------------------------------------------

    def sweep_archive(self) -> None:
        archive_dir = self.layout.archive_dir
        if not self.safe_dir(archive_dir):
            return
        for entry in self.scandir(archive_dir):
            if entry.name not in _ARCHIVE_ENTRIES:
                path = Path(entry.path)
                if entry.is_symlink():
                    self.report_symlink(path)
                else:
                    self.add(Code.W505, self.rel(path), "unexpected entry in archive/")
        tmp_dir = self.root / TMP_DIR
        if self.safe_dir(tmp_dir):
            for entry in self.scandir(tmp_dir):
                self.add(Code.W503, self.rel(Path(entry.path)),
                         "leftover temporary file or directory")
        warc_dir = self.root / WARC_DIR
        if self.safe_dir(warc_dir):
            for path in self.walk_files(warc_dir):
                if path not in self.referenced_warcs:
                    self.add(Code.W501, self.rel(path), "no manifest names this WARC file")
        text_dir = self.root / TEXT_DIR
        if self.safe_dir(text_dir):
            for path in self.walk_files(text_dir):
                self.sweep_text_object(path)

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
        if name in self.referenced_texts:
            return
        self.add(Code.W502, rel, "no manifest names this text object")
        state = self.object_state(name)
        if state.error is not None:
            self.add(Code.E405, rel, f"cannot read text object: {state.error}")
        elif state.digests is not None and state.digests.blake3 != name:
            self.add(Code.E402, rel, "text object does not hash to its name",
                     actual=state.digests.blake3)


_IMPORT_REL = re.compile(
    r"^archive/warc/(\d{4})/(\d{2})/((\d{4})(\d{2})\d{2}T\d{6}Z-[a-z2-7]{10})\.warc(\.gz)?$")


def _import_rel_ok(rel: str) -> bool:
    """An imported file is ``archive/warc/YYYY/MM/<capture id>.warc.gz`` (``.warc`` when
    uncompressed), named after the first page imported from it, in that id's month."""
    match = _IMPORT_REL.match(rel)
    return match is not None and match.group(1, 2) == match.group(4, 5)


def _digest_key(label: str | None) -> tuple[str, str] | str | None:
    """A WARC digest label in comparable form (algorithm, hex); unparseable labels as-is."""
    if label is None:
        return None
    try:
        return warc_digest_to_hex(label)
    except ValueError:
        return label


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return charset if isinstance(charset, str) else None


def verify(root: Path, *, deep: bool = False, progress: Progress | None = None,
           only: AbstractSet[str] | None = None) -> Report:
    """Audit the archive at ``root``; see the module docstring. ``progress(done, total)`` is
    called after each manifest; ``only`` restricts the audit to these capture ids (their
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
    _Audit(real_root, deep, report).run(progress, only)
    report.stats.duration_seconds = time.monotonic() - started
    return report


__all__ = ["REEXTRACT_LIMIT", "verify"]
