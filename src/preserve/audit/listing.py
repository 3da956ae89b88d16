"""A directory's entries in name order, with memory that does not grow with the directory.

verify's sweep walks the archive's directories in name order (so its report is the same
whatever order the file system lists them in). Sorting a listing in memory costs ~90 bytes
an entry, and one month's WARC directory of a large archive can hold hundreds of thousands
of files; past :data:`IN_MEMORY_ENTRIES` entries the listing is sorted in a
:mod:`preserve.scratch` database instead and read back a chunk at a time. Names are kept as
UTF-8 with surrogates passed through, which orders them as Python orders the names' code
points, so both ways give the same order. This module sorts; it does not read directories.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator

from ..scratch import failing_as_storage, open_scratch, ordered_keys

#: Entries of one directory sorted in memory; a larger listing is sorted on disk.
IN_MEMORY_ENTRIES = 16_384
_SCHEMA = "CREATE TABLE entries (key BLOB PRIMARY KEY) WITHOUT ROWID;"
_WHAT = "verify's directory listing"


def sorted_entries(entries: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int]]:
    """``(name, kind)`` pairs (names unique and without NUL or "/", as in a directory; kind
    0-255) in name order, as ``sorted`` gives them. ``entries`` is read to its end before
    the first pair is given. StorageError if a scratch database is needed and fails."""
    held: list[tuple[str, int]] = []
    source = iter(entries)
    for entry in source:
        held.append(entry)
        if len(held) >= IN_MEMORY_ENTRIES:
            return _sorted_on_disk(itertools.chain(held, source))
    held.sort()
    return iter(held)


def _key(name: str, kind: int) -> bytes:
    # NUL sorts below every byte a name can hold: "a" + NUL comes before "a-b", as "a" does
    return name.encode("utf-8", "surrogatepass") + b"\0" + bytes((kind,))


def _sorted_on_disk(entries: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int]]:
    db = open_scratch(_SCHEMA, _WHAT)
    try:
        with failing_as_storage(_WHAT):
            db.executemany("INSERT INTO entries VALUES (?)",
                           ((_key(name, kind),) for name, kind in entries))
    except BaseException:
        db.close()
        raise
    return _read(db)


def _read(db: sqlite3.Connection) -> Iterator[tuple[str, int]]:
    try:
        for key in ordered_keys(db, "entries", _WHAT, separator=b"/"):
            yield key[:-2].decode("utf-8", "surrogatepass"), key[-1]
    finally:
        db.close()


__all__ = ["IN_MEMORY_ENTRIES", "sorted_entries"]
