"""Audit of an archive's integrity log: findings as data (E3xx/W3xx), never printed or raised.

:func:`verify_log` checks that the log is well formed (the stored tree matches the entries,
entries are canonical, times move forward), that manifests on disk and manifest leaves match
one to one with the same hashes, that every stored checkpoint is validly signed by the archive
key and consistent with the current log (RFC 9162 consistency proofs from stored hashes), and
that external checkpoints the caller kept elsewhere are consistent too.

It streams the entries once (O(n) hashing); what it keeps of every capture (its leaf, its
manifest file) is in a temporary database (:mod:`preserve.log.audit_index`), so its memory
does not grow with the archive; each checkpoint costs O(log n).
It raises only for programming errors; anything wrong on disk becomes a :class:`LogFinding`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from ..errors import LogError, PreserveError
from ..hashing import hash_file
from ..safe_io import walk_tree
from .archive_log import (
    CHECKPOINT_DIR,
    CHECKPOINT_NAME,
    KEY_FILE,
    LATEST_CHECKPOINT,
    LOG_DIR,
    checkpoint_paths,
    checkpoint_time,
    log_dir,
    read_checkpoint_file,
    read_token_file,
    read_verifier,
)
from .audit_index import AuditIndex, Logged
from .entries import (
    CAPTURE_ID,
    MANIFEST_DIR,
    MAX_CLOCK_SKEW,
    SIGNING_SKEW,
    AdoptionLeaf,
    AuditLeaf,
    ImportLeaf,
    ManifestEntry,
    commit_time_problem,
    format_time,
    parse_entry,
    parse_time,
)
from .export_note import DESCRIPTOR, Described, exported_captures
from .journal import CommitEntry, CommitRecord, iter_entries, read_journal
from .keys import Verifier, default_key_path, load_signer, parse_verifier_key
from .known_heads import KnownHead, KnownHeads, identity_for
from .merkle import verify_consistency
from .note import Checkpoint, NoteError, parse_checkpoint, verify_checkpoint
from .storage import ENTRIES_NAME, HEAD_NAME, TransparencyLog, hard_linked

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
E_ROLLBACK = "E315"
E_UNPROVED_LEAF = "E316"
E_COMMIT_RECORD_INVALID = "E317"
E_AUDIT_SIGNATURE = "E318"
W_TORN_TAIL = "W301"
W_UNCHECKPOINTED = "W302"
W_LATEST_CHECKPOINT_STALE = "W303"
W_UNSIGNED_LOG = "W304"
W_AWAITING_LEAF = "W305"
W_INTERRUPTED_COMMIT = "W306"
W_NO_RECENT_ANCHOR = "W307"
W_PARTIAL_EXPORT = "W308"
W_FOREIGN_DESCRIPTOR = "W309"
W_HARD_LINKED = "W310"
W_DATED_AHEAD = "W311"

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
    E_TIMESTAMP_INVALID: "RFC 3161 timestamp token of a checkpoint does not verify or is missing",
    E_ROLLBACK: "log does not extend the head this operator last verified or signed",
    E_UNPROVED_LEAF: "manifest leaf not proved by a signed checkpoint or signed commit record",
    E_COMMIT_RECORD_INVALID: "commit record malformed or not validly signed",
    E_AUDIT_SIGNATURE: "audit leaf signed, but not validly by the archive key",
    W_TORN_TAIL: "torn tail of an interrupted append (ignored)",
    W_UNCHECKPOINTED: "log entries not yet covered by a signed checkpoint",
    W_LATEST_CHECKPOINT_STALE: "latest-checkpoint copy differs from the newest stored checkpoint",
    W_UNSIGNED_LOG: "the log has no archive key and no checkpoints: nothing is signed",
    W_AWAITING_LEAF: "committed manifest awaiting its log leaf (a signed commit record names it)",
    W_INTERRUPTED_COMMIT: "commit record of an interrupted commit (no manifest was committed)",
    W_NO_RECENT_ANCHOR: "no off-site anchor recent enough was given",
    W_PARTIAL_EXPORT: "a partial export: logged captures left out, as its signed descriptor says",
    W_FOREIGN_DESCRIPTOR: "an export descriptor that does not describe this root (ignored)",
    W_HARD_LINKED: "log file shared by hard links",
    W_DATED_AHEAD: "log entry dated ahead of this clock",
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
    "clock jump back), or is more than 10 minutes ahead of the verifier's clock (from the "
    "future: every later leaf would look back-dated).",
    E_CAPTURED_AFTER_COMMIT: "A manifest leaf's capture time is after its commit time.",
    E_DUPLICATE_CAPTURE: "Two manifest leaves record the same capture id.",
    E_KEY_INVALID: "manifests/log/key.pub is missing or malformed while checkpoints exist, or "
    "differs from the trusted key given to verify.",
    E_TIMESTAMP_INVALID: "An RFC 3161 token stored beside a checkpoint does not verify against "
    "the trusted TSA roots or is not over that checkpoint; or, verify being given --tsa-roots, "
    "the newest checkpoint has no token.",
    W_TORN_TAIL: "Bytes past the committed log size from an interrupted append; ignored, and "
    "removed by the next write.",
    W_UNCHECKPOINTED: "The newest leaves are not covered by any valid signed checkpoint yet.",
    W_LATEST_CHECKPOINT_STALE: "manifests/log/checkpoint is not a copy of the newest stored "
    "checkpoint: a kill before it was copied, or the file replaced by an older genuine "
    "checkpoint (rolled back; the message gives both sizes and `preserve repair` restores it "
    "from the newest stored one), or newer than every stored one (checkpoints/ lost files).",
    W_UNSIGNED_LOG: "The archive has no key.pub and no checkpoints, so the log is not signed.",
    E_ROLLBACK: "The log is smaller than, or not an extension of, the tree head this operator "
    "last verified or signed (kept outside the archive): an older copy was restored, or the log "
    "was rewritten. `preserve reset-head` accepts it deliberately.",
    E_UNPROVED_LEAF: "A manifest leaf newer than every valid signed checkpoint has no commit "
    "record of its kind (capture, import, adopt) signed by the archive key: it was appended, "
    "or its type changed, by someone without the key (a planted capture, or a capture made "
    "without the key). `preserve adopt` vouches for it explicitly.",
    E_COMMIT_RECORD_INVALID: "A file in manifests/log/journal/ is not a well-formed commit record,"
    " or carries a signature by the archive key that does not verify (forged).",
    E_AUDIT_SIGNATURE: "An audit leaf carries a signature that is not a valid one by the "
    "archive key: a forged record of a verify made to look like the key holder's. An audit "
    "leaf with no signature is a claim by an auditor without the key, shown as such.",
    W_AWAITING_LEAF: "A manifest on disk is not in the log yet, but a commit record signed by "
    "the archive key names it exactly: a capture whose log append failed after its commit "
    "(crash, full disk). `preserve repair` appends its leaf.",
    W_INTERRUPTED_COMMIT: "A commit record names manifests of which none was committed (the "
    "capture died before its commit point); `preserve repair` removes it.",
    W_NO_RECENT_ANCHOR: "verify was given no signed checkpoint kept outside the archive (or "
    "only older ones than --anchor-max-age): a rollback to an older consistent copy is then "
    "caught only by this operator's known head.",
    W_PARTIAL_EXPORT: "The root is a partial export, a BagIt bag's data/ directory, whose "
    "descriptor is signed by the archive key and describes it (the log is as long as when it "
    "was exported; every manifest present is listed): the log's captures that it does not "
    "list are absent on purpose (otherwise E305). An unsigned or forged descriptor changes "
    "nothing.",
    W_FOREIGN_DESCRIPTOR: "preserve-export.json at the root is signed by the archive key but "
    "is not this root's: the root is not a bag's data/ directory, or the log has grown since "
    "that export, or manifests it does not list are present (a descriptor copied into a live "
    "archive). Its partial-export allowance is not applied: every logged capture must be "
    "there.",
    W_HARD_LINKED: "A file of the integrity log has more than one name (a snapshot made with "
    "hard links, cp -al or rsync --link-dest, or a link planted to a file elsewhere): "
    "appending to either copy would change both, so preserve writes neither (no capture, "
    "audit or repair appends to this log) until it is copied without hard links.",
    W_DATED_AHEAD: "A leaf's commit time is after this computer's clock, by less than the 10 "
    "minutes verify allows for clocks that differ (more is E310). Nothing can be appended or "
    "signed after it until this clock passes that time: entries dated now would look "
    "back-dated. This clock is slow, or someone dated the entry ahead (an unsigned audit "
    "needs no key).",
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
    heads: KnownHeads | None = None,
    anchor_max_age: timedelta | None = None,
    now: datetime | None = None,
    partial_export: bool = True,
) -> list[LogFinding]:
    """Audit the archive's integrity log; return the findings (empty means all is well).

    ``trusted_key`` is a verifier key obtained outside the archive; when given, checkpoints
    must be signed by it and ``key.pub`` must equal it (otherwise an attacker who rewrote the
    archive could also have replaced ``key.pub``). ``external_checkpoints`` are anchors kept
    elsewhere: each is a hard requirement (a missing log, key or leaf fails it).
    ``heads`` is the operator's store of known heads: the log must extend the one of this
    archive. ``anchor_max_age`` warns (W307) unless an external checkpoint at most that old
    was given. ``timestamp_check`` verifies ``.tsr`` tokens. ``partial_export=False``: a
    partial export's descriptor excuses nothing (what a signing path asks: a signature needs
    every logged capture).
    """
    with AuditIndex() as index:
        return _verify_log(index, root, external_checkpoints=external_checkpoints,
                           trusted_key=trusted_key, timestamp_check=timestamp_check,
                           heads=heads, anchor_max_age=anchor_max_age, now=now,
                           partial_export=partial_export)


def _verify_log(
    index: AuditIndex,
    root: Path,
    *,
    external_checkpoints: Sequence[Path],
    trusted_key: str | None,
    timestamp_check: TimestampCheck | None,
    heads: KnownHeads | None,
    anchor_max_age: timedelta | None,
    now: datetime | None,
    partial_export: bool,
) -> list[LogFinding]:
    """:func:`verify_log`, what it keeps of every capture kept in ``index``."""
    root = Path(root)
    audit = _Audit(root, [])
    directory = log_dir(root)
    manifests = _manifests_on_disk(root, index)
    if not external_checkpoints:  # given ones are aged once checked (invalid: errors only)
        _check_anchor_age(audit, (), anchor_max_age, now)
    if _not_plain(directory):
        audit.add(E_LOG_DAMAGED, _rel(""), "the log directory, or an entry in it, is a symlink or "
                  "a special file; not followed")
        _fail_anchors(audit, external_checkpoints, "the log could not be read")
        return audit.findings
    if not (directory / HEAD_NAME).exists():
        remembered = heads.for_path(root) if heads is not None else []
        anchored = bool(external_checkpoints or remembered or trusted_key is not None
                        or timestamp_check is not None)
        if manifests or directory.exists() or anchored:
            audit.add(E_LOG_DAMAGED, _rel(HEAD_NAME), "the archive has no integrity log head")
        if trusted_key is not None or remembered:
            audit.add(E_KEY_INVALID, _rel(KEY_FILE), "the archive has no key.pub")
        if timestamp_check is not None:
            audit.add(E_TIMESTAMP_INVALID, _rel(CHECKPOINT_DIR), "no timestamped checkpoint: "
                      "the archive has no integrity log")
        _fail_anchors(audit, external_checkpoints, "the archive has no integrity log")
        return audit.findings
    verifier = _archive_key(audit, trusted_key, heads, bool(external_checkpoints))
    try:
        log = TransparencyLog.open(directory, readonly=True)
    except LogError as exc:
        audit.add(E_LOG_DAMAGED, _rel(HEAD_NAME), str(exc))
        _fail_anchors(audit, external_checkpoints, "the log could not be opened")
        return audit.findings
    with log:
        for tail in log.torn_tail:
            audit.add(W_TORN_TAIL, _rel(tail.split(":", 1)[0]), tail)
        for name in hard_linked(directory):
            audit.add(W_HARD_LINKED, _rel(name), "this log file has other names (hard links): "
                      "preserve will not append to it; copy the archive without hard links")
        tree_ok = True
        for leaf_index, problem in log.check():
            tree_ok = False
            where = f"leaf {leaf_index}: " if leaf_index is not None else ""
            audit.add(E_TREE_MISMATCH, _rel(ENTRIES_NAME), where + problem)
        _check_entries(audit, log, index, verifier)
        records, bad = read_journal(root, verifier)
        for item in bad:
            audit.add(E_COMMIT_RECORD_INVALID, item.path, item.problem)
        described = exported_captures(root, verifier, log.size) \
            if verifier is not None and partial_export else None
        _check_manifests(audit, index, records, _allowance(audit, index, described))
        covered = 0
        if verifier is not None:
            covered = _check_checkpoints(audit, log, verifier, timestamp_check)
            anchors = [path for path in external_checkpoints if _check_one_checkpoint(
                audit, log, verifier, Path(path), E_EXTERNAL_CHECKPOINT_INCONSISTENT)]
            if anchors:
                _check_anchor_age(audit, anchors, anchor_max_age, now)
            _check_unproved(audit, index, records, covered)
        else:
            _fail_anchors(audit, external_checkpoints, "the archive key is not available")
            if timestamp_check is not None:
                audit.add(E_TIMESTAMP_INVALID, _rel(CHECKPOINT_DIR), "no signed checkpoint, so "
                          "no timestamp token, covers the log (the archive has no key)")
        _check_known_head(audit, log, heads, verifier, tree_ok)
    return audit.findings


def _fail_anchors(audit: _Audit, anchors: Sequence[Path], why: str) -> None:
    for path in anchors:
        audit.add(E_EXTERNAL_CHECKPOINT_INCONSISTENT, Path(path),
                  f"this anchor cannot be satisfied: {why}")


def _check_anchor_age(audit: _Audit, anchors: Sequence[Path], max_age: timedelta | None,
                      now: datetime | None) -> None:
    """W307 unless one of ``anchors`` (the off-site checkpoints given) is recent enough;
    anchors that cannot be read are left to the errors that report them."""
    if max_age is None:
        return
    now = now or datetime.now(UTC)
    readable = [when for path in anchors if (when := _anchor_time(Path(path))) is not None]
    if anchors and not readable:
        return  # given but unreadable or invalid: E307/E309 say so, not "none was given"
    _warn_anchor_age(audit, max(readable, default=None), max_age, now)


def _warn_anchor_age(audit: _Audit, newest: datetime | None, max_age: timedelta,
                     now: datetime) -> None:
    if newest is None:
        audit.add(W_NO_RECENT_ANCHOR, _rel(""), "no off-site checkpoint was given "
                  "(--checkpoint FILE): keep one elsewhere and pass it to verify")
    elif now - newest > max_age:
        days = (now - newest).total_seconds() / 86400
        audit.add(W_NO_RECENT_ANCHOR, _rel(""), f"the newest off-site checkpoint given is "
                  f"{days:.0f} days old (limit {max_age.total_seconds() / 86400:.0f}): copy a "
                  "newer one off-site")


def _anchor_time(path: Path) -> datetime | None:
    """When an anchor was signed: its preserve-time line, else the file's modification time."""
    try:
        _, text = path.stat(), read_checkpoint_file(path)
        checkpoint, _sigs = parse_checkpoint(text)
    except (OSError, LogError, NoteError):
        return None
    signed = checkpoint_time(checkpoint)
    if signed is not None:
        return signed
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


