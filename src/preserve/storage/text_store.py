"""The content-addressed text store: immutable objects named by the BLAKE3 of their bytes.

An object lives at ``archive/text/<h[0:2]>/<h[2:4]>/<h>``. :meth:`TextStore.put` writes a temp
file in ``archive/tmp``, fsyncs it, hard-links it into place (which fails rather than replace an
existing file), removes the temp name and fsyncs the directory, so an object is either absent or
complete. Putting bytes that are already stored rewrites nothing. If the file already at that
name does *not* hash to its name, it is left untouched (it is evidence of damage) and
:class:`~preserve.errors.StorageError` is raised; ``preserve verify`` reports it.

A caller that makes many objects before one commit (an import) writes each to its spool with
:func:`spool_object` as soon as it has it, and :meth:`TextStore.put_spooled` links that file
into place at the commit, so the bytes are not held in memory until then.

Ids are validated before they become paths. Objects are made read-only (0444).
This module does not know about manifests, WARC files or which objects are referenced.
:class:`MemoryTextStore` implements the same :class:`TextStoreProtocol` for tests.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from preserve.errors import NotFoundError, StorageError, UnsafePathError
from preserve.hashing import Digests, hash_bytes, hash_stream
from preserve.safe_io import Durability, open_binary
from preserve.storage.layout import (
    TEXT_DIR,
    ArchiveLayout,
    fsync_dir,
    is_hex_digest,
    makedirs_durable,
    require_hex_digest,
    resolve_inside,
)

OBJECT_MODE = 0o444
#: Largest text object the store accepts. Text is extracted from at most 16 MiB of a page
#: (3 MiB since extractor settings record ``max_input_bytes``; 16 MiB before), and UTF-8 can
#: take at most three bytes for a byte of a single-byte charset, so no genuine object comes
#: near this; ``verify`` reports a larger file from its size without reading it.
MAX_OBJECT_BYTES = 64 * 2**20
_LINK_UNSUPPORTED = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}
#: ``open(O_TMPFILE)`` failures that mean "not here" (kernel or file system without it).
_TMPFILE_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL}
#: Linking a ``O_TMPFILE`` file failed in a way a named temp file may not (no /proc, no
#: hard links here, no permission to link through /proc).
_TMPFILE_LINK_FAILED = _LINK_UNSUPPORTED | {errno.ENOENT, errno.EACCES, errno.ENOTDIR}


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What :meth:`TextStore.put` stored: digests, size, and the root-relative posix path."""

    blake3: str
    sha256: str
    size: int
    path_rel: str


@dataclass(frozen=True, slots=True)
class SpooledObject:
    """An object's bytes written to a spool file (read-only, not yet fsynced), and their
    digests: what :meth:`TextStore.put_spooled` stores without reading them into memory."""

    path: Path
    digests: Digests


def object_digests(data: bytes | SpooledObject | None) -> Digests | None:
    """The digests of a text or comments object given as bytes or spooled to a file; None
    when there is no object (none given, or empty)."""
    if isinstance(data, SpooledObject):
        digests = data.digests
    elif data:
        digests = hash_bytes(data)
    else:
        return None
    return digests if digests.size else None


def spool_object(data: bytes, directory: Path) -> SpooledObject:
    """Write ``data`` to ``directory/<blake3>`` (once: equal bytes share the file), read-only."""
    digests = hash_bytes(data)
    path = directory / digests.blake3
    if not path.exists():
        try:
            directory.mkdir(exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=directory)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                os.fchmod(f.fileno(), OBJECT_MODE)
            os.replace(tmp_name, path)
        except OSError as exc:
            raise StorageError(f"cannot spool text object {digests.blake3}: {exc}") from exc
    return SpooledObject(path, digests)


@runtime_checkable
class TextStoreProtocol(Protocol):
    """What every text store offers (the contract tests run against each implementation)."""

    def put(self, data: bytes) -> StoredObject: ...
    def get(self, hex_id: str) -> bytes: ...
    def contains(self, hex_id: str) -> bool: ...
    def iter_ids(self) -> Iterator[str]: ...
    def verify(self, hex_id: str) -> bool: ...


