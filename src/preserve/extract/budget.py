"""A wall-clock time limit for one extraction, in any thread.

The extractor's passes are linear or bounded on every shape of markup we know of
(docs/extraction.md, "Markup built to be slow"), but a page crafted against a pass we have not
thought of could still make one run for minutes — and every capture, import and ``verify
--deep`` runs the extractor. :func:`time_limit` bounds that: when the time is up,
:class:`Stopped` is raised in the extracting thread, at its next Python bytecode.

One daemon thread per process (started at the first use, started again in a forked child)
watches the limits armed at the moment (one a thread extracting); arming and disarming cost
about 2 us and wake it only when the new limit ends before the one it waits for. The
exception is delivered with CPython's ``PyThreadState_SetAsyncExc``, so any thread can be
stopped, not only the main one (signals reach only the main thread). A call into C code
(lexbor's parse, a libxml2 search) is not interrupted: the exception arrives when it
returns, which the input bounds keep short.

Not a memory limit, and not preemptive: :class:`Stopped` derives from ``BaseException`` so
that no ``except Exception`` inside the extractor swallows it, and whoever arms a limit must
catch it (:func:`preserve.extract.extract` does, and returns a stopped result).
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Stopped(BaseException):
    """Raised in an extracting thread whose time limit has passed."""


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int


#: The watcher thread's name (:mod:`preserve.workers` knows it as safe to fork beside).
THREAD_NAME = "preserve-extract-watchdog"
#: Seconds after which a limit that fired and is still armed fires again.
_AGAIN_AFTER = 1.0
#: The longest the watcher waits at once (a lock's wait overflows past some 10^9 s).
_LONGEST = 3600.0


class _Armed:
    __slots__ = ("deadline", "fired", "thread_id")

    def __init__(self, thread_id: int, deadline: float) -> None:
        self.thread_id = thread_id
        self.deadline = deadline
        self.fired = False


class _Watchdog:
    """The armed limits of a process, and the thread that enforces them."""

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._armed: set[_Armed] = set()
        self._thread: threading.Thread | None = None
        self._wake: float | None = None  # when the thread wakes next (None: when told)

    def arm(self, seconds: float) -> _Armed:
        armed = _Armed(threading.get_ident(), time.monotonic() + seconds)
        with self._lock:
            self._armed.add(armed)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True,
                                                name=THREAD_NAME)
                self._thread.start()
            elif self._wake is None or armed.deadline < self._wake:
                self._lock.notify()
        return armed

    def disarm(self, armed: _Armed) -> None:
        """Forget ``armed``; if it fired and its exception has not been raised yet, withdraw
        the exception (it is then never raised)."""
        with self._lock:
            if armed.fired:
                _set_async_exc(armed.thread_id, ctypes.py_object())  # NULL: clear the pending
            self._armed.discard(armed)

    def _watch(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for armed in [a for a in self._armed if a.deadline <= now]:
                    # raised again until disarmed: an exception raised where Python drops it
                    # (a finaliser run by the garbage collector, a library's bare except)
                    # must not let the extraction run on unbounded
                    armed.fired = True
                    armed.deadline = now + _AGAIN_AFTER
                    _set_async_exc(armed.thread_id, ctypes.py_object(Stopped))
                self._wake = min((a.deadline for a in self._armed), default=None)
                self._lock.wait(None if self._wake is None else min(self._wake - now, _LONGEST))


_watchdog = _Watchdog()


def _after_fork_in_child() -> None:
    global _watchdog  # noqa: PLW0603 - the parent's watchdog thread does not exist here
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`Stopped` in this thread if the block runs longer than ``seconds``
    (``None`` or infinity: no limit). The exception is raised inside the block or, if the
    time runs out just as the block ends, on leaving it; never after. ValueError for a
    negative or NaN ``seconds``."""
    if seconds is None or seconds == math.inf:
        yield
        return
    if not seconds >= 0:
        raise ValueError(f"a time limit is a number of seconds, not {seconds!r}")
    armed = _watchdog.arm(seconds)
    try:
        yield
    finally:
        _watchdog.disarm(armed)


__all__ = ["Stopped", "time_limit"]