def _not_plain(directory: Path) -> bool:
    """True if ``directory`` or anything below it is a symlink or neither file nor directory."""
    if directory.is_symlink() or directory.parent.is_symlink():
        return True
    return any(not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
               for _path, mode, _depth in walk_tree(directory))


def _manifests_on_disk(root: Path, index: AuditIndex) -> int:
    """Keep in ``index`` the capture ids of the regular files ``manifests/<capture id>.json``
    (symlinks and FIFOs are never opened: verify reports them, E107/W505); return how many."""
    directory = root / MANIFEST_DIR
    if directory.is_symlink() or not directory.is_dir():
        return 0

    def found() -> Iterator[str]:
        with os.scandir(directory) as listing:
            for item in listing:
                capture_id = item.name[: -len(".json")]
                if (item.name.endswith(".json") and CAPTURE_ID.match(capture_id)
                        and item.is_file(follow_symlinks=False)):
                    yield capture_id

    index.add_on_disk(found())
    return index.disk_count


def _manifest_path(root: Path, capture_id: str) -> Path:
    return root / MANIFEST_DIR / f"{capture_id}.json"


def _archive_key(audit: _Audit, trusted_key: str | None, heads: KnownHeads | None,
                 anchored: bool, *, stored_key: Callable[[], Verifier | None] | None = None,
                 has_checkpoints: Callable[[], bool] | None = None) -> Verifier | None:
    """The key checkpoints are checked with (the trusted key when one is given): E313 when
    ``key.pub`` is missing although something says the archive was signed (a trusted key, a
    known head of it here, an anchor, a stored checkpoint), unreadable, not the trusted key,
    or not the key this operator last verified it with. ``stored_key`` reads ``key.pub``
    (None when there is none; PreserveError when unreadable) and ``has_checkpoints`` says
    whether checkpoints are stored: an object-store archive gives its own (default: the
    directory ``audit.root``)."""
    trusted: Verifier | None = None
    if trusted_key is not None:
        try:
            trusted = parse_verifier_key(trusted_key)
        except PreserveError as exc:
            audit.add(E_KEY_INVALID, "(trusted key)", f"the trusted key is invalid: {exc}")
            return None
    try:
        stored = (stored_key or (lambda: _local_key(audit.root)))()
    except PreserveError as exc:
        audit.add(E_KEY_INVALID, _rel(KEY_FILE), str(exc))
        return trusted
    if stored is None:
        remembered = heads.for_path(audit.root) if heads is not None else []
        if trusted is None and not remembered and not anchored \
                and not (has_checkpoints or (lambda: bool(checkpoint_paths(audit.root))))():
            audit.add(W_UNSIGNED_LOG, _rel(KEY_FILE), "no key.pub: checkpoints cannot be written")
            return None
        known = f"; it was last verified with key {remembered[0].identity}" if remembered else ""
        audit.add(E_KEY_INVALID, _rel(KEY_FILE), f"the archive's key.pub is missing{known}")
        return trusted
    if trusted is not None and stored != trusted:
        audit.add(E_KEY_INVALID, _rel(KEY_FILE), "key.pub is not the trusted key")
        return trusted
    held = _held_key(stored.name) if trusted is None else None
    if held is not None and held != stored:
        audit.add(E_KEY_INVALID, _rel(KEY_FILE), f"key.pub holds {stored.to_text()}, but the "
                  f"key named {stored.name!r} you hold is {held.to_text()} (key replaced? if "
                  "the archive is someone else's, verify it with --trusted-key)")
        return held
    if heads is not None:
        for head in heads.others_at(audit.root, identity_for(stored, audit.root)):
            audit.add(E_KEY_INVALID, _rel(KEY_FILE), f"key.pub holds {stored.to_text()}, but "
                      f"you last verified this archive with key {head.identity} on "
                      f"{head.updated} (key replaced? preserve reset-head if it is another "
                      "archive)")
    return stored


