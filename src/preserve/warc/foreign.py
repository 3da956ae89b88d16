"""Read WARC files that other tools wrote, for ``preserve import``: every record checked.

:func:`scan_warc` reads a foreign WARC file once, start to end, and returns what an import
needs of each record (:class:`ForeignRecord`: ids, links, offsets, digests, the HTTP head,
the warcinfo fields), or raises:

- :class:`~preserve.errors.ImportInputError` when the file is not a WARC file at all, or is
  beyond what preserve reads: a digest algorithm it does not know, an ``application/http``
  record under a target URI that is not http(s) whose payload digest warcio (which parses
  HTTP only under http(s) URIs) cannot check as the standard means it, more than
  :data:`MAX_RECORDS` records, a record head (WARC plus HTTP header lines) over
  :data:`MAX_HEAD_BYTES`;
- :class:`~preserve.errors.ImportIntegrityError` when the file fails its own checks: a block or
  payload digest that does not match, a record id used twice, a record shorter than its
  Content-Length, a gzip member cut short or corrupt (its trailer, CRC-32 and size, are checked
  too), a record not followed by its blank lines, bytes after the last record that are not a
  record.

The file's *framing* is found on the way: ``gzip-members`` (each record its own gzip member,
as preserve and most crawlers write: offsets and lengths are those of the members),
``plain`` (uncompressed: offsets of the records in the file) or ``gzip-stream`` (a gzip file
whose members do not each hold one record, such as a whole WARC gzipped at once: offsets and
lengths count bytes of the decompressed stream; see :func:`preserve.warc.read.open_records`).

Memory stays bounded: a header line is at most :data:`MAX_LINE` bytes (a longer one is
refused, never cut) and a record's head at most :data:`MAX_HEAD_BYTES`, bodies are streamed
(only a warcinfo block's first :data:`MAX_WARCINFO_BYTES` are kept), and what is kept of each
record goes to a :class:`RecordStore` (a SQLite file in the import's spool) as it is read,
indexed by record id and by the records it names, so that memory does not grow with the
number of records; their count and what is kept of heads are bounded. This module reads; it
decides nothing about pages or manifests (see :mod:`preserve.importing`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import marshal
import sqlite3
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, overload

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import DecompressingBufferedReader
from warcio.exceptions import ArchiveLoadFailed

from preserve.errors import ImportInputError, ImportIntegrityError
from preserve.hashing import Digests, DualHasher
from preserve.safe_io import open_binary
from preserve.storage.manifest import recordable_warc_digest
from preserve.warc.read import _gzip_member_problem, _strip_id, open_records

FRAMING_MEMBERS = "gzip-members"
FRAMING_PLAIN = "plain"
FRAMING_STREAM = "gzip-stream"

#: Most records read from one file (each costs a few hundred bytes of spool space).
MAX_RECORDS = 200_000
#: Longest header line read at once, and most bytes of one record's WARC and HTTP heads.
MAX_LINE = 64 * 1024
MAX_HEAD_BYTES = 1024 * 1024
#: Bytes of a warcinfo block kept (its fields: software, operator, ...).
MAX_WARCINFO_BYTES = 64 * 1024
#: Most bytes of header strings kept for all the records of one file together (URIs, ids,
#: the HTTP headers an import uses, warcinfo fields): heads are read bounded one at a time,
#: and this bounds what is kept of them, however well the file compresses.
MAX_KEPT_BYTES = 64 * 1024 * 1024
#: A file's records may declare at most this many times its size in bytes, plus
#: :data:`EXPANSION_FLOOR` (gzip reaches about 1,000 times on runs of one byte; crawls of web
#: pages compress 5 to 20 times): reading a decompression bomb whole would take time in
#: proportion to what it expands to; it is refused from the heads of its records instead.
MAX_EXPANSION = 100
#: Most blank lines read between two records (a writer puts two; a few more are tolerated).
MAX_BLANK_LINES = 16
_CUT_BLOCK = 1 << 16
EXPANSION_FLOOR = 2**30
#: The HTTP headers a record keeps (an import reads no other).
KEPT_HTTP_HEADERS = frozenset({"content-type", "location", "transfer-encoding"})
_BLOCK = 1 << 16
_REQUIRED = ("WARC-Record-ID", "WARC-Type", "WARC-Date", "Content-Length")
#: Record types an HTTP message is in, whose WARC-Target-URI is mandatory (WARC 1.1, 5.3;
#: others it is mandatory in too, resource and conversion, are still read without one)
_TARGETED = frozenset({"response", "request", "revisit"})


@dataclass(frozen=True, slots=True)
class HttpHead:
    """The HTTP head of a request or response record, as the file stores it."""

    first: str  # response: "HTTP/1.1"; request: the method
    rest: str  # response: "200 OK"; request: "/path HTTP/1.1"
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive)."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def status(self) -> int | None:
        """A response's status code (None if the status line has none)."""
        code = self.rest.split(" ", 1)[0]
        return int(code) if code.isascii() and code.isdigit() and 100 <= int(code) <= 999 else None

    @property
    def reason(self) -> str:
        parts = self.rest.split(" ", 1)
        return parts[1].strip() if len(parts) > 1 else ""


