"""What an export contains: the chosen captures, a snapshot of the integrity log, proofs.

:func:`plan_export` resolves capture ids (unique prefixes work), reads and validates each
manifest, takes a consistent snapshot of the integrity log (its committed size when the export
starts, and the newest signed checkpoint within it, with its RFC 3161 token if any) and finds
every capture's log leaf in one pass over the log. The plan keeps only a small summary per
capture (:class:`ExportCapture`); :meth:`ExportPlan.captures_loaded` then yields one
:class:`LoadedCapture` at a time (its manifest bytes re-read and checked against the plan, its
files located, its inclusion-proof bundle built: format ``preserve-proof/1``, the bundle
``preserve prove`` writes), so memory grows with the number of captures by a few hundred bytes
each, not with their manifests or files. The exporters (:mod:`.wacz`, :mod:`.bagit`) only
decide where each file goes.

:func:`descriptor` writes the ``preserve-export/1`` document that travels in every package and
says which captures it holds, where their files are, and whether the export is partial.

Nothing here writes to the archive or takes its lock: the log is append-only, so everything up
to the size read from its head is immutable while captures continue. The archive is read
through an :class:`~preserve.exchange.source.ArchiveSource`: a local directory or an
``s3://`` root, one code path for both.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve import log
from preserve._version import __version__
from preserve.archive import Archive
from preserve.errors import (
    LogError,
    ManifestError,
    ManifestNotLoggedError,
    NotFoundError,
    PreserveError,
    StorageError,
)
from preserve.exchange.files import SourceFile
from preserve.exchange.source import ArchiveSource, SourceLog, source_for
from preserve.hashing import Digests, hash_bytes
from preserve.log.archive_log import (
    CHECKPOINT_DIR,
    CHECKPOINT_NAME,
    KEY_FILE,
    LATEST_CHECKPOINT,
)
from preserve.log.entries import ManifestLeaf, manifest_path, parse_entry, utc_now
from preserve.log.proof import PROOF_FORMAT
from preserve.storage.manifest import Manifest, parse_manifest

if TYPE_CHECKING:
    from preserve.remote.archive import RemoteArchive

EXPORT_FORMAT = "preserve-export/1"
_APPEND_BATCH = 4096


@dataclass(frozen=True)
class ExportCapture:
    """One planned capture: enough to sort, describe and find it again, nothing large."""

    capture_id: str
    started: str
    requested_url: str
    final_url: str
    manifest_digests: Digests
    leaf_index: int | None = None
    leaf_entry: bytes | None = None
    proof_problem: str | None = None

    @property
    def manifest_rel(self) -> str:
        return manifest_path(self.capture_id)


@dataclass(frozen=True)
class LoadedCapture:
    """One capture while it is written out: its manifest, its files and its proof."""

    planned: ExportCapture
    manifest: Manifest
    manifest_bytes: bytes
    warc_file: SourceFile
    text_file: SourceFile | None
    comments_file: SourceFile | None
    proof: dict[str, Any] | None

    @property
    def capture_id(self) -> str:
        return self.planned.capture_id

    @property
    def manifest_rel(self) -> str:
        return self.planned.manifest_rel

    @property
    def manifest_digests(self) -> Digests:
        return self.planned.manifest_digests

    @property
    def proof_problem(self) -> str | None:
        return self.planned.proof_problem


@dataclass
class LogSnapshot:
    """The integrity log as of one moment: its size and the newest checkpoint within it."""

    source: ArchiveSource
    size: int
    root_hash: bytes
    key_text: bytes | None  # manifests/log/key.pub, exact bytes
    verifier: log.Verifier | None
    checkpoint: str | None = None  # the signed note
    checkpoint_size: int = 0
    checkpoint_name: str | None = None  # its file name in manifests/log/checkpoints/
    checkpoint_token: bytes | None = None  # RFC 3161 TimeStampResp stored beside it
    checkpoint_names: list[str] = field(default_factory=list)  # every stored one <= size
    problem: str | None = None  # why there are no proofs
    logged: set[str] = field(default_factory=set)  # capture ids with a manifest leaf


@dataclass
class ExportPlan:
    source: ArchiveSource
    captures: list[ExportCapture]
    snapshot: LogSnapshot | None
    omitted: int  # captures of the archive (or of its log) not in this export
    created: str = field(default_factory=utc_now)

    @property
    def partial(self) -> bool:
        return self.omitted > 0

    def warnings(self) -> list[str]:
        return [f"capture {c.capture_id}: no inclusion proof: {c.proof_problem}"
                for c in self.captures if c.proof_problem is not None]

    def captures_loaded(self) -> Iterator[LoadedCapture]:
        """Each planned capture loaded in turn (see :meth:`load`), one log open for all."""
        with contextlib.ExitStack() as stack:
            opened = (stack.enter_context(self.snapshot.source.open_log())
                      if self.snapshot is not None and self.snapshot.checkpoint is not None
                      else None)
            for capture in self.captures:
                yield self.load(capture, opened)

    def load(self, capture: ExportCapture, opened: SourceLog | None = None) -> LoadedCapture:
        """Re-read ``capture``'s manifest (it must still be the planned bytes), locate its
        files and build its proof bundle. Raises :class:`StorageError` otherwise."""
        source = self.source
        manifest, data = _read_manifest(source, capture.capture_id)
        if hash_bytes(data) != capture.manifest_digests:
            raise StorageError(f"the manifest of {capture.capture_id} changed during the export")
        try:
            warc = source.file(manifest.warc.path)
            text = source.file(manifest.text.path) if manifest.text else None
            comments = source.file(manifest.comments.path) if manifest.comments else None
        except (ManifestError, StorageError) as exc:
            raise StorageError(f"the manifest of {capture.capture_id} is invalid: {exc}") from exc
        proof = None
        if capture.proof_problem is None and self.snapshot is not None and \
                capture.leaf_index is not None and capture.leaf_entry is not None:
            proof = _proof(self.snapshot, capture, manifest, data, opened)
        return LoadedCapture(capture, manifest, data, warc, text, comments, proof)


def read_id_file(path: Path) -> list[str]:
    """Capture ids from a file: one per line; blank lines and ``#`` comments ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotFoundError(f"cannot read capture ids from {path}: {exc}") from exc
    ids = []
    for line in text.splitlines():
        item = line.split("#", 1)[0].strip()
        if item:
            ids.append(item)
    return ids


