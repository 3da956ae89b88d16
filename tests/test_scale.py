"""Beyond one machine: an archive on a real S3 server (moto, Object Lock) and bulk work on a
real Dask LocalCluster of 2 worker processes (one cluster for the module)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from measure import peak_rss
from preserve.errors import StorageError
from s3server import S3Server, need, s3_server  # noqa: F401  (fixture)
from servers import TestServer, respond, stall

HTML = (b"<html><head><title>T%d</title></head><body><article><p>"
        + b"Words of evidence kept for later. " * 30 + b"</p></article></body></html>")


def page(i: int) -> Any:
    return respond(200, HTML % i, headers=[("Content-Type", "text/html")])


@pytest.fixture(scope="module")
def web() -> Iterator[TestServer]:
    with TestServer() as server:
        for i in range(8):
            server.routes[f"/p{i}"] = page(i)
        server.routes["/slow"] = stall(4.0, page(99))
        yield server


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    need("distributed")
    from preserve.distributed import connect

    client = connect(None, n_workers=2, threads_per_worker=1, processes=True,
                     dashboard_address=None)
    try:
        yield client
    finally:
        client.close()
        client.cluster.close()


def remote(s3: S3Server, prefix: str = "ev") -> Any:
    from preserve.remote.archive import RemoteArchive
    from preserve.remote.store import ObjectStore

    url = f"s3://{s3.new_bucket()}/{prefix}"
    archive = RemoteArchive(url, store=ObjectStore(url, retention_days=1))
    archive.init()
    return archive


def codes(report: Any) -> set[str]:
    return {f.code.code for f in report.findings}


def test_tiles_are_the_local_tree(s3_server: S3Server, tmp_path: Path) -> None:
    from preserve.log.storage import TransparencyLog
    from preserve.remote.store import ObjectStore
    from preserve.remote.tiles import TiledLog, tile_index_path

    assert tile_index_path(1234067) == "x001/x234/067" and tile_index_path(5) == "005"
    store = ObjectStore(f"s3://{s3_server.new_bucket()}/t")
    tiles = TiledLog.open(store, create=True)
    local = TransparencyLog.open(tmp_path / "log", create=True)
    n = 0
    for k in (1, 3, 252, 1, 300):
        batch = [json.dumps({"i": n + i}).encode() for i in range(k)]
        tiles.append_many(batch)
        local.append_many(batch)
        n += k
    reopened = TiledLog.open(store, readonly=True)
    for size in (1, 4, 255, 256, 257, n):
        assert reopened.root_hash(size) == local.root_hash(size)
        assert reopened.consistency_proof(size) == local.consistency_proof(size)
    for index in (0, 255, 256, n - 1):
        assert reopened.inclusion_proof(index) == local.inclusion_proof(index)
        assert reopened.leaf(index) == local.leaf(index)
    assert reopened.check() == []


def test_object_lock_refuses_overwrite_and_delete(s3_server: S3Server, web: TestServer) -> None:
    archive = remote(s3_server)
    result = archive.capture(web.url("/p1"))
    key = archive.store.key(result.warc_path)
    client = s3_server.client()
    head = client.head_object(Bucket=archive.store.bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(FileExistsError):  # preserve's own writes are create-only
        archive.store.put_new(result.warc_path, b"rewritten", seal=True)
    with pytest.raises(Exception, match="AccessDenied"):  # the sealed version stays
        client.delete_object(Bucket=archive.store.bucket, Key=key, VersionId=head["VersionId"])
    with pytest.raises(FileExistsError):  # the commit point is never replaced
        archive.store.put_new(f"manifests/{result.capture_id}.json", b"{}", seal=True)
    # someone with write access can still add a newer version: verify sees it
    client.put_object(Bucket=archive.store.bucket, Key=key, Body=b"forged")
    assert {"E202", "E203", "E204", "E206"} & codes(archive.verify(record=False))
    original = client.get_object(Bucket=archive.store.bucket, Key=key,
                                 VersionId=head["VersionId"])["Body"].read()
    assert len(original) == head["ContentLength"]


def test_remote_capture_verify_log_and_proof_shape(s3_server: S3Server, web: TestServer) -> None:
    archive = remote(s3_server)
    first = archive.capture(web.url("/p2"))
    second = archive.capture(web.url("/p3"))
    assert first.signed and second.signed
    report = archive.verify(deep=True)
    assert report.ok and not report.findings, report.findings
    assert archive.last_audit.signed is not None
    assert [c.capture_id for c in archive.captures()] == [first.capture_id, second.capture_id]
    rows = list(archive.history_rows())
    assert [r["type"] for r in rows] == ["capture", "capture", "audit"]
    checkpoint = archive.store.get("manifests/log/checkpoint", 4096).decode()
    from preserve.log.note import verify_checkpoint

    assert verify_checkpoint(checkpoint, archive.place.read_verifier()).size == 3


def test_lease_refuses_a_second_committer(s3_server: S3Server) -> None:
    from preserve.errors import LockTimeoutError
    from preserve.remote.lease import LEASE, Lease
    from preserve.remote.store import ObjectStore

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/l")
    with Lease(store, seconds=30), \
            pytest.raises(LockTimeoutError, match="another committer holds the lease"):
        Lease(store).acquire()
    with Lease(store, seconds=0.01):  # an expired lease is taken over (its keep-alive cannot
        time.sleep(0.05)  # renew it every 3 ms for long: it runs out, as a stalled one does)
        _take_when_expired(store, within=3)
    # as is one left by a killed holder (nobody renews it)
    store.put_replace(LEASE, json.dumps({"holder": "killed:1:x", "host": "killed", "pid": 1,
                                         "expires": time.time() - 1}).encode(), etag=None)
    with Lease(store) as lease:
        assert json.loads(store.get(LEASE, 4096))["holder"] == lease.holder
    assert not store.exists(LEASE)


def test_a_lease_or_head_nested_deep_is_unreadable_not_an_internal_error(
        s3_server: S3Server) -> None:
    """A lease (or a log head) of four thousand ``[`` fits the 4 KB read bound: json.loads
    raised RecursionError, and every command on the root was an internal error (exit 5).
    The lease is unreadable, so it is taken over; the head is not a log head."""
    from preserve.errors import LogError
    from preserve.remote.lease import LEASE, Lease
    from preserve.remote.meanwhile import Meanwhile
    from preserve.remote.store import ObjectStore
    from preserve.remote.tiles import _parse_head

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/n")
    store.put_replace(LEASE, b"[" * 4000, etag=None)
    assert Meanwhile._holder(types.SimpleNamespace(store=store)) is None  # type: ignore[arg-type]
    with Lease(store, wait=30) as lease:
        assert json.loads(store.get(LEASE, 4096))["holder"] == lease.holder
    with pytest.raises(LogError, match="not a log head"):
        _parse_head(b"[" * 4000, "head.json")


@pytest.mark.parametrize("root", ["s3:", "S3:", "s3://evid/x?versionId=1", "s3://evid/a#b"])
def test_a_mistyped_store_root_is_refused_not_made_a_local_directory(
        tmp_path: Path, root: str) -> None:
    """``--root s3:`` made a local directory named ``s3:``; a ``?`` in the prefix put objects
    under one name and read them under another (S3 libraries read a version query)."""
    done = subprocess.run([sys.executable, "-c", "from preserve.cli import main; main()",
                           "--root", root, "init"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 3 and "give s3://bucket" in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("days", ["inf", "1e400", "1e308", "36501"])
def test_a_retention_past_any_date_is_refused(days: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from preserve.remote.store import RETENTION_ENV, ObjectStore

    monkeypatch.setenv(RETENTION_ENV, days)
    with pytest.raises(StorageError, match="positive number of days"):
        ObjectStore("s3://evid/r")


@pytest.mark.parametrize("expires", ["1e400", "NaN", "1e300", "\"soon\""])
def test_a_forged_lease_expiry_is_taken_over(s3_server: S3Server, expires: str) -> None:
    """A lease planted with an expiry no committer writes (overflowing, not a number, ages
    ahead): capture, repair and checkpoint crashed (exit 5, ``int too large to convert to
    float``) or waited for ever; verify crashed waiting for its holder. It is taken over."""
    from preserve.remote.lease import LEASE, Lease
    from preserve.remote.meanwhile import Meanwhile
    from preserve.remote.store import ObjectStore

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/l")
    planted = '{"holder": "attacker:1:x", "host": "attacker", "pid": 1, "expires": ' \
        + expires + "}"
    store.put_replace(LEASE, planted.encode(), etag=None)
    assert Meanwhile._holder(types.SimpleNamespace(store=store)) is None  # type: ignore[arg-type]
    started = time.monotonic()
    with Lease(store, wait=30) as lease:
        assert json.loads(store.get(LEASE, 4096))["holder"] == lease.holder
    assert time.monotonic() - started < 10


def test_an_object_larger_than_one_network_read_is_read_whole(s3_server: S3Server) -> None:
    """``get`` took one read of the streaming body, which gives what has arrived: a 5 MB
    object came back as 128,000-650,000 bytes, and verify called intact manifests changed."""
    from preserve.remote.store import ObjectStore

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/big")
    data = os.urandom(5_000_000)
    store.put_replace("blob", data, etag=None)
    for _ in range(3):
        assert store.get("blob", 6_000_000) == data
        assert store.get_etag("blob", 6_000_000)[0] == data
    with pytest.raises(StorageError, match="larger than"):
        store.get("blob", 4_000_000)


def test_an_unreachable_endpoint_is_one_line_and_exit_3(tmp_path: Path) -> None:
    """botocore's own errors (no endpoint listening) were "internal error", exit 5."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_MAX_ATTEMPTS": "1",
           "PRESERVE_CONFIG_HOME": str(tmp_path)}
    code = "from preserve.cli import main; main(['--root', 's3://b/ev', 'list'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    line, = done.stderr.strip().splitlines()
    assert "the object store failed" in line and "Traceback" not in done.stderr


# --- the lease is kept while its holder works, and a holder that lost it stops ---------------


def _lease_threads() -> list[Any]:
    """The keep-alive threads of the leases this process holds."""
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("preserve-lease-")]


def _versions(s3: S3Server, bucket: str) -> set[tuple[str, str]]:
    """Every version and delete marker in ``bucket`` (what was ever written to it)."""
    listing = s3.client().list_object_versions(Bucket=bucket)
    return {(v["Key"], v["VersionId"]) for kind in ("Versions", "DeleteMarkers")
            for v in listing.get(kind, [])}


def _after(real: Any, action: Any) -> Any:
    """``real`` (a function) that runs ``action()`` after it, the first time it is called."""
    ran: list[Any] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not ran:
            ran.append(action())
        return result

    return hooked


