"""Hostile archive content: verify and repair must report it and never leave the root.

A real capture is made first; then manifests and the tree are doctored the way an attacker
with write access to the archive (or a damaged disk) might: paths with ``..``, absolute paths,
symlinks out of the root, files replaced by FIFOs, huge and deeply nested JSON, invalid digests,
duplicate capture ids. Tripwires outside the root detect any escape without strace: a FIFO
(opening it for reading blocks, so a run that opens it hits the subprocess timeout), and a
directory whose listing, sizes and mtimes must not change.

``parse_manifest`` is fuzzed with hypothesis (only ``ManifestError`` may come out); an input
that raises anything else is saved to ``tests/fuzz_regressions/`` and every file there is
replayed on each run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preserve import Archive, CaptureOptions
from preserve.audit.repair import repair
from preserve.audit.verify import _hole_bytes
from preserve.capture.fetch import FetchOptions
from preserve.errors import ManifestError
from preserve.hashing import blake3_hex
from preserve.storage.manifest import parse_manifest
from servers import TestServer, respond

CLI = [sys.executable, "-c", "from preserve.cli import main; main()"]
REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
HTML = (b"<!doctype html><html><head><title>Hostile</title></head><body><article>"
        b"<p>Plain words for a plain test of a hostile archive, long enough to keep.</p>"
        b"<p>A second paragraph so that the extractor has something to work with.</p>"
        b"</article></body></html>")
TIMEOUT = 30


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def captured(tmp_path: Path, http_server: TestServer) -> tuple[Path, str, dict[str, Any]]:
    """A root with one real capture: (root, capture id, manifest as a dict)."""
    http_server.routes["/"] = respond(200, HTML, headers=[("Content-Type", "text/html")])
    root = tmp_path / "root"
    result = Archive(root).capture(http_server.url("/"),
                                   CaptureOptions(fetch=FetchOptions(timeout=10)))
    document = json.loads((root / result.manifest_path).read_bytes())
    return root, result.capture_id, document


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A directory beside the root with a sentinel file and a FIFO (the tripwires)."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "sentinel").write_bytes(b"must not be read or changed\n")
    os.mkfifo(path / "fifo")
    (path / "fan").mkdir()
    yield path


def _state(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``directory``: (mode, size, mtime_ns), symlinks not followed."""
    found = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(directory))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a timeout: opening the FIFO would block it until then."""
    try:
        return subprocess.run([*CLI, "--root", str(root), *args], check=False, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"preserve {' '.join(args)} blocked: it opened a FIFO") from exc


def _repair_in_subprocess(root: Path) -> dict[str, Any]:
    code = ("import json, sys; from pathlib import Path; from preserve.audit.repair import repair; "
            "print(json.dumps(repair(Path(sys.argv[1])).to_json()))")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(root)], check=True,
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("repair blocked: it opened a FIFO") from exc
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _plant(root: Path, document: dict[str, Any], suffix: str, **changes: Any) -> str:
    """Write a doctored copy of ``document`` under a fresh capture id; returns the id."""
    capture_id = document["capture_id"][:-10] + suffix
    doctored = {**document, "capture_id": capture_id, **changes}
    (root / "manifests" / f"{capture_id}.json").write_text(
        json.dumps(doctored, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return capture_id


def _codes(report_json: dict[str, Any]) -> list[str]:
    return [f["code"] for f in report_json["findings"]]


# --- escapes -----------------------------------------------------------------------------------


def test_paths_out_of_the_root_are_reported_and_never_followed(
    captured: tuple[Path, str, dict[str, Any]], outside: Path
) -> None:
    root, capture_id, document = captured
    warc, text = document["warc"], document["text"]
    rel_fifo = os.path.relpath(outside / "fifo", root)
    # manifests naming files outside: '..', absolute, and through symlinks inside the root
    _plant(root, document, "aaaaaaaaaa", warc={**warc, "path": rel_fifo})
    _plant(root, document, "bbbbbbbbbb", warc={**warc, "path": str(outside / "fifo")})
    os.symlink(outside / "fifo", root / "archive" / "warc" / "escape.warc.gz")
    _plant(root, document, "cccccccccc", warc={**warc, "path": "archive/warc/escape.warc.gz"})
    fake = "ab" * 32
    os.symlink(outside / "fan", root / "archive" / "text" / "ab")
    os.mkfifo(outside / "fan" / "ab")  # the fan-out level 2 name: archive/text/ab/ab -> FIFO
    _plant(root, document, "dddddddddd",
           text={**text, "blake3": fake, "path": f"archive/text/ab/ab/{fake}"})
    _plant(root, document, "eeeeeeeeee", text={**text, "path": "archive/text/../../outside/x"})
    # a manifest that is itself a symlink to the FIFO, and FIFOs inside the root
    os.symlink(outside / "fifo", root / "manifests" / f"{capture_id[:-10]}ffffffffff.json")
    os.mkfifo(root / "manifests" / f"{capture_id[:-10]}gggggggggg.json")
    os.mkfifo(root / "archive" / "warc" / "inside-fifo.warc.gz")
    os.symlink(outside / "sentinel", root / "archive" / "tmp" / "debris-link")
    before = _state(outside)

    for args in (["verify", "--json", "--no-record"], ["verify", "--deep", "--json"]):
        result = _run(root, *args)
        assert result.returncode == 1, result.stderr
        codes = _codes(json.loads(result.stdout)["result"])
        assert codes.count("E107") >= 5, codes
        assert "Traceback" not in result.stderr
    fixed = _repair_in_subprocess(root)
    assert _state(outside) == before, "something outside the root was changed"
    assert (outside / "sentinel").read_bytes() == b"must not be read or changed\n"
    # repair removed the symlink in archive/tmp (not its target) and moved nothing out
    assert not (root / "archive" / "tmp" / "debris-link").is_symlink()
    assert all(not a["destination"] or a["destination"].startswith("archive/quarantine/")
               for a in fixed["actions"])
    # invalid manifests name unknown files: repair quarantined nothing
    assert not [a for a in fixed["actions"] if a["kind"] == "quarantined"], fixed
    # the genuine capture is untouched
    assert (root / document["warc"]["path"]).is_file()
    assert (root / document["text"]["path"]).is_file()


def test_symlinked_log_directory_is_not_followed(
    captured: tuple[Path, str, dict[str, Any]], outside: Path
) -> None:
    root, _, _ = captured
    log_dir = root / "manifests" / "log"
    os.rename(log_dir, outside / "log")
    os.symlink(outside / "log", log_dir)
    before = _state(outside)
    result = _run(root, "verify", "--json")  # recording would append to the log out there
    assert _state(outside) == before, "verify wrote outside the root"
    assert "E107" in _codes(json.loads(result.stdout)["result"]) or "E301" in _codes(
        json.loads(result.stdout)["result"])


def test_what_is_planted_in_the_log_directory_is_reported(
    captured: tuple[Path, str, dict[str, Any]], outside: Path
) -> None:
    """A file, a directory, a FIFO or a symlink planted beside the log's own files was not
    reported at all; each is W505 now (never read, never followed), and a clean archive's
    log directory has none."""
    root, _, _ = captured
    assert "W505" not in _codes(json.loads(_run(root, "verify", "--json", "--no-record")
                                           .stdout)["result"])
    log_dir = root / "manifests" / "log"
    (log_dir / "notes.txt").write_text("planted")
    (log_dir / "tiles").mkdir()
    os.mkfifo(log_dir / "pipe")
    os.symlink(outside / "sentinel", log_dir / "elsewhere")
    (log_dir / "checkpoints.bak").write_text("x")
    before = _state(outside)
    result = json.loads(_run(root, "verify", "--json", "--no-record").stdout)["result"]
    assert _state(outside) == before
    flagged = {f["path"] for f in result["findings"] if f["code"] == "W505"}
    assert flagged == {f"manifests/log/{name}" for name in
                       ("notes.txt", "tiles", "pipe", "elsewhere", "checkpoints.bak")}, flagged


def test_logged_manifest_replaced_by_a_symlink_is_not_followed(
    captured: tuple[Path, str, dict[str, Any]], outside: Path
) -> None:
    root, capture_id, _ = captured
    manifest = root / "manifests" / f"{capture_id}.json"
    manifest.unlink()
    os.symlink(outside / "fifo", manifest)
    result = _run(root, "verify", "--json", "--no-record")
    assert result.returncode == 1
    assert "E107" in _codes(json.loads(result.stdout)["result"])


@pytest.mark.parametrize("directory", ["archive/warc/{month}", "archive/warc/{year}",
                                       "manifests/log/checkpoints", "manifests/log/journal"])
def test_capture_never_writes_through_a_symlinked_directory(
    tmp_path: Path, http_server: TestServer, outside: Path, directory: str
) -> None:
    """A directory below the fixed layout (the WARC month, the checkpoints, the commit
    journal) swapped for a symlink out of the root: the next capture writes nothing there —
    no WARC file, no commit record, no checkpoint lands outside the archive."""
    http_server.routes["/"] = respond(200, HTML, headers=[("Content-Type", "text/html")])
    root = tmp_path / "root"
    archive = Archive(root)
    archive.init(key_name="hostile.example/a")
    first = archive.capture(http_server.url("/"), CaptureOptions(fetch=FetchOptions(timeout=10)))
    warc = Path(json.loads((root / first.manifest_path).read_bytes())["warc"]["path"])
    rel = directory.format(month="/".join(warc.parts[2:4]), year=warc.parts[2])
    (root / rel).mkdir(parents=True, exist_ok=True)
    target = outside / "elsewhere"
    os.rename(root / rel, target)
    os.symlink(target, root / rel)
    before = _state(outside)
    _run(root, "capture", "--http", http_server.url("/?again"))
    assert _state(outside) == before, f"capture wrote through {rel} outside the root"


@pytest.mark.parametrize("part", ["warc", "text"])
def test_a_sparse_file_of_terabytes_is_never_read(
    captured: tuple[Path, str, dict[str, Any]], part: str
) -> None:
    """A capture's WARC file or text object replaced by a sparse file far larger than its
    manifest says: verify and verify --deep report it (E202, E402) from its size alone,
    without hashing or re-reading it (1 TiB would take hours), well within the timeout."""
    root, _, document = captured
    path = root / document[part]["path"]
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.truncate(2**40)
    for deep in ([], ["--deep"]):
        result = _run(root, "verify", "--json", "--no-record", *deep)
        assert result.returncode == 1, result.stderr
        assert {"warc": "E202", "text": "E402"}[part] in _codes(
            json.loads(result.stdout)["result"])


def test_a_manifest_edited_to_name_a_sparse_file_of_terabytes_is_not_followed(
    captured: tuple[Path, str, dict[str, Any]]
) -> None:
    """An attacker edits a manifest to claim a WARC size of 1 TiB and makes the WARC file a
    sparse file of that size: the sizes agree, so only hashing would tell, and hashing 1 TiB
    of zeros takes hours. The file is reported from its holes (E205) and not read; the log
    audit reports the manifest changed (E306)."""
    root, capture_id, document = captured
    manifest = root / "manifests" / f"{capture_id}.json"
    document = dict(document, warc=dict(document["warc"], size=2**40))
    manifest.chmod(0o644)
    manifest.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
                        + "\n")
    warc = root / document["warc"]["path"]
    warc.chmod(0o644)
    with warc.open("r+b") as f:
        f.truncate(2**40)
    started = time.monotonic()
    for deep in ([], ["--deep"]):
        result = _run(root, "verify", "--json", "--no-record", *deep)
        assert result.returncode == 1, result.stderr
        codes = _codes(json.loads(result.stdout)["result"])
        assert {"E205", "E306"} <= set(codes), codes
    assert time.monotonic() - started < TIMEOUT / 2


def test_holes_are_counted_up_to_the_limit(tmp_path: Path) -> None:
    """The hole count behind that: none for a file written whole, the holes of a sparse one
    (where the file system keeps them), and no further than a little past the limit."""
    whole, sparse = tmp_path / "whole", tmp_path / "sparse"
    whole.write_bytes(b"x" * 100_000)
    with sparse.open("wb") as f:
        f.write(b"x" * 4096)
        f.seek(64 * 2**20)
        f.write(b"y" * 4096)
        f.truncate(256 * 2**20)
    fd = os.open(whole, os.O_RDONLY)
    try:
        assert _hole_bytes(fd, os.fstat(fd), 2**40) == 0
    finally:
        os.close(fd)
    fd = os.open(sparse, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if info.st_blocks * 512 >= info.st_size:
            pytest.skip("this file system does not keep holes")
        assert abs(_hole_bytes(fd, info, 2**40) - (256 * 2**20 - 8192)) < 2**20
        assert 2**20 < _hole_bytes(fd, info, 2**20) < 65 * 2**20  # the first hole, no more
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
    finally:
        os.close(fd)


@pytest.mark.parametrize("where", ["orphan text", "stray file", "logged manifest"])
def test_a_sparse_orphan_is_reported_from_its_size(
    captured: tuple[Path, str, dict[str, Any]], where: str
) -> None:
    """A file no manifest names (a text object of 64 GiB, a stray file under archive/), or a
    logged manifest grown to 64 GiB, is reported from its size without being read: reading
    it would take minutes (a sparse 1 TiB file, hours). Every other check still runs."""
    root, capture_id, _ = captured
    name = "ab" * 32
    path = {"orphan text": root / "archive/text/ab/ab" / name,
            "stray file": root / "archive/warc/stray.bin",
            "logged manifest": root / "manifests" / f"{capture_id}.json"}[where]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.truncate(64 * 2**30)
    started = time.monotonic()
    result = _run(root, "verify", "--json", "--no-record")
    assert time.monotonic() - started < TIMEOUT / 2
    codes = _codes(json.loads(result.stdout)["result"])
    expected = {"orphan text": {"W502", "E402"}, "stray file": {"W501"},
                "logged manifest": {"E306"}}[where]
    assert expected <= set(codes), codes
    assert result.returncode == (0 if where == "stray file" else 1), result.stderr


# --- oversized, deep, invalid, duplicated ---------------------------------------------------------


def test_huge_deep_and_invalid_manifests_are_reported(
    captured: tuple[Path, str, dict[str, Any]]
) -> None:
    root, capture_id, document = captured
    manifests = root / "manifests"
    stem = capture_id[:-10]
    with (manifests / f"{stem}hhhhhhhhhh.json").open("wb") as f:  # 17 MiB of JSON
        f.write(b'{"pad": "' + b"x" * (17 * 2**20) + b'"}\n')
    (manifests / f"{stem}iiiiiiiiii.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    (manifests / f"{stem}jjjjjjjjjj.json").write_bytes(b'{"a":' * 100 + b"1" + b"}" * 100)
    (manifests / f"{stem}kkkkkkkkkk.json").write_bytes(
        b'{"k": [' + b'"s",' * 600_000 + b'"s"]}')  # many strings, shallow
    _plant(root, document, "llllllllll", warc={**document["warc"], "blake3": "not-hex"})
    _plant(root, document, "mmmmmmmmmm",
           text={**document["text"], "blake3": "../../../etc/passwd"})
    # a second manifest claiming the genuine capture's id, under another name
    (manifests / f"{stem}nnnnnnnnnn.json").write_bytes(
        (manifests / f"{capture_id}.json").read_bytes())
    result = _run(root, "verify", "--json", "--no-record")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)["result"]
    by_path = {f["path"]: f["code"] for f in report["findings"] if f["code"].startswith("E1")}
    assert by_path[f"manifests/{stem}hhhhhhhhhh.json"] in ("E101", "E102")
    assert by_path[f"manifests/{stem}iiiiiiiiii.json"] == "E102"
    assert by_path[f"manifests/{stem}jjjjjjjjjj.json"] == "E102"
    assert by_path[f"manifests/{stem}kkkkkkkkkk.json"] in ("E103", "E104")
    assert by_path[f"manifests/{stem}llllllllll.json"] == "E103"
    assert by_path[f"manifests/{stem}mmmmmmmmmm.json"] in ("E103", "E107")
    codes = _codes(report)
    assert "E105" in codes and "E106" in codes
    # the genuine capture itself is still reported intact (no finding names its files)
    assert not [f for f in report["findings"] if f["path"] == document["warc"]["path"]]
    fixed = repair(root)
    assert fixed.ok
    assert not [a for a in fixed.actions if a.kind == "quarantined"]


# --- fuzzing parse_manifest -----------------------------------------------------------------------


def _check_parse(data: bytes) -> None:
    """parse_manifest may return or raise ManifestError; anything else is saved as a seed."""
    try:
        parse_manifest(data)
    except ManifestError:
        pass
    except BaseException:
        REGRESSIONS.mkdir(exist_ok=True)
        (REGRESSIONS / f"crash-{blake3_hex(data)[:16]}.bin").write_bytes(data)
        raise


def _valid_manifest_bytes() -> bytes:
    return (REGRESSIONS / "valid-manifest.json").read_bytes()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_parse(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_manifest(data: st.DataObject) -> None:
    raw = bytearray(_valid_manifest_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        where = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            raw[where] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "delete":
            del raw[where]
        else:
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=8))
    _check_parse(bytes(raw))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_fields_replaced_with_any_json(data: st.DataObject) -> None:
    document = json.loads(_valid_manifest_bytes())
    target = document
    path = [data.draw(st.sampled_from(sorted(document)))]
    while isinstance(target[path[-1]], dict) and target[path[-1]] and data.draw(st.booleans()):
        target = target[path[-1]]
        path.append(data.draw(st.sampled_from(sorted(target))))
    target[path[-1]] = data.draw(json_values)
    _check_parse(json.dumps(document, sort_keys=True, indent=2).encode() + b"\n")


def test_regression_seeds_only_raise_manifest_error() -> None:
    seeds = sorted(REGRESSIONS.iterdir())
    assert any(p.name == "valid-manifest.json" for p in seeds)
    parse_manifest(_valid_manifest_bytes())  # the base of the mutations is itself valid
    for seed in seeds:
        if seed.suffix in (".json", ".bin"):
            _check_parse(seed.read_bytes())


@pytest.mark.parametrize("directory", ["archive/tmp", "archive/warc", "archive/text",
                                       "archive/quarantine", "manifests/log"])
def test_repair_refuses_a_layout_directory_that_is_a_symlink(
    captured: tuple[Path, str, dict[str, Any]], outside: Path, directory: str
) -> None:
    root, _, _ = captured
    target = outside / "elsewhere"
    target.mkdir()
    (target / "20200101T000000Z-aaaaaaaaaa.warc.gz").write_bytes(b"not ours")
    (target / "text-debris").write_bytes(b"not ours")
    link = root / directory
    if link.exists():
        os.rename(link, outside / "moved")
    os.symlink(target, link)
    (root / "archive" / "tmp").mkdir(exist_ok=True)
    before = _state(outside)
    fixed = _repair_in_subprocess(root)
    assert not fixed["ok"] and not fixed["actions"], fixed
    assert directory in fixed["problems"][0]
    assert _state(outside) == before


# --- directories nested thousands deep ---------------------------------------------------------


def _nest(top: Path, levels: int) -> None:
    """``top/d/d/…/d``, ``levels`` deep (made through directory descriptors: the path of the
    deepest one is longer than the system allows a path to be)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def _unnest(top: Path) -> None:
    """Remove what :func:`_nest` made, deepest first, without recursion."""
    chain = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        while True:
            try:
                chain.append(os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=chain[-1]))
            except FileNotFoundError:
                break
        for _ in range(len(chain) - 1):
            os.close(chain.pop())
            os.rmdir("d", dir_fd=chain[-1])
    finally:
        for fd in chain:
            os.close(fd)


