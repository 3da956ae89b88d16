"""The ``verify --deep`` checks of one capture, run in a worker process or in-line.

:func:`deep_check` re-reads every record of the capture's WARC file
(:func:`preserve.warc.check_warc`), matches each manifest record by offset (id, type, target,
length, digests), re-hashes a browser capture's screenshot, PDF and rendered DOM records
against the manifest's ``artifacts`` (E216/E217), then re-extracts the document the text came
from, read as the capture read it (:func:`extraction_input`, which bulk re-extraction uses
too: ``extraction.source``, the rendered DOM, else the final response; the input bound the
capture recorded; its HTTP charset) and compares the BLAKE3 of text and comments with the
manifest (an extraction stopped at its time limit, then or now, is W409: not compared). A
response is content-decoded as the capture decoded it: the codings its extractor
settings list (``content_codings``), or, for manifests from before that list, one gzip or
deflate coding; a coding the capture decoded that cannot be decoded here is E408. A
difference is E406, or W407 when the extractor's version, or Python's or a library's the text
depends on, is not what the manifest records (:data:`EXTRACTION_SOFTWARE`). It returns
the findings in the order the audit reports them, plus counts; it touches no shared state, so
captures can be checked in parallel processes (:class:`DeepPool`) and the results merged in
manifest order.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from preserve import warc
from preserve.audit.findings import Code, Finding
from preserve.audit.verify import LEGACY_REEXTRACT_LIMIT, REEXTRACT_LIMIT
from preserve.capture.codings import MAX_CODINGS, content_codings, content_encoding, undecodable
from preserve.capture.provenance import software
from preserve.errors import ArchiveError
from preserve.extract import (
    EXTRACTOR_NAME,
    EXTRACTOR_VERSION,
    TIME_LIMIT_SECONDS,
    extract,
    was_stopped,
)
from preserve.hashing import blake3_hex, warc_digest_to_hex
from preserve.storage.manifest import Manifest, WarcRecordRef
from preserve.workers import process_pool

_NOT_REEXTRACTED_REASONS = ("not HTML", "content coding not decoded")
#: The content codings removed before extraction by the preserve that wrote manifests
#: without a ``content_codings`` extractor setting (one coding at most).
_LEGACY_CODINGS = ("gzip", "x-gzip", "deflate")


@dataclass(slots=True)
class DeepResult:
    """What the deep checks of one capture found."""

    findings: list[Finding] = field(default_factory=list)
    records_checked: int = 0
    texts_reextracted: int = 0

    def add(self, code: Code, path: str, message: str, capture_id: str | None = None,
            **detail: Any) -> None:
        self.findings.append(Finding(code, path, message, capture_id, detail or None))


def deep_check(manifest: Manifest, path: str, parts: str = "records+text") -> DeepResult:
    """Record re-check and/or re-extraction (``parts``: ``records``, ``text`` or both) of one
    capture whose WARC file is at ``path`` (a real path inside the archive, already checked
    to be a regular file)."""
    result = DeepResult()
    if "records" in parts:
        _check_records(result, manifest, Path(path))
        _check_artifacts(result, manifest, Path(path))
    if "text" in parts:
        _check_reextraction(result, manifest, Path(path))
    return result


def _check_records(out: DeepResult, manifest: Manifest, path: Path) -> None:
    """Every record re-read; manifest records matched by offset."""
    cid = manifest.capture_id
    rel = manifest.warc.path
    expected = {r.offset: r for r in manifest.warc.records}
    seen: set[int] = set()
    damaged_at: int | None = None
    try:
        for check in warc.check_warc(path):
            out.records_checked += 1
            record = expected.get(check.offset) if check.length else None
            if record is None:
                if check.problems:
                    damaged_at = check.offset if damaged_at is None else damaged_at
                    out.add(Code.E207, rel, f"offset {check.offset}: "
                            + "; ".join(check.problems), cid, offset=check.offset)
                else:
                    out.add(Code.W215, rel, f"record {check.record_id} ({check.type}) at "
                            f"offset {check.offset} is not in the manifest", cid,
                            offset=check.offset, record_id=check.record_id)
                continue
            seen.add(check.offset)
            compare_record(out, cid, rel, record, check)
    except (OSError, ArchiveError) as exc:
        out.add(Code.E205, rel, f"cannot re-read WARC records: {exc}", cid)
        return
    for offset, record in sorted(expected.items()):
        if offset not in seen:
            after = "" if damaged_at is None or offset < damaged_at else \
                f" (file unreadable from offset {damaged_at})"
            out.add(Code.E210, rel, f"no record {record.id} at offset {offset}{after}",
                    cid, offset=offset, record_id=record.id)


def _check_artifacts(out: DeepResult, manifest: Manifest, path: Path) -> None:
    """Every screenshot/PDF/DOM record re-hashed against the manifest's ``artifacts``."""
    cid = manifest.capture_id
    rel = manifest.warc.path
    offsets = {r.id: r.offset for r in manifest.warc.records}
    for artifact in manifest.artifacts or ():
        offset = offsets.get(artifact.record)
        if offset is None:  # the parser refuses this; kept for defence in depth
            out.add(Code.E216, rel, f"{artifact.kind} record {artifact.record} is not in the "
                    "manifest's record list", cid)
            continue
        try:
            _, digests = warc.read_record_block(path, offset, artifact.record, 0)
        except (OSError, ArchiveError) as exc:
            out.add(Code.E216, rel, f"cannot read the {artifact.kind} record: {exc}", cid,
                    offset=offset, record_id=artifact.record)
            continue
        if (digests.sha256, digests.blake3, digests.size) != (
                artifact.sha256, artifact.blake3, artifact.size):
            out.add(Code.E217, rel, f"the {artifact.kind} record does not match the "
                    "manifest's digests or size", cid, offset=offset,
                    record_id=artifact.record, expected=artifact.sha256, actual=digests.sha256)