@dataclass(frozen=True, slots=True)
class ForeignRecord:
    """One record of a foreign WARC file: what it claims, where it is, what it hashes to."""

    record_id: str  # WARC-Record-ID without the angle brackets
    type: str
    target_uri: str | None
    date: str | None  # WARC-Date as written
    offset: int  # see the module docstring (framing)
    length: int
    block_digest: str | None
    payload_digest: str | None
    refers_to: str | None
    concurrent_to: tuple[str, ...]
    warcinfo_id: str | None
    content_type: str | None  # the record's own Content-Type
    ip_address: str | None
    truncated: str | None  # WARC-Truncated: the writing tool cut it short
    http: HttpHead | None
    payload_sha256: str  # hex: the bytes after the HTTP head (the whole block without one)
    payload_size: int
    fields: tuple[tuple[str, str], ...]  # a warcinfo record's application/warc-fields
    #: WARC-Segment-Number: the record is one segment of a longer one (continued in
    #: ``continuation`` records)
    segment: str | None = None

    def field(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.fields if k.lower() == wanted), None)


_SCHEMA = """
CREATE TABLE records (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
                      uri TEXT, data BLOB NOT NULL);
CREATE TABLE links (target TEXT NOT NULL, n INTEGER NOT NULL);
CREATE INDEX links_by_target ON links (target, n);
"""