def plan_export(archive: Archive | RemoteArchive | ArchiveSource, ids: Sequence[str], *,
                all_captures: bool = False) -> ExportPlan:
    """Resolve ``ids`` (or every capture) and gather what the export needs.

    ``archive``: a directory (:class:`~preserve.archive.Archive`), an ``s3://`` root
    (:class:`~preserve.remote.archive.RemoteArchive`) or an
    :class:`~preserve.exchange.source.ArchiveSource` of either. Raises
    :class:`~preserve.errors.NotFoundError` for an unknown or ambiguous id and
    :class:`~preserve.errors.StorageError` when a manifest cannot be read or differs from its
    log entry (a damaged archive is not exported; ``preserve verify`` says more).
    """
    source = source_for(archive)
    if not source.is_archive():
        raise NotFoundError(f"{source.label} is not an archive (no archive/ or manifests/ "
                            "directory)")
    # ids: prefixes (NotFoundError), their manifests checked below
    names = source.manifest_names() if all_captures else [source.find(i) for i in ids]
    if not names:
        raise NotFoundError(f"no captures to export in {source.label}")
    captures = {}
    for capture_id in dict.fromkeys(names):  # keep order, drop repeats
        manifest, data = _read_manifest(source, capture_id)
        captures[capture_id] = ExportCapture(capture_id, manifest.started,
                                             manifest.requested_url, manifest.final_url,
                                             hash_bytes(data))
    ordered = sorted(captures.values(), key=lambda c: (c.started, c.capture_id))
    snapshot = take_snapshot(source) if source.has_log() else None
    if snapshot is not None:
        ordered = find_leaves(snapshot, ordered)
    else:
        ordered = [replace(c, proof_problem="the archive has no integrity log") for c in ordered]
    on_disk = set(names) if all_captures else set(source.manifest_names())
    known = on_disk | (snapshot.logged if snapshot is not None else set())
    return ExportPlan(source, ordered, snapshot, len(known - set(captures)))


