"""Write one capture as a WARC 1.1 file, and read WARC files back to check them.

Writing (:func:`write_capture`) creates the file exclusively and writes, each record its own
gzip member: ``warcinfo``; per hop a ``request`` and a ``response`` (``WARC-Concurrent-To``
links the request to its response); one ``metadata`` record (``application/json``, the
provenance document, ``WARC-Refers-To`` the final response, target ``urn:preserve:provenance:``
+ final URL); one ``metadata`` record per HTTPS hop holding the peer's leaf certificate
(``application/pkix-cert``, target ``urn:preserve:certificate:`` + hop URL); and, when clean
text is given, a ``conversion`` record (``text/plain; charset=utf-8``, target ``urn:text:`` +
final URL) referring to the final response. (Why not the page URL: see PROVENANCE_URI_PREFIX.)
:func:`write_page` writes a browser capture the same way, with more records: a request and a
response per exchange the page made (``WARC-Truncated`` on a response cut short), one
certificate record per upstream TLS connection, the interception CA's certificate and the
browser log (``metadata``), the screenshot, PDF and rendered DOM (``resource`` records,
``WARC-Concurrent-To`` the page's response) and the conversion record referring to the DOM
record the text came from. Each record kind is written by its own small function.
Bodies stream from their spool files; the file's bytes are hashed as written; the file is
flushed and fsynced before returning. Record offsets and lengths are those of the gzip members.

Transfer codings (warcio issue #74, iipc/warc-specifications#22). WARC 1.1 defines the payload
of an HTTP response record as the entity body *with any transfer coding removed*, and
``warcio check`` computes the payload digest over the bytes stored after the HTTP header block.
Keeping chunked framing in the record would make those disagree (and make the digest depend on
chunk boundaries). So a response record stores the response head exactly as received, except
that when a transfer coding was removed the ``Transfer-Encoding`` header line is renamed to
``X-Preserve-Original-Transfer-Encoding`` (same value), and so is a ``Content-Length`` line
beside it (to ``X-Preserve-Original-Content-Length``: the transfer coding overrode it, RFC 9112
section 6.3, and on replay it would cut the body); after the head comes the entity body
(content coding such as gzip kept). The payload digest is then right per WARC 1.1, ``warcio
check`` passes, and replay tools do not try to de-chunk a body that is no longer chunked. The
exact wire bytes, framing included, are attested by ``Exchange.wire_sha256``/``wire_size``,
which the caller keeps in the manifest.

Reading: :func:`check_warc` re-reads every record with warcio and verifies block and payload
digests, yielding one :class:`RecordCheck` per record (damage is reported as problems, never
raised). :func:`read_record_payload` returns the content-decoded HTTP payload of one response
record. This module is the only one that imports warcio.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import BinaryIO

from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from preserve._version import __version__
from preserve.capture.exchange import Exchange, FetchResult
from preserve.capture.page import (
    BROWSER_LOG_URI_PREFIX,
    INTERCEPTION_CA_URI_PREFIX,
    Artifact,
    PageCapture,
    browser_log_json,
)
from preserve.capture.provenance import default_operator, host_name
from preserve.errors import ArchiveError, StorageError
from preserve.hashing import Digests, DualHasher, sha256_base32

WARC_VERSION = "WARC/1.1"
CONFORMS_TO = "http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"
RENAMED_TRANSFER_ENCODING = b"X-Preserve-Original-Transfer-Encoding"
RENAMED_CONTENT_LENGTH = b"X-Preserve-Original-Content-Length"
#: Target URIs of the records about a page. They must not be the page URL itself: replay tools
#: (pywb, cdxj-indexer) index every record under its WARC-Target-URI, and a JSON or text
#: record indexed under the page URL would be replayed in place of the page. ``urn:text:`` is
#: the convention of Webrecorder's tools for extracted text.
PROVENANCE_URI_PREFIX = "urn:preserve:provenance:"
CERTIFICATE_URI_PREFIX = "urn:preserve:certificate:"
TEXT_URI_PREFIX = "urn:text:"
_TRANSFER_ENCODING_LINE = re.compile(rb"(?im)^transfer-encoding(?=[ \t]*:)")
_CONTENT_LENGTH_LINE = re.compile(rb"(?im)^content-length(?=[ \t]*:)")
_BLOCK = 1 << 16


@dataclass(frozen=True)
class RecordRef:
    """Where one record sits in a written WARC file and what it claims about itself."""

    record_id: str  # urn:uuid:…, without angle brackets
    type: str
    target_uri: str | None
    offset: int  # of the record's gzip member in the file
    length: int  # bytes of that gzip member
    block_digest: str | None  # "sha256:BASE32", as in the WARC header (None: an imported
    # record that carries none)
    payload_digest: str | None
    refers_to: str | None
    content_type: str | None


@dataclass(frozen=True)
class WarcWriteResult:
    records: tuple[RecordRef, ...]
    digests: Digests  # of the whole file as written


# --- writing ---------------------------------------------------------------------------------


#: zlib level of each record's gzip member. Level 2 (zlib's fast strategy) costs a third of
#: level 6's CPU (gzip's default; 1.0 against 2.6-2.8 ms for a capture of a 30 KB page)
#: for ~7 % more bytes; WARC readers don't care which level wrote a member.
GZIP_LEVEL = 2
#: Bytes of a record's WARC header beyond its fields' names and values (separators, the
#: version line, warcio's own fields), when the window of its member is chosen.
_HEAD_ALLOWANCE = 512


def _window_bits(size: int) -> int:
    """zlib window bits for a gzip member of at most ``size`` bytes of input: a window no
    larger than the input loses no match and is far cheaper to set up (zlib allocates and
    clears buffers in proportion to it: ~60 µs for the default 32 KiB window, ~15 µs for
    4 KiB). Readers inflate any member with their 32 KiB window (RFC 1951); the gzip format
    does not record the window the writer used."""
    return min(zlib.MAX_WBITS, max(9, (size - 1).bit_length()))


class _HashingFile:
    """Write-through wrapper that hashes and counts every byte written to the file."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hasher = DualHasher()
        self.position = 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.hasher.update(data)
        self.position += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


