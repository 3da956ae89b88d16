"""The on-disk append-only Merkle log: entries, stored subtree hashes and a head file.

Layout of a log directory::

    entries.jsonl   leaf data, one entry per line (the entry bytes, then b"\\n")
    entries.idx     8-byte big-endian end offset of each line in entries.jsonl
    tree/NN.bin     level NN: 32-byte hashes of the complete subtrees of 2**NN leaves, in order
                    (level 00 holds the leaf hashes)
    head.json       {"root": <hex>, "size": <n>}: the committed size, replaced atomically

An append writes the entry, its index record and the O(log n) new subtree hashes at their
final offsets, fsyncs those files, then replaces ``head.json`` (temp file, fsync, rename,
directory fsync). Bytes past what ``head.json`` implies are the torn tail of an interrupted
append: a writable open truncates them, a read-only open reports them in :attr:`torn_tail`.
Roots and proofs read O(log n) stored hashes; nothing re-reads all leaves except :meth:`check`.

The caller serialises writers (the archive lock); this module takes no lock, knows nothing
about what an entry means (see :mod:`preserve.log.entries`) and does not sign anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

from ..errors import LogError, StorageError
from ..safe_io import fsync_dir, loads_strict, read_regular, write_atomic
from ..storage.layout import LOG_DIR
from .merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_path,
    fold_subtrees,
    inclusion_path,
    leaf_hash,
    node_hash,
    push_leaf,
    subtree_sizes,
)

ENTRIES_NAME = "entries.jsonl"
INDEX_NAME = "entries.idx"
TREE_DIR_NAME = "tree"
HEAD_NAME = "head.json"
OFFSET_SIZE = 8
MAX_ENTRY_SIZE = 1 << 20
MAX_READ = 8 << 20
MAX_HEAD_SIZE = 4096
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


def write_file_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename, directory fsync)."""
    write_atomic(path, data)


def _require_one_link(path: Path, links: int) -> None:
    """LogError unless the log file at ``path`` has one name: a file hard-linked elsewhere (a
    snapshot made with ``cp -al`` or ``rsync --link-dest``, or a link planted to a file
    outside the archive) would be truncated and appended to in every place at once."""
    if links != 1:
        raise LogError(f"{path} has {links} hard links: writing it would change every copy "
                       "that shares it (a snapshot made with hard links?); not written. Copy "
                       "the archive without hard links (cp -a, not cp -al)")


def hard_linked(log_dir: Path) -> list[str]:
    """The log files (entries, index, tree levels; relative to ``log_dir``) that have more
    than one name: what a writable open refuses to write (:func:`_require_one_link`)."""
    names = [ENTRIES_NAME, INDEX_NAME]
    with contextlib.suppress(OSError):
        names += sorted(f"{TREE_DIR_NAME}/{e.name}" for e in os.scandir(log_dir / TREE_DIR_NAME)
                        if e.name.endswith(".bin"))
    shared = []
    for name in names:
        try:
            st = os.lstat(log_dir / name)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink != 1:
            shared.append(name)
    return shared


def require_unshared(log_dir: Path) -> None:
    """LogError if a log file has more than one name (see :func:`_require_one_link`): checked
    before a commit, so that nothing is committed that could not then be logged."""
    for name in hard_linked(log_dir):
        _require_one_link(log_dir / name, os.lstat(log_dir / name).st_nlink)


def _head_bytes(size: int, root: bytes) -> bytes:
    return json.dumps({"root": root.hex(), "size": size}, sort_keys=True).encode() + b"\n"