def refuse_inside_archive(archive: Archive | RemoteArchive | ArchiveSource, out: Path) -> None:
    """Exports never write into the archive: refuse ``out`` below ``archive/`` or
    ``manifests/`` (``preserve verify`` would report it; a bag there would nest archives).
    An ``s3://`` root cannot hold a local output."""
    source_for(archive).refuse_output(out)


def _read_manifest(source: ArchiveSource, capture_id: str) -> tuple[Manifest, bytes]:
    try:
        data = source.read_manifest(capture_id)
    except ValueError as exc:  # --all: a file in manifests/ not named as a capture's is
        raise StorageError(f"manifests/{capture_id}.json: its name is not a capture id, so it "
                           "is no capture's manifest (run preserve verify)") from exc
    except (OSError, StorageError) as exc:
        raise StorageError(f"cannot read the manifest of {capture_id}: {exc}") from exc
    except ManifestError as exc:
        raise StorageError(f"the manifest of {capture_id} is invalid: {exc}") from exc
    try:
        return parse_manifest(data), data
    except ManifestError as exc:
        raise StorageError(f"the manifest of {capture_id} is invalid: {exc}") from exc


@dataclass
class ExportResult:
    """What an export wrote."""

    path: Path
    format: str  # "wacz" or "bagit"
    captures: list[str]
    files: int
    bytes: int
    partial: bool
    warnings: list[str]
    seconds: float
    signature: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "captures": self.captures,
            "files": self.files,
            "bytes": self.bytes,
            "partial": self.partial,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
            "signature": self.signature,
        }


# --- the integrity log ---------------------------------------------------------------------------

def take_snapshot(archive: Archive | RemoteArchive | ArchiveSource) -> LogSnapshot:
    """The log's committed size and the newest valid signed checkpoint within it."""
    source = source_for(archive)
    try:  # bounded, regular files only (never a FIFO or a device)
        key_text = source.read_key()
    except StorageError as exc:
        raise StorageError(f"cannot read the archive's public key: {exc}") from exc
    verifier = None
    problem = None
    if key_text is not None:
        try:
            verifier = log.parse_verifier_key(key_text.decode("utf-8"))
        except (PreserveError, UnicodeDecodeError) as exc:
            problem = f"the archive's key.pub is invalid: {exc}"
    try:
        with source.open_log() as opened:
            snapshot = LogSnapshot(source, opened.size, opened.root_hash(), key_text, verifier,
                                   problem=problem)
            if verifier is None:
                snapshot.problem = problem or "the archive has no signing key (see 'preserve init')"
                return snapshot
            _choose_checkpoint(snapshot, opened, verifier)
    except LogError as exc:
        raise StorageError(f"cannot read the integrity log: {exc}") from exc
    return snapshot


def _choose_checkpoint(snapshot: LogSnapshot, opened: SourceLog,
                       verifier: log.Verifier) -> None:
    source = snapshot.source
    for name in source.checkpoint_names():
        match = CHECKPOINT_NAME.match(name)
        if match is None or int(match.group(1)) > snapshot.size:
            continue  # written after the snapshot, or not a checkpoint file
        snapshot.checkpoint_names.append(name)
    for name in reversed(snapshot.checkpoint_names):
        try:
            note = source.read_checkpoint(name).decode("utf-8")
            checkpoint = log.verify_checkpoint(note, verifier, origin=verifier.name)
        except (OSError, UnicodeDecodeError, PreserveError):
            continue
        if checkpoint.size > snapshot.size or opened.root_hash(checkpoint.size) != \
                checkpoint.root_hash:
            continue
        snapshot.checkpoint = note
        snapshot.checkpoint_size = checkpoint.size
        snapshot.checkpoint_name = name
        try:
            snapshot.checkpoint_token = source.read_token(name)
        except (OSError, PreserveError):  # damaged (verify reports it): shipped as absent
            snapshot.checkpoint_token = None
        return
    snapshot.problem = "the archive has no valid signed checkpoint yet (run 'preserve checkpoint')"


