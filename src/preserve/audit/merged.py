"""A split audit's parts merged as they arrive, what the rest of the audit needs kept on disk.

A verify whose manifests are checked elsewhere (chunks on Dask workers, objects of an s3://
root mirrored a chunk at a time) gets one :class:`~preserve.audit.verify.ManifestChecks` per
chunk, in manifest order. :class:`MergedChecks` adds each part's findings and counters to the
report at once (a capture id that an earlier part claimed is E106, as within one part) and
keeps the rest — the WARC files and text objects named, the capture ids claimed, the
``previous`` links, the catalog row digests, the digests of the manifest bytes checked — in
a scratch database (:class:`~preserve.audit.file_index.FileIndex`, which the local sweep
reads, with four more tables). No part is held after it is merged, so the memory of the
process that merges does not grow with the archive (held in sets and dictionaries it was
about 0.8 KiB a capture).

This module keeps and answers; the findings about what it keeps are its callers'.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

from preserve.audit.file_index import FileIndex
from preserve.audit.findings import Code, Finding, Report
from preserve.scratch import failing_as_storage

if TYPE_CHECKING:
    from preserve.audit.verify import ManifestChecks

_WHAT = "verify's temporary index of the checked parts"
_EXTRA_SCHEMA = """
CREATE TABLE claims (capture_id BLOB PRIMARY KEY, rel BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE warcs (rel BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE checked (rel BLOB PRIMARY KEY, sha256 TEXT NOT NULL, blake3 TEXT NOT NULL,
                      size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE previous (seq INTEGER PRIMARY KEY, capture_id BLOB NOT NULL,
                       previous BLOB NOT NULL, rel BLOB NOT NULL);
"""
#: Most capture ids asked about in one statement.
_BATCH = 512
#: Rows read at once when walking a table.
_FETCH = 1024

Digests = tuple[str, str, int]
Row = TypeVar("Row")


def _key(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(key: bytes) -> str:
    return bytes(key).decode("utf-8", "surrogatepass")


class PartsIndex(FileIndex):
    """:class:`FileIndex` plus what merged parts name: capture ids with the manifest that
    claimed each first, WARC paths, previous links in order, digests of checked manifests."""

    SCHEMA = FileIndex.SCHEMA + _EXTRA_SCHEMA


class MergedChecks:
    """The parts of a split audit, merged into ``report`` as :meth:`add` is given them (in
    manifest order); close it when done, or use it as a context manager."""

    def __init__(self, report: Report, *, in_memory: bool = False) -> None:
        self.report = report
        self.index = PartsIndex(in_memory=in_memory)
        self._db = self.index.connection
        self._previous_count = 0
        #: the digests of the manifest bytes checked, by manifest path (a read-only mapping
        #: over the database: what the log audit holds each leaf to)
        self.checked: Mapping[str, Digests] = _Checked(self._db, self._rows)

    def add(self, part: ManifestChecks) -> None:
        """Merge one part: its findings and counters into the report, the rest kept."""
        for finding in part.findings:
            self.report.add(finding)
        for name, value in part.stats.items():
            setattr(self.report.stats, name, getattr(self.report.stats, name) + value)
        self._claim(list(part.capture_ids.items()))
        with failing_as_storage(_WHAT):
            self._db.executemany("INSERT OR IGNORE INTO warcs VALUES (?)",
                                 ((_key(rel),) for rel in part.warcs))
            self._db.executemany(
                "INSERT INTO previous VALUES (?, ?, ?, ?)",
                ((self._previous_count + at, _key(cid), _key(previous), _key(rel))
                 for at, (cid, previous, rel) in enumerate(part.previous)))
            self._db.executemany(
                "INSERT OR REPLACE INTO checked VALUES (?, ?, ?, ?)",
                ((_key(rel), *digests) for rel, digests in part.manifest_digests.items()))
        self._previous_count += len(part.previous)
        self.index.add_texts((bytes.fromhex(name), True) for name in part.texts)
        self.index.add_catalog_rows(part.catalog_rows)

    def _claim(self, claims: list[tuple[str, str]]) -> None:
        """Keep each capture id's first claimant; a later claim is E106."""
        for at in range(0, len(claims), _BATCH):
            batch = claims[at:at + _BATCH]
            with failing_as_storage(_WHAT):
                known = {_text(cid): _text(rel) for cid, rel in self._db.execute(
                    "SELECT capture_id, rel FROM claims WHERE capture_id IN "
                    f"({', '.join('?' * len(batch))})", [_key(cid) for cid, _ in batch])}
            new = []
            for cid, rel in batch:
                if cid in known:
                    self.report.add(Finding(Code.E106, rel, f"capture id {cid} is also "
                                            f"claimed by {known[cid]}", cid))
                else:
                    known[cid] = rel
                    new.append((_key(cid), _key(rel)))
            with failing_as_storage(_WHAT):
                self._db.executemany("INSERT INTO claims VALUES (?, ?)", new)

    def names_warc(self, rel: str) -> bool:
        """Whether a merged manifest names the WARC file at ``rel``."""
        with failing_as_storage(_WHAT):
            return self._db.execute("SELECT 1 FROM warcs WHERE rel = ?",
                                    (_key(rel),)).fetchone() is not None

    def names_text(self, name: str) -> bool:
        """Whether a merged manifest names the text object ``name`` (64 hex digits)."""
        return self.index.text_named(bytes.fromhex(name))

    def dangling_previous(self) -> Iterator[tuple[str, str, str]]:
        """``(capture id, previous id, manifest path)`` of every previous link whose
        previous capture no merged manifest claims, in the order the parts gave them."""
        yield from self._rows(
            "SELECT capture_id, previous, rel FROM previous WHERE previous NOT IN "
            "(SELECT capture_id FROM claims) ORDER BY seq",
            lambda row: (_text(row[0]), _text(row[1]), _text(row[2])))

    def _rows(self, query: str, convert: Callable[[tuple[bytes, ...]], Row],
              *args: bytes) -> Iterator[Row]:
        with failing_as_storage(_WHAT):
            cursor = self._db.execute(query, args)
            rows = cursor.fetchmany(_FETCH)
        while rows:
            yield from (convert(row) for row in rows)
            with failing_as_storage(_WHAT):
                rows = cursor.fetchmany(_FETCH)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> MergedChecks:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _Checked(Mapping[str, Digests]):
    """The ``checked`` table as a read-only mapping (manifest path -> digests)."""

    def __init__(self, db: sqlite3.Connection,
                 rows: Callable[[str, Callable[[tuple[bytes, ...]], str]], Iterator[str]]
                 ) -> None:
        self._db, self._rows = db, rows

    def __getitem__(self, rel: str) -> Digests:
        with failing_as_storage(_WHAT):
            row = self._db.execute("SELECT sha256, blake3, size FROM checked WHERE rel = ?",
                                   (_key(rel),)).fetchone()
        if row is None:
            raise KeyError(rel)
        return str(row[0]), str(row[1]), int(row[2])

    def __iter__(self) -> Iterator[str]:
        return self._rows("SELECT rel FROM checked ORDER BY rel", lambda row: _text(row[0]))

    def __len__(self) -> int:
        with failing_as_storage(_WHAT):
            (count,) = self._db.execute("SELECT count(*) FROM checked").fetchone()
        return int(count)


def merge_all(report: Report, parts: Iterable[ManifestChecks]) -> MergedChecks:
    """A :class:`MergedChecks` with ``parts`` merged in order (closed if merging fails)."""
    merged = MergedChecks(report)
    try:
        for part in parts:
            merged.add(part)
    except BaseException:
        merged.close()
        raise
    return merged


__all__ = ["MergedChecks", "PartsIndex", "merge_all"]