def _held_key(name: str) -> Verifier | None:
    """The public half of the signing key named ``name`` in this operator's config dir, if
    there is one there (key names carry a random part: two keys of one name are one archive's
    key and an impostor). Checked at any path, where a known head is only at the paths it saw:
    an archive moved, rewritten and signed with a new key of the same name is caught."""
    path = default_key_path(name)
    if not path.is_file():
        return None
    try:
        return load_signer(path).verifier
    except PreserveError:
        return None


def _local_key(root: Path) -> Verifier | None:
    """``key.pub`` of the archive directory ``root`` (None when there is none)."""
    key_path = log_dir(root) / KEY_FILE
    if not key_path.exists() and not key_path.is_symlink():
        return None
    return read_verifier(root)


def _check_entries(audit: _Audit, log: TransparencyLog, index: AuditIndex,
                   verifier: Verifier | None) -> None:
    """Parse every leaf; keep in ``index``, per capture id, the leaf that logs its manifest
    (and whether an adoption leaf vouches for it); check signed audit leaves against
    ``verifier`` (the archive key)."""
    previous = None
    entries = _rel(ENTRIES_NAME)
    now = datetime.now(UTC)
    try:
        for leaf, data in log.iter_entries():
            try:
                entry = parse_entry(data)
                committed = parse_time(entry.committed)
                problem = commit_time_problem(leaf, entry.committed, previous, now)
            except ValueError as exc:
                audit.add(E_ENTRY_MALFORMED, entries, f"leaf {leaf}: {exc}")
                continue
            if problem is not None:
                audit.add(E_TIME_BACKWARDS, entries, problem)
            elif committed > now + SIGNING_SKEW:
                audit.add(W_DATED_AHEAD, entries, f"leaf {leaf} committed {entry.committed}, "
                          f"after this clock ({format_time(now)}): nothing can be appended or "
                          "signed after it until then")
            if committed <= now + MAX_CLOCK_SKEW:  # one from the future is reported once
                previous = committed if previous is None else max(previous, committed)
            if isinstance(entry, AuditLeaf):
                if entry.signature_state(verifier) == "invalid":
                    audit.add(E_AUDIT_SIGNATURE, entries, f"leaf {leaf}: an audit whose "
                              "signature is not the archive key's (a forged audit)")
                continue
            if parse_time(entry.captured) > committed:
                audit.add(
                    E_CAPTURED_AFTER_COMMIT,
                    entry.path,
                    f"leaf {leaf}: captured {entry.captured} after committed {entry.committed}",
                )
            adoption = isinstance(entry, AdoptionLeaf)
            earlier = index.add_leaf(Logged(entry.capture_id, leaf, entry.sha256,
                                            entry.blake3, entry.size,
                                            leaf if adoption else None, _kind(entry)))
            if earlier is None:
                continue
            if adoption and earlier.adopted is None:
                index.adopt(entry.capture_id, leaf)  # adopted later
                _same_manifest(audit, earlier, entry, leaf)
            else:
                audit.add(E_DUPLICATE_CAPTURE, entry.path,
                          f"leaves {earlier.leaf} and {leaf} log this capture")
    except LogError as exc:
        audit.add(E_LOG_DAMAGED, entries, str(exc))


