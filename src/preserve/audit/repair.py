"""``repair``: clear the debris an interrupted capture leaves, without touching committed data.

A capture killed part-way (power cut, SIGKILL, full disk) can leave, by design, only debris that
no manifest points at: its spool directory and lock file in ``archive/tmp/``, text-store temp
files there, a ``manifests/.tmp-*`` file, a WARC file linked into ``archive/warc/`` and text
objects stored just before its manifest would have been written, a torn tail of the integrity
log, and — if it died between linking its manifest and appending the manifest's log leaf — a
committed manifest that the log does not record yet. :func:`repair` takes the archive lock (so
no commit runs meanwhile) and then:

* **removes** what was never evidence: spool directories and lock files of captures whose
  per-capture lock (``archive/tmp/<capture_id>.lock``) is free, and any other entry of
  ``archive/tmp`` (the text store's temp files). A live capture's spool is never touched: its
  lock is tried with a zero timeout and skipped when held. This is what the dead process's own
  clean-up would have done (a spool may hold a sealed WARC not yet committed; it goes too, as
  it would on any failed capture). Also removed: ``manifests/log/checkpoints/.tmp-*``.
* **quarantines** what is complete but unreferenced: WARC files whose capture has no manifest,
  unreferenced text objects and ``manifests/.tmp-*`` files are *moved* (same file system,
  atomic rename) to ``archive/quarantine/<stamp>/<original path>``, with a ``repair.json``
  listing what moved and why. No file that reached ``archive/`` is deleted; ``verify`` does not
  audit the quarantine, and an operator may inspect or delete it.
* **completes the log from the commit journal**: a manifest on disk with no log leaf is
  appended to the log only when a commit record (:mod:`preserve.log.journal`) signed by the
  archive key names that exact manifest — the record is written before the commit point, so a
  capture that died or failed (full disk) between its commit and its log leaf always has one,
  and nobody without the key can forge one. Any other unlogged manifest (planted, foreign, or
  captured without the key) is reported and left as evidence; only ``preserve adopt``, an
  explicit operator decision recorded as a visibly different log event, puts it in the log.
  In an archive without a key (nothing is ever signed there) unsigned records are used.
  Opening the log for writing drops a torn tail. A stale ``checkpoint`` copy (a kill before
  it was copied, or the file replaced by an older genuine checkpoint) is **restored** from the
  newest stored checkpoint, if that one is validly signed by the archive key, consistent with
  the log and not older than the copy (a copy newer than every stored one is kept, and the
  report says what to restore). If the log is ahead of its newest checkpoint,
  or the latest-checkpoint copy is stale, and the signing key is at hand, the log is proved and
  a checkpoint signed (:func:`preserve.log.signing.prove_and_sign`) — last, and only if a
  final check of the whole archive, verify's own (:func:`preserve.integrity.archive_errors`:
  every file re-hashed, the log audited against its checkpoints and the known head), finds
  no error; otherwise those errors are reported (:attr:`RepairReport.remaining`) and nothing
  is signed: a leaf an earlier checkpoint covers is not re-proved by signing, so a signature
  over a damaged archive would vouch for what the run could see is wrong. Commit records
  with nothing left to do are removed.

Never touched: manifests, WARC files or text objects that a manifest names, anything whose
name the layout does not explain (reported as kept), symlinks (never followed; the link itself
in ``archive/tmp`` is removed). If any manifest cannot be parsed, nothing is quarantined, since
what it references is unknown. If a directory of the layout is a symlink, repair does nothing
at all (it reports a problem), since following it could reach outside the root.
``dry_run=True`` reports the same plan and changes nothing.
This module does not audit hashes (``preserve verify`` does) and does not print.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock

from preserve import integrity, log
from preserve.audit.findings import Finding
from preserve.catalog_sync import logged_captures
from preserve.errors import (
    ArchiveError,
    LockTimeoutError,
    ManifestError,
    NotProvedError,
    PreserveError,
    StorageError,
    UnsafePathError,
)
from preserve.log.archive_log import read_checkpoint_file
from preserve.log.entries import ImportLeaf, manifest_leaf_for_file
from preserve.log.journal import CommitRecord, iter_entries, read_journal
from preserve.log.known_heads import KnownHeads
from preserve.log.note import Checkpoint, NoteError, verify_checkpoint
from preserve.log.signing import newest_signed_checkpoint, prove_and_sign
from preserve.safe_io import walk_tree, write_atomic
from preserve.storage import manifest
from preserve.storage.catalog import Catalog, CatalogRow, check_catalog, row_digest
from preserve.storage.layout import (
    MANIFEST_SUFFIX,
    MANIFEST_TMP_PREFIX,
    WARC_SUFFIX,
    ArchiveLayout,
    fsync_dir,
    is_capture_id,
    is_hex_digest,
    makedirs_durable,
    relative_to_root,
    resolve_inside,
)

QUARANTINE_DIR = "archive/quarantine"
_LINKED_HERE = ("a symlink in archive/warc or archive/text leads here, and a file a manifest "
                "names may be kept here: left alone (run preserve verify)")
#: Debris nested deeper than this is not removed (preserve's own is a few levels deep).
MAX_DEBRIS_DEPTH = 64
RECORD_NAME = "repair.json"
LOCK_SUFFIX = ".lock"
#: How long repair waits for a running commit to release the archive lock.
DEFAULT_LOCK_TIMEOUT = 30.0

_CHECKPOINT_SIZE = re.compile(r"^([0-9]{12})-")

# Action kinds (stable strings; the CLI prints them and ``--json`` carries them).
REMOVED = "removed"
QUARANTINED = "quarantined"
LOGGED = "logged"
LOG_TAIL_DROPPED = "log-tail-dropped"
CHECKPOINTED = "checkpointed"
RESTORED = "restored"
REBUILT = "rebuilt"
KEPT = "kept"


@dataclass(frozen=True, slots=True)
class RepairAction:
    """One thing repair did (or, in a dry run, would do), or left alone and why."""

    kind: str
    path: str
    reason: str
    destination: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "reason": self.reason,
                "destination": self.destination}


@dataclass(slots=True)
class RepairReport:
    """What :func:`repair` did: ``actions`` changed the archive (or would, in a dry run),
    ``kept`` lists debris-like things left alone on purpose, ``problems`` what failed."""

    root: str
    dry_run: bool
    actions: list[RepairAction] = field(default_factory=list)
    kept: list[RepairAction] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    quarantine_dir: str | None = None
    #: errors the final check (verify's) found, for which nothing was signed
    remaining: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed (things kept on purpose are not failures)."""
        return not self.problems

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.kind == kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "quarantine_dir": self.quarantine_dir,
            "actions": [a.to_json() for a in self.actions],
            "kept": [a.to_json() for a in self.kept],
            "problems": list(self.problems),
            "remaining_errors": [f.to_json() for f in self.remaining],
        }


