"""Concurrency: several processes (and threads) capture into one root while verify runs.

* Four ``preserve capture`` processes, three URLs each, run at once against one archive while
  a fifth process runs ``preserve verify`` in a loop. Every capture must land exactly once,
  with its own bytes (each WARC holds only its own URL, each text its own article), the log
  must record each manifest once, and a deep verify at the end must find nothing.
* The two races this test once caught, made deterministic by holding the archive lock the way
  a committing process does: a capture starting meanwhile must not truncate the committer's
  log append in flight, and verify must not report the committer's manifest as unlogged.
* :func:`preserve.batch.capture_many`: bounded thread concurrency, one request in flight per
  host, the per-host delay measured at the server, errors yielded not raised, early stop.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
import pytest
from warcio.archiveiterator import ArchiveIterator

from measure import processes
from preserve import Archive, CaptureOptions, CaptureResult, errors, log
from preserve.batch import GROUP_SIZE, LOOKAHEAD, capture_many
from preserve.capture.fetch import FetchOptions
from preserve.cli.capture import _InputOrder
from servers import ReceivedRequest, TestServer, _head

PYTHON_CLI = [sys.executable, "-c", "from preserve.cli import main; main()"]


def page(n: int) -> bytes:
    paragraphs = "".join(f"<p>Report {n}, paragraph {i}: the council met at night to discuss "
                         f"the river and the market of village {n}.</p>" for i in range(40))
    return (f"<!doctype html><html><head><title>Page {n}</title></head><body><article>"
            f"<h1>Page {n}</h1>{paragraphs}</article></body></html>").encode()


class PacedPages:
    """Serves ``page(n)`` at ``/page?n=N`` in pieces over ``duration`` seconds, and records
    when each request started and finished (server side) for politeness checks."""

    def __init__(self, duration: float = 0.1) -> None:
        self.duration = duration
        self.lock = threading.Lock()
        self.spans: list[tuple[str, float, float]] = []  # (target, start, end)
        self.in_flight = 0
        self.max_in_flight = 0

    def __call__(self, request: ReceivedRequest, conn: socket.socket) -> None:
        start = time.monotonic()
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            n = int(request.target.partition("?n=")[2] or 0)
            body = page(n)
            conn.sendall(_head(200, "OK", [("Content-Type", "text/html; charset=utf-8"),
                                           ("Content-Length", str(len(body))),
                                           ("Connection", "close")]))
            pieces = 5
            step = -(-len(body) // pieces)
            for i in range(pieces):
                time.sleep(self.duration / pieces)
                conn.sendall(body[i * step:(i + 1) * step])
        finally:
            with self.lock:
                self.in_flight -= 1
                self.spans.append((request.target, start, time.monotonic()))


@pytest.fixture
def second_server() -> Iterator[TestServer]:
    """A server on another loopback address: another host for politeness purposes."""
    with TestServer(host="127.0.0.2") as server:
        yield server


def _warc_targets(path: Path) -> set[str]:
    with path.open("rb") as f:
        return {r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(f)
                if r.rec_type in ("request", "response")}


def _assert_each_capture_is_its_own(root: Path, expected: dict[str, int]) -> None:
    """Every manifest's WARC holds only its own URL; its text is its own page."""
    archive = Archive(root)
    seen: dict[str, str] = {}
    for summary in archive.captures():
        assert summary.requested_url not in seen, "a URL was captured twice"
        seen[summary.requested_url] = summary.capture_id
        m = archive.manifest(summary.capture_id)
        assert _warc_targets(root / m.warc.path) == {summary.requested_url}
        n = expected[summary.requested_url]
        assert summary.title == f"Page {n}"
        assert f"village {n}." in archive.text(summary.capture_id)
    assert set(seen) == set(expected)


def _seen_codes(results: list[dict[str, object]]) -> dict[str, int]:
    seen: dict[str, int] = {}
    for result in results:
        counts = result["counts"]
        assert isinstance(counts, dict)
        for code in counts:
            seen[code] = seen.get(code, 0) + 1
    return seen


# --- processes ---------------------------------------------------------------------------------

# Run in a fresh interpreter: single-threaded (so the pool forks) and with nothing of the
# extractor imported yet, as a `preserve capture --from` process is when its pool starts.
_POOL_PROBE = """
import sys
from preserve.batch import WORKER_MODULES
from preserve.workers import process_pool

def loaded():
    return [name for name in WORKER_MODULES if name in sys.modules]

assert "preserve.extract" not in sys.modules, "the probe must start without the extractor"
pool = process_pool(2, preload=WORKER_MODULES)
print(sorted(set(pool.submit(loaded).result() + pool.submit(loaded).result())))
pool.shutdown()
"""


