"""Prove, then sign: the only way preserve's own operations sign a checkpoint.

A signature from preserve means "proved", never "seen". Before a checkpoint is signed,
:func:`prove_and_sign` establishes, from nothing it has not checked itself:

1. a *trusted base* head: the operator's known head for this archive (kept outside it, see
   :mod:`~.known_heads`) and the archive's newest checkpoint validly signed by its key;
2. that the log **extends** that base: the stored subtrees of the base fold to its root, and
   the current root is recomputed from them and from the hashes of every newer entry re-read
   from disk (so neither a rewritten history nor edited stored hashes get signed); the newest
   stored checkpoint must be consistent with the known head as well;
3. that every **newer manifest leaf is proved**: its manifest file exists and hashes to the
   leaf, and a commit record signed by the archive key (:mod:`~.journal`) names that exact
   manifest with the leaf's own kind — a ``capture`` record for a manifest leaf, an
   ``import`` record for an import leaf, an ``adopt`` record (an operator's adoption) for an
   adoption leaf — so a leaf
   appended by someone without the key (a planted capture) is never covered. Audit leaves are
   claims about audits; they need no record.
4. that every newer leaf is in **time order**: committed no earlier than the leaf before it
   and not from the future (:func:`~.entries.commit_time_problem`), so a leaf dated by
   someone without the key is never covered either.

Only then is the checkpoint signed (and RFC 3161-stamped if asked), the operator's known
head advanced, and the commit records it now covers removed. Anything unproved raises
:class:`~preserve.errors.NotProvedError` naming what failed, and nothing is signed. The cost
is O(log n) plus the leaves appended since the base, so it stays flat as the archive grows;
each newer leaf is proved as it is read, and what is remembered of leaves and records are
16-byte digests (an import of 20,000 pages proves 20,000 leaves in a few MB).

The caller holds the archive lock. This module never prints and decides no exit status.
Where the log, checkpoints, commit records and manifests are kept is a :class:`LogPlace`:
:class:`LocalPlace` (a directory, the default) or an object store (:mod:`preserve.remote`);
the proof is the same code for both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from ..errors import LogError, ManifestError, NotProvedError, PreserveError, SigningKeyError
from ..hashing import hash_bytes
from ..safe_io import read_regular
from .archive_log import (
    LATEST_CHECKPOINT,
    checkpoint_paths,
    log_dir,
    open_log,
    read_checkpoint_file,
    read_verifier,
    write_checkpoint,
)
from .entries import (
    MAX_MANIFEST_BYTES,
    SIGNING_SKEW,
    AdoptionLeaf,
    ImportLeaf,
    ManifestLeaf,
    commit_time_problem,
    format_time,
    parse_entry,
    parse_time,
)
from .journal import (
    BadRecord,
    CommitRecord,
    iter_journal,
    journal_names,
    read_journal,
    remove_records,
)
from .keys import Signer, Verifier
from .known_heads import KnownHeads, identity_for
from .merkle import EMPTY_ROOT, verify_consistency
from .note import Checkpoint, NoteError, verify_checkpoint

Timestamper = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class TreeHead:
    size: int
    root: bytes


@dataclass(slots=True)
class Signed:
    """What :func:`prove_and_sign` did: the checkpoint written and the leaves it proved."""

    path: Path
    size: int
    base: int
    proved_leaves: int
    records_removed: list[Path] = field(default_factory=list)


class LogReader(Protocol):
    """What proving needs of an opened log (:class:`~.storage.TransparencyLog` has it)."""

    @property
    def size(self) -> int: ...
    def leaf(self, index: int) -> bytes: ...
    def root_hash(self, size: int | None = None) -> bytes: ...
    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]: ...
    def verify_extension(self, base_size: int, base_root: bytes,
                         on_entry: Callable[[int, bytes], None] | None = None) -> list[str]: ...


class LogPlace(Protocol):
    """Where an archive keeps its log, checkpoints, commit records and manifests."""

    @property
    def root(self) -> Path:
        """The archive's place for the operator's known heads (a root, or a remote name)."""

    def read_verifier(self) -> Verifier: ...
    def newest_signed_checkpoint(self, verifier: Verifier, *,
                                 stored_only: bool = False) -> Checkpoint | None: ...
    def read_journal(self, verifier: Verifier | None) -> tuple[list[CommitRecord],
                                                               list[BadRecord]]: ...
    def journal_records(self, verifier: Verifier | None) -> Iterator[CommitRecord]:
        """The readable commit records, each read when it is reached."""
    def open_log(self) -> AbstractContextManager[LogReader]: ...
    def read_manifest(self, rel: str) -> bytes: ...
    def write_checkpoint(self, signer: Signer, *, timestamper: Timestamper | None,
                         size: int) -> Path: ...
    def remove_records(self, paths: Sequence[Path]) -> None: ...


@dataclass(frozen=True, slots=True)
class LocalPlace:
    """An archive directory (the default :class:`LogPlace`)."""

    root: Path

    def read_verifier(self) -> Verifier:
        return read_verifier(self.root)

    def newest_signed_checkpoint(self, verifier: Verifier, *,
                                 stored_only: bool = False) -> Checkpoint | None:
        return newest_signed_checkpoint(self.root, verifier, stored_only=stored_only)

    def read_journal(self, verifier: Verifier | None) -> tuple[list[CommitRecord],
                                                               list[BadRecord]]:
        return read_journal(self.root, verifier)

    def journal_records(self, verifier: Verifier | None) -> Iterator[CommitRecord]:
        return (r for r in iter_journal(self.root, verifier) if isinstance(r, CommitRecord))

    def open_log(self) -> AbstractContextManager[LogReader]:
        return open_log(self.root, readonly=True)

    def read_manifest(self, rel: str) -> bytes:
        return read_regular(self.root / rel, MAX_MANIFEST_BYTES, what="manifest",
                            error=ManifestError)

    def write_checkpoint(self, signer: Signer, *, timestamper: Timestamper | None,
                         size: int) -> Path:
        return write_checkpoint(self.root, signer, timestamper=timestamper, size=size)

    def remove_records(self, paths: Sequence[Path]) -> None:
        remove_records(paths)


def newest_signed_checkpoint(root: Path, verifier: Verifier, *,
                             stored_only: bool = False) -> Checkpoint | None:
    """The archive's newest checkpoint validly signed by ``verifier``: the ``checkpoint``
    copy if it verifies (O(1)), else the largest stored one that does (None if none).
    ``stored_only``: the largest of ``checkpoints/`` that verifies, whatever the copy says."""
    candidates = [] if stored_only else [log_dir(root) / LATEST_CHECKPOINT]
    for attempt in range(2):
        for path in candidates:
            try:
                return verify_checkpoint(read_checkpoint_file(path), verifier,
                                         origin=verifier.name)
            except (LogError, NoteError, SigningKeyError):
                continue
        if attempt == 0:  # names sort by tree size, then time: newest first
            candidates = sorted(checkpoint_paths(root), reverse=True)
    return None


def known_head(heads: KnownHeads | None, identity: str, root: Path) -> TreeHead | None:
    if heads is None:
        return None
    head = heads.get(identity, root)
    return TreeHead(head.size, head.root) if head is not None else None


def require_known_key(heads: KnownHeads | None, verifier: Verifier | None, root: Path) -> None:
    """Raise NotProvedError if this operator last verified the archive at ``root`` with
    another key than ``verifier`` (its key.pub removed or replaced)."""
    if heads is None:
        return
    for other in heads.others_at(root, identity_for(verifier, root)):
        now = "has no key.pub" if verifier is None else "has another key.pub"
        raise NotProvedError(f"this archive {now}, but you last verified it with the key "
                             f"{other.identity} (key.pub removed or replaced?)")


def check_extends(root: Path, heads: KnownHeads | None, verifier: Verifier | None) -> None:
    """Raise NotProvedError if the archive's log does not extend the operator's known head
    (cheap: O(log n) stored hashes, no entries read). Used before a capture starts."""
    identity = identity_for(verifier, root)
    require_known_key(heads, verifier, root)
    head = known_head(heads, identity, root)
    if head is None:
        return
    with open_log(root, readonly=True) as log:
        if log.size < head.size:
            raise NotProvedError(_rollback(log.size, head))
        if head.size and log.root_hash(head.size) != head.root:
            raise NotProvedError(f"the log's first {head.size} leaves are not the ones you "
                                 "last verified (rewritten or replaced); run preserve verify")


def _rollback(size: int, head: TreeHead) -> str:
    return (f"the log has {size} leaves, fewer than the {head.size} you last verified or "
            "signed (rolled back or truncated); run preserve verify, or preserve reset-head "
            "if you restored an older copy on purpose")


def prove_and_sign(
    root: Path,
    signer: Signer,
    *,
    heads: KnownHeads | None,
    timestamper: Timestamper | None = None,
    adopt_history: bool = False,
    place: LogPlace | None = None,
) -> Signed:
    """Prove the log (see the module docstring) and sign a checkpoint of it.

    ``adopt_history`` (``preserve init`` giving a key to an archive whose log was never
    signed) accepts manifest leaves without commit records, after checking each manifest
    against its leaf; it is ignored once anything says the log was signed (a checkpoint
    validly signed by the key, or this operator's known head of it). ``place``: where the
    archive is kept (default: the directory ``root``). Raises NotProvedError when anything
    is not proved.
    """
    root = Path(root)
    where: LogPlace = place if place is not None else LocalPlace(root)
    verifier = where.read_verifier()
    if signer.verifier != verifier:
        raise SigningKeyError(f"the signing key is not the archive's key ({verifier.to_text()})")
    identity = identity_for(verifier, root)
    known = known_head(heads, identity, root)
    stored = where.newest_signed_checkpoint(verifier)
    records = _SignedRecords(where.journal_records(verifier))
    with where.open_log() as log:
        size = log.size
        if known is not None and known.size > size:
            raise NotProvedError(_rollback(size, known))
        if stored is not None and stored.size > size:
            raise NotProvedError(f"the log has {size} leaves, fewer than its own signed "
                                 f"checkpoint of {stored.size} (truncated)")
        base = known or TreeHead(0, EMPTY_ROOT)
        if stored is not None and stored.size > base.size:
            # The newest signed checkpoint is trusted as far as the key is (a key holder
            # proved it), but it must extend what this operator proved before.
            if known is not None and known.size and not verify_consistency(
                    known.size, stored.size, known.root, stored.root_hash,
                    log.consistency_proof(known.size, stored.size)):
                raise NotProvedError("the archive's newest signed checkpoint does not extend "
                                     "the head you last verified (a forked or rewritten log)")
            base = TreeHead(stored.size, stored.root_hash)
        if stored is not None or (known is not None and known.size):
            # Signed before (a checkpoint by its key, or this operator's known head of it): a
            # log that was never signed is adopted, never one whose checkpoint copy or
            # checkpoints were removed since (its newer leaves would be laundered).
            adopt_history = False
        problems: list[str] = []
        now = datetime.now(UTC)
        latest = [_commit_time(log, base.size - 1) if base.size else None]
        proof = _LeafProof(where, records.entries, adopt_history, base.size)

        def collect(index: int, data: bytes) -> None:
            try:
                entry = parse_entry(data)
                problem = commit_time_problem(index, entry.committed, latest[0], now)
            except ValueError as exc:
                problems.append(f"leaf {index} is malformed: {exc}")
                return
            if problem is None and parse_time(entry.committed) > now + SIGNING_SKEW:
                # within verify's tolerance, but a signature means "proved": the key never
                # signs over an entry dated after its own clock (later entries, dated now,
                # would all look back-dated)
                problem = (f"leaf {index} committed {entry.committed}, after this clock "
                           f"({format_time(now)})")
            if problem is not None:  # verify reports it (E310): never signed over
                problems.append(problem)
            else:
                latest[0] = parse_time(entry.committed)
            if isinstance(entry, ManifestLeaf | AdoptionLeaf):
                proof.check(index, entry)
            elif entry.signature_state(verifier) == "invalid":  # verify reports it (E318)
                problems.append(f"leaf {index} is an audit whose signature is not the "
                                "archive key's (a forged audit)")

        problems += log.verify_extension(base.size, base.root, collect)
        head_root = log.root_hash()
    if problems:
        raise NotProvedError("; ".join(problems[:5]))
    if proof.failure is not None:
        from_copy = stored is not None and base.size == stored.size
        rolled_back = _copy_rolled_back(where, verifier, base.size) if from_copy else None
        raise NotProvedError(rolled_back or proof.failure)
    path = where.write_checkpoint(signer, timestamper=timestamper, size=size)
    if heads is not None:
        heads.advance(identity, size, head_root, root)
    removable = records.covered_by(proof.covered)
    where.remove_records(removable)
    return Signed(path, size, base.size, proof.count, removable)


def _copy_rolled_back(place: LogPlace, verifier: Verifier, size: int) -> str | None:
    """Why proving from the ``checkpoint`` copy (of ``size`` leaves) failed, when a newer
    checkpoint is stored: the copy was replaced by an older one (looked up only on failure,
    so a capture never lists ``checkpoints/``)."""
    newest = place.newest_signed_checkpoint(verifier, stored_only=True)
    if newest is None or newest.size <= size:
        return None
    return (f"manifests/log/checkpoint was replaced by an older checkpoint ({size} leaves; "
            f"manifests/log/checkpoints/ holds one of {newest.size}): run preserve verify, "
            "then preserve repair, which restores it")


def _commit_time(log: LogReader, index: int) -> datetime | None:
    """The commit time of leaf ``index`` (the one a proof starts after), or None if it
    cannot be read: the newer leaves are then only checked among themselves."""
    try:
        return parse_time(parse_entry(log.leaf(index)).committed)
    except (ValueError, PreserveError):
        return None


def _key(*parts: object) -> bytes:
    """A 128-bit BLAKE2b digest of ``parts`` joined by spaces: how a proof remembers a commit
    record entry or a (kind, capture id) pair in a few bytes (finding another text of the
    same digest is as hard as a second preimage of 128 bits)."""
    return hashlib.blake2b(" ".join(map(str, parts)).encode(), digest_size=16).digest()


class _SignedRecords:
    """The commit records signed by the archive key, read one at a time and kept as digests
    (:func:`_key`): of each entry's line, and of each record's (kind, capture id) pairs."""

    def __init__(self, records: Iterable[CommitRecord]) -> None:
        self.entries: set[bytes] = set()
        self._pairs: list[tuple[Path, bytes]] = []  # 16 bytes a (kind, capture id)
        for record in records:
            if record.signed:
                pairs = bytearray()
                for entry in record.entries:
                    self.entries.add(_key(entry.line()))
                    pairs += _key(entry.kind, entry.capture_id)
                self._pairs.append((record.path, bytes(pairs)))

    def covered_by(self, covered: set[bytes]) -> list[Path]:
        """The records each (kind, capture id) of which is in ``covered``."""
        return [path for path, pairs in self._pairs
                if all(pairs[i:i + 16] in covered for i in range(0, len(pairs), 16))]


class ProvedLeaves:
    """Whether a logged manifest, import or adoption leaf is proved now: covered by the
    archive's newest checkpoint signed by its key (a signing proved it), or named exactly by
    a commit record of its kind signed by the key (a commit not signed over yet, e.g. earlier
    in a batch). What a capture names as its ``previous`` captures must pass this: the key
    signs its manifest.

    One instance serves a whole batch: the checkpoint is read again for each group
    (:meth:`new_group`), and each commit record is read once, when first needed (records are
    written once and never changed), so a batch of n groups reads O(n) records, not O(n²)."""

    def __init__(self, root: Path, verifier: Verifier) -> None:
        self.root = root
        self.verifier = verifier
        self._covered: int | None = None
        self._signed: set[bytes] = set()  # entry digests (_key) of the signed records read
        self._read: set[str] = set()  # the names of the records read
        self._listed = False  # the journal was listed since the last miss

    def new_group(self) -> None:
        """Forget the checkpoint read (a newer one may have been signed since)."""
        self._covered = None
        self._listed = False

    def __call__(self, index: int, leaf: ManifestLeaf | AdoptionLeaf) -> bool:
        if self._covered is None:
            try:
                newest = newest_signed_checkpoint(self.root, self.verifier)
            except (PreserveError, OSError):
                newest = None
            self._covered = 0 if newest is None else newest.size
        if index < self._covered:
            return True
        keys = [_key(kind, leaf.capture_id, leaf.sha256, leaf.blake3, leaf.size)
                for kind in _record_kinds(leaf)]
        if not any(k in self._signed for k in keys) and not self._listed:
            self._listed = True  # once a group: a record written since is this group's own
            try:
                if not self._read <= journal_names(self.root):
                    # records removed (a checkpoint covers their leaves now): start afresh,
                    # so what is kept does not grow with the life of the process
                    self._read.clear()
                    self._signed.clear()
                for item in iter_journal(self.root, self.verifier, skip=self._read):
                    self._read.add(item.path.name)
                    if isinstance(item, CommitRecord) and item.signed:
                        self._signed.update(_key(e.line()) for e in item.entries)
            except (PreserveError, OSError):
                pass
        return any(k in self._signed for k in keys)


class _LeafProof:
    """Checks each manifest/adoption leaf newer than the trusted base (of ``base`` leaves),
    as it is read, against its manifest file and a signed commit record; remembers the
    (kind, capture id) pairs proved and the first leaf that is not, as digests (a few dozen
    bytes a leaf)."""

    def __init__(self, place: LogPlace, signed: set[bytes], adopt_history: bool,
                 base: int) -> None:
        self.place = place
        self.adopt_history = adopt_history
        self.base = base
        self.signed = signed  # every entry of a signed record, as the digest of its line
        self.covered: set[bytes] = set()
        self.count = 0  # leaves checked
        self.failure: str | None = None  # why the first leaf not proved is not
        #: per capture id among the new leaves: its first leaf, and whether one adopts it
        self.seen: dict[str, tuple[int, bool]] = {}

    def check(self, index: int, leaf: ManifestLeaf | AdoptionLeaf) -> None:
        self.count += 1
        adoption = isinstance(leaf, AdoptionLeaf)
        first = self.seen.get(leaf.capture_id)
        if first is None or (adoption and not first[1]):
            self.seen[leaf.capture_id] = (index if first is None else first[0], adoption)
        elif self.failure is None:  # as verify's E312: one leaf, and one adoption, a capture
            self.failure = (f"leaf {index} logs capture {leaf.capture_id} again (leaf "
                            f"{first[0]} logs it): a replayed leaf, which the commit record "
                            "of the first does not prove")
            return
        if self.failure is None:
            try:
                key = self._prove(index, leaf)
            except NotProvedError as exc:
                self.failure = str(exc)
                return
            if key is not None:
                self.covered.add(key)

    def _prove(self, index: int, leaf: ManifestLeaf | AdoptionLeaf) -> bytes | None:
        """The (kind, capture id) digest of the record entry that proves ``leaf`` (None for a
        leaf adopted with the history); NotProvedError if none does."""
        try:
            data = self.place.read_manifest(leaf.path)
        except PreserveError as exc:
            raise NotProvedError(f"leaf {index} (capture {leaf.capture_id}): {exc}") from exc
        digests = hash_bytes(data)
        if (digests.sha256, digests.blake3, digests.size) != (leaf.sha256, leaf.blake3,
                                                              leaf.size):
            raise NotProvedError(f"leaf {index}: manifest {leaf.path} differs from its leaf")
        kind = next((k for k in _record_kinds(leaf) if _key(
            k, leaf.capture_id, leaf.sha256, leaf.blake3, leaf.size) in self.signed), None)
        if kind is None:
            if self.adopt_history and isinstance(leaf, ManifestLeaf):
                return None
            raise NotProvedError(
                f"leaf {index} (capture {leaf.capture_id}) has no commit record signed by the "
                f"archive key, and no trusted checkpoint or known head covers it (they cover "
                f"{self.base} leaves): it was planted or captured without the key, or the "
                "checkpoints that covered it were removed; verify with an off-site checkpoint "
                "(--checkpoint) to tell, and adopt it with preserve adopt if it is genuine")
        return _key(kind, leaf.capture_id)


def _record_kinds(leaf: ManifestLeaf | AdoptionLeaf) -> tuple[str, ...]:
    """The commit record kinds that may back ``leaf``: an import leaf needs an ``import``
    record, a manifest leaf a ``capture`` record, an adoption leaf an ``adopt`` record."""
    if isinstance(leaf, AdoptionLeaf):
        return ("adopt",)
    if isinstance(leaf, ImportLeaf):
        return ("import",)
    return ("capture",)


def sign_quietly(
    root: Path, signer: Signer | None, **kwargs: object
) -> tuple[Signed | None, str | None]:
    """:func:`prove_and_sign` for callers that report rather than raise: returns
    ``(signed, None)`` or ``(None, why not)``; ``(None, None)`` when there is no signer."""
    if signer is None:
        return None, None
    try:
        return prove_and_sign(root, signer, **kwargs), None  # type: ignore[arg-type]
    except PreserveError as exc:
        return None, str(exc)


__all__ = [
    "LocalPlace",
    "LogPlace",
    "LogReader",
    "ProvedLeaves",
    "Signed",
    "TreeHead",
    "check_extends",
    "known_head",
    "newest_signed_checkpoint",
    "prove_and_sign",
    "require_known_key",
    "sign_quietly",
]