def capture_in_progress(layout: ArchiveLayout, capture_id: str) -> bool:
    """True if a live process holds capture ``capture_id``'s lock (``archive/tmp/<id>.lock``).

    A missing lock file means no live capture (a capture creates it before anything else).
    Probing takes the lock for an instant; it never blocks.
    """
    lock_path = layout.tmp_dir / (capture_id + LOCK_SUFFIX)
    if not lock_path.exists():
        return False
    probe = filelock.FileLock(lock_path, timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return True
    probe.release()
    return False


@dataclass
class _References:
    """What the committed manifests name."""

    warcs: set[str] = field(default_factory=set)  # root-relative posix paths
    texts: set[str] = field(default_factory=set)  # blake3 hex
    capture_ids: set[str] = field(default_factory=set)  # from manifest file names
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    catalog_rows: set[bytes] = field(default_factory=set)  # row digests the catalog should hold


class _Repair:
    def __init__(self, root: Path, *, dry_run: bool, key: Path | None,
                 heads: KnownHeads | None) -> None:
        self.root = root
        self.layout = ArchiveLayout(root)
        self.dry_run = dry_run
        self.heads = heads
        self.key = key
        self.report = RepairReport(root=str(root), dry_run=dry_run)
        self.stamp = (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-"
                      + secrets.token_hex(4))
        self.quarantine_rel = f"{QUARANTINE_DIR}/{self.stamp}"
        self.linked: list[Path] = []  # where symlinks below archive/warc and text lead

    # --- helpers ---------------------------------------------------------------------------

    def rel(self, path: Path) -> str:
        return relative_to_root(self.root, path)

    def did(self, kind: str, path: str, reason: str, destination: str | None = None) -> None:
        self.report.actions.append(RepairAction(kind, path, reason, destination))

    def keep(self, path: str, reason: str) -> None:
        self.report.kept.append(RepairAction(KEPT, path, reason))

    def problem(self, message: str) -> None:
        self.report.problems.append(message)

    def entries(self, directory: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as scan:
                return sorted(scan, key=lambda e: e.name)
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.problem(f"cannot list {self.rel(directory)}: {exc}")
            return []

    def walk_files(self, top: Path) -> Iterator[Path]:
        """Non-directory entries below ``top`` (symlinks included, never followed)."""
        pending = [self.entries(top)[::-1]]
        while pending:
            if not pending[-1]:
                pending.pop()
                continue
            entry = pending[-1].pop()
            if entry.is_dir(follow_symlinks=False):
                pending.append(self.entries(Path(entry.path))[::-1])
            else:
                yield Path(entry.path)

    # --- the steps -------------------------------------------------------------------------

    def run(self) -> None:
        layout = self.layout
        directories = (layout.manifests_dir, layout.log_dir, layout.tmp_dir, layout.warc_dir,
                       layout.text_dir, self.root / QUARANTINE_DIR)
        escapes = [self.rel(d) for d in directories if d.is_symlink()
                   or (d.exists() and not d.is_dir())]
        if escapes:  # following them could touch files outside the root
            self.problem("not repaired: the layout is not plain directories here (symlink or "
                         f"file): {', '.join(escapes)}; run preserve verify")
            return
        self.linked = self.symlink_targets()
        refs = self.references()
        records = self.complete_log()
        self.clear_checkpoint_temps()
        self.clear_tmp()
        self.quarantine_manifest_temps()
        if refs.unreadable:
            for rel, why in refs.unreadable:
                self.keep(rel, f"{why}: what the manifests reference is not fully known, so "
                          "no WARC file or text object was quarantined (run preserve verify)")
        else:
            lost = self.logged_without_manifest(refs)
            self.quarantine_orphan_warcs(refs, lost)
            if lost:  # which text objects their manifests named cannot be told
                self.keep(self.rel(self.layout.text_dir), f"{len(lost)} logged capture(s) "
                          "have no manifest: the text objects they named cannot be told from "
                          "orphans, so none was quarantined")
            else:
                self.quarantine_orphan_texts(refs)
            self.rebuild_catalog(refs)
        self.write_record()
        if records is not None:  # last: the final check sees the archive as repair left it
            self.sign_if_behind()
            self.clear_journal(records)

    def symlink_targets(self) -> list[Path]:
        """Where the symlinks below ``archive/warc`` and ``archive/text`` lead (preserve makes
        none there): a file a manifest names may be kept there, reached through one (a WARC
        month's directory moved into ``archive/tmp`` and linked back), so nothing there is
        removed or quarantined."""
        targets = []
        for top in (self.layout.warc_dir, self.layout.text_dir):
            for path, mode, _depth in walk_tree(top):
                if stat.S_ISLNK(mode):
                    targets.append(Path(os.path.realpath(path)))
        return targets

    def leads_here(self, path: Path) -> bool:
        """Whether a symlink of :meth:`symlink_targets` leads to ``path`` or below it."""
        real = Path(os.path.realpath(path))
        return any(t == real or t.is_relative_to(real) for t in self.linked)

    def references(self) -> _References:
        refs = _References()
        try:  # without a complete list of manifests nothing may be called unreferenced
            with os.scandir(self.layout.manifests_dir) as scan:
                listing = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            refs.unreadable.append(("manifests", f"cannot list manifests/: {exc}"))
            return refs
        for entry in listing:
            name = entry.name
            if name.startswith(".") or not name.endswith(MANIFEST_SUFFIX):
                continue
            path = Path(entry.path)
            if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                refs.unreadable.append((self.rel(path), "not a regular file"))
                continue
            refs.capture_ids.add(name[: -len(MANIFEST_SUFFIX)])
            try:
                data = manifest.read_manifest_bytes(path)
                obj = manifest.decode_manifest_json(data)
            except (OSError, ManifestError) as exc:
                refs.unreadable.append((self.rel(path), str(exc)))
                continue
            self.note_references(obj, refs)
            with contextlib.suppress(ManifestError):
                parsed = manifest.manifest_from_dict(obj)
                refs.catalog_rows.add(row_digest(
                    CatalogRow.of(parsed, hashlib.sha256(data).hexdigest())))
        return refs

    def rebuild_catalog(self, refs: _References) -> None:
        """A catalog that says anything its manifests do not is thrown away (it is rebuilt
        from the log and the manifests on its next use)."""
        problems = check_catalog(self.layout, refs.catalog_rows,
                                 logged=functools.partial(logged_captures, self.layout.root))
        if not problems:
            return
        if not self.dry_run:
            catalog = Catalog(self.layout)
            try:
                catalog.reset()
            except (PreserveError, OSError) as exc:
                self.problem(f"cannot rebuild the catalog: {exc}")
                return
            finally:
                catalog.close()
        self.did(REBUILT, "archive/index/catalog.sqlite3", "; ".join(problems))

    @staticmethod
    def note_references(obj: Mapping[str, Any], refs: _References) -> None:
        """Record what a manifest names, leniently: an invalid manifest still protects what it
        names (verify reports it; repair must not move its files away)."""
        warc_ref = obj.get("warc")
        if isinstance(warc_ref, Mapping) and isinstance(warc_ref.get("path"), str):
            refs.warcs.add(posixpath.normpath(warc_ref["path"]))
        for key in ("text", "comments"):
            ref = obj.get(key)
            if isinstance(ref, Mapping) and is_hex_digest(ref.get("blake3")):
                refs.texts.add(ref["blake3"])
        cid = obj.get("capture_id")
        if isinstance(cid, str):
            refs.capture_ids.add(cid)

    def complete_log(self) -> list[CommitRecord] | None:
        """Drop a torn tail and append the leaves a signed commit record proves are owed;
        return the commit records (None if the log cannot be completed: then nothing is
        signed and no record is removed)."""
        if not integrity.has_log(self.root):
            return None
        try:
            verifier: log.Verifier | None = log.read_verifier(self.root)
        except PreserveError:
            verifier = None
        keyed = (self.layout.log_dir / "key.pub").exists()
        try:
            with log.open_log(self.root, readonly=True) as opened:
                torn = list(opened.torn_tail)
            unlogged = log.unlogged_manifests(self.root)
            records, bad = read_journal(self.root, verifier)
        except (PreserveError, OSError) as exc:
            self.problem(f"integrity log cannot be read, not repaired: {exc}")
            return None
        for tail in torn:
            self.did(LOG_TAIL_DROPPED, f"manifests/log/{tail.split(':', 1)[0]}", tail)
        if torn and not self.dry_run:
            try:  # a writable open truncates the torn tail and removes temp files
                log.open_log(self.root).close()
            except (PreserveError, OSError) as exc:
                self.problem(f"cannot drop the torn tail of the integrity log: {exc}")
                return None
        for item in bad:
            self.keep(self.rel(item.path), f"commit record not usable ({item.problem}); left as "
                      "evidence (verify: E317)")
        # In a keyed archive only a record signed by the key counts; without a key nothing is
        # ever signed, and an unsigned record is all there is.
        usable = [r for r in records if r.signed or not keyed]
        owed = self.owed_leaves(unlogged, usable)
        if owed and not self.dry_run:
            try:
                log.record_entries(self.root, [leaf for _cid, leaf in owed], dated_now=False)
            except (PreserveError, OSError) as exc:
                self.problem(f"cannot append to the integrity log: {exc}")
                return None
        for capture_id, _leaf in owed:
            self.did(LOGGED, self.layout.manifest_rel_for(capture_id),
                     "committed, but its log leaf was missing; a commit record signed by the "
                     "archive key names this exact manifest")
        return records

    def owed_leaves(self, unlogged: list[str], records: list[CommitRecord]) -> list[
            tuple[str, bytes]]:
        """The leaves of unlogged manifests that a usable commit record names exactly."""
        named = {(e.capture_id, e.kind): e for _r, e in iter_entries(records, signed_only=False)}
        owed = []
        for capture_id in unlogged:
            rel = self.layout.manifest_rel_for(capture_id)
            if capture_in_progress(self.layout, capture_id):
                self.keep(rel, "capture is still in progress")
                continue
            try:
                leaf = manifest_leaf_for_file(self.root / rel)
            except (PreserveError, OSError) as exc:
                self.keep(rel, f"not in the integrity log, and unreadable ({exc}); left as "
                          "evidence")
                continue
            entry = named.get((capture_id, "capture")) or named.get((capture_id, "import"))
            if entry is not None and entry.kind == "import":
                leaf = ImportLeaf.of(leaf)  # an import is logged as one
            if entry is None or not entry.matches(leaf.sha256, leaf.blake3, leaf.size):
                adopting = named.get((capture_id, "adopt"))
                why = ("an adoption was interrupted: run preserve adopt again" if adopting
                       else "no commit record signed by the archive key names it: planted, "
                       "foreign, or captured without the key")
                self.keep(rel, f"not in the integrity log and not logged by repair ({why}); "
                          "left as evidence (verify: E304); preserve adopt vouches for it "
                          "explicitly if it is genuine")
                continue
            owed.append((capture_id, leaf.to_bytes()))
        return owed

    def sign_if_behind(self) -> None:
        """Prove the log and sign a checkpoint when it is ahead of the newest stored
        checkpoint (or the latest-checkpoint copy is stale) and the signing key is at hand."""
        if not (self.layout.log_dir / "key.pub").is_file():
            return  # an unsigned log (verify says W304); nothing to sign with
        try:
            paths = log.checkpoint_paths(self.root)
            with log.open_log(self.root, readonly=True) as opened:
                size = opened.size
        except (PreserveError, OSError) as exc:
            self.problem(f"cannot read the log: {exc}")
            return
        signed = [int(m.group(1)) for p in paths if (m := _CHECKPOINT_SIZE.match(p.name))]
        latest = log.log_dir(self.root) / "checkpoint"
        try:  # a kill between storing a checkpoint and copying it to ``checkpoint`` (W303)
            stale = latest.exists() and (not paths or read_checkpoint_file(
                latest) != read_checkpoint_file(paths[-1]))
        except PreserveError as exc:
            self.problem(f"cannot read {self.rel(latest)}: {exc}")
            return
        if stale and self.restore_latest(paths, size):
            stale = False
        if size == 0 or (size <= max(signed, default=0) and not stale):
            return
        try:
            signer = integrity.find_signer(self.root, self.key)
        except (PreserveError, OSError) as exc:
            self.keep("manifests/log", f"log not checkpointed: signing key unusable: {exc}")
            return
        if signer is None:
            self.keep("manifests/log", "log not checkpointed: the signing key is not here")
            return
        if not self.intact():
            return
        if not self.dry_run:
            try:
                prove_and_sign(self.root, signer, heads=self.heads)
            except NotProvedError as exc:
                self.problem(f"not signed: {exc}")
                return
            except (PreserveError, OSError) as exc:
                self.problem(f"cannot sign a checkpoint: {exc}")
                return
        why = "latest-checkpoint copy was stale" if stale else "log was ahead of its checkpoints"
        self.did(CHECKPOINTED, "manifests/log/checkpoint",
                 f"proved and signed a checkpoint of the log at size {size} ({why})")

    def restore_latest(self, paths: list[Path], log_size: int) -> bool:
        """Put the newest stored checkpoint back as the ``checkpoint`` copy when the copy is
        stale (a kill before it was copied, or the file replaced by an older checkpoint): only
        a stored checkpoint validly signed by the archive key, consistent with the log and
        not older than the copy, which stays evidence otherwise. True if restored."""
        latest = self.layout.log_dir / "checkpoint"
        try:
            verifier = log.read_verifier(self.root)
            newest = _newest_valid(paths, verifier)
            copy = _valid_or_none(latest, verifier)
            with log.open_log(self.root, readonly=True) as opened:
                consistent = newest is not None and newest[1].size <= log_size and (
                    opened.root_hash(newest[1].size) == newest[1].root_hash)
        except (PreserveError, OSError) as exc:
            self.problem(f"cannot check {self.rel(latest)}: {exc}")
            return False
        if newest is None or not consistent or (copy is not None and copy.size > newest[1].size):
            why = "no stored checkpoint is valid and consistent with the log" if not consistent \
                else "it is newer than every stored checkpoint (checkpoints/ lost its newest)"
            self.keep(self.rel(latest), f"not a copy of the newest stored checkpoint, and {why}: "
                      "restore manifests/log/checkpoints/ from a copy, or verify with an "
                      "off-site checkpoint (--checkpoint)")
            return False
        if not self.dry_run:
            try:
                write_atomic(latest, newest[0].read_bytes())
            except (PreserveError, OSError) as exc:
                self.problem(f"cannot restore {self.rel(latest)}: {exc}")
                return False
        older = f"an older checkpoint ({copy.size} leaves)" if copy is not None else "invalid"
        self.did(RESTORED, self.rel(latest), f"was {older}; restored from "
                 f"{self.rel(newest[0])} ({newest[1].size} leaves, signed by the archive key)")
        return True

    def intact(self) -> bool:
        """The final check before signing: the whole archive as verify sees it (files and
        log) must have no error. Otherwise they are kept in the report and nothing is
        signed."""
        try:
            errors = integrity.archive_errors(self.root, heads=self.heads)
        except (PreserveError, OSError) as exc:
            self.problem(f"not signed: the archive could not be checked: {exc}")
            return False
        if errors:
            self.report.remaining = errors
            self.problem(f"not signed: {integrity.not_intact(errors)}")
        return not errors

    def clear_journal(self, records: list[CommitRecord]) -> None:
        """Remove commit records with nothing left to do: each entry either never reached its
        commit point (no manifest, no leaf) or is logged under a signed checkpoint (or the
        archive has no key, where logged is all there is)."""
        if not records:
            return
        try:
            with log.open_log(self.root, readonly=True) as opened:
                logged: dict[str, int] = {}
                for index, data in opened.iter_entries():
                    with contextlib.suppress(ValueError):
                        leaf = log.parse_entry(data)
                        if isinstance(leaf, log.ManifestLeaf | log.AdoptionLeaf):
                            logged.setdefault(leaf.capture_id, index)
            verifier = log.read_verifier(self.root) if (
                self.layout.log_dir / "key.pub").exists() else None
        except (PreserveError, OSError) as exc:
            self.problem(f"cannot read the log to clear the commit journal: {exc}")
            return
        covered = self.signed_size(verifier)
        for record in records:
            done = True
            for entry in record.entries:
                manifest_exists = self.layout.manifest_path_for(entry.capture_id).exists()
                position = logged.get(entry.capture_id)
                if position is None and not manifest_exists:
                    continue  # never committed
                if position is None or position >= covered:
                    done = False
                    break
            if done:
                self.remove(record.path, "commit record with nothing left to do (its captures "
                            "were never committed, or are logged and signed)")

    def signed_size(self, verifier: log.Verifier | None) -> int:
        if verifier is None:
            return 1 << 62  # no key: logged is all there is
        checkpoint = newest_signed_checkpoint(self.root, verifier)
        return checkpoint.size if checkpoint is not None else 0

    def clear_checkpoint_temps(self) -> None:
        """Temp files of an interrupted checkpoint write (``checkpoints/.tmp-*``)."""
        for entry in self.entries(self.layout.log_dir / "checkpoints"):
            if entry.name.startswith(".tmp-"):
                self.remove(Path(entry.path), "temporary file of an interrupted checkpoint")

    def clear_tmp(self) -> None:
        tmp_dir = self.layout.tmp_dir
        if tmp_dir.is_symlink() or not tmp_dir.is_dir():
            return
        entries = self.entries(tmp_dir)
        names = {e.name for e in entries}
        for entry in entries:
            name = entry.name
            path = Path(entry.path)
            if name.endswith(LOCK_SUFFIX) and name[: -len(LOCK_SUFFIX)] in names:
                continue  # handled with its spool directory
            capture_id = name[: -len(LOCK_SUFFIX)] if name.endswith(LOCK_SUFFIX) else name
            if is_capture_id(capture_id) and not entry.is_symlink():
                self.clear_capture(capture_id, path)
            else:
                self.remove(path, "temporary file of an interrupted write")

    def clear_capture(self, capture_id: str, path: Path) -> None:
        """Remove a capture's spool directory and lock file, if no live process holds it."""
        lock_path = self.layout.tmp_dir / (capture_id + LOCK_SUFFIX)
        spool = self.layout.tmp_dir / capture_id
        probe = filelock.FileLock(lock_path, timeout=0)
        try:
            if self.dry_run:
                held = capture_in_progress(self.layout, capture_id)
            else:
                probe.acquire()
                held = False
        except filelock.Timeout:
            held = True
        except OSError as exc:
            self.problem(f"cannot probe the lock of capture {capture_id}: {exc}")
            return
        if held:
            self.keep(self.rel(path), "capture is in progress (its lock is held)")
            return
        try:
            if spool.exists() or spool.is_symlink():
                self.remove(spool, "spool of an interrupted capture")
            if not self.dry_run:
                lock_path.unlink(missing_ok=True)  # while held: nobody waits on this inode
            self.did(REMOVED, self.rel(lock_path), "lock file of an interrupted capture")
        except OSError as exc:
            self.problem(f"cannot remove the lock file of capture {capture_id}: {exc}")
        finally:
            if probe.is_locked:
                probe.release()

    def remove(self, path: Path, reason: str) -> None:
        rel = self.rel(path)
        if self.leads_here(path):
            self.keep(rel, _LINKED_HERE)
            return
        if not self.dry_run:
            try:
                if stat.S_ISDIR(path.lstat().st_mode):
                    if any(depth > MAX_DEBRIS_DEPTH for _p, _m, depth in walk_tree(path)):
                        # shutil.rmtree recurses: RecursionError. preserve never nests so.
                        self.problem(f"cannot remove {rel}: nested more than "
                                     f"{MAX_DEBRIS_DEPTH} directories deep (remove it by hand)")
                        return
                    shutil.rmtree(path)  # does not follow symlinks inside
                else:
                    path.unlink()
            except FileNotFoundError:
                return
            except OSError as exc:
                self.problem(f"cannot remove {rel}: {exc}")
                return
        self.did(REMOVED, rel, reason)

    def quarantine(self, path: Path, reason: str) -> None:
        rel = self.rel(path)
        if self.leads_here(path):
            self.keep(rel, _LINKED_HERE)
            return
        destination_rel = f"{self.quarantine_rel}/{rel}"
        if not self.dry_run:
            destination = self.root / destination_rel
            try:
                makedirs_durable(destination.parent)
                os.rename(path, destination)  # same file system: atomic, bytes untouched
                fsync_dir(destination.parent)
                fsync_dir(path.parent)
            except OSError as exc:
                self.problem(f"cannot quarantine {rel}: {exc}")
                return
        self.report.quarantine_dir = self.quarantine_rel
        self.did(QUARANTINED, rel, reason, destination_rel)

    def quarantine_manifest_temps(self) -> None:
        for entry in self.entries(self.layout.manifests_dir):
            if not entry.name.startswith(MANIFEST_TMP_PREFIX):
                continue
            path = Path(entry.path)
            if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                self.keep(self.rel(path), "not a regular file; left alone")
            else:
                self.quarantine(path, "temporary manifest of an interrupted commit")

    def logged_without_manifest(self, refs: _References) -> set[str]:
        """The capture ids the log holds whose manifest is gone (verify: E305): committed
        captures, never debris; reported as a problem (restore them from a backup)."""
        try:
            logged = {cid for _index, cid in logged_captures(self.root, 1 << 62)}
        except (PreserveError, OSError):
            return set()  # no readable log: complete_log reports it
        lost = logged - refs.capture_ids
        if lost:
            self.problem(f"{len(lost)} logged capture(s) have no manifest (e.g. "
                         f"{sorted(lost)[0]}): committed captures, not debris; their files "
                         "were left in place: restore the manifests from a backup (verify "
                         "reports E305)")
        return lost

    def quarantine_orphan_warcs(self, refs: _References, lost: set[str]) -> None:
        for path in self.walk_files(self.layout.warc_dir):
            rel = self.rel(path)
            if rel in refs.warcs:
                continue
            capture_id = _warc_capture_id(path.name)
            if path.is_symlink() or not is_capture_id(capture_id) or not path.is_file():
                self.keep(rel, "not a capture's WARC file; left alone")
            elif capture_id in refs.capture_ids:
                self.keep(rel, f"capture {capture_id} has a manifest; left alone")
            elif capture_id in lost:
                self.keep(rel, f"capture {capture_id} is logged but its manifest is missing; "
                          "left alone")
            elif capture_in_progress(self.layout, capture_id):
                self.keep(rel, "capture is in progress")
            else:
                self.quarantine(path, "WARC file of an interrupted commit (no manifest)")

    def quarantine_orphan_texts(self, refs: _References) -> None:
        for path in self.walk_files(self.layout.text_dir):
            rel = self.rel(path)
            name = path.name
            try:
                well_placed = (is_hex_digest(name) and not path.is_symlink()
                               and rel == self.layout.text_rel_for(name))
                resolve_inside(self.root, rel, under="archive/text")
            except UnsafePathError:
                well_placed = False
            if not well_placed:
                self.keep(rel, "not a text object at archive/text/ab/cd/<hash>; left alone")
            elif name not in refs.texts:
                self.quarantine(path, "text object no manifest names (interrupted commit)")

    def write_record(self) -> None:
        moved = [a.to_json() for a in self.report.actions if a.kind == QUARANTINED]
        if self.dry_run or not moved:
            return
        record = {
            "repair": self.stamp,
            "moved": moved,
            "note": "moved here by preserve repair; these files are named by no manifest",
        }
        path = self.root / self.quarantine_rel / RECORD_NAME
        try:
            path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n",
                            encoding="utf-8")
        except OSError as exc:
            self.problem(f"cannot write {self.rel(path)}: {exc}")


def repair(
    root: Path,
    *,
    dry_run: bool = False,
    key: Path | None = None,
    heads: KnownHeads | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> RepairReport:
    """Clear debris of interrupted captures under the archive lock; see the module docstring.

    ``key`` is the signing key for a checkpoint (default: as for captures); ``heads`` the
    operator's known heads (signing refuses a log that does not extend them). Raises
    :class:`~preserve.errors.ArchiveError` if ``root`` is not an archive,
    :class:`~preserve.errors.LockTimeoutError` if a commit holds the lock for ``lock_timeout``
    seconds, :class:`~preserve.errors.StorageError` if the lock cannot be taken (read-only
    media). Failures on single items are collected in :attr:`RepairReport.problems`.
    """
    root = Path(root)
    layout = ArchiveLayout(root)
    if not layout.archive_dir.is_dir() or layout.archive_dir.is_symlink():
        raise ArchiveError(f"{root} is not an archive (no archive/ directory)")
    lock = filelock.FileLock(layout.lock_path, timeout=lock_timeout)
    locked = False
    try:
        lock.acquire()
        locked = True
    except filelock.Timeout as exc:
        raise LockTimeoutError(f"another preserve process holds {layout.lock_path} "
                               f"(waited {lock_timeout:g} s)") from exc
    except OSError as exc:
        if not dry_run:
            raise StorageError(f"cannot lock archive {root}: {exc}") from exc
        # a dry run on read-only media: nobody can be committing through it, plan unlocked
    try:
        job = _Repair(root, dry_run=dry_run, key=key, heads=heads)
        job.run()
        return job.report
    finally:
        if locked:
            with contextlib.suppress(OSError):
                lock.release()



def _newest_valid(paths: list[Path], verifier: log.Verifier) -> tuple[Path, Checkpoint] | None:
    """The stored checkpoint of most leaves that is validly signed by ``verifier``."""
    for path in sorted(paths, reverse=True):
        checkpoint = _valid_or_none(path, verifier)
        if checkpoint is not None:
            return path, checkpoint
    return None


def _valid_or_none(path: Path, verifier: log.Verifier) -> Checkpoint | None:
    try:
        return verify_checkpoint(read_checkpoint_file(path), verifier, origin=verifier.name)
    except (PreserveError, NoteError):
        return None


def _warc_capture_id(name: str) -> str:
    """The capture id a WARC file is named after: ``<id>.warc.gz``, or ``<id>.warc`` (an
    imported uncompressed file); '' for any other name."""
    for suffix in (WARC_SUFFIX, ".warc"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return ""


__all__ = [
    "CHECKPOINTED",
    "DEFAULT_LOCK_TIMEOUT",
    "KEPT",
    "LOGGED",
    "LOG_TAIL_DROPPED",
    "QUARANTINED",
    "QUARANTINE_DIR",
    "REBUILT",
    "REMOVED",
    "RESTORED",
    "RepairAction",
    "RepairReport",
    "capture_in_progress",
    "repair",
]
