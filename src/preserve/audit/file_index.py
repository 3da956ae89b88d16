"""What verify's file pass keeps of every manifest until its end, in a scratch database.

The pass (:mod:`preserve.audit.verify`) checks the manifests in name order and, after the
last, needs to know for each capture id which manifest claimed it first, whether a WARC
file is named by its own capture's manifest, which text objects were named and whether they
hashed to their names, and the digest of the catalog row each manifest gives. Kept in
Python (packed names, byte arrays, sets) that was about 200 bytes a capture, 20 MiB of
peak RSS at 100,000 captures; :class:`FileIndex` keeps it in a :mod:`preserve.scratch`
database, so the pass's memory does not grow with the archive.

The pass runs while threads hash files, and every SQLite statement step releases and
retakes the GIL, which costs up to a thread switch interval when those threads are busy
(measured: 0.05 ms of statements a manifest became 0.5 ms beside two busy threads). So
writes are buffered and flushed as multi-row statements, names are read back a chunk at a
time in one step, and claims are looked up many at once.

Manifest names are stored as UTF-8 with surrogates passed through (a name that is not
valid UTF-8 on disk reaches Python with surrogate escapes): that encoding orders bytes as
Python orders the names' code points, so the pass reports in the same order as before.

This module keeps and answers; it decides nothing about what is wrong.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Container, Iterable, Iterator, Sequence

from ..scratch import failing_as_storage, open_scratch, ordered_keys

_SCHEMA = """
CREATE TABLE manifests (name BLOB PRIMARY KEY, claimed INTEGER NOT NULL DEFAULT 0,
                        own_warc INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE texts (digest BLOB PRIMARY KEY, hashed INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE catalog_rows (digest BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE VIEW manifest_names (key) AS SELECT name FROM manifests;
"""
_WHAT = "verify's temporary index"
#: Manifest names read back at once while walking them in order.
_CHUNK = 1024
#: Rows buffered before they are written, and most rows one statement writes or asks for
#: (three bound values a row stay far below SQLite's limit of 32,766).
_BATCH = 512
#: Fewer manifests than this are kept in an in-memory database (a part of a split audit,
#: often one manifest: a file costs more to make than what it would hold).
IN_MEMORY_BELOW = 10_000


def _key(name: str) -> bytes:
    return name.encode("utf-8", "surrogatepass")


def _checked_key(name: str) -> bytes:
    if "\0" in name:
        raise ValueError(f"a manifest name holds a NUL byte: {name!r}")
    return _key(name)


def _name(key: bytes) -> str:
    return key.decode("utf-8", "surrogatepass")


def _rows(count: int, width: int) -> str:
    """``(?, ?), (?, ?)``: ``count`` rows of ``width`` parameters for a VALUES list."""
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


class FileIndex:
    """Manifest names (each with two flags: it claimed its capture id, it names its own WARC
    file at the expected place), the text objects named, the catalog row digests given.
    Used from one thread; close it, or use it as a context manager."""

    #: the tables (a subclass may add its own)
    SCHEMA = _SCHEMA

    def __init__(self, *, in_memory: bool = False) -> None:
        """``in_memory``: for a few manifests (see :func:`~preserve.scratch.open_scratch`)."""
        self._db = open_scratch(self.SCHEMA, _WHAT, in_memory=in_memory)
        self.manifest_count = 0
        self._marks: dict[bytes, tuple[int, int]] = {}  # name -> (claimed, own_warc)
        self._texts: list[tuple[bytes, int]] = []
        self._catalog_rows: list[bytes] = []

    @property
    def connection(self) -> sqlite3.Connection:
        """The database (for a subclass's own tables)."""
        return self._db

    # --- manifests -----------------------------------------------------------------------

    def add_manifests(self, names: Iterable[str]) -> None:
        """Keep these manifest names (a name given twice is kept once). A name holding a
        NUL byte is a ValueError: no file can be named so."""
        with failing_as_storage(_WHAT):
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO manifests (name) VALUES (?)",
                                 ((_checked_key(name),) for name in names))
            self.manifest_count += self._db.total_changes - before

    def manifests(self) -> Iterator[str]:
        """The manifest names in order (as ``sorted`` orders them), read a chunk at a time
        in one statement step (names never hold a NUL byte): flags may be set meanwhile."""
        for key in ordered_keys(self._db, "manifest_names", _WHAT, chunk=_CHUNK):
            yield _name(key)

    def mark(self, name: str, *, claimed: bool, own_warc: bool) -> None:
        """Set the manifest ``name``'s flags that are true: it is the first to claim the
        capture id it is named after; it names its own WARC file at the expected place."""
        key = _key(name)
        was = self._marks.get(key, (0, 0))
        self._marks[key] = (was[0] | claimed, was[1] | own_warc)
        if len(self._marks) >= _BATCH:
            self._flush_marks()

    def claimed(self, name: str) -> bool:
        return name in self.claimed_among([name])

    def claimed_among(self, names: Iterable[str]) -> set[str]:
        """Those of ``names`` whose manifest claimed its capture id (asked in batches)."""
        found: set[str] = set()
        asked: list[bytes] = []
        for name in names:
            key = _key(name)
            mark = self._marks.get(key)
            if mark is not None and mark[0]:
                found.add(name)
            else:
                asked.append(key)
        for at in range(0, len(asked), _BATCH):
            batch = asked[at:at + _BATCH]
            with failing_as_storage(_WHAT):
                rows = self._db.execute(
                    "SELECT CAST(group_concat(name, x'00') AS BLOB) FROM manifests WHERE "
                    f"claimed = 1 AND name IN ({', '.join('?' * len(batch))})",
                    batch).fetchone()
            if rows[0] is not None:
                found.update(_name(key) for key in bytes(rows[0]).split(b"\0"))
        return found

    def own_warc(self, name: str) -> bool:
        self._flush()
        with failing_as_storage(_WHAT):
            row = self._db.execute("SELECT own_warc FROM manifests WHERE name = ?",
                                   (_key(name),)).fetchone()
        return row is not None and bool(row[0])

    # --- text objects --------------------------------------------------------------------

    def add_texts(self, texts: Iterable[tuple[bytes, bool]]) -> None:
        """Keep these ``(digest, hashed)``: a text object a manifest names, and whether it
        was read and hashed to its name (once true for a digest, it stays true)."""
        self._texts.extend((digest, int(hashed)) for digest, hashed in texts)
        if len(self._texts) >= _BATCH:
            self._flush_texts()

    def text_named(self, digest: bytes) -> bool:
        self._flush()
        with failing_as_storage(_WHAT):
            return self._db.execute("SELECT 1 FROM texts WHERE digest = ?",
                                    (digest,)).fetchone() is not None

    def texts_hashed(self) -> int:
        """Distinct text objects that some manifest named and that were read and hashed."""
        self._flush()
        with failing_as_storage(_WHAT):
            (count,) = self._db.execute("SELECT count(*) FROM texts WHERE hashed").fetchone()
        return int(count)

    # --- catalog rows --------------------------------------------------------------------

    def add_catalog_rows(self, digests: Iterable[bytes]) -> None:
        self._catalog_rows.extend(digests)
        if len(self._catalog_rows) >= _BATCH:
            self._flush_catalog_rows()

    def catalog_rows(self) -> Container[bytes]:
        """The row digests kept, as a container (what ``check_catalog`` takes)."""
        self._flush()
        return _CatalogRows(self)

    def has_catalog_row(self, digest: bytes) -> bool:
        with failing_as_storage(_WHAT):
            return self._db.execute("SELECT 1 FROM catalog_rows WHERE digest = ?",
                                    (digest,)).fetchone() is not None

    # --- writing -------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_marks()
        self._flush_texts()
        self._flush_catalog_rows()

    def _flush_marks(self) -> None:
        rows = [value for key, (claimed, own) in self._marks.items()
                for value in (key, claimed, own)]
        self._marks.clear()
        self._write("INSERT INTO manifests (name, claimed, own_warc) VALUES {} ON CONFLICT "
                    "(name) DO UPDATE SET claimed = max(claimed, excluded.claimed), "
                    "own_warc = max(own_warc, excluded.own_warc)", rows, 3)

    def _flush_texts(self) -> None:
        rows = [value for text in self._texts for value in text]
        self._texts.clear()
        self._write("INSERT INTO texts VALUES {} ON CONFLICT (digest) "
                    "DO UPDATE SET hashed = max(hashed, excluded.hashed)", rows, 2)

    def _flush_catalog_rows(self) -> None:
        rows = list(self._catalog_rows)
        self._catalog_rows.clear()
        self._write("INSERT OR IGNORE INTO catalog_rows VALUES {}", rows, 1)

    def _write(self, statement: str, values: Sequence[bytes | int], width: int) -> None:
        """Run ``statement`` with its VALUES list filled, ``_BATCH`` rows a statement."""
        step = _BATCH * width
        with failing_as_storage(_WHAT):
            for at in range(0, len(values), step):
                batch = values[at:at + step]
                self._db.execute(statement.format(_rows(len(batch) // width, width)), batch)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FileIndex:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _CatalogRows(Container[bytes]):
    def __init__(self, index: FileIndex) -> None:
        self._index = index

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, bytes) and self._index.has_catalog_row(digest)


__all__ = ["IN_MEMORY_BELOW", "FileIndex"]
