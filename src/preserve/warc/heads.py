"""Read single WARC records at known offsets: their heads (for indexes) or a bounded block.

A manifest knows where every record of its WARC file starts. :func:`read_heads` seeks to each
given offset and parses only the WARC header block and, for HTTP records, the HTTP status line
and headers: bodies are never decompressed past their first bytes, so indexing a capture costs
the same for a 10 KB page and a 10 GB video. :func:`read_block` returns one record's block (for
example a screenshot ``resource`` record), refusing blocks larger than a limit.

This module reads; it does not check digests of whole files (see :mod:`.read`) or write WARC
files (see :mod:`.write`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from warcio.archiveiterator import ArchiveIterator

from preserve.errors import ArchiveError, NotFoundError
from preserve.warc.read import open_records

_BLOCK = 1 << 16
_HTTP_TYPES = ("application/http",)


@dataclass(frozen=True, slots=True)
class RecordHead:
    """What an index needs to know about one record, read from the record itself."""

    offset: int
    type: str
    target_uri: str | None
    date: str | None
    content_type: str | None  # the record's Content-Type (WARC header)
    payload_digest: str | None
    http_status: str | None  # response and revisit records with an HTTP head
    http_content_type: str | None  # the HTTP Content-Type of a request or response record


def _open(path: Path, decompressed: bool) -> contextlib.AbstractContextManager[BinaryIO]:
    if decompressed:
        return open_records(path, decompressed=True)
    try:
        return path.open("rb")
    except OSError as exc:
        raise NotFoundError(f"cannot open WARC file {path}: {exc}") from exc


def read_heads(path: Path, offsets: Iterable[int], *,
               decompressed: bool = False) -> Iterator[RecordHead]:
    """The head of the record starting at each offset of ``path``, in the order given
    (``decompressed``: offsets of the decompressed stream of an imported gzip file).

    Raises :class:`~preserve.errors.NotFoundError` if the file cannot be opened and
    :class:`~preserve.errors.ArchiveError` if no readable record starts at an offset.
    """
    with _open(path, decompressed) as handle:
        yield from read_heads_from(handle, offsets, str(path))


def read_heads_from(handle: BinaryIO, offsets: Iterable[int],
                    label: str) -> Iterator[RecordHead]:
    """:func:`read_heads` from an open, seekable WARC file (``label`` names it in errors): a
    WARC file inside a package, say."""
    for offset in offsets:
        with _reading(offset, label):
            handle.seek(offset)
            record = next(iter(ArchiveIterator(handle)), None)
            if record is None:
                raise ArchiveError(f"no WARC record at offset {offset} of {label}")
            head = _head(offset, record)
        yield head


def _head(offset: int, record: Any) -> RecordHead:
    """What an index needs of one warcio record."""
    headers = record.rec_headers
    http = record.http_headers
    is_http = (headers.get_header("Content-Type") or "").startswith(_HTTP_TYPES)
    status = None
    if http is not None and record.rec_type in ("response", "revisit"):
        status = http.get_statuscode()
    return RecordHead(
        offset=offset,
        type=record.rec_type,
        target_uri=headers.get_header("WARC-Target-URI"),
        date=headers.get_header("WARC-Date"),
        content_type=headers.get_header("Content-Type"),
        payload_digest=headers.get_header("WARC-Payload-Digest"),
        http_status=status,
        http_content_type=(http.get_header("Content-Type")
                           if http is not None and is_http else None),
    )


def read_block(path: Path, offset: int, limit: int, *,
               decompressed: bool = False) -> tuple[str, bytes]:
    """The record type and block of the record at ``offset`` (at most ``limit`` bytes).

    Raises :class:`~preserve.errors.ArchiveError` if the record cannot be read or its block is
    longer than ``limit`` (nothing past ``limit`` is read into memory).
    """
    with _open(path, decompressed) as handle:
        return read_block_from(handle, offset, limit, str(path))


def read_block_from(handle: BinaryIO, offset: int, limit: int,
                    label: str) -> tuple[str, bytes]:
    """:func:`read_block` from an open, seekable WARC file (``label`` names it in errors):
    an object in an object store, say."""
    with _reading(offset, label):
        handle.seek(offset)
        record = next(iter(ArchiveIterator(handle, no_record_parse=True)), None)
        if record is None:
            raise ArchiveError(f"no WARC record at offset {offset} of {label}")
        chunks: list[bytes] = []
        size = 0
        while block := record.raw_stream.read(_BLOCK):
            size += len(block)
            if size > limit:
                raise ArchiveError(
                    f"the record at offset {offset} of {label} is larger than {limit} bytes"
                )
            chunks.append(block)
        return record.rec_type, b"".join(chunks)


@contextlib.contextmanager
def _reading(offset: int, label: str) -> Iterator[None]:
    """Turn whatever warcio or zlib raise on a damaged record into one ArchiveError."""
    try:
        yield
    except ArchiveError:
        raise
    except Exception as exc:  # warcio/zlib raise many types on damaged input
        raise ArchiveError(
            f"cannot read the record at offset {offset} of {label}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


__all__ = ["RecordHead", "read_block", "read_block_from", "read_heads", "read_heads_from"]
