"""A derived index from URL to capture ids, so a new capture finds its predecessors quickly.

``archive/index/captures.tsv`` holds one line per committed capture: capture id, a tab, the
SHA-256 of its requested URL. It is appended under the archive lock right after a manifest is
committed. It is *derived* data: the manifests are the truth, and when the index is missing or
does not list every manifest (say after a crash between the two writes) it is rebuilt from
them. Nothing else reads it; verify does not audit it.
"""

from __future__ import annotations

import hashlib
import os

from preserve.errors import ManifestError
from preserve.storage import manifest
from preserve.storage.layout import ArchiveLayout

INDEX_DIR = "archive/index"
INDEX_FILE = "captures.tsv"


def url_key(url: str) -> str:
    """The index key of a URL: SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


class UrlIndex:
    """Capture ids by requested URL. Callers hold the archive lock for :meth:`add`."""

    def __init__(self, layout: ArchiveLayout) -> None:
        self.layout = layout
        self.path = layout.root / INDEX_DIR / INDEX_FILE

    def _read(self) -> list[tuple[str, str]]:
        try:
            text = self.path.read_text(encoding="ascii")
        except (FileNotFoundError, UnicodeDecodeError):
            return []
        entries = []
        for line in text.splitlines():
            capture_id, _, key = line.partition("\t")
            if capture_id and len(key) == 64:
                entries.append((capture_id, key))
        return entries

    def _rebuild(self) -> list[tuple[str, str]]:
        entries = []
        for path in sorted(manifest.iter_manifest_paths(self.layout)):
            try:
                m, _ = manifest.read_manifest(path)
            except ManifestError:
                continue
            entries.append((m.capture_id, url_key(m.requested_url)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.write_text("".join(f"{cid}\t{key}\n" for cid, key in entries), encoding="ascii")
        os.replace(tmp, self.path)
        return entries

    def _current(self) -> list[tuple[str, str]]:
        entries = self._read()
        indexed = {cid for cid, _ in entries}
        on_disk = {p.stem for p in manifest.iter_manifest_paths(self.layout)}
        return entries if on_disk <= indexed else self._rebuild()

    def captures_of(self, requested_url: str) -> list[str]:
        """Ids of committed captures of ``requested_url``, in commit order."""
        key = url_key(requested_url)
        return [cid for cid, k in self._current() if k == key]

    def add(self, capture_id: str, requested_url: str) -> None:
        """Record a just-committed capture (append; the manifest is already durable)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="ascii") as f:
            f.write(f"{capture_id}\t{url_key(requested_url)}\n")