def compare_record(out: DeepResult, cid: str, rel: str, record: WarcRecordRef,
                   check: warc.RecordCheck) -> None:
    """One manifest record against what re-reading it found (E211-E214, E207)."""
    where = f"record at offset {check.offset}"
    if check.record_id != record.id:
        out.add(Code.E211, rel, f"{where}: id is {check.record_id}, manifest says "
                f"{record.id}", cid, offset=check.offset)
    differing = {
        name: (mine, theirs) for name, mine, theirs in (
            ("type", record.type, check.type),
            ("target_uri", record.target_uri, check.target_uri),
            ("length", record.length, check.length),
            ("block_digest", _digest_key(record.block_digest),
             _digest_key(check.block_digest)),
            ("payload_digest", _digest_key(record.payload_digest),
             _digest_key(check.payload_digest)),
        ) if mine != theirs
    }
    if differing:
        out.add(Code.E212, rel, f"{where}: {', '.join(sorted(differing))} differ from the "
                "manifest", cid, offset=check.offset,
                fields={k: {"manifest": v[0], "warc": v[1]} for k, v in differing.items()})
    truncated = any("truncated" in p for p in check.problems)
    if check.block_ok is False and not truncated:
        out.add(Code.E213, rel, f"{where}: block does not match WARC-Block-Digest", cid,
                offset=check.offset)
    if check.payload_ok is False and not truncated:
        out.add(Code.E214, rel, f"{where}: payload does not match WARC-Payload-Digest",
                cid, offset=check.offset)
    other = [p for p in check.problems if "digest" not in p or truncated]
    if other:
        out.add(Code.E207, rel, f"{where}: " + "; ".join(other), cid, offset=check.offset)


