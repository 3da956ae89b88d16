"""Audit of an archive's integrity log: findings as data (E3xx/W3xx), never printed or raised.

:func:`verify_log` checks that the log is well formed (the stored tree matches the entries,
entries are canonical, times move forward), that manifests on disk and manifest leaves match
one to one with the same hashes, that every stored checkpoint is validly signed by the archive
key and consistent with the current log (RFC 9162 consistency proofs from stored hashes), and
that external checkpoints the caller kept elsewhere are consistent too.

It streams the entries once (O(n) hashing, O(log n) memory); each checkpoint costs O(log n).
It raises only for programming errors; anything wrong on disk becomes a :class:`LogFinding`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import LogError, PreserveError
from ..hashing import hash_file
from .archive_log import (
    CHECKPOINT_NAME,
    KEY_FILE,
    LATEST_CHECKPOINT,
    LOG_DIR,
    checkpoint_paths,
    log_dir,
    read_verifier,
)
from .entries import CAPTURE_ID, MANIFEST_DIR, ManifestLeaf, parse_entry, parse_time
from .keys import Verifier, parse_verifier_key
from .merkle import verify_consistency
from .note import Checkpoint, NoteError, verify_checkpoint
from .storage import ENTRIES_NAME, HEAD_NAME, TransparencyLog

E_LOG_DAMAGED = "E301"
E_TREE_MISMATCH = "E302"
E_ENTRY_MALFORMED = "E303"
E_MANIFEST_NOT_LOGGED = "E304"
E_LOGGED_MANIFEST_MISSING = "E305"
E_MANIFEST_CHANGED = "E306"
E_CHECKPOINT_SIGNATURE = "E307"
E_CHECKPOINT_INCONSISTENT = "E308"
E_EXTERNAL_CHECKPOINT_INCONSISTENT = "E309"
E_TIME_BACKWARDS = "E310"
E_CAPTURED_AFTER_COMMIT = "E311"
E_DUPLICATE_CAPTURE = "E312"
E_KEY_INVALID = "E313"
E_TIMESTAMP_INVALID = "E314"
W_TORN_TAIL = "W301"
W_UNCHECKPOINTED = "W302"
W_LATEST_CHECKPOINT_STALE = "W303"
W_UNSIGNED_LOG = "W304"

CODES: dict[str, str] = {
    E_LOG_DAMAGED: "integrity log missing, unreadable or structurally damaged",
    E_TREE_MISMATCH: "stored Merkle tree does not match the log entries",
    E_ENTRY_MALFORMED: "log entry malformed or not canonical",
    E_MANIFEST_NOT_LOGGED: "manifest on disk is not in the log",
    E_LOGGED_MANIFEST_MISSING: "manifest named by the log is missing",
    E_MANIFEST_CHANGED: "manifest bytes differ from its log entry",
    E_CHECKPOINT_SIGNATURE: "checkpoint malformed or not validly signed by the archive key",
    E_CHECKPOINT_INCONSISTENT: "log is not consistent with a stored checkpoint",
    E_EXTERNAL_CHECKPOINT_INCONSISTENT: "log is not consistent with an external checkpoint",
    E_TIME_BACKWARDS: "log entry committed before the previous entry (back-dated)",
    E_CAPTURED_AFTER_COMMIT: "capture time is after the time it was logged",
    E_DUPLICATE_CAPTURE: "capture logged more than once",
    E_KEY_INVALID: "archive public key missing, invalid or not the trusted key",
    E_TIMESTAMP_INVALID: "RFC 3161 timestamp token of a checkpoint does not verify",
    W_TORN_TAIL: "torn tail of an interrupted append (ignored)",
    W_UNCHECKPOINTED: "log entries not yet covered by a signed checkpoint",
    W_LATEST_CHECKPOINT_STALE: "latest-checkpoint copy differs from the newest stored checkpoint",
    W_UNSIGNED_LOG: "the log has no archive key and no checkpoints: nothing is signed",
}

DESCRIPTIONS: dict[str, str] = {
    E_LOG_DAMAGED: "The log's head or files are missing, cut short, or give a root other than "
    "the head's; nothing past that could be checked.",
    E_TREE_MISMATCH: "A stored leaf or subtree hash differs from one recomputed from the entries "
    "(an entry or a hash file was edited).",
    E_ENTRY_MALFORMED: "A leaf entry is not canonical JSON of a known type and version.",
    E_MANIFEST_NOT_LOGGED: "A manifest exists on disk but no manifest leaf records it "
    "(planted, or a crash between commit and log).",
    E_LOGGED_MANIFEST_MISSING: "A manifest leaf names a manifest that is not on disk (deleted).",
    E_MANIFEST_CHANGED: "The manifest file's BLAKE3/SHA-256/size differ from its leaf (edited).",
    E_CHECKPOINT_SIGNATURE: "A stored or given checkpoint does not parse, is for another origin, "
    "or is not validly signed by the archive key.",
    E_CHECKPOINT_INCONSISTENT: "The current log is not an extension of a stored signed checkpoint "
    "(rewritten, reordered or truncated).",
    E_EXTERNAL_CHECKPOINT_INCONSISTENT: "The current log is not an extension of a checkpoint "
    "kept outside the archive (rewritten, reordered or truncated).",
    E_TIME_BACKWARDS: "A leaf's commit time precedes an earlier leaf's (back-dated entry or a "
    "clock jump back).",
    E_CAPTURED_AFTER_COMMIT: "A manifest leaf's capture time is after its commit time.",
    E_DUPLICATE_CAPTURE: "Two manifest leaves record the same capture id.",
    E_KEY_INVALID: "manifests/log/key.pub is missing or malformed while checkpoints exist, or "
    "differs from the trusted key given to verify.",
    E_TIMESTAMP_INVALID: "An RFC 3161 token stored beside a checkpoint does not verify against "
    "the trusted TSA roots or is not over that checkpoint.",
    W_TORN_TAIL: "Bytes past the committed log size from an interrupted append; ignored, and "
    "removed by the next write.",
    W_UNCHECKPOINTED: "The newest leaves are not covered by any valid signed checkpoint yet.",
    W_LATEST_CHECKPOINT_STALE: "manifests/log/checkpoint is not a copy of the newest stored "
    "checkpoint.",
    W_UNSIGNED_LOG: "The archive has no key.pub and no checkpoints, so the log is not signed.",
}

TimestampCheck = Callable[[bytes, bytes], str | None]
"""Given (signed checkpoint bytes, token bytes), return None if valid, else a problem."""


class LogFinding(NamedTuple):
    code: str
    path: str
    message: str


@dataclass
class _Audit:
    root: Path
    findings: list[LogFinding]

    def add(self, code: str, path: str | Path, message: str) -> None:
        if isinstance(path, Path):
            inside = path.is_relative_to(self.root)
            path = path.relative_to(self.root).as_posix() if inside else str(path)
        self.findings.append(LogFinding(code, path, message))


def _rel(name: str) -> str:
    return (LOG_DIR / name).as_posix()


def verify_log(
    root: Path,
    *,
    external_checkpoints: Sequence[Path] = (),
    trusted_key: str | None = None,
    timestamp_check: TimestampCheck | None = None,
) -> list[LogFinding]:
    """Audit the archive's integrity log; return the findings (empty means all is well).

    ``trusted_key`` is a verifier key obtained outside the archive; when given, checkpoints
    must be signed by it and ``key.pub`` must equal it (otherwise an attacker who rewrote the
    archive could also have replaced ``key.pub``). ``timestamp_check`` verifies ``.tsr`` tokens.
    """
    root = Path(root)
    audit = _Audit(root, [])
    directory = log_dir(root)
    manifests = _manifests_on_disk(root)
    if _not_plain(directory):
        audit.add(E_LOG_DAMAGED, _rel(""), "the log directory, or an entry in it, is a symlink or "
                  "a special file; not followed")
        return audit.findings
    if not (directory / HEAD_NAME).exists():
        if manifests or directory.exists():
            audit.add(E_LOG_DAMAGED, _rel(HEAD_NAME), "the archive has no integrity log head")
        return audit.findings
    verifier = _archive_key(audit, trusted_key)
    try:
        log = TransparencyLog.open(directory, readonly=True)
    except LogError as exc:
        audit.add(E_LOG_DAMAGED, _rel(HEAD_NAME), str(exc))
        return audit.findings
    with log:
        for tail in log.torn_tail:
            audit.add(W_TORN_TAIL, _rel(tail.split(":", 1)[0]), tail)
        for index, problem in log.check():
            where = f"leaf {index}: " if index is not None else ""
            audit.add(E_TREE_MISMATCH, _rel(ENTRIES_NAME), where + problem)
        leaves = _check_entries(audit, log)
        _check_manifests(audit, manifests, leaves)
        if verifier is not None:
            _check_checkpoints(audit, log, verifier, external_checkpoints, timestamp_check)
    return audit.findings


def _not_plain(directory: Path) -> bool:
    """True if ``directory`` or anything below it is a symlink or neither file nor directory."""
    if directory.is_symlink():
        return True
    for parent, dirs, files in os.walk(directory):  # os.walk does not follow symlinked dirs
        for name in dirs + files:
            mode = os.lstat(os.path.join(parent, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                return True
    return False


def _manifests_on_disk(root: Path) -> dict[str, Path]:
    directory = root / MANIFEST_DIR
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.glob("*.json"):
        capture_id = path.name[: -len(".json")]
        if CAPTURE_ID.match(capture_id) and not path.is_symlink() and path.is_file():
            found[capture_id] = path  # symlinks and FIFOs are never opened (verify: E107/W505)
    return found


def _archive_key(audit: _Audit, trusted_key: str | None) -> Verifier | None:
    trusted: Verifier | None = None
    if trusted_key is not None:
        try:
            trusted = parse_verifier_key(trusted_key)
        except PreserveError as exc:
            audit.add(E_KEY_INVALID, "(trusted key)", f"the trusted key is invalid: {exc}")
            return None
    key_path = log_dir(audit.root) / KEY_FILE
    if trusted is None and not key_path.exists() and not checkpoint_paths(audit.root):
        audit.add(W_UNSIGNED_LOG, _rel(KEY_FILE), "no key.pub: checkpoints cannot be written")
        return None
    try:
        stored = read_verifier(audit.root)
    except PreserveError as exc:
        audit.add(E_KEY_INVALID, _rel(KEY_FILE), str(exc))
        return trusted
    if trusted is not None and stored != trusted:
        audit.add(E_KEY_INVALID, _rel(KEY_FILE), "key.pub is not the trusted key")
        return trusted
    return stored


def _check_entries(audit: _Audit, log: TransparencyLog) -> dict[str, tuple[int, ManifestLeaf]]:
    leaves: dict[str, tuple[int, ManifestLeaf]] = {}
    previous = None
    entries = _rel(ENTRIES_NAME)
    try:
        for index, data in log.iter_entries():
            try:
                entry = parse_entry(data)
            except ValueError as exc:
                audit.add(E_ENTRY_MALFORMED, entries, f"leaf {index}: {exc}")
                continue
            committed = parse_time(entry.committed)
            if previous is not None and committed < previous:
                audit.add(
                    E_TIME_BACKWARDS,
                    entries,
                    f"leaf {index} committed {entry.committed}, before the previous leaf",
                )
            previous = committed if previous is None else max(previous, committed)
            if not isinstance(entry, ManifestLeaf):
                continue
            if parse_time(entry.captured) > committed:
                audit.add(
                    E_CAPTURED_AFTER_COMMIT,
                    entry.path,
                    f"leaf {index}: captured {entry.captured} after committed {entry.committed}",
                )
            if entry.capture_id in leaves:
                first = leaves[entry.capture_id][0]
                audit.add(
                    E_DUPLICATE_CAPTURE, entry.path, f"leaves {first} and {index} log this capture"
                )
                continue
            leaves[entry.capture_id] = (index, entry)
    except LogError as exc:
        audit.add(E_LOG_DAMAGED, entries, str(exc))
    return leaves


def _check_manifests(
    audit: _Audit, on_disk: dict[str, Path], leaves: dict[str, tuple[int, ManifestLeaf]]
) -> None:
    for capture_id in sorted(on_disk.keys() - leaves.keys()):
        audit.add(E_MANIFEST_NOT_LOGGED, on_disk[capture_id], "no log leaf records this manifest")
    for capture_id, (index, leaf) in sorted(leaves.items()):
        path = on_disk.get(capture_id)
        if path is None:
            audit.add(E_LOGGED_MANIFEST_MISSING, leaf.path, f"leaf {index} names it")
            continue
        try:
            digests = hash_file(path)
        except OSError as exc:
            audit.add(E_LOGGED_MANIFEST_MISSING, leaf.path, f"unreadable: {exc}")
            continue
        if (digests.blake3, digests.sha256, digests.size) != (leaf.blake3, leaf.sha256, leaf.size):
            audit.add(
                E_MANIFEST_CHANGED,
                leaf.path,
                f"leaf {index} has sha256 {leaf.sha256}, the file has {digests.sha256}",
            )


def _check_one_checkpoint(
    audit: _Audit,
    log: TransparencyLog,
    verifier: Verifier,
    path: Path,
    code: str,
) -> Checkpoint | None:
    """Check one signed checkpoint file; return it if it is valid and consistent."""
    try:
        text = path.read_text(encoding="utf-8")
        checkpoint = verify_checkpoint(text, verifier, origin=verifier.name)
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        audit.add(E_CHECKPOINT_SIGNATURE, path, str(exc))
        return None
    size = checkpoint.size
    if size > log.size:
        audit.add(code, path, f"checkpoint has {size} leaves, the log only {log.size} (truncated)")
        return None
    proof = log.consistency_proof(size) if size else []
    stored_root = log.root_hash(size)
    if stored_root != checkpoint.root_hash or not verify_consistency(
        size, log.size, checkpoint.root_hash, log.root_hash(), proof
    ):
        audit.add(code, path, f"the log's first {size} leaves do not match this checkpoint")
        return None
    return checkpoint


def _check_checkpoints(
    audit: _Audit,
    log: TransparencyLog,
    verifier: Verifier,
    external: Sequence[Path],
    timestamp_check: TimestampCheck | None,
) -> None:
    covered = 0
    paths = checkpoint_paths(audit.root)
    for path in paths:
        checkpoint = _check_one_checkpoint(audit, log, verifier, path, E_CHECKPOINT_INCONSISTENT)
        if checkpoint is None:
            continue
        covered = max(covered, checkpoint.size)
        match = CHECKPOINT_NAME.match(path.name)
        if match is None or int(match.group(1)) != checkpoint.size:
            audit.add(E_CHECKPOINT_SIGNATURE, path, "file name does not match the checkpoint size")
        token = path.with_suffix(".tsr")
        if timestamp_check is not None and token.exists():
            problem = timestamp_check(path.read_bytes(), token.read_bytes())
            if problem is not None:
                audit.add(E_TIMESTAMP_INVALID, token, problem)
    latest = log_dir(audit.root) / LATEST_CHECKPOINT
    if latest.exists() and (not paths or latest.read_bytes() != paths[-1].read_bytes()):
        audit.add(W_LATEST_CHECKPOINT_STALE, latest, "not a copy of the newest stored checkpoint")
        checkpoint = _check_one_checkpoint(audit, log, verifier, latest, E_CHECKPOINT_INCONSISTENT)
        if checkpoint is not None:
            covered = max(covered, checkpoint.size)
    if covered < log.size:
        audit.add(
            W_UNCHECKPOINTED,
            _rel(HEAD_NAME),
            f"leaves {covered} to {log.size - 1} are not covered by a valid signed checkpoint",
        )
    for path in external:
        _check_one_checkpoint(audit, log, verifier, Path(path), E_EXTERNAL_CHECKPOINT_INCONSISTENT)