def _kind(entry: ManifestEntry) -> str:
    """The kind of commit record that proves ``entry``, as signing requires it
    (:func:`preserve.log.signing._record_kinds`): a manifest leaf a ``capture`` record, an
    import leaf an ``import`` one, an adoption leaf an ``adopt`` one."""
    if isinstance(entry, AdoptionLeaf):
        return "adopt"
    return "import" if isinstance(entry, ImportLeaf) else "capture"


def _same_manifest(audit: _Audit, leaf: Logged, adoption: ManifestEntry,
                   index: int) -> None:
    if (leaf.sha256, leaf.size) != (adoption.sha256, adoption.size):
        audit.add(E_DUPLICATE_CAPTURE, adoption.path, f"adoption leaf {index} names other "
                  "manifest bytes than the capture's own leaf")


def _allowance(audit: _Audit, index: AuditIndex, described: Described | None) -> set[str] | None:
    """The captures a partial export's descriptor excuses the absence of (the logged ones it
    does not list), or None: no descriptor, or one that does not describe this root (W309)."""
    if described is None:
        return None
    foreign = described.foreign
    if foreign is None:
        unlisted = sum(1 for leaf, on_disk in index.by_capture_id()
                       if on_disk and leaf.capture_id not in described.captures)
        if unlisted:
            foreign = f"{unlisted} manifest(s) it does not list are present"
    if foreign is not None:
        audit.add(W_FOREIGN_DESCRIPTOR, DESCRIPTOR, f"signed by the archive key, but not this "
                  f"root's ({foreign}): its captures left out are not excused")
        return None
    return described.captures