def find_leaves(snapshot: LogSnapshot, captures: list[ExportCapture]) -> list[ExportCapture]:
    """Give each capture its log leaf (or the reason it will have no proof), in one pass.

    Raises :class:`StorageError` if a capture's manifest differs from its log entry.
    """
    wanted = {c.capture_id for c in captures}
    leaves: dict[str, tuple[int, bytes]] = {}
    with snapshot.source.open_log() as opened:
        for index, data in _entries(opened, snapshot.size):
            if b'"type":"manifest"' not in data and b'"type":"import"' not in data:
                continue  # (a fast filter: only manifest and import leaves give proofs)
            try:
                entry = parse_entry(data)
            except ValueError:
                continue
            if not isinstance(entry, ManifestLeaf):
                continue
            snapshot.logged.add(entry.capture_id)
            if entry.capture_id in wanted and entry.capture_id not in leaves:
                leaves[entry.capture_id] = (index, data)
    result = []
    for capture in captures:
        found = leaves.get(capture.capture_id)
        if found is None:  # planted, or its commit interrupted: not evidence preserve holds
            raise ManifestNotLoggedError(
                f"the manifest of {capture.capture_id} is in no leaf of the integrity log "
                "(planted, or its commit was interrupted: run 'preserve verify')"
            )
        index, data = found
        entry = parse_entry(data)
        assert isinstance(entry, ManifestLeaf)
        digests = capture.manifest_digests
        if (entry.sha256, entry.blake3, entry.size) != (digests.sha256, digests.blake3,
                                                        digests.size):
            raise ManifestNotLoggedError(
                f"the manifest of {capture.capture_id} differs from its integrity-log entry "
                f"(leaf {index}): the archive is damaged (run 'preserve verify')"
            )
        problem = None
        if snapshot.checkpoint is None or snapshot.verifier is None:
            problem = snapshot.problem
        elif index >= snapshot.checkpoint_size:
            problem = (f"leaf {index} is newer than the latest signed checkpoint (size "
                       f"{snapshot.checkpoint_size}); run 'preserve checkpoint' first")
        result.append(replace(capture, leaf_index=index, leaf_entry=data, proof_problem=problem))
    return result


def _entries(opened: SourceLog, size: int) -> Iterator[tuple[int, bytes]]:
    for index, data in opened.iter_entries():
        if index >= size:
            return
        yield index, data


def _proof(snapshot: LogSnapshot, capture: ExportCapture, manifest: Manifest, data: bytes,
           opened: SourceLog | None) -> dict[str, Any]:
    """The bundle :func:`preserve.log.make_proof` returns, for the snapshot's checkpoint."""
    assert snapshot.verifier is not None and snapshot.checkpoint is not None
    assert capture.leaf_index is not None and capture.leaf_entry is not None
    if opened is None:
        with snapshot.source.open_log() as fresh:
            path = fresh.inclusion_proof(capture.leaf_index, snapshot.checkpoint_size)
    else:
        path = opened.inclusion_proof(capture.leaf_index, snapshot.checkpoint_size)
    warc = manifest.warc
    bundle = {
        "format": PROOF_FORMAT,
        "capture_id": capture.capture_id,
        "created": utc_now(),
        "manifest": {
            "path": capture.manifest_rel,
            "base64": base64.b64encode(data).decode(),
        },
        "leaf": {"index": capture.leaf_index, "entry": capture.leaf_entry.decode("ascii")},
        "inclusion_proof": {
            "leaf_index": capture.leaf_index,
            "tree_size": snapshot.checkpoint_size,
            "hashes": [base64.b64encode(h).decode() for h in path],
        },
        "checkpoint": snapshot.checkpoint,
        "verifier_key": snapshot.verifier.to_text(),
        "warc": {
            "path": warc.path,
            "size": warc.size,
            "sha256": warc.sha256,
            "blake3": warc.blake3,
            "records": [{"id": r.id, "type": r.type, "target_uri": r.target_uri,
                         "block_digest": r.block_digest, "payload_digest": r.payload_digest}
                        for r in warc.records],
        },
    }
    problems = log.check_proof(bundle)
    if problems:
        raise StorageError(f"the proof of {capture.capture_id} does not hold: "
                           + "; ".join(problems))
    return bundle


