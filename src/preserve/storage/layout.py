"""The on-disk layout of an archive root, and safe resolution of paths read from archive data.

This module names where things live (``archive/warc/…``, ``archive/text/ab/cd/<hex>``,
``manifests/<capture_id>.json``, …), mints capture ids, and turns a relative path found in a
manifest into a real path only after checking that it cannot escape the root (no absolute
paths, ``..``, backslashes, NUL, drive letters or colons, and no symlink leading outside).
It also holds the two small directory helpers every durable write needs (``makedirs_durable``,
``fsync_dir``).

It does not read or write archive content; :mod:`~preserve.storage.text_store` and
:mod:`~preserve.storage.manifest` do. The checks are made at resolution time: a process
that swaps a directory for a symlink between the check and the open is outside what this
module can prevent.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from preserve.errors import PreserveError, StorageError, UnsafePathError

ARCHIVE_DIR = "archive"
WARC_DIR = "archive/warc"
TEXT_DIR = "archive/text"
TMP_DIR = "archive/tmp"
MANIFESTS_DIR = "manifests"
LOG_DIR = "manifests/log"
LOCK_FILE = "archive/.lock"

WARC_SUFFIX = ".warc.gz"
MANIFEST_SUFFIX = ".json"
MANIFEST_TMP_PREFIX = ".tmp-"

CAPTURE_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[a-z2-7]{10}\Z")
HEX_DIGEST_RE = re.compile(r"^[0-9a-f]{64}\Z")

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_MAX_PATH_LEN = 4096


def is_capture_id(value: object) -> bool:
    """True if ``value`` is a well-formed capture id (``YYYYMMDDTHHMMSSZ-<10 base32>``)."""
    if not isinstance(value, str) or not CAPTURE_ID_RE.fullmatch(value):
        return False
    try:
        datetime.strptime(value[:16], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return False
    return True


def new_capture_id(now: datetime) -> str:
    """A fresh capture id for a capture started at ``now`` (an aware datetime; made UTC)."""
    if now.tzinfo is None:
        raise ValueError("new_capture_id needs an aware datetime")
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:10]
    return f"{stamp}-{suffix}"


def is_hex_digest(value: object) -> bool:
    """True if ``value`` is 64 lower-case hex characters (a BLAKE3 or SHA-256 digest)."""
    return isinstance(value, str) and HEX_DIGEST_RE.fullmatch(value) is not None


def require_hex_digest(value: object) -> str:
    """Return ``value`` if it is a 64-char lower-hex digest, else raise UnsafePathError.

    Called before any digest becomes part of a path.
    """
    if not is_hex_digest(value):
        raise UnsafePathError(f"not a 64-character lower-case hex digest: {value!r}")
    assert isinstance(value, str)
    return value


def require_capture_id(value: object) -> str:
    """Return ``value`` if it is a well-formed capture id, else raise UnsafePathError."""
    if not is_capture_id(value):
        raise UnsafePathError(f"not a capture id: {value!r}")
    assert isinstance(value, str)
    return value


def check_relative(relative: object, *, under: str | None = None) -> str:
    """Lexically validate an archive-relative posix path; return it unchanged.

    Rejects: non-strings, empty, over-long, absolute, backslash, NUL or other control
    characters, a colon (drive letters, NTFS streams), empty/``.``/``..`` components, and, when
    ``under`` is given, a path not strictly below that directory (e.g. ``"archive"``).
    """
    if not isinstance(relative, str):
        raise UnsafePathError(f"path is not a string: {relative!r}")
    if not relative or len(relative) > _MAX_PATH_LEN:
        raise UnsafePathError(f"path is empty or too long: {relative[:80]!r}")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in relative):
        raise UnsafePathError(f"path contains a control character or NUL: {relative!r}")
    if "\\" in relative:
        raise UnsafePathError(f"path contains a backslash: {relative!r}")
    if relative.startswith("/") or _DRIVE_RE.match(relative):
        raise UnsafePathError(f"path is absolute: {relative!r}")
    if ":" in relative:
        raise UnsafePathError(f"path contains a colon: {relative!r}")
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePathError(f"path has an empty, '.' or '..' component: {relative!r}")
    if under is not None:
        prefix = under.strip("/").split("/")
        if parts[: len(prefix)] != prefix or len(parts) <= len(prefix):
            raise UnsafePathError(f"path is not under {under}/: {relative!r}")
    return relative


def resolve_inside(root: Path, relative: str, *, under: str | None = None) -> Path:
    """The real path of ``root/relative``, after proving it stays inside ``root``.

    ``relative`` is checked with :func:`check_relative`; then symlinks are resolved (the
    target need not exist) and the result must lie inside the resolved root. Returns the
    resolved path, which is what callers should open. Raises UnsafePathError otherwise.
    """
    check_relative(relative, under=under)
    real_root = root.resolve()
    try:
        resolved = (real_root / relative).resolve()
    except (OSError, RuntimeError) as exc:  # symlink loop, over-long path
        raise UnsafePathError(f"path cannot be resolved: {relative!r}: {exc}") from exc
    if resolved != real_root and not resolved.is_relative_to(real_root):
        raise UnsafePathError(f"path leaves the archive root via a symlink: {relative!r}")
    return resolved


class InsideResolver:
    """:func:`resolve_inside` for many paths below one root, faster: ``os.path.realpath``
    costs an ``lstat`` and some Python per component of every path (most of a verify of
    small captures went there). Here the root is resolved once, and a path's directory is
    proved free of symlinks from its nearest proved ancestor, one ``lstat`` a level, each
    proof kept (the most recently used ``size`` directories, by device and inode): a
    directory, or one above it, swapped for a symlink since no longer has the inode proved,
    so the chain is proved again and the swap found. A last component that is a symlink, or
    a directory that cannot be proved, is resolved in full by :func:`resolve_inside`, so the
    answer is always its answer. Safe to call from several threads."""

    def __init__(self, root: Path, size: int = 1024) -> None:
        self.root = root
        self.real_root = root.resolve()
        self._size = size
        self._proved: dict[str, tuple[int, int]] = {}  # directory -> (device, inode)
        self._lock = threading.Lock()

    def __call__(self, relative: str, *, under: str | None = None) -> Path:
        check_relative(relative, under=under)
        parent, _, name = relative.rpartition("/")
        if parent and self._plain_directory(parent):
            path = self.real_root / parent / name
            if not os.path.islink(path):
                return path
        return resolve_inside(self.real_root, relative, under=under)

    def _plain_directory(self, directory: str) -> bool:
        """Whether ``real_root/directory`` is a directory reached through directories only
        (no symlink on the way), proved from the nearest proved ancestor up."""
        try:
            st = os.lstat(self.real_root / directory)
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):  # a symlink, or no directory
            return False
        identity = (st.st_dev, st.st_ino)
        with self._lock:
            if self._proved.get(directory) == identity:
                self._proved[directory] = self._proved.pop(directory)  # most recent
                return True
        above = directory.rpartition("/")[0]
        if above and not self._plain_directory(above):
            return False
        with self._lock:
            self._proved.pop(directory, None)
            if len(self._proved) >= self._size:
                self._proved.pop(next(iter(self._proved)))
            self._proved[directory] = identity
        return True


def relative_to_root(root: Path, path: Path) -> str:
    """``path`` (below ``root``) as the posix relative string stored in manifests."""
    return PurePosixPath(*path.relative_to(root).parts).as_posix()


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (create, link, rename, unlink) to stable storage."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def require_plain_below(root: Path, directory: Path, *,
                        error: type[PreserveError] = StorageError) -> None:
    """Raise ``error`` unless every existing component of ``directory`` below ``root`` is a
    real directory: a symlink (or a file) there would send a write somewhere else, perhaps
    outside the archive. Components not created yet are fine (the caller makes them)."""
    current = root
    for part in directory.relative_to(root).parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise error(f"cannot check {current}: {exc.strerror or exc}") from exc
        if not stat.S_ISDIR(mode):
            raise error(f"{current} is a symlink or not a directory; refusing to write "
                        "through it (run preserve verify)")


def makedirs_durable(directory: Path) -> None:
    """Create ``directory`` and any missing parents, fsyncing the parent of each new entry."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current.parent != current:
        missing.append(current)
        current = current.parent
    for new_dir in reversed(missing):
        try:
            new_dir.mkdir()
        except FileExistsError:
            continue
        fsync_dir(new_dir.parent)


