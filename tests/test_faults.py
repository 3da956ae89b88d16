"""Failing writes, for real: file-size limit, full disk, read-only media, permission denied.

Every case runs ``preserve capture`` in a subprocess whose writes really fail:

* ``RLIMIT_FSIZE`` (SIGXFSZ ignored, so writes fail with EFBIG), sized so the failure lands in
  each commit step in turn: spooling the response, writing the WARC, storing the text, writing
  the manifest;
* a root on a small tmpfs, filled up (ENOSPC) — skipped when ``mount`` is not permitted;
* a read-only bind mount of the root (EROFS) — falls back to ``chattr +i``, else skipped;
* an archive owned by root, written by an unprivileged user (EACCES).

Each must end with one ``preserve: error:`` line, exit status 3 (the archive cannot be
written), nothing committed and nothing left behind (no new manifest; verify finds nothing), and
:func:`~preserve.repair.repair` has nothing to fix. Verify on read-only media still runs.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from preserve import Archive
from preserve.errors import StorageError
from preserve.repair import repair
from servers import TestServer, respond

CLI = [sys.executable, "-c", "from preserve.cli import main; main()"]
NOBODY = 65534  # the archive's owner in the permission test


def _random_words_page(n_words: int, seed: int = 1) -> bytes:
    """HTML whose text barely compresses, so the WARC is about as large as the body."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(5000)]
    text = " ".join(rng.choice(words) for _ in range(n_words))
    return (
        f"<!doctype html><html><head><title>Big</title></head><body><article><p>{text}</p>"
        "</article></body></html>"
    ).encode()


BIG = _random_words_page(15000)  # ~105 KB body, ~106 KB WARC
REPETITIVE = (
    "<!doctype html><html><head><title>Gz</title></head><body><article>"
    + "<p>The same sentence again and again in this article.</p>" * 3000
    + "</article></body></html>"
).encode()  # gzip: ~3.6 KB WARC, ~156 KB text
TINY = (
    b"<!doctype html><html><head><title>Tiny</title></head><body><article>"
    b"<p>A short article with a little text in it for the test.</p></article></body></html>"
)


@pytest.fixture
def pages(http_server: TestServer) -> TestServer:
    html = [("Content-Type", "text/html; charset=utf-8")]
    http_server.routes["/big"] = respond(200, BIG, headers=html)
    http_server.routes["/gz"] = respond(
        200, gzip.compress(REPETITIVE), headers=[*html, ("Content-Encoding", "gzip")]
    )
    http_server.routes["/tiny"] = respond(200, TINY, headers=html)
    return http_server


def _fsize_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _cli(
    root: Path, key: Path | None, *args: str, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    command = [*CLI, "--root", str(root), *(["--key", str(key)] if key else []), *args]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=60, **kwargs
    )  # type: ignore[call-overload, no-any-return]


def _new_archive(root: Path, key: Path, server: TestServer) -> str:
    """An archive with a signing key and one committed capture; returns its id."""
    Archive(root, key=key).init()
    result = _cli(root, key, "capture", server.url("/tiny"))
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0]


def _manifests(root: Path) -> set[str]:
    return {p.name for p in (root / "manifests").glob("*.json")}


def _assert_failed_cleanly(result: subprocess.CompletedProcess[str], expect: str) -> None:
    assert result.returncode == 3, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("preserve: error: "), lines
    assert expect in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def _assert_nothing_half_committed(root: Path, key: Path, before: set[str]) -> None:
    assert _manifests(root) == before, "a failed capture left a manifest"
    report = Archive(root, key=key).verify(record=False)
    # a failed capture cleans up after itself: not even debris is left
    assert not report.findings, [f.to_json() for f in report.findings]
    fixed = repair(root, key=key)
    assert fixed.ok and not fixed.actions, fixed.to_json()
    after = Archive(root, key=key).verify(deep=True, record=False)
    assert not after.findings, [f.to_json() for f in after.findings]


# --- RLIMIT_FSIZE: EFBIG at each commit step --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "limit", "expect"),
    [
        ("/big", 60_000, "cannot spool the response"),
        ("/big", 105_600, "cannot write WARC file"),
        ("/gz", 100_000, "cannot store text object"),
        ("/tiny", 4_000, "cannot write manifest"),
    ],
    ids=["spool", "warc", "text", "manifest"],
)
def test_file_size_limit_fails_each_step_cleanly(
    tmp_path: Path, pages: TestServer, path: str, limit: int, expect: str
) -> None:
    root, key = tmp_path / "root", tmp_path / "archive.key"
    _new_archive(root, key, pages)
    before = _manifests(root)
    result = _cli(root, key, "capture", pages.url(path), preexec_fn=_fsize_limit(limit))
    _assert_failed_cleanly(result, expect)
    assert "File too large" in result.stderr
    _assert_nothing_half_committed(root, key, before)


