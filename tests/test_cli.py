"""The ``preserve`` command: real processes for exit statuses and stderr, CliRunner for the rest."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from preserve import Archive
from preserve.cli import main
from preserve.compare import diff
from servers import TestServer, redirect, respond, stream_bytes

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
HTML = [("Content-Type", "text/html; charset=utf-8")]
PRESERVE = str(Path(sys.executable).with_name("preserve"))


def run(root: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRESERVE, "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def site(http_server: TestServer) -> TestServer:
    http_server.routes["/news"] = respond(200, (SEEDS / "news.html").read_bytes(), headers=HTML)
    http_server.routes["/blog"] = respond(200, (SEEDS / "blog.html").read_bytes(), headers=HTML)
    http_server.routes["/moved"] = redirect("/news", status=301)
    http_server.routes["/missing"] = respond(404, b"<html><body>No such page</body></html>",
                                             headers=HTML)
    http_server.routes["/huge"] = stream_bytes(5_000_000)
    return http_server


def test_capture_prints_id_hash_title_and_verify_passes(site: TestServer, tmp_path: Path) -> None:
    done = run(tmp_path, "capture", "--http", site.url("/moved"))
    assert done.returncode == 0, done.stderr
    capture_id, text_hash, title = done.stdout.strip().split("  ", 2)
    assert text_hash.startswith("blake3:") and len(text_hash) == 7 + 64
    assert title == "A massacre in Iraq that must have pleased Tehran"
    verified = run(tmp_path, "verify")
    assert verified.returncode == 0
    assert verified.stdout.splitlines()[-1].startswith("intact: 1 manifests")
    assert "W304" in verified.stdout  # no signing key yet: said, not hidden
    shown = run(tmp_path, "show", capture_id[:20])
    assert shown.returncode == 0 and "redirect  301" in shown.stdout
    listed = run(tmp_path, "list", "--json")
    envelope = json.loads(listed.stdout)
    assert envelope["ok"] and envelope["command"] == "list" and envelope["exit_status"] == 0
    assert [c["capture_id"] for c in envelope["result"]["captures"]] == [capture_id]


def test_batch_from_file_and_json(site: TestServer, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# evidence\n{site.url('/news')}\n\n{site.url('/blog')}\n")
    result = CliRunner().invoke(main, ["--root", str(tmp_path / "a"), "capture", "--http", "--from",
                                       str(urls), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)["result"]
    assert [c["status"] for c in document["captures"]] == ["ok", "ok"]
    assert document["failed"] == 0


def test_root_from_environment(site: TestServer, tmp_path: Path) -> None:
    done = subprocess.run([PRESERVE, "capture", "--http", site.url("/blog")], capture_output=True,
                          text=True, check=False, env={**os.environ, "PRESERVE_ROOT":
                                                       str(tmp_path / "env-root")})
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "env-root" / "manifests").glob("*.json"))) == 1


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["not a url"], 2, "not a url"),
        (["ftp://example.org/"], 2, "unsupported URL scheme"),
        (["http://127.0.0.1:9/"], 4, "127.0.0.1"),
        (["--max-size", "1000", "{huge}"], 4, "1000"),
        (["http://no-such-host.invalid/"], 4, "no-such-host.invalid"),
    ],
)
def test_bad_input_one_line_nonzero_nothing_committed(
    site: TestServer, tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    args = [a.replace("{huge}", site.url("/huge")) for a in args]
    done = run(tmp_path, "capture", "--http", *args)
    assert done.returncode == status
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("preserve: ") and message in lines[0]
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("manifests/*.json"))


def test_http_error_status_exits_1_but_is_kept(site: TestServer, tmp_path: Path) -> None:
    done = run(tmp_path, "capture", "--http", site.url("/missing"))
    assert done.returncode == 1
    assert "[HTTP 404]" in done.stdout
    assert run(tmp_path, "verify", "--deep").returncode == 0


def test_verify_json_and_findings_exit_1(site: TestServer, tmp_path: Path) -> None:
    assert run(tmp_path, "capture", "--http", site.url("/news")).returncode == 0
    ok = json.loads(run(tmp_path, "verify", "--deep", "--json").stdout)
    assert ok["ok"] and ok["result"]["deep"] and ok["result"]["stats"]["records_checked"] > 0
    text = next(p for p in (tmp_path / "archive" / "text").rglob("*") if p.is_file())
    text.chmod(0o644)
    text.write_bytes(text.read_bytes() + b" tampered")
    bad = run(tmp_path, "verify", "--json")
    assert bad.returncode == 1
    envelope = json.loads(bad.stdout)
    assert not envelope["ok"] and envelope["exit_status"] == 1
    assert envelope["result"]["findings"][0]["code"].startswith("E")
    human = run(tmp_path, "verify")
    assert human.returncode == 1 and "NOT INTACT" in human.stdout


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``root`` with its size and modification time (directories too)."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in root.rglob("*")}


def test_diff_holds_a_text_to_its_manifest(site: TestServer, tmp_path: Path) -> None:
    """A text object edited in place (or a sparse file of gigabytes put in its place) is not
    shown by diff as the capture's text: one line, exit 1, read no further than its size."""
    first = run(tmp_path, "capture", "--http", site.url("/news")).stdout.split()[0]
    second = run(tmp_path, "capture", "--http", site.url("/blog")).stdout.split()[0]
    text = json.loads((tmp_path / "manifests" / f"{first}.json").read_text())["text"]["path"]
    path = tmp_path / text
    original = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(original.replace(original[:12], b"REWRITTEN BY", 1))
    for damage in ("edited", "sparse"):
        if damage == "sparse":
            with path.open("r+b") as f:
                f.truncate(3 * 2**30)
        done = run(tmp_path, "diff", first, second)
        assert done.returncode == 1, (damage, done.stdout, done.stderr)
        assert "REWRITTEN" not in done.stdout
        line, = done.stderr.strip().splitlines()
        assert "is not the text the manifest of" in line, line