class _BlockReader(io.RawIOBase):
    """A record block read as a stream: leading bytes, then a file, verified as it is read."""

    def __init__(self, prefix: bytes, body: Path | None, body_sha256: str | None) -> None:
        self._prefix = prefix
        self._body = body.open("rb") if body is not None else None
        self._expected = body_sha256
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            n = len(self._prefix) if size < 0 else size
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        if self._body is None:
            return b""
        out = self._body.read(_BLOCK if size < 0 else size)
        self._hash.update(out)
        if not out and self._expected is not None and self._hash.hexdigest() != self._expected:
            raise StorageError(f"spool file {self._body.name} changed while being archived")
        return out

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
        super().close()


def stored_response_head(exchange: Exchange) -> bytes:
    """The response head as stored in the WARC (see the module docstring)."""
    if exchange.transfer_encoding is None:
        return exchange.response_head
    head = _TRANSFER_ENCODING_LINE.sub(RENAMED_TRANSFER_ENCODING, exchange.response_head)
    # a Content-Length beside the transfer coding did not frame the body (RFC 9112 6.3) and
    # must not frame it on replay either, where it would cut the body and leave the rest to
    # be read as a further response
    return _CONTENT_LENGTH_LINE.sub(RENAMED_CONTENT_LENGTH, head)


def _file_digests(prefix: bytes, body: Path, expected_sha256: str) -> tuple[str, str]:
    """(block digest, payload digest) of ``prefix + body``, checking the body's own hash."""
    block = hashlib.sha256(prefix)
    payload = hashlib.sha256()
    with body.open("rb") as f:
        while chunk := f.read(_BLOCK):
            block.update(chunk)
            payload.update(chunk)
    if payload.hexdigest() != expected_sha256:
        raise StorageError(f"spool file {body} does not match the body hash recorded at capture")
    return sha256_base32(block.digest()), sha256_base32(payload.digest())


