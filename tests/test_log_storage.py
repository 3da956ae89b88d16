"""The on-disk append-only log: proofs from stored hashes, reopening, torn tails, damage."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preserve.errors import LogError
from preserve.log import storage
from preserve.log.merkle import (
    consistency_path,
    inclusion_path,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from preserve.log.storage import TransparencyLog

SRC = Path(__file__).resolve().parents[1] / "src"


def ref_range(entries: list[bytes]):  # type: ignore[no-untyped-def]
    hashes = [leaf_hash(e) for e in entries]
    return lambda a, b: root_from_leaf_hashes(hashes[a:b])


def test_open_without_create_fails(tmp_path: Path) -> None:
    with pytest.raises(LogError):
        TransparencyLog.open(tmp_path / "log")


def test_lost_head_is_never_replaced_by_an_empty_log(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with TransparencyLog.open(directory, create=True) as log:
        log.append(b"precious")
    (directory / "head.json").unlink()
    with pytest.raises(LogError):
        TransparencyLog.open(directory, create=True)
    assert (directory / "entries.jsonl").read_bytes() == b"precious\n"


def test_every_root_and_proof_matches_reference(tmp_path: Path) -> None:
    entries = [f"entry {i}".encode() for i in range(45)]
    with TransparencyLog.open(tmp_path / "log", create=True) as log:
        assert log.size == 0
        assert log.root_hash() == root_from_leaf_hashes([])
        for i, e in enumerate(entries):
            assert log.append(e) == i
        rh = ref_range(entries)
        for n in range(len(entries) + 1):
            assert log.root_hash(n) == rh(0, n)
            for i in range(n):
                assert log.inclusion_proof(i, n) == inclusion_path(i, n, rh)
            for m in range(1, n + 1):
                assert log.consistency_proof(m, n) == consistency_path(m, n, rh)
        assert [log.leaf(i) for i in range(log.size)] == entries
        assert log.check() == []


single_lines = st.binary(min_size=1, max_size=20).filter(lambda b: b"\n" not in b)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(single_lines, min_size=1, max_size=9), min_size=1, max_size=8))
def test_batched_appends_and_reopen(tmp_path_factory: pytest.TempPathFactory,
                                    batches: list[list[bytes]]) -> None:  # fmt: skip
    directory = tmp_path_factory.mktemp("log")
    appended: list[bytes] = []
    for batch in batches:
        with TransparencyLog.open(directory, create=True) as log:
            assert log.append_many(batch) == len(appended)
            appended.extend(batch)
            old = log.size - len(batch)
            if old:
                proof = log.consistency_proof(old)
                assert verify_consistency(old, log.size, log.root_hash(old), log.root_hash(), proof)
    with TransparencyLog.open(directory, readonly=True) as log:
        assert log.size == len(appended)
        assert log.root_hash() == ref_range(appended)(0, len(appended))
        assert [e for _, e in log.iter_entries()] == appended
        last = log.size - 1
        assert verify_inclusion(
            leaf_hash(appended[last]), last, log.size, log.inclusion_proof(last), log.root_hash()
        )
        assert log.check() == []


def test_entries_must_be_single_lines(tmp_path: Path) -> None:
    with TransparencyLog.open(tmp_path / "log", create=True) as log:
        with pytest.raises(ValueError):
            log.append(b"two\nlines")
        with pytest.raises(ValueError):
            log.append(b"")
        assert log.size == 0


def test_readonly_log_refuses_appends(tmp_path: Path) -> None:
    TransparencyLog.open(tmp_path / "log", create=True).close()
    with TransparencyLog.open(tmp_path / "log", readonly=True) as log, pytest.raises(LogError):
        log.append(b"x")


def _sizes(directory: Path) -> dict[str, int]:
    return {
        p.relative_to(directory).as_posix(): p.stat().st_size
        for p in directory.rglob("*")
        if p.is_file()
    }


def test_interrupted_append_is_a_torn_tail(tmp_path: Path) -> None:
    """Files written but head not replaced (a crash before commit): reported, then truncated."""
    directory = tmp_path / "log"
    with TransparencyLog.open(directory, create=True) as log:
        log.append_many([b"a", b"b", b"c"])
    saved_head = (directory / "head.json").read_bytes()
    with TransparencyLog.open(directory) as log:
        log.append(b"d")  # writes 4 leaves' worth of tree (a new level 2 node)
    (directory / "head.json").write_bytes(saved_head)  # as if we crashed before the rename
    (directory / ".tmp-head.json-12345").write_bytes(b'{"root": "')
    before = _sizes(directory)
    with TransparencyLog.open(directory, readonly=True) as log:
        assert log.size == 3
        assert any(t.startswith("entries.jsonl") for t in log.torn_tail)
        assert any(t.startswith("tree/02.bin") for t in log.torn_tail)
    assert _sizes(directory) == before  # read-only open changed nothing
    with TransparencyLog.open(directory) as log:
        assert log.torn_tail
        assert log.check() == []
        log.append(b"e")
        assert [e for _, e in log.iter_entries()] == [b"a", b"b", b"c", b"e"]
        assert log.root_hash() == ref_range([b"a", b"b", b"c", b"e"])(0, 4)
    with TransparencyLog.open(directory, readonly=True) as log:
        assert log.torn_tail == []
        assert log.check() == []
    assert not (directory / ".tmp-head.json-12345").exists()


CRASH_CHILD = textwrap.dedent(
    """
    import sys
    from preserve.log.storage import TransparencyLog
    with TransparencyLog.open(sys.argv[1], create=True) as log:
        i = log.size
        print("ready", flush=True)
        while True:
            log.append(("{\\"n\\":%d,\\"pad\\":\\"%s\\"}" % (i, "x" * (i % 97))).encode())
            i += 1
    """
)


@pytest.mark.slow
def test_sigkill_during_appends_never_corrupts(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    inherited = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (inherited, str(SRC)) if p)}
    for delay in (0.15, 0.3, 0.05, 0.4):
        child = subprocess.Popen(
            [sys.executable, "-c", CRASH_CHILD, str(directory)], env=env, stdout=subprocess.PIPE
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"  # the log is open; appends are under way
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        with TransparencyLog.open(directory) as log:  # truncates any torn tail
            assert log.check() == []
            entries = [e for _, e in log.iter_entries()]
        assert entries == [
            (f'{{"n":{i},"pad":"{"x" * (i % 97)}"}}').encode() for i in range(len(entries))
        ]
    assert len(entries) > 0


def test_damage_is_detected(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with TransparencyLog.open(directory, create=True) as log:
        log.append_many([b'{"n":1}', b'{"n":2}', b'{"n":3}'])
    pristine = tmp_path / "pristine"
    shutil.copytree(directory, pristine)

    # an entry edited in place (same length): the stored leaf hash no longer matches
    data = (directory / "entries.jsonl").read_bytes()
    (directory / "entries.jsonl").write_bytes(data.replace(b'{"n":2}', b'{"n":9}'))
    with TransparencyLog.open(directory, readonly=True) as log:
        problems = log.check()
    assert (1, "stored leaf hash does not match the entry") in problems

    # committed data cut short: refuses to open
    shutil.rmtree(directory)
    shutil.copytree(pristine, directory)
    with (directory / "entries.jsonl").open("r+b") as f:
        f.truncate(5)
    with pytest.raises(LogError):
        TransparencyLog.open(directory, readonly=True)

    # a head whose root is not the stored tree's: refuses to open
    shutil.rmtree(directory)
    shutil.copytree(pristine, directory)
    head = (directory / "head.json").read_text()
    (directory / "head.json").write_text(head.replace('"size": 3', '"size": 2'))
    with pytest.raises(LogError):
        TransparencyLog.open(directory, readonly=True)


def test_reads_are_bounded_and_corrupt_index_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "log"
    entries = [f"entry number {i}".encode() * (1 + i % 5) for i in range(300)]
    with TransparencyLog.open(directory, create=True) as log:
        log.append_many(entries)
    monkeypatch.setattr(storage, "MAX_READ", 200)  # forces many small reads
    with TransparencyLog.open(directory, readonly=True) as log:
        assert [e for _, e in log.iter_entries()] == entries
        assert log.check() == []
    index = directory / "entries.idx"
    raw = bytearray(index.read_bytes())
    raw[8 * 10 : 8 * 11] = (1 << 40).to_bytes(8, "big")  # a huge end offset for leaf 10
    index.write_bytes(bytes(raw))
    with TransparencyLog.open(directory, readonly=True) as log:
        problems = log.check()
        assert problems and problems[-1][0] is None
        with pytest.raises(LogError):
            log.leaf(10)
