"""RFC 9162 Merkle tree hashing, proof generation and proof verification (SHA-256).

Hashes (RFC 9162 §2.1.1): a leaf is ``SHA-256(0x00 || data)``, an interior node is
``SHA-256(0x01 || left || right)``, the empty tree is ``SHA-256("")``. Proof generation follows
the recursive definitions of §2.1.3.1 (PATH) and §2.1.4.1 (PROOF/SUBPROOF) over a caller-given
``range_hash(start, end)`` (the MTH of leaves ``[start, end)``), so the same code serves the
on-disk log (which answers ``range_hash`` from stored subtree hashes in O(log n)) and an
in-memory list of leaf hashes. Verification follows §2.1.3.2 and §2.1.4.2 step by step and
returns ``False`` (never raises) on any malformed input.

This module does no I/O and knows nothing about entries, checkpoints or signatures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

RangeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    if n < 2:
        raise ValueError(f"no split point for a tree of {n} leaves")
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, by the recursive definition (reference; O(n))."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[0]
    k = split_point(n)
    return node_hash(root_from_leaf_hashes(hashes[:k]), root_from_leaf_hashes(hashes[k:]))


def subtree_sizes(n: int) -> list[int]:
    """Sizes of the complete subtrees that make up a tree of ``n`` leaves, left to right."""
    return [1 << bit for bit in range(n.bit_length() - 1, -1, -1) if n >> bit & 1]


def fold_subtrees(roots: Sequence[bytes]) -> bytes:
    """MTH of a tree from the roots of its complete subtrees (left to right): a right fold."""
    if not roots:
        return EMPTY_ROOT
    acc = roots[-1]
    for left in reversed(roots[:-1]):
        acc = node_hash(left, acc)
    return acc


def push_leaf(frontier: list[tuple[int, bytes]], leaf: bytes) -> None:
    """Append one leaf hash to a tree given by its ``frontier`` (``(width, hash)`` of its
    complete subtrees, left to right), in place: the append step of the tree's right edge."""
    width, h = 1, leaf
    while frontier and frontier[-1][0] == width:
        _, left = frontier.pop()
        h = node_hash(left, h)
        width <<= 1
    frontier.append((width, h))


def inclusion_path(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf-to-root order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of {size} leaves")
    siblings: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            siblings.append(range_hash(start + k, end))
            end = start + k
        else:
            siblings.append(range_hash(start, start + k))
            start += k
    siblings.reverse()
    return siblings


def consistency_path(old_size: int, new_size: int, range_hash: RangeHash) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1 (empty when the sizes are equal)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    nodes: list[bytes] = []
    start, end = 0, new_size
    starts_at_zero = True  # the "b" flag of SUBPROOF: the subtree is a prefix of the old tree
    while old_size != end:
        k = split_point(end - start)
        if old_size <= start + k:
            nodes.append(range_hash(start + k, end))
            end = start + k
        else:
            nodes.append(range_hash(start, start + k))
            start += k
            starts_at_zero = False
    if not starts_at_zero:
        nodes.append(range_hash(start, end))
    nodes.reverse()
    return nodes


def _valid_hashes(items: Sequence[bytes]) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in items)


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1-5), or None if invalid."""
    if not 0 <= index < size or not _valid_hashes(proof) or len(leaf) != HASH_SIZE:
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``proof`` shows the leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``."""
    computed = root_from_inclusion(leaf, index, size, proof)
    return computed is not None and computed == root


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """True iff ``proof`` shows tree ``(old_size, old_root)`` is a prefix of the new tree.

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots; an old size of 0 is
    consistent with anything (with an empty proof).
    """
    if not _valid_hashes(proof) or not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
