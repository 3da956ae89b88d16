"""Every signing path signs only what it proved: repair and ``checkpoint`` sign only when
verify's check of the whole archive finds no error (a leaf an earlier checkpoint covers is
not re-proved by the log proof alone); a capture proves only its new leaves, as documented;
a ``checkpoint`` file replaced by an older genuine one is reported as such and recovered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from preserve import Archive, CaptureOptions
from preserve.capture.fetch import FetchOptions
from preserve.errors import NotProvedError
from preserve.integrity import history
from preserve.log import (
    fixity_event,
    load_signer,
    open_log,
    parse_entry,
    record_entries,
    record_event,
)
from preserve.log.entries import AuditLeaf, utc_now
from preserve.log.keys import generate_key
from preserve.log.known_heads import KnownHeads
from servers import TestServer, respond

CLI = [sys.executable, "-c", "from preserve.cli import main; main()"]
HTML = (b"<!doctype html><html><head><title>Signed</title></head><body><article>"
        b"<p>Plain words for a test of what a signature means, long enough to keep.</p>"
        b"<p>A second paragraph so that the extractor has something to work with.</p>"
        b"</article></body></html>")
OPTIONS = CaptureOptions(fetch=FetchOptions(timeout=10))


@pytest.fixture
def site(http_server: TestServer) -> TestServer:
    for path in ("/a", "/b", "/c"):
        http_server.routes[path] = respond(200, HTML + path.encode(),
                                           headers=[("Content-Type", "text/html")])
    return http_server


@pytest.fixture
def archive(tmp_path: Path, site: TestServer) -> Archive:
    """A keyed archive with two signed captures and a clean verify."""
    archive = Archive(tmp_path / "root")
    archive.init(key_name="signing.example/a")
    archive.capture(site.url("/a"), OPTIONS)
    archive.capture(site.url("/b"), OPTIONS)
    assert archive.verify().ok
    return archive


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--root", str(root), *args], check=False, capture_output=True,
                          text=True, timeout=120)


def _checkpoints(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "manifests/log/checkpoints").glob("*.txt"))


def _damage(root: Path, how: str) -> str:
    """Damage the first capture (which a signed checkpoint covers); return its manifest."""
    manifest = sorted((root / "manifests").glob("*.json"))[0]
    if how == "deleted":
        manifest.unlink()
    elif how == "symlink":
        manifest.unlink()
        os.symlink("/dev/null", manifest)
    else:  # its WARC file loses a byte
        warc = root / json.loads(manifest.read_bytes())["warc"]["path"]
        warc.chmod(0o644)
        warc.write_bytes(warc.read_bytes()[:-1])
    return f"manifests/{manifest.name}"


@pytest.mark.parametrize("how", ["deleted", "symlink", "warc cut"])
def test_repair_signs_nothing_over_an_archive_verify_finds_errors_in(
    archive: Archive, how: str
) -> None:
    root = archive.root
    rel = _damage(root, how)
    assert not archive.verify().ok  # records its failed audit: the log is now ahead
    before = _checkpoints(root)
    expected = {"deleted": {"E305"}, "symlink": {"E107", "E305"}, "warc cut": {"E206"}}[how]
    done = _run(root, "repair")
    assert done.returncode == 1, done.stderr
    assert _checkpoints(root) == before, "repair signed over a damaged archive"
    problems = [line for line in done.stderr.splitlines() if "not signed" in line]
    assert len(problems) == 1 and "verify finds" in problems[0], done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines() if line[:1] == "E"}
    assert expected <= listed, done.stdout  # the remaining errors, as verify lists them
    if how != "warc cut":
        assert rel in done.stdout
    result: dict[str, Any] = json.loads(_run(root, "repair", "--json").stdout)["result"]
    assert expected <= {f["code"] for f in result["remaining_errors"]}
    assert "Traceback" not in done.stderr


def test_checkpoint_signs_nothing_over_an_archive_verify_finds_errors_in(
    archive: Archive,
) -> None:
    root = archive.root
    _damage(root, "deleted")
    assert not archive.verify().ok
    before = _checkpoints(root)
    with pytest.raises(NotProvedError, match="E305"):
        archive.checkpoint()
    done = _run(root, "checkpoint")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr  # the error, and a hint
    assert "E305" in done.stderr and "nothing was signed" in done.stderr
    assert _checkpoints(root) == before


def test_repair_and_checkpoint_sign_an_intact_archive(archive: Archive) -> None:
    root = archive.root
    record_event(root, fixity_event(outcome="pass", counts={}, finding_codes=[]))
    done = _run(root, "repair")
    assert done.returncode == 0, done.stderr
    assert "checkpointed" in done.stdout
    assert archive.checkpoint() is not None


def test_a_capture_proves_only_its_new_leaves(archive: Archive, site: TestServer) -> None:
    """Documented: a capture's checkpoint proves the leaves it adds (fast), not the archive;
    the damage stays reported by verify, which signs nothing over it."""
    _damage(archive.root, "deleted")
    result = archive.capture(site.url("/c"), OPTIONS)
    assert result.signed
    report = archive.verify()
    assert "E305" in {f.code.code for f in report.errors}
    assert archive.last_audit.signed is None


def test_a_batch_closing_checkpoint_proves_only_its_new_leaves(archive: Archive,
                                                              site: TestServer) -> None:
    """A batch's closing checkpoint is a capture's signing (its cost must not grow with the
    archive): damage to an older capture does not keep a new batch unsigned, and stays
    reported by verify."""
    from preserve.batch import capture_many  # noqa: PLC0415

    _damage(archive.root, "deleted")
    outcomes = list(capture_many(archive, [site.url("/c"), site.url("/a")], OPTIONS,
                                 concurrency=2, per_host_delay=0, processes=False))
    assert all(getattr(o, "capture_id", None) for _u, o in outcomes), outcomes
    with pytest.raises(NotProvedError, match="E305"):
        archive.checkpoint()
    assert archive.checkpoint(whole_archive=False) is not None  # nothing new to prove: signs
    codes = {f.code.code for f in archive.verify().errors}
    assert "E305" in codes and "W302" not in codes


def test_a_checkpoint_file_rolled_back_is_reported_and_restored(
    archive: Archive, site: TestServer, tmp_path: Path
) -> None:
    """An older genuine checkpoint copied over ``manifests/log/checkpoint``: verify says so
    precisely, a signing path without a newer known head (another operator, another config)
    says so in one line instead of calling a genuine capture planted, and repair restores
    the copy from the newest stored checkpoint, after which signing works again."""
    root = archive.root
    latest = root / "manifests/log/checkpoint"
    oldest = sorted((root / "manifests/log/checkpoints").glob("*.txt"))[0]
    latest.chmod(0o644)
    latest.write_bytes(oldest.read_bytes())
    report = archive.verify(record=False)
    stale = [f for f in report.findings if f.code.code == "W303"]
    assert len(stale) == 1 and "replaced by an older checkpoint" in stale[0].message
    other = Archive(root, heads=KnownHeads(tmp_path / "other-operator"))
    result = other.capture(site.url("/c"), OPTIONS)
    assert not result.signed
    assert result.not_signed is not None
    assert "replaced by an older checkpoint" in result.not_signed
    assert "planted" not in result.not_signed
    done = _run(root, "repair")
    assert done.returncode == 0, done.stderr
    assert "restored  manifests/log/checkpoint" in done.stdout, done.stdout
    assert latest.read_bytes() == sorted(
        (root / "manifests/log/checkpoints").glob("*.txt"))[-1].read_bytes()
    assert "W303" not in {f.code.code for f in archive.verify(record=False).findings}
    assert other.checkpoint() is not None


def _plant_logged(root: Path) -> str:
    """As someone with write access but not the key: a doctored copy of a capture's manifest
    under a new id, and its leaf appended to the log; returns its capture id."""
    from preserve.log.entries import manifest_leaf_for_bytes  # noqa: PLC0415
    from preserve.log.storage import TransparencyLog  # noqa: PLC0415

    document = json.loads(sorted((root / "manifests").glob("*.json"))[0].read_bytes())
    document["capture_id"] = document["capture_id"][:-10] + "zzzzzzzzzz"
    document["extraction"]["title"] = "Planted"
    data = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    (root / "manifests" / f"{document['capture_id']}.json").write_bytes(data)
    with TransparencyLog.open(root / "manifests/log") as opened:
        opened.append(manifest_leaf_for_bytes(data).to_bytes())
    return str(document["capture_id"])


@pytest.mark.parametrize("removed", ["checkpoint copy", "every checkpoint"])
def test_init_run_again_never_adopts_a_planted_leaf(archive: Archive, removed: str) -> None:
    """``preserve init`` is safe to run again, and signs the history of a log that was never
    signed as adopted. It took a missing ``checkpoint`` copy for "never signed": someone who
    planted and logged a capture (E316) and deleted that file (or every checkpoint: this
    operator's known head still knows the log was signed) had it signed as adopted at the
    next ``init``, and verify then called the archive intact."""
    root = archive.root
    planted = _plant_logged(root)
    (root / "manifests/log/checkpoint").unlink()
    if removed == "every checkpoint":
        for path in (root / "manifests/log/checkpoints").iterdir():
            path.unlink()
    before = _checkpoints(root)
    done = _run(root, "init")
    assert done.returncode == 1, done.stdout + done.stderr
    assert planted in done.stderr and "Traceback" not in done.stderr
    assert _checkpoints(root) == before, "init signed over a planted leaf"
    report = archive.verify(record=False)
    assert "E316" in {f.code.code for f in report.errors}, report.findings


def test_init_signs_the_history_of_a_log_never_signed(tmp_path: Path, site: TestServer) -> None:
    """What ``init`` adopts: the leaves of an archive made without a key, once it gets one."""
    root = tmp_path / "root"
    unkeyed = Archive(root, heads=None)
    unkeyed.capture(site.url("/a"), OPTIONS)
    archive = Archive(root)
    archive.init(key_name="signing.example/late")
    assert _checkpoints(root), "the never-signed history was not signed at init"
    assert archive.verify().ok


def test_a_leaf_whose_type_was_changed_is_proved_by_no_record_of_another_kind(
        archive: Archive, site: TestServer) -> None:
    """While a capture's leaf is not yet covered by a checkpoint (a batch signs at its end; a
    kill before the signing), someone with write access rewrote its type, ``manifest`` to
    ``import`` (a capture passed off as an import; the other way round, an import as a
    capture preserve observed), and recomputed the tree. Signing requires a record of the
    leaf's own kind, but verify took any signed record naming the bytes: it called the
    archive intact, moved the operator's known head over the rewritten leaf, and the next
    checkpoint was signed from that head. Verify now requires the kind signing does: E316."""
    from preserve.log.storage import TransparencyLog  # noqa: PLC0415

    root = archive.root
    archive.capture(site.url("/c"), OPTIONS, checkpoint=False)  # as a batch: signed at its end
    log_dir = root / "manifests/log"
    with TransparencyLog.open(log_dir, readonly=True) as opened:
        entries = [data for _i, data in opened.iter_entries()]
    last = json.loads(entries[-1])
    assert last["type"] == "manifest"
    last["type"] = "import"
    entries[-1] = json.dumps(last, sort_keys=True, separators=(",", ":")).encode()
    for name in ("entries.jsonl", "entries.idx", "head.json"):
        (log_dir / name).unlink()
    for path in (log_dir / "tree").iterdir():
        path.unlink()
    with TransparencyLog.open(log_dir, create=True) as opened:
        opened.append_many(entries)
    before = _checkpoints(root)
    report = archive.verify(record=False)
    assert "E316" in {f.code.code for f in report.errors}, report.findings
    with pytest.raises(NotProvedError):
        archive.checkpoint(whole_archive=False)
    assert _checkpoints(root) == before


def test_a_replayed_leaf_is_never_signed_over(archive: Archive, site: TestServer) -> None:
    """While a capture's commit record is outstanding (a batch signs at its end), someone
    with write access appended its leaf again. Verify reported E312, but the signing paths
    that prove only the new leaves found both proved by that one record and signed over the
    replay. Now a second leaf of a capture among the new leaves is refused, as verify's E312
    would have it; a later adoption of it is not."""
    root = archive.root
    captured = archive.capture(site.url("/c"), OPTIONS, checkpoint=False)
    with open_log(root) as opened:
        opened.append_many([opened.leaf(opened.size - 1)])
    before = _checkpoints(root)
    assert "E312" in {f.code.code for f in archive.verify(record=False).errors}
    with pytest.raises(NotProvedError, match=f"logs capture {captured.capture_id} again"):
        archive.checkpoint(whole_archive=False)
    assert _checkpoints(root) == before


def _audit_rows(root: Path) -> list[dict[str, Any]]:
    return [row for row in history(root) if row["type"] == "audit"]


def test_an_audit_leaf_says_whether_the_key_holder_made_it(archive: Archive,
                                                          tmp_path: Path) -> None:
    """Anyone who can write the log can append an audit leaf (an auditor without the key
    records audits too), and the next signed checkpoint covers it: a forged "pass" looked
    like the key holder's. Now the key holder's verify signs its audit leaf; one without a
    signature is shown as a claim, and one whose signature is not the archive key's is E318
    and is never signed over."""
    root = archive.root
    rows = _audit_rows(root)
    assert rows and {row["signature"] for row in rows} == {"signed"}
    assert "(signed by the archive key)" in rows[-1]["summary"]

    record_event(root, fixity_event(outcome="pass", counts={"manifests": 2, "errors": 0}))
    claim = _audit_rows(root)[-1]
    assert claim["signature"] == "unsigned" and "a claim" in claim["summary"]
    assert archive.verify(record=False).ok  # an auditor without the key may record audits

    with open_log(root, readonly=True) as opened:
        genuine = parse_entry(opened.leaf(rows[-1]["index"]))
    assert isinstance(genuine, AuditLeaf) and genuine.signature is not None
    forged_event = dict(genuine.event, eventDateTime="2030-01-01T00:00:00.000000Z")
    path, _ = generate_key("other.example/k", tmp_path / "other.key")
    other = load_signer(path)
    for forged in (AuditLeaf(forged_event, utc_now(), genuine.signature),  # moved signature
                   AuditLeaf(forged_event, utc_now()).signed_by(other)):  # another key
        record_entries(root, [forged.to_bytes()])
        assert _audit_rows(root)[-1]["signature"] == "invalid"
    report = archive.verify(record=False)
    assert [f.code.code for f in report.errors] == ["E318", "E318"]
    with pytest.raises(NotProvedError, match="forged audit"):
        archive.checkpoint(whole_archive=False)
    shown = _run(root, "log")
    assert shown.returncode == 0 and shown.stdout.count("FORGED") == 2, shown.stdout


def test_an_audit_by_another_key_than_the_archives_is_recorded_unsigned(
        archive: Archive, tmp_path: Path) -> None:
    """A verify run with a key that is not the archive's records its audit as a claim: a
    leaf signed by that key would be reported as forged for good."""
    other, _ = generate_key("other.example/k", tmp_path / "other.key")
    Archive(archive.root, key=other).verify()
    assert _audit_rows(archive.root)[-1]["signature"] == "unsigned"
    assert archive.verify(record=False).ok


def test_a_key_of_any_name_is_written_whole_and_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key name outside ASCII (``ünïcødé/名前``, or a default name made from such an s3://
    prefix) was written as UTF-8 and read back as ASCII: a key that could never be loaded,
    and an archive that could never be signed. And a key file whose write failed (a full
    disk) was left empty, blocking the name for good."""
    from preserve.errors import SigningKeyError  # noqa: PLC0415
    from preserve.log.keys import load_signer  # noqa: PLC0415

    path, verifier = generate_key("ünïcødé/名前", tmp_path / "u.key")
    assert load_signer(path).verifier == verifier

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SigningKeyError, match="No space left"):
        generate_key("full.example/k", tmp_path / "full.key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.key"]
    monkeypatch.undo()
    generate_key("full.example/k", tmp_path / "full.key")  # the name is still free
