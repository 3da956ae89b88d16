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

        def manifest_leaves() -> Iterator[tuple[int, str]]:
            for index, data in opened.iter_entries(indexed):
                try:
                    entry = parse_entry(data)
                except ValueError:
                    continue
                if isinstance(entry, ManifestLeaf | AdoptionLeaf):
                    yield index, entry.capture_id

        catalog.sync(size, manifest_leaves())
