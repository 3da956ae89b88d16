"""Bounded, hostile-input-safe reading of small files and JSON, and atomic writes.

Everything preserve reads from an archive or a bundle may have been written by an attacker:
a FIFO where a file should be (an open would block for ever), a sparse file of terabytes, a
symlink out of the root, JSON nested a million levels deep (``RecursionError``), duplicate
keys, ``NaN``. :func:`read_regular` opens without following a final symlink and without
blocking, checks that what it opened is a regular file of at most ``limit`` bytes *before*
reading, and reads at most ``limit`` bytes. :func:`loads_strict` bounds size, nesting and the
number of strings and containers before ``json.loads`` runs, and rejects duplicate keys and
non-finite numbers. :func:`walk_tree` lists a directory tree of any depth without following
a symlink (``os.walk`` and ``Path.rglob`` recurse in Python: a tree nested a few thousand
levels deep raised ``RecursionError``). :func:`write_atomic` writes a temp file, fsyncs it
and moves it into place (replacing, or with ``exclusive`` linking so an existing file is never
replaced), then fsyncs the directory.

Each raises the error class the caller names, so a log reader gets :class:`LogError` and a
manifest reader :class:`ManifestError`. This module knows nothing about what the bytes mean.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from preserve.errors import PreserveError, StorageError

#: Default nesting limit for JSON documents preserve reads (manifests use 32 as well).
MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"[^"]*"')
_NON_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_FOLD_BRACKETS = bytes.maketrans(b"{}", b"[]")
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def open_regular(path: Path | str, *, error: type[PreserveError] = StorageError,
                 follow_symlinks: bool = False) -> int:
    """An O_RDONLY descriptor of ``path`` if it is a regular file (no final symlink followed
    unless ``follow_symlinks``, never blocking on a FIFO or device); raises ``error``
    otherwise. The caller closes it."""
    flags = _OPEN_FLAGS & ~getattr(os, "O_NOFOLLOW", 0) if follow_symlinks else _OPEN_FLAGS
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_binary(path: Path | str, *, error: type[PreserveError] = StorageError,
                follow_symlinks: bool = False) -> BinaryIO:
    """:func:`open_regular` as a binary file object (the caller closes it)."""
    return os.fdopen(open_regular(path, error=error, follow_symlinks=follow_symlinks), "rb")


def read_regular(path: Path | str, limit: int, *, what: str = "file",
                 error: type[PreserveError] = StorageError,
                 follow_symlinks: bool = False) -> bytes:
    """The bytes of the regular file ``path``, refusing one larger than ``limit`` bytes."""
    fd = open_regular(path, error=error, follow_symlinks=follow_symlinks)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise error(f"{what} {path} is {size} bytes, over the limit of {limit}")
        chunks: list[bytes] = []
        total = 0
        expected = size + 1  # a byte past the size fstat gave: a file that grew is seen
        while total <= limit:
            # reads sized to the file (each read allocates what it asks for): the file, then
            # one byte to see its end; larger steps only if it turns out longer
            step = min(1 << 20, expected - total) if total < expected else 1 << 16
            block = os.read(fd, min(step, limit + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if total > limit:  # grew while we read it
        raise error(f"{what} {path} is over the limit of {limit} bytes")
    return b"".join(chunks)


def read_text(path: Path | str, limit: int, *, what: str = "file",
              error: type[PreserveError] = StorageError) -> str:
    """:func:`read_regular` decoded as UTF-8 (``error`` if it is not UTF-8)."""
    data = read_regular(path, limit, what=what, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text") from exc


def json_nesting(data: bytes, limit: int) -> int:
    """Bracket nesting depth of JSON text without parsing it: exact up to ``limit``, some value
    above ``limit`` for anything deeper (or unbalanced in a way that could be).

    Escaped backslashes and quotes are dropped, strings removed, and innermost ``[]`` pairs
    peeled off one level per pass (at most ``limit + 1`` passes)."""
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", unescaped).translate(_FOLD_BRACKETS, _NON_BRACKET)
    depth = 0
    while brackets and depth <= limit:
        peeled = brackets.replace(b"[]", b"")
        if peeled == brackets:  # what is left is ]]]...[[[ : unbalanced, count the openers
            return depth + brackets.count(b"[")
        brackets = peeled
        depth += 1
    return depth


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def loads_strict(data: bytes | str, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH,
                 what: str = "JSON document",
                 error: type[PreserveError] = StorageError) -> Any:
    """Parse JSON that may be hostile: size and nesting bounded before parsing, duplicate keys,
    NaN/Infinity, a byte-order mark and invalid UTF-8 rejected. Raises ``error``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise error(f"{what} is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8") from exc
    if text.startswith("\ufeff"):
        raise error(f"{what} starts with a byte-order mark")
    if json_nesting(raw, max_depth) > max_depth:
        raise error(f"{what} is nested deeper than {max_depth} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates,
                          parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from exc


def walk_tree(top: Path) -> Iterator[tuple[Path, int, int]]:
    """``(path, st_mode, depth)`` of everything below ``top`` (depth 1: its entries), parents
    before children, without following symlinks (a symlink is listed, not entered) and
    without recursion, whatever the depth. A directory that cannot be listed is skipped."""
    pending = [(top, 1)]
    while pending:
        directory, depth = pending.pop()
        try:
            with os.scandir(directory) as entries:
                found = [(Path(e.path), e.stat(follow_symlinks=False).st_mode) for e in entries]
        except OSError:
            continue
        for path, mode in found:
            yield path, mode, depth
            if stat.S_ISDIR(mode):
                pending.append((path, depth + 1))


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (create, link, rename, unlink) to stable storage."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Paths a :class:`Durability` remembers before it fsyncs them (where syncfs is missing).
MAX_PENDING = 4096


class Durability:
    """Makes a group of writes durable with as few disk flushes as the system allows.

    Files and directories written without their own fsync are :meth:`add`-ed; :meth:`flush`
    then makes all of them durable at once: one ``syncfs(2)`` of their file system where Linux
    offers it (a group commit of hundreds of captures costs two flushes, not hundreds), else
    an fsync of each file and each directory. Nothing is durable before :meth:`flush`
    returns; the caller orders its commit point after it.
    """

    def __init__(self, anchor: Path) -> None:
        self.anchor = anchor
        self.files: list[Path] = []
        self.directories: set[Path] = set()
        self.pending = False

    def add(self, path: Path, *, directory: bool = False) -> None:
        """Remember ``path`` for :meth:`flush`. Where ``syncfs(2)`` will flush everything at
        once nothing needs remembering; elsewhere, past :data:`MAX_PENDING` paths, those
        remembered are fsynced at once (sooner is always safe), so that a group of tens of
        thousands of files holds no list of them."""
        self.pending = True
        if _libc_syncfs() is not None:
            return
        if directory:
            self.directories.add(path)
        else:
            self.files.append(path)
        if len(self.files) + len(self.directories) >= MAX_PENDING:
            self._fsync_each()

    def flush(self) -> None:
        """Make everything added durable (StorageError if the system says it could not)."""
        if not self.pending:
            return
        if not _syncfs(self.anchor):
            self._fsync_each()
        self.pending = False

    def _fsync_each(self) -> None:
        for path in self.files:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for directory in sorted(self.directories):
            fsync_dir(directory)
        self.files.clear()
        self.directories.clear()


def _syncfs(anchor: Path) -> bool:
    """``syncfs(2)`` the file system holding ``anchor``; False where it is not available."""
    function = _libc_syncfs()
    if function is None:
        return False
    fd = os.open(anchor, os.O_RDONLY)
    try:
        if function(fd) != 0:
            error = ctypes.get_errno()
            raise StorageError(f"cannot flush the file system of {anchor}: {os.strerror(error)}")
    finally:
        os.close(fd)
    return True


_SYNCFS: list[Any] = []


def _libc_syncfs() -> Any:
    if not _SYNCFS:
        function = None
        if sys.platform.startswith("linux") and not os.environ.get("PRESERVE_NO_SYNCFS"):
            try:
                function = ctypes.CDLL(None, use_errno=True).syncfs
                function.argtypes = [ctypes.c_int]
                function.restype = ctypes.c_int
            except (OSError, AttributeError):
                function = None
        _SYNCFS.append(function)
    return _SYNCFS[0]


def write_atomic(path: Path, data: bytes, *, exclusive: bool = False, mode: int = 0o644,
                 sync_dir: bool = True, durability: Durability | None = None) -> None:
    """Put ``data`` at ``path`` so that a crash leaves the old file or the whole new one.

    A temp file beside ``path`` is written and fsynced, then renamed over ``path`` or, with
    ``exclusive``, hard-linked to it (``FileExistsError`` if ``path`` exists: never replaced).
    With ``durability`` nothing is fsynced here: the file and its directory are added to it,
    to be flushed with the rest of a group. Raises :class:`StorageError` for any other
    failure; the temp file is always removed.
    """
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durability is None:
                os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
        if durability is not None:
            durability.add(path)
            durability.add(path.parent, directory=True)
        elif sync_dir:
            fsync_dir(path.parent)
    except FileExistsError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_PENDING",
    "Durability",
    "fsync_dir",
    "json_nesting",
    "loads_strict",
    "open_binary",
    "open_regular",
    "read_regular",
    "read_text",
    "write_atomic",
]