def test_a_directory_nested_thousands_deep_is_reported_not_a_crash(
        captured: tuple[Path, str, dict[str, Any]]) -> None:
    """``os.walk``, ``Path.rglob`` and ``shutil.rmtree`` recurse in Python: a directory
    nested 1,500 deep under ``manifests/log`` made verify and checkpoint stop with an internal
    error (RecursionError, exit 5), and one under ``archive/tmp`` made repair do so. Now
    verify reports the stray directory in the log (E317), and repair leaves the deep debris
    and says so (exit 1)."""
    root, _capture_id, _document = captured
    journal = root / "manifests" / "log" / "journal"
    debris = root / "archive" / "tmp"
    debris.mkdir(exist_ok=True)
    _nest(journal, 1500)
    _nest(debris, 1500)
    try:
        done = _run(root, "verify", "--no-record")
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "E317" in done.stdout and "manifests/log/journal/d" in done.stdout
        fixed = repair(root)
        assert any("nested more than" in p for p in fixed.problems), fixed.problems
        assert (debris / "d").is_dir()
    finally:
        _unnest(journal)
        _unnest(debris)


@pytest.mark.parametrize("moved", ["warc month", "text fan-out"])
def test_files_moved_into_tmp_and_linked_back_are_an_error_and_repair_keeps_them(
        captured: tuple[Path, str, dict[str, Any]], moved: str) -> None:
    """A WARC month's directory (or a text object's fan-out directory) moved into
    ``archive/tmp`` and a symlink left in its place: verify followed the link, found every
    byte right and said intact; repair then cleared ``archive/tmp`` as debris, deleting
    every WARC file of that month. The detour is an error now (E107, the file still
    checked), and repair leaves alone whatever such a symlink leads to."""
    root, _capture_id, document = captured
    ref = document["warc"]["path"] if moved == "warc month" else document["text"]["path"]
    directory = root / Path(ref).parent
    hidden = root / "archive" / "tmp" / "moved"
    hidden.parent.mkdir(exist_ok=True)
    directory.rename(hidden)
    directory.symlink_to(os.path.relpath(hidden, directory.parent), target_is_directory=True)
    before = _state(hidden)
    report = Archive(root).verify(record=False)
    detours = [f for f in report.findings if f.code.code == "E107"]
    assert detours and detours[0].path == ref and "archive/tmp/moved" in detours[0].message
    assert not report.ok
    fixed = repair(root)
    kept = {k.path: k.reason for k in fixed.kept}
    assert "symlink" in kept["archive/tmp/moved"] and not fixed.actions, fixed
    assert _state(hidden) == before