class ReextractionError(Exception):
    """The document a capture's text came from cannot be read again (E408); ``offset`` is the
    record's, when one was found."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


def extraction_input(manifest: Manifest, path: Path) -> tuple[bytes, str | None] | None:
    """The document the capture extracted its text from, as the extractor was given it:
    (bytes, HTTP charset or None). None if the capture extracted nothing by construction (not
    HTML, or a content coding it could not undo, and no text claimed).

    The document is the rendered DOM (``extraction.source``) or the final response, read up to
    the input bound the capture recorded, content-decoded as the capture decoded it, with the
    charset of the final response's first Content-Type. Raises :class:`ReextractionError`.
    """
    reason = manifest.extraction.reason or ""
    claims_text = manifest.text is not None or manifest.comments is not None
    if not claims_text and (manifest.status == "not-html"
                            or reason.startswith(_NOT_REEXTRACTED_REASONS)):
        return None
    source = manifest.extraction.source
    responses = [r for r in manifest.warc.records if r.type == "response"]
    final = [r for r in responses if r.target_uri == manifest.final_url] or responses
    if source is not None:
        final = [r for r in manifest.warc.records if r.id == source.record]
    if not final:
        raise ReextractionError("no response record to re-extract from")
    record = final[-1]
    limit = _input_limit(manifest)
    stream = manifest.stream_offsets
    try:
        if record.type == "resource":  # a rendered DOM: UTF-8 HTML as the browser made it
            payload, _ = warc.read_record_block(path, record.offset, record.id, limit,
                                                decompressed=stream)
            return payload, "utf-8"
        payload, headers = warc.read_record_payload(path, record.offset, limit,
                                                    decompressed=stream)
        encoding = content_encoding(headers.items())
        if not _decoded_when_made(manifest, encoding):  # the text is of the bytes as stored
            payload, _ = warc.read_record_payload(path, record.offset, limit,
                                                  decompressed=stream, decode=False)
        elif (why := undecodable(encoding)) is not None:
            raise ReextractionError(f"cannot re-extract: the response's content coding "
                                   f"{encoding!r} is not decoded here ({why})", record.offset)
    except (OSError, ArchiveError) as exc:
        raise ReextractionError(f"cannot read the {record.type} record to re-extract: {exc}",
                               record.offset) from exc
    # the capture decided the charset from the final response's first Content-Type
    return payload, _charset(manifest.http.content_type or next(
        (v for k, v in headers.items() if k.lower() == "content-type"), None))


def _check_reextraction(out: DeepResult, manifest: Manifest, path: Path) -> None:
    """Re-extract the document the text came from and compare text/comments hashes."""
    cid = manifest.capture_id
    rel = manifest.warc.path
    try:
        found = extraction_input(manifest, path)
    except ReextractionError as exc:
        detail = {} if exc.offset is None else {"offset": exc.offset}
        out.add(Code.E408, rel, str(exc), cid, **detail)
        return
    if found is None:
        return
    payload, charset = found
    try:
        extraction = extract(payload, manifest.final_url, charset=charset,
                             time_limit=time_limit(manifest))
    except Exception as exc:  # the extractor must not stop the audit; report what broke
        out.add(Code.E408, rel, f"extractor failed: {type(exc).__name__}: {exc}", cid)
        return
    del payload
    if was_stopped(extraction):
        if was_stopped(manifest.extraction) and manifest.text is None \
                and manifest.comments is None:
            return  # stopped then and now: nothing claimed, nothing to compare
        out.add(Code.W409, rel, f"re-extraction {extraction.reason}: the text was not "
                "compared", cid)
        return
    if was_stopped(manifest.extraction) and (extraction.text or extraction.comments):
        out.add(Code.W409, rel, f"the capture's {manifest.extraction.reason}; re-extracted "
                "now it gives text, which is not compared (it is not the capture's)", cid)
        return
    out.texts_reextracted += 1
    changed = (manifest.extractor.version != EXTRACTOR_VERSION
               or manifest.extractor.name != EXTRACTOR_NAME)
    for kind, ref, produced in (("text", manifest.text, extraction.text),
                                ("comments", manifest.comments, extraction.comments_text)):
        expected = ref.blake3 if ref is not None else None
        actual = blake3_hex(produced.encode("utf-8")) if produced else None
        if expected == actual:
            continue
        environment = _environment_change(manifest)  # (only when something differs)
        code = Code.W407 if changed or environment else Code.E406
        out.add(code, ref.path if ref is not None else rel,
                f"re-extracted {kind} differs from the manifest (extractor "
                f"{manifest.extractor.name} {manifest.extractor.version} then, "
                f"{EXTRACTOR_NAME} {EXTRACTOR_VERSION} now"
                + (f"; {environment}" if environment else "") + ")", cid,
                object=kind, expected=expected, actual=actual)


#: What a page's clean text depends on besides the extractor's own code, as the manifest's
#: ``software`` names it: Python (its Unicode database, its regular expressions), the HTML
#: parsers, charset detection and the content decoders.
EXTRACTION_SOFTWARE = ("python", "lxml", "selectolax", "charset-normalizer", "brotlicffi",
                       "backports.zstd")


def _environment_change(manifest: Manifest) -> str | None:
    """Which of :data:`EXTRACTION_SOFTWARE` the capture recorded at another version than this
    machine runs (None: none): its text may then differ without anything being wrong, so a
    difference is W407, not E406. What the capture did not record is no evidence either way
    (manifests from before these were recorded name Python and lxml only)."""
    now = software()  # (cached: found once a process)
    changed = [f"{name} {then} then, {now.get(name, 'absent')} now"
               for name in EXTRACTION_SOFTWARE
               if (then := manifest.software.get(name)) is not None and then != now.get(name)]
    return "; ".join(changed) or None


def _decoded_when_made(manifest: Manifest, encoding: str | None) -> bool:
    """Whether the capture (or import) removed the content codings ``encoding`` names before
    extracting: the codings it could decode are in its extractor settings
    (``content_codings``); without them it is from before br, zstd and stacks were decoded,
    when one gzip or deflate coding was, and an import extracted anything else as stored."""
    codings = content_codings(encoding)
    recorded = manifest.extractor.settings.get("content_codings")
    if isinstance(recorded, list):
        return len(codings) <= MAX_CODINGS and all(coding in recorded for coding in codings)
    return len(codings) <= 1 and all(coding in _LEGACY_CODINGS for coding in codings)


def _input_limit(manifest: Manifest) -> int:
    """The input bound the capture extracted with: what it recorded (never above the largest
    preserve ever used, so a doctored manifest cannot make the audit read more), else the
    bound of the versions that did not record it: 16 MiB for a capture, 3 MiB for an import
    (every import was made under the 3 MiB bound; the first ones did not record it)."""
    limit = manifest.extractor.settings.get("max_input_bytes")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return min(limit, LEGACY_REEXTRACT_LIMIT)
    return REEXTRACT_LIMIT if manifest.imported is not None else LEGACY_REEXTRACT_LIMIT


def time_limit(manifest: Manifest) -> float:
    """The time limit the capture extracted under (recorded since extractor 2.12.0), never
    above this preserve's own, so that a doctored manifest cannot make the audit wait
    longer; else this preserve's."""
    limit = manifest.extractor.settings.get("time_limit_seconds")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit > 0:
        return min(float(limit), TIME_LIMIT_SECONDS)
    return TIME_LIMIT_SECONDS


