"""Crash at any point: SIGKILL ``preserve capture`` mid-flight, then verify and repair.

Each trial runs the real CLI in a subprocess against a local server that sends a large HTML
page in paced pieces, and kills it with SIGKILL either at a random moment (fixed seed) or right
after a chosen on-disk milestone appears (the parent polls the archive: spool created, WARC
written, WARC linked, manifest temp, manifest, log head, checkpoint), so kills land inside the
narrow commit steps too. After every kill:

* a capture that printed its id is committed and verifies clean;
* verify finds no errors, only debris warnings (E304 is allowed only when the kill landed
  between linking the manifest and appending its log leaf: the capture is committed, the log
  is behind; repair completes it);
* :func:`preserve.repair.repair` succeeds, after which verify reports nothing at all, and every
  earlier capture is still there.

All trials share one archive, so repair also runs next to committed captures it must not touch.
The default run covers every milestone once plus a few random kills; ``-m slow`` runs 50+.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from preserve import Archive, log
from preserve.repair import repair
from servers import ReceivedRequest, TestServer, _head, respond, stall

CAPTURE_LINE = re.compile(r"^(\d{8}T\d{6}Z-[a-z2-7]{10})\s", re.M)
ID_NAME = re.compile(r"^(\d{8}T\d{6}Z-[a-z2-7]{10})(\.lock)?$")
DEBRIS = {"W301", "W302", "W303", "W501", "W502", "W503", "W504"}
MILESTONES = (
    "spool",
    "warc-spooled",
    "warc-linked",
    "manifest-temp",
    "manifest",
    "logged",
    "checkpoint",
)
WORDS = (
    "archive",
    "evidence",
    "witness",
    "record",
    "source",
    "village",
    "river",
    "market",
    "council",
    "report",
    "statement",
    "photograph",
    "damage",
    "street",
    "school",
)


def article(n: int, paragraphs: int = 700) -> bytes:
    """A distinct HTML article per ``n`` (distinct text objects, so every trial stores)."""
    rng = random.Random(n)
    body = "".join(
        "<p>" + " ".join(rng.choice(WORDS) for _ in range(50)) + f" ({n}.{i})</p>\n"
        for i in range(paragraphs)
    )
    comments = "".join(
        f"<li class='comment'>reader {i} says {rng.choice(WORDS)}</li>" for i in range(20)
    )
    return (
        f"<!doctype html><html><head><title>Article {n}</title></head><body>"
        f"<article><h1>Article {n}</h1>{body}</article>"
        f"<section id='comments' class='comments'><ol>{comments}</ol></section>"
        "</body></html>"
    ).encode()


def paced_article(request: ReceivedRequest, conn: socket.socket) -> None:
    """Serve ``article(n)`` for ``/article?n=N`` in 32 KiB pieces, 3 ms apart."""
    n = int(request.target.partition("?n=")[2] or 0)
    body = article(n)
    conn.sendall(
        _head(
            200,
            "OK",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
    )
    for start in range(0, len(body), 32768):
        conn.sendall(body[start : start + 32768])
        time.sleep(0.003)


@dataclass
class Trial:
    number: int
    trigger: str  # "random" or a milestone name
    landed: str
    reported: bool
    errors_after_kill: list[str]
    warnings_after_kill: list[str]
    repaired: dict[str, int]


class CrashHarness:
    """Runs capture trials into one archive and checks the invariants after each kill."""

    def __init__(self, root: Path, key: Path, server: TestServer, seed: int) -> None:
        self.root = root
        self.key = key
        self.server = server
        self.rng = random.Random(seed)
        self.reported: list[str] = []
        self.trials: list[Trial] = []
        self.full_duration = 1.0
        self.cli(["init"], check=True)

    def cli(self, args: list[str], check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(args), capture_output=True, text=True, check=check, timeout=60
        )

    def command(self, args: list[str]) -> list[str]:
        return [
            sys.executable,
            "-c",
            "from preserve.cli import main; main()",
            "--root",
            str(self.root),
            "--key",
            str(self.key),
            *args,
        ]

    def calibrate(self) -> None:
        """One capture run to completion: how long a capture takes here."""
        started = time.monotonic()
        result = self.cli(["capture", self.server.url("/article?n=0")], check=True)
        self.full_duration = time.monotonic() - started
        match = CAPTURE_LINE.search(result.stdout)
        assert match, result.stdout
        self.reported.append(match.group(1))
        self.check_clean()

    # --- one trial -------------------------------------------------------------------------

    def run(self, number: int, trigger: str) -> Trial:
        before = self.snapshot()
        proc = subprocess.Popen(
            self.command(["capture", self.server.url(f"/article?n={number}")]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if trigger == "random":
                deadline = time.monotonic() + self.rng.uniform(0.45, 1.1) * self.full_duration
                while time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.001)
            else:
                self.wait_for(trigger, before, proc)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            stdout, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        capture_id = self.new_capture_id(before)
        landed = self.landed(capture_id, before)
        match = CAPTURE_LINE.search(stdout)
        if match:
            assert match.group(1) == capture_id
            self.reported.append(capture_id)
        report = Archive(self.root, key=self.key).verify(record=False)
        errors = sorted(f.code.code for f in report.errors)
        warnings = sorted(f.code.code for f in report.warnings)
        allowed_errors = {"E304"} if landed == "after manifest, before log leaf" else set()
        assert set(errors) <= allowed_errors, (landed, [f.to_json() for f in report.errors])
        assert set(warnings) <= DEBRIS, (landed, [f.to_json() for f in report.warnings])
        fixed = repair(self.root, key=self.key)
        assert fixed.ok, fixed.problems
        self.check_clean()
        trial = Trial(
            number,
            trigger,
            landed,
            bool(match),
            errors,
            warnings,
            dict(collections.Counter(a.kind for a in fixed.actions)),
        )
        self.trials.append(trial)
        return trial

    def wait_for(
        self, milestone: str, before: dict[str, object], proc: subprocess.Popen[str]
    ) -> None:
        """Poll the archive until ``milestone`` appears (or the process ends), plus a jitter."""
        capture_id: str | None = None
        reached: Callable[[str], bool] | None = None
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if capture_id is None:
                capture_id = self.new_capture_id(before)
                if capture_id is not None:
                    reached = self.milestone_test(milestone, capture_id, before)
            if reached is not None and capture_id is not None and reached(capture_id):
                time.sleep(self.rng.uniform(0, 0.002))
                return

    def milestone_test(
        self, milestone: str, capture_id: str, before: dict[str, object]
    ) -> Callable[[str], bool]:
        tmp = self.root / "archive" / "tmp"
        manifests = self.root / "manifests"
        head = log.log_dir(self.root) / "head.json"
        tests: dict[str, Callable[[str], bool]] = {
            "spool": lambda cid: (tmp / cid).is_dir(),
            "warc-spooled": lambda cid: (tmp / cid / "capture.warc.gz").exists(),
            "warc-linked": lambda cid: self.warc_path(cid).exists(),
            "manifest-temp": lambda cid: any(manifests.glob(f".tmp-{cid}-*")),
            "manifest": lambda cid: (manifests / f"{cid}.json").exists(),
            "logged": lambda cid: _inode(head) != before["head"],
            "checkpoint": lambda cid: (
                _count(log.log_dir(self.root) / "checkpoints") != before["checkpoints"]
            ),
        }
        return tests[milestone]

    # --- state on disk ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        return {
            "manifests": set(os.listdir(self.root / "manifests")),
            "tmp": set(os.listdir(self.root / "archive" / "tmp")),
            "head": _inode(log.log_dir(self.root) / "head.json"),
            "checkpoints": _count(log.log_dir(self.root) / "checkpoints"),
        }

    def new_capture_id(self, before: dict[str, object]) -> str | None:
        known = before["tmp"]
        assert isinstance(known, set)
        for name in os.listdir(self.root / "archive" / "tmp"):
            match = ID_NAME.match(name)
            if match and name not in known:
                return match.group(1)
        old = before["manifests"]
        assert isinstance(old, set)
        for name in os.listdir(self.root / "manifests"):
            if name.endswith(".json") and name not in old:
                return name[:-5]
        return None

    def warc_path(self, capture_id: str) -> Path:
        return (
            self.root
            / "archive"
            / "warc"
            / capture_id[:4]
            / capture_id[4:6]
            / f"{capture_id}.warc.gz"
        )

    def landed(self, capture_id: str | None, before: dict[str, object]) -> str:
        """Where the kill landed, read from what the dead process left on disk."""
        if capture_id is None:
            return "start-up (nothing on disk yet)"
        manifests = self.root / "manifests"
        spool = self.root / "archive" / "tmp" / capture_id
        if (manifests / f"{capture_id}.json").exists():
            if capture_id in log.unlogged_manifests(self.root):
                return "after manifest, before log leaf"
            if _count(log.log_dir(self.root) / "checkpoints") == before["checkpoints"]:
                return "after log leaf, before checkpoint"
            return "after checkpoint, in clean-up" if spool.exists() else "completed"
        if any(manifests.glob(f".tmp-{capture_id}-*")):
            return "writing the manifest"
        if self.warc_path(capture_id).exists():
            return "WARC linked; storing text / building manifest"
        if (spool / "capture.warc.gz").exists():
            return "writing the WARC (or waiting for the lock)"
        if spool.exists():
            return "fetching / extracting"
        return "start-up (lock taken, no spool yet)"

    def check_clean(self) -> None:
        report = Archive(self.root, key=self.key).verify(record=False)
        assert not report.findings, [f.to_json() for f in report.findings]
        for capture_id in self.reported:
            assert (self.root / "manifests" / f"{capture_id}.json").is_file()

    def summary(self) -> str:
        landed = collections.Counter(t.landed for t in self.trials)
        lines = [
            f"{len(self.trials)} kill trials (+1 calibration capture of "
            f"{self.full_duration:.2f} s); {sum(t.reported for t in self.trials)} "
            f"printed an id before the kill"
        ]
        lines += [f"  {count:3d}  {where}" for where, count in landed.most_common()]
        findings = collections.Counter(
            c for t in self.trials for c in t.errors_after_kill + t.warnings_after_kill
        )
        lines.append("  findings after kill: " + json.dumps(dict(sorted(findings.items()))))
        actions = collections.Counter()  # type: collections.Counter[str]
        for t in self.trials:
            actions.update(t.repaired)
        lines.append("  repair actions: " + json.dumps(dict(sorted(actions.items()))))
        return "\n".join(lines)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _count(directory: Path) -> int:
    try:
        return len(os.listdir(directory))
    except FileNotFoundError:
        return 0


@pytest.fixture
def harness(tmp_path: Path, http_server: TestServer) -> Iterator[CrashHarness]:
    http_server.routes["/article"] = paced_article
    h = CrashHarness(tmp_path / "root", tmp_path / "key" / "archive.key", http_server, seed=5)
    h.calibrate()
    yield h
    print("\n" + h.summary())


def _run_plan(harness: CrashHarness, plan: list[str]) -> None:
    for number, trigger in enumerate(plan, start=1):
        harness.run(number, trigger)
    deep = Archive(harness.root, key=harness.key).verify(deep=True, record=False)
    assert not deep.findings, [f.to_json() for f in deep.findings]
    assert len(harness.reported) >= 1


def test_kill_at_each_commit_step_and_at_random(harness: CrashHarness) -> None:
    plan = list(MILESTONES) + ["random"] * 4
    _run_plan(harness, plan)
    landed = {t.landed for t in harness.trials}
    # the milestones put kills inside the commit, not only in start-up and fetching
    assert any(
        w.startswith(("WARC linked", "writing the manifest", "after manifest")) for w in landed
    ), landed


@pytest.mark.slow
def test_fifty_kills(harness: CrashHarness) -> None:
    plan = list(MILESTONES) * 4 + ["random"] * 24
    harness.rng.shuffle(plan)
    _run_plan(harness, plan)
    assert len(harness.trials) >= 50


# --- repair's rules, one at a time ---------------------------------------------------------------


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_size)
        for p in sorted(root.rglob("*"))
        if p.name != ".lock"
    }


def test_repair_leaves_a_live_capture_alone(tmp_path: Path, http_server: TestServer) -> None:
    http_server.routes["/slow"] = stall(
        2.0, then=respond(200, article(7), headers=[("Content-Type", "text/html")])
    )
    root = tmp_path / "root"
    Archive(root).capture(http_server.url("/slow?warm"))  # an archive with one capture
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from preserve.cli import main; main()",
            "--root",
            str(root),
            "capture",
            http_server.url("/slow"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tmp = root / "archive" / "tmp"
    deadline = time.monotonic() + 20
    while not any(p.is_dir() for p in tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    spool = next(p for p in tmp.iterdir() if p.is_dir())
    fixed = repair(root)
    assert spool.is_dir(), "repair removed a live capture's spool"
    assert not fixed.actions, fixed.to_json()
    assert any("in progress" in k.reason for k in fixed.kept)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert CAPTURE_LINE.search(out)
    assert not Archive(root).verify(record=False).errors


def _debris(root: Path, capture_id: str) -> dict[str, Path]:
    """Hand-made leftovers of interrupted captures (the crash harness makes real ones)."""
    archive = Archive(root)
    m = archive.manifest(capture_id)
    orphan_id = capture_id[:-10] + "orphanaaaa"
    orphan_warc = root / m.warc.path.replace(capture_id, orphan_id)
    orphan_warc.write_bytes((root / m.warc.path).read_bytes())
    orphan_text = root / archive.store.put(b"text of a capture that never committed").path_rel
    temp_manifest = root / "manifests" / f".tmp-{orphan_id}-x1y2"
    temp_manifest.write_bytes(b'{"half": ')
    spool = root / "archive" / "tmp" / (capture_id[:-10] + "deadaaaaaa")
    spool.mkdir()
    (spool / "capture.warc.gz").write_bytes(b"partial")
    stale_lock = root / "archive" / "tmp" / (capture_id[:-10] + "stalelockk.lock")
    stale_lock.touch()
    store_temp = root / "archive" / "tmp" / "text-abc123"
    store_temp.write_bytes(b"partial text")
    return {
        "warc": orphan_warc,
        "text": orphan_text,
        "manifest_temp": temp_manifest,
        "spool": spool,
        "lock": stale_lock,
        "store_temp": store_temp,
    }


def test_repair_dry_run_plans_and_changes_nothing_then_repair_quarantines(
    tmp_path: Path, http_server: TestServer
) -> None:
    http_server.routes["/a"] = respond(200, article(3), headers=[("Content-Type", "text/html")])
    root = tmp_path / "root"
    result = Archive(root).capture(http_server.url("/a"))
    debris = _debris(root, result.capture_id)
    before = _tree(root)
    report = Archive(root).verify(record=False)
    assert {"W501", "W502", "W503", "W504"} <= {c.code for c in report.codes()}
    assert not report.errors
    planned = repair(root, dry_run=True)
    assert _tree(root) == before, "a dry run changed the archive"
    done = repair(root)
    assert [(a.kind, a.path) for a in planned.actions] == [(a.kind, a.path) for a in done.actions]
    moved = {a.path: a.destination for a in done.actions if a.kind == "quarantined"}
    rel = {name: str(path.relative_to(root)) for name, path in debris.items()}
    assert set(moved) == {rel["warc"], rel["text"], rel["manifest_temp"]}
    removed = {a.path for a in done.actions if a.kind == "removed"}
    assert {rel["spool"], rel["lock"], rel["store_temp"]} <= removed
    # quarantined bytes are intact and listed in repair.json
    assert done.quarantine_dir is not None
    record = json.loads((root / done.quarantine_dir / "repair.json").read_text())
    assert {item["path"] for item in record["moved"]} == set(moved)
    original = (root / Archive(root).manifest(result.capture_id).warc.path).read_bytes()
    assert (root / moved[rel["warc"]]).read_bytes() == original
    after = Archive(root).verify(deep=True, record=False)
    assert {c.code for c in after.codes()} <= {"W304"}, after.to_json()  # no key: unsigned log
    assert repair(root).actions == []  # idempotent


def test_unlogged_manifest_without_a_trace_is_kept_unless_asked(
    tmp_path: Path, http_server: TestServer
) -> None:
    http_server.routes["/a"] = respond(200, article(4), headers=[("Content-Type", "text/html")])
    http_server.routes["/b"] = respond(200, article(5), headers=[("Content-Type", "text/html")])
    root, other = tmp_path / "root", tmp_path / "other"
    Archive(root).capture(http_server.url("/a"))
    foreign = Archive(other).capture(http_server.url("/b"))
    m = Archive(other).manifest(foreign.capture_id)
    objects = [ref.path for ref in (m.text, m.comments) if ref is not None]
    for rel in (foreign.manifest_path, foreign.warc_path, *objects):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((other / rel).read_bytes())
    assert "E304" in {c.code for c in Archive(root).verify(record=False).codes()}
    kept = repair(root)
    assert not [a for a in kept.actions if a.kind == "logged"]
    assert any(
        k.path == foreign.manifest_path and "not in the integrity log" in k.reason
        for k in kept.kept
    )
    assert "E304" in {c.code for c in Archive(root).verify(record=False).codes()}
    logged = repair(root, log_unlogged=True)
    assert [(a.kind, a.path) for a in logged.actions] == [("logged", foreign.manifest_path)]
    assert not Archive(root).verify(record=False).errors


def test_repair_quarantines_nothing_when_the_manifests_are_not_known(
    tmp_path: Path, http_server: TestServer
) -> None:
    http_server.routes["/a"] = respond(200, article(6), headers=[("Content-Type", "text/html")])
    root = tmp_path / "root"
    result = Archive(root).capture(http_server.url("/a"))
    os.rename(root / "manifests", tmp_path / "manifests-elsewhere")  # e.g. not mounted
    fixed = repair(root)
    assert not [a for a in fixed.actions if a.kind == "quarantined"], fixed.to_json()
    assert (root / result.warc_path).is_file()
    assert any(k.path == "manifests" for k in fixed.kept)