def test_a_lease_is_kept_while_its_holder_works(s3_server: S3Server, web: TestServer,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit that took longer than its lease's lifetime (a checkpoint's verify of a large
    archive, the copy of a large WARC file, here 2.7 lifetimes of a 1.5 s lease) held it only
    that long: another committer then took it over as expired and both wrote at once. The
    holder now renews it while it works: every other attempt to take it is refused."""
    import threading

    from preserve.errors import LockTimeoutError
    from preserve.remote.archive import RemoteArchive
    from preserve.remote.lease import Lease
    from preserve.remote.store import ObjectStore

    archive = remote(s3_server)
    capture_id, prepared = _prepared_in(tmp_path / "spool", web.url("/p1"))
    staged = archive.stage(prepared)
    build = RemoteArchive._build

    def slow_build(self: Any, *args: Any) -> Any:
        time.sleep(4.0)
        return build(self, *args)

    monkeypatch.setattr(RemoteArchive, "_build", slow_build)
    taken: list[float] = []
    refused: list[float] = []
    stop = threading.Event()

    def other_committer() -> None:
        store = ObjectStore(archive.url)
        while not stop.is_set():
            try:
                with Lease(store, seconds=1.5):
                    taken.append(time.monotonic())
            except LockTimeoutError:
                refused.append(time.monotonic())
            stop.wait(0.2)

    with Lease(archive.store, seconds=1.5) as lease:
        other = threading.Thread(target=other_committer)
        other.start()
        try:
            outcome = archive.commit([staged], sign=True, lease=lease)
        finally:
            stop.set()
            other.join()
        assert not taken, "another committer took the lease while it was held"
        assert len(refused) >= 10 and refused[-1] - refused[0] > 3.5
        lease.check()
    assert outcome.signed is not None, outcome.not_signed
    assert [c.capture_id for c in archive.captures()] == [capture_id]


#: the commit step after which another process takes the lease over, and what stops then
STOLEN_AFTER = {
    "warc": "its WARC file copied into place: its text object is not written",
    "record": "its commit record written: its manifest (the commit point) is not",
    "manifest": "its manifest written: its leaf is not (a partial commit; repair logs it)",
}


@pytest.mark.parametrize("step", sorted(STOLEN_AFTER))
def test_a_committer_that_lost_its_lease_writes_nothing_more(
        s3_server: S3Server, web: TestServer, monkeypatch: pytest.MonkeyPatch,
        step: str) -> None:
    """A holder whose lease another process took over went on committing (the lease was
    never renewed, so a change was never seen): two committers wrote at once. Now the
    keep-alive finds the lease changed, and the holder stops before its next write
    (STOLEN_AFTER) with one line naming the new holder: nothing written after that."""
    from preserve.commit import PartialCommitError
    from preserve.errors import LockTimeoutError
    from preserve.remote import lease as lease_mod

    monkeypatch.setattr(lease_mod, "LEASE_SECONDS", 2.0)
    archive = remote(s3_server)
    store, bucket = archive.store, archive.store.bucket
    thief = {"holder": "elsewhere:1:thief", "host": "elsewhere", "pid": 1}
    seen: list[set[tuple[str, str]]] = []

    def take_over() -> None:  # as another process that found the lease expired would
        s3_server.client().put_object(
            Bucket=bucket, Key=store.key(lease_mod.LEASE),
            Body=json.dumps({**thief, "expires": time.time() + 60}).encode())
        deadline = time.monotonic() + 10
        while _lease_threads() and time.monotonic() < deadline:  # until the holder sees it
            time.sleep(0.05)
        seen.append(_versions(s3_server, bucket))

    if step == "warc":
        monkeypatch.setattr(store, "copy_new", _after(store.copy_new, take_over))
    elif step == "record":
        monkeypatch.setattr(archive.place, "write_record",
                            _after(archive.place.write_record, take_over))
    else:
        put_new = store.put_new

        def put(rel: str, *args: Any, **kwargs: Any) -> None:
            put_new(rel, *args, **kwargs)
            if rel.startswith("manifests/") and rel.count("/") == 1:
                take_over()

        monkeypatch.setattr(store, "put_new", put)
    error = PartialCommitError if step == "manifest" else LockTimeoutError
    with pytest.raises(error, match=r"lost the committer lease \S+lock/lease.json \(another "
                       r"committer took it over: elsewhere:1:thief\); stopped before writing "
                       r"(archive/text|manifests/)") as raised:
        archive.capture(web.url("/p2"))
    assert "\n" not in str(raised.value)
    assert seen and _versions(s3_server, bucket) == seen[0], "written after the lease was lost"
    assert json.loads(store.get(lease_mod.LEASE, 4096))["holder"] == thief["holder"]
    assert not _lease_threads()
    assert len(archive.store.list("manifests/log/journal")) == (step != "warc")
    if step == "manifest":  # the other process is done: repair completes the commit
        store.delete(lease_mod.LEASE)
        monkeypatch.undo()
        assert any(a.startswith("log ") for a in archive.repair())
        assert len(archive.captures()) == 1


def test_the_lease_keep_alive_stops_at_release(s3_server: S3Server,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The keep-alive renews the lease (a third of its lifetime apart) only while it is held:
    a daemon thread, gone when the ``with`` block ends, and the lease object with it."""
    from preserve.errors import LockTimeoutError
    from preserve.remote.lease import LEASE, Lease
    from preserve.remote.store import ObjectStore

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/k")
    writes: list[float] = []
    put = store.put_replace

    def counted(rel: str, *args: Any, **kwargs: Any) -> Any:
        if rel == LEASE:
            writes.append(time.monotonic())
        return put(rel, *args, **kwargs)

    monkeypatch.setattr(store, "put_replace", counted)
    assert not store.exists(LEASE)  # a first request sets the client up: slow, not timed
    with Lease(store, seconds=0.9) as lease:
        threads = _lease_threads()
        time.sleep(1.6)
        assert len(writes) >= 4, "the lease was not renewed while held"  # taken, renewed
        assert store.exists(LEASE)
        lease.check()
    released = time.monotonic()
    assert len(threads) == 1 and threads[0].daemon and not threads[0].is_alive()
    assert not _lease_threads() and not store.exists(LEASE)
    assert lease.renewals == len(writes) - 1
    time.sleep(0.8)
    assert max(writes) < released and not store.exists(LEASE)
    with pytest.raises(LockTimeoutError, match="is not held"):
        lease.check()


def _take_when_expired(store: Any, *, within: float) -> None:
    """Take the lease of ``store``'s archive as soon as it has run out, within ``within`` s."""
    from preserve.errors import LockTimeoutError
    from preserve.remote.lease import Lease

    deadline = time.monotonic() + within
    while True:
        try:
            with Lease(store):
                return
        except LockTimeoutError:
            assert time.monotonic() < deadline, "the lease was never taken over"
            time.sleep(0.1)


