"""Known heads follow the archive's identity (its log key), not the path it lives at: a moved
archive keeps its anchor, heads stored per path by earlier versions are migrated, and a copy
that lags behind is held to the same head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from preserve.errors import NotProvedError
from preserve.log import generate_key, init_log, load_signer, verify_log
from preserve.log.entries import canonical_json
from preserve.log.keys import Signer
from preserve.log.known_heads import LEGACY_FORMAT, KnownHeads, identity_for
from preserve.log.signing import check_extends, prove_and_sign
from preserve.log.storage import TransparencyLog

KEY_NAME = "heads.example/archive"


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    path, _ = generate_key(KEY_NAME, tmp_path / "archive.key")
    return load_signer(path)


def _audit(n: int) -> bytes:
    return canonical_json({"committed": f"2026-11-21T10:00:0{n}.000000Z", "event": {
        "eventType": "fixity check"}, "type": "audit", "v": 1})


def _archive(root: Path, signer: Signer, leaves: int) -> Path:
    init_log(root, signer.verifier)
    with TransparencyLog.open(root / "manifests/log") as log:
        log.append_many([_audit(n) for n in range(leaves)])
    return root


def _codes(root: Path, heads: KnownHeads) -> list[str]:
    return sorted(f.code for f in verify_log(root, heads=heads))


def test_a_moved_archive_keeps_its_anchor(tmp_path: Path, signer: Signer) -> None:
    heads = KnownHeads(tmp_path / "heads")
    old = _archive(tmp_path / "old", signer, 2)
    shutil.copytree(old, tmp_path / "older")
    with TransparencyLog.open(old / "manifests/log") as log:
        log.append(_audit(3))
    prove_and_sign(old, signer, heads=heads)
    moved = tmp_path / "disk2" / "archive"
    moved.parent.mkdir()
    old.rename(moved)
    assert _codes(moved, heads) == []
    shutil.rmtree(moved)
    shutil.copytree(tmp_path / "older", moved)  # an older copy restored at the new place
    assert _codes(moved, heads) == ["E315", "W302"]
    with pytest.raises(NotProvedError, match="fewer than"):
        check_extends(moved, heads, signer.verifier)


def test_a_head_stored_per_path_is_migrated(tmp_path: Path, signer: Signer) -> None:
    """A head an earlier version kept for the archive at its old path still anchors it at
    the new one; the next advance replaces it with one head for the identity."""
    heads = KnownHeads(tmp_path / "heads")
    root = _archive(tmp_path / "archive", signer, 3)
    with TransparencyLog.open(root / "manifests/log", readonly=True) as log:
        size, head_root = log.size, log.root_hash()
    identity = identity_for(signer.verifier, root)
    legacy = heads._legacy_file(identity, "/somewhere/else")
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"format": LEGACY_FORMAT, "identity": identity,
                                  "path": "/somewhere/else", "root": head_root.hex(),
                                  "size": size, "updated": "2026-11-21T10:00:00Z"}))
    shutil.copytree(root, tmp_path / "older")
    with TransparencyLog.open(root / "manifests/log") as log:
        log.append(_audit(4))
    assert _codes(root, heads) == ["W302"]
    prove_and_sign(root, signer, heads=heads)
    assert not legacy.exists()
    head = heads.get(identity, root)
    assert head is not None and head.size == size + 1
    assert head.paths == ("/somewhere/else", str(root.resolve()))
    assert _codes(tmp_path / "older", heads) == ["E315", "W302"]  # a lagging copy


def test_reset_head_at_a_place_keeps_other_keys_heads_elsewhere(
    tmp_path: Path, signer: Signer
) -> None:
    heads = KnownHeads(tmp_path / "heads")
    root = _archive(tmp_path / "archive", signer, 1)
    prove_and_sign(root, signer, heads=heads)
    elsewhere = _archive(tmp_path / "elsewhere", signer, 1)
    prove_and_sign(elsewhere, signer, heads=heads)  # the same log, seen at a second place
    identity = identity_for(signer.verifier, root)
    heads.leave(identity, root)
    head = heads.get(identity, elsewhere)
    assert head is not None and head.paths == (str(elsewhere.resolve()),)
    assert heads.for_path(root) == []


def test_heads_read_once_are_read_again_when_another_process_changes_them(tmp_path: Path) -> None:
    # a batch asks for every head once a group: parsed heads are kept, but a head another
    # process advanced, a new one, a removed one and one damaged in place are all seen
    mine, theirs = KnownHeads(tmp_path / "heads"), KnownHeads(tmp_path / "heads")
    root, other = tmp_path / "a", tmp_path / "b"
    mine.advance("origin-a+aa", 1, b"\x01" * 32, root)
    assert [h.size for h in mine.for_path(root)] == [1]
    theirs.advance("origin-a+aa", 5, b"\x05" * 32, root)
    theirs.advance("origin-b+bb", 2, b"\x02" * 32, root)
    assert sorted((h.identity, h.size) for h in mine.for_path(root)) == [
        ("origin-a+aa", 5), ("origin-b+bb", 2)]
    theirs.forget("origin-b+bb", root)
    assert [h.identity for h in mine.for_path(root)] == ["origin-a+aa"]
    path = theirs._file("origin-a+aa", root)
    doc = json.loads(path.read_bytes())
    doc["paths"] = [str(other.resolve())]
    path.write_bytes(canonical_json(doc) + b"\n")  # rewritten in place, not replaced
    assert mine.for_path(root) == [] and len(mine.for_path(other)) == 1
    path.write_bytes(b"{damaged")
    assert mine.for_path(other) == []
