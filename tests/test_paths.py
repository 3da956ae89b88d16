"""Tests for preserve.storage.layout: layout, capture ids, digests, safe path resolution."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preserve.errors import UnsafePathError
from preserve.storage.layout import (
    ArchiveLayout,
    InsideResolver,
    check_relative,
    is_capture_id,
    is_hex_digest,
    new_capture_id,
    require_hex_digest,
    resolve_inside,
)

HEX = "ab" * 32


def test_new_capture_id_is_valid_and_uses_utc() -> None:
    moment = datetime(2026, 11, 21, 23, 30, 5, tzinfo=timezone(timedelta(hours=-5)))
    cid = new_capture_id(moment)
    assert is_capture_id(cid)
    assert cid.startswith("20261122T043005Z-")


def test_new_capture_ids_differ_and_sort_by_time() -> None:
    early = new_capture_id(datetime(2026, 1, 1, tzinfo=UTC))
    late = new_capture_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert early < late
    assert len({new_capture_id(datetime(2026, 1, 1, tzinfo=UTC)) for _ in range(50)}) == 50


def test_new_capture_id_refuses_naive_time() -> None:
    with pytest.raises(ValueError):
        new_capture_id(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "value",
    ["20261121T164100Z-abcdefgh23", "20240229T000000Z-zzzzzzzzzz"],
)
def test_is_capture_id_accepts(value: str) -> None:
    assert is_capture_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "20261121T164100Z-abcdefgh2",  # short
        "20261121T164100Z-ABCDEFGH23",  # upper case
        "20261121T164100Z-abcdefgh18",  # 1 and 8 are not base32
        "20261321T164100Z-abcdefgh23",  # month 13
        "20230229T000000Z-abcdefgh23",  # not a leap year
        "../etc/passwd",
        "",
        None,
        12,
    ],
)
def test_is_capture_id_rejects(value: object) -> None:
    assert not is_capture_id(value)


def test_digest_validation() -> None:
    assert is_hex_digest(HEX)
    for bad in ("AB" * 32, "ab" * 31, "ab" * 33, "../" + "a" * 61, "g" * 64, None):
        assert not is_hex_digest(bad)
        with pytest.raises(UnsafePathError):
            require_hex_digest(bad)


def test_layout_paths(tmp_path: Path) -> None:
    layout = ArchiveLayout(tmp_path)
    cid = "20261121T164100Z-abcdefgh23"
    started = datetime(2026, 11, 21, 16, 41, tzinfo=UTC)
    assert layout.warc_path_for(cid, started) == (
        tmp_path / "archive/warc/2026/11" / f"{cid}.warc.gz"
    )
    assert layout.text_path_for(HEX) == tmp_path / "archive/text/ab/ab" / HEX
    assert layout.text_rel_for(HEX) == f"archive/text/ab/ab/{HEX}"
    assert layout.manifest_path_for(cid) == tmp_path / "manifests" / f"{cid}.json"
    assert layout.lock_path == tmp_path / "archive/.lock"
    assert layout.tmp_dir == tmp_path / "archive/tmp"
    assert layout.log_dir == tmp_path / "manifests/log"
    with pytest.raises(UnsafePathError):
        layout.text_path_for("../../x")
    with pytest.raises(UnsafePathError):
        layout.manifest_path_for("../evil")


def test_ensure_dirs_creates_layout(tmp_path: Path) -> None:
    layout = ArchiveLayout(tmp_path / "new-root")
    layout.ensure_dirs()
    for directory in (layout.warc_dir, layout.text_dir, layout.tmp_dir, layout.log_dir):
        assert directory.is_dir()


@pytest.mark.parametrize(
    "bad",
    [
        "/etc/passwd",
        "../outside",
        "archive/../../outside",
        "archive/./text",
        "archive//text",
        "archive\\text",
        "archive/te\x00xt",
        "archive/te\nxt",
        "C:/Windows",
        "c:relative",
        "archive/file:stream",
        "",
        "archive/text/",
    ],
)
def test_check_relative_rejects(bad: str) -> None:
    with pytest.raises(UnsafePathError):
        check_relative(bad)


def test_check_relative_under() -> None:
    assert check_relative("archive/text/x", under="archive") == "archive/text/x"
    for bad in ("archive", "manifests/x.json", "archived/x"):
        with pytest.raises(UnsafePathError):
            check_relative(bad, under="archive")


def test_resolve_inside_plain_and_missing(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    assert resolve_inside(tmp_path, "archive/none/yet") == (
        tmp_path.resolve() / "archive/none/yet"
    )


def test_resolve_inside_rejects_symlink_leaving_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "archive").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("x")
    os.symlink(outside, root / "archive/link")
    os.symlink(outside / "secret", root / "archive/filelink")
    with pytest.raises(UnsafePathError):
        resolve_inside(root, "archive/link/secret")
    with pytest.raises(UnsafePathError):
        resolve_inside(root, "archive/filelink")


def test_resolve_inside_allows_symlink_within_root(tmp_path: Path) -> None:
    (tmp_path / "archive/real").mkdir(parents=True)
    os.symlink(tmp_path / "archive/real", tmp_path / "archive/alias")
    assert resolve_inside(tmp_path, "archive/alias/f") == tmp_path.resolve() / "archive/real/f"


def test_resolve_inside_rejects_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    os.symlink(tmp_path / "archive/b", tmp_path / "archive/a")
    os.symlink(tmp_path / "archive/a", tmp_path / "archive/b")
    with pytest.raises(UnsafePathError):
        resolve_inside(tmp_path, "archive/a/x")


@given(st.text(max_size=40))
def test_resolve_inside_never_escapes(relative: str) -> None:
    root = Path("/nonexistent-preserve-root")
    try:
        resolved = resolve_inside(root, relative)
    except UnsafePathError:
        return
    assert resolved.is_relative_to(root)
    assert ".." not in resolved.parts


def test_the_resolver_answers_as_resolve_inside_even_when_directories_are_swapped(
        tmp_path: Path) -> None:
    """``InsideResolver`` (what verify uses: a directory resolved in full once, then checked by
    its identity) gives what ``resolve_inside`` gives, also after a directory, or one above
    it, is swapped for a symlink out of the root between two calls, and for a last
    component that is a symlink."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    for base in (root, outside):
        (base / "archive/warc/2026/12").mkdir(parents=True)
        (base / "archive/warc/2026/12/a.warc.gz").write_bytes(b"x")
        (base / "archive/warc/2026/12/b.warc.gz").write_bytes(b"x")
    resolver = InsideResolver(root)

    def both(rel: str) -> Path | str:
        answers = []
        for resolve in (lambda r: resolver(r, under="archive"),
                        lambda r: resolve_inside(root, r, under="archive")):
            try:
                answers.append(str(resolve(rel)))
            except UnsafePathError:
                answers.append("unsafe")
        assert answers[0] == answers[1], (rel, answers)
        return answers[0]

    a, b = "archive/warc/2026/12/a.warc.gz", "archive/warc/2026/12/b.warc.gz"
    assert both(a) == str(root.resolve() / a) and both(b) == str(root.resolve() / b)
    month = root / "archive/warc/2026/12"
    month.rename(root / "moved")
    month.symlink_to(outside / "archive/warc/2026/12")  # the directory itself swapped
    assert both(a) == both(b) == "unsafe"
    month.unlink()
    (root / "moved").rename(month)
    assert both(a) == str(root.resolve() / a)
    year = root / "archive/warc/2026"
    year.rename(root / "moved-year")
    year.symlink_to(outside / "archive/warc/2026")  # a directory above it swapped
    assert both(a) == both(b) == "unsafe"
    year.unlink()
    (root / "moved-year").rename(year)
    (month / "a.warc.gz").unlink()
    (month / "a.warc.gz").symlink_to(outside / a)  # the last component: out of the root
    (month / "b.warc.gz").unlink()
    (month / "b.warc.gz").symlink_to(root / "moved-b")  # and one inside it
    (root / "moved-b").write_bytes(b"x")
    assert both(a) == "unsafe"
    assert both(b) == str(root.resolve() / "moved-b")
    for bad in ("archive/../etc/passwd", "/etc/passwd", "archive/warc//x", "manifests/x"):
        assert both(bad) == "unsafe"
