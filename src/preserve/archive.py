"""``Archive(root)``: one archive on disk, and the capture pipeline that fills it.

A capture runs fetch (or, for a browser capture, :func:`preserve.capture.browser.capture_page`)
→ extract → WARC in its spool (``archive/tmp/<id>/``, no lock held), and is then committed by
:func:`preserve.commit.commit_group` under the archive lock: WARC file and text objects into
place, a commit record, the manifest (the commit point), the log leaf, and a proved, signed
checkpoint. Nothing before the commit point is visible as a capture, so no
manifest ever points at partial data, and concurrent captures are totally ordered.

This module composes the other modules; it does not speak HTTP, parse HTML, write WARC bytes,
decide what an audit finding is, or hold the commit protocol's steps (``commit.py`` does).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from preserve import errors
from preserve._lazy import lazy_module
from preserve.storage.layout import ArchiveLayout, is_capture_id, new_capture_id

if TYPE_CHECKING:
    import preserve.extract as _extract_mod
    from preserve import catalog_sync, integrity, log, warc
    from preserve import commit as _commit
    from preserve.audit import verify as _verify
    from preserve.audit.findings import Report
    from preserve.capture import browser as browser_capture
    from preserve.capture import fetch, provenance
    from preserve.capture import page as page_mod
    from preserve.capture.exchange import Exchange, FetchResult
    from preserve.capture.page import PageCapture
    from preserve.commit import (
        CaptureLeaves,
        CommitContext,
        Committed,
        CommittedCapture,
        Draft,
        GroupOutcome,
        PreparedCapture,
    )
    from preserve.extract import Extraction
    from preserve.integrity import AuditRecord
    from preserve.log import known_heads as _known_heads
    from preserve.log import signing as _signing
    from preserve.log import storage as _log_storage
    from preserve.log.known_heads import KnownHead, KnownHeads
    from preserve.log.signing import ProvedLeaves, Signed
    from preserve.storage import catalog as catalog_mod
    from preserve.storage import manifest
    from preserve.storage import text_store as _text_store
    from preserve.storage.catalog import Catalog, CatalogRow, JsonRowLayout
    from preserve.storage.text_store import TextStore
else:  # imported when first used: a capture sends its first byte before loading the rest
    catalog_sync = lazy_module("preserve.catalog_sync")
    integrity = lazy_module("preserve.integrity")
    log = lazy_module("preserve.log")
    warc = lazy_module("preserve.warc")
    browser_capture = lazy_module("preserve.capture.browser")
    fetch = lazy_module("preserve.capture.fetch")
    provenance = lazy_module("preserve.capture.provenance")
    page_mod = lazy_module("preserve.capture.page")
    catalog_mod = lazy_module("preserve.storage.catalog")
    manifest = lazy_module("preserve.storage.manifest")
    _commit = lazy_module("preserve.commit")
    _extract_mod = lazy_module("preserve.extract")
    _log_storage = lazy_module("preserve.log.storage")
    _known_heads = lazy_module("preserve.log.known_heads")
    _signing = lazy_module("preserve.log.signing")
    _text_store = lazy_module("preserve.storage.text_store")
    _verify = lazy_module("preserve.audit.verify")

#: The most decoded HTML handed to the extractor (the one bounded in-memory exception; the
#: extraction of it peaks at about 8x this). Recorded in the manifest's extractor settings
#: (``max_input_bytes``), which ``verify --deep`` re-extracts with; equal to
#: ``preserve.audit.verify.REEXTRACT_LIMIT`` (a test keeps them equal).
EXTRACT_LIMIT = 3 * 2**20
#: How long a capture waits for another process's commit to finish.
LOCK_TIMEOUT = 120.0

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def _default_fetch_options() -> fetch.FetchOptions:
    return fetch.FetchOptions()  # the module is imported when first needed, not here


@dataclass(frozen=True)
class CaptureOptions:
    """How to capture: network limits and policy, and who is capturing."""

    fetch: fetch.FetchOptions = field(default_factory=_default_fetch_options)
    operator: str | None = None
    #: Capture the page as rendered by a browser (None: one HTTP response, the default).
    browser: browser_capture.BrowserOptions | None = None


@dataclass(frozen=True)
class CaptureResult:
    """What one committed capture produced."""

    capture_id: str
    requested_url: str
    final_url: str
    http_status: int
    status: str  # "ok" | "http-error" | "not-html" | "no-text" | "redirect-not-followed"
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
    mode: str = "http"  # "http" | "browser" | "import"
    resources: int = 1  # request/response pairs recorded
    #: whether a proved checkpoint now covers this capture, and if not, why not
    signed: bool = False
    not_signed: str | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, committed: CommittedCapture, outcome: GroupOutcome) -> CaptureResult:
        return cls.of_manifest(committed.manifest, committed.warc_rel, committed.ref, outcome)

    @classmethod
    def of_manifest(cls, m: manifest.Manifest, warc_rel: str,
                    ref: manifest.ManifestRef | None = None,
                    outcome: GroupOutcome | None = None) -> CaptureResult:
        """The result of committing manifest ``m`` (its bytes: ``ref``) naming ``warc_rel``;
        without ``ref`` and ``outcome`` (a capture not committed yet) the manifest's digests
        are empty and it is not signed."""
        return cls(
            capture_id=m.capture_id,
            requested_url=m.requested_url,
            final_url=m.final_url,
            http_status=m.http.status,
            status=m.status,
            title=m.extraction.title,
            text_blake3=m.text.blake3 if m.text else None,
            text_size=m.text.size if m.text else 0,
            reason=m.extraction.reason,
            manifest_path=f"manifests/{m.capture_id}.json",
            manifest_blake3=ref.blake3 if ref is not None else "",
            manifest_sha256=ref.sha256 if ref is not None else "",
            warc_path=warc_rel,
            started=m.started,
            ended=m.ended,
            signed=outcome is not None and outcome.signed is not None,
            not_signed=outcome.not_signed if outcome is not None else None,
            notes=m.notes,
            mode="browser" if m.browser is not None else "import" if m.imported is not None
            else "http",
            resources=len(m.browser.resources) if m.browser is not None else len(m.redirects),
        )

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
            "signed": self.signed,
            "not_signed": self.not_signed,
            "notes": list(self.notes),
            "mode": self.mode,
            "resources": self.resources,
        }


#: The ``status`` of a capture whose manifest is not the one its log leaf records (changed,
#: missing or unreadable): nothing it says is shown (see :attr:`CaptureSummary.problem`).
UNVERIFIED = "unverified"


@dataclass(frozen=True)
class CaptureSummary:
    """One line of ``preserve list``. A capture whose manifest is not the one its log leaf
    records has only its id and the leaf's capture time, status :data:`UNVERIFIED` and
    ``problem`` saying why."""

    capture_id: str
    requested_url: str
    final_url: str
    started: str
    http_status: int
    status: str
    title: str | None
    text_blake3: str | None
    problem: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, m: manifest.Manifest) -> CaptureSummary:
        return cls(m.capture_id, m.requested_url, m.final_url, m.started, m.http.status,
                   m.status, m.extraction.title, m.text.blake3 if m.text else None)

    @classmethod
    def unverified(cls, capture_id: str, captured: str, problem: str) -> CaptureSummary:
        return cls(capture_id, "", "", captured, 0, UNVERIFIED, None, None, problem)

    def row(self) -> tuple[Any, ...]:
        """The values of :data:`~preserve.storage.catalog.SUMMARY_FIELDS`, in order."""
        return (self.capture_id, self.requested_url, self.final_url, self.started,
                self.http_status, self.status, self.title, self.text_blake3)

    @classmethod
    def of_row(cls, row: CatalogRow) -> CaptureSummary:
        return cls(row.capture_id, row.requested_url, row.final_url, row.started,
                   row.http_status, row.status, row.title, row.text_blake3)

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
        heads: KnownHeads | Literal["default"] | None = "default",
    ) -> None:
        """``key``: the signing key file (default: ``$PRESERVE_KEY`` or the config dir);
        ``tsa_url``: an RFC 3161 timestamp authority for checkpoints (or ``$PRESERVE_TSA``);
        ``heads``: where this operator keeps the known tree heads of archives (default: the
        config dir; None turns rollback detection by known head off)."""
        self.root = Path(root)
        self.layout = ArchiveLayout(self.root)
        self.key_path = Path(key) if key is not None else None
        self.tsa_url = tsa_url
        if heads != "default":
            self.heads = heads
        #: which leaves are proved, kept across commits (see CommitContext.proved)
        self._proved: dict[str, ProvedLeaves] = {}

    @functools.cached_property
    def heads(self) -> KnownHeads | None:
        """Where this operator keeps known heads (made on first use: the key code it loads
        is not needed before a capture's request is sent)."""
        return _known_heads.KnownHeads()

    def __repr__(self) -> str:
        return f"Archive({str(self.root)!r})"

    @functools.cached_property
    def store(self) -> TextStore:
        """The archive's content-addressed text objects."""
        return _text_store.TextStore(self.layout)

    @functools.cached_property
    def catalog(self) -> Catalog:
        """The archive's catalog (an index rebuilt from the log)."""
        return catalog_mod.Catalog(self.layout)

    # --- set-up --------------------------------------------------------------------------------

    def init(self, *, key_name: str | None = None) -> integrity.KeyInfo:
        """Create the layout, the integrity log and (unless there is one) a signing key.

        An existing log that was never signed gets the key, and its history is checked
        (every manifest against its leaf) and signed as adopted at initialisation.
        """
        key = integrity.prepare_key(self.root, key_name=key_name, key_path=self.key_path)
        self._ensure_layout(log_key=key.verifier)
        with self._lock():
            return integrity.install_key(self.root, key, heads=self.heads,
                                         timestamper=integrity.timestamper(self.tsa_url))

    def is_archive(self) -> bool:
        """Whether ``root`` looks like an archive (it has ``archive/`` or ``manifests/``)."""
        return self.layout.archive_dir.is_dir() or self.layout.manifests_dir.is_dir()

    def ensure_layout(self) -> None:
        """Create the archive's directories and its (unsigned) log if they are not there."""
        self._ensure_layout()

    def _ensure_layout(self, log_key: log.Verifier | None = None) -> None:
        try:
            self.layout.ensure_dirs()
            if not _log_storage.has_log(self.root) or log_key is not None:
                with self._lock():  # a writable open of the log drops a concurrent append
                    log.init_log(self.root, log_key)
        except OSError as exc:
            raise errors.StorageError(f"cannot create archive at {self.root}: {exc}") from exc

    # --- capture -----------------------------------------------------------------------------

    def capture(
        self,
        url: str,
        options: CaptureOptions | None = None,
        *,
        checkpoint: bool = True,
        browser: bool | browser_capture.BrowserOptions | None = None,
    ) -> CaptureResult:
        """Capture ``url``; returns when the capture is committed, raises if nothing was.

        ``browser=True`` (or a :class:`~preserve.capture.browser.BrowserOptions`, or
        ``options.browser``) captures the page as Chromium renders it, every resource it loads
        recorded through preserve's own transport, with a screenshot, PDF and rendered DOM;
        it raises :class:`~preserve.errors.BrowserUnavailableError` when no browser is here.
        The default is one HTTP response and its redirects.

        Raises :class:`~preserve.errors.CaptureError` subclasses for network and input
        problems and :class:`~preserve.errors.StorageError` when the archive can't be written
        (:class:`~preserve.commit.PartialCommitError` when the capture was committed but not
        logged: ``preserve repair`` completes it). An HTTP error status is not an exception:
        it is kept as evidence (``status``). With ``checkpoint`` and the archive's key at hand,
        the log is proved and a checkpoint signed (a batch passes False and calls
        :meth:`checkpoint` once); :attr:`CaptureResult.signed` says whether that happened.
        """
        options = _with_browser(options or CaptureOptions(), browser)
        fetch.parse_url(url)  # reject bad input before touching the disk
        self._ensure_layout()
        # The known head is checked under the archive lock, just before the commit (step 1 of
        # commit_group), not before the fetch: the request leaves sooner, and a rolled-back
        # archive still gets nothing (its spooled fetch is dropped).
        with self._spool() as (capture_id, now, spool):
            prepared = self.prepare(url, options, capture_id=capture_id, now=now, spool=spool)
            with self._lock():
                outcome = _commit.commit_group(self._commit_context(), [prepared], sign=checkpoint)
        return CaptureResult.of(outcome.committed[0], outcome)

    @contextlib.contextmanager
    def _spool(self) -> Iterator[tuple[str, datetime, Path]]:
        """A fresh capture id and its spool directory (see :class:`Spool`), removed after."""
        spool = Spool.open(self.layout)
        try:
            yield spool.capture_id, spool.started, spool.path
        finally:
            spool.close()

    def prepare(self, url: str, options: CaptureOptions, *, capture_id: str, now: datetime,
                spool: Path) -> PreparedCapture:
        """Fetch ``url`` into ``spool``, extract its text and seal its WARC file: everything a
        commit needs (no lock held, nothing in the archive proper touched)."""
        return prepare_capture(url, options, capture_id, now, spool)

    def commit(self, group: Sequence[PreparedCapture], *, sign: bool = True) -> GroupOutcome:
        """Commit prepared captures as one group, under the archive lock (see
        :func:`preserve.commit.commit_group`); with ``sign``, prove the log and sign."""
        with self._lock():
            return _commit.commit_group(self._commit_context(), group, sign=sign)

    def commit_drafts(self, drafts: Iterable[Draft], *, sign: bool = True,
                      on_committed: Callable[[Committed], None] | None = None) -> GroupOutcome:
        """Commit sealed captures read one at a time (a group too large to hold: an import)
        as one group, under the archive lock (see :func:`preserve.commit.commit_drafts`)."""
        with self._lock():
            return _commit.commit_drafts(self._commit_context(), drafts, sign=sign,
                                         on_committed=on_committed)

    def _commit_context(self) -> CommitContext:
        signer = self._signer()
        origin = signer.name if signer is not None else self._origin()
        return _commit.CommitContext(self.root, self.layout, self.store, self.catalog, signer,
                             self.heads, integrity.timestamper(self.tsa_url), origin,
                             proved=self._proved)

    def _origin(self) -> str:
        try:
            return log.read_verifier(self.root).name
        except errors.PreserveError:
            return "-"

    def check_known_head(self) -> None:
        """Raise NotProvedError if the log does not extend the operator's known head."""
        if self.heads is None or not _log_storage.has_log(self.root):
            return
        try:
            verifier: log.Verifier | None = log.read_verifier(self.root)
        except errors.SigningKeyError:
            verifier = None
        _signing.check_extends(self.root, self.heads, verifier)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the archive lock; a timeout becomes :class:`~preserve.errors.LockTimeoutError`."""
        import filelock  # noqa: PLC0415  # not needed before a capture's request is sent

        lock = filelock.FileLock(self.layout.lock_path, timeout=LOCK_TIMEOUT)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise errors.LockTimeoutError(
                f"another preserve process holds {self.layout.lock_path} "
                f"(waited {LOCK_TIMEOUT:g} s)"
            ) from exc
        except OSError as exc:
            raise errors.StorageError(f"cannot lock {self.layout.lock_path}: {exc}") from exc
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _lock_if_writable(self, *, create: bool = True) -> Iterator[bool]:
        """The archive lock, or none where its lock file cannot be opened (read-only media) or,
        without ``create``, does not exist (an archive nobody ever wrote to, such as an
        exported bag: reading it must not add a file); yields whether it is held."""
        if not create and not self.layout.lock_path.exists():
            yield False
            return
        import filelock  # noqa: PLC0415

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
            yield locked
        finally:
            if locked:
                lock.release()

    def _signer(self) -> log.Signer | None:
        return integrity.find_signer(self.root, self.key_path)

    def checkpoint(self, *, whole_archive: bool = True) -> Signed | None:
        """Audit the whole archive as verify does, prove the log and sign a checkpoint now;
        None if the signing key is not here. ``whole_archive=False`` skips the audit and
        proves only the leaves newer than the trusted checkpoint, as a capture's own signing
        does (what a batch of captures signs at its end: its cost does not grow with the
        archive).

        Raises :class:`~preserve.errors.NotProvedError` when verify finds an error anywhere
        in the archive or the log cannot be proved (see :mod:`preserve.log.signing`):
        nothing is signed then.
        """
        signer = self._signer()
        if signer is None:
            return None
        timestamper = integrity.timestamper(self.tsa_url)
        with self._lock():
            if not whole_archive:
                return _signing.prove_and_sign(self.root, signer, heads=self.heads,
                                               timestamper=timestamper)
            return integrity.sign_if_intact(self.root, signer, heads=self.heads,
                                            timestamper=timestamper)

    def adopt(self, capture_ids: Sequence[str], *, reason: str,
              operator: str | None = None) -> list[str]:
        """Vouch, as the key holder, for manifests preserve did not commit itself (planted,
        foreign, or captured without the key): each is checked (``verify`` of that capture
        must find no error), appended as an *adoption* leaf with a signed commit record, and
        the log is signed. Returns the adopted capture ids. Needs the signing key."""
        signer = self._signer()
        if signer is None:
            raise errors.SigningKeyError("adopting a capture needs the archive's signing key "
                                         "(--key, or the config dir)")
        paths = [self._find_manifest(capture_id) for capture_id in capture_ids]
        ids = [path.name[: -len(".json")] for path in paths]
        report = _verify.verify(self.root, only=set(ids))
        if not report.ok:
            codes = ", ".join(sorted({f.code.code for f in report.errors}))
            raise errors.NotProvedError(f"not adopted: verify finds errors in these captures "
                                        f"({codes}); run preserve verify")
        with self._lock():
            integrity.adopt(self.root, ids, signer=signer, reason=reason,
                            operator=operator or provenance.default_operator())
            _signing.prove_and_sign(self.root, signer, heads=self.heads,
                           timestamper=integrity.timestamper(self.tsa_url))
            self._catalog_current()  # the adopted captures are ``previous`` of later ones
        return ids

    def reset_head(self) -> KnownHead | None:
        """Forget this operator's known head of the archive (after restoring an older copy on
        purpose); returns what was forgotten."""
        if self.heads is None:
            return None
        try:
            verifier: log.Verifier | None = log.read_verifier(self.root)
        except errors.SigningKeyError:
            verifier = None
        forgotten = self.heads.forget(_known_heads.identity_for(verifier, self.root), self.root)
        for head in self.heads.for_path(self.root):  # another key was seen here before
            self.heads.leave(head.identity, self.root)
            forgotten = forgotten or head
        return forgotten

    # --- reading ------------------------------------------------------------------------------

    def captures(self) -> list[CaptureSummary]:
        """Every committed capture, oldest first, from the catalog (brought up to date from
        the log first). Without a usable catalog (read-only media), every logged capture
        read from its manifest held to its log leaf (:meth:`CaptureSummary.unverified` if it
        is not the leaf's); with no log at all, every manifest as found."""
        chunks = self._catalog_chunks(4096, None)
        if chunks is None:
            return self._held_summaries()
        return [CaptureSummary(*row) for chunk in chunks for row in chunk]

    def capture_rows(self) -> list[tuple[Any, ...]]:
        """:meth:`captures` as plain tuples of the
        :data:`~preserve.storage.catalog.SUMMARY_FIELDS` (the :class:`CaptureSummary` fields,
        in order): no object per capture."""
        return [row for chunk in self.capture_row_chunks() for row in chunk]

    @overload
    def capture_row_chunks(self, size: int = ..., layout: None = ..., *,
                           unverified: list[CaptureSummary] | None = ...,
                           ) -> Iterator[list[tuple[Any, ...]]]: ...

    @overload
    def capture_row_chunks(self, size: int, layout: JsonRowLayout, *,
                           unverified: list[CaptureSummary] | None = ...,
                           ) -> Iterator[list[tuple[Any, ...] | str]]: ...

    def capture_row_chunks(self, size: int = 4096, layout: JsonRowLayout | None = None, *,
                           unverified: list[CaptureSummary] | None = None,
                           ) -> Iterator[list[tuple[Any, ...]]] | Iterator[
                               list[tuple[Any, ...] | str]]:
        """:meth:`capture_rows`, ``size`` rows at a time: from the catalog, never all held at
        once (``preserve list`` at 100,000 captures and more); from the manifests, sorted, when
        the catalog cannot be used (as :meth:`captures`: each held to its log leaf, the
        unverified ones added to ``unverified`` before the first chunk is given). A catalog
        that fails after its first rows were given raises
        :class:`~preserve.storage.catalog.CatalogError`. With ``layout``, rows from
        the catalog may come as their JSON text already (see
        :meth:`~preserve.storage.catalog.Catalog.summary_chunks`)."""
        chunks = self._catalog_chunks(size, layout)
        if chunks is not None:
            yield from chunks
            return
        found = self._held_summaries()
        if unverified is not None:
            unverified.extend(summary for summary in found if summary.problem is not None)
        rows = [summary.row() for summary in found]
        for start in range(0, len(rows), size):
            yield rows[start:start + size]

    def _catalog_chunks(self, size: int, layout: JsonRowLayout | None,
                        ) -> Iterator[list[Any]] | None:
        """The catalog's summary chunks (its first one read already), or None when the
        catalog cannot be used."""
        if not self._catalog_current():
            return None
        chunks = self.catalog.summary_chunks(size, layout)
        try:
            first = next(chunks, None)
        except catalog_mod.CatalogError:
            return None
        return itertools.chain([] if first is None else [first], chunks)

    def history(self, url: str) -> list[CaptureSummary]:
        """Every capture whose requested or final URL is ``url``, however either was spelled
        (one :func:`~preserve.capture.urls.url_identity`), oldest first. Without a usable
        catalog, from the manifests held to their log leaves (as :meth:`captures`), with every
        unverified capture too: what its URLs are cannot be told."""
        from preserve.capture.urls import url_identity  # noqa: PLC0415 - not at start-up

        wanted = url_identity(url)

        def matches(*urls: str) -> bool:
            return any(url_identity(u) == wanted for u in urls)

        if self._catalog_current():
            try:
                rows = [row for row in self.catalog.of_url(url, final_too=True)
                        if matches(row.requested_url, row.final_url)]
                return [CaptureSummary.of_row(row) for row in rows]
            except catalog_mod.CatalogError:
                pass
        return [c for c in self.captures()
                if matches(c.requested_url, c.final_url) or c.problem is not None]

    def logged_captures_of(self, url: str) -> list[manifest.Manifest]:
        """The manifests of the captures of ``url`` (requested URL) that the log holds byte
        for byte, oldest first: what may be relied on (the catalog only proposes them, and a
        manifest planted beside a crafted row is never among them). Empty when the catalog
        or the log cannot be used."""
        if not self._catalog_current():
            return []
        return _commit.logged_captures_of(self.layout, self.catalog, url)

    def logged_captures_lookup(self) -> Callable[[str], list[manifest.Manifest]]:
        """:meth:`logged_captures_of` for many URLs in a row: the catalog is brought up to
        the log once, here (what is committed after is not seen)."""
        if not self._catalog_current():
            return lambda _url: []
        return functools.partial(_commit.logged_captures_of, self.layout, self.catalog)

    def _catalog_current(self) -> bool:
        """Bring the catalog up to the log; False if it cannot be used (read-only, no log)."""
        if not _log_storage.has_log(self.root):
            return False
        for _attempt in range(2):
            try:
                catalog_sync.sync_catalog(self.root, self.catalog)
                return True
            except catalog_mod.CatalogError:
                with contextlib.suppress(catalog_mod.CatalogError, OSError):
                    self.catalog.reset()
            except (errors.PreserveError, OSError):
                return False
        return False

    def _held_summaries(self) -> list[CaptureSummary]:
        """Every capture read from its manifest, oldest first: those the log names, each held
        to its leaves (one pass over the log, none over ``manifests/``); with no log, every
        manifest as found (nothing to hold it to). UnverifiedManifestError if the log cannot
        be read (nothing can be held to it)."""
        if not self.has_log():
            found = list(self._summaries())
        else:
            try:
                logged = _commit.logged_leaves(self.root)
            except (errors.PreserveError, OSError) as exc:
                raise errors.UnverifiedManifestError(
                    f"the integrity log cannot be read ({exc}): no manifest can be held to "
                    "it; run preserve verify") from None
            found = [self._held_summary(capture_id, leaves)
                     for capture_id, leaves in logged.items()]
        found.sort(key=lambda summary: (summary.started, summary.capture_id))
        return found

    def _held_summary(self, capture_id: str, leaves: CaptureLeaves) -> CaptureSummary:
        try:
            return CaptureSummary.of(_commit.held_manifest(self.layout, capture_id, leaves))
        except errors.UnverifiedManifestError as exc:
            return CaptureSummary.unverified(capture_id, leaves[0][1].captured, str(exc))

    def _summaries(self) -> Iterator[CaptureSummary]:
        for path in manifest.iter_manifest_paths(self.layout):
            try:
                m, _ = manifest.read_manifest(path)
            except (errors.ManifestError, errors.StorageError):
                continue
            yield CaptureSummary.of(m)

    def has_log(self) -> bool:
        """Whether the archive has an integrity log (a new archive gets one at its first
        capture)."""
        return bool(_log_storage.has_log(self.root))

    def _logged_manifest(self, capture_id: str) -> manifest.Manifest | None:
        """The manifest of ``capture_id`` if a log leaf records its bytes on disk: the leaf
        the catalog names; failing that (no catalog or a row not yet in it, read-only media,
        a crafted row, a manifest that does not match), every leaf of the capture, reading
        the log through. The catalog is neither brought up to date nor rebuilt here: a
        tampered one stays as found, for verify to report."""
        index = self.catalog.leaf_of(capture_id)  # as it stands: a read repairs nothing
        try:
            with log.open_log(self.root, readonly=True) as opened:
                if index is not None and 0 <= index < opened.size:
                    found = _commit.logged_manifest(self.layout, opened, capture_id, index)
                    if found is not None:
                        return found
                for at, data in opened.iter_entries():
                    if capture_id.encode() not in data or at == index:
                        continue
                    found = _commit.logged_manifest(self.layout, opened, capture_id, at)
                    if found is not None:
                        return found
        except (errors.PreserveError, OSError):
            return None
        return None

    def manifest(self, capture_id: str) -> manifest.Manifest:
        """The manifest of one capture (``capture_id``: any unique part of its id), held to
        the log leaf that logs it: UnverifiedManifestError when the file is not the one its
        leaf records (edited or planted after the commit, or never logged) — what it says
        is then not shown as the capture (``preserve verify`` says more). An archive with no
        log at all has nothing to hold it to: the manifest is returned as read."""
        path = self._find_manifest(capture_id)
        m, _ = manifest.read_manifest(path)
        if not self.has_log():
            return m  # nothing to hold it to (the report says so; verify reports the log)
        logged = self._logged_manifest(m.capture_id)  # what is shown: the bytes held to it
        if logged is None:
            raise errors.UnverifiedManifestError(
                f"{path.relative_to(self.root).as_posix()} is not the manifest the log "
                "records for this capture (changed after it was logged, or never logged); "
                "run preserve verify")
        return logged

    def find(self, capture_id: str) -> str:
        """The full id of the capture whose manifest file ``capture_id`` (any unique part of
        an id) names; NotFoundError otherwise. Reads no manifest: callers that use one hold it
        to the log themselves (:meth:`manifest`, the export plan)."""
        return self._find_manifest(capture_id).name[: -len(".json")]

    def _find_manifest(self, capture_id: str) -> Path:
        if is_capture_id(capture_id):
            path = self.layout.manifest_path_for(capture_id)
            if path.is_file():
                return path
            raise errors.NotFoundError(f"no capture {capture_id} in {self.root}")
        if not capture_id or "/" in capture_id or "\\" in capture_id or len(capture_id) > 64:
            raise errors.NotFoundError(f"not a capture id: {capture_id!r}")
        needle = capture_id.lower()
        matches = [p for p in manifest.iter_manifest_paths(self.layout)
                   if needle in p.name[: -len(".json")].lower()]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise errors.NotFoundError(f"no capture matching {capture_id!r} in {self.root}")
        raise errors.NotFoundError(f"{capture_id!r} matches {len(matches)} captures; be longer")

    def text(self, capture_id: str) -> str:
        """The clean text of one capture ('' when it has none), read no further than its
        manifest's size and checked against its BLAKE3 (UnverifiedTextError otherwise)."""
        from preserve.hashing import hash_bytes  # noqa: PLC0415 - start-up

        m = self.manifest(capture_id)
        if m.text is None:
            return ""
        with self.store.open(m.text.blake3) as f:
            data = f.read(m.text.size + 1)
        if len(data) != m.text.size or hash_bytes(data).blake3 != m.text.blake3:
            raise errors.UnverifiedTextError(
                f"{m.text.path} is not the text the manifest of {m.capture_id} names (another "
                "size or BLAKE3): not shown; run preserve verify")
        return data.decode("utf-8")

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
        anchor_max_age: timedelta | None = None,
        runner: Callable[[Path, bool, Callable[[int, int], None] | None], Report] | None = None,
    ) -> Report:
        """Audit the archive: files and hashes (:func:`preserve.audit.verify.verify`), then
        the integrity log against its own checkpoints, the given ``checkpoints`` (anchors
        kept elsewhere: hard requirements), the ``trusted_key`` and the operator's known head.

        With ``record`` the audit is appended to the log as a fixity event, passed or failed.
        Only an audit without errors is followed by a signed checkpoint (and moves the
        operator's known head on); a failed one signs nothing. :attr:`last_audit` says what
        happened (nothing is recorded on read-only media, where the audit still runs).
        ``runner(root, deep, progress)`` checks the files instead of a local pass (the Dask
        verify of :mod:`preserve.distributed`); the log audit and its recording stay here.
        """
        if runner is not None:
            report = runner(self.root, deep, progress)
        else:
            report = _verify.verify(self.root, deep=deep, progress=progress)
        package = self.is_export_package()
        if package and record:
            from preserve.log.export_note import DESCRIPTOR  # noqa: PLC0415 - start-up

            record = False
            not_recorded = (f"{self.root} is an exported package ({DESCRIPTOR}): verify "
                            "records nothing in it and remembers no head of its log")
        else:
            not_recorded = None
        # Under the archive lock no commit sits between linking its manifest and logging it,
        # so a capture in flight is not reported as E304 (read-only media: no lock, no writer).
        with self._lock_if_writable(create=record) as locked:
            integrity.audit_log(self.root, report, external_checkpoints=checkpoints,
                                trusted_key=trusted_key, tsa_roots=tsa_roots, heads=self.heads,
                                anchor_max_age=anchor_max_age)
            self.last_audit = integrity.AuditRecord(not_recorded=not_recorded)
            if record and locked:
                self.last_audit = integrity.record_audit(
                    self.root, report, signer=self._signer(), heads=self.heads,
                    timestamper=integrity.timestamper(self.tsa_url), trusted_key=trusted_key)
            elif integrity.head_may_be_remembered(report) and self.heads is not None:
                # also for a package: its log is a prefix of the archive's (or this audit
                # found E315), and a planted descriptor must not stop heads moving on
                integrity.remember_head(self.root, self.heads, trusted_key)
        return report

    def is_export_package(self) -> bool:
        """Whether the root is the archive of an exported package (a bag's ``data/``: it
        holds the export descriptor). Verify changes nothing there: an audit appended to
        the copied log would make the bag fail its own manifests, and would make that copy
        the log remembered for the archive key, so the archive itself would then look rolled
        back (E315)."""
        from preserve.log.export_note import DESCRIPTOR  # noqa: PLC0415 - start-up

        return (self.root / DESCRIPTOR).is_file()

    _last_audit: AuditRecord | None = None

    @property
    def last_audit(self) -> AuditRecord:
        """What the last :meth:`verify` recorded and signed."""
        return self._last_audit if self._last_audit is not None else integrity.AuditRecord()

    @last_audit.setter
    def last_audit(self, value: AuditRecord) -> None:
        self._last_audit = value

    @property
    def last_audit_recorded(self) -> bool:
        """Whether the last :meth:`verify` appended its audit event to the log."""
        return self.last_audit.recorded