class TransparencyLog:
    """An RFC 9162 append-only log stored in one directory; see the module docstring."""

    def __init__(self, log_dir: Path, *, readonly: bool) -> None:
        self._dir = log_dir
        self._readonly = readonly
        self._fds: dict[str, int] = {}
        self._size = 0
        self._root = EMPTY_ROOT
        self.torn_tail: list[str] = []
        """Descriptions of bytes found past the committed size (an interrupted append)."""

    # --- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, log_dir: Path | str, *, create: bool = False, readonly: bool = False
    ) -> TransparencyLog:
        """Open (or with ``create``, create if absent) the log in ``log_dir``.

        Raises :class:`LogError` if the log is missing or its committed part is damaged
        (files shorter than the head says, or stored hashes that do not give the head's root).
        """
        log_dir = Path(log_dir)
        if create and readonly:
            raise ValueError("a read-only open cannot create a log")
        head = log_dir / HEAD_NAME
        if not head.exists():
            if not create:
                raise LogError(f"no transparency log in {log_dir} (missing {HEAD_NAME})")
            cls._create(log_dir)
        log = cls(log_dir, readonly=readonly)
        try:
            log._load()
        except BaseException:
            log.close()
            raise
        return log

    @staticmethod
    def _create(log_dir: Path) -> None:
        for name in (ENTRIES_NAME, INDEX_NAME):
            existing = log_dir / name
            if existing.exists() and existing.stat().st_size:
                raise LogError(
                    f"{log_dir}: {HEAD_NAME} is missing but {name} holds data; "
                    "refusing to start a new log over it"
                )
        try:
            (log_dir / TREE_DIR_NAME).mkdir(parents=True, exist_ok=True)
            for name in (ENTRIES_NAME, INDEX_NAME):
                (log_dir / name).touch(exist_ok=True)
            fsync_dir(log_dir)
        except OSError as exc:
            raise StorageError(f"cannot create a log in {log_dir}: {exc}") from exc
        write_file_atomic(log_dir / HEAD_NAME, _head_bytes(0, EMPTY_ROOT))

    def _load(self) -> None:
        self._size, self._root = self._read_head()
        for name in (ENTRIES_NAME, INDEX_NAME):
            self._fds[name] = self._open_file(self._dir / name, create=False)
        self._check_lengths()
        for debris in self._dir.glob(".tmp-*"):  # temp files of an interrupted atomic write
            self.torn_tail.append(f"{debris.name}: temporary file of an interrupted write")
            if not self._readonly:
                with contextlib.suppress(OSError):
                    debris.unlink()
        computed = self._root_of(self._size)
        if computed != self._root:
            raise LogError(
                f"{self._dir / HEAD_NAME}: root {self._root.hex()} does not match the stored "
                f"tree ({computed.hex()}) at size {self._size}"
            )

    def _open_file(self, path: Path, *, create: bool) -> int:
        """A descriptor of one log file: never through a symlink, never a FIFO or device."""
        flags = (os.O_RDONLY if self._readonly else os.O_RDWR) | _NOFOLLOW | os.O_NONBLOCK
        if create and not self._readonly:
            flags |= os.O_CREAT
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise LogError(f"cannot open {path}: {exc.strerror or exc}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LogError(f"{path} is not a regular file")
            if not self._readonly:
                _require_one_link(path, st.st_nlink)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _read_head(self) -> tuple[int, bytes]:
        path = self._dir / HEAD_NAME
        data = read_regular(path, MAX_HEAD_SIZE, what="log head", error=LogError)
        doc = loads_strict(data, max_bytes=MAX_HEAD_SIZE, max_depth=2, what=f"{path}",
                           error=LogError)
        size, root = (doc.get("size"), doc.get("root")) if isinstance(doc, dict) else (None, None)
        if not (isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 1 << 48
                and isinstance(root, str)):
            raise LogError(f"{path}: head must hold a size and a root")
        if not _HEX64.match(root):
            raise LogError(f"{path}: head root is not 64 lower-case hex digits")
        return size, bytes.fromhex(root)

    def _check_lengths(self) -> None:
        n = self._size
        expected = {INDEX_NAME: n * OFFSET_SIZE}
        actual = {name: os.fstat(self._fds[name]).st_size for name in (INDEX_NAME, ENTRIES_NAME)}
        if actual[INDEX_NAME] < expected[INDEX_NAME]:
            raise LogError(f"{self._dir / INDEX_NAME}: shorter than the {n} committed entries")
        expected[ENTRIES_NAME] = self._entry_end(n - 1) if n else 0
        tree_dir = self._dir / TREE_DIR_NAME
        if tree_dir.is_symlink() or not tree_dir.is_dir():
            raise LogError(f"{tree_dir}: missing or not a plain directory")
        levels = {p.name: p for p in tree_dir.glob("*.bin")}
        for level in range(max(n.bit_length(), 1)):
            name = f"{level:02d}.bin"
            want = (n >> level) * HASH_SIZE
            if name in levels:
                levels.pop(name)
                expected[f"{TREE_DIR_NAME}/{name}"] = want
                actual[f"{TREE_DIR_NAME}/{name}"] = os.fstat(self._level_fd(level)).st_size
            elif want:
                raise LogError(f"{tree_dir / name}: missing")
        for name, path in levels.items():  # levels above the committed height: all tail
            expected[f"{TREE_DIR_NAME}/{name}"] = 0
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                raise LogError(f"{path} is not a regular file")
            actual[f"{TREE_DIR_NAME}/{name}"] = st.st_size
        for name, want in expected.items():
            have = actual[name]
            if have < want:
                raise LogError(f"{self._dir / name}: {have} bytes, the committed log needs {want}")
            if have > want:
                self.torn_tail.append(f"{name}: {have - want} bytes past the committed size {n}")
                if not self._readonly:
                    self._truncate(self._dir / name, want)

    @staticmethod
    def _truncate(path: Path, length: int) -> None:
        try:
            _require_one_link(path, path.lstat().st_nlink)
            with path.open("r+b") as f:
                f.truncate(length)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise StorageError(f"cannot truncate the torn tail of {path}: {exc}") from exc

    # --- low-level reads and writes --------------------------------------------------------------

    def _level_fd(self, level: int) -> int:
        name = f"{TREE_DIR_NAME}/{level:02d}.bin"
        fd = self._fds.get(name)
        if fd is None:
            fd = self._open_file(self._dir / name, create=True)
            self._fds[name] = fd
        return fd

    def _pread(self, fd: int, length: int, offset: int, what: str) -> bytes:
        try:
            data = os.pread(fd, length, offset)
        except OSError as exc:
            raise LogError(f"{self._dir}: cannot read {what}: {exc}") from exc
        if len(data) != length:
            raise LogError(f"{self._dir}: {what} is truncated")
        return data

    def _pwrite(self, fd: int, data: bytes, offset: int) -> None:
        try:
            written = os.pwrite(fd, data, offset)
        except OSError as exc:
            raise StorageError(f"{self._dir}: write failed: {exc}") from exc
        if written != len(data):
            raise StorageError(f"{self._dir}: short write")

    def _node(self, level: int, index: int) -> bytes:
        """The stored hash of complete subtree ``index`` at ``level`` (2**level leaves)."""
        return self._pread(
            self._level_fd(level), HASH_SIZE, index * HASH_SIZE, f"node {level}/{index}"
        )

    def _entry_end(self, index: int) -> int:
        raw = self._pread(
            self._fds[INDEX_NAME], OFFSET_SIZE, index * OFFSET_SIZE, f"index record {index}"
        )
        return int.from_bytes(raw, "big")

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end) from stored complete-subtree hashes (O(log n) reads)."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self._range_hash(start, start + k), self._range_hash(start + k, end))

    def _root_of(self, size: int) -> bytes:
        roots: list[bytes] = []
        start = 0
        for width in subtree_sizes(size):
            roots.append(self._node(width.bit_length() - 1, start // width))
            start += width
        return fold_subtrees(roots)

    # --- public reads -------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._dir

    @property
    def size(self) -> int:
        """The number of committed leaves."""
        return self._size

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise LogError(f"tree size {size} is not within the log's size {self._size}")
        return size

    def root_hash(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all committed leaves)."""
        size = self._check_size(size)
        return self._root if size == self._size else self._root_of(size)

    def leaf(self, index: int) -> bytes:
        """The entry bytes of leaf ``index``."""
        if not 0 <= index < self._size:
            raise LogError(f"leaf {index} is not in a log of {self._size} leaves")
        start = self._entry_end(index - 1) if index else 0
        end = self._entry_end(index)
        if not start < end <= start + MAX_ENTRY_SIZE + 1:
            raise LogError(f"index record {index} does not delimit a valid entry")
        data = self._pread(self._fds[ENTRIES_NAME], end - start, start, f"entry {index}")
        if not data.endswith(b"\n"):
            raise LogError(f"entry {index} is not terminated by a newline")
        return data[:-1]

    def leaf_hash(self, index: int) -> bytes:
        """The stored RFC 9162 leaf hash of leaf ``index``."""
        if not 0 <= index < self._size:
            raise LogError(f"leaf {index} is not in a log of {self._size} leaves")
        return self._node(0, index)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
        size = self._check_size(size)
        try:
            return inclusion_path(index, size, self._range_hash)
        except ValueError as exc:
            raise LogError(str(exc)) from exc

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof between tree sizes ``old_size`` and ``new_size``."""
        new_size = self._check_size(new_size)
        try:
            return consistency_path(old_size, new_size, self._range_hash)
        except ValueError as exc:
            raise LogError(str(exc)) from exc

    def iter_entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(index, entry bytes)`` for every committed leaf from ``start``, streamed."""
        index = start
        offset = self._entry_end(start - 1) if start else 0
        batch = 4096
        while index < self._size:
            count = min(batch, self._size - index)
            raw = self._pread(
                self._fds[INDEX_NAME], count * OFFSET_SIZE, index * OFFSET_SIZE, "index records"
            )
            ends = [int.from_bytes(raw[i : i + OFFSET_SIZE], "big") for i in range(0, len(raw), 8)]
            if ends[-1] < offset:
                raise LogError(f"index records from {index} go backwards")
            while len(ends) > 1 and ends[-1] - offset > MAX_READ:  # bound the memory per read
                del ends[len(ends) // 2 :]
            if ends[-1] - offset > MAX_READ:
                raise LogError(f"index record {index} claims an entry larger than allowed")
            block = self._pread(self._fds[ENTRIES_NAME], ends[-1] - offset, offset, "entries")
            base = offset
            for end in ends:
                if end <= offset or end > ends[-1]:
                    raise LogError(f"index record {index} is not after the previous one")
                line = block[offset - base : end - base]
                if not line.endswith(b"\n") or b"\n" in line[:-1]:
                    raise LogError(f"entry {index} is not exactly one line")
                yield index, line[:-1]
                offset = end
                index += 1

    def check(self) -> list[tuple[int | None, str]]:
        """Re-read every entry and rebuild the tree; return ``(leaf index or None, problem)``.

        Streams the entries once and keeps O(log n) hashes in memory; compares each leaf hash
        and each complete subtree hash with the stored one and the final root with the head.
        """
        problems: list[tuple[int | None, str]] = []
        stack: list[tuple[int, bytes]] = []  # (level, hash) of the right edge, bottom last
        try:
            for index, entry in self.iter_entries():
                h = leaf_hash(entry)
                if h != self._node(0, index):
                    problems.append((index, "stored leaf hash does not match the entry"))
                level, i = 0, index
                while stack and stack[-1][0] == level:
                    _, left = stack.pop()
                    h = node_hash(left, h)
                    level += 1
                    i >>= 1
                    if h != self._node(level, i):
                        problems.append((index, f"stored node {level}/{i} does not match"))
                stack.append((level, h))
        except LogError as exc:
            problems.append((None, str(exc)))
            return problems
        root = fold_subtrees([h for _, h in stack])
        if root != self._root:
            problems.append((None, "the entries do not hash to the head's root"))
        return problems

    def verify_extension(
        self,
        base_size: int,
        base_root: bytes,
        on_entry: Callable[[int, bytes], None] | None = None,
    ) -> list[str]:
        """Prove that this log extends the trusted tree head ``(base_size, base_root)`` and
        that its newer leaves are exactly its entries; return the problems (empty: proved).

        Nothing stored is trusted: the stored complete-subtree hashes of the first
        ``base_size`` leaves must fold to ``base_root`` (so they are the trusted ones), and the
        root of the whole log is then recomputed from them and the hashes of the newer
        entries, re-read from ``entries.jsonl``, and compared with the head. ``on_entry`` sees
        each newer ``(index, entry bytes)``. O(log n + k) for k newer leaves.
        """
        if not 0 <= base_size <= self._size:
            return [f"the log has {self._size} leaves, fewer than the trusted {base_size}"]
        frontier: list[tuple[int, bytes]] = []
        start = 0
        try:
            for width in subtree_sizes(base_size):
                frontier.append((width, self._node(width.bit_length() - 1, start // width)))
                start += width
        except LogError as exc:
            return [str(exc)]
        if fold_subtrees([h for _, h in frontier]) != base_root:
            return [f"the log's first {base_size} leaves are not the trusted tree of that size "
                    "(rewritten, reordered or replaced)"]
        problems: list[str] = []
        try:
            for index, entry in self.iter_entries(base_size):
                h = leaf_hash(entry)
                if h != self._node(0, index):
                    problems.append(f"leaf {index}: stored leaf hash does not match the entry")
                push_leaf(frontier, h)
                if on_entry is not None:
                    on_entry(index, entry)
        except LogError as exc:
            return [*problems, str(exc)]
        if fold_subtrees([h for _, h in frontier]) != self._root:
            problems.append("the entries do not hash to the head's root")
        return problems

    # --- appending ------------------------------------------------------------------------------

    def append(self, entry: bytes) -> int:
        """Append one entry durably; return its leaf index."""
        return self.append_many([entry])

    def append_many(self, entries: Iterable[bytes]) -> int:
        """Append entries in order with one set of fsyncs; return the first new leaf index."""
        if self._readonly:
            raise LogError("the log was opened read-only")
        batch = list(entries)
        for entry in batch:  # all checked before anything is written
            if not isinstance(entry, bytes) or not entry or len(entry) > MAX_ENTRY_SIZE:
                raise ValueError("a log entry must be 1 byte to 1 MiB of bytes")
            if b"\n" in entry:
                raise ValueError("a log entry must not contain a newline")
        first = self._size
        size = self._size
        offset = self._entry_end(size - 1) if size else 0
        touched: set[str] = {ENTRIES_NAME, INDEX_NAME}
        for entry in batch:
            line = entry + b"\n"
            self._pwrite(self._fds[ENTRIES_NAME], line, offset)
            offset += len(line)
            self._pwrite(self._fds[INDEX_NAME], offset.to_bytes(OFFSET_SIZE, "big"), size * 8)
            h = leaf_hash(entry)
            level, i = 0, size
            self._pwrite(self._level_fd(level), h, i * HASH_SIZE)
            touched.add(f"{TREE_DIR_NAME}/{level:02d}.bin")
            while i & 1:
                h = node_hash(self._node(level, i - 1), h)
                level += 1
                i >>= 1
                self._pwrite(self._level_fd(level), h, i * HASH_SIZE)
                touched.add(f"{TREE_DIR_NAME}/{level:02d}.bin")
            size += 1
        if size == first:
            return first
        try:
            for name in touched:
                os.fsync(self._fds[name])
            fsync_dir(self._dir / TREE_DIR_NAME)
        except OSError as exc:
            raise StorageError(f"{self._dir}: fsync failed: {exc}") from exc
        root = self._root_of(size)
        write_file_atomic(self._dir / HEAD_NAME, _head_bytes(size, root))
        self._size, self._root = size, root
        return first

    # --- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def has_log(root: Path) -> bool:
    """Whether the archive has an integrity log (its head file exists)."""
    directory = Path(root) / LOG_DIR  # never write through a symlinked log directory
    return not directory.is_symlink() and (directory / HEAD_NAME).is_file()