def copy_log(snapshot: LogSnapshot, dest_root: Path) -> list[Path]:
    """Recreate the snapshot of the log below ``dest_root/manifests/log``; return its files.

    The entries up to the snapshot's size are appended to a new log (which recomputes the same
    tree and root), the public key is copied byte for byte, and so is every stored checkpoint
    (with its ``.tsr``) that the snapshot covers; ``checkpoint`` is the newest of them.
    """
    directory = log.log_dir(dest_root)
    log.init_log(dest_root)
    if snapshot.key_text is not None:
        (directory / KEY_FILE).write_bytes(snapshot.key_text)
    with snapshot.source.open_log() as source, log.open_log(dest_root) as copy:
        batch: list[bytes] = []
        for _, data in _entries(source, snapshot.size):
            batch.append(data)
            if len(batch) >= _APPEND_BATCH:
                copy.append_many(batch)
                batch = []
        if batch:
            copy.append_many(batch)
        if copy.root_hash() != snapshot.root_hash:
            raise StorageError("the copied integrity log does not have the original's root hash")
    checkpoints = directory / CHECKPOINT_DIR
    newest = None
    for name in snapshot.checkpoint_names:
        newest = snapshot.source.read_checkpoint(name)  # byte for byte, bounded
        (checkpoints / name).write_bytes(newest)
        token = snapshot.source.read_token(name)
        if token is not None:
            (checkpoints / (name.removesuffix(".txt") + ".tsr")).write_bytes(token)
    if newest is not None:
        (directory / LATEST_CHECKPOINT).write_bytes(newest)
    return sorted(p for p in directory.rglob("*") if p.is_file())


# --- the descriptor ------------------------------------------------------------------------------


def descriptor(plan: ExportPlan, package: str, paths: dict[str, dict[str, Any]],
               log_paths: dict[str, str | None]) -> bytes:
    """The ``preserve-export/1`` JSON document (bytes) for a package.

    ``paths`` maps each capture id to where its files are: ``manifest``, ``text``,
    ``comments`` and ``proof`` (package paths or None) and ``warc`` (``path``, ``sha256``,
    ``size``); ``log_paths`` gives ``checkpoint``, ``timestamp`` and ``key`` (and ``log`` for a
    whole copied log).
    """
    snapshot = plan.snapshot
    document = {
        "format": EXPORT_FORMAT,
        "created": plan.created,
        "software": f"preserve {__version__}",
        "package": package,
        "partial": plan.partial,
        "omitted_captures": plan.omitted,
        "log": {
            "size": snapshot.size if snapshot else None,
            "checkpoint_size": snapshot.checkpoint_size if snapshot and snapshot.checkpoint
            else None,
            "verifier_key": snapshot.verifier.to_text() if snapshot and snapshot.verifier
            else None,
            **log_paths,
        },
        "captures": [
            {
                "capture_id": c.capture_id,
                "requested_url": c.requested_url,
                "final_url": c.final_url,
                "started": c.started,
                "manifest": {"path": paths[c.capture_id]["manifest"],
                             "sha256": c.manifest_digests.sha256,
                             "blake3": c.manifest_digests.blake3,
                             "size": c.manifest_digests.size},
                "warc": paths[c.capture_id]["warc"],
                "text": paths[c.capture_id].get("text"),
                "comments": paths[c.capture_id].get("comments"),
                "proof": paths[c.capture_id].get("proof"),
                "proof_problem": c.proof_problem,
            }
            for c in plan.captures
        ],
    }
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def proof_bytes(bundle: dict[str, Any]) -> bytes:
    """A proof bundle as ``preserve prove`` writes it."""
    return (json.dumps(bundle, indent=2, sort_keys=True) + "\n").encode("utf-8")


__all__ = [
    "EXPORT_FORMAT",
    "ExportCapture",
    "ExportPlan",
    "ExportResult",
    "LoadedCapture",
    "LogSnapshot",
    "copy_log",
    "descriptor",
    "find_leaves",
    "plan_export",
    "proof_bytes",
    "read_id_file",
    "refuse_inside_archive",
    "take_snapshot",
]
