"""Every subcommand against a corpus of malformed archives, keys, checkpoints, bundles and
options: each run must end with a documented exit status and, when it fails, one error line on
stderr — never a traceback, never an "internal error", never a hang, never a huge read.

The runs are in-process (click's CliRunner) for speed, each under an alarm; a sparse 16 GiB
file stands in for a huge one, so an unbounded read would be noticed as a hang or a MemoryError.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
from click.testing import CliRunner

from preserve import Archive
from preserve.cli import main
from servers import TestServer, respond

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
HUGE = 16 * 2**30
DOCUMENTED = {0, 1, 2, 3, 4}


def _sparse(path: Path, size: int = HUGE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(size)


def _fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    os.mkfifo(path)


def _as_dir(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)


def _write(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.chmod(0o644)
        path.write_bytes(data)
    return write


NESTED = b"[" * 200_000 + b"]" * 200_000
NOT_UTF8 = b"\xff\xfe\x00garbage\xc3\x28"
LOG = "manifests/log"

#: (name, relative path in a good archive, how to damage it)
ARCHIVE_DAMAGE: list[tuple[str, str, Callable[[Path], None]]] = [
    ("head huge", f"{LOG}/head.json", _sparse),
    ("head nested", f"{LOG}/head.json", _write(NESTED)),
    ("head fifo", f"{LOG}/head.json", _fifo),
    ("head directory", f"{LOG}/head.json", _as_dir),
    ("head odd types", f"{LOG}/head.json", _write(b'{"size": "7", "root": [1]}')),
    ("key.pub huge", f"{LOG}/key.pub", _sparse),
    ("key.pub not utf-8", f"{LOG}/key.pub", _write(NOT_UTF8)),
    ("key.pub fifo", f"{LOG}/key.pub", _fifo),
    ("latest checkpoint directory", f"{LOG}/checkpoint", _as_dir),
    ("latest checkpoint huge", f"{LOG}/checkpoint", _sparse),
    ("checkpoint fifo", f"{LOG}/checkpoints/000000000999-20260101T000000000000Z.txt", _fifo),
    ("checkpoint garbage", f"{LOG}/checkpoints/000000000001-20260101T000000000000Z.txt",
     _write(NOT_UTF8)),
    ("entries nested", f"{LOG}/entries.jsonl", _write(NESTED + b"\n")),
    ("entries fifo", f"{LOG}/entries.jsonl", _fifo),
    ("journal garbage", f"{LOG}/journal/20260101T000000Z-000000000000.txt", _write(NESTED)),
    ("journal huge", f"{LOG}/journal/20260101T000000Z-000000000001.txt", _sparse),
    ("journal is a file", f"{LOG}/journal", _write(b"x")),
    ("catalog garbage", "archive/index/catalog.sqlite3", _write(b"SQLite format 3\x00" + NESTED)),
    ("catalog fifo", "archive/index/catalog.sqlite3", _fifo),
    ("manifest nested", "manifests/20260101T000000Z-aaaaaaaaaa.json", _write(NESTED)),
    ("manifest huge", "manifests/20260101T000000Z-bbbbbbbbbb.json", _sparse),
    ("manifest fifo", "manifests/20260101T000000Z-cccccccccc.json", _fifo),
    ("tree level fifo", f"{LOG}/tree/05.bin", _fifo),
]


class HangError(Exception):
    pass


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """An archive with a key and two captures; (root, private key, a capture id)."""
    base = tmp_path_factory.mktemp("robust")
    patch = pytest.MonkeyPatch()
    patch.setenv("PRESERVE_CONFIG_HOME", str(base / "config"))
    with TestServer() as server:
        server.routes["/a"] = respond(200, (SEEDS / "news.html").read_bytes(),
                                      headers=[("Content-Type", "text/html")])
        archive = Archive(base / "good")
        info = archive.init(key_name="robust.example/a")
        result = archive.capture(server.url("/a"))
        archive.capture(server.url("/a?again"))
        yield base / "good", info.private_path, result.capture_id
    patch.undo()


def _run(args: list[str], tmp_path: Path) -> tuple[int, str, str]:
    def alarm(_signum: int, _frame: FrameType | None) -> None:
        raise HangError(" ".join(args))

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    try:
        result = CliRunner().invoke(main, args, catch_exceptions=True,
                                    env={"PRESERVE_CONFIG_HOME": str(tmp_path / "config")})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if isinstance(result.exception, HangError):
        raise AssertionError(f"hung: {' '.join(args)}")
    return result.exit_code, result.stdout, result.stderr


def _check(args: list[str], tmp_path: Path) -> tuple[int, str]:
    status, stdout, stderr = _run(args, tmp_path)
    where = " ".join(args)
    assert status in DOCUMENTED, (where, status, stderr[-2000:])
    assert "Traceback" not in stderr and "internal error" not in stderr, (where, stderr[-2000:])
    if status in (2, 3, 4):
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert lines and lines[0].startswith("preserve: error:"), (where, stderr)
        assert all(line.startswith("preserve: ") for line in lines), (where, stderr)
    if "--json" in args:
        envelope = json.loads(stdout)  # one object, errors included
        assert envelope["exit_status"] == status, where
    return status, stderr


def _commands(root: Path, key: Path, capture_id: str, out: Path) -> list[list[str]]:
    r = ["--root", str(root)]
    k = ["--key", str(key)]
    return [
        [*r, "verify", "--no-record"],
        [*r, "verify", "--deep", "--json"],
        [*r, *k, "verify"],
        [*r, *k, "repair", "--dry-run"],
        [*r, *k, "repair", "--json"],
        [*r, "list", "--json"],
        [*r, "show", capture_id],
        [*r, "history", "http://127.0.0.1/a"],
        [*r, "diff", capture_id, capture_id],
        [*r, *k, "checkpoint", "--json"],
        [*r, "log"],
        [*r, "prove", capture_id, "-o", str(out / "proof.json")],
        [*r, *k, "adopt", capture_id, "--reason", "test"],
        [*r, "reset-head", "--yes", "--json"],
        [*r, *k, "capture", "--http", "--timeout", "2", "http://127.0.0.1:9/"],
        [*r, *k, "init"],
    ]


@pytest.mark.parametrize("damage", ARCHIVE_DAMAGE, ids=[d[0] for d in ARCHIVE_DAMAGE])
def test_every_command_on_a_damaged_archive(
    good_archive: tuple[Path, Path, str], damage: tuple[str, str, Callable[[Path], None]],
    tmp_path: Path,
) -> None:
    source, key, capture_id = good_archive
    root = tmp_path / "archive"
    shutil.copytree(source, root, symlinks=True)
    _name, rel, spoil = damage
    spoil(root / rel)
    for args in _commands(root, key, capture_id, tmp_path):
        _check(args, tmp_path)


def test_every_command_on_no_archive(good_archive: tuple[Path, Path, str],
                                     tmp_path: Path) -> None:
    _source, key, capture_id = good_archive
    file_root = tmp_path / "a-file"
    file_root.write_bytes(b"x")
    for root in (tmp_path / "missing", tmp_path / "empty", file_root):
        if root.name == "empty":
            root.mkdir()
        for args in _commands(root, key, capture_id, tmp_path):
            if "init" in args or "capture" in args:
                continue  # these create an archive where there is none
            status, stderr = _check(args, tmp_path)
            assert status == 3, (args, stderr)  # never "0 captures", exit 0


def _bad_key_files(tmp_path: Path) -> Iterator[Path]:
    cases: dict[str, Callable[[Path], None]] = {
        "huge": _sparse, "fifo": _fifo, "dir": _as_dir, "not-utf8": _write(NOT_UTF8),
        "nested": _write(NESTED), "empty": _write(b""),
        "public": _write(b"robust.example/a+00000000+AQ==\n"),
    }
    for name, make in cases.items():
        path = tmp_path / "keys" / name
        make(path)
        if path.is_file():
            path.chmod(0o600)
        yield path


def test_bad_keys_trusted_keys_checkpoints_and_bundles(
    good_archive: tuple[Path, Path, str], tmp_path: Path
) -> None:
    source, _key, capture_id = good_archive
    root = tmp_path / "archive"
    shutil.copytree(source, root)
    r = ["--root", str(root)]
    for bad in _bad_key_files(tmp_path):
        _check([*r, "--key", str(bad), "checkpoint"], tmp_path)
        _check([*r, "--key", str(bad), "adopt", capture_id, "--reason", "x"], tmp_path)
        _check([*r, "verify", "--no-record", "--trusted-key", str(bad)], tmp_path)
        _check([*r, "verify", "--no-record", "--checkpoint", str(bad)], tmp_path)
        _check([*r, "verify", "--no-record", "--tsa-roots", str(bad)], tmp_path)
        _check(["check-proof", str(bad), "--json"], tmp_path)
        _check(["check-proof", str(bad), "--trusted-key", str(bad)], tmp_path)
        _check([*r, "capture", "--http", "--from", str(bad), "--timeout", "2"], tmp_path)
    _check([*r, "verify", "--trusted-key", "not+a+key"], tmp_path)


@pytest.mark.parametrize("spoil", ["huge", "fifo"])
def test_export_and_report_read_the_archive_bounded(
    good_archive: tuple[Path, Path, str], tmp_path: Path, spoil: str
) -> None:
    """export (WACZ and bag) and report read a capture's WARC file and text object, key.pub,
    the checkpoints and their RFC 3161 tokens: each as a regular file only, its size checked
    before a byte is read — never waiting on a FIFO, never streaming or loading a sparse file
    of gigabytes (a damaged file is refused, or shipped as absent, in one line)."""
    source, _key, capture_id = good_archive
    document = json.loads((source / "manifests" / f"{capture_id}.json").read_bytes())
    newest = sorted((source / LOG / "checkpoints").glob("*.txt"))[-1]
    targets = [document["warc"]["path"], document["text"]["path"], f"{LOG}/key.pub",
               str(newest.relative_to(source)),
               str(newest.with_suffix(".tsr").relative_to(source))]
    for number, rel in enumerate(targets):
        root = tmp_path / str(number) / "archive"
        shutil.copytree(source, root, symlinks=True)
        if spoil == "huge":
            _sparse(root / rel, 4 * 2**30)
        else:
            _fifo(root / rel)
        out = tmp_path / str(number)
        for args in (["export", capture_id, "--wacz", str(out / "x.wacz")],
                     ["export", capture_id, "--bagit", str(out / "bag")],
                     ["report", capture_id, "-o", str(out / "r.html")]):
            _check(["--root", str(root), *args], tmp_path)
        for written in out.rglob("*"):  # nothing of the spoilt file was copied out
            assert written.is_relative_to(root) or written.stat().st_size < 2**26, written


def test_check_export_of_special_and_huge_files(tmp_path: Path) -> None:
    """check-export reads the package it is given as a regular file only: a FIFO or a device
    named as the WACZ (or as --tsa-roots) is refused at once, never waited on or read to no
    end inside zipfile."""
    cases: dict[str, Callable[[Path], None]] = {"fifo": _fifo, "huge": _sparse,
                                                "empty": _write(b"")}
    packages = []
    for name, make in cases.items():
        path = tmp_path / "packages" / f"{name}.wacz"
        make(path)
        packages.append(path)
    if Path("/dev/zero").exists():
        packages.append(Path("/dev/zero"))
    roots = tmp_path / "roots.pem"
    _fifo(roots)
    for package in packages:
        status, _ = _check(["check-export", str(package)], tmp_path)
        assert status == 1, package
        _check(["check-export", str(package), "--json"], tmp_path)
        status, _ = _check(["check-export", str(package), "--tsa-roots", str(roots)], tmp_path)
        assert status != 0, package


@pytest.mark.parametrize("bundle", [
    {}, [], "x", 1, None, {"format": "preserve-proof/1"},
    {"format": "preserve-proof/1", "capture_id": 7, "manifest": {"base64": 1}, "leaf": [],
     "inclusion_proof": "x", "checkpoint": 1, "verifier_key": {}},
    {"format": "preserve-proof/1", "capture_id": "x", "manifest": {"base64": "!!"},
     "leaf": {"index": -1, "entry": "{}"}, "inclusion_proof": {"hashes": [1]},
     "checkpoint": "x", "verifier_key": "x"},
])
def test_malformed_proof_bundles(bundle: object, tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    status, _ = _check(["check-proof", str(path), "--json"], tmp_path)
    assert status in (1, 2)


@pytest.mark.parametrize("options", [
    ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "-1"], ["--timeout", "0"],
    ["--connect-timeout", "nan"], ["--max-size", "0"], ["--max-size", "12XB"],
    ["--max-size", "-5"], ["--per-host-delay", "nan"], ["--concurrency", "0"],
    ["--max-redirects", "-1"],
    # finite but beyond what timers take (threading waits overflow time_t, the browser
    # driver's timers are 32-bit milliseconds): was exit 5 or a traceback, not a usage error
    ["--per-host-delay", "1e300"], ["--timeout", "1e308"], ["--connect-timeout", "1e10"],
    ["--settle", "1000001"], ["--timeout", "2147484"],
])
def test_bad_capture_options_are_usage_errors(options: list[str], tmp_path: Path) -> None:
    status, stderr = _check(["--root", str(tmp_path / "a"), "capture", "--http", *options,
                             "http://127.0.0.1:9/"], tmp_path)
    assert status == 2, stderr
    assert not (tmp_path / "a").exists(), "a usage error created an archive"


@pytest.mark.parametrize("tsa", ["not a url", "ftp://tsa.example/", "http://", "http://[::1",
                                 "http://127.0.0.1:9/tsa"])
def test_malformed_tsa_urls(good_archive: tuple[Path, Path, str], tsa: str,
                            tmp_path: Path) -> None:
    source, key, _ = good_archive
    root = tmp_path / "archive"
    shutil.copytree(source, root)
    status, stderr = _check(["--root", str(root), "--key", str(key), "--tsa", tsa,
                             "checkpoint"], tmp_path)
    assert status == (3 if tsa.endswith(":9/tsa") else 2), stderr
    _check(["--root", str(root), "--key", str(key), "verify", "--tsa", tsa], tmp_path)


def test_verify_anchor_age_option(good_archive: tuple[Path, Path, str], tmp_path: Path) -> None:
    source, _key, _ = good_archive
    for value in ("nan", "-1", "inf", "x", "1e300", "36501"):  # 1e300: was an OverflowError
        status, _ = _check(["--root", str(source), "verify", "--no-record",
                            "--anchor-max-age", value], tmp_path)
        assert status == 2


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_output_to_a_full_device_is_one_line_not_an_internal_error(
        good_archive: tuple[Path, Path, str], tmp_path: Path) -> None:
    """stdout on a full disk (ENOSPC) ended in 'internal error' (exit 5), or under --json in
    two error lines; it is the machine's state: one line, exit 3."""
    source, _key, capture_id = good_archive
    for args in (["show", capture_id], ["show", capture_id, "--json"], ["list", "--json"],
                 ["history", "http://127.0.0.1/"], ["verify", "--no-record"]):
        with Path("/dev/full").open("w") as full:
            done = subprocess.run([str(Path(sys.executable).with_name("preserve")), "--root",
                                   str(source), *args], stdout=full, env=dict(os.environ),
                                  stderr=subprocess.PIPE, text=True, timeout=120, check=False)
        lines = done.stderr.splitlines()
        assert done.returncode == 3, (args, done.stderr)
        assert lines == ["preserve: error: No space left on device"], (args, lines)