class RecordStore(Sequence[ForeignRecord]):
    """The records of one file in file order, kept in a SQLite database (a file, or memory
    when no path is given) rather than as objects: one is read back when it is asked for.

    Besides its position, a record is found by its id (:meth:`by_id`) and by the ids it
    names in WARC-Refers-To and WARC-Concurrent-To (:meth:`linked`). The file is this
    process's own, in its spool; nothing is made durable."""

    def __init__(self, path: Path | None = None) -> None:
        self._db = sqlite3.connect(":memory:" if path is None else str(path),
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN")
        self._count = 0

    def add(self, record: ForeignRecord) -> int | None:
        """Keep ``record`` after the others; if a record of the same id is kept already,
        keep nothing and return that record's offset."""
        try:
            self._db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?)",
                             (self._count, record.record_id, record.type, record.target_uri,
                              _pack(record)))
        except sqlite3.IntegrityError:
            earlier = self.by_id(record.record_id)
            assert earlier is not None
            return earlier.offset
        targets = sorted({t for t in (record.refers_to, *record.concurrent_to) if t is not None})
        self._db.executemany("INSERT INTO links VALUES (?, ?)",
                             [(target, self._count) for target in targets])
        self._count += 1
        return None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> ForeignRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[ForeignRecord]: ...

    def __getitem__(self, index: int | slice) -> ForeignRecord | list[ForeignRecord]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        row = self._db.execute("SELECT data FROM records WHERE n = ?", (index,)).fetchone()
        return _unpack(row[0])

    def __iter__(self) -> Iterator[ForeignRecord]:
        for (data,) in self._db.execute("SELECT data FROM records ORDER BY n"):
            yield _unpack(data)

    def by_id(self, record_id: str) -> ForeignRecord | None:
        row = self._db.execute("SELECT data FROM records WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else _unpack(row[0])

    def linked(self, target: str) -> list[ForeignRecord]:
        """The records that name ``target`` in WARC-Refers-To or WARC-Concurrent-To, in file
        order (each once)."""
        return [_unpack(data) for (data,) in self._db.execute(
            "SELECT records.data FROM links JOIN records ON records.n = links.n "
            "WHERE links.target = ? ORDER BY links.n", (target,))]

    def nearest_before(self, index: int, count: int, type_: str,
                       target_uri: str | None) -> ForeignRecord | None:
        """The nearest record of type ``type_`` for ``target_uri`` among the ``count``
        records before position ``index``, if there is one."""
        row = self._db.execute(
            "SELECT data FROM records WHERE n >= ? AND n < ? AND type = ? AND uri IS ? "
            "ORDER BY n DESC LIMIT 1", (max(0, index - count), index, type_, target_uri)
        ).fetchone()
        return None if row is None else _unpack(row[0])

    def close(self) -> None:
        self._db.close()


def _pack(record: ForeignRecord) -> bytes:
    http = None if record.http is None else (record.http.first, record.http.rest,
                                             record.http.headers)
    return marshal.dumps((
        record.record_id, record.type, record.target_uri, record.date, record.offset,
        record.length, record.block_digest, record.payload_digest, record.refers_to,
        record.concurrent_to, record.warcinfo_id, record.content_type, record.ip_address,
        record.truncated, http, record.payload_sha256, record.payload_size, record.fields,
        record.segment))


def _unpack(data: bytes) -> ForeignRecord:
    values = list(marshal.loads(data))
    if values[14] is not None:
        values[14] = HttpHead(*values[14])
    return ForeignRecord(*values)


@dataclass(frozen=True, slots=True)
class ForeignWarc:
    """A scanned file: its framing and its records (close it to release the store)."""

    framing: str
    records: RecordStore

    def close(self) -> None:
        self.records.close()

    def __enter__(self) -> ForeignWarc:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _NotMembersError(Exception):
    """The gzip file is not one member per record: read it again as a stream."""


class _HeadTooLargeError(Exception):
    pass


class _BoundedReader(DecompressingBufferedReader):  # type: ignore[misc]
    """warcio's reader with header lines bounded: at most :data:`MAX_LINE` bytes each and
    :data:`MAX_HEAD_BYTES` of lines between two reads of a body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0

    def readline(self, length: int | None = None) -> bytes:
        # warcio's readline(length) may return part of a line short of both the newline and
        # ``length`` (it miscounts across its 16 KiB buffer): read on until one of them, so
        # that a header is never silently cut, and refuse a line longer than MAX_LINE.
        want = MAX_LINE + 1 if length is None or length > MAX_LINE else length
        line = b""
        while len(line) < want and not line.endswith(b"\n"):
            part: bytes = super().readline(want - len(line))
            if not part:
                break
            line += part
        if len(line) > MAX_LINE:
            raise _HeadTooLargeError(f"a header line is longer than {MAX_LINE} bytes")
        self.head_bytes += len(line)
        if self.head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLargeError(f"a record head is larger than {MAX_HEAD_BYTES} bytes")
        return line

    def read(self, length: int | None = None) -> bytes:
        self.head_bytes = 0
        data: bytes = super().read(length)
        return data


def sniff(path: Path) -> str:
    """``"gzip"``, ``"warc"`` (uncompressed), ``"zip"`` or raise ImportInputError."""
    with open_binary(path, error=ImportInputError, follow_symlinks=True) as handle:
        magic = handle.read(8)
    if magic.startswith(b"\x1f\x8b"):
        return "gzip"
    if magic.startswith(b"WARC/"):
        return "warc"
    if magic.startswith(b"PK\x03\x04"):
        return "zip"
    raise ImportInputError(f"not a WARC or WACZ file (it starts with {magic!r})")


def scan_warc(path: Path, *, name: str | None = None,
              store: Path | None = None) -> ForeignWarc:
    """Read and check every record of the WARC file ``path`` (see the module docstring);
    ``name`` is what error messages call the file (default: its file name). The records are
    kept in the new SQLite file ``store`` (in memory without one); close the result."""
    label = name or path.name
    try:
        kind = sniff(path)
    except ImportInputError as exc:  # (a member of a WACZ: say which)
        raise ImportInputError(f"{label}: {exc}") from exc
    if kind == "zip":
        raise ImportInputError(f"{label}: a zip file, not a WARC file")
    framings = [FRAMING_PLAIN] if kind == "warc" else [FRAMING_MEMBERS, FRAMING_STREAM]
    for framing in framings:
        if store is not None:
            store.unlink(missing_ok=True)  # what a first try as gzip members kept
        records = RecordStore(store)
        try:
            _scan(path, framing, label, records)
        except _NotMembersError:
            records.close()
            continue
        except (ImportInputError, ImportIntegrityError) as exc:
            records.close()
            cut = _gzip_cut_at(path) if kind != "warc" else None
            if cut is not None:  # what the damage looked like is not what it is
                raise ImportIntegrityError(
                    f"{label}: the gzip data is cut short: it ends at offset {cut} inside a "
                    "gzip member (a truncated file)") from exc
            raise
        except BaseException:
            records.close()
            raise
        return ForeignWarc(framing, records)
    raise AssertionError("a gzip stream is always readable as one")


def _scan(path: Path, framing: str, label: str, records: RecordStore) -> None:
    decompressed = framing == FRAMING_STREAM
    last_end = 0
    warnings = io.StringIO()  # warcio writes "record not followed by newline" to stderr
    with open_records(path, decompressed=decompressed) as handle, \
            open_records(path, decompressed=decompressed) as members, \
            contextlib.redirect_stderr(warnings):
        iterator = ArchiveIterator(handle, check_digests=True)
        iterator.reader = _BoundedReader(iterator.fh, block_size=iterator.reader.block_size)
        _tolerate_no_target(iterator)
        _bound_blank_lines(iterator)
        where = 0
        kept = 0
        declared = 0  # bytes the records' Content-Length fields add up to
        size = path.stat().st_size
        bound = MAX_EXPANSION * size + EXPANSION_FLOOR
        try:
            for record in iterator:
                if len(records) >= MAX_RECORDS:
                    raise ImportInputError(f"more than {MAX_RECORDS} records")
                declared += max(0, record.length or 0)
                if declared > bound:
                    raise ImportInputError(
                        f"{label}: its records up to offset {where} declare more than "
                        f"{bound} bytes, over {MAX_EXPANSION} times the file's {size} bytes "
                        "(a decompression bomb?); preserve does not read that far")
                found = _read_record(record, iterator, label)
                first = records.add(found)
                if first is not None:  # the ids links name would be ambiguous
                    raise ImportIntegrityError(
                        f"{label}: record id {_shown(found.record_id)} is used twice (at "
                        f"offsets {first} and {found.offset}); a WARC record id is unique, and "
                        "what refers to it (WARC-Concurrent-To, WARC-Refers-To) is ambiguous")
                kept += _kept_bytes(found)
                if kept > MAX_KEPT_BYTES:
                    raise ImportInputError(
                        f"{label}: the record heads up to offset {found.offset} hold more "
                        f"than {MAX_KEPT_BYTES} bytes of URIs, ids and header fields")
                where = found.offset + found.length
                last_end = where
                if iterator.err_count:
                    raise ImportIntegrityError(
                        f"{label}: the record before offset {where} is not followed by "
                        "its blank lines (a wrong Content-Length?)")
        except (ImportInputError, _NotMembersError):
            raise
        except (_HeadTooLargeError, _TooManyBlankLinesError) as exc:
            raise ImportInputError(f"{label}: at offset {where}: {exc}") from exc
        except ArchiveLoadFailed as exc:
            if "non-chunked gzip" in str(exc) and framing == FRAMING_MEMBERS:
                raise _NotMembersError from exc
            raise _unreadable(label, records, where, exc) from exc
        except Exception as exc:  # warcio/zlib/gzip raise many types on damaged input
            raise _unreadable(label, records, where, exc) from exc
        if not records:
            raise ImportInputError(f"{label}: no WARC record in the file")
        if framing == FRAMING_MEMBERS:  # once warcio found one record per member
            for found in records:
                problem = _gzip_member_problem(members, found.offset, found.length)
                if problem is not None:
                    raise ImportIntegrityError(f"{label}: record {found.record_id} at "
                                               f"offset {found.offset}: {problem}")
        _check_tail(path, label, members, last_end, decompressed)


class _TooManyBlankLinesError(ValueError):
    pass


def _bound_blank_lines(iterator: ArchiveIterator) -> None:
    """Refuse more than :data:`MAX_BLANK_LINES` blank lines between two records. A record
    ends with two (CRLF CRLF); warcio reads each further one with its own ``readline``: a
    gzip member of a few hundred bytes holding a megabyte of newlines cost a second of CPU,
    outside every bound on the records' declared lengths. Otherwise as warcio's own: a first
    line that is not blank (the record was not followed by its blank lines) is counted and
    warned of."""

    def bounded() -> tuple[bytes | None, int]:
        empty_size = 0
        for count in range(MAX_BLANK_LINES + 1):
            line = iterator.reader.readline()
            if not line:
                return None, empty_size
            if line.rstrip():
                if count:
                    return line, empty_size
                offset = iterator.fh.tell() - iterator.reader.rem_length()
                sys.stderr.write(iterator.INC_RECORD.format(offset, line))
                iterator.err_count += 1
            empty_size += len(line)
        raise _TooManyBlankLinesError(f"more than {MAX_BLANK_LINES} blank lines after a "
                                      "record (a WARC writer puts two)")

    iterator._consume_blanklines = bounded


def _gzip_cut_at(path: Path) -> int | None:
    """The file's size when its gzip data ends inside a member (a truncated file, as
    ``gzip -t`` finds it), else None: read again only once an import has failed, so that a
    file cut short is said to be cut short, not to lack its WARC headers or records."""
    try:
        with open_binary(path, error=ImportInputError, follow_symlinks=True) as handle:
            inflater, pending = zlib.decompressobj(31), b""
            while pending or (pending := handle.read(_CUT_BLOCK)):
                if inflater.eof:  # the next member
                    inflater = zlib.decompressobj(31)
                inflater.decompress(pending, _CUT_BLOCK)  # output bounded, and dropped
                pending = inflater.unconsumed_tail or (
                    inflater.unused_data if inflater.eof else b"")
            return None if inflater.eof else handle.tell()
    except (ImportInputError, OSError, zlib.error):
        return None  # damaged otherwise, or unreadable: the first error stands


def _tolerate_no_target(iterator: ArchiveIterator) -> None:
    """Let warcio read a request or response record that lacks WARC-Target-URI (it calls
    ``startswith`` on the missing value), so that :func:`_read_record` names what is missing
    instead of an AttributeError from inside warcio."""
    loader = iterator.loader
    load_http_headers = loader.load_http_headers

    def tolerant(rec_type: str, uri: str | None, stream: Any, length: int | None) -> Any:
        return load_http_headers(rec_type, "" if uri is None else uri, stream, length)

    loader.load_http_headers = tolerant


def _unreadable(label: str, records: RecordStore, where: int,
                exc: Exception) -> ImportInputError:
    text = "".join(c if c.isprintable() and ord(c) < 128 else "?" for c in str(exc))
    detail = f"{type(exc).__name__}: {' '.join(text.split())[:200]}"
    if isinstance(exc, gzip.BadGzipFile | zlib.error | EOFError):  # damaged compression
        return ImportIntegrityError(f"{label}: the gzip data is damaged or cut short at or "
                                    f"after offset {where} ({detail})")
    if not records:
        return ImportInputError(f"{label}: not a readable WARC file ({detail})")
    return ImportIntegrityError(f"{label}: unreadable at or after offset {where} ({detail})")


def _check_tail(path: Path, label: str, members: BinaryIO, last_end: int,
                decompressed: bool) -> None:
    """Bytes after the last record must be nothing but the blank lines that end it."""
    try:
        members.seek(last_end)
        rest = members.read(8)
    except Exception as exc:  # a gzip stream cut short: EOFError, BadGzipFile, zlib.error
        raise ImportIntegrityError(f"{label}: the gzip stream is damaged or cut short "
                                   f"after offset {last_end} ({type(exc).__name__}: {exc})") \
            from exc
    if rest.strip() or len(rest) > 4:
        size = "" if decompressed else f" of {path.stat().st_size}"
        raise ImportIntegrityError(f"{label}: the bytes after offset {last_end}{size} are "
                                   "not a complete WARC record (truncated file or foreign data)")


def _read_record(record: Any, iterator: ArchiveIterator, label: str) -> ForeignRecord:
    headers = record.rec_headers
    payload = hashlib.sha256()
    size = 0
    keep = bytearray()
    is_info = record.rec_type == "warcinfo"
    while block := record.raw_stream.read(_BLOCK):
        payload.update(block)
        size += len(block)
        if is_info and len(keep) < MAX_WARCINFO_BYTES:
            keep += block[: MAX_WARCINFO_BYTES - len(keep)]
    remaining = getattr(record.raw_stream, "limit", 0) or 0
    offset = iterator.get_record_offset()
    length = iterator.get_record_length()
    record_id = _strip_id(headers.get_header("WARC-Record-ID"))
    name = f"{label}: record {record_id or '?'} at offset {offset}"
    missing = [h for h in _REQUIRED if headers.get_header(h) is None]
    if record.rec_type in _TARGETED and headers.get_header("WARC-Target-URI") is None:
        missing.append("WARC-Target-URI")
    if missing:
        raise ImportIntegrityError(f"{name}: the WARC header lacks {', '.join(missing)}")
    assert record_id is not None
    declared = headers.get_header("Content-Length").strip()
    if not (declared.isascii() and declared.isdigit()):
        raise ImportIntegrityError(f"{name}: its Content-Length {_shown(declared)} is not a "
                                   "whole number of bytes (the records cannot be framed)")
    if remaining > 0:
        raise ImportIntegrityError(f"{name}: shorter than its Content-Length (truncated)")
    problems = list(record.digest_checker.problems) if record.digest_checker else []
    unknown = [p for p in problems if "unknown hash algorithm" in p]
    if unknown:
        raise ImportInputError(f"{name}: {unknown[0]} (cannot be checked)")
    for field in ("WARC-Block-Digest", "WARC-Payload-Digest"):
        value = headers.get_header(field)
        if value is not None and not recordable_warc_digest(value.strip()):
            # warcio compares other forms by their length (32 hex digits of MD5 read as
            # base32, lower-case base32 refused): a genuine file would be called damaged
            raise ImportInputError(
                f"{name}: its {field} {_shown(value)} is not in a form preserve checks "
                "(sha1, sha256 or sha512; upper-case base32 or lower-case hex)")
    if problems and _unparsed_http_message(record):
        raise ImportInputError(
            f"{name}: an HTTP message whose WARC-Target-URI does not start 'http:' or "
            f"'https:' in lower case ({_shown(record.rec_headers.get_header('WARC-Target-URI'))}"
            "): preserve does not parse it, so it cannot check its payload digest")
    if problems:
        raise ImportIntegrityError(f"{name}: {'; '.join(problems)}")
    http = None
    if record.http_headers is not None:
        status = record.http_headers
        http = HttpHead(first=str(status.protocol or ""), rest=str(status.statusline or ""),
                        headers=tuple((str(k), str(v)) for k, v in status.headers
                                      if str(k).lower() in KEPT_HTTP_HEADERS))
    return ForeignRecord(
        record_id=record_id,
        type=str(record.rec_type),
        target_uri=headers.get_header("WARC-Target-URI"),
        date=headers.get_header("WARC-Date"),
        offset=offset,
        length=length,
        block_digest=headers.get_header("WARC-Block-Digest"),
        payload_digest=headers.get_header("WARC-Payload-Digest"),
        refers_to=_strip_id(headers.get_header("WARC-Refers-To")),
        concurrent_to=tuple(v for k, v in _all(headers, "WARC-Concurrent-To")),
        warcinfo_id=_strip_id(headers.get_header("WARC-Warcinfo-ID")),
        content_type=headers.get_header("Content-Type"),
        ip_address=headers.get_header("WARC-IP-Address"),
        truncated=headers.get_header("WARC-Truncated"),
        http=http,
        payload_sha256=payload.hexdigest(),
        payload_size=size,
        fields=_warc_fields(bytes(keep)) if is_info else (),
        segment=headers.get_header("WARC-Segment-Number"),
    )


#: The target URI prefixes under which warcio parses an HTTP message (case-sensitive).
_WARCIO_HTTP_SCHEMES = ("http:", "https:")


def _unparsed_http_message(record: Any) -> bool:
    """An ``application/http`` request or response that warcio left unparsed (it parses HTTP
    only under target URIs starting ``http:`` or ``https:``, in lower case): its payload
    digest, which the WARC standard takes over the HTTP entity, was checked over the whole
    block instead."""
    content_type = (record.content_type or "").split(";", 1)[0].strip().lower()
    target = record.rec_headers.get_header("WARC-Target-URI") or ""
    return (record.http_headers is None and record.rec_type in ("request", "response")
            and content_type == "application/http"
            and not target.startswith(_WARCIO_HTTP_SCHEMES))


def _shown(value: str | None, limit: int = 200) -> str:
    """A header value for a message: printable ASCII, cut short."""
    text = "".join(c if c.isprintable() and ord(c) < 128 else "?" for c in value or "")
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _kept_bytes(record: ForeignRecord) -> int:
    """About how many bytes of strings ``record`` keeps (what :data:`MAX_KEPT_BYTES` bounds)."""
    strings = [record.record_id, record.type, record.target_uri, record.date,
               record.block_digest, record.payload_digest, record.refers_to, record.warcinfo_id,
               record.content_type, record.ip_address, record.truncated, record.segment,
               *record.concurrent_to]
    if record.http is not None:
        strings += [record.http.first, record.http.rest]
        strings += [part for pair in record.http.headers for part in pair]
    strings += [part for pair in record.fields for part in pair]
    return sum(len(s) for s in strings if s is not None) + 100 * (1 + len(record.concurrent_to))


def _all(headers: Any, name: str) -> Iterator[tuple[str, str]]:
    wanted = name.lower()
    for key, value in headers.headers:
        if str(key).lower() == wanted:
            stripped = _strip_id(str(value))
            if stripped:
                yield str(key), stripped


def _warc_fields(data: bytes) -> tuple[tuple[str, str], ...]:
    """``name: value`` lines of an application/warc-fields block (at most 200 kept)."""
    fields = []
    for line in data.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and not name.startswith((" ", "\t")):
            fields.append((name.strip(), value.strip()))
        if len(fields) >= 200:
            break
    return tuple(fields)


def block_digests(path: Path, offset: int, *, decompressed: bool = False,
                  name: str | None = None) -> Digests:
    """SHA-256 and BLAKE3 of the whole block (HTTP head included) of the record at
    ``offset``: what an imported response's ``wire_sha256`` records."""
    with open_records(path, decompressed=decompressed) as handle:
        handle.seek(offset)
        record = next(iter(ArchiveIterator(handle, no_record_parse=True)), None)
        if record is None:
            raise ImportIntegrityError(f"{name or path.name}: no record at offset {offset}")
        hasher = DualHasher()
        while block := record.raw_stream.read(_BLOCK):
            hasher.update(block)
        return hasher.digests()


__all__ = [
    "EXPANSION_FLOOR",
    "FRAMING_MEMBERS",
    "FRAMING_PLAIN",
    "FRAMING_STREAM",
    "MAX_EXPANSION",
    "MAX_HEAD_BYTES",
    "MAX_KEPT_BYTES",
    "MAX_RECORDS",
    "ForeignRecord",
    "ForeignWarc",
    "HttpHead",
    "RecordStore",
    "block_digests",
    "scan_warc",
    "sniff",
]