def _check_manifests(
    audit: _Audit,
    index: AuditIndex,
    records: list[CommitRecord],
    exported: set[str] | None = None,
) -> None:
    left_out = 0
    for record in records:
        if all(not index.on_disk(e.capture_id) and e.capture_id not in index
               for e in record.entries):
            audit.add(W_INTERRUPTED_COMMIT, record.path, f"names {len(record.entries)} "
                      "manifest(s), none committed (an interrupted capture); repair removes it")
    signed = {e.capture_id: e for _r, e in iter_entries(records, signed_only=True)}
    for capture_id in index.not_logged():
        path = _manifest_path(audit.root, capture_id)
        pending = signed.get(capture_id)
        if pending is not None and _file_matches(path, pending):
            audit.add(W_AWAITING_LEAF, path, "committed, but its log leaf is missing; a signed "
                      "commit record names it: preserve repair appends the leaf")
        else:
            audit.add(E_MANIFEST_NOT_LOGGED, path, "no log leaf records this manifest, and no "
                      "commit record signed by the archive key names it (planted, or foreign)")
    for leaf, on_disk in index.by_capture_id():
        capture_id = leaf.capture_id
        found = _manifest_path(audit.root, capture_id) if on_disk else None
        if found is None and exported is not None and capture_id not in exported:
            left_out += 1
            continue
        if found is None:
            audit.add(E_LOGGED_MANIFEST_MISSING, leaf.path, f"leaf {leaf.leaf} names it")
            continue
        try:
            actual = found.stat().st_size
            digests = hash_file(found) if actual == leaf.size else None
        except (OSError, PreserveError) as exc:
            audit.add(E_LOGGED_MANIFEST_MISSING, leaf.path, f"unreadable: {exc}")
            continue
        if digests is None:  # never read: it may be a sparse file of terabytes
            audit.add(E_MANIFEST_CHANGED, leaf.path, f"leaf {leaf.leaf} records {leaf.size} "
                      f"bytes, the file has {actual}")
        elif (digests.blake3, digests.sha256, digests.size) != (leaf.blake3, leaf.sha256,
                                                                leaf.size):
            audit.add(
                E_MANIFEST_CHANGED,
                leaf.path,
                f"leaf {leaf.leaf} has sha256 {leaf.sha256}, the file has {digests.sha256}",
            )
    if left_out:
        audit.add(W_PARTIAL_EXPORT, _rel(""), f"{left_out} logged capture(s) are not in this "
                  "partial export (its descriptor is signed by the archive key)")


