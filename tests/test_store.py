"""Tests for preserve.storage.text_store: a contract suite run against the disk and memory stores,
plus disk-only checks (fan-out, atomicity, damage left untouched)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

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