def test_show_and_diff_hold_a_manifest_to_its_log_leaf(site: TestServer, tmp_path: Path) -> None:
    # someone with write access rewrites what a manifest says (title, URL): show and diff
    # must not present it as the capture; list keeps what was logged
    first = run(tmp_path, "capture", "--http", site.url("/news")).stdout.split()[0]
    second = run(tmp_path, "capture", "--http", site.url("/blog")).stdout.split()[0]
    before = _tree(tmp_path)
    assert run(tmp_path, "show", first).returncode == 0
    assert run(tmp_path, "diff", first, second).returncode == 0
    assert _tree(tmp_path) == before  # reading them changed nothing (the catalog included)
    path = tmp_path / "manifests" / f"{first}.json"
    doc = json.loads(path.read_text())
    doc["requested_url"] = "https://forged.example/"
    path.chmod(0o644)
    path.write_text(json.dumps(doc))
    for args in (("show", first[:20]), ("show", "--json", first), ("diff", first, second)):
        done = run(tmp_path, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "forged.example" not in done.stdout + done.stderr
        line, = done.stderr.strip().splitlines()
        assert "is not the manifest the log records" in line and "Traceback" not in line
    listed = run(tmp_path, "list")
    assert listed.returncode == 0 and "forged.example" not in listed.stdout
    assert run(tmp_path, "show", second).returncode == 0  # the other capture is untouched
    # a manifest planted for a capture the log never had is refused too
    planted = tmp_path / "manifests" / f"{first[:-10]}zzzzzzzzzz.json"
    doc["capture_id"] = planted.stem
    planted.write_text(json.dumps(doc))
    assert run(tmp_path, "show", planted.stem).returncode == 1
    # report and export (built on the export plan) refuse both too: report as show (exit 1),
    # export with its own status for a damaged archive (exit 3); nothing is written
    out = tmp_path.parent / f"{tmp_path.name}-out"
    out.mkdir()
    for capture_id in (first, planted.stem):
        done = run(tmp_path, "report", capture_id, "-o", str(out / "r.html"))
        assert done.returncode == 1, (capture_id, done.stderr)
        line, = done.stderr.strip().splitlines()
        assert "integrity" in line and "no report was written" in line
        for kind in ("--wacz", "--bagit"):
            done = run(tmp_path, "export", capture_id, kind, str(out / f"x{kind}"))
            assert done.returncode == 3, (capture_id, kind, done.stderr)
            assert "integrity" in done.stderr and "Traceback" not in done.stderr
    assert sorted(out.iterdir()) == []
    assert run(tmp_path, "report", second, "-o", str(out / "r.html")).returncode == 0
    # an archive without a log has nothing to hold it to: shown, with a warning saying so
    bare = tmp_path / "bare"
    shutil.copytree(tmp_path, bare, ignore=shutil.ignore_patterns("log", "bare"))
    done = run(bare, "show", second)
    assert done.returncode == 0 and "has no integrity log" in done.stderr


def test_cannot_run_exit_3(tmp_path: Path) -> None:
    missing = run(tmp_path / "nowhere", "verify")
    assert missing.returncode == 3
    assert missing.stderr.startswith("preserve: error:")
    assert run(tmp_path, "show", "20990101T000000Z-aaaaaaaaaa").returncode == 3


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run(tmp_path, "capture").returncode == 2
    assert run(tmp_path, "verify", "--no-such-option").returncode == 2


def test_diff_does_not_call_a_changed_text_identical(site: TestServer, tmp_path: Path) -> None:
    """Two captures with the same final payload but different clean text (text from the
    rendered page, which scripts change; or another extractor version) were summarised as
    "identical payload: the server sent the same bytes" above a diff of changed text. The
    summary now says the text changed, and why it can; each side names its text's address."""
    archive = Archive(tmp_path)
    first = archive.capture(site.url("/news")).capture_id
    second = archive.capture(site.url("/news")).capture_id
    old = archive.manifest(first)
    newer = dataclasses.replace(archive.manifest(second), extractor=dataclasses.replace(
        old.extractor, version="0.0.1"))

    class Rewritten:  # the second capture as an older extractor would have left it
        def manifest(self, capture_id: str) -> object:
            return old if capture_id == first else newer

        def text(self, capture_id: str) -> str:
            return archive.text(first) + ("" if capture_id == first else "An added line.\n")

    result = diff(Rewritten(), first, second)  # type: ignore[arg-type]
    assert result.text_changed and not result.payload_changed
    assert result.summary.startswith("clean text changed, the final response's payload did "
                                     "not"), result.summary
    assert "extractor" in result.summary and "0.0.1" in result.summary
    assert site.url("/news") in result.unified_diff.splitlines()[0]
    assert result.to_json()["new_text_url"] == site.url("/news")
