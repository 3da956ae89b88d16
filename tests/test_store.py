"""Tests for preserve.storage.text_store: a contract suite run against the disk and memory stores,
plus disk-only checks (fan-out, atomicity, damage left untouched)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest

from preserve.errors import NotFoundError, StorageError, UnsafePathError
from preserve.storage.layout import ArchiveLayout
from preserve.storage.text_store import (
    MAX_OBJECT_BYTES,
    MemoryTextStore,
    TextStore,
    TextStoreProtocol,
)


@pytest.fixture(params=["disk", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TextStoreProtocol]:
    if request.param == "disk":
        yield TextStore(ArchiveLayout(tmp_path))
    else:
        yield MemoryTextStore()


# --- the contract --------------------------------------------------------------------------


def test_put_get_roundtrip(store: TextStoreProtocol) -> None:
    data = "Ein Text über Beweise.\n".encode()
    obj = store.put(data)
    assert obj.blake3 == blake3.blake3(data).hexdigest()
    assert obj.size == len(data)
    assert obj.path_rel == f"archive/text/{obj.blake3[:2]}/{obj.blake3[2:4]}/{obj.blake3}"
    assert store.get(obj.blake3) == data
    assert store.contains(obj.blake3)
    assert store.verify(obj.blake3)


def test_put_is_idempotent(store: TextStoreProtocol) -> None:
    first = store.put(b"same")
    second = store.put(b"same")
    assert first == second
    assert list(store.iter_ids()) == [first.blake3]


def test_empty_object(store: TextStoreProtocol) -> None:
    obj = store.put(b"")
    assert store.get(obj.blake3) == b""


def test_iter_ids_sorted(store: TextStoreProtocol) -> None:
    ids = [store.put(f"object {i}".encode()).blake3 for i in range(20)]
    assert list(store.iter_ids()) == sorted(ids)


def test_missing_object(store: TextStoreProtocol) -> None:
    absent = "0" * 64
    assert not store.contains(absent)
    with pytest.raises(NotFoundError):
        store.get(absent)
    with pytest.raises(NotFoundError):
        store.verify(absent)


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "AB" * 32, "ab" * 31, ""])
def test_invalid_ids_never_become_paths(store: TextStoreProtocol, bad_id: str) -> None:
    assert not store.contains(bad_id)
    with pytest.raises(UnsafePathError):
        store.get(bad_id)


def test_memory_store_detects_damage() -> None:
    store = MemoryTextStore()
    obj = store.put(b"original")
    store.corrupt(obj.blake3, b"damaged")
    assert not store.verify(obj.blake3)
    with pytest.raises(StorageError):
        store.put(b"original")


# --- disk specifics ------------------------------------------------------------------------


def test_disk_layout_readonly_and_no_debris(tmp_path: Path) -> None:
    layout = ArchiveLayout(tmp_path)
    obj = TextStore(layout).put(b"hello")
    path = tmp_path / obj.path_rel
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert list(layout.tmp_dir.iterdir()) == []


def test_disk_damage_detected_and_left_untouched(tmp_path: Path) -> None:
    store = TextStore(ArchiveLayout(tmp_path))
    obj = store.put(b"the original words")
    path = store.path(obj.blake3)
    path.chmod(0o644)
    path.write_bytes(b"the altered words!")
    assert not store.verify(obj.blake3)
    with pytest.raises(StorageError, match="does not match its name"):
        store.put(b"the original words")
    assert path.read_bytes() == b"the altered words!"  # evidence kept
    assert list(store.layout.tmp_dir.iterdir()) == []


def test_disk_iter_ids_skips_strays(tmp_path: Path) -> None:
    store = TextStore(ArchiveLayout(tmp_path))
    good = store.put(b"good").blake3
    misplaced = store.layout.text_dir / "00" / "00" / good
    misplaced.parent.mkdir(parents=True)
    misplaced.write_bytes(b"good")
    (store.layout.text_dir / "README").write_text("stray")
    os.symlink(store.path(good), store.layout.text_dir / good[:2] / good[2:4] / ("f" * 64))
    assert list(store.iter_ids()) == [good]


def test_disk_open_streams(tmp_path: Path) -> None:
    store = TextStore(ArchiveLayout(tmp_path))
    data = os.urandom(3 * 1024 * 1024)
    obj = store.put(data)
    with store.open(obj.blake3) as f:
        assert f.read(10) == data[:10]
    assert store.digests(obj.blake3).sha256 == obj.sha256


def test_disk_put_reports_storage_failure(tmp_path: Path) -> None:
    layout = ArchiveLayout(tmp_path)
    layout.archive_dir.mkdir()
    layout.tmp_dir.write_bytes(b"a file where archive/tmp/ should be")
    with pytest.raises(StorageError):
        TextStore(layout).put(b"x")


def test_disk_refuses_an_object_larger_than_any_text_can_be(tmp_path: Path) -> None:
    """verify reports a larger file from its size alone, so the store never writes one."""
    store = TextStore(ArchiveLayout(tmp_path))
    with pytest.raises(StorageError, match="limit"):
        store.put(bytes(MAX_OBJECT_BYTES + 1))
    assert not list(store.iter_ids())


def test_disk_refuses_symlinked_fanout_leaving_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    store = TextStore(ArchiveLayout(root))
    data = b"would land outside"
    hex_id = blake3.blake3(data).hexdigest()
    store.layout.text_dir.mkdir(parents=True)
    os.symlink(outside, store.layout.text_dir / hex_id[:2])
    with pytest.raises(UnsafePathError):
        store.put(data)
    with pytest.raises(UnsafePathError):
        store.get(hex_id)
    assert not store.contains(hex_id)
    assert list(outside.iterdir()) == []


def test_disk_refuses_symlinked_object(tmp_path: Path) -> None:
    store = TextStore(ArchiveLayout(tmp_path))
    real = store.put(b"real")
    fake_id = blake3.blake3(b"fake").hexdigest()
    fake = store.layout.text_path_for(fake_id)
    fake.parent.mkdir(parents=True)
    os.symlink(store.path(real.blake3), fake)
    with pytest.raises(StorageError):
        store.get(fake_id)
    with pytest.raises(StorageError):
        store.put(b"fake")


def test_disk_concurrent_puts_of_same_bytes(tmp_path: Path) -> None:
    store = TextStore(ArchiveLayout(tmp_path))
    data = os.urandom(256 * 1024)
    results: list[object] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            results.append(store.put(data))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert len(list(store.iter_ids())) == 1 and store.get(store.put(data).blake3) == data
    assert list(store.layout.tmp_dir.iterdir()) == []


def test_disk_path_is_what_resolve_inside_gives(tmp_path: Path) -> None:
    """The store finds an object's directory with a few lstat calls; the answer is always
    resolve_inside's: fan-out absent or present, the root reached through a symlink, a
    fan-out directory that is a symlink inside the root, or one leading out (refused)."""
    from preserve.storage.layout import TEXT_DIR, resolve_inside  # noqa: PLC0415

    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    store = TextStore(ArchiveLayout(tmp_path / "link"))
    stored = store.put(b"present")
    absent = blake3.blake3(b"absent").hexdigest()
    half = stored.blake3[:4] + "0" * 60  # its first fan-out level exists, not its second

    def expected(hex_id: str) -> Path:
        rel = store.layout.text_rel_for(hex_id).rsplit("/", 1)[0]
        return resolve_inside(store.layout.root, rel, under=TEXT_DIR) / hex_id

    for hex_id in (stored.blake3, absent, half):
        assert store.path(hex_id) == expected(hex_id)
        assert str(store.path(hex_id)).startswith(str(real))
    inside = real / "archive" / "elsewhere"
    inside.mkdir()
    other = blake3.blake3(b"other").hexdigest()
    os.symlink(inside, store.layout.text_dir / other[:2])
    assert store.path(other) == expected(other) == inside / other[2:4] / other
    outside = tmp_path / "outside"
    outside.mkdir()
    third = next(h for h in (blake3.blake3(bytes([n])).hexdigest() for n in range(256))
                 if h[:2] not in (other[:2], stored.blake3[:2]))
    os.symlink(outside, store.layout.text_dir / third[:2])
    with pytest.raises(UnsafePathError):
        store.path(third)


def test_disk_put_writes_an_unnamed_file_or_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects are written to an O_TMPFILE file linked into place (no temp name, nothing in
    archive/tmp); where the system offers none, or it cannot be linked, a named temp file is
    used as before. Either way the object is complete, read-only, and a second put of the
    same bytes creates nothing."""
    from preserve.safe_io import Durability  # noqa: PLC0415

    layout = ArchiveLayout(tmp_path)
    layout.ensure_dirs()
    store = TextStore(layout)
    made: list[str] = []
    real_mkstemp = tempfile.mkstemp

    def counting_mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        made.append(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", counting_mkstemp)
    stored, created = store.put_deferred(b"unnamed", durability=Durability(tmp_path))
    assert created and (tmp_path / stored.path_rel).read_bytes() == b"unnamed"
    assert stat.S_IMODE((tmp_path / stored.path_rel).stat().st_mode) == 0o444
    assert made == [] if hasattr(os, "O_TMPFILE") else len(made) == 1
    assert store.put_deferred(b"unnamed", durability=Durability(tmp_path)) == (stored, False)

    real_open, real_link = os.open, os.link

    def no_tmpfile(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise OSError(errno.EOPNOTSUPP, "no O_TMPFILE here")
        return real_open(path, flags, *args, **kwargs)

    def no_proc_link(src: Any, dst: Any, **kwargs: Any) -> None:
        if str(src).startswith("/proc/self/fd/"):
            raise FileNotFoundError(errno.ENOENT, "no /proc")
        real_link(src, dst, **kwargs)

    for name, fake in (("open", no_tmpfile), ("link", no_proc_link)):
        monkeypatch.setattr(os, name, fake)
        made.clear()
        data = f"fallback {name}".encode()
        stored, created = store.put_deferred(data, durability=Durability(tmp_path))
        assert created and (tmp_path / stored.path_rel).read_bytes() == data
        assert len(made) == 1 and not Path(made[0]).exists()
        monkeypatch.undo()
        monkeypatch.setattr(tempfile, "mkstemp", counting_mkstemp)
    assert list(layout.tmp_dir.iterdir()) == []
    assert store.put(b"synced").size == 6
