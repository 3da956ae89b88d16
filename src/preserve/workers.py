"""Worker processes for CPU-bound work: preparing captures (batch), deep checks (verify).

:func:`process_pool` starts every worker at once. They are forked from this process when it
runs no other thread (the extractor's watcher aside) — cheap, and they share what it has
imported, ``preload`` included, so no worker spends its first ~0.15 s of CPU importing the
extractor and the WARC writer again, nor computing again what ``warm`` cached — else started
from a ``forkserver`` that imports ``preload`` once for all of them, and ``warm`` runs in
each worker as it starts (forking is unsafe while another thread may hold a lock). Does not
decide what runs in the workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext

#: The extractor's watcher (:mod:`preserve.extract.budget`): it takes no lock but its own,
#: which a forked child never uses (the child starts a watcher of its own), so it does not
#: make forking unsafe. Named here, not imported: that would load the extractor.
_FORK_SAFE_THREADS = frozenset({"preserve-extract-watchdog"})


def _alone() -> bool:
    """Whether this process runs no other thread (but those known to be fork-safe)."""
    current = threading.current_thread()
    return all(thread is current or thread.name in _FORK_SAFE_THREADS
               for thread in threading.enumerate())


#: prctl(2) option: the signal a process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _worker_start(parent: int | None, warm: Callable[[], object] | None) -> None:
    """In each worker, first: Ctrl-C is the parent's to handle (a terminal sends SIGINT to
    the whole group: every worker printed a KeyboardInterrupt traceback and the pool broke,
    an internal error); and, on Linux, the worker is sent SIGTERM when its parent dies (a
    parent killed left its workers blocked for ever, holding the caller's pipes open; a
    forkserver's workers follow the forkserver, which ends with the process that made it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler a fork inherits
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if parent is not None and os.getppid() != parent:  # it died before that was set
            os._exit(0)
    if warm is not None:
        warm()


def process_pool(workers: int, preload: Sequence[str] = (),
                 warm: Callable[[], object] | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, all started before it is returned, with the modules
    named in ``preload`` imported in them and ``warm`` (a module-level function: it may be
    sent to a forkserver's workers) run for them: once, here, before forking, else in each."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and _alone():
        for name in preload:
            importlib.import_module(name)
        if warm is not None:
            warm()
        context: BaseContext = multiprocessing.get_context("fork")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                   initializer=_worker_start, initargs=(os.getpid(), None))
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(list(preload))
        parent = os.getpid() if method == "spawn" else None  # a forkserver forks them
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                   initializer=_worker_start, initargs=(parent, warm))
    try:
        pool.submit(os.getpid).result()  # start every worker now, while single-threaded
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool
