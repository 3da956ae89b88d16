"""RFC 9162 tree hashing and proofs: published CT vectors and a brute-force reference."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preserve.log.merkle import (
    EMPTY_ROOT,
    consistency_path,
    inclusion_path,
    leaf_hash,
    root_from_inclusion,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# Leaves and roots of the Certificate Transparency test vectors (RFC 6962 / 9162 hashing),
# as published in google/certificate-transparency and google/trillian merkle tests.
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path) from trillian's merkle/log_verifier_test.go
INCLUSION_VECTORS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY_VECTORS = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


# --- an independent brute-force reference: the RFC's recursive definitions over lists --------


def ref_mth(data: list[bytes]) -> bytes:
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:])).digest()


def ref_path(m: int, data: list[bytes]) -> list[bytes]:
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, data[:k]), ref_mth(data[k:])]
    return [*ref_path(m - k, data[k:]), ref_mth(data[:k])]


def ref_subproof(m: int, data: list[bytes], b: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if b else [ref_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, data[:k], b), ref_mth(data[k:])]
    return [*ref_subproof(m - k, data[k:], False), ref_mth(data[:k])]


def list_range_hash(data: list[bytes]):  # type: ignore[no-untyped-def]
    return lambda a, b: ref_mth(data[a:b])


# --- published vectors -----------------------------------------------------------------------


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_ct_vectors(size: int) -> None:
    hashes = [leaf_hash(d) for d in LEAVES[:size]]
    assert root_from_leaf_hashes(hashes).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, path: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path]
    assert inclusion_path(index, size, list_range_hash(LEAVES[:size])) == proof
    root = bytes.fromhex(ROOTS[size - 1])
    leaf = leaf_hash(LEAVES[index])
    assert verify_inclusion(leaf, index, size, proof, root)
    # the mutations trillian's verifier test applies must all fail
    assert not verify_inclusion(leaf, index + 1, size, proof, root)
    assert not verify_inclusion(leaf, index ^ 2, size, proof, root)
    assert not verify_inclusion(leaf, index, size * 2, proof, root)
    assert not verify_inclusion(leaf, index, size // 2, proof, root)
    assert not verify_inclusion(leaf_hash(b"WrongLeaf"), index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, EMPTY_ROOT)
    assert not verify_inclusion(leaf, index, size, [*proof, root], root)
    assert not verify_inclusion(leaf, index, size, [root, *proof], root)
    assert not verify_inclusion(leaf, index, size, proof[:-1], root)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = EMPTY_ROOT
        assert not verify_inclusion(leaf, index, size, bad, root)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY_VECTORS)
def test_consistency_vectors(old: int, new: int, path: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path]
    assert consistency_path(old, new, list_range_hash(LEAVES[:new])) == proof
    r1, r2 = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    assert verify_consistency(old, new, r1, r2, proof)
    assert not verify_consistency(old - 1, new, r1, r2, proof)
    assert not verify_consistency(old + 1, new, r1, r2, proof)
    assert not verify_consistency(old, new * 2, r1, r2, proof)
    assert not verify_consistency(old, new, r2, r1, proof)
    assert not verify_consistency(old, new, r1, r2, [])
    assert not verify_consistency(old, new, r1, r2, proof[:-1])
    assert not verify_consistency(old, new, r1, r2, [*proof, r1])
    assert not verify_consistency(old, new, r1, r2, [proof[0], *proof])
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = EMPTY_ROOT
        assert not verify_consistency(old, new, r1, r2, bad)


def test_trivial_and_invalid_consistency() -> None:
    r = bytes.fromhex(ROOTS[0])
    assert verify_consistency(1, 1, r, r, [])
    assert not verify_consistency(1, 1, r, EMPTY_ROOT, [])
    assert not verify_consistency(1, 1, r, r, [r])
    assert verify_consistency(0, 5, EMPTY_ROOT, r, [])
    assert not verify_consistency(2, 1, r, r, [])
    assert not verify_consistency(1, 2, r, r, [b"short"])


def test_invalid_inclusion_inputs_are_rejected_not_raised() -> None:
    leaf = leaf_hash(b"x")
    assert root_from_inclusion(leaf, 0, 0, []) is None
    assert root_from_inclusion(leaf, 1, 1, []) is None
    assert root_from_inclusion(leaf, -1, 3, []) is None
    assert not verify_inclusion(leaf, 0, 2, [b"\x00" * 31], leaf)
    with pytest.raises(ValueError):
        inclusion_path(3, 3, list_range_hash([b"a", b"b", b"c"]))
    with pytest.raises(ValueError):
        consistency_path(0, 3, list_range_hash([b"a", b"b", b"c"]))


# --- properties against the brute-force reference ---------------------------------------------

leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(data=leaf_lists, pick=st.integers(min_value=0))
def test_inclusion_matches_reference(data: list[bytes], pick: int) -> None:
    n = len(data)
    index = pick % n
    proof = inclusion_path(index, n, list_range_hash(data))
    assert proof == ref_path(index, data)
    root = ref_mth(data)
    assert root_from_leaf_hashes([leaf_hash(d) for d in data]) == root
    assert verify_inclusion(leaf_hash(data[index]), index, n, proof, root)
    assert not verify_inclusion(leaf_hash(data[index] + b"!"), index, n, proof, root)


@settings(max_examples=150, deadline=None)
@given(data=leaf_lists, pick=st.integers(min_value=0), flip=st.integers(min_value=0))
def test_consistency_matches_reference(data: list[bytes], pick: int, flip: int) -> None:
    n = len(data)
    m = pick % n + 1
    proof = consistency_path(m, n, list_range_hash(data))
    assert proof == ref_subproof(m, data, True)
    old_root, new_root = ref_mth(data[:m]), ref_mth(data)
    assert verify_consistency(m, n, old_root, new_root, proof)
    if proof:  # flipping any bit of any proof hash breaks it
        i = flip % len(proof)
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        assert not verify_consistency(m, n, old_root, new_root, bad)
    if m < n:  # a different old tree (changed last old leaf) is not consistent
        changed = [*data[: m - 1], data[m - 1] + b"!", *data[m:]]
        assert not verify_consistency(m, n, ref_mth(changed[:m]), new_root, proof)