class TextStore:
    """Text objects on disk below ``layout.text_dir``; see the module docstring."""

    def __init__(self, layout: ArchiveLayout) -> None:
        self.layout = layout
        self._real_root: str | None = None

    def path(self, hex_id: str) -> Path:
        """Where object ``hex_id`` lives (validated id; the file need not exist).

        Its directory is resolved inside the root (UnsafePathError if a symlinked directory
        would lead out); the object's own name is not resolved, so a symlink standing in for an
        object is refused when opened (O_NOFOLLOW) rather than followed.
        """
        rel = self.layout.text_rel_for(hex_id)
        directory_rel = rel.rsplit("/", 1)[0]
        plain = self._plain_directory(directory_rel)
        if plain is not None:
            return Path(plain, hex_id)
        directory = resolve_inside(self.layout.root, directory_rel, under=TEXT_DIR)
        return directory / hex_id

    def _plain_directory(self, directory_rel: str) -> str | None:
        """``real root / directory_rel`` when each of its components below the root is a
        directory (``lstat``: no symlink) or, from some component on, absent: then it is
        exactly what :func:`resolve_inside` would return, found with four ``lstat`` calls
        instead of resolving every component from ``/`` (most of a text object's put).
        None otherwise (a symlink, a file, an error): the caller resolves in full."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self.layout.root)
        current = self._real_root
        for part in directory_rel.split("/"):
            current = f"{current}/{part}"
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                return f"{self._real_root}/{directory_rel}"
            except OSError:
                return None
            if not stat.S_ISDIR(mode):
                return None
        return current

    def path_rel(self, hex_id: str) -> str:
        return self.layout.text_rel_for(hex_id)

    def contains(self, hex_id: str) -> bool:
        if not is_hex_digest(hex_id):
            return False
        try:
            return self.path(hex_id).is_file()
        except UnsafePathError:
            return False

    def put(self, data: bytes) -> StoredObject:
        """Store ``data`` (idempotent); return its digests and relative path."""
        stored, _created = self.put_deferred(data, sync_dir=True)
        return stored

    def _target(self, digests: Digests) -> tuple[Path, StoredObject]:
        """Where an object with ``digests`` lives, and its description."""
        return self.path(digests.blake3), StoredObject(
            digests.blake3, digests.sha256, digests.size, self.path_rel(digests.blake3))

    def put_deferred(self, data: bytes, *, durability: Durability | None = None,
                     sync_dir: bool = True) -> tuple[StoredObject, bool]:
        """Store ``data``; return it and whether this call created the object. With
        ``durability`` nothing is fsynced here: the object and its directory are added to it
        and the caller flushes them (once for a whole group commit) before anything that names
        the object is committed; with ``sync_dir=False`` only the directory is left to the
        caller."""
        if len(data) > MAX_OBJECT_BYTES:
            raise StorageError(f"text object of {len(data)} bytes is larger than the store's "
                               f"limit of {MAX_OBJECT_BYTES}")
        digests = hash_bytes(data)
        final, stored = self._target(digests)
        if final.exists():
            self._check_existing(final, digests)
            return stored, False
        try:
            makedirs_durable(self.layout.tmp_dir)
            if durability is None:
                makedirs_durable(final.parent)
            else:
                _add_fan_out(final, durability)
            created = self._put_unnamed(data, final, digests, fsync=durability is None)
        except OSError as exc:
            raise StorageError(f"cannot store text object {digests.blake3}: {exc}") from exc
        if created is not None:
            if durability is not None:
                if created:
                    durability.add(final)
                    durability.add(final.parent, directory=True)
            elif sync_dir:
                try:
                    fsync_dir(final.parent)
                except OSError as exc:
                    raise StorageError(f"cannot store text object {digests.blake3}: "
                                       f"{exc}") from exc
            return stored, created
        try:
            fd, tmp_name = tempfile.mkstemp(prefix="text-", dir=self.layout.tmp_dir)
        except OSError as exc:
            raise StorageError(f"cannot prepare text object {digests.blake3}: {exc}") from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), OBJECT_MODE)
                if durability is None:
                    os.fsync(f.fileno())
            created = self._link_into_place(tmp, final, digests)
            if durability is not None:
                if created:
                    durability.add(final)
                    durability.add(final.parent, directory=True)
            elif sync_dir:
                fsync_dir(final.parent)
        except OSError as exc:
            raise StorageError(f"cannot store text object {digests.blake3}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return stored, created

    def put_spooled(self, spooled: SpooledObject, *,
                    durability: Durability) -> tuple[StoredObject, bool]:
        """Store an object written by :func:`spool_object` by linking its file into place
        (nothing read or copied); as :meth:`put_deferred` with ``durability``, which fsyncs
        the file and its directories before anything names the object."""
        digests = spooled.digests
        final, stored = self._target(digests)
        if final.exists():
            self._check_existing(final, digests)
            return stored, False
        try:
            _add_fan_out(final, durability)
            created = self._link_into_place(spooled.path, final, digests)
        except OSError as exc:
            raise StorageError(f"cannot store text object {digests.blake3}: {exc}") from exc
        if created:
            durability.add(final)
            durability.add(final.parent, directory=True)
        return stored, created

    def _put_unnamed(self, data: bytes, final: Path, digests: Digests, *,
                     fsync: bool) -> bool | None:
        """Write ``data`` to a file with no name yet (``O_TMPFILE`` in ``archive/tmp``) and
        link it as ``final``: True if this created it, False if it already existed (checked),
        None where the system offers no such file or cannot link one (the caller then writes
        a named temp file). Saves creating and removing a temp name; a crash leaves nothing."""
        flag = getattr(os, "O_TMPFILE", None)
        if flag is None:
            return None
        try:
            fd = os.open(self.layout.tmp_dir, flag | os.O_WRONLY | os.O_CLOEXEC, OBJECT_MODE)
        except OSError as exc:
            if exc.errno in _TMPFILE_UNSUPPORTED:
                return None
            raise
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, OBJECT_MODE)
            if fsync:
                os.fsync(fd)
            try:  # any src_dir_fd (ignored: the source is absolute) makes this
                # linkat(AT_SYMLINK_FOLLOW), which linking through /proc needs
                os.link(f"/proc/self/fd/{fd}", final, src_dir_fd=fd)
            except FileExistsError:  # a concurrent put of the same bytes, or damage
                self._check_existing(final, digests)
                return False
            except (OSError, NotImplementedError) as exc:
                if isinstance(exc, OSError) and exc.errno not in _TMPFILE_LINK_FAILED:
                    raise
                return None
            return True
        finally:
            os.close(fd)

    def _link_into_place(self, tmp: Path, final: Path, digests: Digests) -> bool:
        """Link ``tmp`` to ``final``; True if this created it, False if it already existed."""
        try:
            os.link(tmp, final)
        except FileExistsError:  # a concurrent put of the same bytes, or damage
            self._check_existing(final, digests)
            return False
        except OSError as exc:
            if exc.errno not in _LINK_UNSUPPORTED:
                raise
            # No hard links on this file system: rename, having checked the name is free.
            # (Callers hold the archive lock, so nobody else writes objects meanwhile.)
            if final.exists():
                self._check_existing(final, digests)
                return False
            os.rename(tmp, final)
        return True

    @staticmethod
    def _check_existing(final: Path, expected: Digests) -> None:
        try:
            with open_binary(final) as f:
                actual = hash_stream(f)
        except (OSError, StorageError) as exc:
            raise StorageError(f"existing text object {final} cannot be read: {exc}") from exc
        if actual.blake3 != expected.blake3:
            raise StorageError(
                f"existing text object {final} does not match its name (BLAKE3 "
                f"{actual.blake3}); left untouched as evidence, run `preserve verify`"
            )

    def open(self, hex_id: str) -> BinaryIO:
        """Open object ``hex_id`` for reading (binary); NotFoundError if absent."""
        path = self.path(hex_id)
        if not path.exists() and not path.is_symlink():
            raise NotFoundError(f"no text object {hex_id}")
        return open_binary(path)

    def get(self, hex_id: str) -> bytes:
        """The bytes of object ``hex_id`` (text objects are small); NotFoundError if absent."""
        with self.open(hex_id) as f:
            return f.read()

    def digests(self, hex_id: str) -> Digests:
        """Re-hash object ``hex_id`` (streamed); NotFoundError if absent."""
        with self.open(hex_id) as f:
            return hash_stream(f)

    def verify(self, hex_id: str) -> bool:
        """True if the object's bytes still hash to its name; NotFoundError if absent."""
        return self.digests(hex_id).blake3 == hex_id

    def iter_ids(self) -> Iterator[str]:
        """Ids of all well-placed objects, sorted (stray files are skipped; verify reports them)."""
        top = self.layout.text_dir
        for path in iter_store_files(top):
            name = path.name
            placed = path.parent.name == name[2:4] and path.parent.parent.name == name[0:2]
            well_formed = is_hex_digest(name) and not path.is_symlink()
            if well_formed and placed and path.parent.parent.parent == top:
                yield name


