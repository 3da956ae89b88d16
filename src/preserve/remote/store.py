"""An archive root on an object store, through fsspec (``s3://bucket/prefix`` via s3fs).

:class:`ObjectStore` gives the archive code the few operations it needs on objects named by
their key *relative to the archive root* (``manifests/<id>.json``, ``archive/warc/…``):

- bounded reads (:meth:`~ObjectStore.get`), streamed reads (:meth:`~ObjectStore.open`),
  listing (:meth:`~ObjectStore.list`) and metadata (:meth:`~ObjectStore.info`);
- **create-only** writes (:meth:`~ObjectStore.put_new`, :meth:`~ObjectStore.copy_new`): a
  conditional ``PutObject`` with ``If-None-Match: *``, so an object that exists is never
  replaced (``FileExistsError``), and, for *sealed* objects when the archive has a retention
  period, ``ObjectLockMode``/``ObjectLockRetainUntilDate``: S3 Object Lock then refuses to
  delete or overwrite that version until the date, whoever asks — preserve included;
- reuse of an object a create-only write found already there (:meth:`~ObjectStore.use_existing`:
  an idempotent retry, a content-addressed text object stored before — or planted by someone
  with write access to the bucket): the version read is the version judged, and for a sealed
  write it is then retained, by its ``VersionId``, at least as long as a fresh write would be
  (its retention extended where it has none or a shorter one; StorageError if the store
  refuses), so nothing is named that could be deleted sooner than what preserve writes itself;
- conditional replacement of the few mutable objects (:meth:`~ObjectStore.put_replace` with
  ``If-Match: <etag>``: the log head, the lease) and deletes of unsealed ones (journal records,
  staging, the lease).

Every write first calls :attr:`~ObjectStore.write_guard` when one is set: the committer
lease installs its check there while it is held, so a holder that lost its lease writes
nothing more through this store (the lease's own requests pass ``guarded=False``).

Credentials and the endpoint come from the usual AWS/fsspec environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, profiles). The
retention is ``PRESERVE_S3_RETENTION_DAYS`` (or the constructor's ``retention_days``) in mode
``PRESERVE_S3_LOCK_MODE`` (``COMPLIANCE``, the default, or ``GOVERNANCE``).

This module knows nothing else of manifests, logs or leases (see :mod:`.archive`, :mod:`.tiles`,
:mod:`.lease`); it imports s3fs when a store is opened, never at import time.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from preserve.errors import NotFoundError, StorageError

RETENTION_ENV = "PRESERVE_S3_RETENTION_DAYS"
#: The longest retention period accepted (S3 Object Lock dates must be representable; a
#: hundred years is far past any evidence-keeping rule).
MAX_RETENTION_DAYS = 36_500
LOCK_MODE_ENV = "PRESERVE_S3_LOCK_MODE"
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
#: Single-request upload limit of S3 (larger sealed files would need a multipart upload).
MAX_SINGLE_PUT = 5 * 2**30


def is_remote_root(root: object) -> bool:
    """Whether ``root`` names an object store (``s3:…``, in any case) rather than a local
    directory: ``s3:`` alone or ``S3://b`` is a mistyped store (refused by
    :func:`split_url`), never a local directory named so."""
    return isinstance(root, str) and root[:3].lower() == "s3:"


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ``("bucket", "some/prefix")`` (StorageError if bad: no
    bucket, an empty, ``.`` or ``..`` part, or a ``?`` or ``#``, which S3 libraries read as a
    version query or a fragment, so that objects would be written and read under two names)."""
    if not (is_remote_root(url) and url[:5].lower() == "s3://"):
        raise StorageError(f"{url!r}: give s3://bucket or s3://bucket/prefix")
    rest = url[len("s3://"):].strip("/")
    bucket, _, prefix = rest.partition("/")
    if not bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix) \
            or "?" in rest or "#" in rest:
        raise StorageError(f"{url!r}: give s3://bucket or s3://bucket/prefix")
    return bucket, prefix


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str  # relative to the archive root
    size: int
    etag: str | None
    #: when the store says the object was written (POSIX seconds; None if it does not say)
    modified: float | None = None


