"""``Archive(root)``: one archive on disk, and the capture pipeline that fills it.

A capture runs fetch → extract → WARC → text store → manifest, in that order, and is
committed only when its manifest is linked into ``manifests/``. Everything before that lives in
``archive/tmp/`` or is removed again on failure, so no manifest ever points at partial data.
The commit itself (WARC into place, text objects, manifest, log entry) runs under the archive
lock so that concurrent captures are totally ordered.

This module composes the other modules; it does not speak HTTP, parse HTML, write WARC bytes
or decide what an audit finding is.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve import errors
from preserve._lazy import lazy_module
from preserve.storage.layout import (
    ArchiveLayout,
    fsync_dir,
    is_capture_id,
    makedirs_durable,
    new_capture_id,
)
from preserve.storage.text_store import StoredObject, TextStore

if TYPE_CHECKING:
    import filelock

    from preserve import integrity, log, warc
    from preserve.audit.findings import Report
    from preserve.capture import fetch, provenance
    from preserve.capture.exchange import Exchange, FetchResult
    from preserve.extract import Extraction
    from preserve.storage import manifest
    from preserve.storage.url_index import UrlIndex
else:  # imported when first used: ``import preserve`` and the CLI start fast
    filelock = lazy_module("filelock")
    integrity = lazy_module("preserve.integrity")
    log = lazy_module("preserve.log")
    warc = lazy_module("preserve.warc")
    fetch = lazy_module("preserve.capture.fetch")
    provenance = lazy_module("preserve.capture.provenance")
    manifest = lazy_module("preserve.storage.manifest")

#: The most decoded HTML handed to the extractor (the one bounded in-memory exception; the
#: extraction of it peaks at about 8x this). Recorded in the manifest's extractor settings
#: (``max_input_bytes``), which ``verify --deep`` re-extracts with; equal to
#: ``preserve.audit.verify.REEXTRACT_LIMIT`` (a test keeps them equal).
EXTRACT_LIMIT = 3 * 2**20
#: How long a capture waits for another process's commit to finish.
LOCK_TIMEOUT = 120.0

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


@dataclass(frozen=True)
class CaptureOptions:
    """How to capture: network limits and policy, and who is capturing."""

    fetch: fetch.FetchOptions = field(
        default_factory=lambda: fetch.FetchOptions())  # noqa: PLW0108 - imports on first use
    operator: str | None = None


@dataclass(frozen=True)
class CaptureResult:
    """What one committed capture produced."""

    capture_id: str
    requested_url: str
    final_url: str
    http_status: int
    status: str  # "ok" | "http-error" | "not-html" | "no-text"
    title: str | None
    text_blake3: str | None
    text_size: int
    reason: str | None
    manifest_path: str
    manifest_blake3: str
    manifest_sha256: str
    warc_path: str
    started: str
    ended: str

    @property
    def ok(self) -> bool:
        """True when the server answered with a non-error status."""
        return self.http_status < 400

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "requested_url": self.requested_url,
            "final_url": self.final_url,
            "http_status": self.http_status,
            "status": self.status,
            "title": self.title,
            "text_blake3": self.text_blake3,
            "text_size": self.text_size,
            "reason": self.reason,
            "manifest": {
                "path": self.manifest_path,
                "blake3": self.manifest_blake3,
                "sha256": self.manifest_sha256,
            },
            "warc_path": self.warc_path,
            "started": self.started,
            "ended": self.ended,
        }


@dataclass(frozen=True)
class CaptureSummary:
    """One line of ``preserve list``."""

    capture_id: str
    requested_url: str
    final_url: str
    started: str
    http_status: int
    status: str
    title: str | None
    text_blake3: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "capture_id": self.capture_id,
            "requested_url": self.requested_url,
            "final_url": self.final_url,
            "started": self.started,
            "http_status": self.http_status,
            "status": self.status,
            "title": self.title,
            "text_blake3": self.text_blake3,
        }


class Archive:
    """An archive rooted at ``root`` (``archive/`` and ``manifests/`` below it)."""

    def __init__(
        self,
        root: str | os.PathLike[str] = ".",
        *,
        key: str | os.PathLike[str] | None = None,
        tsa_url: str | None = None,
    ) -> None:
        """``key``: the signing key file (default: ``$PRESERVE_KEY`` or the config dir);
        ``tsa_url``: an RFC 3161 timestamp authority for checkpoints (or ``$PRESERVE_TSA``)."""
        self.root = Path(root)
        self.layout = ArchiveLayout(self.root)
        self.store = TextStore(self.layout)
        self.key_path = Path(key) if key is not None else None
        self.tsa_url = tsa_url

    def __repr__(self) -> str:
        return f"Archive({str(self.root)!r})"

    @functools.cached_property
    def url_index(self) -> UrlIndex:
        """The URL -> capture ids index (made on first use)."""
        from preserve.storage.url_index import UrlIndex  # noqa: PLC0415 - start-up time

        return UrlIndex(self.layout)

    # --- capture -----------------------------------------------------------------------------

    def init(self, *, key_name: str | None = None) -> integrity.KeyInfo:
        """Create the layout, the integrity log and (unless there is one) a signing key."""
        self._ensure_layout()
        with self._lock():
            return integrity.init(self.root, key_name=key_name, key_path=self.key_path)

    def capture(
        self, url: str, options: CaptureOptions | None = None, *, checkpoint: bool = True
    ) -> CaptureResult:
        """Capture ``url``; returns when the capture is committed, raises if nothing was.

        Raises :class:`~preserve.errors.CaptureError` subclasses for network and input
        problems and :class:`~preserve.errors.StorageError` when the archive can't be written.
        An HTTP error status is not an exception: it is kept as evidence (``status``).
        The manifest is appended to the integrity log and, when ``checkpoint`` is true and the
        archive's signing key is at hand, a signed checkpoint is written (a batch can pass
        False and call :meth:`checkpoint` once at the end).
        """
        options = options or CaptureOptions()
        fetch.parse_url(url)  # reject bad input before touching the disk
        self._ensure_layout()
        now = datetime.now(UTC)
        capture_id = new_capture_id(now)
        spool = self.layout.tmp_dir / capture_id
        # Held for the whole capture: ``repair`` removes only spool dirs whose lock is free.
        in_progress = filelock.FileLock(spool_lock_path(spool), timeout=0)
        try:
            with in_progress:
                try:
                    makedirs_durable(spool)
                    result = fetch.fetch(url, spool, options.fetch)
                    return self._commit(capture_id, now, result, spool, options, checkpoint)
                finally:
                    shutil.rmtree(spool, ignore_errors=True)
        except filelock.Timeout as exc:  # a capture id collision: astronomically unlikely
            raise errors.StorageError(f"capture {capture_id} is already in progress") from exc
        except OSError as exc:
            raise errors.StorageError(f"cannot write to archive {self.root}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                spool_lock_path(spool).unlink()

    def _ensure_layout(self) -> None:
        try:
            self.layout.ensure_dirs()
            if not integrity.has_log(self.root):
                with self._lock():  # a writable open of the log drops a concurrent append
                    log.init_log(self.root)
        except OSError as exc:
            raise errors.StorageError(f"cannot create archive at {self.root}: {exc}") from exc

    def _commit(
        self,
        capture_id: str,
        now: datetime,
        result: FetchResult,
        spool: Path,
        options: CaptureOptions,
        checkpoint: bool,
    ) -> CaptureResult:
        from preserve.extract import (  # noqa: PLC0415 - lxml: only when capturing
            EXTRACTOR_NAME,
            EXTRACTOR_SETTINGS,
            EXTRACTOR_VERSION,
        )

        final = result.final
        extraction, not_html = _extract(final)
        status = _status(final.status, not_html, extraction)
        extractor_info = {
            "name": EXTRACTOR_NAME,
            "version": EXTRACTOR_VERSION,
            "settings": {**EXTRACTOR_SETTINGS, "max_input_bytes": EXTRACT_LIMIT},
        }
        operator = options.operator or provenance.default_operator()
        document = provenance.capture_provenance(
            result, capture_id=capture_id, operator=operator, extractor=extractor_info
        )
        text_bytes = extraction.text.encode("utf-8") if extraction.text else None
        comments_bytes = (
            extraction.comments_text.encode("utf-8") if extraction.comments_text else None
        )
        warc_rel = self.layout.warc_rel_for(capture_id, now)
        warc_tmp = spool / "capture.warc.gz"
        written = warc.write_capture(
            warc_tmp,
            result,
            warcinfo={
                "host": document["host"],
                "operator": operator,
                "http-header-user-agent": options.fetch.user_agent,
            },
            metadata_json=json.dumps(document, indent=2, sort_keys=True).encode("utf-8"),
            conversion_text=text_bytes,
        )
        with self._lock():
            warc_path = self.root / warc_rel
            makedirs_durable(warc_path.parent)
            os.link(warc_tmp, warc_path)  # fails if it exists: never overwrite
            fsync_dir(warc_path.parent)
            try:
                text_ref = self.store.put(text_bytes) if text_bytes else None
                comments_ref = self.store.put(comments_bytes) if comments_bytes else None
                document.update(
                    schema=manifest.SCHEMA,
                    status=status,
                    warc={
                        "path": warc_rel,
                        "size": written.digests.size,
                        "blake3": written.digests.blake3,
                        "sha256": written.digests.sha256,
                        "records": [_record_json(r) for r in written.records],
                    },
                    text=_text_json(text_ref),
                    comments=_text_json(comments_ref),
                    extraction={
                        "title": extraction.title,
                        "byline": extraction.byline,
                        "published": extraction.published,
                        "language": extraction.language,
                        "reason": not_html or extraction.reason,
                    },
                    previous=self.url_index.captures_of(result.requested_url),
                )
                built = manifest.manifest_from_dict(document)
                ref = manifest.write_manifest(self.layout, built)
            except BaseException:
                with contextlib.suppress(OSError):
                    warc_path.unlink()
                raise
            # Committed. What follows indexes and logs it; a failure here must not be reported
            # as "nothing committed" (verify then shows the capture as E304, not in the log).
            try:
                self.url_index.add(capture_id, result.requested_url)
                integrity.record_capture(self.root, capture_id)
                if checkpoint:
                    integrity.checkpoint(self.root, self._signer(), self.tsa_url)
            except (OSError, errors.PreserveError) as exc:
                raise errors.StorageError(
                    f"capture {capture_id} is committed, but indexing, logging or signing it "
                    f"failed: {exc}"
                ) from exc
        return CaptureResult(
            capture_id=capture_id,
            requested_url=result.requested_url,
            final_url=result.final_url,
            http_status=final.status,
            status=status,
            title=extraction.title,
            text_blake3=text_ref.blake3 if text_ref else None,
            text_size=text_ref.size if text_ref else 0,
            reason=not_html or extraction.reason,
            manifest_path=self.layout.manifest_rel_for(capture_id),
            manifest_blake3=ref.blake3,
            manifest_sha256=ref.sha256,
            warc_path=warc_rel,
            started=result.started,
            ended=result.ended,
        )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the archive lock; a timeout becomes :class:`~preserve.errors.LockTimeoutError`."""
        lock = filelock.FileLock(self.layout.lock_path, timeout=LOCK_TIMEOUT)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise errors.LockTimeoutError(
                f"another preserve process holds {self.layout.lock_path} "
                f"(waited {LOCK_TIMEOUT:g} s)"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _lock_if_writable(self) -> Iterator[None]:
        """The archive lock, or none where its lock file cannot be opened (read-only media)."""
        lock = filelock.FileLock(self.layout.lock_path, timeout=LOCK_TIMEOUT)
        try:
            lock.acquire()
            locked = True
        except filelock.Timeout as exc:
            raise errors.LockTimeoutError(
                f"another preserve process holds {self.layout.lock_path} "
                f"(waited {LOCK_TIMEOUT:g} s)"
            ) from exc
        except OSError:
            locked = False
        try:
            yield
        finally:
            if locked:
                lock.release()

    def _signer(self) -> log.Signer | None:
        return integrity.find_signer(self.root, self.key_path)

    def checkpoint(self) -> Path | None:
        """Sign a checkpoint of the integrity log now; None if the signing key is not here."""
        with self._lock():
            return integrity.checkpoint(self.root, self._signer(), self.tsa_url)

    # --- reading ------------------------------------------------------------------------------

    def captures(self) -> list[CaptureSummary]:
        """Every committed capture, oldest first (unreadable manifests are skipped)."""
        found = list(self._summaries())
        found.sort(key=lambda c: (c.started, c.capture_id))
        return found

    def _summaries(self) -> Iterator[CaptureSummary]:
        for path in manifest.iter_manifest_paths(self.layout):
            try:
                m, _ = manifest.read_manifest(path)
            except (errors.ManifestError, errors.StorageError):
                continue
            yield CaptureSummary(
                capture_id=m.capture_id,
                requested_url=m.requested_url,
                final_url=m.final_url,
                started=m.started,
                http_status=m.http.status,
                status=m.status,
                title=m.extraction.title,
                text_blake3=m.text.blake3 if m.text else None,
            )

    def manifest(self, capture_id: str) -> manifest.Manifest:
        """The manifest of one capture; ``capture_id`` may be a unique prefix."""
        path = self._find_manifest(capture_id)
        m, _ = manifest.read_manifest(path)
        return m

    def _find_manifest(self, capture_id: str) -> Path:
        if is_capture_id(capture_id):
            path = self.layout.manifest_path_for(capture_id)
            if path.is_file():
                return path
            raise errors.NotFoundError(f"no capture {capture_id} in {self.root}")
        if not capture_id or "/" in capture_id or "\\" in capture_id:
            raise errors.NotFoundError(f"not a capture id: {capture_id!r}")
        matches = [p for p in manifest.iter_manifest_paths(self.layout)
                   if p.name.startswith(capture_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise errors.NotFoundError(f"no capture matching {capture_id!r} in {self.root}")
        raise errors.NotFoundError(f"{capture_id!r} matches {len(matches)} captures; be longer")

    def text(self, capture_id: str) -> str:
        """The clean text of one capture ('' when it has none)."""
        m = self.manifest(capture_id)
        return self.store.get(m.text.blake3).decode("utf-8") if m.text else ""

    # --- audit ---------------------------------------------------------------------------------

    def verify(
        self,
        *,
        deep: bool = False,
        progress: Callable[[int, int], None] | None = None,
        checkpoints: Sequence[Path] = (),
        trusted_key: str | None = None,
        tsa_roots: Path | None = None,
        record: bool = True,
    ) -> Report:
        """Audit the archive: files and hashes (:func:`preserve.audit.verify.verify`), then the
        integrity log against its own and the given ``checkpoints``.

        With ``record`` the audit is appended to the log as a fixity event and a new
        checkpoint is signed; :attr:`last_audit_recorded` says whether that happened (it
        does not on read-only media, where the audit still runs).
        """
        from preserve.audit.verify import verify as verify_archive  # noqa: PLC0415

        report = verify_archive(self.root, deep=deep, progress=progress)
        # Under the archive lock no commit sits between linking its manifest and logging it,
        # so a capture in flight is not reported as E304 (read-only media: no lock, no writer).
        with self._lock_if_writable():
            integrity.audit_log(self.root, report, external_checkpoints=checkpoints,
                                trusted_key=trusted_key, tsa_roots=tsa_roots)
        self.last_audit_recorded = record and self._record_audit(report)
        return report

    #: Whether the last :meth:`verify` appended its audit event to the log.
    last_audit_recorded: bool = False

    def _record_audit(self, report: Report) -> bool:
        if not integrity.has_log(self.root):
            return False
        try:
            with self._lock():
                integrity.record_audit(self.root, report)
                integrity.checkpoint(self.root, self._signer(), self.tsa_url)
        except (OSError, errors.StorageError, errors.LockTimeoutError):
            return False
        return True


# --- helpers -------------------------------------------------------------------------------------


def spool_lock_path(spool: Path) -> Path:
    """The lock file a capture holds while its spool directory is in use."""
    return spool.with_name(spool.name + ".lock")


def media_type_and_charset(content_type: str | None) -> tuple[str | None, str | None]:
    """Split a Content-Type header into (lower-case media type, charset or None)."""
    if not content_type:
        return None, None
    from email.message import Message  # noqa: PLC0415 - start-up time

    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return message.get_content_type(), charset if isinstance(charset, str) else None


def _looks_like_html(head: bytes) -> bool:
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return sample.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _extract(final: Exchange) -> tuple[Extraction, str | None]:
    """Extract the final response's text; returns (extraction, reason it is not HTML)."""
    from preserve.extract import extract as extract_html  # noqa: PLC0415 - lxml

    media_type, charset = media_type_and_charset(final.content_type)
    if media_type is None:  # no Content-Type: sniff a small prefix only
        is_html = _looks_like_html(fetch.decode_body(final, 512).data)
    else:
        is_html = media_type in HTML_TYPES
    if not is_html:
        reason = f"not HTML: content type {media_type or 'unknown'}"
        return extract_html(b"", final.url), reason
    body = fetch.decode_body(final, EXTRACT_LIMIT)
    if not body.decoded:
        return extract_html(b"", final.url), f"content coding not decoded: {body.problem}"
    return extract_html(body.data, final.url, charset=charset), None


def _status(http_status: int, not_html: str | None, extraction: Extraction) -> str:
    if http_status >= 400:
        return "http-error"
    if not_html:
        return "not-html"
    return "ok" if extraction.text else "no-text"


def _record_json(record: warc.RecordRef) -> dict[str, Any]:
    return {
        "id": record.record_id,
        "type": record.type,
        "target_uri": record.target_uri,
        "offset": record.offset,
        "length": record.length,
        "block_digest": record.block_digest,
        "payload_digest": record.payload_digest,
        "refers_to": record.refers_to,
        "content_type": record.content_type,
    }


def _text_json(ref: StoredObject | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"blake3": ref.blake3, "size": ref.size, "path": ref.path_rel}
