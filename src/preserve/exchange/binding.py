"""Bind a WACZ's replay files to the captures ``check-export`` proved.

Replay tools (pywb, ReplayWeb.page) show what a package's WARC files, ``indexes/index.cdx``
and ``pages/pages.jsonl`` say, not preserve's manifests; without this, anyone could add a WARC
file, edit a page's title or text, or add an index line, recompute the datapackage hashes, and
the package would still hold. :func:`bind_wacz` therefore checks, for a package whose
descriptor and manifests :mod:`.check` has read:

- **every member is one preserve's exporter writes** for the captures the descriptor lists:
  their WARC files, manifests, text objects and proofs at the paths the exporter derives from
  each manifest (the descriptor must say the same), the index, the pages, the descriptor, the
  log files and the datapackage files. Anything else (a WARC file no proven capture names, first
  of all) is a problem;
- **the index and the pages are derived again** with the exporter's own code: index lines from
  the record heads at the manifests' offsets, read from the WARC files inside the package (kept
  uncompressed in the zip, so a record is reached by a file offset), sorted in spilled runs as
  the exporter sorts them; pages from the manifests and text objects. Each must equal the
  member line for line (streamed; a member line is read no longer than the line expected);
- **datapackage.json's main page** (``mainPageUrl``, ``mainPageDate``) is the one capture's,
  and absent for more.

Hashes of WARC files and text objects against their manifests are :mod:`.check`'s job; this
module only reads, bounded, and returns problems as one-line strings.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from preserve.errors import PreserveError
from preserve.exchange import cdxj
from preserve.exchange.wacz import (
    INDEX_PATH,
    PAGES_HEADER,
    PAGES_PATH,
    indexed,
    json_line,
    page_entry,
    warc_member,
)
from preserve.storage.manifest import Manifest

#: Members every preserve WACZ may hold besides the captures' own files.
PACKAGE_MEMBERS = frozenset({INDEX_PATH, PAGES_PATH, "preserve/export.json", "datapackage.json",
                             "datapackage-digest.json", "log/checkpoint.txt",
                             "log/checkpoint.tsr", "log/key.pub"})
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_MAGIC = b"PK\x03\x04"
_BUFFER = 1 << 16

#: A capture as check-export read it: its descriptor entry and its parsed manifest.
Proven = tuple[dict[str, Any], Manifest]


def bind_wacz(zf: zipfile.ZipFile, fd: int, proven: list[Proven], package: dict[str, Any],
              read: Callable[[str], bytes | None],
              digests: dict[str, dict[str, str]]) -> list[str]:
    """The problems that keep the replay files of the WACZ ``zf`` (open on the descriptor
    ``fd``) from being those of the ``proven`` captures; ``read`` returns a small member's
    bytes (bounded) or None; ``digests`` gives each member's SHA-256, BLAKE3 and size."""
    names = {info.filename for info in zf.infolist() if not info.is_dir()}
    problems = _descriptor_paths(proven)
    expected = PACKAGE_MEMBERS | {path for capture, manifest in proven
                                  for path in _derived_paths(capture, manifest).values()
                                  if path is not None}
    for name in sorted(names - expected):
        what = "a WARC file no proven capture names" if name.startswith("archive/") else \
            "a file preserve's export does not write for these captures"
        problems.append(f"{name}: {what} (replay tools would show it unproved)")
    manifests = [manifest for _capture, manifest in proven]
    problems += _check_index(zf, fd, manifests, digests)
    problems += _check_pages(zf, manifests, names, read)
    problems += _check_main_page(manifests, package)
    return problems


def _derived_paths(capture: dict[str, Any], manifest: Manifest) -> dict[str, str | None]:
    """Where preserve's exporter puts each file of the capture ``manifest`` describes."""
    cid = manifest.capture_id
    return {
        "warc": warc_member(manifest),
        "manifest": f"manifests/{cid}.json",
        "text": f"text/{manifest.text.blake3}.txt" if manifest.text else None,
        "comments": f"text/{manifest.comments.blake3}.txt" if manifest.comments else None,
        "proof": f"proofs/{cid}.json" if capture.get("proof") else None,
    }


def _descriptor_paths(proven: list[Proven]) -> list[str]:
    """The descriptor must name each capture once, by its manifest's id, and put its files
    where the exporter derives them from the manifest."""
    problems = []
    counts = Counter(manifest.capture_id for _capture, manifest in proven)
    for capture_id in sorted(c for c, n in counts.items() if n > 1):
        problems.append(f"capture {capture_id}: listed more than once in the descriptor")
    for capture, manifest in proven:
        where = f"capture {manifest.capture_id}"
        if capture.get("capture_id") != manifest.capture_id:
            problems.append(f"{where}: the descriptor lists it as {capture.get('capture_id')!r}")
        warc = capture.get("warc")
        stated = {"warc": warc.get("path") if isinstance(warc, dict) else None,
                  "manifest": (capture.get("manifest") or {}).get("path"),
                  "text": capture.get("text"), "comments": capture.get("comments"),
                  "proof": capture.get("proof")}
        for kind, path in _derived_paths(capture, manifest).items():
            if stated[kind] != path:
                problems.append(f"{where}: the descriptor puts its {kind} at "
                                f"{stated[kind]!r}; preserve's export puts it at {path!r}")
    return problems


# --- the index -----------------------------------------------------------------------------------


