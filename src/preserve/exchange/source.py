"""Where an export or a report reads an archive: a local directory or an object store.

:mod:`.plan`, :mod:`.wacz`, :mod:`.bagit` and :mod:`.report` are one code path for both
kinds of root; they read the archive only through an :class:`ArchiveSource`:

- :class:`LocalSource`: an archive directory (:class:`~preserve.archive.Archive`); files are
  resolved inside the root (never through a symlink out of it) and read as regular files;
- :class:`RemoteSource`: an ``s3://bucket/prefix`` root
  (:class:`~preserve.remote.archive.RemoteArchive`); the same names, read through
  :class:`~preserve.remote.store.ObjectStore`: manifests, keys and checkpoints bounded, WARC
  files and text objects streamed (fsspec file objects, blocks fetched on demand), the log
  from its tiles.

Either way the exporter checks the same things: manifests parsed and held to their log
leaves, every file's size and digests re-computed while it is copied, proofs from the newest
signed checkpoint within the log's size at the start.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from preserve import log
from preserve.archive import Archive
from preserve.errors import NotFoundError, PreserveError, StorageError
from preserve.exchange.files import LocalFile, SourceFile
from preserve.integrity import has_log
from preserve.log.archive_log import (
    CHECKPOINT_DIR,
    KEY_FILE,
    MAX_CHECKPOINT_FILE,
    MAX_KEY_FILE,
    MAX_TOKEN_FILE,
    read_token_file,
)
from preserve.log.entries import MAX_MANIFEST_BYTES, manifest_path
from preserve.log.keys import Signer
from preserve.log.proof import ProofLog
from preserve.safe_io import read_regular
from preserve.storage.layout import check_relative, resolve_inside
from preserve.storage.manifest import iter_manifest_paths, read_manifest_bytes

if TYPE_CHECKING:
    from preserve.remote.archive import RemoteArchive
    from preserve.remote.store import ObjectStore


class SourceLog(ProofLog, Protocol):
    """An opened integrity log, read-only: its size and what a proof needs."""

    @property
    def size(self) -> int: ...


class ArchiveSource(Protocol):
    """What an export or a report reads of an archive (see the module docstring)."""

    @property
    def label(self) -> str:
        """The root as messages name it (a directory, an ``s3://`` URL)."""
        ...

    def is_archive(self) -> bool:
        """Whether anything like an archive is there."""
        ...

    def manifest_names(self) -> list[str]:
        """The names (without ``.json``) of the files right in ``manifests/``."""
        ...

    def find(self, capture_id: str) -> str:
        """The full id of the capture a unique part of an id names (NotFoundError)."""
        ...

    def read_manifest(self, capture_id: str) -> bytes:
        """A manifest's bytes, bounded. ValueError: not a capture id; NotFoundError;
        OSError, StorageError, ManifestError: unreadable or too large."""
        ...

    def file(self, rel: str) -> SourceFile:
        """A file below ``archive/`` a manifest names (UnsafePathError for a bad name)."""
        ...

    def has_log(self) -> bool: ...

    def read_key(self) -> bytes | None:
        """``manifests/log/key.pub``, exact bytes (None when there is none)."""
        ...

    def open_log(self) -> AbstractContextManager[SourceLog]: ...

    def checkpoint_names(self) -> list[str]:
        """The stored checkpoints' file names in ``manifests/log/checkpoints/``, oldest
        first."""
        ...

    def read_checkpoint(self, name: str) -> bytes:
        """One stored checkpoint, exact bytes, bounded (OSError or a PreserveError)."""
        ...

    def read_token(self, name: str) -> bytes | None:
        """The RFC 3161 token stored beside checkpoint ``name`` (None when there is none)."""
        ...

    def signer(self) -> Signer | None:
        """The archive's signing key, when it is at hand."""
        ...

    def key_name(self) -> str | None:
        """The archive key's name (names the default WACZ signing key), None if unknown."""
        ...

    def refuse_output(self, out: Path) -> None:
        """StorageError when writing ``out`` would write into the archive."""
        ...


_LOG = "manifests/log"  # the log's objects, as below a local root
#: Bytes an object store file reads ahead of what an export asked for (it asks for 1 MiB
#: blocks): a request every 2 MiB, and a few MiB held however large the file.
READ_AHEAD = 1 << 20


def _token_name(name: str) -> str:
    return name.removesuffix(".txt") + ".tsr"


@dataclass(frozen=True)
class LocalSource:
    """An archive directory."""

    archive: Archive

    @property
    def label(self) -> str:
        return str(self.archive.root)

    @property
    def root(self) -> Path:
        return self.archive.root

    def is_archive(self) -> bool:
        layout = self.archive.layout
        return layout.manifests_dir.is_dir() or layout.archive_dir.is_dir()

    def manifest_names(self) -> list[str]:
        return [p.name[: -len(".json")] for p in iter_manifest_paths(self.archive.layout)]

    def find(self, capture_id: str) -> str:
        return self.archive.find(capture_id)

    def read_manifest(self, capture_id: str) -> bytes:
        return read_manifest_bytes(self.root / manifest_path(capture_id))

    def file(self, rel: str) -> SourceFile:
        return LocalFile(resolve_inside(self.root, rel, under="archive"))

    def has_log(self) -> bool:
        return has_log(self.root)

    def read_key(self) -> bytes | None:
        path = log.log_dir(self.root) / KEY_FILE
        if not os.path.lexists(path):
            return None
        return read_regular(path, MAX_KEY_FILE, what="key file")

    def open_log(self) -> AbstractContextManager[SourceLog]:
        return log.open_log(self.root, readonly=True)

    def checkpoint_names(self) -> list[str]:
        return [p.name for p in log.checkpoint_paths(self.root)]

    def _checkpoint(self, name: str) -> Path:
        return log.log_dir(self.root) / CHECKPOINT_DIR / name

    def read_checkpoint(self, name: str) -> bytes:
        return read_regular(self._checkpoint(name), MAX_CHECKPOINT_FILE, what="checkpoint")

    def read_token(self, name: str) -> bytes | None:
        token = self._checkpoint(_token_name(name))
        return read_token_file(token) if token.is_file() else None

    def signer(self) -> Signer | None:
        return self.archive._signer()

    def key_name(self) -> str | None:
        try:
            return log.read_verifier(self.root).name
        except PreserveError:  # no key, or an invalid one: the caller picks a default name
            return None

    def refuse_output(self, out: Path) -> None:
        target = Path(out).parent.resolve() / Path(out).name
        for directory in (self.archive.layout.archive_dir, self.archive.layout.manifests_dir):
            if target.is_relative_to(directory.resolve()):
                raise StorageError(f"{out} is inside the archive ({directory}); write it "
                                   "elsewhere")


@dataclass(frozen=True)
class StoredFile:
    """An object of an object store, read as a stream (blocks fetched on demand)."""

    store: ObjectStore
    rel: str

    def __str__(self) -> str:
        return f"{self.store.url}/{self.rel}"

    @contextlib.contextmanager
    def open(self) -> Iterator[tuple[BinaryIO, int]]:
        with self.store.open(self.rel, block_size=READ_AHEAD) as handle:
            size = getattr(handle, "size", None)  # an fsspec file knows it from opening
            yield cast(BinaryIO, handle), int(size) if size is not None else self.size()

    def size(self) -> int:
        return self.store.info(self.rel).size


@dataclass(frozen=True)
class RemoteSource:
    """An archive root in an object store (``s3://bucket/prefix``)."""

    archive: RemoteArchive

    @property
    def label(self) -> str:
        return self.archive.url

    @property
    def store(self) -> ObjectStore:
        return self.archive.store

    def is_archive(self) -> bool:
        return self.archive.is_archive()

    def manifest_names(self) -> list[str]:
        return [n[len("manifests/"): -len(".json")] for n in self.archive.manifest_names()]

    def find(self, capture_id: str) -> str:
        return self.archive.find(capture_id)

    def read_manifest(self, capture_id: str) -> bytes:
        return self.store.get(manifest_path(capture_id), MAX_MANIFEST_BYTES)  # ValueError

    def file(self, rel: str) -> SourceFile:
        check_relative(rel, under="archive")
        self.store.key(rel)  # StorageError for a name preserve never sends requests for
        return StoredFile(self.store, rel)

    def has_log(self) -> bool:
        return self.store.exists("manifests/log/head.json")

    def _get(self, rel: str, limit: int) -> bytes | None:
        try:
            return self.store.get(rel, limit)
        except NotFoundError:
            return None

    def read_key(self) -> bytes | None:
        return self._get(f"{_LOG}/{KEY_FILE}", MAX_KEY_FILE)

    def open_log(self) -> AbstractContextManager[SourceLog]:
        return self.archive.place.open_log()

    def checkpoint_names(self) -> list[str]:
        return [rel.rsplit("/", 1)[-1] for rel in self.archive.place.checkpoint_names()]

    def _checkpoint(self, name: str) -> str:
        return f"{_LOG}/{CHECKPOINT_DIR}/{name}"

    def read_checkpoint(self, name: str) -> bytes:
        return self.store.get(self._checkpoint(name), MAX_CHECKPOINT_FILE)

    def read_token(self, name: str) -> bytes | None:
        return self._get(self._checkpoint(_token_name(name)), MAX_TOKEN_FILE)

    def signer(self) -> Signer | None:
        return self.archive.signer()

    def key_name(self) -> str | None:
        try:
            return self.archive.place.read_verifier().name
        except PreserveError:  # no key, or an invalid one: the caller picks a default name
            return None

    def refuse_output(self, out: Path) -> None:
        return None  # the output is a local path, the archive is in the store


def source_for(archive: Archive | RemoteArchive | ArchiveSource) -> ArchiveSource:
    """The :class:`ArchiveSource` of an archive directory or an object-store root."""
    if isinstance(archive, Archive):
        return LocalSource(archive)
    if isinstance(archive, LocalSource | RemoteSource):
        return archive
    from preserve.remote.archive import RemoteArchive  # noqa: PLC0415 - fsspec, s3fs

    if isinstance(archive, RemoteArchive):
        return RemoteSource(archive)
    return archive


__all__ = ["ArchiveSource", "LocalSource", "RemoteSource", "SourceLog", "StoredFile",
           "source_for"]
