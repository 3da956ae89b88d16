"""The committer lease of an object-store archive: one writer at a time, without locks.

An object store has no file locks, so the archive's single committer holds a *lease*: the
object ``lock/lease.json`` (``{"holder", "host", "pid", "expires"}``), created with a
conditional write (``If-None-Match: *``). Another process that finds it unexpired is refused
with :class:`~preserve.errors.LockTimeoutError` naming the holder and when the lease ends. An
expired lease is taken over with ``If-Match: <its ETag>``, so of two processes racing for it
exactly one wins. The holder renews it (``If-Match`` again) before each commit step that
takes long, and deletes it when done; a holder that finds its lease changed has lost it and
stops (it never writes after that).

A lease guards against other *preserve* processes; what makes a commit safe against anyone
else is that every sealed object is written create-only. Verify takes no lease, but reads it
to wait (a bounded time) for a commit in progress (:mod:`.meanwhile`). This module does not
commit.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from types import TracebackType

from preserve.errors import LockTimeoutError, NotFoundError, StorageError
from preserve.remote.store import ObjectStore

LEASE = "lock/lease.json"
#: Seconds a lease lasts without renewal (a killed committer blocks others this long at most).
LEASE_SECONDS = 120.0


class Lease:
    """Hold the archive's committer lease (a context manager; see the module docstring)."""

    def __init__(self, store: ObjectStore, *, seconds: float = LEASE_SECONDS,
                 wait: float = 0.0) -> None:
        self.store = store
        self.seconds = seconds
        self.wait = wait
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._etag: str | None = None

    def _body(self) -> bytes:
        return json.dumps({"holder": self.holder, "host": socket.gethostname(),
                           "pid": os.getpid(), "expires": time.time() + self.seconds},
                          sort_keys=True).encode()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                self._etag = self.store.put_replace(LEASE, self._body(), etag=None)
                return
            except FileExistsError:
                pass
            try:
                data, etag = self.store.get_etag(LEASE, 4096)
                current = json.loads(data)
                expires = float(current["expires"])
                holder = str(current["holder"])
            except NotFoundError:
                continue  # released meanwhile: try again
            except (StorageError, ValueError, KeyError, TypeError):
                expires, holder = 0.0, "(unreadable lease)"
            if expires < time.time():
                try:
                    self._etag = self.store.put_replace(LEASE, self._body(), etag=etag)
                    return
                except FileExistsError:
                    continue  # someone else took it over first
            if time.monotonic() >= deadline:
                left = max(0.0, expires - time.time())
                raise LockTimeoutError(
                    f"another committer holds the lease {self.store.url}/{LEASE} ({holder}, "
                    f"for {left:.0f} s more unless renewed)")
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def renew(self) -> None:
        """Extend the lease; StorageError if it was lost (expired and taken over)."""
        try:
            self._etag = self.store.put_replace(LEASE, self._body(), etag=self._etag)
        except FileExistsError as exc:
            raise LockTimeoutError(f"the lease {self.store.url}/{LEASE} was lost (it expired "
                                   "and another committer took it); stopping") from exc

    def release(self) -> None:
        if self._etag is None:
            return
        try:
            _data, etag = self.store.get_etag(LEASE, 4096)
            if etag == self._etag:
                self.store.delete(LEASE)
        except (NotFoundError, StorageError):
            pass
        self._etag = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


__all__ = ["LEASE", "LEASE_SECONDS", "Lease"]