# --- a full disk (tmpfs) ------------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        check=False,
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` to ENOSPC, then free ``leave`` bytes again; returns the filler file."""
    filler = disk / "filler"
    block = b"\0" * 4096
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, block):
                pass
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


@pytest.mark.parametrize(
    ("leave", "expect"),
    [(16 * 1024, "cannot spool the response"), (160 * 1024, "cannot write WARC file")],
    ids=["spool", "warc"],
)
def test_disk_full_fails_cleanly_and_verify_still_runs(
    tmp_path: Path, pages: TestServer, leave: int, expect: str
) -> None:
    key = tmp_path / "archive.key"
    with _tmpfs(tmp_path / "disk", "2m") as disk:
        root = disk / "root"
        _new_archive(root, key, pages)
        before = _manifests(root)
        filler = _fill(disk, leave)
        result = _cli(root, key, "capture", pages.url("/big"))
        _assert_failed_cleanly(result, expect)
        assert "No space left on device" in result.stderr
        # verify on the full disk: the audit runs; it may not be able to record itself
        audit = _cli(root, key, "verify", "--json")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert json.loads(audit.stdout)["errors"] == 0
        filler.unlink()
        _assert_nothing_half_committed(root, key, before)


# --- read-only media ------------------------------------------------------------------------------


@contextlib.contextmanager
def _read_only_view(root: Path, where: Path) -> Iterator[Path]:
    """``root`` seen read-only: a read-only bind mount, else immutable directories."""
    where.mkdir()
    bound = subprocess.run(
        ["mount", "--bind", str(root), str(where)], check=False, capture_output=True
    )
    if bound.returncode == 0:
        ro = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(where)], check=False, capture_output=True
        )
        if ro.returncode == 0:
            try:
                yield where
            finally:
                subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
            return
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
    directories = [str(p) for p in [root, *root.rglob("*")] if p.is_dir() and not p.is_symlink()]
    files = [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    locked = subprocess.run(
        ["chattr", "+i", *directories, *files], check=False, capture_output=True, text=True
    )
    if locked.returncode != 0:
        subprocess.run(["chattr", "-i", *directories, *files], check=False, capture_output=True)
        pytest.skip(
            "neither a read-only bind mount nor chattr +i is available: " + locked.stderr.strip()
        )
    try:
        yield root
    finally:
        subprocess.run(["chattr", "-i", *directories, *files], check=False, capture_output=True)


def test_read_only_archive_refuses_capture_and_still_verifies(
    tmp_path: Path, pages: TestServer
) -> None:
    root, key = tmp_path / "root", tmp_path / "archive.key"
    _new_archive(root, key, pages)
    before = _manifests(root)
    with _read_only_view(root, tmp_path / "ro") as view:
        result = _cli(view, key, "capture", pages.url("/tiny"))
        _assert_failed_cleanly(result, "cannot")
        assert (
            "Read-only file system" in result.stderr or "Operation not permitted" in result.stderr
        )
        audit = _cli(view, key, "verify", "--json")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        summary = json.loads(audit.stdout)
        assert summary["errors"] == 0 and summary["stats"]["manifests_checked"] == 1
        assert summary["recorded"] is False
        deep = _cli(view, key, "verify", "--deep")
        assert deep.returncode == 0 and "intact" in deep.stdout, deep.stdout + deep.stderr
        with pytest.raises(StorageError):
            repair(view, key=key)
        planned = repair(view, key=key, dry_run=True)  # a dry run only reads
        assert planned.ok and not planned.actions, planned.to_json()
    _assert_nothing_half_committed(root, key, before)


# --- permission denied --------------------------------------------------------------------------

# Root bypasses permission bits through these capabilities; without them (and with the
# archive owned by someone else) writes fail with EACCES as for any other user.
_DROP_DAC = "--bounding-set=-dac_override,-dac_read_search,-fowner,-chown"


def test_permission_denied_fails_cleanly_and_verify_reads(
    tmp_path: Path, pages: TestServer
) -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a capture without permission overrides")
    root, key = tmp_path / "root", tmp_path / "archive.key"
    _new_archive(root, key, pages)
    before = _manifests(root)
    owner = os.stat(root)
    for path in [root, *root.rglob("*")]:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    try:
        without_override = [setpriv, _DROP_DAC, *CLI, "--root", str(root)]
        result = subprocess.run(
            [*without_override, "capture", pages.url("/tiny")],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        _assert_failed_cleanly(result, "Permission denied")
        audit = subprocess.run(
            [*without_override, "verify", "--json"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
        summary = json.loads(audit.stdout)
        assert summary["errors"] == 0 and summary["recorded"] is False
    finally:
        for path in [root, *root.rglob("*")]:
            os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
    _assert_nothing_half_committed(root, key, before)
