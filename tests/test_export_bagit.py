"""``preserve export --bagit``: a BagIt 1.0 bag that bagit-python validates and whose ``data/``
preserve verifies as an archive root, full or partial (see docs/exchange.md for the rule)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bagit
import pytest

import preserve.exchange.bagit as bagit_module
from exporting import PRESERVE, Built, build_archive, serve_seeds, tool, tree_state
from preserve import Archive, log
from preserve.audit.verify import verify
from preserve.exchange import BagInfo, check_package, export_bagit
from preserve.integrity import audit_log
from preserve.log import make_proof, record_entries
from preserve.log.entries import AuditLeaf, utc_now
from servers import TestServer


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    base = tmp_path_factory.mktemp("bagit")
    with TestServer() as server:
        yield build_archive(base / "root", base / "config", server)


def run(built: Built, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRESERVE, *args], capture_output=True, text=True,
                          env=built.env(**env), timeout=300, check=False)


def bagit_validate(bag: Path) -> subprocess.CompletedProcess[str]:
    """bagit-python's own command line, as an archivist would run it."""
    return subprocess.run([tool("bagit.py"), "--validate", str(bag)], capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def full(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bag = tmp_path_factory.mktemp("full") / "case-42"
    done = run(built, "export", "--all", "--bagit", str(bag),
               "--source-organization", "Example Human Rights Project",
               "--contact-name", "A. Researcher", "--contact-email", "researcher@example.org")
    assert done.returncode == 0, done.stderr
    assert "(bagit, export)" in done.stdout
    return bag


def test_full_bag_validates_and_describes_itself(full: Path) -> None:
    done = bagit_validate(full)
    assert done.returncode == 0, done.stderr
    assert f"{full} is valid" in done.stderr
    bag = bagit.Bag(str(full))
    assert bag.version_info == (1, 0)
    assert set(bag.algorithms) == {"sha256", "sha512"}
    bag.validate()  # raises BagValidationError if anything is off
    info = bag.info
    assert info["Source-Organization"] == "Example Human Rights Project"
    assert info["Contact-Name"] == "A. Researcher"
    assert info["Contact-Email"] == "researcher@example.org"
    assert info["Bag-Software-Agent"].startswith("preserve ")
    assert len(info["Bagging-Date"]) == 10
    files = [p for p in (full / "data").rglob("*") if p.is_file()]
    assert info["Payload-Oxum"] == f"{sum(p.stat().st_size for p in files)}.{len(files)}"
    for name in ("tagmanifest-sha256.txt", "tagmanifest-sha512.txt"):
        listed = (full / name).read_text()
        assert all(t in listed for t in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt"))


def test_full_bag_data_is_an_archive_that_verifies(built: Built, full: Path) -> None:
    before = tree_state(full)
    done = subprocess.run([PRESERVE, "--root", str(full / "data"), "verify", "--deep",
                           "--no-record", "--json", "--anchor-max-age", "0",
                           "--trusted-key", str(built.root / "manifests/log/key.pub")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)["result"]
    assert report["ok"] and report["findings"] == []
    assert report["stats"]["manifests_checked"] == len(built.ids)
    # verify --no-record only reads: the payload is unchanged, not even a lock file is added
    assert tree_state(full) == before
    assert check_package(full).ok


def test_verify_of_a_bag_records_nothing_in_it(built: Built, tmp_path: Path) -> None:
    """A verify that asks to record (no --no-record) of a bag's data/ writes nothing there
    (the bag still validates): an audit appended to the copied log would have made that copy
    diverge from the archive's log, and the archive itself would then fail verify as rolled
    back (E315). The head it remembers (its log is a prefix of the archive's) keeps the
    archive's own verify clean."""
    config = tmp_path / "config"
    shutil.copytree(built.config, config)
    bag = tmp_path / "case-7"
    assert run(built, "export", "--all", "--bagit", str(bag),
               PRESERVE_CONFIG_HOME=str(config)).returncode == 0
    before = tree_state(bag)
    done = run(built, "--root", str(bag / "data"), "verify", "--anchor-max-age", "0",
               PRESERVE_CONFIG_HOME=str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is an exported package" in done.stderr
    assert tree_state(bag) == before
    assert bagit_validate(bag).returncode == 0
    again = run(built, "verify", "--no-record", "--anchor-max-age", "0",
                PRESERVE_CONFIG_HOME=str(config))
    assert again.returncode == 0, again.stdout


def test_log_is_copied_exactly(built: Built, full: Path) -> None:
    source = built.root / "manifests/log"
    copied = full / "data/manifests/log"
    names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(copied).as_posix()
                           for p in copied.rglob("*") if p.is_file())
    for name in names:
        assert (copied / name).read_bytes() == (source / name).read_bytes(), name
    for capture_id in built.ids:
        proof = json.loads((full / "data/proofs" / f"{capture_id}.json").read_text())
        made = make_proof(built.root, capture_id)
        assert {k: v for k, v in proof.items() if k != "created"} == \
            {k: v for k, v in made.items() if k != "created"}


@pytest.fixture(scope="module")
def partial(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bag = tmp_path_factory.mktemp("partial") / "one"
    done = run(built, "export", built.ids[1], "--bagit", str(bag))
    assert done.returncode == 0, done.stderr
    assert "partial export" in done.stdout
    return bag


def tmp_path_factory_copy(bag: Path) -> Path:
    copy = bag.parent / (bag.name + "-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(bag, copy)
    return copy


def test_partial_bag_rule(built: Built, partial: Path) -> None:
    """A partial bag carries the whole log; only the left-out captures' manifests are absent.

    The exporter had the archive key, so the descriptor is signed (preserve-export.sig):
    ``preserve verify`` then accepts exactly the captures the descriptor does not list (W308,
    not E305), and ``check-export`` does the same.
    """
    assert bagit_validate(partial).returncode == 0
    described = json.loads((partial / "data/preserve-export.json").read_text())
    assert described["partial"] is True and described["omitted_captures"] == 1
    assert [c["capture_id"] for c in described["captures"]] == [built.ids[1]]
    data = partial / "data"
    report = verify(data)
    audit_log(data, report)
    assert [(f.code.code, f.path) for f in report.findings] == [("W308", "manifests/log")]
    forged = tmp_path_factory_copy(partial)
    (forged / "data/preserve-export.sig").unlink()  # unsigned: the rule does not apply
    unsigned = verify(forged / "data")
    audit_log(forged / "data", unsigned)
    assert [(f.code.code, f.path) for f in unsigned.findings] == \
        [("E305", f"manifests/{built.ids[0]}.json")]
    checked = run(built, "check-export", str(partial))
    assert checked.returncode == 0, checked.stdout
    assert "W308" in checked.stdout and "1 logged capture(s) are not in this partial" in \
        checked.stdout
    assert not (data / "manifests" / f"{built.ids[0]}.json").exists()
    assert not (data / Archive(built.root).manifest(built.ids[0]).warc.path).exists()


def test_a_partial_bags_descriptor_excuses_nothing_elsewhere(built: Built, partial: Path,
                                                             tmp_path: Path) -> None:
    """The signed descriptor of a partial bag copied into (a copy of) the live archive, and a
    capture it left out deleted: still E305, and W309 says why the descriptor was ignored
    (that root is no bag's data/, and it holds a manifest the descriptor does not list); so
    is a bag's data/ whose log has grown since the export. ``checkpoint`` signs nothing."""
    live = tmp_path / "live"
    shutil.copytree(built.root, live)
    for name in ("preserve-export.json", "preserve-export.sig"):
        shutil.copyfile(partial / "data" / name, live / name)
    left_out = built.ids[0]
    (live / "manifests" / f"{left_out}.json").unlink()
    report = verify(live)
    audit_log(live, report)
    found = {(f.code.code, f.path) for f in report.findings}
    assert ("E305", f"manifests/{left_out}.json") in found
    assert ("W309", "preserve-export.json") in found
    assert "not the data/ directory of a BagIt bag" in next(
        f.message for f in report.findings if f.code.code == "W309")
    signed = run(built, "--root", str(live), "--key", str(built.key_path), "checkpoint")
    assert signed.returncode == 1, signed.stdout + signed.stderr
    assert "E305" in signed.stderr
    grown = tmp_path_factory_copy(partial)
    record_entries(grown / "data", [AuditLeaf({"outcome": "pass"}, utc_now()).to_bytes()])
    later = verify(grown / "data")
    audit_log(grown / "data", later)
    assert ("E305", f"manifests/{left_out}.json") in {(f.code.code, f.path)
                                                       for f in later.findings}
    assert any(f.code.code == "W309" and "the log has" in f.message for f in later.findings)


def test_check_export_catches_what_the_rule_must_not_excuse(partial: Path,
                                                           tmp_path: Path) -> None:
    # an exported capture's manifest deleted: E305 for a *listed* capture is an error
    copy = tmp_path / "a"
    shutil.copytree(partial, copy)
    manifest = next((copy / "data/manifests").glob("*.json"))
    manifest.unlink()
    result = check_package(copy)
    assert not result.ok
    assert any("E305" in p for p in result.problems)
    assert any("manifest-sha256.txt but missing" in p for p in result.problems)
    # a WARC byte changed (and the bag manifests recomputed, so only preserve can tell)
    copy = tmp_path / "b"
    shutil.copytree(partial, copy)
    warc = next((copy / "data/archive/warc").rglob("*.warc.gz"))
    data = bytearray(warc.read_bytes())
    data[100] ^= 1
    warc.write_bytes(bytes(data))
    bag = bagit.Bag(str(copy))
    bag.save(manifests=True)
    assert bagit_validate(copy).returncode == 0
    result = check_package(copy)
    assert any("E203" in p or "does not match its manifest" in p for p in result.problems)


def test_bag_info_from_config_environment_and_options(built: Built, tmp_path: Path) -> None:
    built.config.mkdir(exist_ok=True)
    (built.config / "bag-info.txt").write_text(
        "Source-Organization: From Config\nContact-Name: Config Person\n"
        "Organization-Address: 1 Example Street,\n  Example City\n")
    try:
        done = run(built, "export", built.ids[0], "--bagit", str(tmp_path / "b1"),
                   PRESERVE_CONTACT_NAME="Env Person")
        assert done.returncode == 0, done.stderr
        info = bagit.Bag(str(tmp_path / "b1")).info
        assert info["Source-Organization"] == "From Config"
        assert info["Contact-Name"] == "Env Person"
        assert info["Organization-Address"] == "1 Example Street, Example City"
        done = run(built, "export", built.ids[0], "--bagit", str(tmp_path / "b2"),
                   "--source-organization", "From Option", PRESERVE_CONTACT_NAME="Env Person")
        assert bagit.Bag(str(tmp_path / "b2")).info["Source-Organization"] == "From Option"
    finally:
        (built.config / "bag-info.txt").unlink()
    assert BagInfo.gather(config=tmp_path / "none.txt").fields == ()


def test_bag_facts_in_the_config_file_are_not_copied(built: Built, tmp_path: Path) -> None:
    """A Payload-Oxum, Bagging-Date or Bag-Software-Agent in the config's bag-info.txt was
    copied beside the real one: every bag failed bagit.py --validate, or stated two dates."""
    built.config.mkdir(exist_ok=True)
    (built.config / "bag-info.txt").write_text(
        "Payload-Oxum: 1.1\nbagging-date: 1999-01-01\nBag-Software-Agent: other 1.0\n"
        "Bag-Size: 1 KB\nExternal-Description: old\nOrganization-Address: 1 Example Street\n")
    try:
        done = run(built, "export", built.ids[0], "--bagit", str(tmp_path / "b"))
        assert done.returncode == 0, done.stderr
    finally:
        (built.config / "bag-info.txt").unlink()
    bag = bagit.Bag(str(tmp_path / "b"))
    bag.validate()
    labels = [line.split(":")[0].lower()
              for line in (tmp_path / "b" / "bag-info.txt").read_text().splitlines()]
    assert len(labels) == len(set(labels)) and "bag-size" not in labels, labels
    assert bag.info["Organization-Address"] == "1 Example Street"
    assert bag.info["Bag-Software-Agent"].startswith("preserve ")
    assert bag.info["External-Description"] != "old"


def test_a_capture_committed_during_the_export_is_not_half_in(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log is copied as of the export's snapshot: a capture committed meanwhile (new leaf,
    new checkpoint) is neither in the bag nor in its log, and the bag still verifies."""
    copy = tmp_path / "root"
    shutil.copytree(built.root, copy)
    real_plan = bagit_module.plan_export

    def plan_then_capture(*args: object, **kwargs: object) -> object:
        plan = real_plan(*args, **kwargs)
        with TestServer() as server:
            serve_seeds(server)
            monkeypatch.setenv("PRESERVE_CONFIG_HOME", str(built.config))
            Archive(copy).capture(server.url("/blog"))
        return plan

    monkeypatch.setattr(bagit_module, "plan_export", plan_then_capture)
    result = export_bagit(Archive(copy), [], tmp_path / "bag", all_captures=True)
    assert len(result.captures) == len(built.ids)
    assert len(Archive(copy).captures()) == len(built.ids) + 1
    assert bagit_validate(tmp_path / "bag").returncode == 0
    data = tmp_path / "bag/data"
    report = verify(data)
    audit_log(data, report)
    assert report.findings == []


def test_existing_output_is_never_replaced(built: Built, tmp_path: Path) -> None:
    (tmp_path / "bag").mkdir()
    done = run(built, "export", built.ids[0], "--bagit", str(tmp_path / "bag"))
    assert done.returncode == 3 and "already exists" in done.stderr
    assert list((tmp_path / "bag").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]


def test_hostile_bag_reads_nothing_outside_and_never_hangs(full: Path, tmp_path: Path) -> None:
    """A bag is input from elsewhere: a tag manifest or descriptor naming ``../`` paths, a
    FIFO among the payload, a descriptor of the wrong shape: problems, never a read outside
    the bag, a hang or an exception."""
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the bag")
    copy = tmp_path / "bag"
    shutil.copytree(full, copy)
    with (copy / "tagmanifest-sha256.txt").open("a") as f:
        f.write(f"{'0' * 64} ../secret.txt\n{'0' * 64} {secret}\n")
    os.mkfifo(copy / "data" / "stuck.fifo")
    result = check_package(copy)
    assert not result.ok
    assert any("secret.txt: listed in tagmanifest" in p for p in result.problems)
    assert any("stuck.fifo" in p for p in result.problems)
    descriptor = copy / "data" / "preserve-export.json"
    for shape in (b"[]", b'{"captures": [{"manifest": "../../secret.txt"}]}',
                  b'{"captures": 7}', b"[" * 100_000):
        descriptor.write_bytes(shape)
        assert not check_package(copy).ok


def _rebagged(full: Path, dest: Path, edit: Callable[[Path], None]) -> Path:
    """A copy of the bag changed by ``edit`` (given its data/), then its manifests, tag
    manifests and Payload-Oxum recomputed, as anyone handling the bag can."""
    shutil.copytree(full, dest)
    edit(dest / "data")
    bagit.Bag(str(dest)).save(manifests=True)
    assert bagit_validate(dest).returncode == 0
    return dest


def _describe(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def edit(data: Path) -> None:
        path = data / "preserve-export.json"
        described = json.loads(path.read_text())
        change(described)
        path.write_text(json.dumps(described, indent=2))
    return edit


def test_a_bags_descriptor_must_say_what_the_proven_manifests_and_log_say(
        built: Built, full: Path, tmp_path: Path) -> None:
    """A bag got none of the descriptor checks a WACZ had: forged URLs, times, WARC hashes,
    paths and log fields held, bag manifests recomputed, even with --trusted-key."""
    key = log.read_verifier(built.root).to_text()

    def lie(described: dict[str, Any]) -> None:
        capture = described["captures"][0]
        capture.update(requested_url="https://evil.example/", final_url="https://evil.example/",
                       started="2001-09-11T08:46:00Z", text="archive/text/elsewhere")
        capture["warc"]["sha256"] = "0" * 64
        described["log"].update(verifier_key="someone-else+00000000+AAAA", checkpoint_size=7,
                                size=1, checkpoint=None)

    forged = _rebagged(full, tmp_path / "forged", _describe(lie))
    problems = check_package(forged, trusted_key=key).problems
    where = f"capture {built.ids[0]}: the descriptor's"
    for problem in (f"{where} requested_url", f"{where} final_url", f"{where} started",
                    f"{where} warc SHA-256 and size", f"{where} text path",
                    "data/preserve-export.json: log.verifier_key is not the key",
                    "data/preserve-export.json: log.checkpoint_size is not the size",
                    "data/preserve-export.json: log.size is not the size of the log",
                    "data/preserve-export.json: log.checkpoint is None, but the package holds"):
        assert any(p.startswith(problem) for p in problems), (problem, problems)
    assert check_package(full, trusted_key=key).ok


def test_files_the_export_did_not_write_make_a_bag_fail(built: Built, full: Path,
                                                        tmp_path: Path) -> None:
    """An unreferenced WARC file (only a verify note, W501) and any other file added to the
    payload, bag manifests recomputed, held with --trusted-key."""
    key = log.read_verifier(built.root).to_text()
    warc = next((full / "data/archive/warc").rglob("*.warc.gz")).relative_to(full)
    planted = warc.parent / "20261205T000000Z-planted0000.warc.gz"

    def plant(data: Path) -> None:
        shutil.copyfile(full / warc, data.parent / planted)
        (data / "index.html").write_text("<script>alert('planted')</script>")
        (data / "manifests/log/notes.txt").write_text("planted")

    forged = _rebagged(full, tmp_path / "forged", plant)
    problems = check_package(forged, trusted_key=key).problems
    assert f"{planted}: a WARC file no proven capture names" in problems, problems
    assert "data/index.html: a file preserve's export does not write for these captures" in \
        problems
    assert "data/manifests/log/notes.txt: a file preserve's export does not write for these " \
        "captures" in problems
