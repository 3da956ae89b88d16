"""The integrity-log commands end to end: init, capture, verify, log, prove, check-proof."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servers import TestServer, respond

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
PRESERVE = str(Path(sys.executable).with_name("preserve"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PRESERVE_CONFIG_HOME": str(tmp_path / "config"),
            "PRESERVE_ROOT": str(tmp_path / "root")}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRESERVE, *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


@pytest.fixture
def signed_archive(http_server: TestServer, env: dict[str, str]) -> list[str]:
    http_server.routes["/news"] = respond(200, (SEEDS / "news.html").read_bytes(),
                                          headers=[("Content-Type", "text/html")])
    http_server.routes["/blog"] = respond(200, (SEEDS / "blog.html").read_bytes(),
                                          headers=[("Content-Type", "text/html")])
    init = run(env, "init", "--key-name", "test.example/archive")
    assert init.returncode == 0, init.stderr
    assert "verifier key test.example/archive+" in init.stdout
    root = Path(env["PRESERVE_ROOT"])
    key = Path(env["PRESERVE_CONFIG_HOME"]) / "keys" / "test.example_archive.key"
    assert key.is_file() and not key.is_relative_to(root)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    done = run(env, "capture", "--http", http_server.url("/news"), http_server.url("/blog"))
    assert done.returncode == 0, done.stderr
    return [line.split()[0] for line in done.stdout.splitlines()]


def test_log_shows_captures_and_audits(signed_archive: list[str], env: dict[str, str]) -> None:
    first = run(env, "verify")
    codes = {line.split()[0] for line in first.stdout.splitlines()[:-1]}
    assert first.returncode == 0 and codes == {"W307"}, first.stdout  # no off-site anchor
    shown = json.loads(run(env, "log", "--json").stdout)["result"]["entries"]
    assert [e["type"] for e in shown] == ["capture", "capture", "audit"]
    assert [e["capture_id"] for e in shown[:2]] == signed_archive
    assert shown[2]["event"]["eventType"] == "fixity check"
    checkpoints = sorted((Path(env["PRESERVE_ROOT"]) / "manifests/log/checkpoints").glob("*.txt"))
    assert checkpoints and checkpoints[-1].read_text().splitlines()[1] == "3"


def test_prove_and_check_proof(signed_archive: list[str], env: dict[str, str],
                               tmp_path: Path) -> None:
    bundle = tmp_path / "proof.json"
    made = run(env, "prove", signed_archive[0][:22], "-o", str(bundle))
    assert made.returncode == 0, made.stderr
    before = bundle.read_bytes()  # another capture's proof never replaces it
    again = run(env, "prove", signed_archive[1][:22], "-o", str(bundle))
    assert again.returncode == 3 and "already exists" in again.stderr
    assert bundle.read_bytes() == before
    key = Path(env["PRESERVE_ROOT"]) / "manifests/log/key.pub"
    checked = run(env, "check-proof", str(bundle), "--trusted-key", str(key))
    assert checked.returncode == 0 and "proof holds" in checked.stdout
    tampered = json.loads(bundle.read_text())
    tampered_text = json.dumps(tampered).replace(signed_archive[0], signed_archive[1])
    bundle.write_text(tampered_text)
    refused = run(env, "check-proof", str(bundle), "--json")
    assert refused.returncode == 1 and json.loads(refused.stdout)["result"]["problems"]


def test_rewritten_manifest_is_caught_by_the_log(signed_archive: list[str],
                                                 env: dict[str, str]) -> None:
    path = Path(env["PRESERVE_ROOT"]) / "manifests" / f"{signed_archive[0]}.json"
    document = json.loads(path.read_text())
    document["final_url"] = document["final_url"].replace("/news", "/fake")
    document["requested_url"] = document["final_url"]
    path.chmod(0o644)
    path.write_text(json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    report = run(env, "verify", "--json")
    assert report.returncode == 1
    codes = {f["code"] for f in json.loads(report.stdout)["result"]["findings"]}
    assert "E306" in codes  # the manifest's bytes differ from its log leaf


def test_external_checkpoint_detects_a_rewritten_log(signed_archive: list[str],
                                                     env: dict[str, str],
                                                     tmp_path: Path) -> None:
    root = Path(env["PRESERVE_ROOT"])
    kept = tmp_path / "offsite-checkpoint.txt"
    kept.write_bytes((root / "manifests/log/checkpoint").read_bytes())
    assert run(env, "verify", "--checkpoint", str(kept), "--no-record").returncode == 0
    # An attacker without the key deletes the log and re-creates it with one capture only.


    shutil.rmtree(root / "manifests/log")
    (root / "manifests" / f"{signed_archive[1]}.json").unlink()
    run(env, "init")  # makes a new log and a new key: it cannot extend the kept checkpoint
    codes = {f["code"] for f in json.loads(run(env, "verify", "--json", "--checkpoint",
                                               str(kept)).stdout)["result"]["findings"]}
    assert codes & {"E304", "E307", "E309"}, codes