def test_a_log_shared_by_hard_links_is_never_written(
        captured: tuple[Path, str, dict[str, Any]], tmp_path: Path,
        http_server: TestServer) -> None:
    """A snapshot made with hard links (``cp -al``, rsync --link-dest) shares the log's files
    with the live archive: recording an audit of the snapshot truncated the shared files to
    the snapshot's size and appended to them, destroying the live log's newer leaves. No
    log file with another name is written now: verify warns (W310) and records nothing, and
    a capture is refused before anything is committed."""
    root, _capture_id, _document = captured
    snapshot = tmp_path / "snapshot"
    subprocess.run(["cp", "-al", str(root), str(snapshot)], check=True)
    entries = root / "manifests" / "log" / "entries.jsonl"
    before = entries.read_bytes()
    report = Archive(snapshot).verify()
    assert "W310" in {f.code.code for f in report.findings} and report.ok
    assert entries.read_bytes() == before
    manifests = sorted((root / "manifests").glob("*.json"))
    done = _run(root, "capture", "--http", http_server.url("/"))
    assert done.returncode == 4 and "hard links" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert sorted((root / "manifests").glob("*.json")) == manifests
    assert entries.read_bytes() == before


def test_repair_never_clears_away_a_logged_capture_whose_manifest_is_lost(
        captured: tuple[Path, str, dict[str, Any]]) -> None:
    """A logged capture's manifest deleted (an accident, or an attacker): repair took its WARC
    file and text object for debris of an interrupted commit, quarantined them and said
    "0 problems". They are left in place now, the loss is a problem (exit 1), and once the
    manifest is restored from a backup the archive is intact again."""
    root, capture_id, document = captured
    manifest = root / "manifests" / f"{capture_id}.json"
    backup = manifest.read_bytes()
    manifest.unlink()
    fixed = repair(root)
    assert not [a for a in fixed.actions if a.kind == "quarantined"], fixed
    assert any("logged capture(s) have no manifest" in p for p in fixed.problems)
    assert (root / document["warc"]["path"]).is_file()
    assert (root / document["text"]["path"]).is_file()
    manifest.write_bytes(backup)
    assert Archive(root).verify(record=False).ok