def test_file_names_that_are_not_utf8_are_shown_never_a_crash(
        good_archive: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A file planted under a name that is not UTF-8 (Python holds it as a lone surrogate)
    made verify end in 'internal error' (exit 5) on a strict UTF-8 stdout, and wrote bytes
    that are not UTF-8 into --json output elsewhere: it is shown as ⟨U+DCFE⟩, and written in
    JSON as its \\u escape (json.loads gives the name back)."""
    source, _key, _capture_id = good_archive
    root = tmp_path / "archive"
    shutil.copytree(source, root, symlinks=True)
    manifest = "manifests/" + os.fsdecode(b"\xfe.json")
    (root / manifest).write_bytes(b"")
    warc_dir = next((root / "archive" / "warc").glob("*/*"))
    (warc_dir / os.fsdecode(b"bad\xffname.warc.gz")).write_bytes(b"")
    env = dict(os.environ, PYTHONIOENCODING="utf-8")  # errors="strict", as in en_US.UTF-8
    for args in (["verify", "--no-record"], ["verify", "--no-record", "--json"],
                 ["repair", "--dry-run"], ["repair", "--dry-run", "--json"]):
        done = subprocess.run([str(Path(sys.executable).with_name("preserve")), "--root",
                               str(root), *args], capture_output=True, env=env, timeout=120,
                              check=False)
        out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")  # strict
        assert done.returncode == (1 if args[0] == "verify" else 0), (args, err)
        assert "internal error" not in err and "Traceback" not in err, (args, err)
        if "--json" in args:
            text = json.dumps(json.loads(out), ensure_ascii=False)
            assert manifest in text, args
            assert "bad\udcffname" in text or args[0] == "repair", args
        else:
            assert "manifests/⟨U+DCFE⟩.json" in out + err, (args, out, err)


def test_a_file_name_cannot_print_a_line_of_its_own(
        good_archive: tuple[Path, Path, str], tmp_path: Path) -> None:
    """A planted file named 'x\\n\\nintact: …' printed a line that reads as verify's verdict
    (a script grepping for '^intact' took it): the newline is shown as ⟨U+000A⟩."""
    source, _key, _capture_id = good_archive
    root = tmp_path / "archive"
    shutil.copytree(source, root, symlinks=True)
    warc_dir = next((root / "archive" / "warc").glob("*/*"))
    (warc_dir / "x.warc.gz\n\nintact: 1 manifests, 0 errors, 0 warnings").write_bytes(b"")
    (root / "manifests" / "y\n.json").write_bytes(b"{}")  # an error: the verdict is not intact
    for args in (["verify", "--no-record"], ["repair", "--dry-run"]):
        status, stdout, _stderr = _run(["--root", str(root), *args], tmp_path)
        assert status == 1 or args[0] == "repair", (args, stdout)
        lines = stdout.splitlines()
        assert not [line for line in lines if line.startswith("intact")], (args, stdout)
        assert any("x.warc.gz⟨U+000A⟩⟨U+000A⟩intact: 1 manifests" in line for line in lines)


@pytest.mark.parametrize("name", ["notes.json", os.fsdecode(b"\xfe.json")])
def test_export_all_refuses_a_manifest_named_as_no_capture(
        good_archive: tuple[Path, Path, str], tmp_path: Path, name: str) -> None:
    """A file in manifests/ whose name is not a capture id (planted, or a note someone left)
    ended export --all in 'internal error' (exit 5): a damaged archive is not exported, in
    one line (exit 3), and nothing is written."""
    source, _key, _capture_id = good_archive
    root = tmp_path / "archive"
    shutil.copytree(source, root, symlinks=True)
    (root / "manifests" / name).write_bytes(b"{}")
    out = tmp_path / "out"
    out.mkdir()
    for args in (["export", "--all", "--wacz", str(out / "x.wacz")],
                 ["export", "--all", "--bagit", str(out / "bag")],
                 ["export", "--all", "--wacz", str(out / "y.wacz"), "--json"]):
        status, stderr = _check(["--root", str(root), *args], tmp_path)
        assert status == 3 and "its name is not a capture id" in stderr, (args, stderr)
    assert list(out.iterdir()) == []
