"""The extractor's time limit (:mod:`preserve.extract.budget`): a page still being extracted
after it is stopped with an empty text and a reason that says so, in any thread and in a
forked child; an extraction that ends as its time runs out never lets the stop escape."""

from __future__ import annotations

import gc
import multiprocessing
import sys
import threading
import time
import weakref

import pytest

from preserve.extract import REASON_STOPPED, budget, extract, was_stopped
from preserve.extract.budget import Stopped, call_with_time_limit

# About 1 MB of ordinary markup: 0.1-0.3 s to extract, far above the limits used below.
LARGE = ("<html><body>" + "".join(
    f"<div class=c{i}><p>Paragraph {i} of a long page, " + "words " * 30 + "</p></div>"
    for i in range(4000)) + "</body></html>").encode()
SMALL = ("<html><body><article><h1>Title</h1>" + "<p>A sentence of the article. </p>" * 40
         + "</article></body></html>").encode()


def test_an_extraction_past_its_limit_is_stopped_with_a_reason() -> None:
    started = time.monotonic()
    stopped = extract(LARGE, time_limit=0.02)
    took = time.monotonic() - started
    assert stopped.text == "" and was_stopped(stopped)
    assert stopped.reason is not None and stopped.reason.startswith(REASON_STOPPED)
    assert "0.02 s" in stopped.reason
    assert took < 1.0
    finished = extract(LARGE, time_limit=None)
    assert finished.text and not was_stopped(finished)
    assert extract(LARGE).text == finished.text  # the default limit (30 s) is not reached


def test_an_extraction_in_another_thread_is_stopped_too() -> None:
    results = []
    worker = threading.Thread(target=lambda: results.append(extract(LARGE, time_limit=0.02)))
    worker.start()
    worker.join(timeout=30)
    assert len(results) == 1 and was_stopped(results[0])


def _child(queue: multiprocessing.Queue[bool]) -> None:
    queue.put(was_stopped(extract(LARGE, time_limit=0.02)))


def test_the_watchdog_is_started_again_in_a_forked_child() -> None:
    """The parent's watchdog thread does not exist in a fork: the child starts its own."""
    assert was_stopped(extract(LARGE, time_limit=0.02))  # the parent's watchdog is running
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bool] = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=60) is True
    finally:
        child.join(timeout=60)
    assert child.exitcode == 0


def test_a_stop_as_the_extraction_ends_never_escapes() -> None:
    """Limits close to an extraction's own duration, with the interpreter switching threads
    every 50 us so that the watchdog fires at every moment of it, the end included: each
    result is the full text or a stopped one, nothing is raised, no limit is left armed, and
    no stop comes afterwards (a limit left armed would be fired again 50 ms later)."""
    full = extract(SMALL, time_limit=None)
    started = time.perf_counter()
    for _ in range(5):
        extract(SMALL, time_limit=None)
    took = (time.perf_counter() - started) / 5
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.00005)
    kinds = set()
    try:
        for i in range(1500):
            result = extract(SMALL, time_limit=took * (0.1 + (i % 30) / 15))
            assert result == full or (was_stopped(result) and result.text == "")
            kinds.add(was_stopped(result))
        assert not budget._watchdog.armed
        busy_until = time.monotonic() + 1.5  # a stray stop would be raised in here
        while time.monotonic() < busy_until:
            sum(range(1000))
    finally:
        sys.setswitchinterval(previous)
    assert kinds == {True, False}


def _spin() -> None:
    while True:
        sum(range(100))


def test_a_call_past_its_limit_raises_stopped_and_none_means_no_limit() -> None:
    with pytest.raises(Stopped):
        call_with_time_limit(0.01, _spin)
    assert call_with_time_limit(None, time.sleep, 0.02) is None
    assert call_with_time_limit(5, divmod, 7, 2) == (3, 1)
    time.sleep(0.05)  # disarmed on return: nothing is raised later
    assert not budget._watchdog.armed


def test_a_limited_call_keeps_no_reference_to_its_arguments() -> None:
    """A capture extracts page after page: no page may be kept alive by the limit's
    bookkeeping (a reference cycle through the call's frame would hold it until a
    garbage collection)."""

    class Page:
        pass

    page = Page()
    kept = weakref.ref(page)
    call_with_time_limit(5, id, page)
    del page
    assert kept() is None


def test_a_stop_that_is_swallowed_is_raised_again() -> None:
    """A library that catches everything (or a finaliser, where Python drops exceptions)
    does not let the extraction run on: the stop comes again 50 ms later."""
    started = time.monotonic()
    swallowed = []

    def swallowing() -> None:
        try:
            _spin()
        except Stopped:
            swallowed.append(1)
        _spin()

    with pytest.raises(Stopped):
        call_with_time_limit(0.01, swallowing)
    assert swallowed == [1]
    assert time.monotonic() - started < 0.5


class _SlowFinaliser:
    """Garbage in a reference cycle whose finaliser runs Python code for ~3 ms."""

    def __init__(self) -> None:
        self.cycle = self

    def __del__(self) -> None:
        sum(range(100_000))


def _collect_then_work() -> None:
    garbage = [_SlowFinaliser() for _ in range(40)]  # ~120 ms of finalisers
    del garbage
    gc.collect()  # the limit runs out in here, inside a finaliser
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        sum(range(100))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_dropped_by_a_finaliser_still_stops_the_call() -> None:
    """Garbage left by earlier work (a test suite's, a capture's) is collected during an
    extraction: its finalisers run Python code in which Python drops exceptions. A stop that
    lands there is sent again soon enough that the call is still stopped, well before its
    end (it used to be sent again only after a second: a 0.3 s extraction then ran to its end)."""
    started = time.monotonic()
    with pytest.raises(Stopped):
        call_with_time_limit(0.02, _collect_then_work)
    assert time.monotonic() - started < 0.6


def test_odd_limits_are_refused_or_mean_no_limit() -> None:
    """A limit is a number of seconds: infinity is none, a negative or NaN one is refused
    (and none of them can stop the watcher thread that serves every other limit)."""
    assert extract(SMALL, time_limit=float("inf")).text
    assert extract(SMALL, time_limit=1e300).text
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="seconds"):
            extract(SMALL, time_limit=bad)
    assert was_stopped(extract(LARGE, time_limit=0.02))  # the watcher still works
