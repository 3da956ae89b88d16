"""What the log audit keeps of every capture, in a temporary SQLite database, not in memory.

The audit (:mod:`preserve.log.audit`) matches the manifests on disk with the leaves that log
them, one to one, and then walks the leaves again by index. At 100,000 captures the
dictionaries and sets that held this were most of verify's memory (about 0.7 KB a capture).
:class:`AuditIndex` keeps them in a private temporary database instead (SQLite's own page
cache, a few MB, and a file in the temporary directory, unlinked as soon as it is opened),
so the audit's memory does not grow with the archive; where no temporary file can be made
the database is in memory, as the dictionaries were. A failure of the database (a full
temporary disk) is a :class:`~preserve.errors.StorageError`.

This module keeps and answers; it decides nothing about what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..scratch import failing_as_storage, open_scratch
from .entries import MANIFEST_DIR

_SCHEMA = """
CREATE TABLE leaves (id TEXT PRIMARY KEY, leaf INTEGER NOT NULL, sha256 TEXT NOT NULL,
                     blake3 TEXT NOT NULL, size INTEGER NOT NULL, adopted INTEGER,
                     kind TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE disk (id TEXT PRIMARY KEY) WITHOUT ROWID;
"""
_WHAT = "the log audit's temporary index"


@dataclass(frozen=True, slots=True)
class Logged:
    """The leaf that logs a capture's manifest: its index, the manifest's hashes, and the
    index of the adoption leaf that vouches for it (None: not adopted; ``leaf`` itself when
    the capture was logged by its adoption), and the kind of commit record that proves
    that leaf (``capture`` for a manifest leaf, ``import`` for an import leaf, ``adopt``
    for an adoption leaf)."""

    capture_id: str
    leaf: int
    sha256: str
    blake3: str
    size: int
    adopted: int | None
    kind: str = "capture"

    @property
    def adopted_later(self) -> bool:
        """Whether an adoption leaf after this one vouches for it."""
        return self.adopted is not None and self.adopted != self.leaf

    @property
    def path(self) -> str:
        return f"{MANIFEST_DIR}/{self.capture_id}.json"


class AuditIndex:
    """The leaves that log manifests, by capture id, and the capture ids of the manifest
    files on disk (close it, or use it as a context manager)."""

    def __init__(self) -> None:
        self._db = open_scratch(_SCHEMA, _WHAT)
        self.disk_count = 0

    # --- leaves --------------------------------------------------------------------------

    def add_leaf(self, logged: Logged) -> Logged | None:
        """Keep ``logged`` unless its capture has a leaf already; return that one if so."""
        with failing_as_storage(_WHAT):
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO leaves VALUES (?, ?, ?, ?, ?, ?, ?)",
                (logged.capture_id, logged.leaf, logged.sha256, logged.blake3, logged.size,
                 logged.adopted, logged.kind))
            return None if cursor.rowcount == 1 else self.leaf(logged.capture_id)

    def adopt(self, capture_id: str, leaf: int) -> None:
        """Note that the adoption leaf ``leaf`` vouches for the capture's leaf."""
        with failing_as_storage(_WHAT):
            self._db.execute("UPDATE leaves SET adopted = ? WHERE id = ?", (leaf, capture_id))

    def leaf(self, capture_id: str) -> Logged | None:
        with failing_as_storage(_WHAT):
            row = self._db.execute("SELECT * FROM leaves WHERE id = ?", (capture_id,)).fetchone()
            return None if row is None else _logged(row)

    def __contains__(self, capture_id: object) -> bool:
        with failing_as_storage(_WHAT):
            return self._db.execute("SELECT 1 FROM leaves WHERE id = ?",
                                    (capture_id,)).fetchone() is not None

    def by_capture_id(self) -> Iterator[tuple[Logged, bool]]:
        """Every leaf, by capture id, and whether its manifest file is on disk."""
        with failing_as_storage(_WHAT):
            for row in self._db.execute(
                    "SELECT leaves.*, disk.id IS NOT NULL FROM leaves LEFT JOIN disk USING (id) "
                    "ORDER BY leaves.id"):
                yield _logged(row), bool(row[7])

    def by_leaf(self) -> Iterator[Logged]:
        """Every leaf, in log order."""
        with failing_as_storage(_WHAT):
            for row in self._db.execute("SELECT * FROM leaves ORDER BY leaf"):
                yield _logged(row)

    # --- manifests on disk ---------------------------------------------------------------

    def add_on_disk(self, capture_ids: Iterable[str]) -> None:
        with failing_as_storage(_WHAT):
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO disk VALUES (?)",
                                 ((capture_id,) for capture_id in capture_ids))
            self.disk_count += self._db.total_changes - before

    def on_disk(self, capture_id: str) -> bool:
        with failing_as_storage(_WHAT):
            return self._db.execute("SELECT 1 FROM disk WHERE id = ?",
                                    (capture_id,)).fetchone() is not None

    def not_logged(self) -> Iterator[str]:
        """The capture ids of manifest files no leaf logs, sorted."""
        with failing_as_storage(_WHAT):
            for (capture_id,) in self._db.execute(
                    "SELECT id FROM disk WHERE id NOT IN (SELECT id FROM leaves) ORDER BY id"):
                yield capture_id

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AuditIndex:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _logged(row: tuple[str, int, str, str, int, int | None, str]) -> Logged:
    return Logged(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


__all__ = ["AuditIndex", "Logged"]
