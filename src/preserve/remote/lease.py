"""The committer lease of an object-store archive: one writer at a time, without locks.

An object store has no file locks, so the archive's single committer holds a *lease*: the
object ``lock/lease.json`` (``{"holder", "host", "pid", "expires"}``), created with a
conditional write (``If-None-Match: *``). Another process that finds it unexpired is refused
with :class:`~preserve.errors.LockTimeoutError` naming the holder and when the lease ends. An
expired lease is taken over with ``If-Match: <its ETag>``, so of two processes racing for it
exactly one wins.

The holder keeps it for as long as it works: :meth:`Lease.acquire` starts a keep-alive
thread (a daemon, stopped and joined by :meth:`Lease.release`, so it never outlives the
``with`` block, unless a renewal hangs: release waits a tenth of the lifetime for it, then
leaves the lease to run out) that renews the lease every third of its lifetime with ``If-Match``. A
renewal the store fails is retried sooner; the lease is *lost* when a renewal is refused
because the object changed (another process took it over, or deleted it), or when the lease
has run out before a renewal succeeded (the holder counts from the moment it sent the last
renewal that succeeded, and gives up a tenth of the lifetime early, so that a write it begins
has time to land). A loss is remembered. While held, the lease is the store's
:attr:`~preserve.remote.store.ObjectStore.write_guard`: every write through that store first
calls :meth:`Lease.check`, which raises ``LockTimeoutError`` once the lease is lost, so the
holder writes nothing after that (a write already sent when it is lost still lands). A lost
lease is not deleted at release, and a held one only if it is still the version its holder
wrote (a conditional delete, ``If-Match``), so a takeover that lands meanwhile stays.
Holders' clocks are assumed to agree to well within the lifetime (``expires`` is wall-clock
time).

A lease guards against other *preserve* processes; what makes a commit safe against anyone
else is that every sealed object is written create-only and the log head only with
``If-Match``. Verify takes no lease, but reads it to wait (a bounded time) for a commit in
progress (:mod:`.meanwhile`). This module does not commit.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import threading
import time
from types import TracebackType

from preserve.errors import LockTimeoutError, NotFoundError, StorageError
from preserve.remote.store import ObjectStore

LEASE = "lock/lease.json"
#: Seconds a lease lasts without renewal (a killed committer blocks others this long at most).
LEASE_SECONDS = 120.0
#: Renewals per lifetime (a failed one is retried four times as often).
RENEWALS = 3
#: The part of its lifetime before ``expires`` at which a holder no longer counts on its lease.
MARGIN = 0.1


def lease_expiry(document: object, now: float) -> float | None:
    """When the lease ``document`` (parsed JSON) expires, in Unix seconds; None when it is
    unreadable or forged: no committer writes a time that is not finite, or further ahead
    than two lifetimes (clocks may disagree by some seconds, not by a lifetime)."""
    try:
        expires = float(document["expires"])  # type: ignore[index]
    except (OverflowError, ValueError, KeyError, TypeError):
        return None
    if not math.isfinite(expires) or expires > now + 2 * LEASE_SECONDS:
        return None
    return expires


class Lease:
    """Hold the archive's committer lease (a context manager; see the module docstring).
    ``seconds``: its lifetime (default :data:`LEASE_SECONDS`); ``wait``: how long
    :meth:`acquire` waits for another holder."""

    def __init__(self, store: ObjectStore, *, seconds: float | None = None,
                 wait: float = 0.0) -> None:
        self.store = store
        self.seconds = LEASE_SECONDS if seconds is None else seconds
        self.wait = wait
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.renewals = 0  # renewals that succeeded
        self._etag: str | None = None
        self._until = -math.inf  # time.monotonic() up to which the lease is surely ours
        self._lost: str | None = None
        self._failure = ""  # why the last renewal failed ("" once one succeeds)
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        self._outer_guard = store.write_guard

    def _body(self) -> bytes:
        return json.dumps({"holder": self.holder, "host": socket.gethostname(),
                           "pid": os.getpid(), "expires": time.time() + self.seconds},
                          sort_keys=True).encode()

    def _put(self, etag: str | None) -> None:
        """Write a fresh lease (``If-Match: etag``, or create-only when None)."""
        sent = time.monotonic()  # before the body's expiry is computed: never later than it
        self._etag = self.store.put_replace(LEASE, self._body(), etag=etag, guarded=False)
        self._until = sent + self.seconds

    # --- taking it -----------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lease (waiting up to ``wait`` seconds for another holder), then keep it."""
        deadline = time.monotonic() + self.wait
        while not self._try_take(deadline):
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        self._hold()

    def _try_take(self, deadline: float) -> bool:
        """One attempt: create the lease or take over an expired one; LockTimeoutError when
        another holder has it past ``deadline``."""
        try:
            self._put(None)
            return True
        except FileExistsError:
            pass
        try:
            data, etag = self.store.get_etag(LEASE, 4096)
            current = json.loads(data)
            holder = str(current["holder"])[:200]
        except NotFoundError:
            return False  # released meanwhile: try again
        except (StorageError, ValueError, KeyError, TypeError, RecursionError):
            current, holder = None, "(unreadable lease)"
        found = lease_expiry(current, time.time())
        expires = 0.0 if found is None else found  # unreadable or forged: taken over
        if expires < time.time():
            try:
                self._put(etag)
                return True
            except FileExistsError:
                return False  # someone else took it over first
        if time.monotonic() >= deadline:
            left = max(0.0, expires - time.time())
            raise LockTimeoutError(
                f"another committer holds the lease {self.store.url}/{LEASE} ({holder}, "
                f"for {left:.0f} s more unless renewed)")
        return False

    def _hold(self) -> None:
        """Guard the store's writes with :meth:`check` and start the keep-alive."""
        self._lost, self._failure = None, ""
        self._stop.clear()
        self._outer_guard = self.store.write_guard
        self.store.write_guard = self.check
        self._keeper = threading.Thread(target=self._keep_alive, daemon=True,
                                        name=f"preserve-lease-{self.holder}")
        self._keeper.start()

    # --- keeping it ------------------------------------------------------------------------------

    def _keep_alive(self) -> None:
        """Renew every ``seconds / RENEWALS``, sooner after a failure, until released or lost."""
        every = self.seconds / RENEWALS
        delay = every
        while not self._stop.wait(delay):
            try:
                self.renew()
                delay = every
            except LockTimeoutError:
                return
            except Exception as exc:  # the store failed: retry while the lease lasts
                self._failure = f"; the last renewal failed: {_one_line(exc)}"
                delay = every / 4

    def renew(self) -> None:
        """Extend the lease now (``If-Match``). LockTimeoutError if it is lost (remembered);
        StorageError if the store failed (the lease lasts until it runs out)."""
        with self._renewing:
            self.check("renewing it")
            try:
                self._put(self._etag)
            except FileExistsError:  # changed: ours still if a retried renewal had landed
                self._put(self._own_etag())
            self.renewals += 1
            self._failure = ""

    def _own_etag(self) -> str | None:
        """The lease's ETag if it still names this holder; else it is lost (LockTimeoutError)."""
        try:
            data, etag = self.store.get_etag(LEASE, 4096)
        except NotFoundError:
            raise self._lose("it was deleted") from None
        try:
            doc = json.loads(data)
            holder = str(doc["holder"]) if isinstance(doc, dict) else "(unreadable lease)"
        except (ValueError, KeyError, RecursionError):
            holder = "(unreadable lease)"
        if holder != self.holder:
            raise self._lose(f"another committer took it over: {holder}")
        return etag

    def _lose(self, why: str) -> LockTimeoutError:
        """Remember that the lease is lost (the first reason stays); the error to raise."""
        if self._lost is None:
            self._lost = why
        return self._error("")

    def _error(self, before: str) -> LockTimeoutError:
        stopped = f"; stopped before {before}" if before else ""
        return LockTimeoutError(f"lost the committer lease {self.store.url}/{LEASE} "
                                f"({self._lost}){stopped}")

    def check(self, before: str = "going on") -> None:
        """Raise LockTimeoutError (one line, naming ``before``, what was to be done) if the
        lease is not held: never taken, released, or lost (see the module docstring)."""
        if self._etag is None and self._lost is None:
            raise LockTimeoutError(f"the committer lease {self.store.url}/{LEASE} is not "
                                   f"held; stopped before {before}")
        if self._lost is None and \
                time.monotonic() >= self._until - MARGIN * self.seconds:
            self._lose(f"it ran out before a renewal succeeded{self._failure}")
        if self._lost is not None:
            raise self._error(before)

    @property
    def lost(self) -> str | None:
        """Why the lease was lost (None while it is held, or was released unlost)."""
        return self._lost

    # --- giving it up ----------------------------------------------------------------------------

    def release(self) -> None:
        """Stop the keep-alive (waiting for it, at most a tenth of the lifetime), stop
        guarding the store, and delete the lease unless it was lost, or a renewal is still
        under way (a store that hangs): then it is left to run out."""
        self._stop.set()
        hung = False
        if self._keeper is not None:
            self._keeper.join(MARGIN * self.seconds)
            hung = self._keeper.is_alive()
            self._keeper = None
        if self.store.write_guard == self.check:
            self.store.write_guard = self._outer_guard
        if self._etag is None:
            return
        if hung:  # the renewal may still land and change the lease: not deleted
            self._etag = None
            return
        try:
            self.check("releasing it")
            self._delete()
        except (LockTimeoutError, NotFoundError, StorageError, FileExistsError):
            pass  # lost (another holder's now, or expiring), or gone: left as it is
        self._etag = None

    def _delete(self) -> None:
        """Delete the lease if it is still the version this holder wrote: a conditional
        delete (``If-Match``), so a takeover that lands meanwhile is never deleted
        (FileExistsError); where the store has no conditional deletes, compared first."""
        try:
            self.store.delete(LEASE, guarded=False, etag=self._etag)
        except StorageError:
            _data, etag = self.store.get_etag(LEASE, 4096)
            if etag == self._etag:
                self.store.delete(LEASE, guarded=False)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


__all__ = ["LEASE", "LEASE_SECONDS", "Lease", "lease_expiry"]