def warc_rel(capture_id: str, started: datetime) -> str:
    """``archive/warc/YYYY/MM/<capture_id>.warc.gz`` (month of ``started`` in UTC)."""
    require_capture_id(capture_id)
    if started.tzinfo is None:
        raise ValueError("warc path needs an aware datetime")
    month = started.astimezone(UTC).strftime("%Y/%m")
    return f"{WARC_DIR}/{month}/{capture_id}{WARC_SUFFIX}"


def text_rel(blake3_hex: str) -> str:
    """``archive/text/ab/cd/<hex>`` for a validated BLAKE3 hex digest."""
    h = require_hex_digest(blake3_hex)
    return f"{TEXT_DIR}/{h[0:2]}/{h[2:4]}/{h}"


@dataclass(frozen=True, slots=True)
class ArchiveLayout:
    """Where each kind of file lives below an archive root (see docs/format.md)."""

    root: Path

    @property
    def archive_dir(self) -> Path:
        return self.root / ARCHIVE_DIR

    @property
    def warc_dir(self) -> Path:
        return self.root / WARC_DIR

    @property
    def text_dir(self) -> Path:
        return self.root / TEXT_DIR

    @property
    def tmp_dir(self) -> Path:
        return self.root / TMP_DIR

    @property
    def manifests_dir(self) -> Path:
        return self.root / MANIFESTS_DIR

    @property
    def log_dir(self) -> Path:
        return self.root / LOG_DIR

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_FILE

    def warc_rel_for(self, capture_id: str, started: datetime) -> str:
        """``archive/warc/YYYY/MM/<capture_id>.warc.gz`` (month of ``started`` in UTC)."""
        return warc_rel(capture_id, started)

    def warc_path_for(self, capture_id: str, started: datetime) -> Path:
        return self.root / self.warc_rel_for(capture_id, started)

    def text_rel_for(self, blake3_hex: str) -> str:
        """``archive/text/ab/cd/<hex>`` for a validated BLAKE3 hex digest."""
        return text_rel(blake3_hex)

    def text_path_for(self, blake3_hex: str) -> Path:
        return self.root / self.text_rel_for(blake3_hex)

    def manifest_rel_for(self, capture_id: str) -> str:
        return f"{MANIFESTS_DIR}/{require_capture_id(capture_id)}{MANIFEST_SUFFIX}"

    def manifest_path_for(self, capture_id: str) -> Path:
        return self.root / self.manifest_rel_for(capture_id)

    def require_plain_dirs(self) -> None:
        """StorageError if a directory preserve writes into is a symlink (or not a
        directory): a write through it could land outside the archive root."""
        for directory in (self.archive_dir, self.warc_dir, self.text_dir, self.tmp_dir,
                          self.manifests_dir, self.log_dir):
            if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
                raise StorageError(f"{directory} is a symlink or not a directory; refusing "
                                   "to write through it (run preserve verify)")

    def ensure_dirs(self) -> None:
        """Create the fixed directories (archive/warc, text, tmp, manifests, manifests/log)."""
        for directory in (self.warc_dir, self.text_dir, self.tmp_dir, self.log_dir):
            makedirs_durable(directory)


__all__ = [
    "ARCHIVE_DIR",
    "CAPTURE_ID_RE",
    "HEX_DIGEST_RE",
    "LOCK_FILE",
    "LOG_DIR",
    "MANIFESTS_DIR",
    "MANIFEST_SUFFIX",
    "MANIFEST_TMP_PREFIX",
    "TEXT_DIR",
    "TMP_DIR",
    "WARC_DIR",
    "WARC_SUFFIX",
    "ArchiveLayout",
    "InsideResolver",
    "check_relative",
    "fsync_dir",
    "is_capture_id",
    "is_hex_digest",
    "makedirs_durable",
    "new_capture_id",
    "relative_to_root",
    "require_capture_id",
    "require_hex_digest",
    "require_plain_below",
    "resolve_inside",
    "text_rel",
    "warc_rel",
]
