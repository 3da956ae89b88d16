"""CDXJ index lines for exported captures, as pywb, ReplayWeb.page and cdxj-indexer write them.

For each record of the kinds a replay index holds (``response``, ``revisit``, ``resource``,
``metadata``, but not ``application/warc-fields`` metadata), a line
``<SURT key> <14-digit timestamp> {"url", "mime", "status", "digest", "length", "offset",
"filename"}``. Offsets and lengths come from the manifest; the rest is read from each record's
own head at that offset (:func:`preserve.warc.heads.read_heads_from`), so bodies are not read. The
SURT key is computed by the ``surt`` package, the canonicaliser pywb and cdxj-indexer use, so
replay tools find the URLs they look up. A test checks the lines equal cdxj-indexer's.

:class:`SortedLines` sorts the lines of many captures without holding them all: past a bound
it spills sorted runs to a directory and merges them.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

from preserve.errors import NotFoundError, StorageError
from preserve.exchange.plan import LoadedCapture
from preserve.storage.manifest import Manifest
from preserve.warc.heads import read_heads_from

INDEXED_TYPES = ("response", "revisit", "resource", "metadata")
_MIME_CUT = re.compile(r"[;\s]")
_WARC_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})")


def timestamp14(warc_date: str) -> str:
    """``2026-11-21T17:07:09.886692Z`` -> ``20261121170709`` (CDX timestamps are to the second)."""
    match = _WARC_DATE.match(warc_date)
    if match is None:
        digits = re.sub(r"\D", "", warc_date)
        return (digits + "0" * 14)[:14]
    return "".join(match.groups())


def surt_key(url: str) -> str:
    """The SURT form of ``url`` used as the index key (the URL itself if it has none)."""
    # Imported here: importing surt (and tldextract, requests) takes ~0.3 s, which every
    # other command would pay if it were imported with this module.
    import surt  # noqa: PLC0415

    try:
        return str(surt.surt(url))
    except Exception:  # surt raises assorted errors on odd URLs; cdxj-indexer keeps the URL
        return url


def capture_lines(capture: LoadedCapture, filename: str) -> Iterator[str]:
    """The unsorted index lines of one capture's WARC file, named ``filename`` in the index."""
    try:  # (a damaged record is an ArchiveError from manifest_lines, never an OSError)
        with capture.warc_file.open() as (handle, _size):
            yield from manifest_lines(capture.manifest, handle, filename,
                                      str(capture.warc_file))
    except OSError as exc:
        raise NotFoundError(f"cannot open WARC file {capture.warc_file}: {exc}") from exc


def manifest_lines(manifest: Manifest, warc: BinaryIO, filename: str,
                   label: str) -> Iterator[str]:
    """The unsorted index lines of the records ``manifest`` names, read from its WARC file
    open as ``warc`` (seekable; ``label`` names it in errors): what an export writes, and
    what ``check-export`` derives again from the WARC files in a package."""
    refs = [r for r in manifest.warc.records if r.type in INDEXED_TYPES]
    heads = read_heads_from(warc, [r.offset for r in refs], label)
    for ref, head in zip(refs, heads, strict=True):
        if head.type != ref.type or head.target_uri != ref.target_uri:
            raise StorageError(
                f"{label}: the record at offset {ref.offset} is not the one its "
                "manifest lists; the archive is damaged (run 'preserve verify --deep')"
            )
        if head.type in ("resource", "metadata") and head.content_type == \
                "application/warc-fields":
            continue
        url = head.target_uri or ""
        entry: dict[str, Any] = {"url": url}
        mime = _mime(head.type, head.http_content_type, head.content_type)
        if mime:
            entry["mime"] = mime
        if head.http_status:
            entry["status"] = head.http_status
        digest = head.payload_digest or ref.payload_digest
        if digest:
            entry["digest"] = digest
        entry["length"] = str(ref.length)
        entry["offset"] = str(ref.offset)
        entry["filename"] = filename
        yield f"{surt_key(url)} {timestamp14(head.date or '')} {json.dumps(entry)}"


def _mime(record_type: str, http_type: str | None, warc_type: str | None) -> str | None:
    if record_type == "revisit":
        return "warc/revisit"
    value = http_type if record_type in ("response", "request") else warc_type
    if not value:
        return None
    return _MIME_CUT.split(value, maxsplit=1)[0].strip() or None


class SortedLines:
    """Collect text lines, then read them back sorted (as ``sorted()`` would order them).

    At most ``run_lines`` lines are held in memory; beyond that, sorted runs are written to
    files in ``directory`` and merged when read. Use as a context manager (closes the runs).
    """

    def __init__(self, directory: Path, run_lines: int = 50_000) -> None:
        self.directory = directory
        self.run_lines = run_lines
        self._buffer: list[str] = []
        self._runs: list[Path] = []
        self._open: list[IO[str]] = []

    def add(self, line: str) -> None:
        self._buffer.append(line if line.endswith("\n") else line + "\n")
        if len(self._buffer) >= self.run_lines:
            self._spill()

    def _spill(self) -> None:
        path = self.directory / f"run-{len(self._runs):06d}.cdxj"
        with path.open("w", encoding="utf-8") as run:
            run.writelines(sorted(self._buffer))
        self._runs.append(path)
        self._buffer = []

    def __iter__(self) -> Iterator[str]:
        """The lines, sorted, each ending in a newline (``\\n`` sorts before any other
        character a line holds, so this is also the order of the lines without it)."""
        if not self._runs:
            yield from sorted(self._buffer)
            return
        if self._buffer:
            self._spill()
        self._open = [path.open(encoding="utf-8") for path in self._runs]
        yield from heapq.merge(*self._open)

    def __enter__(self) -> SortedLines:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for handle in self._open:
            with contextlib.suppress(OSError):
                handle.close()
        for path in self._runs:
            path.unlink(missing_ok=True)


__all__ = ["INDEXED_TYPES", "SortedLines", "capture_lines", "manifest_lines", "surt_key",
           "timestamp14"]
