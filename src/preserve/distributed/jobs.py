"""The Dask jobs: bulk capture with one committer, bulk verify, bulk re-extraction.

Task functions are module-level (workers import preserve and unpickle their arguments: a
directory root as a string, an :class:`~preserve.remote.store.ObjectStore` as its URL and
settings). Results come back in input order; the client commits and merges. Nothing here
prints or decides exit statuses.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from preserve import errors
from preserve.archive import Archive, CaptureOptions, CaptureResult
from preserve.audit.findings import Report
from preserve.audit.verify import (
    ManifestChecks,
    check_manifests,
    finish_audit,
    manifest_rels,
)
from preserve.commit import (
    CaptureLeaves,
    GroupOutcome,
    PreparedCapture,
    commit_group,
    held_manifest,
    logged_leaves,
)
from preserve.remote.archive import RemoteArchive
from preserve.remote.store import ObjectStore
from preserve.storage.layout import ArchiveLayout, makedirs_durable, new_capture_id
from preserve.storage.manifest import Manifest

Target = Archive | RemoteArchive
Outcome = CaptureResult | errors.PreserveError

#: How many prepared captures the committer commits as one group (one record, one append).
GROUP_SIZE = 32
#: Most URLs submitted to the cluster and not yet committed (the rest are not read yet).
WINDOW = 256
#: Retries of a task whose worker died (a capture failure is a result, never retried).
RETRIES = 2
#: Most verify chunks submitted to the cluster and not yet merged by the client.
VERIFY_WINDOW = 64


@dataclass(frozen=True)
class DaskCaptureResult:
    url: str
    outcome: Outcome


def connect(address: str | None = None, **local: Any) -> Any:
    """A Dask client: of the scheduler at ``address`` (``tcp://host:8786``), or of a new
    ``LocalCluster(**local)`` when ``address`` is None."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise errors.ArchiveError("--dask needs the 'scale' extra: "
                                  "pip install 'preserve[scale]'") from exc
    if address is None:
        return Client(LocalCluster(**local))  # type: ignore[no-untyped-call]
    try:
        return Client(address, timeout=30)  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise errors.ArchiveError(f"cannot reach the Dask scheduler {address}: {exc}") from exc


# --- tasks (run on workers) ------------------------------------------------------------------


def prepare_local(root: str, url: str, options: CaptureOptions) -> PreparedCapture | \
        errors.PreserveError:
    """Fetch, extract and seal a WARC in ``<root>/archive/tmp/<id>/`` (a shared file system)."""
    archive = Archive(root, heads=None)
    now = datetime.now(UTC)
    capture_id = new_capture_id(now)
    spool = archive.layout.tmp_dir / capture_id
    try:
        makedirs_durable(spool)
        return archive.prepare(url, options, capture_id=capture_id, now=now, spool=spool)
    except errors.PreserveError as exc:
        shutil.rmtree(spool, ignore_errors=True)
        return exc
    except OSError as exc:
        shutil.rmtree(spool, ignore_errors=True)
        return errors.StorageError(f"worker cannot write its spool {spool}: {exc}")


def prepare_remote(store: ObjectStore, url: str, options: CaptureOptions) -> \
        PreparedCapture | errors.PreserveError:
    """Fetch, extract and seal a WARC in a worker-local temp dir, upload it to ``staging/``."""
    archive = RemoteArchive(store.url, store=store, heads=None)
    now = datetime.now(UTC)
    capture_id = new_capture_id(now)
    try:
        with tempfile.TemporaryDirectory(prefix="preserve-spool-") as spool_dir:
            prepared = Archive(spool_dir, heads=None).prepare(
                url, options, capture_id=capture_id, now=now, spool=Path(spool_dir))
            return archive.stage(prepared)
    except errors.PreserveError as exc:
        return exc


def check_local_chunk(root: str, rels: list[str], deep: bool) -> ManifestChecks:
    return check_manifests(Path(root), rels, deep=deep)


def check_remote_chunk(store: ObjectStore, rels: list[str], deep: bool) -> ManifestChecks:
    from preserve.remote.verify import check_remote_manifests

    return check_remote_manifests(store, rels, deep=deep)


# --- capture ---------------------------------------------------------------------------------


def capture_many_dask(target: Target, urls: Iterable[str], options: CaptureOptions | None,
                      client: Any, *, group_size: int = GROUP_SIZE,
                      window: int = WINDOW) -> Iterator[tuple[str, Outcome]]:
    """Capture ``urls`` (read lazily) on the cluster of ``client``; yield ``(url, result or
    error)`` in input order as each is committed. At most ``window`` URLs are submitted and
    not yet committed at once. One checkpoint is signed at the end (key at hand)."""
    options = options or CaptureOptions()
    if isinstance(target, Archive):
        target._ensure_layout()
        target.check_known_head()
    source = iter(urls)
    jobs: collections.deque[tuple[str, Any]] = collections.deque()
    committed = 0
    pending: list[tuple[str, PreparedCapture]] = []
    try:
        _submit_more(jobs, source, target, options, client, max(window, 1))
        while jobs:
            url, job = jobs.popleft()
            outcome = job if isinstance(job, errors.PreserveError) else _result(job)
            if not isinstance(outcome, errors.PreserveError):
                pending.append((url, outcome))
            _submit_more(jobs, source, target, options, client, max(window, 1))
            upcoming = jobs[0][1] if jobs else None
            if isinstance(outcome, errors.PreserveError) or len(pending) >= group_size or \
                    upcoming is None or \
                    (not isinstance(upcoming, errors.PreserveError) and not upcoming.done()):
                for item in _commit(target, pending):
                    committed += not isinstance(item[1], errors.PreserveError)
                    yield item
                pending = []
            if isinstance(outcome, errors.PreserveError):
                yield url, outcome
    finally:
        for _url, job in jobs:
            if not isinstance(job, errors.PreserveError):
                job.cancel()
        if committed:
            with contextlib.suppress(errors.PreserveError):
                target.checkpoint(whole_archive=False)