# --- helpers -------------------------------------------------------------------------------------


def spool_lock_path(spool: Path) -> Path:
    """The lock file a capture holds while its spool directory is in use."""
    return spool.with_name(spool.name + ".lock")


def media_type_and_charset(content_type: str | None) -> tuple[str | None, str | None]:
    """Split a Content-Type header into (lower-case media type, charset or None)."""
    if not content_type:
        return None, None
    from email.message import Message  # noqa: PLC0415  # after the request is sent

    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return message.get_content_type(), charset if isinstance(charset, str) else None


def _looks_like_html(head: bytes) -> bool:
    sample = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return sample.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _extract(final: Exchange) -> tuple[Extraction, str | None]:
    """Extract the final response's text; returns (extraction, reason it is not HTML)."""
    media_type, charset = media_type_and_charset(final.content_type)
    if media_type is None:  # no Content-Type: sniff a small prefix only
        is_html = _looks_like_html(fetch.decode_body(final, 512).data)
    else:
        is_html = media_type in HTML_TYPES
    if not is_html:
        reason = f"not HTML: content type {media_type or 'unknown'}"
        return _extract_mod.extract(b"", final.url), reason
    body = fetch.decode_body(final, EXTRACT_LIMIT)
    if not body.decoded:
        return _extract_mod.extract(b"", final.url), f"content coding not decoded: {body.problem}"
    return _extract_mod.extract(body.data, final.url, charset=charset), None


