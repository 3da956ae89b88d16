"""The commit journal: what the key holder is about to commit, written before the commit point.

Before a group of manifests is linked into ``manifests/`` (the commit point), preserve writes
one *commit record* to ``manifests/log/journal/<group id>.txt``, fsynced, naming each manifest
about to be committed by capture id and the exact hashes of its bytes (a record names at most
:data:`MAX_RECORDS` manifests: a larger group, an import of that many pages, writes one record
for each that many, all before its commit point). The record is a C2SP signed note signed
with the archive key when the key is at hand::

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

A record is written and read as bytes, and a parsed record keeps its entry lines as text
(:class:`RecordEntries`): one of 10,000 entries costs its 1.7 MB, a few times over while it
is signed or checked, not 10,000 objects. This module formats, signs, parses and checks
records and reads/writes the journal files. It does not append to the log or decide anything
(see :mod:`preserve.log.signing`, :mod:`preserve.audit.repair`).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import overload

from ..errors import LogError, StorageError
from ..safe_io import Durability, fsync_dir, read_regular, write_atomic
from .archive_log import LOG_DIR, require_plain_log_subdir
from .keys import Signer, Verifier
from .note import NoteError, note_signatures, signature_lines, verify_signatures

JOURNAL_DIR = "journal"
HEADER = "preserve-commit/1"
KINDS = ("capture", "import", "adopt")
MAX_RECORD_FILE = 4 * 1024 * 1024
MAX_RECORDS = 10_000
_GROUP_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}\Z")
_LINE = re.compile(
    r"(capture|import|adopt) ([0-9]{8}T[0-9]{6}Z-[a-z2-7]{10}) ([0-9a-f]{64}) ([0-9a-f]{64}) "
    r"(0|[1-9][0-9]{0,15})"
)  # the whole line (fullmatch)


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


class RecordEntries(Sequence[CommitEntry]):
    """The entries of a parsed record, kept as their checked lines (a part of the record's
    text) and made into :class:`CommitEntry` objects as they are read: a record of thousands
    of entries costs about its size in memory, not a few hundred bytes an entry."""

    def __init__(self, text: str, start: int, end: int, count: int) -> None:
        self._text = text  # the entry lines are text[start:end], "\n" between them
        self._start = start
        self._end = end
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> CommitEntry: ...
    @overload
    def __getitem__(self, index: slice) -> list[CommitEntry]: ...

    def __getitem__(self, index: int | slice) -> CommitEntry | list[CommitEntry]:
        return list(self)[index]

    def __iter__(self) -> Iterator[CommitEntry]:
        start = self._start
        for _ in range(self._count):
            end = self._text.find("\n", start, self._end)
            end = self._end if end < 0 else end
            kind, capture_id, sha256, blake3, size = self._text[start:end].split(" ")
            yield CommitEntry(kind, capture_id, sha256, blake3, int(size))
            start = end + 1


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """One journal file: a group of entries, and whether the archive key signed it."""

    path: Path
    group_id: str
    origin: str
    entries: Sequence[CommitEntry]
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
    return "\n".join([HEADER, origin, group_id, *(entry.line() for entry in entries), ""])


def write_record(
    root: Path,
    entries: Iterable[CommitEntry],
    *,
    signer: Signer | None,
    origin: str,
    group_id: str | None = None,
    durability: Durability | None = None,
) -> Path:
    """Write a commit record durably (temp, fsync, link, directory fsync); return its path.

    Signed with ``signer`` when given; with ``durability`` the flush is left to it (the
    caller flushes before its commit point). ``entries`` are read once (none is kept).
    Raises StorageError if it cannot be written.
    """
    group = group_id or new_group_id()
    count = [0]

    def counted() -> Iterator[CommitEntry]:
        for entry in entries:
            count[0] += 1
            yield entry

    data = _record_bytes(origin, group, counted(), signer)
    if not 1 <= count[0] <= MAX_RECORDS:
        raise ValueError(f"a commit record names 1 to {MAX_RECORDS} manifests")
    directory = require_plain_log_subdir(root, JOURNAL_DIR)
    try:
        directory.mkdir(exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    path = directory / f"{group}.txt"
    try:
        write_atomic(path, data, exclusive=True, durability=durability)
    except FileExistsError as exc:
        raise StorageError(f"commit record {path} already exists") from exc
    return path


def _record_bytes(origin: str, group: str, entries: Iterable[CommitEntry],
                  signer: Signer | None) -> bytes:
    """The record file's bytes: ``sign_note(record_text(...)).encode()``, signed as bytes
    and each intermediate dropped as soon as it is used (a record of thousands of entries
    is a few MB, so the copies count)."""
    data = record_text(origin, group, entries).encode("utf-8")
    if signer is None:
        return data
    return b"".join([data, b"\n", signature_lines(data, [signer])])


def parse_record(path: Path, text: str, verifier: Verifier | None) -> CommitRecord:
    """Parse one record; ``signed`` is True only if ``verifier`` signed it (LogError if the
    text is malformed or carries a signature by ``verifier`` that does not verify)."""
    return parse_record_bytes(path, text.encode("utf-8", "surrogatepass"), verifier)


def parse_record_bytes(path: Path, data: bytes, verifier: Verifier | None) -> CommitRecord:
    """:func:`parse_record` of the file's bytes, never held as one string (a signed record
    would be two bytes a character: its signature line holds an em dash); LogError too if
    they are not UTF-8."""
    cut = data.rfind(b"\n\n")
    end = cut + 1 if cut >= 0 else len(data)
    try:
        body = str(memoryview(data)[:end], "utf-8")
        rest = str(memoryview(data)[end:], "utf-8")
    except UnicodeDecodeError as exc:
        raise LogError(f"commit record {path} is not UTF-8 text") from exc
    try:
        signed = cut >= 0 and _signed(data, end, body, rest, verifier)
    except NoteError as exc:
        raise LogError(f"{path.name}: {exc}") from exc
    return _parse_body(path, body, signed)


def _signed(data: bytes, end: int, body: str, rest: str, verifier: Verifier | None) -> bool:
    """Whether ``verifier`` signed the note ``data`` whose text ``body`` is ``data[:end]``
    and ``rest`` the blank line and signatures after it (NoteError if it is no signed note,
    or a signature by ``verifier`` does not verify)."""
    if not data.endswith(b"\n"):
        raise NoteError("not a signed note (no blank line before signatures)")
    signatures = note_signatures(body, rest[1:])
    if verifier is None or not any(
            s.name == verifier.name and s.key_id == verifier.key_id for s in signatures):
        return False
    verify_signatures(memoryview(data)[:end], signatures, verifier)  # raises on a bad one
    return True


def _parse_body(path: Path, body: str, signed: bool) -> CommitRecord:
    """The record whose text (signatures split off) is ``body``, read in place: its entry
    lines are checked, not copied."""
    end = len(body)
    while end and body[end - 1] == "\n":
        end -= 1
    cuts = [-1]
    for _ in range(3):  # the header, origin and group id lines
        cuts.append(body.find("\n", cuts[-1] + 1, end))
        if cuts[-1] < 0:
            raise LogError(f"{path.name}: not a {HEADER} record")
    if body[:cuts[1]] != HEADER:
        raise LogError(f"{path.name}: not a {HEADER} record")
    origin, group_id = body[cuts[1] + 1:cuts[2]], body[cuts[2] + 1:cuts[3]]
    if not _GROUP_ID.match(group_id) or path.name != f"{group_id}.txt":
        raise LogError(f"{path.name}: group id {group_id!r} does not match the file name")
    first = cuts[3] + 1
    count = body.count("\n", first, end) + 1
    if count > MAX_RECORDS:
        raise LogError(f"{path.name}: more than {MAX_RECORDS} entries")
    start = first
    for _ in range(count):
        stop = body.find("\n", start, end)
        stop = end if stop < 0 else stop
        if _LINE.fullmatch(body, start, stop) is None:
            raise LogError(f"{path.name}: malformed entry {body[start:stop][:120]!r}")
        start = stop + 1
    return CommitRecord(path, group_id, origin, RecordEntries(body, first, end, count), signed)


def read_journal(
    root: Path, verifier: Verifier | None
) -> tuple[list[CommitRecord], list[BadRecord]]:
    """Every record in the journal (sorted by name) and the files that could not be read."""
    records: list[CommitRecord] = []
    bad: list[BadRecord] = []
    for item in iter_journal(root, verifier):
        if isinstance(item, CommitRecord):
            records.append(item)
        else:
            bad.append(item)
    return records, bad


def journal_names(root: Path) -> set[str]:
    """The names of the files in the journal now (empty if it cannot be listed)."""
    directory = journal_dir(root)
    if directory.is_symlink() or not directory.is_dir():
        return set()
    try:
        return {p.name for p in directory.iterdir()}
    except OSError:
        return set()


def iter_journal(root: Path, verifier: Verifier | None, *,
                 skip: Container[str] = ()) -> Iterator[CommitRecord | BadRecord]:
    """:func:`read_journal` one file at a time, each read when it is reached (but for the
    file names in ``skip``: records read already, which are never rewritten)."""
    directory = journal_dir(root)
    if directory.is_symlink():
        yield BadRecord(directory, "the journal directory is a symlink; not followed")
        return
    if not directory.is_dir():
        return
    try:
        names = sorted(p for p in directory.iterdir() if not p.name.startswith(".tmp-"))
    except OSError as exc:
        yield BadRecord(directory, f"cannot list: {exc.strerror or exc}")
        return
    for path in names:
        if path.name in skip:
            continue
        try:
            yield parse_record_bytes(path, read_regular(
                path, MAX_RECORD_FILE, what="commit record", error=LogError), verifier)
        except LogError as exc:
            yield BadRecord(path, str(exc))


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
    "MAX_RECORDS",
    "BadRecord",
    "CommitEntry",
    "CommitRecord",
    "RecordEntries",
    "iter_entries",
    "iter_journal",
    "journal_dir",
    "new_group_id",
    "parse_record",
    "parse_record_bytes",
    "read_journal",
    "record_text",
    "remove_records",
    "write_record",
]
