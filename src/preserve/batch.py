"""Capture many URLs at once: politeness per host, work on every core, commits in groups.

:func:`capture_many` fetches and prepares captures (network, extraction, WARC building) on
``concurrency`` workers — worker *processes* when ``concurrency`` is above 1, so extraction
and gzip use every core — and commits them in **groups** in this process, one group at a
time under the archive lock (:meth:`preserve.Archive.commit`) on a committer thread, so the
workers go on preparing the next group while one commits: a group writes its files, makes
them durable with one flush, links its manifests and appends its log leaves in one batch, and
signs one checkpoint. Commits stay totally ordered, and "a manifest exists ⇒ everything it
names is durable" holds for each capture as for a single one.

Politeness: never more than one capture in flight per host; the next capture of a host starts
no sooner than ``per_host_delay`` seconds after the previous one of that host finished
fetching. Hosts are compared by the requested URL's host name (lower-cased, IDNA-encoded; the
port is ignored, since politeness is owed to the machine). Redirect hops to other hosts are
not scheduled separately.

URLs are read lazily: at most ``lookahead`` of them (:data:`LOOKAHEAD`) are parsed and waiting
at once, so a list of a million URLs costs no more memory than one of a few thousand, and the
first capture starts at once. Politeness looks for a free host within that window only.

Results are yielded as ``(url, CaptureResult | PreserveError)`` when their group is committed
(a failed fetch is yielded at once). A capture failure is yielded, not raised; a failure of the
archive itself (a commit that cannot be written, a log that does not extend the known head) is
yielded for every capture of its group and ends the batch. If the caller stops iterating, the
captures in flight finish, what was prepared is committed, and nothing else starts. This module
does not parse or deduplicate URLs beyond what capture does, and does not print.
"""

from __future__ import annotations

import collections
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve.archive import Archive, CaptureOptions, CaptureResult, Spool, prepare_capture
from preserve.capture import fetch
from preserve.errors import (
    LockTimeoutError,
    ManifestError,
    NotProvedError,
    PreserveError,
    SigningKeyError,
    StorageError,
)
from preserve.storage.layout import new_capture_id

if TYPE_CHECKING:
    from preserve.commit import GroupOutcome, PreparedCapture

Outcome = CaptureResult | PreserveError
Progress = Callable[[int, int], None]

#: Most captures committed in one group, and the longest a prepared capture waits for one.
GROUP_SIZE = 64
GROUP_WAIT = 0.5
#: What a worker's :func:`prepare_capture` imports (fetching, extraction, the WARC writer, the
#: seal), loaded before the workers start so that they share it instead of each importing it.
WORKER_MODULES = ("preserve.capture.fetch", "preserve.capture.provenance", "preserve.extract",
                  "preserve.warc.write", "preserve.storage.manifest", "preserve.commit",
                  # what the first capture would import: the idna codec (for getaddrinfo)
                  # and strptime's module (to check the capture id)
                  "encodings.idna", "_strptime")
#: Most URLs read ahead of the captures (parsed, waiting for a worker or their host), and
#: most characters of them together (URLs may be up to 64 KiB long).
LOOKAHEAD = 4096
LOOKAHEAD_CHARS = 8 * 2**20
#: URLs read (and parsed) at most between two scheduling rounds: the window fills up as the
#: batch goes, so the first capture starts after the first few URLs, not a window's worth.
_REFILL_STEP = 64


@dataclass(slots=True)
class _Job:
    url: str
    host: str
    spool: Path | None = None  # this capture's directory inside the batch's spool


@dataclass(slots=True)
class _Group:
    """Prepared captures waiting for their commit, oldest first."""

    items: list[tuple[_Job, PreparedCapture]] = field(default_factory=list)
    since: float = 0.0

    def add(self, job: _Job, prepared: PreparedCapture) -> None:
        if not self.items:
            self.since = time.monotonic()
        self.items.append((job, prepared))