def test_release_does_not_wait_for_a_renewal_that_hangs(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A renewal stuck in a store that stopped answering held the end of the ``with`` block
    (and the command) for as long as the store hung: release waits a tenth of the lifetime
    for it, then returns, leaving the lease (which the renewal may still change) to run
    out; it is then taken over as expired."""
    from preserve.remote.lease import LEASE, Lease
    from preserve.remote.store import ObjectStore

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/h")
    other = ObjectStore(store.url)
    unblock = threading.Event()
    put = store.put_replace

    def hanging(rel: str, data: bytes, **kwargs: Any) -> Any:
        if rel == LEASE and kwargs["etag"] is not None:
            unblock.wait(30)
        return put(rel, data, **kwargs)

    monkeypatch.setattr(store, "put_replace", hanging)
    assert not store.exists(LEASE) and not other.exists(LEASE)  # clients set up: not timed
    try:
        with Lease(store, seconds=3.0):
            time.sleep(1.3)  # the first renewal (after 1 s) is now stuck
            leaving = time.monotonic()
        assert time.monotonic() - leaving < 1.5  # about 0.3 s, not the 30 s the store hangs
        assert store.exists(LEASE)
    finally:
        unblock.set()
    _take_when_expired(other, within=6)


def test_release_never_deletes_a_lease_taken_over_meanwhile(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Release read the lease, compared its ETag, then deleted it: a takeover landing between
    the two (an expiring lease, a holder whose clock runs ahead) was deleted, and a third
    committer could then take the lease while the second worked. The delete is now
    conditional on the version the holder wrote."""
    from preserve.remote.lease import LEASE, Lease
    from preserve.remote.store import ObjectStore

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/t")
    other = ObjectStore(store.url)
    taken = json.dumps({"holder": "other:2:x", "host": "other", "pid": 2,
                        "expires": time.time() + 120}).encode()
    delete = store.delete

    def takeover_first(rel: str, **kwargs: Any) -> None:
        if rel == LEASE:
            other.put_mutable(LEASE, taken)  # another committer takes it over just now
        delete(rel, **kwargs)

    monkeypatch.setattr(store, "delete", takeover_first)
    with Lease(store, seconds=30):
        pass
    assert other.get(LEASE, 4096) == taken


def test_a_lease_outlives_a_failed_renewal_but_not_its_expiry(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A renewal the store fails is retried: a later one within the lifetime keeps the
    lease. With none succeeding, the holder counts it lost once it runs out (never later)
    and stops; the lease, not deleted then, is taken over as expired."""
    from preserve.errors import LockTimeoutError, StorageError
    from preserve.remote.lease import LEASE, Lease
    from preserve.remote.store import ObjectStore

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/f")
    other = ObjectStore(store.url)
    failing = [0]
    put = store.put_replace

    def flaky(rel: str, data: bytes, **kwargs: Any) -> Any:
        if rel == LEASE and kwargs["etag"] is not None and failing[0]:
            failing[0] -= 1
            raise StorageError("cannot write the lease: 503 Slow Down")
        return put(rel, data, **kwargs)

    monkeypatch.setattr(store, "put_replace", flaky)
    assert not store.exists(LEASE) and not other.exists(LEASE)  # clients set up: not timed
    with Lease(store, seconds=1.2) as lease:
        failing[0] = 2  # the first renewal and its first retry
        time.sleep(2.0)
        with pytest.raises(LockTimeoutError, match="another committer holds"):
            Lease(other).acquire()
        lease.check()
        assert not failing[0] and lease.renewals >= 2
        failing[0] = 1000  # the store refuses every renewal from now on
        start = time.monotonic()
        while lease.lost is None and time.monotonic() < start + 3:
            time.sleep(0.02)
        assert 0.4 < time.monotonic() - start < 1.3
        with pytest.raises(LockTimeoutError, match=r"ran out before a renewal succeeded; "
                           r"the last renewal failed: cannot write the lease: 503"):
            lease.check("writing manifests/x.json")
        assert not _lease_threads()
    assert store.exists(LEASE)
    _take_when_expired(other, within=3)


def test_killed_committer_is_completed_by_repair(s3_server: S3Server, web: TestServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from preserve.commit import PartialCommitError
    from preserve.remote import tiles

    archive = remote(s3_server)
    archive.capture(web.url("/p4"))

    def dies(self: Any, entries: Any) -> int:
        raise OSError("killed after the commit point")

    monkeypatch.setattr(tiles.TiledLog, "append_many", dies)
    with pytest.raises(PartialCommitError):
        archive.capture(web.url("/p5"))
    monkeypatch.undo()
    assert "W305" in codes(archive.verify(record=False))
    done = archive.repair()
    assert any(a.startswith("log ") for a in done)
    report = archive.verify()
    assert report.ok and not report.errors, report.findings


def test_dask_capture_and_verify_local_and_s3(cluster: Any, s3_server: S3Server,
                                              web: TestServer, tmp_path: Path) -> None:
    from preserve.archive import Archive
    from preserve.distributed import capture_many_dask, reextract_many_dask, verify_dask

    urls = [web.url(f"/p{i}") for i in range(4)] + ["http://127.0.0.1:1/refused"]
    for target in (remote(s3_server), Archive(tmp_path / "a")):
        if isinstance(target, Archive):
            target.init()
        results = list(capture_many_dask(target, urls, None, cluster))
        assert [u for u, _ in results] == urls  # committed in input order
        ids = [getattr(o, "capture_id", None) for _u, o in results]
        assert all(ids[:4]) and ids[4] is None
        report = verify_dask(target, cluster, deep=True)
        assert report.ok and report.stats.manifests_checked == 4, report.findings
        rows = reextract_many_dask(target, cluster)
        assert len(rows) == 4 and not any(r["changed"] for r in rows)
    local = Archive(tmp_path / "a").verify(deep=True, record=False)
    assert [f.code for f in local.findings] == [f.code for f in report.findings]


def test_dask_batch_ending_in_a_refused_url_is_still_checkpointed(cluster: Any, web: TestServer,
                                                                  tmp_path: Path) -> None:
    """A group committed because the next URL failed (not because it was full) still counts
    towards the closing checkpoint: no W302 "not covered by a signed checkpoint" after it."""
    from preserve.archive import Archive
    from preserve.distributed import capture_many_dask

    archive = Archive(tmp_path / "a")
    archive.init()
    results = list(capture_many_dask(archive, [web.url("/p0"), "ftp://127.0.0.1/no"], None,
                                     cluster))
    assert getattr(results[0][1], "capture_id", None) and results[1][0] == "ftp://127.0.0.1/no"
    report = archive.verify(record=False)
    assert report.ok and not report.findings, report.findings


def test_killed_worker_loses_nothing(cluster: Any, s3_server: S3Server, web: TestServer) -> None:
    from preserve.distributed import capture_many_dask

    archive = remote(s3_server)
    pids = cluster.run(os.getpid)
    results: list[Any] = []
    urls = [web.url("/slow"), web.url("/p6")]
    import threading

    runner = threading.Thread(target=lambda: results.extend(
        capture_many_dask(archive, urls, None, cluster)))
    runner.start()
    deadline = time.monotonic() + 20
    victim = None
    while victim is None and time.monotonic() < deadline:  # the worker fetching /slow
        busy = cluster.processing()
        victim = next((w for w, keys in busy.items() if any("prepare_remote" in str(k)
                                                            for k in keys)), None)
        time.sleep(0.1)
    assert victim is not None
    import signal

    os.kill(pids[victim], signal.SIGKILL)  # the worker process dies mid-task
    runner.join(120)
    assert len(results) == 2
    assert all(hasattr(o, "capture_id") for _u, o in results), results
    assert len(pids) == 2
    report = archive.verify(record=False)
    assert not report.errors, report.findings


# --- the command line on an s3:// root ------------------------------------------------------


@pytest.fixture(scope="module")
def s3_cli(s3_server: S3Server, web: TestServer, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, Any]:
    """An s3:// root made by the CLI (init, two captures of one URL)."""
    tmp = tmp_path_factory.mktemp("s3cli")
    base = ["--root", f"s3://{s3_server.new_bucket()}/cli", "--key", str(tmp / "k.key")]
    assert cli(base, "init").exit_code == 0
    ids = []
    for _ in range(2):
        done = cli(base, "capture", "--http", web.url("/p7"))
        assert done.exit_code == 0, done.stderr
        ids.append(done.stdout.split()[0])
    return {"base": base, "ids": ids, "tmp": tmp, "url": web.url("/p7")}


def cli(base: list[str], *args: str) -> Any:
    from click.testing import CliRunner

    from preserve.cli import main

    return CliRunner().invoke(main, [*base, *args])


SUPPORTED = {
    "list": [], "show": ["{0}"], "history": ["{url}"], "diff": ["{0}", "{1}"], "log": [],
    "checkpoint": [], "verify": ["--no-record", "--commit-wait", "5"], "repair": ["--dry-run"],
    "init": [], "prove": ["{0}", "-o", "{tmp}/p.json"],
    "export": ["--all", "--wacz", "{tmp}/x.wacz"], "report": ["{0}", "-o", "{tmp}/r.html"],
}
UNSUPPORTED = {
    "adopt": ["{0}", "--reason", "test"], "reset-head": ["--yes"],
}


def _args(template: list[str], s3_cli: dict[str, Any]) -> list[str]:
    return [a.format(*s3_cli["ids"], url=s3_cli["url"], tmp=s3_cli["tmp"]) for a in template]


@pytest.mark.parametrize("command", sorted(SUPPORTED))
def test_cli_commands_on_s3(s3_cli: dict[str, Any], command: str) -> None:
    done = cli(s3_cli["base"], command, *_args(SUPPORTED[command], s3_cli))
    assert done.exit_code == 0 and done.exception is None, (done.stdout, done.stderr)
    if command == "history":
        assert done.stdout.splitlines()[-1] == f"2 capture(s) of {s3_cli['url']}"
        typed = s3_cli["url"].replace("http://", "HTTP://") + "#a-fragment"  # as captured
        done = cli(s3_cli["base"], "history", typed)
        assert done.stdout.splitlines()[-1] == f"2 capture(s) of {typed}", done.stdout
    if command == "diff":
        assert "identical payload" in done.stdout, done.stdout
    if command == "prove":  # the bundle holds offline, with the archive's key
        from preserve.log import load_signer

        key = load_signer(s3_cli["tmp"] / "k.key").verifier.to_text()
        checked = cli([], "check-proof", f"{s3_cli['tmp']}/p.json", "--trusted-key", key)
        assert checked.exit_code == 0 and "proof holds" in checked.stdout, checked.stdout


def _trusted(s3_cli: dict[str, Any]) -> str:
    from preserve.log import load_signer

    return str(load_signer(s3_cli["tmp"] / "k.key").verifier.to_text())


def _members(wacz: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wacz) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_export_from_s3_is_the_package_a_local_root_gives(s3_cli: dict[str, Any],
                                                          tmp_path: Path) -> None:
    """export --wacz and --bagit from an s3:// root: each package holds under check-export
    with the archive's key; the bag's data/ is an archive root that verifies, and a WACZ
    exported from it (a local root with the same captures and log) holds the same WARC
    files, manifests, texts, index and pages, byte for byte."""
    key = _trusted(s3_cli)
    wacz, bag = tmp_path / "s3.wacz", tmp_path / "bag"
    for kind, out in (("--wacz", wacz), ("--bagit", bag)):
        signed = ["--sign"] if kind == "--wacz" else []
        done = cli(s3_cli["base"], "export", *s3_cli["ids"], kind, str(out), *signed)
        assert done.exit_code == 0 and done.exception is None, done.stderr
        assert "2 capture(s)" in done.stdout, done.stdout
        checked = cli([], "check-export", str(out), "--trusted-key", key)
        assert checked.exit_code == 0 and " holds: 2 capture(s)" in checked.stdout, \
            checked.stdout
    # the WACZ signing key is named after the archive's log key, as for a local root
    from preserve.exchange.signing import KEY_SUFFIX
    from preserve.log import default_key_path, load_signer

    name = load_signer(s3_cli["tmp"] / "k.key").verifier.name
    log_key = default_key_path(name)
    assert log_key.with_name(log_key.name.removesuffix(".key") + KEY_SUFFIX).is_file()
    audited = cli(["--root", str(bag / "data")], "verify", "--no-record")
    assert audited.exit_code == 0, audited.stdout
    local = tmp_path / "local.wacz"
    done = cli(["--root", str(bag / "data")], "export", *s3_cli["ids"], "--wacz", str(local))
    assert done.exit_code == 0, done.stderr
    remote_members, local_members = _members(wacz), _members(local)
    assert sorted(remote_members) == sorted(local_members)
    for name, data in remote_members.items():
        if name.startswith(("archive/", "manifests/", "text/", "indexes/", "pages/", "log/")):
            assert data == local_members[name], name
    assert sum(n.startswith("archive/") for n in remote_members) == 2
    assert sum(n.startswith("proofs/") for n in remote_members) == 2


def test_report_from_s3(s3_cli: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    done = cli(s3_cli["base"], "report", s3_cli["ids"][0][:20], "-o", str(out), "--json",
               "--trusted-key", _trusted(s3_cli))
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)["result"]
    assert result["capture_id"] == s3_cli["ids"][0]
    assert result["proof_holds"] is True and result["files_match"] is True
    page = out.read_text()
    assert "The proof holds" in page and "MISMATCH" not in page
    assert "Words of evidence kept for later." in page


def test_a_tampered_warc_object_fails_the_export_and_leaves_nothing(
        s3_server: S3Server, web: TestServer, tmp_path: Path) -> None:
    """A newer version of a sealed WARC file put by someone with write access: export (WACZ,
    bag) stops with one line and exit 3, as for a damaged local file, and writes nothing;
    the report says MISMATCH."""
    archive = remote(s3_server)
    ids = [archive.capture(web.url(f"/p{i}")).capture_id for i in (4, 5)]
    m = archive.manifest(ids[1])
    client = s3_server.client()
    key = archive.store.key(m.warc.path)
    data = bytearray(client.get_object(Bucket=archive.store.bucket, Key=key)["Body"].read())
    data[-10] ^= 1
    client.put_object(Bucket=archive.store.bucket, Key=key, Body=bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    base = ["--root", archive.url]
    for kind, name in (("--wacz", "d.wacz"), ("--bagit", "bag")):
        done = cli(base, "export", "--all", kind, str(out / name))
        assert done.exit_code == 3, (done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1, lines
        assert "does not match its manifest" in lines[0] and "preserve verify" in lines[0]
        assert m.warc.path in lines[0] and lines[0].startswith("preserve: error: s3://")
        assert list(out.iterdir()) == []
    done = cli(base, "report", ids[1], "-o", str(out / "r.html"), "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["result"]["files_match"] is False
    assert "MISMATCH" in (out / "r.html").read_text()
    ok = cli(base, "export", ids[0], "--wacz", str(out / "ok.wacz"))  # the intact one
    assert ok.exit_code == 0, ok.stderr
    # a manifest replaced after it was logged: export exit 3, report exit 1, as locally
    rel = f"manifests/{ids[0]}.json"
    client.put_object(Bucket=archive.store.bucket, Key=archive.store.key(rel),
                      Body=archive.store.get(f"manifests/{ids[1]}.json", 1 << 20))
    done = cli(base, "export", ids[0], "--bagit", str(out / "bag2"))
    assert done.exit_code == 3 and "differs from its integrity-log entry" in done.stderr
    done = cli(base, "report", ids[0], "-o", str(out / "r2.html"))
    assert done.exit_code == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ok.wacz", "r.html"]


def _incompressible(size: int) -> Any:
    block = os.urandom(1 << 20)

    def handler(request: Any, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n"
                     + f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            conn.sendall(piece)
            sent += len(piece)

    return handler


@pytest.mark.slow
def test_export_from_s3_memory_does_not_grow_with_the_warc(s3_server: S3Server,
                                                           tmp_path: Path) -> None:
    """Exporting a 64 MiB capture from an s3:// root peaks within a few MiB of exporting a
    1 KiB one (objects are streamed, never read whole; 4 MiB more for a WACZ and 8 MiB for a
    bag measured, the same for 160 MiB)."""
    size = 64 * 2**20
    archive = remote(s3_server)
    with TestServer() as server:
        server.routes["/big"] = _incompressible(size)
        server.routes["/small"] = respond(200, b"<p>small</p>",
                                          headers=[("Content-Type", "text/html")])
        big = archive.capture(server.url("/big")).capture_id
        small = archive.capture(server.url("/small")).capture_id
    assert archive.manifest(big).warc.size > size
    peaks = {}
    for name, capture_id in (("small", small), ("big", big)):
        for kind in ("wacz", "bagit"):
            out = tmp_path / f"{name}.{kind}"
            done = peak_rss([str(Path(sys.executable).with_name("preserve")), "--root",
                             archive.url, "export", capture_id, f"--{kind}", str(out)])
            assert done.returncode == 0, done.stderr
            peaks[name, kind] = done.peak_kib
    with zipfile.ZipFile(tmp_path / "big.wacz") as z:
        assert z.getinfo(f"archive/{big}.warc.gz").file_size == archive.manifest(big).warc.size
    for kind in ("wacz", "bagit"):
        growth = peaks["big", kind] - peaks["small", kind]
        assert growth < 16 * 1024, f"{kind}: peak RSS grew by {growth} KiB for a 64 MiB WARC"


@pytest.mark.parametrize("command", sorted(UNSUPPORTED))
def test_cli_unsupported_on_s3_is_one_line(s3_cli: dict[str, Any], command: str) -> None:
    done = cli(s3_cli["base"], command, *_args(UNSUPPORTED[command], s3_cli))
    assert done.exit_code == 2 and isinstance(done.exception, SystemExit), done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"preserve: error: '{command}' is not supported on an "
                               "object-store root yet; on s3:// roots use init, capture")


def test_commit_wait_is_refused_on_a_local_root(tmp_path: Path) -> None:
    """How long verify waits for other processes' commits is an s3:// matter (a local
    verify takes the archive lock): one line, exit 2."""
    done = cli(["--root", str(tmp_path)], "verify", "--commit-wait", "5")
    assert done.exit_code == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line == ("preserve: error: --commit-wait is for s3:// roots (a local verify takes "
                    "the archive lock instead)")


def test_remote_verify_checks_timestamps_and_anchor_age(s3_server: S3Server, web: TestServer,
                                                         tmp_path: Path) -> None:
    from datetime import timedelta

    from preserve.remote.archive import RemoteArchive
    from tsa import running_tsa

    plain = remote(s3_server, "plain")
    plain.capture(web.url("/p1"))
    assert "W307" in codes(plain.verify(record=False, anchor_max_age=timedelta(days=30)))
    with running_tsa(tmp_path / "tsa") as (tsa_url, tsa_dir):
        roots = tsa_dir / "ca.pem"
        report = plain.verify(record=False, tsa_roots=roots)
        assert "E314" in codes(report) and not report.ok
        stamped = remote(s3_server, "stamped")
        stamped = RemoteArchive(stamped.url, store=stamped.store, tsa_url=tsa_url)
        stamped.capture(web.url("/p2"))
        report = stamped.verify(record=False, tsa_roots=roots)
        assert report.ok and "E314" not in codes(report), report.findings
        other = running_tsa(tmp_path / "other")
        with other as (_url, other_dir):  # a token from a TSA that is not trusted
            assert "E314" in codes(stamped.verify(record=False,
                                                  tsa_roots=other_dir / "ca.pem"))


def test_a_remote_verify_never_waits_on_an_anchor_that_is_no_file(s3_server: S3Server,
                                                                 web: TestServer,
                                                                 tmp_path: Path) -> None:
    """``verify --checkpoint FILE`` of an s3:// root read FILE whole with ``read_text``: a
    FIFO hung it for good (and /dev/zero filled the memory). It is read as a local verify
    reads it, bounded and only if it is a regular file: E307 and E309, no wait."""
    archive = remote(s3_server)
    archive.capture(web.url("/p1"))
    fifo = tmp_path / "anchor.txt"
    os.mkfifo(fifo)
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(archive.verify(
        record=False, commit_wait=0, checkpoints=[fifo])), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():  # let the read that waits on the FIFO end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("verify waited on a FIFO given as --checkpoint")
    found = {(f.code.code, f.path) for f in done[0].findings}
    assert {("E307", str(fifo)), ("E309", str(fifo))} <= found, done[0].findings


def test_remote_anchor_age_counts_only_anchors_that_hold(s3_server: S3Server, web: TestServer,
                                                          tmp_path: Path) -> None:
    """As locally: W307 weighs only the off-site checkpoints that verify. A forged anchor
    claiming a later signing time (its signature fails: an error) cannot silence the warning
    that the genuine anchor is too old, and an anchor that fails gives no W307 of its own."""
    from datetime import timedelta

    archive = remote(s3_server)
    archive.capture(web.url("/p7"))
    text = archive.store.get("manifests/log/checkpoint", 4096).decode()
    genuine = tmp_path / "genuine"
    genuine.write_text(text, "utf-8")
    lines = text.split("\n")
    (at,) = [i for i, line in enumerate(lines) if line.startswith("preserve-time ")]
    lines[at] = "preserve-time 2099" + lines[at][len("preserve-time 2026"):]
    forged = tmp_path / "forged"
    forged.write_text("\n".join(lines), "utf-8")

    fresh = archive.verify(record=False, checkpoints=[genuine],
                           anchor_max_age=timedelta(days=30))
    assert fresh.ok and "W307" not in codes(fresh), fresh.findings
    stale = archive.verify(record=False, checkpoints=[genuine, forged],
                           anchor_max_age=timedelta(0))
    assert "W307" in codes(stale) and not stale.ok, stale.findings  # the forged one: an error
    alone = archive.verify(record=False, checkpoints=[forged], anchor_max_age=timedelta(0))
    assert "W307" not in codes(alone) and not alone.ok, alone.findings


def test_remote_checkpoint_and_repair_sign_nothing_over_errors(s3_server: S3Server,
                                                               web: TestServer) -> None:
    """As locally: `checkpoint` (and repair) sign only when verify finds no error in the whole
    archive (here a planted manifest, E304), and say so."""
    from preserve.errors import NotProvedError

    archive = remote(s3_server)
    first = archive.capture(web.url("/p6"))
    document = json.loads(archive.store.get(f"manifests/{first.capture_id}.json", 1 << 20))
    planted = first.capture_id[:-10] + "zzzzzzzzzz"
    document["capture_id"] = planted
    archive.store.put_new(f"manifests/{planted}.json", json.dumps(document).encode(),
                          seal=False)
    names = {i.key for i in archive.store.list("manifests/log/checkpoints")}
    with pytest.raises(NotProvedError, match="E304"):
        archive.checkpoint()
    assert {i.key for i in archive.store.list("manifests/log/checkpoints")} == names
    # repair completes an interrupted commit (it appends the leaf a signed commit record
    # names) but signs nothing while the planted manifest is there
    from preserve.commit import PartialCommitError
    from preserve.remote import tiles

    def dies(self: Any, entries: Any) -> int:
        raise OSError("killed after the commit point")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiles.TiledLog, "append_many", dies)
        with pytest.raises(PartialCommitError):
            archive.capture(web.url("/p8"))
    done = archive.repair()
    assert any(a.startswith("log ") for a in done), done
    assert any(a.startswith("not signed:") and "E304" in a for a in done), done
    assert {i.key for i in archive.store.list("manifests/log/checkpoints")} == names


def test_dask_capture_reads_its_urls_lazily_with_a_bounded_window(cluster: Any, web: TestServer,
                                                                   tmp_path: Path) -> None:
    """At most ``window`` URLs are submitted ahead of the commits (every URL was parsed and
    submitted to the cluster before the first result)."""
    from preserve.archive import Archive
    from preserve.distributed import capture_many_dask
    from preserve.distributed.jobs import GROUP_SIZE

    taken = 0

    def urls() -> Iterator[str]:
        nonlocal taken
        for i in range(10_000):
            taken += 1
            yield web.url(f"/p{i % 8}") if i % 2 else "ftp://127.0.0.1/no"

    archive = Archive(tmp_path / "a")
    archive.init()
    batch = capture_many_dask(archive, urls(), None, cluster, window=4)
    try:
        seen = [next(batch) for _ in range(6)]
        # the results, a group waiting for its commit, and the window: not the 10,000
        assert taken <= 6 + GROUP_SIZE + 4, f"{taken} URLs read for the first 6 results"
    finally:
        batch.close()
    assert [u for u, _o in seen][:2] == ["ftp://127.0.0.1/no", web.url("/p1")]
    assert getattr(seen[1][1], "capture_id", None)
    assert taken <= 6 + GROUP_SIZE + 4


# --- write access to the bucket: what the operator's known head catches --------------------


def _rewrite_remote_log(archive: Any, capture_id: str) -> None:
    """The attacker's rewrite: a manifest edited, its leaf and every tile and the head written
    again as newer versions (plain PUTs, as anyone with write access to the bucket can)."""
    from preserve.hashing import hash_bytes
    from preserve.log.entries import manifest_leaf_for_bytes, parse_entry
    from preserve.remote.store import ObjectStore
    from preserve.remote.tiles import TiledLog

    class Overwriting(ObjectStore):
        def put_new(self, rel: str, data: Any, *, seal: bool, same_ok: Any = None) -> None:
            self.put_mutable(rel, data)

        def put_replace(self, rel: str, data: bytes, *, etag: str | None) -> str | None:
            self.put_mutable(rel, data)
            return None

    store = archive.store
    rel = f"manifests/{capture_id}.json"
    document = json.loads(store.get(rel, 1 << 20))
    document["extraction"]["title"] = "Not what the page said"
    edited = json.dumps(document).encode()
    store.put_mutable(rel, edited)
    with archive.place.open_log() as tiles:
        entries = [data for _i, data in tiles.iter_entries()]
    new_entries = []
    for data in entries:
        entry = parse_entry(data)
        if getattr(entry, "capture_id", None) == capture_id:
            leaf = manifest_leaf_for_bytes(edited, entry.committed)
            assert hash_bytes(edited).sha256 == leaf.sha256
            new_entries.append(leaf.to_bytes())
        else:
            new_entries.append(data)
    attacker = Overwriting(store.url)
    TiledLog(attacker, "manifests/log").append_many(new_entries)


def _strip_remote(archive: Any) -> None:
    """key.pub and every checkpoint deleted (in a versioned bucket: delete markers, which
    Object Lock allows), so the archive looks as if it had never been signed."""
    for info in archive.store.list("manifests/log"):
        name = info.key.rsplit("/", 1)[-1]
        if name == "key.pub" or info.key.startswith("manifests/log/checkpoint"):
            archive.store.delete(info.key)


@pytest.mark.parametrize("attack", ["strip", "rewrite and strip", "key replacement"])
def test_remote_known_head_catches_a_stripped_or_replaced_key(s3_server: S3Server,
                                                              web: TestServer,
                                                              tmp_path: Path,
                                                              attack: str) -> None:
    """As locally (attack matrix rows 'rewrite and strip', 'key replacement'): once this
    operator verified or signed an s3:// archive, its known head names the archive's key, so
    a key.pub deleted or replaced is E313, not a W304 "never signed" archive that verifies;
    and no capture is committed into it."""
    from preserve.errors import NotProvedError
    from preserve.log import generate_key, load_signer
    from preserve.log.note import Checkpoint, sign_checkpoint
    from preserve.remote.archive import RemoteArchive

    archive = remote(s3_server)
    first = archive.capture(web.url("/p1"))
    assert first.signed and archive.verify().ok
    origin = archive.place.read_verifier().name
    if attack != "strip":
        _rewrite_remote_log(archive, first.capture_id)
    _strip_remote(archive)
    if attack == "key replacement":
        path, verifier = generate_key(origin, tmp_path / "attacker.key")
        attacker = load_signer(path)
        archive.store.put_mutable("manifests/log/key.pub", (verifier.to_text() + "\n").encode())
        with archive.place.open_log() as tiles:
            note = sign_checkpoint(Checkpoint(verifier.name, tiles.size, tiles.root_hash()),
                                   attacker)
        archive.store.put_mutable("manifests/log/checkpoint", note.encode())
    report = archive.verify(record=False)
    assert "E313" in codes(report) and not report.ok, report.findings
    fresh = RemoteArchive(archive.url, store=archive.store)
    with pytest.raises(NotProvedError, match="key"):
        fresh.capture(web.url("/p2"))


def _prepared_in(spool: Path, url: str) -> tuple[str, Any]:
    """``(capture id, prepared capture)`` of ``url``, fetched and built in ``spool`` as a
    worker does, not yet staged."""
    from datetime import UTC, datetime

    from preserve.archive import Archive, CaptureOptions
    from preserve.storage.layout import new_capture_id

    now = datetime.now(UTC)
    capture_id = new_capture_id(now)
    spool.mkdir()
    return capture_id, Archive(spool, heads=None).prepare(
        url, CaptureOptions(), capture_id=capture_id, now=now, spool=spool)


@pytest.mark.parametrize("stated", [True, False], ids=["server-checksum", "read-back"])
def test_a_staged_warc_replaced_before_its_commit_is_never_committed(
        s3_server: S3Server, web: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        stated: bool) -> None:
    """A worker's sealed WARC waits in staging/ (unsealed) until the committer copies it into
    place; someone with write access who replaces it meanwhile must not get a manifest, a
    commit record and a checkpoint signed over a WARC file that is not the one the worker
    hashed: the copy's SHA-256 is checked against the manifest's before anything names it."""
    from preserve.errors import StorageError

    archive = remote(s3_server)
    if not stated:  # a server that states no SHA-256 of a copy: the copy is read back
        call = archive.store.fs.call_s3

        def no_checksum(method: str, *args: Any, **kwargs: Any) -> Any:
            response = call(method, *args, **kwargs)
            if method == "copy_object":
                response["CopyObjectResult"].pop("ChecksumSHA256", None)
            return response

        monkeypatch.setattr(archive.store.fs, "call_s3", no_checksum)
    archive.capture(web.url("/p1"))
    signed = {i.key for i in archive.store.list("manifests/log/checkpoints")}
    capture_id, prepared = _prepared_in(tmp_path / "spool", web.url("/p2"))
    staged = archive.stage(prepared)
    original = Path(prepared.warc_tmp).read_bytes()
    forged = original[:100] + bytes([original[100] ^ 1]) + original[101:]
    s3_server.client().put_object(Bucket=archive.store.bucket,
                                  Key=archive.store.key(str(staged.warc_tmp)), Body=forged)
    with pytest.raises(StorageError, match="staged"):
        archive.commit([staged], sign=True)
    assert not archive.store.exists(f"manifests/{capture_id}.json")
    assert not archive.store.list("manifests/log/journal")
    assert {i.key for i in archive.store.list("manifests/log/checkpoints")} == signed
    assert not archive.store.exists(archive.layout.warc_rel_for(capture_id, prepared.started_at))
    report = archive.verify(record=False)
    assert report.ok and not report.errors, report.findings


def test_a_planted_text_object_is_never_named_by_a_commit(s3_server: S3Server, web: TestServer,
                                                          tmp_path: Path) -> None:
    """As the local text store: an object already at a text's content address is used only
    if it holds those bytes. Someone who can predict a page's text (their own page, a known
    one) and plants other bytes under its BLAKE3 name beforehand gets no manifest, commit
    record or checkpoint naming them: the commit is refused, nothing committed."""
    from preserve.errors import StorageError
    from preserve.storage.text_store import object_digests

    archive = remote(s3_server)
    capture_id, prepared = _prepared_in(tmp_path / "spool", web.url("/p3"))
    digests = object_digests(prepared.text)
    assert digests is not None
    planted = archive.layout.text_rel_for(digests.blake3)
    s3_server.client().put_object(Bucket=archive.store.bucket, Key=archive.store.key(planted),
                                  Body=b"not the page's text")
    with pytest.raises(StorageError, match="does not match its name"):
        archive.commit([archive.stage(prepared)], sign=True)
    assert not archive.store.exists(f"manifests/{capture_id}.json")
    assert not archive.store.list("manifests/log/journal")
    assert not archive.store.list("manifests/log/checkpoints")
    # left untouched as evidence: not sealed either
    assert _retention(s3_server, archive.store, planted) == (None, None)


# --- objects already there: sealed before anything names them ------------------------------


def _retention(s3: S3Server, store: Any, rel: str,
               version: str | None = None) -> tuple[str | None, Any]:
    """``(mode, retain-until)`` of a version of ``rel`` (the current one by default), as the
    server states them (moto has no GetObjectRetention: HeadObject gives the same)."""
    extra = {"VersionId": version} if version else {}
    head = s3.client().head_object(Bucket=store.bucket, Key=store.key(rel), **extra)
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")


def _text_address(archive: Any, tmp_path: Path, url: str) -> tuple[str, Any, str]:
    """``(capture id, prepared capture, text object name)`` of ``url`` prepared for
    ``archive`` (the name a planter must use to be reused)."""
    from preserve.storage.text_store import object_digests

    capture_id, prepared = _prepared_in(tmp_path / "spool", url)
    digests = object_digests(prepared.text)
    assert digests is not None
    return capture_id, prepared, archive.layout.text_rel_for(digests.blake3)


def _text_of(prepared: Any) -> bytes:
    text = prepared.text
    return text if isinstance(text, bytes) else Path(text.path).read_bytes()


def _plant(s3: S3Server, store: Any, rel: str, data: bytes, **lock: Any) -> str:
    """An object put by someone with write access to the bucket; its version id."""
    version: str = s3.client().put_object(Bucket=store.bucket, Key=store.key(rel), Body=data,
                                          **lock)["VersionId"]
    return version


@pytest.mark.parametrize("planted_lock", ["none", "compliance-1h", "governance-3d"])
def test_a_planted_text_object_is_sealed_before_it_is_named(
        s3_server: S3Server, web: TestServer, tmp_path: Path, planted_lock: str) -> None:
    """An object planted at a text's content address with the page's exact bytes is used,
    but only once the version checked is retained at least as long as a fresh write (1 day
    here, COMPLIANCE): planted without retention, or with one ending sooner, it would
    otherwise be named by a manifest and then deleted. A weaker mode with a longer retention
    is made COMPLIANCE and keeps its date (retention is only ever extended). Planted under
    older versions with other bytes: the current version is the one checked and sealed."""
    from datetime import UTC, datetime, timedelta


    archive = remote(s3_server)
    capture_id, prepared, rel = _text_address(archive, tmp_path, web.url("/p4"))
    now = datetime.now(UTC)
    lock = {"none": {},
            "compliance-1h": {"ObjectLockMode": "COMPLIANCE",
                              "ObjectLockRetainUntilDate": now + timedelta(hours=1)},
            "governance-3d": {"ObjectLockMode": "GOVERNANCE",
                              "ObjectLockRetainUntilDate": now + timedelta(days=3)},
            }[planted_lock]
    older = _plant(s3_server, archive.store, rel, b"an older version, other bytes")
    version = _plant(s3_server, archive.store, rel, _text_of(prepared), **lock)
    archive.commit([archive.stage(prepared)], sign=True)
    assert archive.store.exists(f"manifests/{capture_id}.json")
    mode, until = _retention(s3_server, archive.store, rel, version)
    assert mode == "COMPLIANCE"
    assert until >= now + timedelta(days=1) - timedelta(seconds=1)
    if planted_lock == "governance-3d":  # its longer date kept, never shortened
        assert until >= now + timedelta(days=3) - timedelta(seconds=1)
    assert _retention(s3_server, archive.store, rel, older) == (None, None)  # not the one named
    with pytest.raises(Exception, match="AccessDenied"):  # what the planter meant to do later
        s3_server.client().delete_object(Bucket=archive.store.bucket,
                                         Key=archive.store.key(rel), VersionId=version)
    report = archive.verify(record=False)
    assert report.ok and not report.errors, report.findings


def test_the_version_checked_is_the_version_sealed(s3_server: S3Server, web: TestServer,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A newer version put between preserve's read of a planted object and its sealing is
    not the one sealed: the retention names the version whose bytes were checked."""
    from datetime import UTC, datetime, timedelta


    archive = remote(s3_server)
    capture_id, prepared, rel = _text_address(archive, tmp_path, web.url("/p5"))
    checked = _plant(s3_server, archive.store, rel, _text_of(prepared))
    newer: list[str] = []
    call = archive.store.fs.call_s3

    def racing(method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "put_object_retention" and kwargs.get("Key") == archive.store.key(rel) \
                and not newer:
            newer.append(_plant(s3_server, archive.store, rel, _text_of(prepared)))
        return call(method, *args, **kwargs)

    monkeypatch.setattr(archive.store.fs, "call_s3", racing)
    now = datetime.now(UTC)
    archive.commit([archive.stage(prepared)], sign=True)
    assert newer and archive.store.exists(f"manifests/{capture_id}.json")
    mode, until = _retention(s3_server, archive.store, rel, checked)
    assert mode == "COMPLIANCE" and until >= now + timedelta(days=1) - timedelta(seconds=1)
    assert _retention(s3_server, archive.store, rel, newer[0]) == (None, None)


def test_a_planted_object_the_store_will_not_seal_is_never_named(
        s3_server: S3Server, web: TestServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When the retention of a planted object cannot be set (the server refuses: a bucket
    without Object Lock, no permission), the commit stops with one line before anything names
    it: no manifest, no commit record, no checkpoint."""

    archive = remote(s3_server)
    capture_id, prepared, rel = _text_address(archive, tmp_path, web.url("/p6"))
    _plant(s3_server, archive.store, rel, _text_of(prepared))
    call = archive.store.fs.call_s3

    def refusing(method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "put_object_retention" and kwargs.get("Key") == archive.store.key(rel):
            raise PermissionError("AccessDenied")
        return call(method, *args, **kwargs)

    monkeypatch.setattr(archive.store.fs, "call_s3", refusing)
    with pytest.raises(StorageError, match="cannot seal the existing object") as caught:
        archive.commit([archive.stage(prepared)], sign=True)
    assert "\n" not in str(caught.value)
    assert not archive.store.exists(f"manifests/{capture_id}.json")
    assert not archive.store.list("manifests/log/journal")
    assert not archive.store.list("manifests/log/checkpoints")


def test_without_a_retention_period_a_planted_object_is_used_as_before(
        s3_server: S3Server, web: TestServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from preserve.remote.archive import RemoteArchive
    from preserve.remote.store import ObjectStore

    url = f"s3://{s3_server.new_bucket()}/ev"
    archive = RemoteArchive(url, store=ObjectStore(url))
    assert archive.store.retention_days is None
    archive.init()
    capture_id, prepared, rel = _text_address(archive, tmp_path, web.url("/p7"))
    version = _plant(s3_server, archive.store, rel, _text_of(prepared))
    calls: list[str] = []
    call = archive.store.fs.call_s3

    def counting(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return call(method, *args, **kwargs)

    monkeypatch.setattr(archive.store.fs, "call_s3", counting)
    archive.commit([archive.stage(prepared)], sign=True)
    assert archive.store.exists(f"manifests/{capture_id}.json")
    assert "put_object_retention" not in calls
    assert _retention(s3_server, archive.store, rel, version) == (None, None)


def test_a_planted_tile_is_sealed_before_it_is_named(s3_server: S3Server) -> None:
    """The tiled log's idempotent writes (``put_new(..., same_ok=)``: an interrupted append
    rolled forward) seal an entry bundle or hash tile already there, as a new one."""
    from datetime import UTC, datetime, timedelta

    from preserve.log.merkle import leaf_hash
    from preserve.remote.store import ObjectStore
    from preserve.remote.tiles import TiledLog, encode_bundle, tile_path

    store = ObjectStore(f"s3://{s3_server.new_bucket()}/t", retention_days=1)
    tiles = TiledLog.open(store, create=True)
    entry = json.dumps({"i": 0}).encode()
    planted = {f"manifests/log/{tile_path('entries', 0, 1)}": encode_bundle([entry]),
               f"manifests/log/{tile_path(0, 0, 1)}": leaf_hash(entry)}
    versions = {rel: _plant(s3_server, store, rel, data) for rel, data in planted.items()}
    now = datetime.now(UTC)
    tiles.append_many([entry])
    for rel, version in versions.items():
        mode, until = _retention(s3_server, store, rel, version)
        assert mode == "COMPLIANCE" and until >= now + timedelta(days=1) - timedelta(seconds=1)
    assert TiledLog.open(store, readonly=True).leaf(0) == entry


@pytest.mark.parametrize("width", ["\u00b2", "003", "300"])
def test_a_partial_tile_name_preserve_never_writes_is_not_read(s3_server: S3Server,
                                                             web: TestServer,
                                                             width: str) -> None:
    """An object planted below an entry bundle's ``.p/`` under a width preserve never writes
    (a superscript two, which ``str.isdigit`` takes and ``int`` refuses; a leading zero; 256
    or more) made every open of the log fail: verify an internal error (ValueError) or E301,
    and no capture could commit. It is no tail of an interrupted append, and is not read;
    verify reports it as an object the log does not consist of (W505)."""
    archive = remote(s3_server)
    archive.capture(web.url("/p1"))
    archive.capture(web.url("/p2"))
    rel = f"manifests/log/tile/entries/000.p/{width}"
    s3_server.client().put_object(Bucket=archive.store.bucket, Key=archive.store.key(rel),
                                  Body=b"\x00\x01x")
    report = archive.verify(record=False, commit_wait=0)
    assert report.ok and codes(report) == {"W505"}, report.findings
    assert archive.capture(web.url("/p3")).signed
    assert archive.verify(record=False, commit_wait=0).ok


def test_remote_repair_is_not_stopped_by_an_object_name_it_cannot_address(
        s3_server: S3Server, web: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """An object planted in staging/ under a name with '..' segments (a plain S3 key, but one
    preserve never sends, since a client or proxy may normalise it into another key) ended
    repair in a StorageError before it removed the other leftovers or signed: it is kept and
    listed instead, and the rest of the repair goes on."""
    import preserve.remote.archive as remote_archive

    monkeypatch.setattr(remote_archive, "STAGING_GRACE", 0.0)  # the leftover is old enough
    archive = remote(s3_server)
    archive.capture(web.url("/p4"))
    client = s3_server.client()
    hostile = f"{archive.store.prefix}/staging/x/../../manifests/planted.json"
    client.put_object(Bucket=archive.store.bucket, Key=hostile, Body=b"x")
    archive.store.put_new("staging/leftover.warc.gz", b"debris", seal=False)
    report = archive.verify(record=False)
    (finding,) = [f for f in report.findings if f.path.startswith("staging/x/")]
    assert "remove it by hand" in finding.message
    done = archive.repair()
    assert "remove staging object staging/leftover.warc.gz" in done, done
    assert any(a.startswith("kept staging/x/../../manifests/planted.json") for a in done), done
    assert not archive.store.exists("staging/leftover.warc.gz")
    assert client.head_object(Bucket=archive.store.bucket, Key=hostile)


def test_a_capture_staged_while_repair_and_verify_run_still_commits(
        s3_server: S3Server, web: TestServer, tmp_path: Path) -> None:
    """A Dask worker's sealed WARC file waits in staging/ for its group's commit. Repair
    removed every staging object, so one run during a batch failed the captures in flight,
    and verify called them debris (W503). Now a staging object written less than an hour
    ago (STAGING_GRACE, by the store's LastModified) is kept and not reported; the capture
    then commits."""
    archive = remote(s3_server)
    capture_id, prepared = _prepared_in(tmp_path / "spool", web.url("/p5"))
    staged = archive.stage(prepared)
    (info,) = archive.store.list("staging")
    assert info.modified is not None and abs(time.time() - info.modified) < 120
    report = archive.verify(record=False)
    assert not [f for f in report.findings if f.code.code == "W503"], report.findings
    done = archive.repair()
    assert any(a.startswith(f"kept {info.key}: staged less than 3600 s ago") for a in done), done
    assert archive.store.exists(info.key)
    archive.commit([staged], sign=True)
    assert archive.store.exists(f"manifests/{capture_id}.json")
    assert not archive.store.list("staging")
    assert archive.verify(record=False).ok


def test_a_remote_verify_that_cannot_record_its_audit_still_reports(
        s3_server: S3Server, web: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recording the audit needs the committer lease; when another committer holds it past
    the wait (or it is lost while recording), the verification done is not lost behind a
    one-line error (exit 3): the report stands, and says why it was not recorded."""
    import preserve.remote.archive as remote_archive
    from preserve.remote.lease import Lease
    from preserve.remote.store import ObjectStore

    archive = remote(s3_server)
    archive.capture(web.url("/p7"))
    monkeypatch.setattr(remote_archive, "Lease",
                        lambda store, **kw: Lease(store, **{**kw, "wait": 0.5}))
    with Lease(ObjectStore(archive.store.url), seconds=30):
        report = archive.verify(record=True)
    assert report.ok and report.stats.manifests_checked == 1, report.findings
    audit = archive.last_audit
    assert audit is not None and not audit.recorded
    assert audit.not_recorded is not None
    assert "recording it failed" in audit.not_recorded and "another committer" in \
        audit.not_recorded, audit.not_recorded


def test_remote_verify_checks_one_version_of_each_manifest(s3_server: S3Server,
                                                           web: TestServer) -> None:
    """Verify reads a manifest to check the files it names, and again to compare it with its
    log leaf. Someone with write access who puts a forged manifest (naming a forged WARC file)
    up for the first read and the genuine bytes back for the second got a verify without an
    error, and a signed 'pass'. The leaf is now compared with the very bytes whose files were
    checked: E306."""
    from preserve.hashing import hash_bytes

    archive = remote(s3_server)
    first = archive.capture(web.url("/p5"))
    store = archive.store
    rel = f"manifests/{first.capture_id}.json"
    genuine = store.get(rel, 1 << 20)
    document = json.loads(genuine)
    forged_warc = store.get(document["warc"]["path"], 1 << 24)
    forged_rel = document["warc"]["path"].replace(first.capture_id, "forged")
    digests = hash_bytes(forged_warc)
    document["warc"].update(path=forged_rel, sha256=digests.sha256, blake3=digests.blake3)
    client = s3_server.client()
    client.put_object(Bucket=store.bucket, Key=store.key(forged_rel), Body=forged_warc)
    forged = json.dumps(document).encode()
    real_fetch = store.open
    served: list[str] = []

    import contextlib

    @contextlib.contextmanager
    def swapping_open(name: str) -> Iterator[Any]:
        if name == rel and not served:  # the attacker's version, for the first read only
            client.put_object(Bucket=store.bucket, Key=store.key(rel), Body=forged)
            with real_fetch(name) as f:
                yield f
            client.put_object(Bucket=store.bucket, Key=store.key(rel), Body=genuine)
            served.append(name)
            return
        with real_fetch(name) as f:
            yield f

    store.open = swapping_open  # type: ignore[method-assign]
    report = archive.verify(record=False)
    assert served == [rel]
    assert "E306" in codes(report) and not report.ok, report.findings


def test_remote_verify_never_reads_a_huge_manifest_object_whole(s3_server: S3Server) -> None:
    """An object in manifests/ larger than any manifest (someone with write access can put
    terabytes there) is mirrored as a sparse file of its size and reported from that size:
    verify read the mirror whole (MemoryError, an internal error) to find what it names."""
    from preserve.remote.store import ObjectInfo

    archive = remote(s3_server)
    rel = "manifests/20260101T000000Z-aaaaaaaaaa.json"
    archive.store.put_new(rel, b"{}", seal=False)
    real = archive.store.info

    def info(name: str) -> ObjectInfo:  # as a 4 TiB object would be listed
        found = real(name)
        return ObjectInfo(found.key, 4 * 2**40, found.etag) if name == rel else found

    archive.store.info = info  # type: ignore[method-assign]
    report = archive.verify(record=False)
    assert {"E101", "E304"} <= codes(report), report.findings


def _hide(s3: S3Server, store: Any, rel: str) -> Any:
    """Hide object ``rel`` behind a delete marker (what a plain DELETE does in a versioned
    bucket); the returned function puts it back (removes the marker)."""
    client = s3.client()
    marker = client.delete_object(Bucket=store.bucket, Key=store.key(rel))["VersionId"]
    return lambda: client.delete_object(Bucket=store.bucket, Key=store.key(rel),
                                        VersionId=marker)


@pytest.mark.parametrize("back", ["after the listing", "before the log audit"])
def test_remote_verify_checks_a_manifest_hidden_from_its_listing(
        s3_server: S3Server, web: TestServer, monkeypatch: pytest.MonkeyPatch,
        back: str) -> None:
    """A manifest hidden behind a delete marker while verify lists manifests/, and put back
    before the log audit, never had its files checked (here a forged WARC version), and no
    error said so. Every leaf of the log as verify found it must have had its files
    checked: the manifest is checked after the listing if it is back (E2xx for the WARC),
    else E305; a capture committed while verify runs is no error."""
    from preserve.remote import verify as remote_verify

    archive = remote(s3_server)
    first = archive.capture(web.url("/p1"))
    store = archive.store
    rel = f"manifests/{first.capture_id}.json"
    s3_server.client().put_object(Bucket=store.bucket, Key=store.key(first.warc_path),
                                  Body=b"forged")
    real_list = remote_verify.list_manifests
    concurrent: list[str] = []

    def hiding_list(found_in: Any, report: Any) -> list[str]:
        restore = _hide(s3_server, store, rel)
        names = real_list(found_in, report)
        concurrent.append(archive.capture(web.url("/p2")).capture_id)  # a commit meanwhile
        if back == "after the listing":
            restore()
        else:
            real_audit = remote_verify.audit_remote_log

            def audit(*args: Any, **kwargs: Any) -> Any:
                restore()
                return real_audit(*args, **kwargs)

            monkeypatch.setattr(remote_verify, "audit_remote_log", audit)
        return names

    monkeypatch.setattr(remote_verify, "list_manifests", hiding_list)
    report = archive.verify(record=False)
    assert concurrent and not report.ok, report.findings
    if back == "after the listing":
        assert {"E202", "E203", "E204", "E206"} & codes(report), report.findings
        assert report.stats.manifests_checked == 1
    else:
        (finding,) = [f for f in report.findings if f.code.code == "E305"]
        assert finding.path == rel and "not checked" in finding.message
    assert not [f for f in report.errors if concurrent[0] in f.path], report.findings


def test_remote_checkpoint_names_and_copy_are_held_as_locally(s3_server: S3Server,
                                                              web: TestServer) -> None:
    """As the local log audit: a ``checkpoint`` copy that is not the newest stored checkpoint
    (here rolled back to an older genuine one) is W303, and repair puts the newest back; a
    stored checkpoint whose name does not give its size is E307; an object nested below
    checkpoints/ is no checkpoint (W505). Any checkpoints/**.txt was taken as a checkpoint,
    under any name, and the copy was only checked as one more checkpoint."""
    archive = remote(s3_server)
    archive.capture(web.url("/p1"))
    archive.capture(web.url("/p2"))
    store = archive.store
    first, newest = archive.place.checkpoint_names()
    older = store.get(first, 4096)
    store.put_mutable("manifests/log/checkpoint", older)
    report = archive.verify(record=False)
    (stale,) = [f for f in report.findings if f.code.code == "W303"]
    assert stale.path == "manifests/log/checkpoint" and "older" in stale.message, stale
    assert any(a.startswith("restore manifests/log/checkpoint from ") for a in
               archive.repair()), "repair did not restore the copy"
    assert store.get("manifests/log/checkpoint", 4096) == store.get(newest, 4096)
    assert "W303" not in codes(archive.verify(record=False))

    directory, name = first.rsplit("/", 1)
    misnamed = f"{directory}/{int(name[:12]) + 7:012d}{name[12:]}"
    store.put_mutable(misnamed, older)
    nested = f"{directory}/x/{newest.rsplit('/', 1)[1]}"
    store.put_mutable(nested, store.get(newest, 4096))
    report = archive.verify(record=False)
    found = {(f.code.code, f.path) for f in report.findings}
    assert {("E307", misnamed), ("W505", nested)} <= found, report.findings
    assert misnamed in archive.place.checkpoint_names()
    assert nested not in archive.place.checkpoint_names()


def test_remote_verify_reports_objects_planted_among_the_logs(s3_server: S3Server,
                                                             web: TestServer) -> None:
    """As the local W505 for the log's directory: an object below manifests/log/ that is no
    part of the tiled log (a stray file, a tile under a name preserve never writes, a record
    under another name) is reported; it went unreported on s3:// roots."""
    archive = remote(s3_server)
    archive.capture(web.url("/p1"))
    assert "W505" not in codes(archive.verify(record=False))
    store = archive.store
    planted = ["manifests/log/notes.txt", "manifests/log/tile/0/000.bak",
               "manifests/log/tile/0/x1/000", "manifests/log/journal/forged.txt",
               "manifests/log/head.json.old"]
    for rel in planted:
        store.put_mutable(rel, b"planted")
    found = {f.path for f in archive.verify(record=False).findings if f.code.code == "W505"}
    assert found == set(planted)


def test_remote_verify_reports_object_names_no_local_file_can_have(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify copies each manifest to a local temporary directory under its object name. A
    key holding a NUL byte (an S3 key may; moto refuses to create one, so the listing is
    faked here) ended verify in a ValueError (a traceback, exit 5), a newline made a local
    file name no manifest has, and a name the local file system refuses (too long) an
    OSError: each is now an E101 finding for that name, and verify goes on."""
    import contextlib
    import io

    from preserve.remote.store import ObjectInfo, ObjectStore
    from preserve.remote.verify import check_remote_manifests

    names = ["manifests/a\x00b.json", "manifests/a\nb.json", f"manifests/{'x' * 300}.json"]

    class Listed:
        """A store holding every object it is asked about (two bytes of JSON)."""

        url = "s3://fake/root"
        addressable = staticmethod(ObjectStore.addressable)

        def info(self, rel: str) -> ObjectInfo:
            return ObjectInfo(rel, 2, None)

        @contextlib.contextmanager
        def open(self, rel: str) -> Iterator[Any]:
            yield io.BytesIO(b"{}")

    checks = check_remote_manifests(Listed(), names)  # type: ignore[arg-type]
    assert [(f.code.code, f.path) for f in checks.findings] == [("E101", n) for n in names]
    assert "NUL" in checks.findings[0].message and "local file" in checks.findings[2].message

    archive = remote(s3_server)
    real = archive.store.list

    def listing(prefix: str) -> list[ObjectInfo]:
        found = real(prefix)
        return found + [ObjectInfo(n, 2, None) for n in names[:2]] if prefix == "manifests" \
            else found

    monkeypatch.setattr(archive.store, "list", listing)
    report = archive.verify(record=False)
    assert {("E101", n) for n in names[:2]} <= {(f.code.code, f.path) for f in report.findings}


def test_remote_reading_commands_hold_manifests_to_their_leaves(s3_server: S3Server,
                                                               web: TestServer) -> None:
    """`list`, `show`, `history` and `diff` of an s3:// root showed whatever manifest object
    was there, so a newer version put by someone with write access (another title and URL)
    was shown as the capture; and enumerating the captures listed manifests/ once per leaf
    (quadratic). Captures come from the log's leaves, each manifest held to its leaf's
    digests: one that differs is listed as 'unverified' (nothing it says is shown), warned
    of, and the command exits 1; show and diff refuse it. No listing of manifests/."""
    archive = remote(s3_server)
    first = archive.capture(web.url("/p3")).capture_id
    second = archive.capture(web.url("/p3")).capture_id
    rel = f"manifests/{first}.json"
    document = json.loads(archive.store.get(rel, 1 << 20))
    document["extraction"]["title"] = "Forged title"
    document["requested_url"] = document["final_url"] = "https://forged.example/"
    s3_server.client().put_object(Bucket=archive.store.bucket, Key=archive.store.key(rel),
                                  Body=json.dumps(document).encode())
    listed: list[str] = []
    real_list = archive.store.list

    def counted(prefix: str) -> Any:
        listed.append(prefix)
        return real_list(prefix)

    archive.store.list = counted  # type: ignore[method-assign]
    rows = {c.capture_id: c for c in archive.captures()}
    assert "manifests" not in listed, listed  # (the log's open looks for a torn tail: O(1))
    assert rows[first].status == "unverified" and "is not the manifest" in rows[first].problem
    assert rows[first].title is None and rows[first].requested_url == ""
    assert rows[second].status == "ok" and rows[second].problem is None

    base = ["--root", archive.url]
    done = cli(base, "list")
    assert done.exit_code == 1, (done.stdout, done.stderr)
    assert "Forged" not in done.stdout and "forged.example" not in done.stdout
    assert "[unverified" in done.stdout and f"{rel} is not the manifest" in done.stderr
    done = cli(base, "list", "--json")
    out = json.loads(done.stdout)
    assert done.exit_code == 1 and out["exit_status"] == 1 and out["warnings"]
    assert {r["capture_id"]: r["status"] for r in out["result"]["captures"]} == {
        first: "unverified", second: "ok"}
    for args in (["show", first], ["diff", first, second]):
        done = cli(base, *args)
        assert done.exit_code == 1 and done.exception is not None, done.stdout
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"preserve: error: {rel} is not the manifest log leaf"), line
    done = cli(base, "history", "https://forged.example/")
    assert done.exit_code == 1 and "Forged" not in done.stdout
    assert done.stdout.splitlines()[-1].endswith("0 capture(s) of https://forged.example/, "
                                                 "1 unverified"), done.stdout
    assert cli(base, "show", second).exit_code == 0


def test_dask_reextraction_holds_manifests_to_their_leaves(cluster: Any, s3_server: S3Server,
                                                           web: TestServer,
                                                           tmp_path: Path) -> None:
    """`reextract_many_dask` took its captures from a listing of manifests/ and re-extracted
    whatever manifest it found there: one rewritten after it was logged (another text hash)
    was reported as a capture whose text changed, and one planted beside them (never logged)
    as a capture. Captures now come from the log's leaves and each manifest is held to its
    leaf: one that is not the leaf's is an error row (``unverified``), never re-extracted or
    counted as changed; a planted one is not a capture. Locally the same; an archive with
    no log has nothing to hold them to (every manifest, as before)."""
    import shutil

    from preserve.archive import Archive
    from preserve.distributed import reextract_many_dask

    local = Archive(tmp_path / "a")
    local.init()
    for target in (remote(s3_server), local):
        first = target.capture(web.url("/p5")).capture_id
        second = target.capture(web.url("/p6")).capture_id
        rel, planted = f"manifests/{first}.json", f"{first[:-10]}zzzzzzzzzz"
        if isinstance(target, Archive):
            path = target.root / rel
            document = json.loads(path.read_bytes())
        else:
            document = json.loads(target.store.get(rel, 1 << 20))
        document["text"]["blake3"] = "0" * 64
        forged = json.dumps(document).encode()
        document["capture_id"] = planted
        plant = json.dumps(document).encode()
        if isinstance(target, Archive):
            path.chmod(0o644)
            path.write_bytes(forged)
            (target.root / "manifests" / f"{planted}.json").write_bytes(plant)
        else:
            client = s3_server.client()
            client.put_object(Bucket=target.store.bucket, Key=target.store.key(rel),
                              Body=forged)
            client.put_object(Bucket=target.store.bucket,
                              Key=target.store.key(f"manifests/{planted}.json"), Body=plant)
        rows = {r["capture_id"]: r for r in reextract_many_dask(target, cluster)}
        assert set(rows) == {first, second}, rows
        bad = rows[first]
        assert bad["unverified"] and not bad["changed"] and "before" not in bad, bad
        assert f"{rel} is not the manifest log leaf" in bad["error"], bad
        assert "error" not in rows[second] and not rows[second]["changed"], rows[second]
    bare = tmp_path / "bare"
    shutil.copytree(local.root, bare, ignore=shutil.ignore_patterns("log"))
    rows = {r["capture_id"]: r for r in reextract_many_dask(Archive(bare), cluster)}
    assert set(rows) == {first, second, planted} and rows[first]["changed"], rows


# --- verify while another process commits a capture into the same bucket -------------------

CLI = [sys.executable, "-c", "from preserve.cli import main; main()"]
#: ``preserve`` paused at one step of its commit: it touches GATE/paused, then waits for
#: GATE/go (argv: GATE STEP, then the command line)
PAUSED_CLI = """
import pathlib, sys, time
from preserve.remote import store, tiles
gate, step = pathlib.Path(sys.argv.pop(1)), sys.argv.pop(1)
done = []

def pause():
    if done:
        return
    done.append(1)
    (gate / "paused").touch()
    deadline = time.monotonic() + 120
    while not (gate / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)

def wrap(cls, name, when):
    real = getattr(cls, name)
    def paused(self, *args, **kwargs):
        if when(*args):
            pause()
        return real(self, *args, **kwargs)
    setattr(cls, name, paused)

if step == "manifest":  # its commit record is written, its manifest not yet
    wrap(store.ObjectStore, "put_new",
         lambda rel, *a: rel.startswith("manifests/") and rel.count("/") == 1)
elif step == "leaves":  # its manifest is written (the commit point), its leaf not yet
    wrap(tiles.TiledLog, "append_many", lambda *a: True)
elif step == "head":  # its leaf's tiles are written, the log head not moved yet
    wrap(tiles.TiledLog, "_write_head", lambda *a: True)
from preserve.cli import main
main()
"""


def _capture_elsewhere(archive: Any, url: str) -> str:
    """``preserve capture --http URL`` into ``archive``'s bucket by a process of its own (as
    the same operator: its keys and known heads); returns the capture id."""
    done = subprocess.run([*CLI, "--root", archive.url, "capture", "--http", url],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


def _paused_capture(archive: Any, url: str, gate: Path, step: str) -> subprocess.Popen[str]:
    """``preserve capture --http URL`` into ``archive``'s bucket by a process of its own,
    returned once it is paused at ``step`` of its commit (see PAUSED_CLI; it goes on when
    ``gate/go`` exists)."""
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSED_CLI, str(gate), step, "--root", archive.url, "capture",
         "--http", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (gate / "paused").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the other process did not reach its step"
        time.sleep(0.05)
    return process


def _once(action: Any, real: Any) -> Any:
    """``real`` (a function) that runs ``action()`` first, the first time it is called."""
    ran: list[Any] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not ran:
            ran.append(action())
        return real(*args, **kwargs)

    return hooked


#: the step of verify before which the other process commits, the old code's false findings
WHOLE_COMMIT = {
    "files checked": "W501: its WARC file stored, its manifest not listed",
    "journal": "E304 (its commit record already removed), E308 (its checkpoint is newer "
               "than the log verify read), E315 (its known head too)",
    "checkpoints": "E308, E315",
    "known head": "E315",
}


@pytest.mark.parametrize("step", sorted(WHOLE_COMMIT))
def test_remote_verify_is_exact_while_another_process_captures(
        s3_server: S3Server, web: TestServer, monkeypatch: pytest.MonkeyPatch,
        step: str) -> None:
    """A `preserve capture --http` committing into the bucket while verify reads it gave
    verify false findings (WHOLE_COMMIT, errors among them: 'the archive is damaged'): the
    listing, the log, the commit records, the checkpoints and the known head were read at
    different moments. Verify now checks the log as it found it and explains what it lists
    later by the leaves appended since (proved and matching): no finding at all."""
    from preserve.log.known_heads import KnownHeads
    from preserve.remote import verify as remote_verify
    from preserve.remote.archive import RemotePlace

    archive = remote(s3_server)
    archive.capture(web.url("/p1"))
    concurrent: list[str] = []

    def other() -> None:
        concurrent.append(_capture_elsewhere(archive, web.url("/p2")))

    owner, name = {"files checked": (remote_verify, "missed"),
                   "journal": (RemotePlace, "read_journal"),
                   "checkpoints": (remote_verify, "_check_stored"),
                   "known head": (KnownHeads, "get")}[step]
    monkeypatch.setattr(owner, name, _once(other, getattr(owner, name)))
    report = archive.verify(record=False)
    assert concurrent and report.ok and not report.findings, report.findings
    monkeypatch.undo()
    assert concurrent[0] in {c.capture_id for c in archive.captures()}
    after = archive.verify(record=False)
    assert after.ok and not after.findings, after.findings


#: the commit step at which the other process is paused, the step of verify at which it is
#: (the other process waits there until verify looks at the lease), the old code's findings
PAUSED_COMMIT = {
    "manifest": ("journal", "W306: a commit record naming no committed manifest"),
    "leaves": ("manifests", "E304: a manifest no leaf records and no record names"),
    "head": ("log", "W301: a torn tail; W305: awaiting its leaf"),
}


@pytest.mark.parametrize("step", sorted(PAUSED_COMMIT))
def test_remote_verify_waits_for_a_commit_in_progress(
        s3_server: S3Server, web: TestServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, step: str) -> None:
    """Verify read the archive while another process's commit was half done (PAUSED_COMMIT)
    and reported it as damage or debris. A commit holds the lease: verify now waits, a
    bounded time, for the committer that holds it to finish before it calls anything a
    finding, and reads again. Here the other process goes on only once verify has looked at
    the lease (the old verify never does: it finished first)."""
    from preserve.remote import verify as remote_verify
    from preserve.remote.archive import RemoteArchive, RemotePlace
    from preserve.remote.lease import LEASE

    archive = remote(s3_server)
    archive.capture(web.url("/p1"))
    gate = tmp_path / "gate"
    gate.mkdir()
    started: list[subprocess.Popen[str]] = []

    def other() -> None:
        started.append(_paused_capture(archive, web.url("/p3"), gate, step))

    def opening(method: Any) -> Any:
        def read(rel: str, *args: Any, **kwargs: Any) -> Any:
            if rel == LEASE:
                (gate / "go").touch()
            return method(rel, *args, **kwargs)
        return read

    for method in ("get", "get_etag", "info"):
        monkeypatch.setattr(archive.store, method, opening(getattr(archive.store, method)))
    where, what = PAUSED_COMMIT[step][0], {"journal": (RemotePlace, "read_journal"),
                                           "manifests": (RemoteArchive, "manifest_names"),
                                           "log": (remote_verify, "audit_remote_log")}
    owner, name = what[where]
    monkeypatch.setattr(owner, name, _once(other, getattr(owner, name)))
    try:
        report = archive.verify(record=False)
    finally:
        (gate / "go").touch()
        out, err = started[0].communicate(timeout=180) if started else ("", "")
    assert started and started[0].returncode == 0, err
    assert report.ok and not report.findings, report.findings
    monkeypatch.undo()
    assert out.split()[0] in {c.capture_id for c in archive.captures()}
    after = archive.verify(record=False)
    assert after.ok and not after.findings, after.findings


def test_remote_verify_reads_past_a_commit_record_removed_after_its_listing(
        s3_server: S3Server, web: TestServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """A commit removes its commit record once a checkpoint covers it. Verify lists the
    journal, then reads each record: one removed in between (here another process's commit
    goes on right after the listing, to its checkpoint) ended verify in a NotFoundError (a
    traceback, exit 5). It is skipped, as a record removed before the listing is; the
    capture committed meanwhile is no finding."""
    from preserve.remote.archive import JOURNAL

    archive = remote(s3_server)
    archive.capture(web.url("/p1"))
    gate = tmp_path / "gate"
    gate.mkdir()
    real_list = archive.store.list
    started: list[subprocess.Popen[str]] = []

    def listing(prefix: str) -> Any:
        if prefix != JOURNAL or started:
            return real_list(prefix)
        started.append(_paused_capture(archive, web.url("/p2"), gate, "leaves"))
        found = real_list(prefix)
        (gate / "go").touch()
        started[0].communicate(timeout=180)
        assert started[0].returncode == 0 and len(found) == 1, found
        return found

    monkeypatch.setattr(archive.store, "list", listing)
    try:
        report = archive.verify(record=False)
    finally:
        (gate / "go").touch()
        if started:
            started[0].communicate(timeout=180)
    assert started and report.ok and not report.findings, report.findings


def test_a_commit_while_verify_runs_hides_no_damage(s3_server: S3Server, web: TestServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """What verify explains by a commit made while it ran must be one: with write access to
    the bucket, a planted manifest (E304), a logged one deleted (E305) or replaced (E306)
    stay errors while another process captures; a manifest planted during verify with a
    forged leaf appended for it is an unproved leaf (E316), not a commit; and a lease planted
    to look like a commit in progress only delays the findings (at most ``commit_wait``)."""
    from preserve.log.entries import manifest_leaf_for_bytes
    from preserve.remote.archive import LOG, RemotePlace
    from preserve.remote.lease import LEASE
    from preserve.remote.tiles import TiledLog

    archive = remote(s3_server)
    store = archive.store
    kept, deleted, changed = (archive.capture(web.url(f"/p{i}")).capture_id for i in (4, 5, 6))
    client = s3_server.client()

    def rel(capture_id: str) -> str:
        return f"manifests/{capture_id}.json"

    def planted_as(capture_id: str) -> tuple[str, bytes]:
        document = json.loads(store.get(rel(kept), 1 << 20))
        document["capture_id"] = capture_id
        return rel(capture_id), json.dumps(document).encode()

    planted, data = planted_as(kept[:-10] + "zzzzzzzzzz")
    store.put_new(planted, data, seal=False)
    store.delete(rel(deleted))  # a delete marker
    document = json.loads(store.get(rel(changed), 1 << 20))
    document["extraction"]["title"] = "Not what the page said"
    client.put_object(Bucket=store.bucket, Key=store.key(rel(changed)),
                      Body=json.dumps(document).encode())
    concurrent: list[str] = []
    forged, forged_data = planted_as(kept[:-10] + "yyyyyyyyyy")

    def meanwhile() -> None:
        concurrent.append(_capture_elsewhere(archive, web.url("/p7")))
        store.put_new(forged, forged_data, seal=False)
        TiledLog.open(store, LOG).append(manifest_leaf_for_bytes(forged_data).to_bytes())
        # (an expiry a committer could write: one further ahead is forged, not waited for)
        store.put_mutable(LEASE, json.dumps({"holder": "attacker", "host": "x", "pid": 1,
                                             "expires": time.time() + 100}).encode())

    monkeypatch.setattr(RemotePlace, "read_journal",
                        _once(meanwhile, RemotePlace.read_journal))
    started = time.monotonic()
    report = archive.verify(record=False, commit_wait=2)
    took = time.monotonic() - started
    errors = {(f.code.code, f.path) for f in report.errors}
    assert errors == {("E304", planted), ("E305", rel(deleted)), ("E306", rel(changed)),
                      ("E316", forged)}, report.findings
    assert concurrent and not [f for f in report.findings if concurrent[0] in f.path
                               or concurrent[0] in f.message], report.findings
    assert 2 <= took < 60, took


def test_bulk_reextraction_reports_a_stopped_extraction_as_an_error_row(
        http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An extraction stopped at its time limit gives an empty text that says nothing about
    the page: bulk re-extraction reports it as an error row, never as a text that changed
    to nothing."""
    from preserve.archive import Archive, CaptureOptions
    from preserve.audit import deep
    from preserve.commit import logged_leaves
    from preserve.distributed.jobs import reextract_one

    body = ("<html><body>" + "".join(f"<div><p>Paragraph {i} " + "words " * 30 + "</p></div>"
                                     for i in range(4000)) + "</body></html>").encode()
    http_server.routes["/long"] = respond(200, body, headers=[
        ("Content-Type", "text/html; charset=utf-8")])
    archive = Archive(tmp_path / "a")
    archive.init()
    cid = archive.capture(http_server.url("/long"), CaptureOptions(operator="t")).capture_id
    leaves = logged_leaves(archive.root)
    row = reextract_one(str(archive.root), cid, leaves[cid])
    assert "error" not in row and row["after"] == row["before"] is not None
    monkeypatch.setattr(deep, "TIME_LIMIT_SECONDS", 0.01)  # this machine's limit, now tiny
    row = reextract_one(str(archive.root), cid, leaves[cid])
    assert row["error"].startswith("extraction stopped"), row
    assert "after" not in row


def test_bulk_reextraction_reads_the_document_as_the_capture_did(http_server: TestServer,
                                                                tmp_path: Path) -> None:
    """`reextract_one` re-extracted the final response with no charset (the capture takes it
    from the Content-Type header), always at the audit's input bound and from the response even
    when the text came from elsewhere: a windows-1251 page that says so only in its header
    was read as another encoding, and every such capture was reported as changed by a new
    extractor that changed nothing. It now reads the document as `verify --deep` does (one
    function for both: source record, recorded bound, codings, charset)."""
    import brotlicffi

    from preserve.archive import Archive, CaptureOptions
    from preserve.commit import logged_leaves
    from preserve.distributed.jobs import reextract_one

    # (short: charset detection guesses such a page wrong, so the header decides)
    body = "<html><body><article><p>Привет, мир</p></article></body></html>"
    http_server.routes["/cp1251"] = respond(200, body.encode("windows-1251"), headers=[
        ("Content-Type", "text/html; charset=windows-1251")])
    http_server.routes["/br"] = respond(200, brotlicffi.compress(body.encode()), headers=[
        ("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "br")])
    http_server.routes["/bad-br"] = respond(200, b"not brotli at all" * 20, headers=[
        ("Content-Type", "text/html"), ("Content-Encoding", "br")])
    archive = Archive(tmp_path / "a")
    archive.init()
    ids = {path: archive.capture(http_server.url(path), CaptureOptions(operator="t")).capture_id
           for path in ("/cp1251", "/br", "/bad-br")}
    assert archive.text(ids["/cp1251"]) == "Привет, мир"
    leaves = logged_leaves(archive.root)
    rows = {path: reextract_one(str(archive.root), cid, leaves[cid])
            for path, cid in ids.items()}
    for path in ("/cp1251", "/br"):
        assert "error" not in rows[path] and rows[path]["before"] is not None, rows[path]
        assert rows[path]["after"] == rows[path]["before"], path
    # a body the capture could not decode was not extracted: nothing to compare, no garbage
    assert rows["/bad-br"]["before"] is None and rows["/bad-br"]["after"] is None
