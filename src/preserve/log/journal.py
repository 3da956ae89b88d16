"""The commit journal: what the key holder is about to commit, written before the commit point.

Before a group of manifests is linked into ``manifests/`` (the commit point), preserve writes
one *commit record* to ``manifests/log/journal/<group id>.txt``, fsynced, naming each manifest
about to be committed by capture id and the exact hashes of its bytes. The record is a C2SP
signed note signed with the archive key when the key is at hand::

    preserve-commit/1
    <origin>
    <group id>
    capture <capture id> <manifest sha256> <manifest blake3> <size>
    import <capture id> <sha256> <blake3> <size>
    adopt <capture id> <sha256> <blake3> <size>

    — <origin> <signature>

It is the evidence that *this key holder* committed those manifests, which nobody without
the key can forge: repair completes an interrupted commit (appends the missing leaves) only
from a record signed by the archive key, and signing refuses to cover a manifest leaf that
has neither a signed checkpoint nor a signed record behind it. A record is removed once a
signed checkpoint covers every leaf it names. In an archive without a key (nothing is ever
signed there) records are written unsigned, and are all repair has to go on.

This module formats, signs, parses and checks records and reads/writes the journal files. It
does not append to the log or decide anything (see :mod:`preserve.log.signing`,
:mod:`preserve.audit.repair`).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import LogError, StorageError
from ..safe_io import Durability, fsync_dir, read_text, write_atomic
from .archive_log import LOG_DIR, require_plain_log_subdir
from .keys import Signer, Verifier
from .note import NoteError, open_note, sign_note, split_note

JOURNAL_DIR = "journal"
HEADER = "preserve-commit/1"
KINDS = ("capture", "import", "adopt")
MAX_RECORD_FILE = 4 * 1024 * 1024
MAX_RECORDS = 10_000
_GROUP_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}\Z")
_LINE = re.compile(
    r"^(capture|import|adopt) (\d{8}T\d{6}Z-[a-z2-7]{10}) ([0-9a-f]{64}) ([0-9a-f]{64}) "
    r"(0|[1-9][0-9]{0,15})$"
)


@dataclass(frozen=True, slots=True)
class CommitEntry:
    """One manifest a commit group is about to commit (or an operator adopts)."""

    kind: str  # one of KINDS
    capture_id: str
    sha256: str
    blake3: str
    size: int

    def line(self) -> str:
        return f"{self.kind} {self.capture_id} {self.sha256} {self.blake3} {self.size}"

    def matches(self, sha256: str, blake3: str, size: int) -> bool:
        return (self.sha256, self.blake3, self.size) == (sha256, blake3, size)


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """One journal file: a group of entries, and whether the archive key signed it."""

    path: Path
    group_id: str
    origin: str
    entries: tuple[CommitEntry, ...]
    signed: bool  # True only if signed by the verifier it was read with


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A journal file that could not be read or checked, and why."""

    path: Path
    problem: str


def journal_dir(root: Path) -> Path:
    return Path(root) / LOG_DIR / JOURNAL_DIR


def new_group_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(6)}"


def record_text(origin: str, group_id: str, entries: Iterable[CommitEntry]) -> str:
    lines = [HEADER, origin, group_id, *(entry.line() for entry in entries)]
    return "\n".join(lines) + "\n"


def write_record(
    root: Path,
    entries: list[CommitEntry],
    *,
    signer: Signer | None,
    origin: str,
    group_id: str | None = None,
    durability: Durability | None = None,
) -> Path:
    """Write a commit record durably (temp, fsync, link, directory fsync); return its path.

    Signed with ``signer`` when given; with ``durability`` the flush is left to it (the
    caller flushes before its commit point). Raises StorageError if it cannot be written.
    """
    if not entries or len(entries) > MAX_RECORDS:
        raise ValueError(f"a commit record names 1 to {MAX_RECORDS} manifests")
    group = group_id or new_group_id()
    text = record_text(origin, group, entries)
    note = sign_note(text, [signer]) if signer is not None else text
    directory = require_plain_log_subdir(root, JOURNAL_DIR)
    try:
        directory.mkdir(exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    path = directory / f"{group}.txt"
    try:
        write_atomic(path, note.encode("utf-8"), exclusive=True, durability=durability)
    except FileExistsError as exc:
        raise StorageError(f"commit record {path} already exists") from exc
    return path


def parse_record(path: Path, text: str, verifier: Verifier | None) -> CommitRecord:
    """Parse one record; ``signed`` is True only if ``verifier`` signed it (LogError if the
    text is malformed or carries a signature by ``verifier`` that does not verify)."""
    try:
        if "\n\n" in text:
            body, signatures = split_note(text)
            signed = False
            if verifier is not None and any(
                s.name == verifier.name and s.key_id == verifier.key_id for s in signatures
            ):
                open_note(text, verifier)  # raises on a bad signature by this key
                signed = True
        else:
            body, signed = text, False
    except NoteError as exc:
        raise LogError(f"{path.name}: {exc}") from exc
    lines = body.rstrip("\n").split("\n")
    if len(lines) < 4 or lines[0] != HEADER:
        raise LogError(f"{path.name}: not a {HEADER} record")
    origin, group_id = lines[1], lines[2]
    if not _GROUP_ID.match(group_id) or path.name != f"{group_id}.txt":
        raise LogError(f"{path.name}: group id {group_id!r} does not match the file name")
    if len(lines) - 3 > MAX_RECORDS:
        raise LogError(f"{path.name}: more than {MAX_RECORDS} entries")
    entries = []
    for line in lines[3:]:
        match = _LINE.match(line)
        if match is None:
            raise LogError(f"{path.name}: malformed entry {line[:120]!r}")
        kind, capture_id, sha256, blake3, size = match.groups()
        entries.append(CommitEntry(kind, capture_id, sha256, blake3, int(size)))
    return CommitRecord(path, group_id, origin, tuple(entries), signed)


def read_journal(
    root: Path, verifier: Verifier | None
) -> tuple[list[CommitRecord], list[BadRecord]]:
    """Every record in the journal (sorted by name) and the files that could not be read."""
    directory = journal_dir(root)
    if directory.is_symlink():
        return [], [BadRecord(directory, "the journal directory is a symlink; not followed")]
    if not directory.is_dir():
        return [], []
    records: list[CommitRecord] = []
    bad: list[BadRecord] = []
    try:
        names = sorted(p for p in directory.iterdir() if not p.name.startswith(".tmp-"))
    except OSError as exc:
        return [], [BadRecord(directory, f"cannot list: {exc.strerror or exc}")]
    for path in names:
        try:
            text = read_text(path, MAX_RECORD_FILE, what="commit record", error=LogError)
            records.append(parse_record(path, text, verifier))
        except LogError as exc:
            bad.append(BadRecord(path, str(exc)))
    return records, bad


def iter_entries(records: Iterable[CommitRecord], *, signed_only: bool) -> Iterator[
        tuple[CommitRecord, CommitEntry]]:
    for record in records:
        if signed_only and not record.signed:
            continue
        for entry in record.entries:
            yield record, entry


def remove_records(paths: Sequence[Path]) -> None:
    """Delete journal files whose entries are all covered by a signed checkpoint."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if paths:
        with contextlib.suppress(OSError):
            fsync_dir(paths[0].parent)


__all__ = [
    "HEADER",
    "JOURNAL_DIR",
    "KINDS",
    "BadRecord",
    "CommitEntry",
    "CommitRecord",
    "iter_entries",
    "journal_dir",
    "new_group_id",
    "parse_record",
    "read_journal",
    "record_text",
    "remove_records",
    "write_record",
]