#: A spooled body up to this size is read into memory once: hashed for both digests (its
#: SHA-256 checked against the hash taken at capture) and written from those same bytes, so
#: it is neither opened twice nor hashed a third time while it is written.
_IN_MEMORY = 1 << 20


def _spooled_block(prefix: bytes, body: Path, size: int,
                   expected_sha256: str) -> tuple[_BlockReader, str, str]:
    """(block reader, block digest, payload digest) of ``prefix`` + the spooled ``body``,
    the body checked against the hash recorded at capture (StorageError otherwise)."""
    if size > _IN_MEMORY:
        block_digest, payload_digest = _file_digests(prefix, body, expected_sha256)
        return _BlockReader(prefix, body, expected_sha256), block_digest, payload_digest
    with body.open("rb") as f:
        data = f.read(size + 1)
    payload = hashlib.sha256(data)
    if len(data) != size or payload.hexdigest() != expected_sha256:
        raise StorageError(f"spool file {body} does not match the body hash recorded at capture")
    block = hashlib.sha256(prefix)
    block.update(data)
    return (_BlockReader(prefix + data, None, None), sha256_base32(block.digest()),
            sha256_base32(payload.digest()))


def _warc_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.cache
def software() -> str:
    """The warcinfo record's ``software`` field: preserve's version and those of the
    libraries that write the records (found once a process)."""
    parts = [f"preserve/{__version__}"]
    for name in ("warcio", "httpcore", "h11"):
        try:
            parts.append(f"{name}/{importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            continue
    return " ".join(parts)


def _one_line(value: str) -> str:
    return " ".join(str(value).split())


class _GzipMember:
    """One gzip member around one record (warcio's own wrapper always uses level 9)."""

    def __init__(self, out: _HashingFile, level: int, size: int) -> None:
        """``size``: at most how many bytes will be written to the member."""
        self.out = out
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, _window_bits(size) + 16)

    def write(self, data: bytes) -> int:
        self.out.write(self.compressor.compress(data))
        return len(data)

    def flush(self) -> None:
        """End the member: warcio flushes once, after the record's closing CRLF CRLF."""
        self.out.write(self.compressor.flush())


