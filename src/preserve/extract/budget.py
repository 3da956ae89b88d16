"""A wall-clock time limit for one extraction, in any thread.

The extractor's passes are linear or bounded on every shape of markup we know of
(docs/extraction.md, "Markup built to be slow"), but a page crafted against a pass we have not
thought of could still make one run for minutes — and every capture, import and ``verify
--deep`` runs the extractor. :func:`call_with_time_limit` bounds that: when the time is up,
:class:`Stopped` is raised in the calling thread, at its next Python bytecode.

One daemon thread per process (started at the first use, started again in a forked child)
watches the limits armed at the moment (one a call running); a limit costs a call about a
microsecond, and arming one wakes it only when the new limit ends before the one it waits
for. The exception is delivered with CPython's ``PyThreadState_SetAsyncExc``, so any thread
can be stopped, not only the main one (signals reach only the main thread). A call into C code
(lexbor's parse, a libxml2 search) is not interrupted: the exception arrives when it
returns, which the input bounds keep short.

A stop arrives at any bytecode, so the end of a call is written to leave no stop behind:
the limit is disarmed by one C call inline in the ``finally`` (a Python function or a context
manager's ``__exit__`` could be interrupted before it disarmed anything), then the watcher's
lock is taken once so that a stop being sent at that moment lands inside the call. The
watcher also fires only while the call's frame is still on its thread's stack. A stop is
raised inside the call or as it returns; never after it.

Not a memory limit, and not preemptive: :class:`Stopped` derives from ``BaseException`` so
that no ``except Exception`` inside the extractor swallows it, and whoever sets a limit must
catch it (:func:`preserve.extract.extract` does, and returns a stopped result).
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Stopped(BaseException):
    """Raised in a thread whose call has run past its time limit."""


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int
_STOPPED = ctypes.py_object(Stopped)


#: The watcher thread's name (:mod:`preserve.workers` knows it as safe to fork beside).
THREAD_NAME = "preserve-extract-watchdog"
#: Seconds after which a limit that fired and is still armed fires again: a stop that lands in
#: a finaliser the garbage collector runs (where Python drops exceptions) is sent again soon
#: enough that the limit is overrun by tens of milliseconds, not by a whole extraction.
_AGAIN_AFTER = 0.05
#: The longest the watcher waits at once (a lock's wait overflows past some 10^9 s).
_LONGEST = 3600.0


class _Armed:
    __slots__ = ("deadline", "frame", "thread_id")

    def __init__(self, thread_id: int, deadline: float, frame: FrameType | None) -> None:
        self.thread_id = thread_id
        self.deadline = deadline
        self.frame = frame  # the limited call's frame: fired only while it runs


class _Watchdog:
    """The armed limits of a process, and the thread that enforces them.

    ``armed`` is changed by :meth:`arm` under ``mutex`` and, when a call ends, by one
    ``set.discard`` without it (atomic under the GIL); the watcher reads it by snapshot."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self._wakeup = threading.Condition(self.mutex)
        self.armed: set[_Armed] = set()
        self._thread: threading.Thread | None = None
        self._wake: float | None = None  # when the thread wakes next (None: when told)

    def arm(self, armed: _Armed) -> None:
        # the raw lock, not the condition: its C ``__enter__`` leaves no bytecode between
        # taking the lock and the block at which a stop could leave it taken
        with self.mutex:
            self.armed.add(armed)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True,
                                                name=THREAD_NAME)
                self._thread.start()
            elif self._wake is None or armed.deadline < self._wake:
                self._wakeup.notify()

    def _watch(self) -> None:
        with self._wakeup:
            while True:
                now = time.monotonic()
                for armed in tuple(self.armed):
                    if armed.deadline > now or armed not in self.armed:
                        continue
                    if not _running(armed):  # its call ended without disarming: forget it
                        self.armed.discard(armed)
                        continue
                    # raised again until disarmed: an exception raised where Python drops it
                    # (a finaliser run by the garbage collector, a library's bare except)
                    # must not let the call run on unbounded
                    armed.deadline = now + _AGAIN_AFTER
                    _set_async_exc(armed.thread_id, _STOPPED)
                self._wake = min((a.deadline for a in tuple(self.armed)), default=None)
                self._wakeup.wait(None if self._wake is None
                                  else min(self._wake - now, _LONGEST))


def _running(armed: _Armed) -> bool:
    """Whether ``armed``'s call is still on its thread's stack."""
    target = armed.frame
    if target is None:
        return False
    frame = sys._current_frames().get(armed.thread_id)
    while frame is not None:
        if frame is target:
            return True
        frame = frame.f_back
    return False


_watchdog = _Watchdog()


def _after_fork_in_child() -> None:
    global _watchdog  # noqa: PLW0603 - the parent's watchdog thread does not exist here
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_after_fork_in_child)


def call_with_time_limit(seconds: float | None, function: Callable[P, R],
                         /, *args: P.args, **kwargs: P.kwargs) -> R:
    """``function(*args, **kwargs)``, raising :class:`Stopped` in this thread if it runs
    longer than ``seconds`` (``None`` or infinity: no limit). The exception is raised inside
    the call or, if the time runs out just as it ends, as it returns; never after.
    ValueError for a negative or NaN ``seconds``."""
    if seconds is None or seconds == math.inf:
        return function(*args, **kwargs)
    if not seconds >= 0:
        raise ValueError(f"a time limit is a number of seconds, not {seconds!r}")
    watchdog = _watchdog
    armed = _Armed(threading.get_ident(), time.monotonic() + seconds, sys._getframe())
    try:
        watchdog.arm(armed)
        return function(*args, **kwargs)
    finally:
        # inline, not a call: a stop raised on entering a disarming function would skip it
        try:
            watchdog.armed.discard(armed)
        finally:
            with watchdog.mutex:  # a stop being sent now is pending once we hold it
                pass
            armed.frame = None  # the frame holds ``armed``: no cycle keeps the arguments


__all__ = ["Stopped", "call_with_time_limit"]
