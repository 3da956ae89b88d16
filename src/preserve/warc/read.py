"""Read WARC files back: re-check every record's digests, and read one response payload.

:func:`check_warc` re-reads every record with warcio and verifies block and payload digests,
yielding one :class:`RecordCheck` per record (damage is reported as problems, never raised).
:func:`read_record_payload` returns the content-decoded HTTP payload of one response record
(:func:`read_record_body` also says whether its content codings could be removed).
Every reader takes ``decompressed``: True for an imported gzip file whose members do not each
hold one record, where offsets count bytes of the decompressed stream (reached by
decompressing from the start: slower, but such files are rare). This module does not write
WARC files (see :mod:`preserve.warc.write`).
"""

from __future__ import annotations

import contextlib
import gzip
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, cast

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader
from warcio.recordloader import ArcWarcRecord

from preserve.capture.codings import DecodedBody, content_encoding, decode_chunks
from preserve.errors import ArchiveError, NotFoundError
from preserve.hashing import Digests, DualHasher
from preserve.safe_io import open_binary

_BLOCK = 1 << 16


@dataclass(frozen=True)
class RecordCheck:
    """The result of re-reading one record (or the place where reading broke down)."""

    record_id: str | None
    type: str | None
    offset: int
    length: int
    target_uri: str | None
    block_digest: str | None
    payload_digest: str | None
    block_ok: bool | None  # None: no block digest to check
    payload_ok: bool | None  # None: no payload digest to check
    problems: tuple[str, ...]



class _CutShort(gzip.BadGzipFile):
    """A gzip stream that ends before its end-of-stream marker (not an EOFError, which warcio
    would take for the clean end of the records)."""


class _StrictGzip:
    """A decompressed gzip stream whose premature end raises :class:`_CutShort`."""

    def __init__(self, stream: gzip.GzipFile) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except EOFError as exc:
            raise _CutShort(f"the gzip stream is cut short: {exc}") from exc

    def readline(self, size: int = -1) -> bytes:
        try:
            return self._stream.readline(size)
        except EOFError as exc:
            raise _CutShort(f"the gzip stream is cut short: {exc}") from exc

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._stream.seek(offset, whence)
        except EOFError as exc:
            raise _CutShort(f"the gzip stream is cut short: {exc}") from exc

    def tell(self) -> int:
        return self._stream.tell()


@contextlib.contextmanager
def open_records(path: Path, *, decompressed: bool = False) -> Iterator[BinaryIO]:
    """``path`` opened for reading records: the file itself, or (``decompressed``) its
    decompressed gzip stream, whose offsets are those of the decompressed bytes.
    Raises :class:`~preserve.errors.NotFoundError` if the file cannot be opened."""
    handle = open_binary(path, error=NotFoundError)
    with handle:
        if not decompressed:
            yield handle
            return
        with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
            yield cast(BinaryIO, _StrictGzip(stream))