def _aware(value: object) -> datetime | None:
    """A retention date the store stated, as an aware datetime (None if absent or odd)."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _modified(meta: dict[str, Any]) -> float | None:
    """The ``LastModified`` of a listing entry as POSIX seconds (None if absent or odd)."""
    value = meta.get("LastModified")
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


class ObjectStore:
    """The objects of one archive root ``s3://bucket/prefix`` (see the module docstring)."""

    def __init__(self, url: str, *, retention_days: float | None = None,
                 lock_mode: str | None = None, fs: Any = None) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix = split_url(url)
        if retention_days is None and os.environ.get(RETENTION_ENV):
            try:
                retention_days = float(os.environ[RETENTION_ENV])
            except ValueError as exc:
                raise StorageError(f"${RETENTION_ENV} is not a number of days") from exc
        if retention_days is not None and not 0 < retention_days <= MAX_RETENTION_DAYS:
            raise StorageError("the retention period must be a positive number of days, at "
                               f"most {MAX_RETENTION_DAYS}")
        self.retention_days = retention_days
        mode = (lock_mode or os.environ.get(LOCK_MODE_ENV) or "COMPLIANCE").upper()
        if mode not in LOCK_MODES:
            raise StorageError(f"Object Lock mode must be one of {', '.join(LOCK_MODES)}")
        self.lock_mode = mode
        self.fs = fs if fs is not None else open_filesystem()
        #: Called with what is about to be written (``"writing <rel>"``) before each write;
        #: raises to refuse it (see :meth:`check_write`). Never sent to a worker.
        self.write_guard: Callable[[str], None] | None = None

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:  # sent to Dask workers: they open their own fs
        return {"url": self.url, "retention_days": self.retention_days,
                "lock_mode": self.lock_mode}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], retention_days=state["retention_days"],  # type: ignore[misc]
                      lock_mode=state["lock_mode"])

    # --- names ---------------------------------------------------------------------------------

    def key(self, rel: str) -> str:
        """The S3 key of ``rel`` (a path relative to the archive root)."""
        if not self.addressable(rel):
            raise StorageError(f"refusing object name {rel!r}")
        return f"{self.prefix}/{rel}" if self.prefix else rel

    @staticmethod
    def addressable(rel: str) -> bool:
        """Whether preserve sends requests for ``rel`` (a listing may hold names it does not:
        ``..`` segments, which a client or proxy on the way may normalise into another key;
        NUL, newlines and other control characters, which no local mirror can name)."""
        return not (rel.startswith("/") or ".." in rel.split("/")
                    or any(ord(c) < 0x20 or c == "\x7f" for c in rel))

    def _path(self, rel: str) -> str:
        return f"{self.bucket}/{self.key(rel)}"

    def rel(self, path: str) -> str:
        """The relative name of an fsspec path ``bucket/prefix/rel``."""
        base = f"{self.bucket}/{self.prefix}/" if self.prefix else f"{self.bucket}/"
        return path[len(base):] if path.startswith(base) else path

    # --- reads -------------------------------------------------------------------------------

    def exists(self, rel: str) -> bool:
        try:
            self.info(rel)
        except NotFoundError:
            return False
        return True

    def info(self, rel: str) -> ObjectInfo:
        """Size and ETag of an object (NotFoundError if there is none)."""
        try:
            head = self.fs.call_s3("head_object", Bucket=self.bucket, Key=self.key(rel))
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.url}/{rel}: no such object") from exc
        except OSError as exc:
            raise StorageError(f"{self.url}/{rel}: {exc}") from exc
        return ObjectInfo(rel, int(head["ContentLength"]), head.get("ETag"))

    def get(self, rel: str, limit: int) -> bytes:
        """The whole object, at most ``limit`` bytes (StorageError if larger; NotFoundError)."""
        data, _response = self._get_version(rel, limit)
        if len(data) > limit:
            raise StorageError(f"{self.url}/{rel} is larger than {limit} bytes")
        return data

    def _get_version(self, rel: str, limit: int) -> tuple[bytes, dict[str, Any]]:
        """The current version's first ``limit + 1`` bytes (all of it, if not larger than
        ``limit``) and the response that brought them: its ``VersionId`` and Object Lock
        fields are those of exactly that version (NotFoundError, StorageError)."""
        ranged: dict[str, str] = {"Range": f"bytes=0-{limit}"}
        while True:
            try:
                response: dict[str, Any] = self.fs.call_s3(
                    "get_object", Bucket=self.bucket, Key=self.key(rel), **ranged)
                data = _read_body(self.fs, response["Body"], limit + 1)
            except FileNotFoundError as exc:
                raise NotFoundError(f"{self.url}/{rel}: no such object") from exc
            except OSError as exc:
                if getattr(exc, "errno", None) == errno.EINVAL and ranged:
                    ranged = {}  # 416: an empty object (asked again, for its response)
                    continue
                raise StorageError(f"{self.url}/{rel}: {exc}") from exc
            _check_length(self.url, rel, data, response, limit + 1)
            return data, response

    def get_etag(self, rel: str, limit: int) -> tuple[bytes, str | None]:
        """The object and its ETag (for a later :meth:`put_replace`)."""
        try:
            response = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self.key(rel))
            data: bytes = _read_body(self.fs, response["Body"], limit + 1)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.url}/{rel}: no such object") from exc
        except OSError as exc:
            raise StorageError(f"{self.url}/{rel}: {exc}") from exc
        _check_length(self.url, rel, data, response, limit + 1)
        if len(data) > limit:
            raise StorageError(f"{self.url}/{rel} is larger than {limit} bytes")
        return data, response.get("ETag")

    @contextlib.contextmanager
    def open(self, rel: str, *, block_size: int = 8 * 2**20) -> Iterator[IO[bytes]]:
        """A streamed, read-only file object (blocks fetched on demand, each read ahead by
        ``block_size`` bytes: what it holds, a few times over, at most)."""
        try:
            f = self.fs.open(self._path(rel), "rb", block_size=block_size,
                             cache_type="readahead")
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.url}/{rel}: no such object") from exc
        except OSError as exc:
            raise StorageError(f"{self.url}/{rel}: {exc}") from exc
        with f:
            yield f

    def list(self, rel_prefix: str) -> list[ObjectInfo]:
        """Every object whose name starts with ``rel_prefix/`` (recursive), sorted by name."""
        base = self._path(rel_prefix.rstrip("/"))
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {self.url}/{rel_prefix}: {exc}") from exc
        items = [ObjectInfo(self.rel(path), int(meta.get("size") or 0), meta.get("ETag"),
                            _modified(meta))
                 for path, meta in found.items() if meta.get("type") != "directory"]
        return sorted(items, key=lambda i: i.key)

    def invalidate(self) -> None:
        """Forget cached listings (another process may have written)."""
        self.fs.invalidate_cache()

    # --- writes ------------------------------------------------------------------------------

    def check_write(self, what: str) -> None:
        """Run :attr:`write_guard` (if set) for ``what`` (it raises when the write must not
        happen: the committer lease was lost)."""
        if self.write_guard is not None:
            self.write_guard(what)

    def _lock_args(self, seal: bool) -> dict[str, Any]:
        if not seal or self.retention_days is None:
            return {}
        until = datetime.now(UTC) + timedelta(days=self.retention_days)
        return {"ObjectLockMode": self.lock_mode, "ObjectLockRetainUntilDate": until}

    def put_new(self, rel: str, data: bytes | IO[bytes], *, seal: bool,
                same_ok: bytes | None = None) -> None:
        """Create ``rel`` with ``data``; never replace an existing object.

        ``seal``: apply the archive's Object Lock retention. Raises FileExistsError when the
        object exists — unless ``same_ok`` is given and the existing object holds exactly
        those bytes (an idempotent retry, or an object planted with them): it is then used
        through :meth:`use_existing`, so with ``seal`` that very version is retained at least
        as long as this write would have made it (StorageError if it cannot be). Other
        failures raise StorageError.
        """
        self.check_write(f"writing {rel}")
        try:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key(rel), Body=data,
                            IfNoneMatch="*", **self._lock_args(seal))
        except FileExistsError:
            exists = FileExistsError(errno.EEXIST, f"{self.url}/{rel} already exists; "
                                     "not replaced")
            if same_ok is None:
                raise exists from None

            def same(found: bytes) -> None:
                if found != same_ok:
                    raise exists

            try:
                self.use_existing(rel, len(same_ok), same, seal=seal)
            except NotFoundError:  # gone again meanwhile: not the object this write found
                raise exists from None
        except OSError as exc:
            raise StorageError(f"cannot write {self.url}/{rel}: {exc}") from exc

    def use_existing(self, rel: str, limit: int, check: Callable[[bytes], None], *,
                     seal: bool) -> None:
        """Accept the object already at ``rel`` in place of a create-only write that found
        it there (an idempotent retry, a content-addressed object stored before — or one
        planted by someone with write access to the bucket, with the right bytes).

        Its current version is read, at most ``limit`` bytes (one more, so that a larger
        object reaches ``check`` as different), with that version's id; ``check(data)``
        judges those bytes and raises to refuse them (its exception propagates). With
        ``seal`` and a retention period, the version checked (``VersionId``: never a newer
        one put meanwhile) is then retained at least as long as a fresh sealed write would
        be: until now + ``retention_days`` in :attr:`lock_mode` (or COMPLIANCE, if it has
        that already). Its retention, as the read stated it, is kept when it is enough and
        otherwise extended with ``PutObjectRetention`` (never shortened; an unknown one is
        set). Raises NotFoundError when it is gone, StorageError (one line) when it cannot
        be read, the store names no version of it, or the retention cannot be set (a bucket
        without Object Lock, a refusal): the caller then names nothing. Without a retention
        period, or without ``seal``, nothing is written.
        """
        try:
            data, response = self._get_version(rel, limit)
        except StorageError as exc:
            raise StorageError(f"cannot read the existing object: {exc}") from exc
        check(data)
        if not seal or self.retention_days is None:
            return
        version = response.get("VersionId")
        if not isinstance(version, str) or not version:
            raise StorageError(f"cannot seal the existing object {self.url}/{rel}: the store "
                               "names no version of it (does the bucket have Object Lock?)")
        wanted = datetime.now(UTC) + timedelta(days=self.retention_days)
        mode, until = response.get("ObjectLockMode"), _aware(
            response.get("ObjectLockRetainUntilDate"))
        if until is not None and until >= wanted and mode in (self.lock_mode, "COMPLIANCE"):
            return
        retention = {"Mode": "COMPLIANCE" if mode == "COMPLIANCE" else self.lock_mode,
                     "RetainUntilDate": wanted if until is None else max(until, wanted)}
        self.check_write(f"sealing {rel}")
        try:
            self.fs.call_s3("put_object_retention", Bucket=self.bucket, Key=self.key(rel),
                            VersionId=version, Retention=retention)
        except OSError as exc:
            raise StorageError(f"cannot seal the existing object {self.url}/{rel} (version "
                               f"{version}) for {self.retention_days:g} days: {exc}") from exc

    def copy_new(self, source_rel: str, rel: str, *, seal: bool,
                 sha256: str | None = None) -> None:
        """Server-side copy of ``source_rel`` to a new object ``rel`` (create-only).

        The copy carries ``If-None-Match: *`` (enforced by AWS S3); since not every
        S3-compatible server enforces it on copies, the destination is also checked first:
        callers hold the archive lease, so no other preserve process writes between the two.
        ``sha256`` (hex): the bytes the copy must hold, checked on the new version itself
        (the server's SHA-256 of the copy, else the copy read back) before it is sealed; a
        copy that differs is deleted again and StorageError raised (the source was replaced
        after whoever hashed it wrote it).
        """
        self.check_write(f"writing {rel}")
        if self.exists(rel):
            raise FileExistsError(errno.EEXIST, f"{self.url}/{rel} already exists; not replaced")
        checksum = {"ChecksumAlgorithm": "SHA256"} if sha256 is not None else {}
        try:
            response = self.fs.call_s3(
                "copy_object", Bucket=self.bucket, Key=self.key(rel), IfNoneMatch="*",
                CopySource={"Bucket": self.bucket, "Key": self.key(source_rel)}, **checksum)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, f"{self.url}/{rel} already exists; "
                                  "not replaced") from None
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.url}/{source_rel}: no such object") from exc
        except OSError as exc:
            raise StorageError(f"cannot copy to {self.url}/{rel}: {exc}") from exc
        version = {"VersionId": response["VersionId"]} if response.get("VersionId") else {}
        if sha256 is not None:
            self._check_copy(source_rel, rel, sha256, response, version)
        lock = self._lock_args(seal)
        if lock:  # the retention of exactly the version just made (before anything names it)
            self.check_write(f"sealing {rel}")  # a long copy: the lease may be lost since
            try:
                self.fs.call_s3("put_object_retention", Bucket=self.bucket, Key=self.key(rel),
                                Retention={"Mode": lock["ObjectLockMode"],
                                           "RetainUntilDate": lock["ObjectLockRetainUntilDate"]},
                                **version)
            except OSError as exc:
                raise StorageError(f"cannot set the retention of {self.url}/{rel}: {exc}") \
                    from exc

    def _check_copy(self, source_rel: str, rel: str, sha256: str, response: dict[str, Any],
                    version: dict[str, str]) -> None:
        """StorageError (the copy deleted) unless the version ``response`` made holds bytes
        of SHA-256 ``sha256``."""
        stated = (response.get("CopyObjectResult") or {}).get("ChecksumSHA256")
        try:
            if isinstance(stated, str) and "-" not in stated:
                actual = base64.b64decode(stated).hex()
            else:  # the server gave no whole-object checksum: read the copy back
                body = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self.key(rel),
                                       **version)["Body"]
                actual = _hash_body(self.fs, body, hashlib.sha256()).hexdigest()
        except (OSError, ValueError) as exc:
            actual = f"unreadable ({exc})"
        if actual == sha256:
            return
        with contextlib.suppress(OSError):
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key(rel), **version)
        raise StorageError(f"{self.url}/{source_rel}: the staged object is not the one its "
                           f"capture sealed (sha256 {actual}, the capture has {sha256}): "
                           "replaced after it was staged; nothing committed")

    def put_replace(self, rel: str, data: bytes, *, etag: str | None,
                    guarded: bool = True) -> str | None:
        """Write a mutable object only if it is still the version we read (``If-Match``), or
        only if it does not exist (``etag`` None). Returns the new ETag. A lost race raises
        FileExistsError (someone else changed it). ``guarded=False``: no :attr:`write_guard`
        (the lease's own writes)."""
        if guarded:
            self.check_write(f"writing {rel}")
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            response = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key(rel),
                                       Body=data, **condition)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, f"{self.url}/{rel} changed meanwhile") from None
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.EINVAL:  # 412 on If-Match
                raise FileExistsError(errno.EEXIST, f"{self.url}/{rel} changed meanwhile") \
                    from exc
            raise StorageError(f"cannot write {self.url}/{rel}: {exc}") from exc
        etag_new: str | None = response.get("ETag")
        return etag_new

    def put_mutable(self, rel: str, data: bytes) -> None:
        """Write an unsealed object whatever is there (the ``checkpoint`` copy; callers hold
        the lease)."""
        self.check_write(f"writing {rel}")
        try:
            self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key(rel), Body=data)
        except OSError as exc:
            raise StorageError(f"cannot write {self.url}/{rel}: {exc}") from exc

    def put_file_new(self, rel: str, local: str | os.PathLike[str], *, seal: bool) -> None:
        """Create ``rel`` from a local file, streamed (create-only, see :meth:`put_new`)."""
        size = os.path.getsize(local)
        if size > MAX_SINGLE_PUT:
            raise StorageError(f"{local}: {size} bytes is more than one S3 request carries")
        with open(local, "rb") as f:
            self.put_new(rel, f, seal=seal)

    def delete(self, rel: str, *, guarded: bool = True, etag: str | None = None) -> None:
        """Delete an unsealed object (journal record, staging, lease); absent is fine.
        ``guarded=False``: no :attr:`write_guard` (the lease's own release). With ``etag``,
        only if it is still that version (``If-Match``): FileExistsError if it changed."""
        if guarded:
            self.check_write(f"deleting {rel}")
        condition = {"IfMatch": etag} if etag is not None else {}
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key(rel),
                            **condition)
        except FileNotFoundError:
            return
        except OSError as exc:
            if etag is not None and getattr(exc, "errno", None) == errno.EINVAL:  # 412
                raise FileExistsError(errno.EEXIST, f"{self.url}/{rel} changed meanwhile") \
                    from exc
            raise StorageError(f"cannot delete {self.url}/{rel}: {exc}") from exc


