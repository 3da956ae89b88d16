"""What other processes committed while verify read an object-store archive.

Verify of an ``s3://`` root holds no lease, so a commit (another ``preserve capture``) may
run while it reads; and its reads (listings, the log, commit records, checkpoints, the
operator's known head) are not one atomic snapshot. Verify audits the log as it opened it
(the *base*); anything it reads afterwards that the base does not explain (a manifest no
leaf of the base records, a checkpoint or known head larger than the base, a torn tail, an
object no checked manifest names) is held against the log as it is *later*
(:class:`Meanwhile`):

- the later log must extend the base (every new entry re-hashed against the stored tree);
- a leaf appended since explains something only if it is proved as
  :func:`~preserve.log.signing.prove_and_sign` proves a leaf — a commit record signed by the
  archive key names it, or a valid signed checkpoint consistent with the later log covers
  it (read in that order, after the log: a commit removes its record only once a
  checkpoint covers it) — and the caller checks its manifest is the one it records;
- before something is reported, :meth:`Meanwhile.settle` waits for the committer that
  holds the lease (read after what is to be explained was read) to release it, then the
  log is read again. The wait is bounded (``wait`` seconds in all, by default the lease's
  lifetime): a lease is an object anyone with write access can put, and it never explains
  anything by itself; it only delays the findings.

Commits are appended to the log under the lease, and a lease is released only after its
commit's leaves are appended, so once the holder seen after a read has gone, every commit
whose objects that read saw is either in the log or over (failed or killed).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from preserve import errors
from preserve.log.audit import E_LOG_DAMAGED, E_TREE_MISMATCH, LogFinding, _kind
from preserve.log.entries import AdoptionLeaf, ManifestLeaf, parse_entry
from preserve.log.journal import iter_entries
from preserve.log.keys import Verifier
from preserve.remote.lease import LEASE, LEASE_SECONDS, lease_expiry
from preserve.remote.tiles import TiledLog

if TYPE_CHECKING:
    from preserve.remote.archive import RemoteArchive

#: Seconds between two reads of the lease while a commit is waited for.
POLL = 0.2
HEAD = "manifests/log/head.json"
Leaf = ManifestLeaf | AdoptionLeaf


@dataclass(frozen=True)
class Proof:
    """What proves leaves of the later log: signed commit record entries, and the size a
    valid signed checkpoint consistent with that log covers; read after the log had
    ``upto`` leaves (a leaf past them may have been appended after the records were read)."""

    signed: frozenset[tuple[str, str, str, str, int]]  # with the record's kind
    covered: int
    upto: int

    def proves(self, index: int, leaf: Leaf) -> bool:
        return index < self.covered or \
            (_kind(leaf), leaf.capture_id, leaf.sha256, leaf.blake3, leaf.size) in self.signed


class Meanwhile:
    """The log as it grew while verify ran (see the module docstring)."""

    def __init__(self, archive: RemoteArchive, *, wait: float = LEASE_SECONDS) -> None:
        self.archive = archive
        self.store = archive.store
        self.left = max(0.0, wait)  # seconds still to wait for committers, in all
        self.base: tuple[int, bytes] | None = None
        self.problems: list[LogFinding] = []  # the later log unreadable (E301), or not an
        # extension of the base (E302): reported by the caller (:meth:`take_problems`)
        self._verifier: tuple[Verifier | None] | None = None  # unknown until the audit's
        self._log: TiledLog | None = None
        self._opened = -math.inf
        self._settled = -math.inf
        self._leaves: dict[str, tuple[int, Leaf]] = {}
        self._proof: Proof | None = None
        self._reported: list[LogFinding] = []
        self._broken = False

    # --- the base and the archive key --------------------------------------------------------

    def rebase(self, tiles: TiledLog) -> None:
        """Make ``tiles`` (the log as the audit opened it) the base; a problem if it does
        not extend the base read before (the log rewritten or rolled back meanwhile)."""
        if self.base is not None and not _extends(tiles, *self.base):
            self._problem(E_TREE_MISMATCH, f"the log of {tiles.size} leaves is not an "
                          f"extension of the {self.base[0]} leaves read first (rewritten or "
                          "rolled back)")
        self.base = (tiles.size, tiles.root_hash())
        self._log = None

    def know_key(self, verifier: Verifier | None) -> None:
        """The key leaves must be proved by (None: the archive has none, nothing to prove)."""
        self._verifier = (verifier,)

    @property
    def verifier(self) -> Verifier | None:
        """The archive key given to :meth:`know_key` (None before, or when there is none)."""
        return self._verifier[0] if self._verifier is not None else None

    # --- the later log -----------------------------------------------------------------------

    def log(self, at_least: int = 0, since: float = -math.inf) -> TiledLog | None:
        """The log now, if it extends the base (None if it cannot be read or does not, or
        before a base); opened again when the one at hand is smaller than ``at_least`` and
        was opened before ``since`` (``time.monotonic()``)."""
        if self.base is None or self._broken:
            return None
        if self._log is None or (self._log.size < at_least and self._opened < since):
            self._open()
        return self._log

    def leaf(self, capture_id: str) -> tuple[int, Leaf] | None:
        """``(index, leaf)`` logging ``capture_id`` after the base, in :meth:`log`."""
        return self._leaves.get(capture_id) if self.log() is not None else None

    def _open(self) -> None:
        assert self.base is not None
        self._log, self._leaves, self._proof = None, {}, None
        self._opened = time.monotonic()
        leaves: dict[str, tuple[int, Leaf]] = {}

        def collect(index: int, data: bytes) -> None:
            try:
                entry = parse_entry(data)
            except ValueError:
                return
            if isinstance(entry, ManifestLeaf | AdoptionLeaf):
                leaves.setdefault(entry.capture_id, (index, entry))

        try:
            tiles = self.archive.place.open_log()
            problems = tiles.verify_extension(*self.base, collect)
        except errors.PreserveError as exc:
            problems, code = [f"the log cannot be read again: {exc}"], E_LOG_DAMAGED
        else:
            code = E_TREE_MISMATCH
        for problem in problems:  # nothing is explained by a log that does not hold
            self._problem(code, problem)
        self._broken = bool(problems)
        if not problems:
            self._log, self._leaves = tiles, leaves

    def _problem(self, code: str, message: str) -> None:
        found = LogFinding(code, HEAD, f"read again while verify ran: {message}"
                           if code == E_TREE_MISMATCH else message)
        if found not in self.problems and found not in self._reported:
            self.problems.append(found)

    def take_problems(self) -> list[LogFinding]:
        """The problems not taken yet (each is reported once)."""
        taken, self.problems = self.problems, []
        self._reported += taken
        return taken

    # --- proof ---------------------------------------------------------------------------------

    def proved(self, index: int, leaf: Leaf) -> bool:
        """Whether leaf ``index`` of :meth:`log` is proved (see the module docstring)."""
        if self._verifier is None:
            return False
        verifier = self._verifier[0]
        if verifier is None:
            return True
        if self._proof is None or index >= self._proof.upto:
            self._proof = self._read_proof(verifier)
        return self._proof.proves(index, leaf)

    def _read_proof(self, verifier: Verifier) -> Proof:
        place = self.archive.place
        tiles = self.log()
        upto = tiles.size if tiles is not None else 0
        records, _bad = place.read_journal(verifier)  # first: see the module docstring
        signed = frozenset((e.kind, e.capture_id, e.sha256, e.blake3, e.size)
                           for _r, e in iter_entries(records, signed_only=True))
        checkpoint = place.newest_signed_checkpoint(verifier, stored_only=True)  # not the copy
        size = checkpoint.size if checkpoint is not None else 0
        tiles = self.log(size, since=math.inf)
        covered = size if checkpoint is not None and tiles is not None and \
            size <= tiles.size and _extends(tiles, size, checkpoint.root_hash) else 0
        return Proof(signed, covered, upto)

    # --- waiting for a commit in progress ------------------------------------------------------

    def settle(self, since: float) -> None:
        """Make sure a commit that held the lease at ``since`` (``time.monotonic()``) has
        released it before the log is read again: wait while the holder the lease names now
        holds it (at most what is left of ``wait``); the next :meth:`log` reads it again."""
        if self._settled >= since:
            return
        start = time.monotonic()
        holder = self._holder() if self.left > 0 else None
        deadline = start + self.left
        while holder is not None and time.monotonic() < deadline:
            time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
            if self._holder() != holder:
                break
        self.left = max(0.0, deadline - time.monotonic())
        self._settled = start
        self._log = None

    def _holder(self) -> str | None:
        """Who holds the lease now (None: nobody, expired, or unreadable)."""
        try:
            doc = json.loads(self.store.get(LEASE, 4096))
            holder = str(doc["holder"])
        except (errors.PreserveError, ValueError, KeyError, TypeError, RecursionError):
            return None
        now = time.time()
        expires = lease_expiry(doc, now)  # a forged expiry: nobody to wait for
        return holder if expires is not None and expires > now else None


def _extends(tiles: TiledLog, size: int, root: bytes) -> bool:
    """Whether the first ``size`` leaves of ``tiles`` hash to ``root``."""
    try:
        return size <= tiles.size and tiles.root_hash(size) == root
    except errors.PreserveError:
        return False


__all__ = ["POLL", "Meanwhile", "Proof"]