def _strip_id(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().removeprefix("<").removesuffix(">")


def check_warc(path: Path, *, decompressed: bool = False) -> Iterator[RecordCheck]:
    """Re-read every record of ``path``, verifying digests; one :class:`RecordCheck` each.

    A damaged file (bad gzip, truncated record, unparseable headers) ends the iteration with a
    RecordCheck whose ``problems`` say what broke and where; nothing is raised for damage.
    With ``decompressed``, offsets and lengths are those of the decompressed stream.
    Raises :class:`~preserve.errors.NotFoundError` only if the file cannot be opened.
    """
    with open_records(path, decompressed=decompressed) as handle, \
            open_records(path, decompressed=decompressed) as members:
        gzipped = members.read(2) == b"\x1f\x8b"  # per-record gzip, as preserve writes
        iterator = ArchiveIterator(handle, check_digests=True)
        last_end = 0
        current: ArcWarcRecord | None = None
        try:
            for record in iterator:
                current = record
                while record.raw_stream.read(_BLOCK):
                    pass
                remaining = getattr(record.raw_stream, "limit", 0) or 0
                offset = iterator.get_record_offset()
                length = iterator.get_record_length()
                last_end = offset + length
                check = _record_check(record, offset, length, truncated=remaining > 0)
                member_problem = None
                if gzipped and not _member_ended_cleanly(iterator):
                    member_problem = _gzip_member_problem(members, offset, length)
                if member_problem is not None:
                    check = replace(
                        check,
                        block_ok=False if check.block_ok is not None else None,
                        problems=(*check.problems, member_problem),
                    )
                yield check
                current = None
        except Exception as exc:  # warcio/zlib raise many types on damaged input; report it
            yield _damage(current, last_end, exc)
            return
        if decompressed:
            try:
                members.seek(last_end)
                rest = members.read(_BLOCK)
            except Exception as exc:  # gzip/zlib errors on a damaged stream
                yield _damage(None, last_end, exc)
                return
            size = last_end + len(rest)
        else:
            size = path.stat().st_size
        if size == 0:
            yield RecordCheck(None, None, 0, 0, None, None, None, None, None, ("file is empty",))
            return
        members.seek(last_end)
        if last_end < size and not (size - last_end <= 4 and not members.read().strip()):
            # (an uncompressed WARC ends with the CRLF CRLF of its last record: not debris)
            trailing = (
                f"{size - last_end} bytes after the last complete record are not a readable "
                "WARC record (truncated file or foreign data)"
            )
            yield RecordCheck(
                None, None, last_end, size - last_end, None, None, None, None, None, (trailing,)
            )


def _member_ended_cleanly(iterator: ArchiveIterator) -> bool:
    """True if the gzip member of the record just read ended with a valid trailer.

    zlib checks a gzip member's CRC-32 and size as it inflates and sets ``eof`` only after
    both matched, so warcio's own decompressor already knows; only when it does not say so
    is the member inflated a second time to find out what is wrong.
    """
    if getattr(iterator, "next_line", None):  # bytes after the record inside its member
        return False
    reader = getattr(iterator, "reader", None)
    decompressor = getattr(reader, "decompressor", None)
    return bool(getattr(decompressor, "eof", False))


def _gzip_member_problem(handle: BinaryIO, offset: int, length: int) -> str | None:
    """Check that ``length`` bytes at ``offset`` are exactly one complete gzip member.

    warcio reads the content of a member without insisting on its trailer (CRC-32 and size),
    so a file cut inside the last eight bytes of a member would otherwise pass unnoticed.
    """
    handle.seek(offset)
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    left = length
    try:
        while left > 0:
            block = handle.read(min(_BLOCK, left))
            if not block:
                return f"gzip member at offset {offset} is cut short by the end of the file"
            left -= len(block)
            while block:
                inflater.decompress(block, _BLOCK)
                block = inflater.unconsumed_tail
                if inflater.eof:
                    break
            if inflater.eof and (left or inflater.unused_data):
                return f"gzip member at offset {offset} ends before the record does"
    except zlib.error as exc:
        return f"gzip member at offset {offset} is corrupt: {exc}"
    if not inflater.eof:
        return f"gzip member at offset {offset} is incomplete (no gzip trailer)"
    return None


def _record_check(
    record: ArcWarcRecord, offset: int, length: int, *, truncated: bool
) -> RecordCheck:
    headers = record.rec_headers
    block_digest = headers.get_header("WARC-Block-Digest")
    payload_digest = headers.get_header("WARC-Payload-Digest")
    problems = list(record.digest_checker.problems) if record.digest_checker else []
    if truncated:
        problems.append("record is shorter than its Content-Length (truncated)")
    missing = [
        name
        for name in ("WARC-Record-ID", "WARC-Type", "WARC-Date", "Content-Length")
        if headers.get_header(name) is None
    ]
    if missing:
        problems.append("WARC header lacks " + ", ".join(missing))
    block_bad = truncated or any("block digest" in p for p in problems)
    payload_bad = truncated or any("payload digest" in p for p in problems)
    payload_checked = payload_digest is not None and record.rec_type not in ("revisit", "warcinfo")
    return RecordCheck(
        record_id=_strip_id(headers.get_header("WARC-Record-ID")),
        type=record.rec_type,
        offset=offset,
        length=length,
        target_uri=headers.get_header("WARC-Target-URI"),
        block_digest=block_digest,
        payload_digest=payload_digest,
        block_ok=None if block_digest is None else not block_bad,
        payload_ok=None if not payload_checked else not payload_bad,
        problems=tuple(problems),
    )


def _damage(record: ArcWarcRecord | None, offset: int, exc: Exception) -> RecordCheck:
    headers = record.rec_headers if record is not None else None
    problem = f"unreadable at or after offset {offset}: {type(exc).__name__}: {exc}".strip()
    return RecordCheck(
        record_id=_strip_id(headers.get_header("WARC-Record-ID")) if headers else None,
        type=record.rec_type if record is not None else None,
        offset=offset,
        length=0,
        target_uri=headers.get_header("WARC-Target-URI") if headers else None,
        block_digest=headers.get_header("WARC-Block-Digest") if headers else None,
        payload_digest=headers.get_header("WARC-Payload-Digest") if headers else None,
        block_ok=False if record is not None else None,
        payload_ok=None,
        problems=(problem,),
    )


def read_record_payload(path: Path, offset: int, limit: int, *, decompressed: bool = False,
                        decode: bool = True) -> tuple[bytes, Mapping[str, str]]:
    """The HTTP payload of the response record at ``offset``, content-decoded (unless not
    ``decode``: as stored), at most ``limit`` bytes, and that response's HTTP headers (repeated
    names joined with ``, ``).

    Undecodable content (unknown coding, corrupt data) comes back raw (see
    :func:`read_record_body` to tell). Raises :class:`~preserve.errors.NotFoundError` if there
    is no response record at ``offset`` and :class:`~preserve.errors.ArchiveError` if the
    record cannot be read.
    """
    body, headers = read_record_body(path, offset, limit, decompressed=decompressed,
                                     decode=decode)
    return body.data, headers


def read_record_body(path: Path, offset: int, limit: int, *, decompressed: bool = False,
                     decode: bool = True) -> tuple[DecodedBody, Mapping[str, str]]:
    """:func:`read_record_payload`, with whether the content codings were removed (and if
    not, why) as :class:`~preserve.capture.codings.DecodedBody` says."""
    with open_records(path, decompressed=decompressed) as handle:
        try:
            handle.seek(offset)
            record = next(iter(ArchiveIterator(handle)), None)
            if record is None or record.rec_type != "response" or record.http_headers is None:
                raise NotFoundError(f"no HTTP response record at offset {offset} of {path}")
            headers: dict[str, str] = {}
            for name, value in record.http_headers.headers:
                existing = next((k for k in headers if k.lower() == name.lower()), None)
                if existing is None:
                    headers[name] = value
                else:
                    headers[existing] += ", " + value

            stream = record.raw_stream
            if (record.http_headers.get_header("transfer-encoding") or "").lower() == "chunked":
                stream = ChunkedDataReader(stream)  # a WARC from a tool that kept the framing
            decoded = decode_chunks(
                iter(lambda: stream.read(_BLOCK), b""),
                content_encoding(record.http_headers.headers) if decode else None,
                limit,
            )
        except NotFoundError:
            raise
        except Exception as exc:  # warcio/zlib raise many types on damaged input
            raise ArchiveError(
                f"cannot read the record at offset {offset} of {path}: {type(exc).__name__}: {exc}"
            ) from exc
    return decoded, headers


def _record_at(handle: BinaryIO, path: Path, offset: int) -> ArcWarcRecord:
    handle.seek(offset)
    record = next(iter(ArchiveIterator(handle)), None)
    if record is None:
        raise NotFoundError(f"no WARC record at offset {offset} of {path}")
    return record


def read_record_block(path: Path, offset: int, record_id: str,
                      limit: int, *, decompressed: bool = False) -> tuple[bytes, Digests]:
    """The first ``limit`` bytes of the block of the record at ``offset`` (a ``resource`` or
    ``metadata`` record: its content as written), and the digests of the whole block.

    Raises :class:`~preserve.errors.NotFoundError` if the record there is not ``record_id``,
    :class:`~preserve.errors.ArchiveError` if it cannot be read.
    """
    with open_records(path, decompressed=decompressed) as handle:
        try:
            record = _record_at(handle, path, offset)
            found = _strip_id(record.rec_headers.get_header("WARC-Record-ID"))
            if found != record_id:
                raise NotFoundError(f"the record at offset {offset} of {path} is {found}, "
                                    f"not {record_id}")
            hasher = DualHasher()
            head = bytearray()
            while block := record.raw_stream.read(_BLOCK):
                hasher.update(block)
                if len(head) < limit:
                    head += block[: limit - len(head)]
        except NotFoundError:
            raise
        except Exception as exc:  # warcio/zlib raise many types on damaged input
            raise ArchiveError(
                f"cannot read the record at offset {offset} of {path}: {type(exc).__name__}: {exc}"
            ) from exc
    return bytes(head), hasher.digests()


__all__ = [
    "RecordCheck",
    "check_warc",
    "open_records",
    "read_record_block",
    "read_record_body",
    "read_record_payload",
]