def _digest_key(label: str | None) -> tuple[str, str] | str | None:
    """A WARC digest label in comparable form (algorithm, hex); unparseable labels as-is."""
    if label is None:
        return None
    try:
        return warc_digest_to_hex(label)
    except ValueError:
        return label


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return charset if isinstance(charset, str) else None


#: WARC files at least this large are re-checked and re-extracted as two parallel jobs.
_SPLIT_BYTES = 4 * 2**20


def _done(function: Any, *args: Any) -> Future[DeepResult]:
    future: Future[DeepResult] = Future()
    try:
        future.set_result(function(*args))
    except BaseException as exc:  # pragma: no cover - deep_check reports, not raises
        future.set_exception(exc)
    return future


class DeepPool:
    """Deep checks in ``workers`` processes, or in the calling thread when ``workers`` is 1.
    :meth:`submit` returns a future.

    The processes are started at once (:func:`preserve.workers.process_pool`), before the
    audit starts any thread, so they are forked unless the caller runs threads of its own.
    """

    def __init__(self, workers: int) -> None:
        self._pool: ProcessPoolExecutor | None = None
        if workers <= 1:
            return
        self._pool = process_pool(workers, preload=[__name__])

    def submit(self, manifest: Manifest, path: Path,
               parts: str = "records+text") -> list[Future[DeepResult]]:
        """The deep checks of one capture, as futures whose findings come in this order.
        In processes, a large capture's record re-check and its re-extraction are two jobs
        (they then run side by side)."""
        if self._pool is None:
            return [_done(deep_check, manifest, os.fspath(path), parts)]
        if manifest.warc.size < _SPLIT_BYTES or parts != "records+text":
            return [self._pool.submit(deep_check, manifest, os.fspath(path), parts)]
        return [self._pool.submit(deep_check, manifest, os.fspath(path), part)
                for part in ("records", "text")]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


__all__ = ["DeepPool", "DeepResult", "ReextractionError", "compare_record", "deep_check",
           "extraction_input", "time_limit"]