def _file_matches(path: Path, entry: CommitEntry) -> bool:
    try:
        if path.stat().st_size != entry.size:
            return False
        digests = hash_file(path)
    except (OSError, PreserveError):
        return False
    return entry.matches(digests.sha256, digests.blake3, digests.size)


def _check_unproved(
    audit: _Audit,
    index: AuditIndex,
    records: list[CommitRecord],
    covered: int,
) -> None:
    """Leaves newer than every valid signed checkpoint need a signed commit record: an
    adoption leaf an ``adopt`` record (only the operator's key makes one), a manifest leaf
    a record of its own kind naming its manifest (an import leaf an ``import`` record, a
    manifest leaf a ``capture`` one: a leaf whose type was changed, an import passed off as
    a capture, is not proved by the other's record, as signing requires). A proved adoption
    vouches for the leaf it adopts; an unproved one vouches for nothing (anyone who can
    write the log can append one)."""
    signed: set[tuple[str, str, str, str, int]] = set()
    for _record, entry in iter_entries(records, signed_only=True):
        signed.add((entry.kind, entry.capture_id, entry.sha256, entry.blake3, entry.size))
    for leaf in index.by_leaf():
        key = (leaf.kind, leaf.capture_id, leaf.sha256, leaf.blake3, leaf.size)
        adoption_proved = leaf.adopted is not None and (
            leaf.adopted < covered or ("adopt", *key[1:]) in signed)
        if leaf.adopted is not None and not adoption_proved:
            audit.add(E_UNPROVED_LEAF, leaf.path, f"adoption leaf {leaf.adopted} is newer than "
                      "every signed checkpoint and no adopt record signed by the archive key "
                      "names it (appended without the key: it vouches for nothing)")
            if not leaf.adopted_later:
                continue
        if adoption_proved or leaf.leaf < covered:
            continue
        if key not in signed:
            audit.add(E_UNPROVED_LEAF, leaf.path, f"leaf {leaf.leaf} is newer than every signed "
                      f"checkpoint and no {leaf.kind} commit record signed by the archive key "
                      "names it (planted, or captured without the key; preserve adopt vouches "
                      "for it)")