def _check_length(url: str, rel: str, data: bytes, response: Any, wanted: int) -> None:
    """StorageError when fewer bytes came than the response announced and ``wanted`` asked
    for (a stream cut short); more are the caller's bound to judge."""
    announced = response.get("ContentLength")
    if isinstance(announced, int) and len(data) < min(announced, wanted):
        raise StorageError(f"{url}/{rel}: {len(data)} of {announced} bytes arrived (the "
                           "connection was cut)")


#: Bytes asked for in each read of a streaming body.
_BODY_BLOCK = 1 << 20


def _read_body(fs: Any, body: Any, limit: int | None = None) -> bytes:
    """Read an aiobotocore streaming body on s3fs's event loop."""
    from fsspec.asyn import sync

    async def read() -> bytes:
        # a streaming body's read(n) gives what has arrived, up to n: read until the end
        # (or the limit), never one network read's worth of the object
        data = bytearray()
        async with body as stream:
            while limit is None or len(data) < limit:
                block = await stream.read(_BODY_BLOCK if limit is None
                                          else min(_BODY_BLOCK, limit - len(data)))
                if not block:
                    break
                data += block
        return bytes(data)

    result: bytes = sync(fs.loop, read)
    return result


def _hash_body(fs: Any, body: Any, digest: Any) -> Any:
    """Feed an aiobotocore streaming body to ``digest`` in blocks (never held whole)."""
    from fsspec.asyn import sync

    async def read() -> None:
        async with body as stream:
            while chunk := await stream.read(8 * 2**20):
                digest.update(chunk)

    sync(fs.loop, read)
    return digest


def open_filesystem() -> Any:
    """An s3fs filesystem configured from the environment (endpoint: ``AWS_ENDPOINT_URL``)."""
    try:
        import s3fs
    except ImportError as exc:  # the optional extra is missing
        raise StorageError("an s3:// archive root needs the 'scale' extra: "
                           "pip install 'preserve[scale]'") from exc
    kwargs: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return s3fs.S3FileSystem(**kwargs)


__all__ = [
    "LOCK_MODES",
    "LOCK_MODE_ENV",
    "RETENTION_ENV",
    "ObjectInfo",
    "ObjectStore",
    "is_remote_root",
    "open_filesystem",
    "split_url",
]