def _sorted_entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as scan:
            return sorted(scan, key=lambda e: e.name, reverse=True)
    except (FileNotFoundError, NotADirectoryError):
        return []


def iter_store_files(top: Path) -> Iterator[Path]:
    """Every non-directory entry below ``top`` in sorted order, never following symlinks."""
    pending = [_sorted_entries(top)]
    while pending:
        if not pending[-1]:
            pending.pop()
            continue
        entry = pending[-1].pop()
        if entry.is_dir(follow_symlinks=False):
            pending.append(_sorted_entries(Path(entry.path)))
        else:
            yield Path(entry.path)


class MemoryTextStore:
    """An in-memory :class:`TextStoreProtocol` (for tests of code that only needs a store)."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}

    def put(self, data: bytes) -> StoredObject:
        digests = hash_bytes(data)
        existing = self._objects.get(digests.blake3)
        if existing is not None and hash_bytes(existing).blake3 != digests.blake3:
            raise StorageError(f"existing object {digests.blake3} does not match its name")
        self._objects.setdefault(digests.blake3, bytes(data))
        h = digests.blake3
        return StoredObject(h, digests.sha256, digests.size, f"archive/text/{h[:2]}/{h[2:4]}/{h}")

    def get(self, hex_id: str) -> bytes:
        require_hex_digest(hex_id)
        try:
            return self._objects[hex_id]
        except KeyError as exc:
            raise NotFoundError(f"no text object {hex_id}") from exc

    def contains(self, hex_id: str) -> bool:
        return hex_id in self._objects

    def iter_ids(self) -> Iterator[str]:
        yield from sorted(self._objects)

    def verify(self, hex_id: str) -> bool:
        return hash_bytes(self.get(hex_id)).blake3 == hex_id

    def corrupt(self, hex_id: str, data: bytes) -> None:
        """Test hook: replace an object's bytes, as disk damage would."""
        self._objects[hex_id] = data


__all__ = [
    "MAX_OBJECT_BYTES",
    "MemoryTextStore",
    "SpooledObject",
    "StoredObject",
    "TextStore",
    "TextStoreProtocol",
    "iter_store_files",
    "spool_object",
]


def _add_fan_out(final: Path, durability: Durability) -> None:
    """Create ``final``'s fan-out directories if they are new; their flush is left to
    ``durability`` (once for a whole group commit)."""
    if not final.parent.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        durability.add(final.parent.parent, directory=True)
        durability.add(final.parent.parent.parent, directory=True)
