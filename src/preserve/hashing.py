"""Hashing helpers: BLAKE3 and SHA-256 together in one pass over a byte stream.

BLAKE3 addresses content inside preserve (``blake3:<hex>``); SHA-256 is what other tools know
(WARC digests, ``sha256sum``). This module only hashes; it does not read or write the archive.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

from preserve.safe_io import open_binary

BLOCK_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class Digests:
    """The BLAKE3 and SHA-256 digests (lower-case hex) and the length of some bytes."""

    blake3: str
    sha256: str
    size: int


class DualHasher:
    """Feed bytes once, get both digests: ``h.update(b); h.digests()``."""

    __slots__ = ("_b3", "_sha", "_size")

    def __init__(self) -> None:
        self._b3 = blake3.blake3()
        self._sha = hashlib.sha256()
        self._size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._b3.update(data)
        self._sha.update(data)
        self._size += len(data)

    def digests(self) -> Digests:
        return Digests(self._b3.hexdigest(), self._sha.hexdigest(), self._size)


def hash_bytes(data: bytes) -> Digests:
    """Both digests of an in-memory byte string."""
    h = DualHasher()
    h.update(data)
    return h.digests()


def hash_stream(stream: BinaryIO, block_size: int = BLOCK_SIZE) -> Digests:
    """Both digests of everything left in ``stream``, read in blocks."""
    h = DualHasher()
    while block := stream.read(block_size):
        h.update(block)
    return h.digests()


def hash_file(path: Path, block_size: int = BLOCK_SIZE) -> Digests:
    """Both digests of a regular file, streamed (never through a final symlink, never
    blocking on a FIFO: StorageError)."""
    with open_binary(path) as f:
        return hash_stream(f, block_size)


def hash_fd(fd: int, buffer: bytearray) -> Digests:
    """Both digests of everything left in the open file ``fd``, read with ``readinto`` into
    ``buffer`` (reused by the caller; its size is the block size). Hashing large blocks
    releases the GIL, so several files can be hashed at once from threads."""
    with_advice = getattr(os, "posix_fadvise", None)
    if with_advice is not None:
        with contextlib.suppress(OSError):  # only a hint
            with_advice(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    h = DualHasher()
    view = memoryview(buffer)
    with open(fd, "rb", buffering=0, closefd=False) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h.digests()


def hash_chunks(chunks: Iterable[bytes]) -> Digests:
    """Both digests of the concatenation of ``chunks``."""
    h = DualHasher()
    for chunk in chunks:
        h.update(chunk)
    return h.digests()


def blake3_hex(data: bytes) -> str:
    """BLAKE3 of ``data`` as lower-case hex."""
    return str(blake3.blake3(data).hexdigest())


def sha256_base32(digest: bytes) -> str:
    """A raw SHA-256 digest as the ``sha256:BASE32`` label WARC tools write."""
    return "sha256:" + base64.b32encode(digest).decode("ascii")


def warc_digest_to_hex(label: str) -> tuple[str, str]:
    """Split a WARC digest label (``algo:base32`` or ``algo:hex``) into (algo, lower hex)."""
    algo, _, value = label.partition(":")
    if not value:
        raise ValueError(f"not a digest label: {label!r}")
    if len(value) in (64, 40, 128) and all(c in "0123456789abcdefABCDEF" for c in value):
        return algo.lower(), value.lower()
    return algo.lower(), base64.b32decode(value.upper()).hex()
