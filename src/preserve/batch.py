"""Capture many URLs at once: bounded concurrency with per-host politeness.

:func:`capture_many` runs :meth:`preserve.Archive.capture` on worker threads, at most
``concurrency`` at a time, and never more than one capture in flight per host: the next
capture of a host starts no sooner than ``per_host_delay`` seconds after the previous capture
of that host *finished*. Hosts are compared by the requested URL's host name (lower-cased,
IDNA-encoded; the port is ignored, since politeness is owed to the machine). Redirect hops to
other hosts are not scheduled separately.

Results are yielded in **completion order** as ``(url, CaptureResult | PreserveError)``;
capture failures are yielded, not raised (a bug, i.e. any other exception, propagates after
the captures in flight have finished). Scheduling happens while the caller iterates; if the
caller stops early, the captures in flight finish (each is committed or not, never half) and
nothing else starts. Captures skip the per-capture checkpoint; one checkpoint is signed when
the batch ends (if the archive's key is at hand).

Each capture commits under the archive lock, so threads (and other processes) are totally
ordered at commit time. This module does not parse or deduplicate URLs beyond what capture
does, and does not print.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from preserve.archive import Archive, CaptureOptions, CaptureResult
from preserve.capture import fetch
from preserve.errors import PreserveError

Outcome = CaptureResult | PreserveError
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class _Job:
    url: str
    host: str


def host_key(url: str) -> str:
    """The politeness key of ``url``: its lower-case host (InvalidURLError if it has none)."""
    return fetch.parse_url(url).raw_host.decode("ascii", "replace").lower()


def capture_many(
    archive: Archive,
    urls: Iterable[str],
    options: CaptureOptions | None = None,
    *,
    concurrency: int = 4,
    per_host_delay: float = 1.0,
    progress: Progress | None = None,
    note: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, Outcome]]:
    """Capture ``urls`` into ``archive``; yield ``(url, result or error)`` as each finishes.

    ``progress(done, total)`` is called after each URL; ``note(text)`` is told when the
    closing checkpoint could not be signed. See the module docstring for the scheduling rules.
    Raises ValueError for ``concurrency < 1`` or a negative delay.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if per_host_delay < 0:
        raise ValueError("per_host_delay must not be negative")
    targets = list(urls)
    total = len(targets)
    done = 0
    pending: collections.deque[_Job] = collections.deque()
    for url in targets:
        try:
            pending.append(_Job(url, host_key(url)))
        except PreserveError as exc:
            done += 1
            if progress is not None:
                progress(done, total)
            yield url, exc
    busy: set[str] = set()
    ready_at: dict[str, float] = {}
    running: dict[Future[CaptureResult], _Job] = {}
    committed = 0
    finished = False
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="preserve-capture")
    try:
        while pending or running:
            now = time.monotonic()
            for job in _eligible(pending, busy, ready_at, now, concurrency - len(running)):
                busy.add(job.host)
                future = executor.submit(archive.capture, job.url, options, checkpoint=False)
                running[future] = job
            # wait for a completion, or until a waiting host's delay has passed (if a slot is free)
            wake = _next_ready(pending, busy, ready_at) if len(running) < concurrency else None
            timeout = None if wake is None else max(0.0, wake - time.monotonic())
            if not running:
                time.sleep(timeout or 0.0)
                continue
            completed, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in completed:
                job = running.pop(future)
                busy.discard(job.host)
                ready_at[job.host] = time.monotonic() + per_host_delay
                outcome: Outcome
                try:
                    outcome = future.result()
                    committed += 1
                except PreserveError as exc:
                    outcome = exc
                done += 1
                if progress is not None:
                    progress(done, total)
                yield job.url, outcome
        finished = True
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if committed:
            try:  # stopped early or not: what was committed gets its checkpoint if it can
                archive.checkpoint()
            except (PreserveError, OSError) as exc:
                if note is not None and finished:
                    note(f"the batch's checkpoint was not signed: {exc}")


def _eligible(
    pending: collections.deque[_Job],
    busy: set[str],
    ready_at: dict[str, float],
    now: float,
    slots: int,
) -> list[_Job]:
    """Take from ``pending`` (in input order) up to ``slots`` jobs that may start now: one per
    host, and only for hosts that are idle and past their delay."""
    chosen: list[_Job] = []
    taken: set[str] = set()
    for job in list(pending):
        if len(chosen) >= slots:
            break
        if job.host in busy or job.host in taken or ready_at.get(job.host, 0.0) > now:
            continue
        chosen.append(job)
        taken.add(job.host)
        pending.remove(job)
    return chosen


def _next_ready(
    pending: collections.deque[_Job], busy: set[str], ready_at: dict[str, float]
) -> float | None:
    """When the earliest waiting, idle host becomes eligible (None: none is waiting on time)."""
    times = [ready_at[j.host] for j in pending if j.host not in busy and j.host in ready_at]
    return min(times) if times else None


__all__ = ["Outcome", "capture_many", "host_key"]
