"""Bring an archive's catalog up to its integrity log.

The catalog (:mod:`preserve.storage.catalog`) lists what the log holds; this module feeds it
the manifest and adoption leaves appended since it was last brought up to date. It reads the
log through :mod:`preserve.log.storage` and :mod:`preserve.log.entries` only, so ``list`` and
``history`` load neither keys, signatures nor timestamps. It never writes the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from preserve.log.entries import AdoptionLeaf, ManifestLeaf, parse_entry
from preserve.log.storage import TransparencyLog
from preserve.storage.catalog import Catalog
from preserve.storage.layout import LOG_DIR


def sync_catalog(root: Path, catalog: Catalog) -> None:
    """Bring ``catalog`` up to the log (CatalogError if it must be rebuilt)."""
    with TransparencyLog.open(Path(root) / LOG_DIR, readonly=True) as opened:
        size = opened.size
        indexed = catalog.indexed_size()
        if indexed > size:  # a catalog from a newer copy of the archive: rebuild
            catalog.reset()
            indexed = 0
        if indexed == size:
            catalog.check()
            return
        catalog.sync(size, _manifest_leaves(opened, indexed, size))


def logged_captures(root: Path, stop: int) -> Iterator[tuple[int, str]]:
    """``(leaf index, capture id)`` of the log's manifest and adoption leaves before leaf
    ``stop`` (the rows a catalog brought up to ``stop`` must hold), read one at a time."""
    with TransparencyLog.open(Path(root) / LOG_DIR, readonly=True) as opened:
        yield from _manifest_leaves(opened, 0, min(stop, opened.size))


def _manifest_leaves(opened: TransparencyLog, start: int,
                     stop: int) -> Iterator[tuple[int, str]]:
    for index, data in opened.iter_entries(start):
        if index >= stop:
            return
        try:
            entry = parse_entry(data)
        except ValueError:
            continue
        if isinstance(entry, ManifestLeaf | AdoptionLeaf):
            yield index, entry.capture_id