def _check_known_head(
    audit: _Audit,
    log: TransparencyLog,
    heads: KnownHeads | None,
    verifier: Verifier | None,
    tree_ok: bool,
) -> None:
    if heads is None:
        return
    identity = identity_for(verifier, audit.root)
    try:
        head = heads.get(identity, audit.root)
    except LogError as exc:
        audit.add(E_ROLLBACK, _rel(HEAD_NAME), f"your known head of this archive is unreadable: "
                  f"{exc}")
        return
    if head is not None:
        _check_head(audit, log, head, tree_ok)


def _check_head(audit: _Audit, log: TransparencyLog, head: KnownHead, tree_ok: bool) -> None:
    """E315 unless ``log`` extends the operator's known ``head``."""
    if log.size < head.size:
        audit.add(E_ROLLBACK, _rel(HEAD_NAME), f"the log has {log.size} leaves, fewer than the "
                  f"{head.size} you last verified or signed on {head.updated} (rolled back or "
                  "truncated)")
    elif tree_ok and head.size and log.root_hash(head.size) != head.root:
        audit.add(E_ROLLBACK, _rel(HEAD_NAME), f"the log's first {head.size} leaves are not the "
                  f"ones you last verified or signed on {head.updated} (rewritten or replaced)")


def _check_one_checkpoint(
    audit: _Audit,
    log: TransparencyLog,
    verifier: Verifier,
    path: Path,
    code: str,
) -> Checkpoint | None:
    """Check one signed checkpoint file; return it if it is valid and consistent."""
    try:
        text = read_checkpoint_file(path)
        checkpoint = verify_checkpoint(text, verifier, origin=verifier.name)
    except (LogError, NoteError) as exc:
        audit.add(E_CHECKPOINT_SIGNATURE, path, str(exc))
        if code == E_EXTERNAL_CHECKPOINT_INCONSISTENT:
            audit.add(code, path, "this anchor does not verify with the archive key")
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


