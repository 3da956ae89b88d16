"""The integrity log on an object store, in the C2SP tlog-tiles layout.

An object store cannot append to a file, so the log is kept as immutable objects under
``manifests/log/`` (the same RFC 9162 tree, leaf and node hashes as
:class:`preserve.log.storage.TransparencyLog`; a test checks roots and proofs are equal)::

    tile/entries/<N>[.p/<W>]   entry bundle N: entries 256·N … as big-endian uint16 length +
                               entry bytes (a partial bundle of W < 256 entries has .p/<W>)
    tile/<L>/<N>[.p/<W>]       hash tile N of level L: the 32-byte hashes of the tree nodes of
                               height 8·L, indices 256·N …; level 0 holds the leaf hashes
    head.json                  {"root": <hex>, "size": <n>}: the committed size (mutable,
                               replaced with If-Match: a lost race is an error, never a fork)

``N`` is written as 3-digit path elements, all but the last prefixed with ``x`` (``x001/234``),
exactly as in tlog-tiles, so tile-aware tooling can read the tree and the signed
``manifests/log/checkpoint`` beside it. Every tile and bundle is created once (``If-None-Match``)
and sealed with the archive's retention; a wider partial tile is a new object. One already
there is used only if it holds the same bytes, and that version is then sealed as a new one
would be (:meth:`~preserve.remote.store.ObjectStore.use_existing`).

An append creates the new bundles and tiles, then replaces ``head.json``: until then the append
has not happened. Objects past the head are the tail of an interrupted append; a writable open
*rolls it forward* (the bundle beyond the head is re-read, every entry parsed, its hash tiles
recomputed and created or checked) rather than deleting it, since sealed objects cannot be
deleted and the entries are leaves of manifests already past their commit point. Entries are
limited to 65,535 bytes (the bundle format).

Reads are O(log n) objects for a root or a proof (tiles are cached); :meth:`TiledLog.check`
streams every bundle once and keeps one tile per level in memory. The caller serialises
writers (the archive lease); this module signs nothing and does not interpret entries except
to refuse rolling forward garbage.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from preserve.errors import LogError, NotFoundError, PreserveError, StorageError
from preserve.log.entries import parse_entry
from preserve.log.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_path,
    fold_subtrees,
    inclusion_path,
    leaf_hash,
    node_hash,
    push_leaf,
    root_from_leaf_hashes,
    subtree_sizes,
)
from preserve.remote.store import ObjectStore

TILE_WIDTH = 256
TILE_HEIGHT = 8
MAX_BUNDLE_ENTRY = 0xFFFF
HEAD = "head.json"
MAX_HEAD = 4096
MAX_TILE = TILE_WIDTH * HASH_SIZE
MAX_BUNDLE = TILE_WIDTH * (2 + MAX_BUNDLE_ENTRY)
#: The width of a partial tile as its name gives it (``.p/<W>``, 1 <= W < 256, no leading
#: zero); any other name below ``.p/`` is none preserve wrote, and is not read.
_WIDTH = re.compile(r"[1-9][0-9]{0,2}", re.ASCII)


def tile_index_path(n: int) -> str:
    """tlog-tiles encoding of a tile index: 1234067 → ``x001/x234/067``."""
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def tile_path(level: int | str, index: int, width: int) -> str:
    suffix = f".p/{width}" if width < TILE_WIDTH else ""
    return f"tile/{level}/{tile_index_path(index)}{suffix}"


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes, count: int, where: str) -> list[bytes]:
    entries = []
    offset = 0
    for _ in range(count):
        if offset + 2 > len(data):
            raise LogError(f"{where}: entry bundle is truncated")
        length = int.from_bytes(data[offset:offset + 2], "big")
        offset += 2
        if length == 0 or offset + length > len(data):
            raise LogError(f"{where}: entry bundle is truncated or holds an empty entry")
        entries.append(data[offset:offset + length])
        offset += length
    if offset != len(data):
        raise LogError(f"{where}: entry bundle has {len(data) - offset} bytes too many")
    return entries


class TiledLog:
    """An RFC 9162 log in tlog-tiles objects under ``<log_rel>/`` of an :class:`ObjectStore`."""

    def __init__(self, store: ObjectStore, log_rel: str = "manifests/log") -> None:
        self.store = store
        self.log_rel = log_rel.rstrip("/")
        self._size = 0
        self._root = EMPTY_ROOT
        self._etag: str | None = None
        self._tiles: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self.torn_tail: list[str] = []
        self.tail_size = 0  # entries past the head (an interrupted or unfinished append)

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, store: ObjectStore, log_rel: str = "manifests/log", *, create: bool = False,
             readonly: bool = False) -> TiledLog:
        log = cls(store, log_rel)
        try:
            data, etag = store.get_etag(log._rel(HEAD), MAX_HEAD)
        except NotFoundError:
            if not create:
                raise LogError(f"no integrity log at {store.url}/{log._rel(HEAD)}") from None
            log._write_head(0, EMPTY_ROOT)
            return log
        log._size, log._root = _parse_head(data, f"{store.url}/{log._rel(HEAD)}")
        log._etag = etag
        computed = log._root_of(log._size)
        if computed != log._root:
            raise LogError(f"{log._rel(HEAD)}: root {log._root.hex()} does not match the stored "
                           f"tiles ({computed.hex()}) at size {log._size}")
        log._find_tail(roll_forward=not readonly)
        return log

    def _rel(self, name: str) -> str:
        return f"{self.log_rel}/{name}"

    def _write_head(self, size: int, root: bytes) -> None:
        data = json.dumps({"root": root.hex(), "size": size}, sort_keys=True).encode() + b"\n"
        try:
            self._etag = self.store.put_replace(self._rel(HEAD), data, etag=self._etag)
        except FileExistsError as exc:
            raise LogError(f"{self.store.url}/{self._rel(HEAD)} was changed by another writer "
                           "(is another committer running without the lease?)") from exc
        self._size, self._root = size, root

    # --- tiles -------------------------------------------------------------------------------

    def _count(self, level: int, size: int | None = None) -> int:
        """How many hashes level ``level`` holds at ``size`` (default: the committed size)."""
        return (self._size if size is None else size) >> (TILE_HEIGHT * level)

    def _tile(self, level: int, index: int, width: int) -> bytes:
        key = (level, index, width)
        cached = self._tiles.get(key)
        if cached is not None:
            self._tiles.move_to_end(key)
            return cached
        rel = self._rel(tile_path(level, index, width))
        try:
            data = self.store.get(rel, MAX_TILE)
        except NotFoundError as exc:
            raise LogError(f"{rel}: hash tile missing") from exc
        except StorageError as exc:
            raise LogError(str(exc)) from exc
        if len(data) != width * HASH_SIZE:
            raise LogError(f"{rel}: {len(data)} bytes, a tile of {width} hashes has "
                           f"{width * HASH_SIZE}")
        self._tiles[key] = data
        if len(self._tiles) > 256:
            self._tiles.popitem(last=False)
        return data

    def _stored(self, level: int, index: int, size: int | None = None) -> bytes:
        """The stored hash ``index`` of tile level ``level`` (tree height 8·level)."""
        count = self._count(level, size)
        if not 0 <= index < count:
            raise LogError(f"node {level}/{index} is beyond the tree")
        tile = index // TILE_WIDTH
        width = min(TILE_WIDTH, count - tile * TILE_WIDTH)
        data = self._tile(level, tile, width)
        at = (index % TILE_WIDTH) * HASH_SIZE
        return data[at:at + HASH_SIZE]

    def _node(self, height: int, index: int) -> bytes:
        """The hash of the complete subtree of 2**height leaves number ``index``."""
        level, rest = divmod(height, TILE_HEIGHT)
        width = 1 << rest
        first = index * width
        count = self._count(level)
        if first + width > count:
            raise LogError(f"node {height}/{index} is beyond the tree")
        tile = first // TILE_WIDTH
        tile_width = min(TILE_WIDTH, count - tile * TILE_WIDTH)
        data = self._tile(level, tile, tile_width)
        at = first % TILE_WIDTH
        hashes = [data[(at + i) * HASH_SIZE:(at + i + 1) * HASH_SIZE] for i in range(width)]
        return root_from_leaf_hashes(hashes) if width > 1 else hashes[0]

    def _range_hash(self, start: int, end: int) -> bytes:
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

    # --- the TransparencyLog read interface --------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise LogError(f"tree size {size} is not within the log's size {self._size}")
        return size

    def root_hash(self, size: int | None = None) -> bytes:
        size = self._check_size(size)
        return self._root if size == self._size else self._root_of(size)

    def leaf_hash(self, index: int) -> bytes:
        if not 0 <= index < self._size:
            raise LogError(f"leaf {index} is not in a log of {self._size} leaves")
        return self._stored(0, index)

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self._size:
            raise LogError(f"leaf {index} is not in a log of {self._size} leaves")
        return self._bundle(index // TILE_WIDTH)[index % TILE_WIDTH]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._check_size(size)
        try:
            return inclusion_path(index, size, self._range_hash)
        except ValueError as exc:
            raise LogError(str(exc)) from exc

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self._check_size(new_size)
        try:
            return consistency_path(old_size, new_size, self._range_hash)
        except ValueError as exc:
            raise LogError(str(exc)) from exc

    def _bundle(self, index: int, size: int | None = None) -> list[bytes]:
        size = self._size if size is None else size
        width = min(TILE_WIDTH, size - index * TILE_WIDTH)
        rel = self._rel(tile_path("entries", index, width))
        try:
            data = self.store.get(rel, MAX_BUNDLE)
        except NotFoundError as exc:
            raise LogError(f"{rel}: entry bundle missing") from exc
        except StorageError as exc:
            raise LogError(str(exc)) from exc
        return decode_bundle(data, width, rel)

    def iter_entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """``(index, entry)`` for every committed leaf from ``start``, one bundle at a time."""
        index = start
        while index < self._size:
            bundle = self._bundle(index // TILE_WIDTH)
            for entry in bundle[index % TILE_WIDTH:]:
                yield index, entry
                index += 1

    def check(self) -> list[tuple[int | None, str]]:
        """Re-read every bundle, rebuild the tree and compare every stored hash (at heights
        multiple of 8) and the head's root; bounded memory (one tile per level)."""
        problems: list[tuple[int | None, str]] = []
        stack: list[tuple[int, bytes]] = []
        try:
            for index, entry in self.iter_entries():
                h = leaf_hash(entry)
                if h != self._stored(0, index):
                    problems.append((index, "stored leaf hash does not match the entry"))
                height, i = 0, index
                while stack and stack[-1][0] == height:
                    _, left = stack.pop()
                    h = node_hash(left, h)
                    height += 1
                    i >>= 1
                    if height % TILE_HEIGHT == 0 and h != self._stored(height // TILE_HEIGHT, i):
                        problems.append((index, f"stored tile hash {height // 8}/{i} does not "
                                         "match"))
                stack.append((height, h))
        except LogError as exc:
            problems.append((None, str(exc)))
            return problems
        if fold_subtrees([h for _, h in stack]) != self._root:
            problems.append((None, "the entries do not hash to the head's root"))
        return problems

    def verify_extension(self, base_size: int, base_root: bytes,
                         on_entry: Callable[[int, bytes], None] | None = None) -> list[str]:
        """As :meth:`preserve.log.storage.TransparencyLog.verify_extension`: the stored
        subtrees of the base fold to ``base_root``, and the current root is recomputed from
        them and from every newer entry re-read from its bundle."""
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
                if h != self._stored(0, index):
                    problems.append(f"leaf {index}: stored leaf hash does not match the entry")
                push_leaf(frontier, h)
                if on_entry is not None:
                    on_entry(index, entry)
        except LogError as exc:
            return [*problems, str(exc)]
        if fold_subtrees([h for _, h in frontier]) != self._root:
            problems.append("the entries do not hash to the head's root")
        return problems

    def __enter__(self) -> TiledLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None  # nothing held open: every read is one request

    # --- appending ---------------------------------------------------------------------------

    def append(self, entry: bytes) -> int:
        return self.append_many([entry])

    def append_many(self, entries: Iterable[bytes]) -> int:
        """Append entries in order: create their bundles and tiles, then move the head."""
        batch = list(entries)
        for entry in batch:
            if not isinstance(entry, bytes) or not entry or len(entry) > MAX_BUNDLE_ENTRY:
                raise ValueError("a tiled log entry must be 1 to 65,535 bytes")
            if b"\n" in entry:
                raise ValueError("a log entry must not contain a newline")
        first = self._size
        if not batch:
            return first
        self._write_tiles(first, batch)
        new_size = first + len(batch)
        old_root = self._root
        self._size = new_size  # _node reads the tiles at the new size; the head comes next
        try:
            self._write_head(new_size, self._root_of(new_size))
        except BaseException:
            self._size, self._root = first, old_root
            raise
        return first

    def _write_tiles(self, first: int, batch: list[bytes]) -> None:
        new_size = first + len(batch)
        # entry bundles
        t0 = first // TILE_WIDTH
        old = self._bundle(t0, first) if first % TILE_WIDTH else []
        combined = old + batch
        for t in range(t0, (new_size - 1) // TILE_WIDTH + 1):
            chunk = combined[(t - t0) * TILE_WIDTH:(t - t0 + 1) * TILE_WIDTH]
            self._put(tile_path("entries", t, len(chunk)), encode_bundle(chunk))
        # hash tiles, level by level
        new = [leaf_hash(e) for e in batch]
        level = 0
        while new:
            old_count = first >> (TILE_HEIGHT * level)
            t0 = old_count // TILE_WIDTH
            width0 = old_count % TILE_WIDTH
            existing = self._tile(level, t0, width0) if width0 else b""
            hashes = [existing[i:i + HASH_SIZE] for i in range(0, len(existing), HASH_SIZE)]
            hashes += new
            completed = []
            for k in range(0, len(hashes), TILE_WIDTH):
                chunk = hashes[k:k + TILE_WIDTH]
                data = b"".join(chunk)
                self._put(tile_path(level, t0 + k // TILE_WIDTH, len(chunk)), data)
                self._tiles[(level, t0 + k // TILE_WIDTH, len(chunk))] = data
                if len(chunk) == TILE_WIDTH:
                    completed.append(root_from_leaf_hashes(chunk))
            new = completed
            level += 1

    def _put(self, name: str, data: bytes) -> None:
        try:
            self.store.put_new(self._rel(name), data, seal=True, same_ok=data)
        except FileExistsError as exc:
            raise LogError(f"{self._rel(name)} exists with other content: the log has a "
                           "conflicting tail (run preserve verify)") from exc

    # --- interrupted appends -------------------------------------------------------------------

    def _find_tail(self, *, roll_forward: bool) -> None:
        """Bundles past the head: an interrupted append. Reported in :attr:`torn_tail`;
        with ``roll_forward`` (a writable open) completed (see the module docstring)."""
        size = self._size
        entries: list[bytes] = []
        position = size
        while True:
            tile, offset = divmod(position, TILE_WIDTH)
            base = self._rel(f"tile/entries/{tile_index_path(tile)}")
            if self.store.exists(base):
                width = TILE_WIDTH
            else:
                widths = [int(w) for w in (i.key[len(base) + 3:]
                                           for i in self.store.list(base + ".p"))
                          if _WIDTH.fullmatch(w) and offset < int(w) < TILE_WIDTH]
                if not widths:
                    break
                width = max(widths)
            entries += self._bundle(tile, tile * TILE_WIDTH + width)[offset:]
            position = tile * TILE_WIDTH + width
            if width < TILE_WIDTH:
                break
        if not entries:
            return
        self.tail_size = len(entries)
        self.torn_tail.append(f"tile/entries: {len(entries)} entries past the committed size "
                              f"{size} (an interrupted append)")
        if not roll_forward:
            return
        for entry in entries:
            try:
                parse_entry(entry)
            except ValueError as exc:
                raise LogError(f"the tail past the log head holds an entry preserve did not "
                               f"write ({exc}); run preserve verify") from exc
        self.append_many(entries)


def _parse_head(data: bytes, where: str) -> tuple[int, bytes]:
    try:
        doc: Any = json.loads(data)
        size, root = doc["size"], bytes.fromhex(doc["root"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise LogError(f"{where}: not a log head") from exc
    if not (isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 1 << 48
            and len(root) == HASH_SIZE):
        raise LogError(f"{where}: head must hold a size and a 32-byte root")
    return size, root


def open_tiled(store: ObjectStore, *, readonly: bool = False) -> TiledLog:
    """The archive's tiled log (LogError if there is none or it is damaged)."""
    try:
        return TiledLog.open(store, readonly=readonly)
    except StorageError as exc:
        raise LogError(str(exc)) from exc
    except PreserveError:
        raise


__all__ = ["TILE_WIDTH", "TiledLog", "decode_bundle", "encode_bundle", "open_tiled",
           "tile_index_path", "tile_path"]