def _submit_more(jobs: collections.deque[tuple[str, Any]], source: Iterator[str],
                 target: Target, options: CaptureOptions, client: Any, window: int) -> None:
    """Read URLs from ``source`` until ``window`` jobs wait: each a submitted task, or the
    error of a URL that cannot be captured."""
    from preserve.capture import fetch

    while len(jobs) < window:
        url = next(source, None)
        if url is None:
            return
        try:
            fetch.parse_url(url)
        except errors.PreserveError as exc:
            jobs.append((url, exc))
            continue
        task = prepare_remote if isinstance(target, RemoteArchive) else prepare_local
        where = target.store if isinstance(target, RemoteArchive) else str(target.root)
        jobs.append((url, client.submit(task, where, url, options, pure=False,
                                        retries=RETRIES)))


def _result(future: Any) -> PreparedCapture | errors.PreserveError:
    try:
        result: PreparedCapture | errors.PreserveError = future.result()
    except errors.PreserveError as exc:
        return exc
    except Exception as exc:  # KilledWorker after the retries, a cancelled task
        return errors.StorageError(f"the capture task failed on the cluster: "
                                   f"{type(exc).__name__}: {exc}")
    return result


def _commit(target: Target, group: Sequence[tuple[str, PreparedCapture]]) -> Iterator[
        tuple[str, Outcome]]:
    if not group:
        return
    prepared = [p for _u, p in group]
    try:
        if isinstance(target, RemoteArchive):
            outcome: GroupOutcome = target.commit(prepared, sign=False)
        else:
            with target._lock():
                outcome = commit_group(target._commit_context(), prepared, sign=False)
    except errors.PreserveError as exc:
        for url, _p in group:
            yield url, exc
        return
    finally:
        if isinstance(target, Archive):
            for p in prepared:
                shutil.rmtree(Path(p.warc_tmp).parent, ignore_errors=True)
    for (url, _p), committed in zip(group, outcome.committed, strict=True):
        yield url, CaptureResult.of(committed, outcome)


# --- verify ----------------------------------------------------------------------------------


