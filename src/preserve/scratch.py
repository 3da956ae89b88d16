"""A private temporary SQLite database: what an audit must keep of every capture, on disk.

An audit of a large archive keeps a little about every capture until its end (which leaf
logs it, whether its manifest claimed its id, which text objects it names). Kept in Python
dictionaries and sets, that is a few hundred bytes a capture; :func:`open_scratch` gives a
database in a new file in the temporary directory instead, unlinked as soon as it is opened
(nothing is left behind whatever happens), with SQLite's own page cache of a few MiB, so
the memory does not grow with the archive. Where no temporary file can be made the
database is in memory. No journal and no fsync: the contents are this process's own and are
thrown away with it.

This module opens and reports failures; what is kept, and what it means, is its callers'.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator

from .errors import StorageError

#: SQLite's page cache for a scratch database, in KiB (its default is 2,000).
CACHE_KIB = 4096


def open_scratch(schema: str, what: str, *, in_memory: bool = False) -> sqlite3.Connection:
    """A new scratch database holding ``schema``, in an open transaction (nothing is ever
    committed: the file is gone at close); in memory if ``in_memory`` (for what is known to
    be small: it opens in half the time). ``what`` names it in errors. StorageError if
    neither a file nor a database in memory can be opened."""
    name = ":memory:"
    if not in_memory:
        try:
            fd, name = tempfile.mkstemp(prefix="preserve-scratch-", suffix=".sqlite3")
        except OSError:
            pass
        else:
            os.close(fd)
    try:
        db = sqlite3.connect(name, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = OFF")  # no other file beside it, ever
            db.execute("PRAGMA synchronous = OFF")
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            db.executescript(schema)
            db.execute("BEGIN")
        except sqlite3.Error:
            db.close()
            raise
    except sqlite3.Error as exc:
        raise StorageError(f"cannot make {what}: {exc}") from exc
    finally:
        if name != ":memory:":
            with contextlib.suppress(OSError):
                os.unlink(name)
    return db


@contextlib.contextmanager
def failing_as_storage(what: str) -> Iterator[None]:
    """sqlite3.Error inside as StorageError naming ``what`` (the temporary disk full, say)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"{what} failed: {exc}") from exc


def ordered_keys(db: sqlite3.Connection, table: str, what: str, *, separator: bytes = b"\0",
                 chunk: int = 1024) -> Iterator[bytes]:
    """The BLOB primary key ``key`` of ``table``, in order, read ``chunk`` keys at a time in
    one statement step (each step releases and retakes the GIL, which costs up to a thread
    switch interval when other threads are busy). No key may hold ``separator``."""
    after = b""
    query = (f"SELECT count(*), CAST(group_concat(key, ?) AS BLOB) FROM (SELECT key "
             f"FROM {table} WHERE key > ? ORDER BY key LIMIT ?)")
    while True:
        with failing_as_storage(what):
            count, joined = db.execute(query, (separator, after, chunk)).fetchone()
        if not count:
            return
        keys = sorted(bytes(joined).split(separator))  # group_concat's order is not promised
        yield from keys
        if count < chunk:
            return
        after = keys[-1]


__all__ = ["CACHE_KIB", "failing_as_storage", "open_scratch", "ordered_keys"]