def test_an_entry_dated_ahead_blocks_appends_and_signatures_instead_of_breaking_the_log(
        tmp_path: Path, http_server: TestServer) -> None:
    """An unsigned audit leaf (no key needed) dated nine minutes ahead: within verify's
    tolerance for clocks, so verify said intact; but every entry preserve appended next was
    dated before it, and every later verify failed on those honest entries (E310, for
    ever), while ``checkpoint`` signed over the planted one. Now verify warns (W311), a
    capture is refused before it commits, and nothing is signed over it."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from preserve import log  # noqa: PLC0415
    from preserve.log.entries import format_time  # noqa: PLC0415

    http_server.routes["/"] = respond(200, HTML, headers=[("Content-Type", "text/html")])
    root = tmp_path / "keyed"
    Archive(root).init(key_name="test.example/ahead")
    Archive(root).capture(http_server.url("/"), CaptureOptions(fetch=FetchOptions(timeout=10)))
    ahead = format_time(datetime.now(UTC) + timedelta(minutes=9))
    log.record_event(root, {"eventType": "fixity check", "outcome": "pass"}, committed=ahead)
    report = Archive(root).verify(record=False)
    assert "W311" in {f.code.code for f in report.findings} and report.ok
    manifests = sorted((root / "manifests").glob("*.json"))
    done = _run(root, "capture", "--http", http_server.url("/"))
    assert done.returncode == 4 and "dated" in done.stderr and "Traceback" not in done.stderr
    assert sorted((root / "manifests").glob("*.json")) == manifests
    done = _run(root, "checkpoint")
    assert done.returncode != 0 and "after this clock" in done.stderr, (
        done.stderr, (root / "manifests/log/entries.jsonl").read_text())
    report = Archive(root).verify(record=False)
    assert "E310" not in {f.code.code for f in report.findings}


def test_a_key_replaced_under_its_own_name_is_caught_at_any_path(
        tmp_path: Path, http_server: TestServer) -> None:
    """The known head catches a replaced key.pub only at the paths it saw: the archive moved
    (a new disk, another mount point), its log rewritten and signed by a new key given the
    old key's name, verified "intact". The key of that name this operator holds is another
    one: E313, wherever the archive is."""
    from preserve.log.keys import generate_key  # noqa: PLC0415

    http_server.routes["/"] = respond(200, HTML, headers=[("Content-Type", "text/html")])
    root = tmp_path / "keyed"
    name = "test.example/moved"
    Archive(root).init(key_name=name)
    Archive(root).capture(http_server.url("/"), CaptureOptions(fetch=FetchOptions(timeout=10)))
    moved = tmp_path / "other-disk" / "keyed"
    moved.parent.mkdir()
    subprocess.run(["cp", "-a", str(root), str(moved)], check=True)
    _path, impostor = generate_key(name, tmp_path / "impostor.key")
    (moved / "manifests" / "log" / "key.pub").write_text(impostor.to_text() + "\n")
    found = [f for f in Archive(moved).verify(record=False).findings if f.code.code == "E313"]
    assert found and "you hold" in found[0].message