def warm_worker_caches() -> None:
    """Compute what every capture uses and a process computes once (the library versions
    that provenance and the warcinfo record name, the login name, the content codings on
    offer, and what those import), so that workers forked afterwards inherit it instead of
    each spending ~10 ms of CPU on it in its first capture."""
    from preserve.capture import codings, provenance  # noqa: PLC0415 - loaded by then
    from preserve.warc import write  # noqa: PLC0415

    provenance.software()
    provenance.default_operator()
    write.software()
    codings.decodable_codings()


def host_key(url: str) -> str:
    """The politeness key of ``url``: its lower-case host (InvalidURLError if it has none)."""
    return fetch.parse_url(url).raw_host.decode("ascii", "replace").lower()


def prepare_in(url: str, options: CaptureOptions, capture_id: str, started: datetime,
               spool: Path) -> PreparedCapture:
    """Make this capture's spool directory and prepare the capture in it (a worker's task)."""
    try:
        spool.mkdir()
    except OSError as exc:
        raise StorageError(f"cannot write to {spool}: {exc.strerror or exc}") from exc
    return prepare_capture(url, options, capture_id, started, spool)


def archive_failure(error: BaseException) -> bool:
    """Whether ``error`` is a failure of the archive itself (every later capture would fail the
    same way), rather than of one URL."""
    return isinstance(error, StorageError | LockTimeoutError | NotProvedError
                      | SigningKeyError) and not isinstance(error, ManifestError)


def capture_many(
    archive: Archive,
    urls: Iterable[str],
    options: CaptureOptions | None = None,
    *,
    concurrency: int = 4,
    per_host_delay: float = 1.0,
    progress: Progress | None = None,
    note: Callable[[str], None] | None = None,
    group_size: int = GROUP_SIZE,
    group_wait: float = GROUP_WAIT,
    processes: bool | None = None,
    lookahead: int = LOOKAHEAD,
) -> Iterator[tuple[str, Outcome]]:
    """Capture ``urls`` (any iterable, read lazily) into ``archive``; yield ``(url, result or
    error)`` (see the module docstring). ``progress(done, total)`` is called after each URL
    (``total``: the number of URLs when ``urls`` has a length, else 0); ``note(text)`` is told
    when a group's checkpoint could not be signed. ``processes`` forces worker processes on
    or off (default: on when ``concurrency`` > 1). Raises ValueError for ``concurrency < 1``,
    ``group_size < 1``, ``lookahead < 1`` or a negative delay."""
    if concurrency < 1 or group_size < 1 or lookahead < 1:
        raise ValueError("concurrency, group_size and lookahead must be at least 1")
    if per_host_delay < 0 or group_wait < 0:
        raise ValueError("delays must not be negative")
    options = options or CaptureOptions()
    run = _Batch(archive, options, concurrency, per_host_delay, progress, note, group_size,
                 group_wait)
    run.total = len(urls) if isinstance(urls, Sized) else 0
    run.source = iter(urls)
    run.lookahead = max(lookahead, 2)  # two: enough to tell one capture from a batch
    while run.source is not None and len(run.pending) < 2:
        yield from run.refill()
    if not run.pending:
        return
    if len(run.pending) == 1 and run.source is None:  # one capture: the plain path, no workers
        job = run.pending[0]
        outcome: Outcome
        try:
            outcome = archive.capture(job.url, options)
        except PreserveError as exc:
            outcome = exc
        yield from run.report([(job.url, outcome)])
        return
    archive.ensure_layout()
    archive.check_known_head()  # refuse a rolled-back archive before any fetching
    use_processes = concurrency > 1 if processes is None else processes
    # imported here: a single capture never needs them (multiprocessing is slow to import)
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from preserve.workers import process_pool  # noqa: PLC0415

    executor: Executor = (process_pool(concurrency, preload=WORKER_MODULES,
                                                  warm=warm_worker_caches) if use_processes
                          else ThreadPoolExecutor(max_workers=concurrency,
                                                  thread_name_prefix="preserve-capture"))
    # One spool (a directory and its lock, as repair knows them) for the whole batch: each
    # capture's files go into a directory of their own in it, removed in the background
    # once committed; what a killed batch leaves is debris that repair clears.
    run.spool = Spool.open(archive.layout)
    try:
        yield from run.loop(executor)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        run.committer.shutdown(wait=True)
        run.cleaner.shutdown(wait=True)
        run.spool.close()