def _check_index(zf: zipfile.ZipFile, fd: int, manifests: list[Manifest],
                 digests: dict[str, dict[str, str]]) -> list[str]:
    if INDEX_PATH not in digests:
        return [f"{INDEX_PATH}: missing, or not listed in datapackage.json"]
    try:
        with tempfile.TemporaryDirectory(prefix="preserve-check-") as spill, \
                cdxj.SortedLines(Path(spill)) as lines:
            for manifest in manifests:
                for line in _manifest_lines(zf, fd, manifest, digests):
                    lines.add(line)
            differs = first_difference(zf, INDEX_PATH, (line.encode() for line in lines))
    except (PreserveError, OSError, ValueError) as exc:
        return [f"{INDEX_PATH}: cannot be derived from the proven WARC files: {exc}"]
    if differs is None:
        return []
    return [f"{INDEX_PATH}: line {differs} is not what the proven WARC files and manifests "
            "give (an index entry added, removed or changed)"]


def _manifest_lines(zf: zipfile.ZipFile, fd: int, manifest: Manifest,
                    digests: dict[str, dict[str, str]]) -> Iterator[str]:
    """The index lines the exporter writes for one capture, its WARC file read in the zip
    (only when it is the file the manifest names: bytes preserve wrote or checked, whose
    record heads are bounded)."""
    if not indexed(manifest):
        return
    member = warc_member(manifest)
    found = digests.get(member)
    if found is None or (found["sha256"], found["blake3"], int(found["size"])) != \
            (manifest.warc.sha256, manifest.warc.blake3, manifest.warc.size):
        raise ValueError(f"{member} is missing or not the WARC file its manifest names")
    with stored_member(zf, fd, zf.getinfo(member)) as warc:
        yield from cdxj.manifest_lines(manifest, warc, member.removeprefix("archive/"), member)


def stored_member(zf: zipfile.ZipFile, fd: int, info: zipfile.ZipInfo) -> io.BufferedReader:
    """A seekable reader of a stored (uncompressed, unencrypted) member's bytes, straight from
    the zip file (``pread``: the descriptor's offset, which ``zf`` uses, is left alone).
    ValueError for a member preserve would not have written so."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise ValueError(f"{info.filename} is not stored uncompressed, as preserve stores "
                         "WARC files")
    head = os.pread(fd, _LOCAL_HEADER.size, info.header_offset)
    if len(head) != _LOCAL_HEADER.size:
        raise ValueError(f"{info.filename}: its local header is cut short")
    magic, name_length, extra_length = _LOCAL_HEADER.unpack(head)
    if magic != _LOCAL_MAGIC:
        raise ValueError(f"{info.filename}: no local header at its offset")
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    return io.BufferedReader(_Window(fd, start, info.file_size), _BUFFER)


class _Window(io.RawIOBase):
    """``length`` bytes of the open file ``fd`` from ``start``, read with ``pread``."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        super().__init__()
        self._fd, self._start, self._length, self._position = fd, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._length - self._position)
        if wanted <= 0:
            return 0
        data = os.pread(self._fd, wanted, self._start + self._position)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


# --- pages and the main page ---------------------------------------------------------------------


def _check_pages(zf: zipfile.ZipFile, manifests: list[Manifest], names: set[str],
                 read: Callable[[str], bytes | None]) -> list[str]:
    if PAGES_PATH not in names:
        return [f"{PAGES_PATH}: missing"]

    def derived() -> Iterator[bytes]:
        yield json_line(PAGES_HEADER)
        for manifest in manifests:
            text = read(f"text/{manifest.text.blake3}.txt") if manifest.text else None
            yield json_line(page_entry(manifest, text))

    try:
        differs = first_difference(zf, PAGES_PATH, derived())
    except (PreserveError, OSError, ValueError) as exc:
        return [f"{PAGES_PATH}: cannot be derived from the proven captures: {exc}"]
    if differs is None:
        return []
    return [f"{PAGES_PATH}: line {differs} is not what the proven manifests and text give (a "
            "page's URL, time, title or text changed, or a page added or removed)"]


def _check_main_page(manifests: list[Manifest], package: dict[str, Any]) -> list[str]:
    """``mainPageUrl``/``mainPageDate``: the one capture's page (none for more)."""
    expected: dict[str, Any] = {}
    if len(manifests) == 1:
        page = page_entry(manifests[0], None)
        expected = {"mainPageUrl": page["url"], "mainPageDate": page["ts"]}
    for key in ("mainPageUrl", "mainPageDate"):
        if package.get(key) != expected.get(key):
            return [f"datapackage.json: {key} is not the proven capture's page"
                    if expected else f"datapackage.json: {key} names a page, but the package "
                    "does not hold exactly one proven capture"]
    return []


def first_difference(zf: zipfile.ZipFile, name: str, lines: Iterable[bytes]) -> int | None:
    """The number (from 1) of the first line where member ``name`` differs from ``lines``
    (each ending in a newline), or None when they are the same bytes. Never reads a member
    line longer than the line it is compared with."""
    number = 0
    with zf.open(name) as member:
        for number, line in enumerate(lines, 1):
            if member.readline(len(line) + 1) != line:
                return number
        if member.read(1):
            return number + 1
    return None


__all__ = ["PACKAGE_MEMBERS", "Proven", "bind_wacz", "first_difference", "stored_member"]