class Spool:
    """One capture's spool directory ``archive/tmp/<capture id>/``, held under the capture's
    own lock file (``repair`` removes only spool directories whose lock is free) from
    :meth:`open` to :meth:`close`, which removes both. Not made durable: what stays is flushed
    by the commit.

    The lock is a plain ``flock`` on the lock file, the lock filelock's ``FileLock`` takes
    (repair probes it with filelock), taken without loading filelock: a capture's request is
    sent before that import. Where the file system has no ``flock``, the lock file's existence
    is the lock, as filelock's soft lock has it."""

    def __init__(self, capture_id: str, started: datetime, path: Path, lock_fd: int) -> None:
        self.capture_id = capture_id
        self.started = started
        self.path = path
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, layout: ArchiveLayout) -> Spool:
        started = datetime.now(UTC)
        capture_id = new_capture_id(started)
        path = layout.tmp_dir / capture_id
        try:
            lock_fd = _hold_lock_file(spool_lock_path(path))
        except BlockingIOError as exc:  # a capture id collision: astronomically unlikely
            raise errors.StorageError(f"capture {capture_id} is already in progress") from exc
        except OSError as exc:
            raise errors.StorageError(f"cannot write to archive {layout.root}: {exc}") from exc
        try:
            path.mkdir()
        except OSError as exc:
            with contextlib.suppress(OSError):
                spool_lock_path(path).unlink()
            os.close(lock_fd)
            raise errors.StorageError(f"cannot write to archive {layout.root}: {exc}") from exc
        return cls(capture_id, started, path, lock_fd)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            spool_lock_path(self.path).unlink()  # while held: nobody waits on this inode
        os.close(self._lock_fd)  # releases the flock