class _Batch:
    def __init__(self, archive: Archive, options: CaptureOptions, concurrency: int,
                 per_host_delay: float, progress: Progress | None,
                 note: Callable[[str], None] | None, group_size: int,
                 group_wait: float) -> None:
        self.archive = archive
        self.options = options
        self.concurrency = concurrency
        self.per_host_delay = per_host_delay
        self.progress = progress
        self.note = note
        self.group_size = group_size
        self.group_wait = group_wait
        self.total = 0
        self.done = 0
        self.source: Iterator[str] | None = None  # URLs not read yet (None: all read)
        self.lookahead = LOOKAHEAD
        self.pending: collections.deque[_Job] = collections.deque()
        self.pending_chars = 0
        self.busy: set[str] = set()
        self.ready_at: dict[str, float] = {}
        self.running: dict[Future[PreparedCapture], _Job] = {}
        self.group = _Group()
        self.stopped = False
        self.spool: Spool | None = None
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        self.cleaner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preserve-clean")
        self.committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preserve-commit")
        self.committing: Future[GroupOutcome] | None = None
        self.committing_items: list[tuple[_Job, PreparedCapture]] = []

    def report(self, outcomes: list[tuple[str, Outcome]]) -> Iterator[tuple[str, Outcome]]:
        for url, outcome in outcomes:
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, self.total)
            yield url, outcome

    def refill(self) -> Iterator[tuple[str, Outcome]]:
        """Read up to :data:`_REFILL_STEP` more URLs while fewer than ``lookahead`` of them (and
        :data:`LOOKAHEAD_CHARS`) wait; report the invalid ones."""
        for _step in range(_REFILL_STEP):
            if not self.can_read():
                return
            assert self.source is not None
            url = next(self.source, None)
            if url is None:
                self.source = None
                break
            try:
                self.pending.append(_Job(url, host_key(url)))
            except PreserveError as exc:
                yield from self.report([(url, exc)])
                continue
            self.pending_chars += len(url)

    def can_read(self) -> bool:
        """Whether URLs are left to read and the window has room for them."""
        return (self.source is not None and len(self.pending) < self.lookahead
                and self.pending_chars < LOOKAHEAD_CHARS)

    def hungry(self) -> bool:
        """Whether a worker is free and URLs not read yet might give it work."""
        return len(self.running) < self.concurrency and self.can_read()

    def loop(self, executor: Executor) -> Iterator[tuple[str, Outcome]]:
        try:
            while (((self.pending or self.source is not None) and not self.stopped)
                   or self.running or self.group.items or self.committing is not None):
                if not self.stopped:
                    yield from self.refill()
                    self.start_jobs(executor)  # keep the workers busy while a group commits
                if self.committing is not None and self.committing.done():
                    yield from self.finish_commit()
                    continue
                if self.committing is None and self.group_due():
                    self.begin_commit()
                    continue
                waiting: set[Future[Any]] = set(self.running)
                if self.committing is not None:
                    waiting.add(self.committing)
                if waiting:
                    completed, _ = wait(waiting, timeout=self.wait_time(),
                                        return_when=FIRST_COMPLETED)
                    yield from self.collect([f for f in completed if f in self.running])
                elif self.pending and not self.stopped and not self.hungry():
                    time.sleep(max(0.0, (self.next_ready() or time.monotonic())
                                   - time.monotonic()))
        finally:
            if self.committing is not None:  # never leave a commit running behind us
                wait([self.committing])
                for _ in self.finish_commit():
                    pass
            if not self.stopped:  # the caller stopped early: let what is in flight finish,
                if self.running:   # then commit everything prepared (and start nothing)
                    for _ in self.collect(list(wait(self.running).done)):
                        pass
                if self.group.items:
                    self.begin_commit()
                    for _ in self.finish_commit():
                        pass

    def start_jobs(self, executor: Executor) -> None:
        now = time.monotonic()
        slots = self.concurrency - len(self.running)
        taken: set[str] = set()
        for job in list(self.pending):
            if slots <= 0:
                break
            if job.host in self.busy or job.host in taken or self.ready_at.get(job.host,
                                                                                 0.0) > now:
                continue
            self.pending.remove(job)
            self.pending_chars -= len(job.url)
            assert self.spool is not None
            started = datetime.now(UTC)
            capture_id = new_capture_id(started)
            job.spool = self.spool.path / capture_id
            future = executor.submit(prepare_in, job.url, self.options, capture_id, started,
                                     job.spool)
            self.running[future] = job
            self.busy.add(job.host)
            taken.add(job.host)
            slots -= 1

    def wait_time(self) -> float | None:
        """How long to wait for a completion: until a waiting host is ready or a group is
        due, whichever comes first (None: until something completes)."""
        if self.hungry():
            return 0.0  # read on: a host in the rest of the list may be free
        deadlines = []
        if self.group.items and self.committing is None:  # else the commit's end wakes us
            deadlines.append(self.group.since + self.group_wait)
        if len(self.running) < self.concurrency:
            ready = self.next_ready()
            if ready is not None:
                deadlines.append(ready)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def next_ready(self) -> float | None:
        times = [self.ready_at[j.host] for j in self.pending
                 if j.host not in self.busy and j.host in self.ready_at]
        return min(times) if times else None

    def collect(self, completed: Iterable[Future[Any]]) -> Iterator[tuple[str, Outcome]]:
        failed: list[tuple[str, Outcome]] = []
        for future in completed:
            job = self.running.pop(future)
            self.busy.discard(job.host)
            self.ready_at[job.host] = time.monotonic() + self.per_host_delay
            try:
                self.group.add(job, future.result())
            except PreserveError as exc:
                self.release(job)
                failed.append((job.url, exc))
        yield from self.report(failed)

    def group_due(self) -> bool:
        """Commit when the group is full, has waited long enough, nothing is being fetched
        (called right after new jobs were started: the rest of the work, if any, waits for a
        host's politeness delay), or every URL has been handed to a worker: then nothing
        larger can form, and what is ready is committed while the last captures finish (a
        batch's tail was one large group committed after all of them, on one core)."""
        if not self.group.items:
            return False
        return (len(self.group.items) >= self.group_size
                or time.monotonic() >= self.group.since + self.group_wait
                or not self.running
                or (self.source is None and not self.pending))

    def begin_commit(self) -> None:
        """Start committing the current group on the committer thread (one group at a time,
        so commits stay totally ordered) while the workers go on preparing the next."""
        self.committing_items, self.group = self.group.items, _Group()
        self.committing = self.committer.submit(
            self.archive.commit, [prepared for _job, prepared in self.committing_items],
            sign=True)

    def finish_commit(self) -> Iterator[tuple[str, Outcome]]:
        """Report the outcome of the commit started by :meth:`begin_commit` (done)."""
        assert self.committing is not None
        future, items = self.committing, self.committing_items
        self.committing, self.committing_items = None, []
        try:
            outcome = future.result()
        except PreserveError as exc:
            for job, _prepared in items:
                self.release(job)
            if archive_failure(exc):
                self.stopped = True
            yield from self.report([(job.url, exc) for job, _prepared in items])
            return
        for job, _prepared in items:
            self.release(job)
        if outcome.not_signed and self.note is not None:
            self.note(outcome.not_signed)
        results = {c.prepared.capture_id: CaptureResult.of(c, outcome)
                   for c in outcome.committed}
        yield from self.report([(job.url, results[prepared.capture_id])
                                for job, prepared in items])

    def release(self, job: _Job) -> None:
        if job.spool is not None:
            self.cleaner.submit(shutil.rmtree, job.spool, ignore_errors=True)
            job.spool = None


__all__ = ["GROUP_SIZE", "GROUP_WAIT", "LOOKAHEAD", "Outcome", "archive_failure",
           "capture_many", "host_key"]
