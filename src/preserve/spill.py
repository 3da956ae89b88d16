"""Values kept in a file instead of memory, read back in the order they were written.

A :class:`Spill` holds what :mod:`marshal` writes (tuples of str, bytes, int, float, bool and
None), each value length-prefixed, in a binary file: a named file (:meth:`Spill.create`, in a
spool directory that is removed with it) or an anonymous one that spills to disk past a size
(:meth:`Spill.anonymous`). The commit of a group of tens of thousands of captures (an
import) keeps one small tuple a capture here, and reads them back one at a time, so its
memory does not grow with the group. Values read back are trusted as written: a spill is
this process's own file, never input.

This module does not fsync (what it holds is rebuilt or discarded after a crash) and does not
decide what is spilled.
"""

from __future__ import annotations

import marshal
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: An anonymous spill stays in memory up to this many bytes, then moves to a file.
IN_MEMORY_BYTES = 64 * 1024
_PREFIX = 4
_BLOCK = 1 << 16


class Spill:
    """An append-only sequence of marshal-able values in one binary file."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._end = 0
        self._offsets = array("q")  # of each value: 8 bytes a value, for indexing

    @classmethod
    def create(cls, path: Path) -> Spill:
        """A spill in the new file ``path`` (never an existing one)."""
        return cls(path.open("xb+"))

    @classmethod
    def anonymous(cls, directory: Path | None = None) -> Spill:
        """A spill in memory up to :data:`IN_MEMORY_BYTES`, then in a file with no name in
        ``directory`` (it disappears when closed, or when the process ends)."""
        where = str(directory) if directory is not None and directory.is_dir() else None
        handle: Any = tempfile.SpooledTemporaryFile(  # noqa: SIM115  # closed by close()
            max_size=IN_MEMORY_BYTES, dir=where)
        return cls(handle)

    def append(self, value: Any) -> None:
        data = marshal.dumps(value)
        self._handle.seek(self._end)
        self._handle.write(len(data).to_bytes(_PREFIX, "big") + data)
        self._offsets.append(self._end)
        self._end += _PREFIX + len(data)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> Any:
        """The value at ``index`` (IndexError past the end)."""
        start = self._offsets[index]
        size = int.from_bytes(self._read(start, _PREFIX)[:_PREFIX], "big")
        return marshal.loads(self._read(start + _PREFIX, size))

    def __iter__(self) -> Iterator[Any]:
        """The values from the first, each read when it is reached (another iteration, or
        an append, may come in between)."""
        offset = 0  # of buffer[0] in the file
        buffer = b""
        at = 0  # the next value's position in buffer
        while offset + at < self._end:
            if len(buffer) - at < _PREFIX:
                buffer, offset, at = self._refill(buffer, offset, at, _PREFIX)
            size = int.from_bytes(buffer[at:at + _PREFIX], "big")
            if len(buffer) - at < _PREFIX + size:
                buffer, offset, at = self._refill(buffer, offset, at, _PREFIX + size)
            yield marshal.loads(buffer[at + _PREFIX:at + _PREFIX + size])
            at += _PREFIX + size

    def _refill(self, buffer: bytes, offset: int, at: int,
                wanted: int) -> tuple[bytes, int, int]:
        """The buffer from position ``at`` on, read on until it holds ``wanted`` bytes (or a
        block more)."""
        rest = buffer[at:]
        start = offset + at
        while len(rest) < wanted:
            rest += self._read(start + len(rest), max(_BLOCK, wanted - len(rest)))
        return rest, start, 0

    def _read(self, offset: int, size: int) -> bytes:
        self._handle.seek(offset)
        data = self._handle.read(min(size, self._end - offset))
        if not data:
            raise OSError(f"spill file ends at {offset}, short of {self._end}")
        return data

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


__all__ = ["IN_MEMORY_BYTES", "Spill"]