def _stale_copy(copy: Checkpoint | None, stored: int, log_size: int) -> str:
    """What W303 says about a ``checkpoint`` file that is not the newest stored checkpoint."""
    if copy is not None and copy.size > stored:
        return (f"newer than every stored checkpoint: it covers {copy.size} leaves, they "
                f"{stored} (checkpoints/ lost its newest files)")
    if copy is None or copy.size == stored:
        return "not a copy of the newest stored checkpoint"
    return (f"replaced by an older checkpoint: it covers {copy.size} leaves, the newest stored "
            f"checkpoint {stored} and the log {log_size} (the file was rolled back); preserve "
            "repair restores it from manifests/log/checkpoints/")


def _check_checkpoints(
    audit: _Audit,
    log: TransparencyLog,
    verifier: Verifier,
    timestamp_check: TimestampCheck | None,
) -> int:
    """Check every stored checkpoint; return the size the valid ones cover."""
    covered = 0
    newest: Path | None = None
    try:
        paths = checkpoint_paths(audit.root)
    except LogError as exc:
        audit.add(E_CHECKPOINT_SIGNATURE, _rel(CHECKPOINT_DIR), str(exc))
        paths = []
    for path in paths:
        checkpoint = _check_one_checkpoint(audit, log, verifier, path, E_CHECKPOINT_INCONSISTENT)
        if checkpoint is None:
            continue
        if checkpoint.size >= covered:
            newest = path
        covered = max(covered, checkpoint.size)
        match = CHECKPOINT_NAME.match(path.name)
        if match is None or int(match.group(1)) != checkpoint.size:
            audit.add(E_CHECKPOINT_SIGNATURE, path, "file name does not match the checkpoint size")
        token = path.with_suffix(".tsr")
        if timestamp_check is not None and token.exists():
            try:
                problem = timestamp_check(read_checkpoint_file(path).encode("utf-8"),
                                          read_token_file(token))
            except LogError as exc:
                problem = str(exc)
            if problem is not None:
                audit.add(E_TIMESTAMP_INVALID, token, problem)
    if timestamp_check is not None:  # time must be proved for the newest state, not just once
        if newest is None:
            audit.add(E_TIMESTAMP_INVALID, _rel(CHECKPOINT_DIR), "no valid signed checkpoint, "
                      "so no timestamp token, covers the log")
        elif not newest.with_suffix(".tsr").exists():
            audit.add(E_TIMESTAMP_INVALID, newest, "the newest checkpoint has no RFC 3161 "
                      "timestamp token (--tsa-roots asks for proof of time)")
    latest = log_dir(audit.root) / LATEST_CHECKPOINT
    if latest.exists() or latest.is_symlink():
        try:
            stale = not paths or read_checkpoint_file(latest) != read_checkpoint_file(paths[-1])
        except LogError:
            stale = True
        if stale:
            at = len(audit.findings)
            checkpoint = _check_one_checkpoint(audit, log, verifier, latest,
                                               E_CHECKPOINT_INCONSISTENT)
            audit.findings.insert(at, LogFinding(W_LATEST_CHECKPOINT_STALE, _rel(
                LATEST_CHECKPOINT), _stale_copy(checkpoint, covered, log.size)))
            if checkpoint is not None:
                covered = max(covered, checkpoint.size)
    if covered < log.size:
        audit.add(
            W_UNCHECKPOINTED,
            _rel(HEAD_NAME),
            f"leaves {covered} to {log.size - 1} are not covered by a valid signed checkpoint",
        )
    return covered