def verify_dask(target: Target, client: Any, *, deep: bool = False, chunk: int = 64,
                window: int = VERIFY_WINDOW, **verify_options: Any) -> Report:
    """``verify`` with the manifests checked (read, hashed, re-extracted) on the workers,
    in chunks of ``chunk``, at most ``window`` chunks submitted and not yet merged; each
    part merged as it comes, in manifest order (the client holds one at a time), then the
    sweep and the log audit (and its recording) on the client, as :meth:`Archive.verify`
    does."""
    if isinstance(target, RemoteArchive):
        store = target.store

        def map_chunks(chunks: list[list[str]]) -> Iterator[ManifestChecks]:
            return in_order(client, check_remote_chunk, store, chunks, deep, window)

        report: Report = target.verify(deep=deep, map_chunks=map_chunks, chunk=chunk,
                                       **verify_options)
        return report
    root = str(target.root)

    def run(root_path: Path, run_deep: bool, _progress: Any) -> Report:
        report = Report(root=root, deep=run_deep,
                        started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        rels = manifest_rels(root_path, report)
        chunks = [rels[i:i + chunk] for i in range(0, len(rels), chunk)]
        del rels
        return finish_audit(root_path, report,
                            in_order(client, check_local_chunk, root, chunks, run_deep, window))

    return target.verify(deep=deep, runner=run, **verify_options)


def in_order(client: Any, function: Callable[[Any, list[str], bool], ManifestChecks],
             where: Any, chunks: list[list[str]], deep: bool,
             window: int) -> Iterator[ManifestChecks]:
    """``function(where, chunk, deep)`` of every chunk on the cluster, yielded in the chunks'
    order; at most ``window`` tasks are submitted and not yet taken, and each result is
    released as soon as it is taken (neither the client nor the cluster holds them all)."""
    pending: collections.deque[Any] = collections.deque()
    chunks_left = iter(chunks)
    try:
        while True:
            while len(pending) < max(window, 1):
                rels = next(chunks_left, None)
                if rels is None:
                    break
                pending.append(client.submit(function, where, rels, deep, pure=False,
                                             retries=RETRIES))
            if not pending:
                return
            future = pending.popleft()
            try:
                part: ManifestChecks = future.result()
            except errors.PreserveError:
                raise
            except Exception as exc:  # KilledWorker after the retries, the scheduler lost
                raise errors.StorageError(
                    f"a verify task failed on the cluster: {type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:300]} (nothing was concluded about the "
                    "archive; run verify again)") from exc
            future.release()
            yield part
    finally:
        for future in pending:
            future.cancel()


# --- re-extraction ---------------------------------------------------------------------------


def reextract_one(where: str | ObjectStore, capture_id: str,
                  leaves: CaptureLeaves | None) -> dict[str, Any]:
    """Re-extract one capture's text with this preserve's extractor, from the document the
    capture extracted it from, read as the capture read it (:func:`extraction_input`); report the
    text hash it had and the one it gets now (nothing is written). The manifest is held to
    the capture's log ``leaves`` first (None: a local archive with no log, nothing to hold
    it to); one that is not theirs is an ``error`` row, never re-extracted."""
    from preserve.audit.deep import ReextractionError, extraction_input, time_limit
    from preserve.extract import EXTRACTOR_VERSION, extract, was_stopped
    from preserve.hashing import blake3_hex

    row: dict[str, Any] = {"capture_id": capture_id, "extractor": EXTRACTOR_VERSION}
    with tempfile.TemporaryDirectory(prefix="preserve-reextract-") as tmp:
        try:
            m = _held_manifest(where, capture_id, leaves)
            if isinstance(where, ObjectStore):
                path = Path(tmp) / "capture.warc.gz"
                with where.open(m.warc.path) as src, path.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 8 * 2**20)
            else:
                path = Path(where) / m.warc.path
            row["before"] = m.text.blake3 if m.text else None
            found = extraction_input(m, path)
            if found is None:  # nothing was extracted (not HTML, an undecoded coding)
                row["after"] = row["before"]
                return row
            payload, charset = found
            extraction = extract(payload, m.final_url, charset=charset,
                                 time_limit=time_limit(m))
            if was_stopped(extraction):  # an empty text that says nothing about the page
                row["error"] = extraction.reason
                return row
            text = extraction.text
            row["after"] = blake3_hex(text.encode("utf-8")) if text else None
        except errors.UnverifiedManifestError as exc:
            row["error"] = str(exc)
            row["unverified"] = True
        except (errors.PreserveError, OSError, ReextractionError) as exc:
            row["error"] = str(exc)
    return row


def _held_manifest(where: str | ObjectStore, capture_id: str,
                   leaves: CaptureLeaves | None) -> Manifest:
    """The manifest of ``capture_id``, held to its log ``leaves`` (UnverifiedManifestError
    if it is not the one they record); read as found only for a local archive with no log."""
    from preserve.storage import manifest as manifest_mod

    if leaves is None and not isinstance(where, ObjectStore):
        return manifest_mod.read_manifest(Path(where) / "manifests" / f"{capture_id}.json")[0]
    if not leaves:
        raise errors.UnverifiedManifestError(f"manifests/{capture_id}.json: no log leaf "
                                             "records it; run preserve verify")
    if isinstance(where, ObjectStore):
        return RemoteArchive(where.url, store=where, heads=None).logged_manifest(*leaves[0])
    return held_manifest(ArchiveLayout(Path(where)), capture_id, leaves)


def _logged_captures(target: Target) -> list[tuple[str, CaptureLeaves | None]]:
    """The captures to re-extract, by id (capture order), each with its log leaves: those
    the log names (one pass over it; no listing of ``manifests/``); a local archive with no
    log, every manifest found (no leaves: nothing to hold them to)."""
    if isinstance(target, RemoteArchive):
        return sorted(((leaf.capture_id, [(index, leaf)])
                       for index, leaf in target.logged_leaves()), key=lambda x: x[0])
    if not target.has_log():
        return [(p.name[:-len(".json")], None)
                for p in sorted(target.layout.manifests_dir.glob("*.json"))]
    try:
        logged = logged_leaves(target.root)
    except OSError as exc:
        raise errors.LogError(f"cannot read the log of {target.root}: {exc}") from exc
    return sorted(logged.items(), key=lambda x: x[0])


def reextract_many_dask(target: Target, client: Any) -> list[dict[str, Any]]:
    """Re-extract every logged capture on the workers; rows in capture order, ``changed``
    marked. Each manifest is held to its log leaf first: one that is not the leaf's (changed
    after it was logged, missing) is not re-extracted; its row has ``error`` saying so and
    ``unverified``. A manifest no leaf names is not a capture (``verify`` reports it)."""
    captures = _logged_captures(target)
    where: str | ObjectStore = target.store if isinstance(target, RemoteArchive) \
        else str(target.root)
    futures = client.map(reextract_one, [where] * len(captures), [i for i, _ in captures],
                         [leaves for _, leaves in captures], pure=False, retries=RETRIES)
    rows: list[dict[str, Any]] = client.gather(futures)
    for row in rows:
        row["changed"] = "error" not in row and row.get("before") != row.get("after")
    return rows


__all__ = ["DaskCaptureResult", "capture_many_dask", "connect", "reextract_many_dask",
           "verify_dask"]