def test_capture_workers_start_with_what_they_need_already_imported() -> None:
    """Each worker process imported the extractor, the WARC writer and the rest itself (~0.15
    s of CPU each: 1.5 ms a page over a batch of 300); the pool loads them before it forks."""
    from preserve.batch import WORKER_MODULES  # noqa: PLC0415

    done = subprocess.run([sys.executable, "-c", _POOL_PROBE], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == str(sorted(WORKER_MODULES))


_WARM_PROBE = """
import sys
from preserve.batch import WORKER_MODULES, warm_worker_caches
from preserve.capture import codings, provenance
from preserve.warc import write
from preserve.workers import process_pool

def cached():
    return (provenance.software.cache_info().currsize, write.software.cache_info().currsize,
            codings._decodable.cache_info().currsize, "_strptime" in sys.modules,
            "encodings.idna" in sys.modules)

pool = process_pool(2, preload=WORKER_MODULES, warm=warm_worker_caches)
print(sorted(set(pool.submit(cached).result() for _ in range(4))))
pool.shutdown()
"""


def test_capture_workers_start_with_the_per_process_caches_filled() -> None:
    """A worker's first capture found the library versions (importlib.metadata parses every
    package's metadata), the login name and the decoders on offer, and imported strptime's
    module and the idna codec: ~10 ms of CPU in each worker. They are computed once, before
    the workers are forked."""
    done = subprocess.run([sys.executable, "-c", _WARM_PROBE], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[(1, 1, 1, True, True)]"


# warm() records the process it ran in; run in a fresh interpreter, with another thread
# running when asked (then the pool must not fork: it starts a forkserver's workers).
_WARM_WHERE_PROBE = """
import os, sys, threading
sys.path.insert(0, {folder!r})
import warm_probe
from preserve.workers import process_pool

stop = threading.Event()
if {busy}:
    threading.Thread(target=stop.wait, daemon=True).start()
pool = process_pool(2, warm=warm_probe.warm)
where = {{pool.submit(warm_probe.report).result() for _ in range(6)}}
print(pool._mp_context.get_start_method(), all(warmed == os.getpid() for warmed, worker in where),
      all(warmed == worker for warmed, worker in where))
pool.shutdown()
stop.set()
"""
_WARM_MODULE = """
import os
WARMED = None

def warm():
    global WARMED
    WARMED = os.getpid()

def report():
    return WARMED, os.getpid()
"""


@pytest.mark.parametrize(("busy", "expected"), [(False, "fork True False"),
                                                (True, "forkserver False True")])
def test_pool_warm_runs_once_before_forking_else_in_each_worker(
        tmp_path: Path, busy: bool, expected: str) -> None:
    (tmp_path / "warm_probe.py").write_text(_WARM_MODULE)
    probe = _WARM_WHERE_PROBE.format(folder=str(tmp_path), busy=busy)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == expected


_FORK_PROBE = """
from preserve.extract import extract
from preserve.workers import process_pool

extract(b"<p>" + b"words " * 50)  # the extractor's watcher thread now runs
pool = process_pool(2)
print(pool._mp_context.get_start_method())
pool.shutdown()
"""


def test_the_pool_still_forks_beside_the_extractors_watcher() -> None:
    """A process that has extracted a page runs the time limit's watcher thread, which
    takes no lock a forked child needs: the pool still forks (a forkserver would make each
    worker import everything again)."""
    from preserve.extract.budget import THREAD_NAME  # noqa: PLC0415
    from preserve.workers import _FORK_SAFE_THREADS  # noqa: PLC0415

    assert THREAD_NAME in _FORK_SAFE_THREADS
    done = subprocess.run([sys.executable, "-c", _FORK_PROBE], capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.strip() == "fork"


_PREPARE_PROBE = """
import importlib, json, sys
from datetime import UTC, datetime
from pathlib import Path
from preserve.batch import WORKER_MODULES, prepare_in
from preserve.archive import CaptureOptions
from preserve.storage.layout import new_capture_id

for name in WORKER_MODULES:
    importlib.import_module(name)
before = set(sys.modules)
now = datetime.now(UTC)
prepare_in(sys.argv[1], CaptureOptions(), new_capture_id(now), now, Path(sys.argv[2]))
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_preloaded_modules_are_all_a_capture_preparation_imports(
    http_server: TestServer, tmp_path: Path
) -> None:
    http_server.routes["/p"] = lambda request, conn: conn.sendall(
        _head(200, "OK", [("Content-Type", "text/html; charset=utf-8"),
                          ("Content-Length", str(len(page(1)))), ("Connection", "close")])
        + page(1))
    done = subprocess.run(
        [sys.executable, "-c", _PREPARE_PROBE, http_server.url("/p"), str(tmp_path / "spool")],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "PRESERVE_CONFIG_HOME": str(tmp_path / "config")})
    heavy = ("preserve", "lxml", "selectolax", "warcio", "blake3", "cryptography", "httpcore",
             "h11", "charset_normalizer", "bs4")
    late = [name for name in json.loads(done.stdout) if name.split(".")[0] in heavy]
    assert late == [], f"imported by each worker on its first capture: {late}"



def test_processes_capture_into_one_root_while_verify_runs(
    tmp_path: Path, http_server: TestServer
) -> None:
    handler = PacedPages(duration=0.15)
    http_server.routes["/page"] = handler
    root, key = tmp_path / "root", tmp_path / "archive.key"
    base = [*PYTHON_CLI, "--root", str(root), "--key", str(key)]
    subprocess.run([*base, "init"], check=True, capture_output=True)
    urls = {http_server.url(f"/page?n={n}"): n for n in range(12)}
    groups = [list(urls)[i::4] for i in range(4)]

    verify_results: list[dict[str, object]] = []
    stop = threading.Event()

    def keep_verifying() -> None:
        while not stop.is_set():
            result = subprocess.run([*base, "verify", "--json"], check=False,
                                    capture_output=True, text=True, timeout=60)
            try:
                verify_results.append({"status": result.returncode,
                                       **json.loads(result.stdout)["result"]})
            except ValueError:  # verify could not run at all: keep what it said
                verify_results.append({"status": result.returncode, "counts": {},
                                       "stderr": result.stderr})

    verifier = threading.Thread(target=keep_verifying)
    verifier.start()
    try:
        procs = [subprocess.Popen([*base, "capture", "--http", *group], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for group in groups]
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        stop.set()
        verifier.join(timeout=120)
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert len(out.splitlines()) == 3, out
    assert handler.max_in_flight >= 2, "the captures did not overlap"
    assert verify_results, "verify never ran"
    # A verify running beside captures may see in-flight debris (warnings) but no error: not
    # even E304 for a capture between its manifest and its log leaf (the log audit runs under
    # the archive lock).
    in_flight_codes = {"W301", "W302", "W303", "W501", "W502", "W503", "W504", "W307"}
    for result in verify_results:
        counts = result["counts"]
        assert isinstance(counts, dict)
        assert result["status"] in (0, 1), result
        assert set(counts) <= in_flight_codes, result
    print(f"\n{len(verify_results)} concurrent verify runs; runs reporting each code: "
          f"{_seen_codes(verify_results)}")
    _assert_each_capture_is_its_own(root, urls)
    with log.open_log(root, readonly=True) as opened:
        captures = [e for _, data in opened.iter_entries()
                    if isinstance(e := log.parse_entry(data), log.ManifestLeaf)]
    assert sorted(e.capture_id for e in captures) == sorted(
        s.capture_id for s in Archive(root).captures())
    report = Archive(root, key=key).verify(deep=True, record=False)
    assert not report.findings, [f.to_json() for f in report.findings]


# --- threads: capture_many -----------------------------------------------------------------------


def _options() -> CaptureOptions:
    return CaptureOptions(fetch=FetchOptions(timeout=30))


def test_capture_many_is_polite_per_host_and_concurrent_across_hosts(
    tmp_path: Path, http_server: TestServer, second_server: TestServer
) -> None:
    first, second = PacedPages(duration=0.15), PacedPages(duration=0.15)
    http_server.routes["/page"] = first
    second_server.routes["/page"] = second
    urls = {http_server.url(f"/page?n={n}"): n for n in range(3)}
    urls |= {second_server.url(f"/page?n={n}"): n for n in range(3, 6)}
    archive = Archive(tmp_path / "root")
    ticks: list[tuple[int, int]] = []
    delay = 0.3
    started = time.monotonic()
    results = list(capture_many(archive, list(urls), _options(), concurrency=4,
                                per_host_delay=delay, progress=lambda d, t: ticks.append((d, t))))
    elapsed = time.monotonic() - started
    assert sorted(url for url, _ in results) == sorted(urls)
    assert all(isinstance(outcome, CaptureResult) for _, outcome in results), results
    assert ticks == [(i, 6) for i in range(1, 7)]
    for handler in (first, second):
        spans = sorted(handler.spans, key=lambda s: s[1])
        assert len(spans) == 3
        assert handler.max_in_flight == 1, "two requests to one host at once"
        for (_, _, end), (_, start, _) in itertools.pairwise(spans):
            assert start - end >= delay - 0.01, "per-host delay not respected"
    # the two hosts were served at the same time: one overlapping pair at least
    overlap = any(a_start < b_end and b_start < a_end
                  for _, a_start, a_end in first.spans for _, b_start, b_end in second.spans)
    assert overlap, "hosts were not captured concurrently"
    # sequential would take >= 6 * 0.15 + 4 * 0.3; per host in parallel about half of that
    assert elapsed < 6 * 0.15 + 4 * delay + 1.0
    _assert_each_capture_is_its_own(archive.root, urls)
    assert not Archive(archive.root).verify(record=False).errors


def test_capture_many_yields_errors_and_keeps_going(
    tmp_path: Path, http_server: TestServer
) -> None:
    http_server.routes["/page"] = PacedPages(duration=0.01)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    urls = ["not a url", f"http://127.0.0.1:{dead_port}/", http_server.url("/page?n=1"),
            "ftp://example.org/file"]
    archive = Archive(tmp_path / "root")
    results = dict(capture_many(archive, urls, _options(), per_host_delay=0.0))
    assert isinstance(results["not a url"], errors.InvalidURLError)
    assert isinstance(results["ftp://example.org/file"], errors.UnsupportedSchemeError)
    assert isinstance(results[f"http://127.0.0.1:{dead_port}/"], errors.ConnectError)
    good = results[http_server.url("/page?n=1")]
    assert isinstance(good, CaptureResult) and good.status == "ok"
    assert len(archive.captures()) == 1
    assert not Archive(archive.root).verify(record=False).errors


def test_capture_many_stops_cleanly_when_the_caller_stops(
    tmp_path: Path, http_server: TestServer
) -> None:
    handler = PacedPages(duration=0.2)
    http_server.routes["/page"] = handler
    urls = [http_server.url(f"/page?n={n}") for n in range(8)]
    archive = Archive(tmp_path / "root")
    batch = capture_many(archive, urls, _options(), concurrency=2, per_host_delay=0.0)
    _, first = next(batch)
    batch.close()  # waits for the capture in flight, commits what was prepared, starts nothing
    assert isinstance(first, CaptureResult)
    requests = len(handler.spans)
    assert requests < len(urls)  # results come per committed group; the rest never started
    time.sleep(0.3)
    assert len(handler.spans) == requests, "a capture started after the caller stopped"
    assert len(archive.captures()) == requests
    report = Archive(archive.root).verify(record=False)
    assert not report.findings or report.codes() <= {
        code for code in report.codes() if code.code == "W304"}, report.to_json()
    assert not list((archive.root / "archive" / "tmp").iterdir()), "debris left behind"


def test_the_end_of_a_batch_commits_what_is_ready_while_the_rest_is_fetched(
    tmp_path: Path, http_server: TestServer, second_server: TestServer
) -> None:
    # Every URL is handed out; one capture is ready, the other still being fetched. Neither
    # the group's size nor its wait is reached, but no larger group can form: the ready one
    # is committed (and reported) at once. The slow server answers only when the caller has
    # the first result, or after 10 s.
    reported = threading.Event()
    released_by: list[str] = []

    def slow(request: ReceivedRequest, conn: socket.socket) -> None:
        released_by.append("result" if reported.wait(10) else "timeout")
        PacedPages(duration=0.0)(request, conn)

    http_server.routes["/page"] = PacedPages(duration=0.0)
    second_server.routes["/page"] = slow
    urls = [http_server.url("/page?n=1"), second_server.url("/page?n=2")]
    archive = Archive(tmp_path / "root")
    results = []
    for url, outcome in capture_many(archive, urls, _options(), concurrency=2,
                                     per_host_delay=0.0, group_size=1000, group_wait=60.0,
                                     processes=False):
        results.append((url, outcome))
        reported.set()
    assert [url for url, _ in results] == urls
    assert all(isinstance(outcome, CaptureResult) for _, outcome in results), results
    assert released_by == ["result"], "the ready capture waited for the one being fetched"
    assert not Archive(archive.root).verify(record=False).errors


def test_capture_many_rejects_bad_limits(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "root")
    with pytest.raises(ValueError):
        list(capture_many(archive, [], concurrency=0))
    with pytest.raises(ValueError):
        list(capture_many(archive, [], per_host_delay=-1))


# --- the two races, made deterministic ------------------------------------------------------------


def _copy_capture(source: Path, capture_id: str, root: Path) -> str:
    """Copy one committed capture's files (not its log leaf) into ``root``; returns the
    manifest's relative path."""
    m = Archive(source).manifest(capture_id)
    manifest_rel = f"manifests/{capture_id}.json"
    objects = [ref.path for ref in (m.text, m.comments) if ref is not None]
    for rel in (m.warc.path, *objects, manifest_rel):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((source / rel).read_bytes())
    return manifest_rel


def test_starting_a_capture_leaves_an_append_in_flight_alone(
    tmp_path: Path, http_server: TestServer
) -> None:
    http_server.routes["/page"] = PacedPages(duration=0.01)
    root = tmp_path / "root"
    Archive(root).capture(http_server.url("/page?n=1"), _options())
    entries = root / "manifests" / "log" / "entries.jsonl"
    committed = entries.stat().st_size
    holder = filelock.FileLock(root / "archive" / ".lock")
    holder.acquire()  # a committer holds the archive lock and is half-way through an append:
    with entries.open("ab") as f:
        f.write(b'{"an append": "in flight"}\n')
    in_flight = entries.stat().st_size
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(
        Archive(root).capture(http_server.url("/page?n=2"), _options())))
    worker.start()
    try:
        deadline = time.monotonic() + 20  # wait until that capture waits for the lock
        while not list((root / "archive" / "tmp").glob("*/capture.warc.gz")):
            assert time.monotonic() < deadline and worker.is_alive(), outcome
            time.sleep(0.01)
        assert entries.stat().st_size == in_flight, \
            "a starting capture truncated another process's append in flight"
    finally:
        os.truncate(entries, committed)  # the committer gives up its append and unlocks
        holder.release()
        worker.join(timeout=30)
    assert outcome and isinstance(outcome[0], CaptureResult), outcome
    assert not Archive(root).verify(record=False).errors


def test_verify_waits_for_a_commit_between_manifest_and_log(
    tmp_path: Path, http_server: TestServer
) -> None:
    http_server.routes["/page"] = PacedPages(duration=0.01)
    root, other = tmp_path / "root", tmp_path / "other"
    Archive(root).capture(http_server.url("/page?n=1"), _options())
    foreign = Archive(other).capture(http_server.url("/page?n=2"), _options())
    holder = filelock.FileLock(root / "archive" / ".lock")
    holder.acquire()  # a committer holds the lock and has linked its manifest, not its leaf
    try:
        _copy_capture(other, foreign.capture_id, root)
        reports: list[Any] = []
        auditor = threading.Thread(target=lambda: reports.append(
            Archive(root).verify(record=False)))
        auditor.start()
        time.sleep(0.5)
        log.record_manifest(root, foreign.capture_id)  # the committer logs it and unlocks
    finally:
        holder.release()
    auditor.join(timeout=30)
    assert reports, "verify did not finish"
    codes = {c.code for c in reports[0].codes()}
    assert "E304" not in codes, "verify reported a commit in flight as an error"


def test_cli_capture_concurrency_option(
    tmp_path: Path, http_server: TestServer, second_server: TestServer
) -> None:
    first, second = PacedPages(duration=0.1), PacedPages(duration=0.1)
    http_server.routes["/page"] = first
    second_server.routes["/page"] = second
    urls = [http_server.url("/page?n=1"), second_server.url("/page?n=2"),
            http_server.url("/page?n=3"), second_server.url("/page?n=4")]
    result = subprocess.run([*PYTHON_CLI, "--root", str(tmp_path / "root"), "capture", "--http",
                             "--concurrency", "2", "--per-host-delay", "0.2", "--json", *urls],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)["result"]
    assert [c["requested_url"] for c in document["captures"]] == urls  # input order
    # streamed from a spool in input order, printed as finish() prints any envelope
    assert result.stdout == json.dumps(json.loads(result.stdout), indent=2,
                                       ensure_ascii=False, sort_keys=True) + "\n"
    assert first.max_in_flight == 1 and second.max_in_flight == 1
    overlap = any(a_start < b_end and b_start < a_end
                  for _, a_start, a_end in first.spans for _, b_start, b_end in second.spans)
    assert overlap, "--concurrency 2 did not capture the two hosts at once"


class _CountedUrls:
    """An endless-looking URL source that counts how many URLs were taken from it."""

    def __init__(self, urls: list[str], repeat: int) -> None:
        self.urls, self.repeat, self.taken = urls, repeat, 0

    def __iter__(self) -> Iterator[str]:
        for _ in range(self.repeat):
            for url in self.urls:
                self.taken += 1
                yield url


def test_capture_many_reads_its_urls_lazily_with_a_bounded_lookahead(
    tmp_path: Path, http_server: TestServer
) -> None:
    """The first result comes after at most ``lookahead`` URLs were read, not after all of a
    long list was parsed (a million URLs took 350 MB and 25 s before the first capture)."""
    http_server.routes["/page"] = PacedPages(duration=0.01)
    source = _CountedUrls([http_server.url("/page?n=1"), "not a url"], repeat=50_000)
    archive = Archive(tmp_path / "root")
    batch = capture_many(archive, source, _options(), concurrency=2, per_host_delay=0.0)
    invalid = 0
    try:
        for _url, outcome in batch:
            if isinstance(outcome, CaptureResult):
                break
            invalid += 1
        # read: the window, the invalid lines among it, and what was captured while the first
        # group waited to commit (a group at most); never the whole list
        bound = 2 * (LOOKAHEAD + GROUP_SIZE)
        assert source.taken <= bound, f"{source.taken} URLs read before the first capture"
        assert invalid >= 1  # an invalid line is reported as it is read
    finally:
        batch.close()
    assert source.taken <= bound
    assert 1 <= len(archive.captures()) <= GROUP_SIZE + 2
    assert not list((archive.root / "archive" / "tmp").iterdir()), "debris left behind"


def test_json_results_are_spooled_in_input_order() -> None:
    """--json results of a batch go to a spool as soon as every earlier one is in; those
    that finish ahead wait, gaps (a batch stopped early) close up; the text is the list as
    json.dumps prints it inside the envelope."""
    order = _InputOrder()
    items = [{"n": i, "title": "é\u2028\ud800" if i == 2 else f"t{i}", "notes": [i]}
             for i in range(6)]
    for index in (1, 0, 3, 5, 2):  # 4 never reported
        order.add(index, items[index])
    assert order._next == 4 and list(order._ahead) == [5]  # only the one past the gap held
    text = "".join(order.parts())
    wanted = [items[i] for i in (0, 1, 2, 3, 5)]
    envelope = json.dumps({"a": {"captures": wanted}}, indent=2, ensure_ascii=False,
                          sort_keys=True)
    inner = envelope[envelope.index("["):envelope.rindex("]") + 1]
    assert text == inner.replace("\ud800", "\\ud800")  # a lone surrogate, escaped
    assert "".join(_InputOrder().parts()) == "[]"


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``."""
    return [child for child, fields in processes() if int(fields[1]) == pid]


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal: Linux")
@pytest.mark.parametrize(("how", "status"), [("group-sigint", 130), ("sigterm", 143),
                                             ("sigkill", -9)])
def test_a_stopped_batch_says_so_once_and_leaves_no_worker_behind(
        http_server: TestServer, tmp_path: Path, how: str, status: int) -> None:
    """Ctrl-C (SIGINT to the whole process group) on a batch with worker processes: each
    worker printed a KeyboardInterrupt traceback and the broken pool made it an internal
    error (exit 5). SIGTERM left the workers running for ever with the caller's pipes open,
    as did SIGKILL. Now: one line and exit 130 or 143, and the workers end with their
    parent, even one killed outright."""
    def slow(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(_head(200, "OK", [("Content-Type", "text/html"), ("Content-Length",
                                                                       "100000")]))
        for _ in range(200):
            time.sleep(0.05)
            conn.sendall(b"<p>slow</p>" * 10)

    http_server.routes["/slow"] = slow
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{http_server.url('/slow')}?{i}\n" for i in range(8)))
    process = subprocess.Popen(
        [sys.executable, "-c", "from preserve.cli import main; main()", "--root",
         str(tmp_path / "root"), "capture", "--http", "--concurrency", "4", "--from", str(urls)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 20
    while len(_children(process.pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(process.pid)
    assert len(workers) >= 4, workers
    time.sleep(0.5)  # the workers are fetching
    if how == "group-sigint":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    if status > 0:
        assert "Traceback" not in err and "internal error" not in err, err
        assert err.strip().splitlines()[-1] in ("preserve: interrupted", "preserve: terminated")
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
             and b"Z" not in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[1][:3]]
    assert not alive, alive