class _Writer:
    def __init__(self, out: _HashingFile) -> None:
        self.out = out
        # gzip=False: warcio writes plain records into the per-record gzip member we open.
        self.warc = WARCWriter(out, gzip=False, warc_version=WARC_VERSION)
        self.refs: list[RecordRef] = []
        self.warcinfo_id: str | None = None

    def write(
        self,
        record_type: str,
        *,
        record_id: str,
        date: str,
        content_type: str,
        block: _BlockReader,
        length: int,
        block_digest: str,
        payload_digest: str | None,
        target_uri: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        refers_to: str | None = None,
    ) -> RecordRef:
        headers: list[tuple[str, str]] = [
            ("WARC-Type", record_type),
            ("WARC-Record-ID", f"<{record_id}>"),
            ("WARC-Date", date),
        ]
        if target_uri is not None:
            headers.append(("WARC-Target-URI", target_uri))
        if self.warcinfo_id is not None:
            headers.append(("WARC-Warcinfo-ID", f"<{self.warcinfo_id}>"))
        if refers_to is not None:
            headers.append(("WARC-Refers-To", f"<{refers_to}>"))
        headers += extra or []
        headers.append(("WARC-Block-Digest", block_digest))
        if payload_digest is not None:
            headers.append(("WARC-Payload-Digest", payload_digest))
        headers += [("Content-Type", content_type), ("Content-Length", str(length))]
        record = ArcWarcRecord(
            "warc",
            record_type,
            StatusAndHeaders("", headers, protocol=WARC_VERSION),
            block,
            None,  # no parsed HTTP headers: the block is written byte for byte
            content_type,
            length,
        )
        offset = self.out.position
        head_size = _HEAD_ALLOWANCE + sum(len(k) + len(v) for k, v in headers)
        member = _GzipMember(self.out, GZIP_LEVEL, length + head_size)
        self.warc.out = member
        try:
            self.warc.write_record(record)
        finally:
            block.close()
        ref = RecordRef(
            record_id=record_id,
            type=record_type,
            target_uri=target_uri,
            offset=offset,
            length=self.out.position - offset,
            block_digest=block_digest,
            payload_digest=payload_digest,
            refers_to=refers_to,
            content_type=content_type,
        )
        self.refs.append(ref)
        return ref

    def write_bytes(
        self,
        record_type: str,
        data: bytes,
        *,
        content_type: str,
        record_id: str,
        date: str,
        payload: bool = True,
        target_uri: str | None = None,
        refers_to: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> RecordRef:
        """A record whose block is ``data``; its payload (if any) is the whole block."""
        digest = sha256_base32(hashlib.sha256(data).digest())
        return self.write(
            record_type,
            record_id=record_id,
            date=date,
            content_type=content_type,
            block=_BlockReader(data, None, None),
            length=len(data),
            block_digest=digest,
            payload_digest=digest if payload else None,
            target_uri=target_uri,
            refers_to=refers_to,
            extra=extra,
        )

    def write_hop(self, exchange: Exchange, *, request_id: str | None = None,
                  response_id: str | None = None, truncated: str | None = None,
                  request_truncated: str | None = None) -> RecordRef:
        """A request and its response record; ids may be given (browser captures choose
        them in advance); ``truncated`` becomes ``WARC-Truncated`` on the response,
        ``request_truncated`` on the request (a body the server did not take whole)."""
        request_id, response_id = request_id or _warc_id(), response_id or _warc_id()
        ip = [("WARC-IP-Address", exchange.remote_ip)] if exchange.remote_ip else []
        request_block, request_length, request_digest, request_payload_digest = (
            _request_block(exchange))
        self.write(
            "request",
            record_id=request_id,
            date=exchange.started,
            content_type="application/http; msgtype=request",
            block=request_block,
            length=request_length,
            block_digest=request_digest,
            payload_digest=request_payload_digest,
            target_uri=exchange.url,
            extra=[*ip, ("WARC-Concurrent-To", f"<{response_id}>"),
                   *([("WARC-Truncated", request_truncated)] if request_truncated else [])],
        )
        head = stored_response_head(exchange)
        block, block_digest, payload_digest = _spooled_block(
            head, exchange.body_path, exchange.body_size, exchange.body_sha256)
        protocol = [("WARC-Protocol", exchange.http_version.lower())]
        if exchange.tls is not None:
            protocol.append(("WARC-Protocol", _tls_protocol(exchange.tls.version)))
            protocol.append(("WARC-Cipher-Suite", exchange.tls.cipher))
        if truncated is not None:
            protocol.append(("WARC-Truncated", truncated))
        return self.write(
            "response",
            record_id=response_id,
            date=exchange.started,
            content_type="application/http; msgtype=response",
            block=block,
            length=len(head) + exchange.body_size,
            block_digest=block_digest,
            payload_digest=payload_digest,
            target_uri=exchange.url,
            extra=[*ip, *protocol],
        )


def _request_block(exchange: Exchange) -> tuple[_BlockReader, int, str, str]:
    """(block reader, length, block digest, payload digest) of a request record: the
    request as sent, its body from memory or from the file it was spooled to."""
    sent = exchange.request_bytes
    body_path, body_sha256 = exchange.request_body_path, exchange.request_body_sha256
    if body_path is None or body_sha256 is None:
        head_end = sent.find(b"\r\n\r\n")
        payload = sent[head_end + 4 :] if head_end >= 0 else b""
        return (_BlockReader(sent, None, None), len(sent),
                sha256_base32(hashlib.sha256(sent).digest()),
                sha256_base32(hashlib.sha256(payload).digest()))
    block, block_digest, payload_digest = _spooled_block(
        sent, body_path, exchange.request_body_size, body_sha256)
    return block, len(sent) + exchange.request_body_size, block_digest, payload_digest


def _tls_protocol(version: str) -> str:
    """``TLSv1.3`` -> ``tls/1.3`` (the WARC-Protocol spelling)."""
    match = re.fullmatch(r"TLSv(\d(?:\.\d)?)", version)
    return f"tls/{match.group(1)}" if match else version.lower()


@contextlib.contextmanager
def _new_warc(dest: Path, fsync: bool = True) -> Iterator[_Writer]:
    """A :class:`_Writer` on a new file at ``dest`` (which must not exist); the file is
    flushed (and with ``fsync`` fsynced: else the commit makes it durable) at the end, removed
    again on any failure."""
    try:
        handle = dest.open("xb")
    except OSError as exc:
        raise StorageError(f"cannot create WARC file {dest}: {exc}") from exc
    out = _HashingFile(handle)
    try:
        with handle:
            yield _Writer(out)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
    except BaseException as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write WARC file {dest}: {exc}") from exc
        raise


def _write_warcinfo(writer: _Writer, dest: Path, date: str, warcinfo: Mapping[str, str]) -> None:
    fields = {
        "software": software(),
        "host": host_name(),
        "operator": default_operator(),
        "format": "WARC File Format 1.1",
        "conformsTo": CONFORMS_TO,
        **warcinfo,
    }
    info = "".join(f"{_one_line(k)}: {_one_line(v)}\r\n" for k, v in fields.items())
    info_ref = writer.write_bytes(
        "warcinfo",
        info.encode("utf-8"),
        content_type="application/warc-fields",
        payload=False,
        record_id=_warc_id(),
        date=date,
        extra=[("WARC-Filename", dest.name)],
    )
    writer.warcinfo_id = info_ref.record_id


def _write_provenance(writer: _Writer, metadata_json: bytes, final_url: str,
                      final_response: str) -> None:
    writer.write_bytes(
        "metadata",
        metadata_json,
        content_type="application/json",
        record_id=_warc_id(),
        date=_now(),
        target_uri=PROVENANCE_URI_PREFIX + final_url,
        refers_to=final_response,
    )


def _write_certificate(writer: _Writer, exchange: Exchange, response_id: str) -> None:
    """The peer's leaf certificate of the connection that carried ``exchange``, if any (also
    one preserve could not describe: the DER as sent)."""
    tls = exchange.tls
    der_path = None if tls is None else tls.der_path or (
        tls.certificate.der_path if tls.certificate is not None else None)
    if der_path is None:
        return
    writer.write_bytes(
        "metadata",
        der_path.read_bytes(),  # a certificate is a few KiB
        content_type="application/pkix-cert",
        record_id=_warc_id(),
        date=exchange.started,
        target_uri=CERTIFICATE_URI_PREFIX + exchange.url,
        refers_to=response_id,
    )


def _write_conversion(writer: _Writer, text: bytes, final_url: str, refers_to: str) -> None:
    writer.write_bytes(
        "conversion",
        text,
        content_type="text/plain; charset=utf-8",
        record_id=_warc_id(),
        date=_now(),
        target_uri=TEXT_URI_PREFIX + final_url,
        refers_to=refers_to,
    )


def write_capture(
    dest: Path,
    result: FetchResult,
    *,
    warcinfo: Mapping[str, str],
    metadata_json: bytes,
    conversion_text: bytes | None,
    conversion_refers_to: str = "final-response",
    fsync: bool = True,
) -> WarcWriteResult:
    """Write ``result`` to a new WARC file at ``dest`` (which must not exist).

    ``warcinfo`` adds to (or overrides) the warcinfo fields software, host, operator, format
    and conformsTo. ``conversion_refers_to`` is ``"final-response"`` or a record id
    (``urn:uuid:…``) already in this file. On failure the partial file is removed.
    """
    with _new_warc(dest, fsync) as writer:
        _write_warcinfo(writer, dest, result.started, warcinfo)
        responses = [writer.write_hop(exchange) for exchange in result.exchanges]
        final = responses[-1]
        _write_provenance(writer, metadata_json, result.final_url, final.record_id)
        for exchange, response in zip(result.exchanges, responses, strict=True):
            _write_certificate(writer, exchange, response.record_id)
        if conversion_text is not None:
            refers = final.record_id
            if conversion_refers_to != "final-response":
                known = {ref.record_id for ref in writer.refs}
                if conversion_refers_to not in known:
                    raise ArchiveError(
                        f"conversion_refers_to {conversion_refers_to!r} is not in {dest}"
                    )
                refers = conversion_refers_to
            _write_conversion(writer, conversion_text, result.final_url, refers)
    return WarcWriteResult(records=tuple(writer.refs), digests=writer.out.hasher.digests())


# --- browser captures --------------------------------------------------------------------------


def _write_interception_ca(writer: _Writer, page: PageCapture, final_response: str) -> None:
    """The certificate of the CA the recording proxy showed the browser (this machine's own)."""
    writer.write_bytes(
        "metadata",
        page.ca_certificate_der,
        content_type="application/pkix-cert",
        record_id=page.ca_record_id,
        date=page.started,
        target_uri=INTERCEPTION_CA_URI_PREFIX + page.page_url,
        refers_to=final_response,
    )


def _write_browser_log(writer: _Writer, page: PageCapture, final_response: str) -> None:
    """Console messages, failed requests and notes of the browser capture (JSON)."""
    writer.write_bytes(
        "metadata",
        browser_log_json(page),
        content_type="application/json",
        record_id=page.log_record_id,
        date=page.ended,
        target_uri=BROWSER_LOG_URI_PREFIX + page.page_url,
        refers_to=final_response,
    )


def _write_artifact(writer: _Writer, artifact: Artifact, date: str,
                    final_response: str) -> None:
    """A screenshot, PDF or rendered DOM as a ``resource`` record, streamed from its file."""
    digest = sha256_base32(bytes.fromhex(artifact.sha256))
    writer.write(
        "resource",
        record_id=artifact.record_id,
        date=date,
        content_type=artifact.media_type,
        block=_BlockReader(b"", artifact.path, artifact.sha256),
        length=artifact.size,
        block_digest=digest,
        payload_digest=digest,
        target_uri=artifact.target_uri,
        extra=[("WARC-Concurrent-To", f"<{final_response}>")],
    )


def write_page(
    dest: Path,
    page: PageCapture,
    *,
    warcinfo: Mapping[str, str],
    metadata_json: bytes,
    conversion_text: bytes | None,
    fsync: bool = True,
) -> WarcWriteResult:
    """Write a browser capture to a new WARC file at ``dest`` (see the module docstring).

    Record ids come from ``page``; the conversion record refers to the rendered DOM record
    when there is one, else to the page's final response. On failure the file is removed.
    """
    final_response = page.final_response_record_id
    with _new_warc(dest, fsync) as writer:
        _write_warcinfo(writer, dest, page.started, warcinfo)
        for proxied in page.exchanges:
            writer.write_hop(proxied.exchange, request_id=proxied.request_record_id,
                             response_id=proxied.response_record_id,
                             truncated=proxied.truncated,
                             request_truncated=proxied.request_truncated)
        _write_provenance(writer, metadata_json, page.main.final_url, final_response)
        certified: set[int] = set()
        for proxied in page.exchanges:
            if proxied.connection not in certified:
                certified.add(proxied.connection)
                _write_certificate(writer, proxied.exchange, proxied.response_record_id)
        _write_interception_ca(writer, page, final_response)
        _write_browser_log(writer, page, final_response)
        for artifact in page.artifacts:
            _write_artifact(writer, artifact, page.ended, final_response)
        if conversion_text is not None:
            dom = page.dom
            _write_conversion(writer, conversion_text, page.main.final_url,
                              dom.record_id if dom is not None else final_response)
    return WarcWriteResult(records=tuple(writer.refs), digests=writer.out.hasher.digests())


__all__ = [
    "CERTIFICATE_URI_PREFIX",
    "PROVENANCE_URI_PREFIX",
    "RENAMED_CONTENT_LENGTH",
    "RENAMED_TRANSFER_ENCODING",
    "TEXT_URI_PREFIX",
    "RecordRef",
    "WarcWriteResult",
    "stored_response_head",
    "write_capture",
    "write_page",
]
