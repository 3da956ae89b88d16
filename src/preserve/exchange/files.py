"""Streaming file helpers shared by the exporters: multi-digest copies and atomic outputs.

Every byte an export writes passes through :func:`copy_file` in blocks of one MiB, hashed on
the way with the algorithms asked for, so memory does not grow with file size. Outputs are
built under a temporary name beside their final name and moved into place only when complete
(:class:`AtomicFile`, :class:`AtomicDirectory`): an interrupted export leaves a ``.part``
name, never a file or bag that looks finished. Existing outputs are never replaced.

A file is read from a local path or from anything else that opens as a binary stream with a
known size (:class:`SourceFile`: an object in an object store, see :mod:`.source`).

This module knows nothing about WACZ, BagIt or manifests.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Protocol

import blake3

from preserve.errors import StorageError
from preserve.safe_io import open_binary

BLOCK_SIZE = 1 << 20
_LINK_UNSUPPORTED = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


class _Hash(Protocol):
    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


def _new_hash(name: str) -> _Hash:
    if name == "blake3":
        return blake3.blake3()
    return hashlib.new(name)


class Digester:
    """Hash a stream with several algorithms at once (``sha256``, ``sha512``, ``blake3``)."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._hashes = {name: _new_hash(name) for name in algorithms}
        self.size = 0

    def update(self, data: bytes) -> None:
        for h in self._hashes.values():
            h.update(data)
        self.size += len(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: h.hexdigest() for name, h in self._hashes.items()}


class SourceFile(Protocol):
    """A file an export reads: opened as a binary stream with its size; ``str()`` names it
    in messages (a local path, an ``s3://`` URL)."""

    def open(self) -> AbstractContextManager[tuple[BinaryIO, int]]:
        """The stream and the file's size; raises OSError or a PreserveError."""
        ...

    def size(self) -> int:
        """The file's size (OSError or a PreserveError when it is missing)."""
        ...


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A regular file on disk (never a FIFO or a device, never through a final symlink)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)

    @contextlib.contextmanager
    def open(self) -> Iterator[tuple[BinaryIO, int]]:
        with open_binary(self.path) as handle:
            yield handle, os.fstat(handle.fileno()).st_size

    def size(self) -> int:
        return self.path.stat().st_size


def as_source(source: Path | SourceFile) -> SourceFile:
    """``source`` as a :class:`SourceFile` (a path becomes a :class:`LocalFile`)."""
    return LocalFile(source) if isinstance(source, Path) else source


def read_bounded(source: Path | SourceFile, limit: int) -> bytes:
    """The whole of ``source``, refusing (StorageError) one larger than ``limit`` bytes."""
    try:
        with as_source(source).open() as (handle, size):
            if size > limit:
                raise StorageError(f"{source} has {size} bytes, more than the {limit} expected")
            data = handle.read(limit + 1)
    except OSError as exc:
        raise StorageError(f"cannot read {source}: {exc}") from exc
    if len(data) > limit:
        raise StorageError(f"{source} has more than the {limit} bytes expected")
    return bytes(data)


def copy_file(
    source: Path | SourceFile,
    write: Callable[[bytes], object],
    algorithms: Iterable[str],
    *,
    expect: dict[str, str] | None = None,
    expect_size: int | None = None,
) -> Digester:
    """Stream ``source`` (a path or a :class:`SourceFile`) into ``write``, hashing it; check
    it against ``expect``.

    ``expect`` maps algorithm names to hex digests the bytes must have (for example the
    manifest's SHA-256 of a WARC file). Raises :class:`StorageError` if ``source`` cannot be
    read or does not match: an export never ships a file that differs from its manifest.
    Only a regular file is read (never a FIFO or a device, never through a final symlink);
    with ``expect_size`` one of another size is refused before a byte is read, and no more
    than that size (plus one byte) is ever read from it.
    """
    expect = expect or {}
    digester = Digester(set(algorithms) | set(expect))
    damaged = (": the archive is damaged (run 'preserve verify'); nothing was exported")
    try:
        with as_source(source).open() as (handle, actual):
            if expect_size is not None and actual != expect_size:
                raise StorageError(f"{source} has {actual} bytes, its manifest says "
                                   f"{expect_size}{damaged}")
            limit = expect_size + 1 if expect_size is not None else None
            while block := handle.read(BLOCK_SIZE if limit is None
                                       else min(BLOCK_SIZE, limit - digester.size)):
                digester.update(block)
                write(block)
    except OSError as exc:
        raise StorageError(f"cannot read {source}: {exc}") from exc
    digests = digester.hexdigests()
    if expect_size is not None and digester.size != expect_size:
        raise StorageError(
            f"{source} has {digester.size} bytes, its manifest says {expect_size}: "
            "the archive is damaged (run 'preserve verify'); nothing was exported"
        )
    for name, value in expect.items():
        if digests[name] != value:
            raise StorageError(
                f"{source} does not match its manifest ({name} {digests[name]}, expected "
                f"{value}): the archive is damaged (run 'preserve verify'); nothing was exported"
            )
    return digester


def refuse_existing(path: Path) -> None:
    """Raise :class:`StorageError` if ``path`` exists (exports never replace anything)."""
    if os.path.lexists(path):
        raise StorageError(f"{path} already exists; not replacing it")


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system can fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicFile:
    """A file written as ``.<name>.<random>.part`` beside ``path`` and linked into place.

    ``with AtomicFile(path) as f: f.write(...)``; on a clean exit the data is fsynced and
    linked to ``path`` (refused if ``path`` appeared meanwhile), on any exception the part
    file is removed and ``path`` never appears.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        refuse_existing(self.path)
        directory = self.path.parent
        try:
            fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part",
                                        dir=directory)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.part = Path(name)
        self.file: IO[bytes] = os.fdopen(fd, "w+b")

    def __enter__(self) -> IO[bytes]:
        return self.file

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.discard()
            return
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.chmod(self.part, 0o644)
            publish(self.part, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.part.unlink()


def publish(part: Path, final: Path) -> None:
    """Move a finished ``part`` file to ``final`` without ever replacing an existing file."""
    try:
        try:
            os.link(part, final)
        except OSError as exc:
            if isinstance(exc, FileExistsError) or exc.errno not in _LINK_UNSUPPORTED:
                raise
            # No hard links here (FAT, exFAT, some network shares): check, then rename.
            refuse_existing(final)
            os.rename(part, final)
        else:
            part.unlink()
        fsync_dir(final.parent)
    except FileExistsError as exc:
        raise StorageError(f"{final} already exists; not replacing it") from exc
    except OSError as exc:
        raise StorageError(f"cannot write {final}: {exc.strerror or exc}") from exc


class AtomicDirectory:
    """A directory built as ``.<name>.<random>.part`` beside ``path`` and renamed into place."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        refuse_existing(self.path)
        try:
            self.part = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".part",
                                              dir=self.path.parent))
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def __enter__(self) -> Path:
        return self.part

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.discard()
            return
        try:
            os.chmod(self.part, 0o755)
            fsync_dir(self.part)
            refuse_existing(self.path)  # rename() would replace an empty directory
            os.rename(self.part, self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:
            self.discard()
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        shutil.rmtree(self.part, ignore_errors=True)


__all__ = [
    "BLOCK_SIZE",
    "AtomicDirectory",
    "AtomicFile",
    "Digester",
    "LocalFile",
    "SourceFile",
    "as_source",
    "copy_file",
    "fsync_dir",
    "publish",
    "read_bounded",
    "refuse_existing",
]