def _hold_lock_file(path: Path) -> int:
    """Open (creating) ``path`` and take an exclusive ``flock`` on it without waiting; returns
    the descriptor, whose closing releases the lock. Raises BlockingIOError when another
    process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
            os.close(fd)
            raise
    return fd


def prepare_capture(url: str, options: CaptureOptions, capture_id: str, now: datetime,
                    spool: Path) -> PreparedCapture:
    """Fetch ``url`` into ``spool``, extract its text and seal its WARC file (a top-level
    function, so that a worker process can run it)."""
    page: PageCapture | None = None
    if options.browser is None:
        result = fetch.fetch(url, spool, options.fetch)
    else:
        page = browser_capture.capture_page(url, spool, options.fetch, options.browser)
        result = page.main
    try:
        return prepare_fetched(result, options, capture_id=capture_id, now=now, spool=spool,
                               page=page)
    except errors.ManifestError as exc:  # never expected: fields are bounded
        raise errors.CaptureError(f"the capture of {url} cannot be recorded: {exc}") from exc


def _with_browser(
    options: CaptureOptions, browser: bool | browser_capture.BrowserOptions | None
) -> CaptureOptions:
    """``options`` with the ``browser`` argument of :meth:`Archive.capture` applied."""
    if browser is None:
        return options
    if browser is False:
        return replace(options, browser=None)
    chosen = browser if isinstance(browser, browser_capture.BrowserOptions) else (
        options.browser or browser_capture.BrowserOptions())
    return replace(options, browser=chosen)


def _extract_capture(
    result: FetchResult, page: PageCapture | None
) -> tuple[Extraction, str | None, bool]:
    """(extraction, reason it is not HTML, whether it came from the rendered DOM).

    A browser capture of an HTML page is extracted from its rendered DOM (bytes as recorded,
    UTF-8, the same bound and call ``verify --deep`` repeats); otherwise, and when the page
    left no DOM, from the final response."""
    final = result.final
    if page is not None and page.dom is not None:
        media_type, _ = media_type_and_charset(final.content_type)
        if media_type is None or media_type in HTML_TYPES:
            data = page.dom.read_bytes(EXTRACT_LIMIT)
            return _extract_mod.extract(data, result.final_url, charset="utf-8"), None, True
    extraction, not_html = _extract(final)
    return extraction, not_html, False


def _final_response_id(records: Sequence[warc.RecordRef]) -> str:
    return [r for r in records if r.type == "response"][-1].record_id


def _status(final: Exchange, not_html: str | None, extraction: Extraction,
            redirect_left: bool) -> str:
    if final.status >= 400:
        return "http-error"
    if redirect_left:
        return "redirect-not-followed"
    if not_html:
        return "not-html"
    return "ok" if extraction.text else "no-text"


def prepare_fetched(
    result: FetchResult,
    options: CaptureOptions,
    *,
    capture_id: str,
    now: datetime,
    spool: Path,
    page: PageCapture | None = None,
) -> PreparedCapture:
    """Extract the text of a fetched (or, with ``page``, browser) capture and seal its WARC
    file and manifest draft in ``spool``."""
    final = result.final
    extraction, not_html, from_dom = _extract_capture(result, page)
    redirect_left = final.status in fetch.REDIRECT_STATUSES and bool(result.notes)
    status = _status(final, not_html, extraction, redirect_left)
    extractor_info = {
        "name": _extract_mod.EXTRACTOR_NAME,
        "version": _extract_mod.EXTRACTOR_VERSION,
        "settings": {**_extract_mod.EXTRACTOR_SETTINGS, "max_input_bytes": EXTRACT_LIMIT,
                     "content_codings": fetch.decodable_codings()},
    }
    operator = options.operator or provenance.default_operator()
    document = provenance.capture_provenance(
        result, capture_id=capture_id, operator=operator, extractor=extractor_info
    )
    if page is not None:
        document.update(page_mod.manifest_sections(page))
    text_bytes = extraction.text.encode("utf-8") if extraction.text else None
    comments_bytes = (
        extraction.comments_text.encode("utf-8") if extraction.comments_text else None
    )
    warc_tmp = spool / "capture.warc.gz"
    warcinfo = {
        "host": document["host"],
        "operator": operator,
        "http-header-user-agent": options.fetch.user_agent if page is None
        else page.browser.user_agent,
    }
    metadata_json = json.dumps(document, indent=2, sort_keys=True).encode("utf-8")
    if page is None:  # the commit makes the file durable, with the rest of its group
        written = warc.write_capture(warc_tmp, result, warcinfo=warcinfo,
                                     metadata_json=metadata_json, conversion_text=text_bytes,
                                     fsync=False)
        source = page_mod.extraction_source(page_mod.SOURCE_RESPONSE,
                                            _final_response_id(written.records))
    else:
        written = warc.write_page(warc_tmp, page, warcinfo=warcinfo,
                                  metadata_json=metadata_json, conversion_text=text_bytes,
                                  fsync=False)
        source = (page_mod.extraction_source(page_mod.SOURCE_RENDERED_DOM, page.dom.record_id)
                  if from_dom and page.dom is not None
                  else page_mod.extraction_source(page_mod.SOURCE_RESPONSE,
                                                  page.final_response_record_id))
    document.update(
        status=status,
        extraction={
            "title": extraction.title,
            "byline": extraction.byline,
            "published": extraction.published,
            "language": extraction.language,
            "reason": not_html or extraction.reason,
            "source": source,
            "method": extraction.method,
            "page_type": None if not_html else extraction.page_type,
        },
        notes=list(result.notes),
    )
    prepared = _commit.PreparedCapture(capture_id=capture_id, started_at=now, kind="capture",
                               requested_url=result.requested_url, warc_tmp=warc_tmp,
                               warc=written, text=text_bytes, comments=comments_bytes,
                               document=document)
    prepared.seal()  # validated here, in the worker, not in the committer
    return prepared
