"""The archive's integrity log end to end: recording, checkpoints, attacks and their findings,
proof bundles checked offline."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from preserve import scratch
from preserve.errors import ProofError
from preserve.hashing import hash_bytes
from preserve.log import (
    CODES,
    DESCRIPTIONS,
    TransparencyLog,
    check_proof,
    checkpoint_paths,
    fixity_event,
    generate_key,
    init_log,
    latest_checkpoint,
    load_signer,
    log_dir,
    make_proof,
    parse_entry,
    record_event,
    record_manifest,
    unlogged_manifests,
    verify_log,
    write_checkpoint,
)
from preserve.log.audit_index import AuditIndex, Logged
from preserve.log.keys import Signer
from preserve.log.merkle import leaf_hash
from preserve.log.note import parse_checkpoint, sign_checkpoint

CAPTURES = ["20261121T100000Z-aaaaaaaaaa", "20261121T110000Z-bbbbbbbbbb",
            "20261121T120000Z-cccccccccc", "20261121T130000Z-dddddddddd"]  # fmt: skip
KEY_NAME = "test.example/preserve-archive"


def write_manifest(root: Path, capture_id: str, started: str | None = None) -> Path:
    warc_bytes = f"pretend WARC of {capture_id}".encode()
    warc_rel = f"archive/warc/2026/11/{capture_id}.warc.gz"
    (root / warc_rel).parent.mkdir(parents=True, exist_ok=True)
    (root / warc_rel).write_bytes(warc_bytes)
    d = hash_bytes(warc_bytes)
    day, clock = capture_id[:8], capture_id[9:15]
    manifest = {
        "schema": "preserve/manifest/1",
        "capture_id": capture_id,
        "status": "ok",
        "requested_url": "https://example.org/",
        "started": started or f"{day[:4]}-{day[4:6]}-{day[6:]}T{clock[:2]}:{clock[2:4]}:"
        f"{clock[4:]}.000000Z",
        "warc": {
            "path": warc_rel,
            "size": d.size,
            "blake3": d.blake3,
            "sha256": d.sha256,
            "records": [
                {"id": "urn:uuid:1", "type": "response", "target_uri": "https://example.org/",
                 "offset": 0, "length": d.size, "block_digest": "sha256:AAAA",
                 "payload_digest": "sha256:BBBB", "refers_to": None,
                 "content_type": "application/http"},
            ],
        },
    }  # fmt: skip
    path = root / "manifests" / f"{capture_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return path


def commit(root: Path, capture_id: str, day_time: str) -> None:
    write_manifest(root, capture_id)
    record_manifest(root, capture_id, committed=f"2026-11-21T{day_time}.000000Z")


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    path, _ = generate_key(KEY_NAME, tmp_path / "config" / "archive.key")
    return load_signer(path)


@pytest.fixture
def root(tmp_path: Path, signer: Signer) -> Path:
    """An archive with three logged captures and a checkpoint covering them."""
    root = tmp_path / "archive"
    init_log(root, signer.verifier)
    for capture_id, t in zip(CAPTURES[:3], ["10:00:05", "11:00:05", "12:00:05"], strict=True):
        commit(root, capture_id, t)
    write_checkpoint(root, signer)
    return root


def codes(findings: list[Any]) -> list[str]:
    return sorted(f.code for f in findings)


def rewrite_log(root: Path, entries: list[bytes]) -> None:
    """What an attacker without the key can do: rebuild the whole log from chosen entries."""
    directory = log_dir(root)
    for name in ("entries.jsonl", "entries.idx", "head.json"):
        (directory / name).unlink()
    shutil.rmtree(directory / "tree")
    with TransparencyLog.open(directory, create=True) as log:
        log.append_many(entries)


def entries_of(root: Path) -> list[bytes]:
    with TransparencyLog.open(log_dir(root), readonly=True) as log:
        return [e for _, e in log.iter_entries()]


def test_clean_archive_has_no_findings(root: Path, signer: Signer) -> None:
    assert verify_log(root) == []
    assert verify_log(root, trusted_key=signer.verifier.to_text()) == []
    assert set(CODES) == set(DESCRIPTIONS)
    assert all(code[0] in "EW" and code[1] == "3" and len(code) == 4 for code in CODES)


def test_audit_event_leaf(root: Path, signer: Signer) -> None:
    event = fixity_event(outcome="pass", counts={"manifests": 3, "errors": 0}, finding_codes=[])
    index = record_event(root, event)
    assert index == 3
    leaf = parse_entry(entries_of(root)[index])
    assert leaf.event["eventType"] == "fixity check"  # type: ignore[union-attr]
    assert leaf.event["eventOutcomeInformation"]["eventOutcome"] == "pass"  # type: ignore[union-attr]
    assert codes(verify_log(root)) == ["W302"]  # the event is not yet checkpointed
    write_checkpoint(root, signer)
    assert verify_log(root) == []


def test_deleted_manifest(root: Path) -> None:
    (root / "manifests" / f"{CAPTURES[1]}.json").unlink()
    findings = verify_log(root)
    assert codes(findings) == ["E305"]
    assert findings[0].path == f"manifests/{CAPTURES[1]}.json"


def test_edited_manifest(root: Path) -> None:
    path = root / "manifests" / f"{CAPTURES[0]}.json"
    path.write_text(path.read_text().replace("example.org", "example.net"))
    assert codes(verify_log(root)) == ["E306"]


def test_edited_manifest_with_every_hash_recomputed(root: Path) -> None:
    """Edit a manifest, recompute its leaf and the whole tree: only the signature betrays it."""
    path = root / "manifests" / f"{CAPTURES[0]}.json"
    path.write_text(path.read_text().replace("example.org", "example.net"))
    entries = entries_of(root)
    old = json.loads(entries[0])
    d = hash_bytes(path.read_bytes())
    old["manifest"].update(blake3=d.blake3, sha256=d.sha256, size=d.size)
    entries[0] = json.dumps(old, sort_keys=True, separators=(",", ":")).encode()
    rewrite_log(root, entries)
    # the signature betrays it, and no signed commit record backs the rewritten leaves
    assert codes(verify_log(root)) == ["E308", "E316", "E316", "E316", "W302"]
    assert not [f for f in verify_log(root) if f.code in ("E302", "E306")]


def test_reordered_log(root: Path) -> None:
    entries = entries_of(root)
    rewrite_log(root, [entries[1], entries[0], entries[2]])
    found = codes(verify_log(root))
    assert "E308" in found and "E310" in found


def test_truncated_log(root: Path, signer: Signer, tmp_path: Path) -> None:
    commit(root, CAPTURES[3], "13:00:05")
    write_checkpoint(root, signer)
    external = tmp_path / "kept-elsewhere.txt"
    external.write_text(latest_checkpoint(root) or "")
    # the attacker drops the last capture: its leaf, its manifest and the newest checkpoint
    rewrite_log(root, entries_of(root)[:3])
    (root / "manifests" / f"{CAPTURES[3]}.json").unlink()
    newest = checkpoint_paths(root)[-1]
    newest.unlink()
    (log_dir(root) / "checkpoint").write_bytes(checkpoint_paths(root)[-1].read_bytes())
    assert verify_log(root) == []  # nothing inside the archive can tell
    findings = verify_log(root, external_checkpoints=[external])
    assert codes(findings) == ["E309"]
    assert "truncated" in findings[0].message


def test_truncated_log_caught_by_stored_checkpoint(root: Path) -> None:
    rewrite_log(root, entries_of(root)[:2])
    (root / "manifests" / f"{CAPTURES[2]}.json").unlink()
    assert codes(verify_log(root)) == ["E308", "E316", "E316", "W302"]


def test_replaced_old_checkpoint_without_the_key(root: Path, tmp_path: Path) -> None:
    old = checkpoint_paths(root)[0]
    generate_key(KEY_NAME, tmp_path / "attacker.key")
    attacker = load_signer(tmp_path / "attacker.key")
    checkpoint, _ = parse_checkpoint(old.read_text())
    old.write_text(sign_checkpoint(checkpoint, attacker))
    assert codes(verify_log(root)) == ["E307", "W303"]


def test_a_checkpoint_under_a_name_of_other_digits_is_no_checkpoint(root: Path) -> None:
    """``\\d`` matches every Unicode digit: a genuine checkpoint copied under a name of
    full-width digits dated in the future was taken for the newest checkpoint, without a
    finding. Names are ASCII digits only now: such a file is a planted one (E307)."""
    genuine = checkpoint_paths(root)[-1]
    size, _, stamp = genuine.name.partition("-")
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in "2099" + stamp[4:])
    (genuine.parent / f"{size}-{wide}").write_bytes(genuine.read_bytes())
    assert [c for c in codes(verify_log(root)) if c.startswith("E")] == ["E307"]


@pytest.mark.parametrize("content", ["not a checkpoint at all\n", "forged"])
def test_an_invalid_offsite_checkpoint_is_only_an_error(
    root: Path, tmp_path: Path, content: str
) -> None:
    """A checkpoint given with --checkpoint that cannot be read or does not verify is reported
    as the error it is (E307, E309), never also as "no off-site checkpoint was given"."""
    bad = tmp_path / "offsite.txt"
    if content == "forged":
        generate_key(KEY_NAME, tmp_path / "attacker.key")
        checkpoint, _ = parse_checkpoint(checkpoint_paths(root)[-1].read_text())
        content = sign_checkpoint(checkpoint, load_signer(tmp_path / "attacker.key"))
    bad.write_text(content)
    month = timedelta(days=30)
    assert codes(verify_log(root, external_checkpoints=[bad], anchor_max_age=month)) == [
        "E307", "E309"]
    assert codes(verify_log(root, anchor_max_age=month)) == ["W307"]  # none given: warned
    good = tmp_path / "good.txt"
    good.write_bytes(checkpoint_paths(root)[-1].read_bytes())
    assert verify_log(root, external_checkpoints=[good], anchor_max_age=month) == []


def test_replaced_key_is_caught_only_with_a_trusted_key(
    root: Path, signer: Signer, tmp_path: Path
) -> None:
    generate_key(KEY_NAME, tmp_path / "attacker.key")
    attacker = load_signer(tmp_path / "attacker.key")
    (log_dir(root) / "key.pub").write_text(attacker.verifier.to_text() + "\n")
    for path in checkpoint_paths(root):
        path.unlink()
    write_checkpoint(root, attacker)
    assert verify_log(root) == []
    found = codes(verify_log(root, trusted_key=signer.verifier.to_text()))
    assert found == ["E307", "E313", "E316", "E316", "E316", "W302"]


def test_back_dated_leaf(root: Path, signer: Signer) -> None:
    write_manifest(root, CAPTURES[3])
    record_manifest(root, CAPTURES[3], committed="2026-11-21T11:30:00.000000Z")
    write_checkpoint(root, signer)
    findings = verify_log(root)
    assert codes(findings) == ["E310", "E311"]  # before leaf 2, and before its own capture


def test_capture_after_commit(root: Path, signer: Signer) -> None:
    write_manifest(root, CAPTURES[3], started="2026-11-22T00:00:00.000000Z")
    record_manifest(root, CAPTURES[3], committed="2026-11-21T13:00:05.000000Z")
    write_checkpoint(root, signer)
    assert codes(verify_log(root)) == ["E311"]


def test_unlogged_manifest_and_unchecked_tail(root: Path) -> None:
    write_manifest(root, CAPTURES[3])
    assert codes(verify_log(root)) == ["E304"]
    assert unlogged_manifests(root) == [CAPTURES[3]]
    record_manifest(root, CAPTURES[3])  # appended without a signed commit record
    assert codes(verify_log(root)) == ["E316", "W302"]


def test_deleted_log_is_an_error(root: Path) -> None:
    shutil.rmtree(log_dir(root))
    assert codes(verify_log(root)) == ["E301"]


def test_torn_tail_is_only_a_warning(root: Path) -> None:
    with (log_dir(root) / "entries.jsonl").open("ab") as f:
        f.write(b'{"half an entr')
    findings = verify_log(root)
    assert codes(findings) == ["W301"]
    assert findings[0].path == "manifests/log/entries.jsonl"


# --- proof bundles ---------------------------------------------------------------------------


def test_proof_bundle_round_trip(root: Path, signer: Signer) -> None:
    for capture_id in CAPTURES[:3]:
        bundle = json.loads(json.dumps(make_proof(root, capture_id)))
        assert check_proof(bundle) == []
        assert check_proof(bundle, trusted_key=signer.verifier.to_text()) == []
        assert bundle["warc"]["records"][0]["block_digest"] == "sha256:AAAA"
        entry = bundle["leaf"]["entry"].encode()
        assert leaf_hash(entry) in [leaf_hash(e) for e in entries_of(root)]


def _tampered(bundle: dict[str, Any], what: str) -> dict[str, Any]:
    b: dict[str, Any] = json.loads(json.dumps(bundle))
    if what == "manifest":
        raw = base64.b64decode(b["manifest"]["base64"]).replace(b"example.org", b"example.net")
        b["manifest"]["base64"] = base64.b64encode(raw).decode()
    elif what == "path":
        b["inclusion_proof"]["hashes"][0] = base64.b64encode(bytes(32)).decode()
    elif what == "index":
        b["inclusion_proof"]["leaf_index"] += 1
        b["leaf"]["index"] += 1
    elif what == "checkpoint":
        b["checkpoint"] = b["checkpoint"].replace("\n3\n", "\n4\n")
    elif what == "warc":
        b["warc"]["records"][0]["payload_digest"] = "sha256:CCCC"
    elif what == "garbage":
        b["leaf"] = None
    elif what == "boolean index":  # leaf 1 as `true`: JSON's true == 1 in Python
        b["inclusion_proof"]["leaf_index"] = b["leaf"]["index"] = True
    return b


@pytest.mark.parametrize("what", ["manifest", "path", "index", "checkpoint", "warc", "garbage",
                                  "boolean index"])
def test_tampered_proof_bundle(root: Path, what: str) -> None:
    bundle = make_proof(root, CAPTURES[1])
    assert check_proof(_tampered(bundle, what)) != []


def test_proof_against_another_trusted_key(root: Path, tmp_path: Path) -> None:
    _, other = generate_key("someone.else", tmp_path / "other.key")
    assert check_proof(make_proof(root, CAPTURES[0]), trusted_key=other.to_text()) != []


def test_proof_needs_a_covering_checkpoint(root: Path) -> None:
    commit(root, CAPTURES[3], "13:00:05")
    with pytest.raises(ProofError):
        make_proof(root, CAPTURES[3])
    with pytest.raises(ProofError):
        make_proof(root, "20261121T140000Z-eeeeeeeeee")


# --- the standalone verifier printed in docs/integrity-log.md ---------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "integrity-log.md"


def _standalone_verifier() -> str:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("<!-- standalone-verifier:start -->")[1].split(
        "<!-- standalone-verifier:end -->"
    )[0]
    return block.split("```python\n")[1].split("```")[0]


@pytest.mark.parametrize("what", [None, "manifest", "path", "index", "checkpoint"])
def test_documented_standalone_verifier(root: Path, tmp_path: Path, what: str | None) -> None:
    script = tmp_path / "verify_bundle.py"
    script.write_text(_standalone_verifier())
    bundle = make_proof(root, CAPTURES[2])
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(bundle if what is None else _tampered(bundle, what)))
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(path)], capture_output=True, text=True, check=False
    )
    if what is None:
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"OK: {CAPTURES[2]} is leaf 2 of the 3-leaf log")
    else:
        assert done.returncode != 0


def test_log_without_a_key(tmp_path: Path, signer: Signer) -> None:
    root = tmp_path / "unsigned"
    init_log(root)
    commit(root, CAPTURES[0], "10:00:05")
    assert codes(verify_log(root)) == ["W304"]
    init_log(root, signer.verifier)  # the key can come later (init adopts the history)
    assert codes(verify_log(root)) == ["E316", "W302"]
    write_checkpoint(root, signer)
    assert verify_log(root) == []
    (log_dir(root) / "key.pub").unlink()
    assert codes(verify_log(root)) == ["E313"]


def test_the_audit_index_keeps_leaves_out_of_memory() -> None:
    """What the log audit keeps of every capture (its leaf, its manifest file on disk) is in
    a temporary database: 20,000 leaves add less than 1 MiB to the Python heap (the
    dictionaries it replaced took about 0.7 KB a capture), and it answers as they did: the
    first leaf of a capture is kept and returned for a second, an adoption is noted, leaves
    come back by capture id (with whether the file is on disk) and by leaf, and the files
    no leaf logs are named."""
    ids = [f"20260101T{n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}Z-{'a' * 9}{'bcdefg'[n % 6]}"
           for n in range(20_000)]
    tracemalloc.start()
    try:
        with AuditIndex() as index:
            before = tracemalloc.get_traced_memory()[0]
            for leaf, capture_id in enumerate(reversed(ids)):
                assert index.add_leaf(Logged(capture_id, leaf, "a" * 64, "b" * 64, 100 + leaf,
                                             None)) is None
            index.add_on_disk([*ids[:10], "20270101T000000Z-zzzzzzzzzz"])
            grown = tracemalloc.get_traced_memory()[0] - before
            assert grown < 2**20, f"{grown} bytes held for 20,000 leaves"
            first = index.add_leaf(Logged(ids[0], 99_999, "c" * 64, "d" * 64, 1, 99_999))
            assert first is not None and first.leaf == 19_999 and first.adopted is None
            index.adopt(ids[0], 99_999)
            leaf0 = index.leaf(ids[0])
            assert leaf0 is not None and leaf0.adopted == 99_999 and leaf0.adopted_later
            assert leaf0.size == 100 + 19_999
            by_id = list(index.by_capture_id())
            assert [leaf.capture_id for leaf, _ in by_id] == sorted(ids)
            assert sum(on_disk for _, on_disk in by_id) == 10
            assert [leaf.leaf for leaf in index.by_leaf()] == list(range(20_000))
            assert list(index.not_logged()) == ["20270101T000000Z-zzzzzzzzzz"]
            assert index.disk_count == 11 and ids[5] in index and "x" not in index
    finally:
        tracemalloc.stop()


def test_the_audit_index_is_in_memory_where_no_temporary_file_can_be_made(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No writable temporary directory (read-only media): the index is kept in memory, as
    the dictionaries were, and the audit goes on."""
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(scratch.tempfile, "mkstemp", refuse)
    with AuditIndex() as index:
        assert index.add_leaf(Logged("20260101T000000Z-aaaaaaaaaa", 0, "a" * 64, "b" * 64, 1,
                                     None)) is None
        assert "20260101T000000Z-aaaaaaaaaa" in index
