"""The catalog (archive/index/catalog.sqlite3) is derived data and never trusted: a crafted
row can neither fail a capture nor put false provenance into a signed manifest; verify says
when it disagrees with the manifests (W507); repair rebuilds it; a FIFO at its path never
hangs anything; list and history read it, brought up to date from the log."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from preserve import Archive
from preserve.audit.repair import repair
from preserve.log import record_manifest
from preserve.storage import catalog as catalog_mod
from preserve.storage.catalog import CATALOG_FILE, INDEX_DIR, url_key
from servers import TestServer, respond

HTML = [("Content-Type", "text/html; charset=utf-8")]
PAGE = b"<html><head><title>T</title></head><body><article><p>" + b"Words here. " * 40 + \
    b"</p></article></body></html>"


@pytest.fixture
def site(http_server: TestServer) -> TestServer:
    http_server.routes["/a"] = respond(200, PAGE, headers=HTML)
    http_server.routes["/b"] = respond(200, PAGE.replace(b"Words", b"Other"), headers=HTML)
    return http_server


def _catalog(root: Path) -> Path:
    return root / INDEX_DIR / CATALOG_FILE


def test_previous_comes_from_checked_rows_only(site: TestServer, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.init()
    first = archive.capture(site.url("/a"))
    other = archive.capture(site.url("/b"))
    db = sqlite3.connect(_catalog(tmp_path))
    with db:  # the attacker claims the /b capture, and an invented one, were captures of /a
        db.execute("UPDATE captures SET url_key = ? WHERE capture_id = ?",
                   (url_key(site.url("/a")), other.capture_id))
        db.execute("INSERT INTO captures VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   ("20200101T000000Z-aaaaaaaaaa", url_key(site.url("/a")), "x", site.url("/a"),
                    "x", "2020-01-01T00:00:00.000000Z", 200, "ok", "planted", None, "00" * 32,
                    0))
        db.execute("INSERT INTO captures VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   ("../../etc/passwd", url_key(site.url("/a")), "x", site.url("/a"), "x",
                    "2020-01-01T00:00:00.000000Z", 200, "ok", "planted", None, "00" * 32, 1))
    db.close()
    second = archive.capture(site.url("/a"))  # neither fails nor believes the crafted rows
    assert archive.manifest(second.capture_id).previous == (first.capture_id,)
    report = archive.verify(record=False)
    assert "W507" in {f.code.code for f in report.findings}
    fixed = repair(tmp_path)
    assert [a.kind for a in fixed.actions] == ["rebuilt"]
    assert {c.capture_id for c in archive.captures()} == {first.capture_id, other.capture_id,
                                                         second.capture_id}
    assert not archive.verify(record=False).findings


def test_previous_never_names_a_planted_capture(site: TestServer, tmp_path: Path) -> None:
    """A manifest planted beside a crafted row (a copy of a genuine one under a new capture
    id, naming the same URL; the row count kept) is not in the log: the next capture of that
    URL, which is signed, must not name it as an earlier capture."""
    archive = Archive(tmp_path)
    archive.init()
    first = archive.capture(site.url("/a"))
    other = archive.capture(site.url("/b"))
    planted_id = first.capture_id[:-10] + "aaaaaaaaaa"
    document = json.loads((tmp_path / first.manifest_path).read_bytes())
    document["capture_id"] = planted_id
    (tmp_path / "manifests" / f"{planted_id}.json").write_text(
        json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8")
    db = sqlite3.connect(_catalog(tmp_path))
    with db:  # the /b row becomes the planted capture's (same count: nothing looks added),
        # naming as its leaf the genuine /a capture's leaf
        row = db.execute("SELECT * FROM captures WHERE capture_id = ?",
                         (first.capture_id,)).fetchone()
        db.execute("DELETE FROM captures WHERE capture_id = ?", (other.capture_id,))
        db.execute(f"INSERT INTO captures VALUES ({','.join('?' * len(row))})",
                   (planted_id, *row[1:]))
    db.close()
    second = archive.capture(site.url("/a"))
    assert archive.manifest(second.capture_id).previous == (first.capture_id,)
    assert "E304" in {f.code.code for f in archive.verify(record=False).errors}


def test_garbage_catalog_is_rebuilt(site: TestServer, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    first = archive.capture(site.url("/a"))
    path = _catalog(tmp_path)
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    second = archive.capture(site.url("/a"))
    assert archive.manifest(second.capture_id).previous in ((), (first.capture_id,))
    assert [c.capture_id for c in archive.captures()] == [first.capture_id, second.capture_id]
    assert [c.capture_id for c in archive.history(site.url("/a"))] == [first.capture_id,
                                                                       second.capture_id]


def test_fifo_at_the_catalog_path_never_hangs(site: TestServer, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.capture(site.url("/a"))
    path = _catalog(tmp_path)
    path.unlink()
    os.mkfifo(path)
    done: list[object] = []

    def work() -> None:
        done.append(archive.capture(site.url("/a")))
        done.append(archive.captures())
        done.append(archive.verify(record=False))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "a FIFO at the catalog path hung preserve"
    assert len(done) == 3 and len(done[1]) == 2  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["log_size", "logged"])
@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000])
def test_a_doctored_count_in_the_catalog_is_no_crash(site: TestServer, tmp_path: Path,
                                                     key: str, value: str) -> None:
    """A ``meta`` count that ``str.isdigit`` takes and ``int`` refuses (a superscript two,
    5,000 digits) made list and history an internal error (exit 5): it is a count the
    catalog did not write, so it is read as none (the catalog catches up from the log)."""
    archive = Archive(tmp_path)
    ids = [archive.capture(site.url(f"/a?{n}")).capture_id for n in range(2)]
    db = sqlite3.connect(_catalog(tmp_path))
    with db:
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
    db.close()
    assert [c.capture_id for c in archive.captures()] == ids
    assert [c.capture_id for c in archive.history(site.url("/a?1"))] == ids[1:]


def test_catalog_catches_up_from_the_log(site: TestServer, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    ids = [archive.capture(site.url(f"/a?{n}")).capture_id for n in range(3)]
    _catalog(tmp_path).unlink()
    assert [c.capture_id for c in archive.captures()] == ids
    db = sqlite3.connect(_catalog(tmp_path))
    with db:
        db.execute("DELETE FROM captures WHERE capture_id = ?", (ids[1],))
        db.execute("UPDATE meta SET value = '1' WHERE key = 'log_size'")
    db.close()
    assert [c.capture_id for c in archive.captures()] == ids


def test_a_rebuild_commits_as_it_goes_and_lists_each_leaf_from_its_own_manifest(
        site: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild (from every leaf) commits its rows every SYNC_BATCH leaves (2 here), so
    what it holds does not grow with the archive, and gives the same rows as the captures
    made. A leaf's manifest file that holds another capture's manifest lists neither twice:
    the leaf whose file it is not gets no row."""
    monkeypatch.setattr(catalog_mod, "SYNC_BATCH", 2)
    archive = Archive(tmp_path)
    ids = [archive.capture(site.url(f"/a?{n}")).capture_id for n in range(5)]
    rows = sqlite3.connect(_catalog(tmp_path)).execute(
        "SELECT * FROM captures ORDER BY capture_id").fetchall()
    _catalog(tmp_path).unlink()
    commits: list[int] = []
    real = catalog_mod.Catalog._commit_rows
    monkeypatch.setattr(catalog_mod.Catalog, "_commit_rows",
                        lambda self, db, found, size, leaves: commits.append(len(found))
                        or real(self, db, found, size, leaves))
    assert [c.capture_id for c in archive.captures()] == ids
    assert commits == [2, 2, 1]
    assert sqlite3.connect(_catalog(tmp_path)).execute(
        "SELECT * FROM captures ORDER BY capture_id").fetchall() == rows
    manifests = tmp_path / "manifests"
    target = manifests / f"{ids[3]}.json"
    target.chmod(0o644)
    target.write_bytes((manifests / f"{ids[1]}.json").read_bytes())
    _catalog(tmp_path).unlink()
    assert [c.capture_id for c in archive.captures()] == [ids[0], ids[1], ids[2], ids[4]]


_INTERRUPTED_WRITE = """
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA synchronous = OFF")
db.execute("PRAGMA cache_size = 1")  # changed pages reach the file before the commit
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE captures SET title = 'half-written ' || capture_id")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("tampered", [False, True])
def test_a_catalog_write_cut_short_is_checked_as_it_will_be_rolled_back(
        site: TestServer, tmp_path: Path, tampered: bool) -> None:
    """A capture killed while adding its catalog rows leaves a hot journal, which verify's
    read-only connection cannot roll back ('attempt to write a readonly database'): that was
    reported as W507 after every such kill. The catalog is now compared as it will be rolled
    back, so the crash is no finding and a forged committed row still is; the archive's files
    are left as they were."""
    archive = Archive(tmp_path)
    archive.init()
    archive.capture(site.url("/a"))
    archive.capture(site.url("/b"))
    path = _catalog(tmp_path)
    if tampered:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE captures SET title = 'forged' WHERE rowid = 1")
        db.close()
    subprocess.run([sys.executable, "-c", _INTERRUPTED_WRITE, str(path)], check=False)
    journal = path.with_name(path.name + "-journal")
    assert journal.stat().st_size > 0
    before = {p.name: p.read_bytes() for p in (path, journal)}
    codes = {f.code.code for f in archive.verify(record=False).findings}
    assert ("W507" in codes) is tampered
    assert {p.name: p.read_bytes() for p in (path, journal)} == before


def test_a_planted_sparse_journal_is_not_copied(site: TestServer, tmp_path: Path) -> None:
    """Checking a catalog with a hot journal copies both; a planted journal of 3 GiB of
    holes would have been filled in on the temporary disk. It is reported instead."""
    archive = Archive(tmp_path)
    archive.init()
    archive.capture(site.url("/a"))
    path = _catalog(tmp_path)
    subprocess.run([sys.executable, "-c", _INTERRUPTED_WRITE, str(path)], check=False)
    journal = path.with_name(path.name + "-journal")
    with journal.open("r+b") as handle:
        handle.truncate(3 << 30)
    (finding,) = [f for f in archive.verify(record=False).findings if f.code.code == "W507"]
    assert "sparse" in finding.message


def test_previous_never_names_a_capture_logged_without_the_key(site: TestServer,
                                                              tmp_path: Path) -> None:
    """A manifest planted together with a log leaf for it (appended by someone without the
    key: E316) is in the log, and the catalog synced from the log lists it: the next capture
    of that URL named it as an earlier capture, in a manifest whose commit record the key
    signs. Only leaves a signed checkpoint or signed commit record proves are named now; an
    earlier capture of the same batch, proved by its record, still is."""
    archive = Archive(tmp_path)
    archive.init()
    first = archive.capture(site.url("/a"))
    planted_id = first.capture_id[:-10] + "aaaaaaaaaa"
    document = json.loads((tmp_path / first.manifest_path).read_bytes())
    document["capture_id"] = planted_id
    path = tmp_path / "manifests" / f"{planted_id}.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    record_manifest(tmp_path, planted_id)
    second = archive.capture(site.url("/a"), checkpoint=False)  # not signed: E316 pending
    assert archive.manifest(second.capture_id).previous == (first.capture_id,)
    third = archive.capture(site.url("/a"), checkpoint=False)  # proved by its record only
    assert archive.manifest(third.capture_id).previous == (first.capture_id,
                                                           second.capture_id)
    assert "E316" in {f.code.code for f in archive.verify(record=False).errors}


def test_a_capture_committed_while_verify_runs_is_no_catalog_finding(
        site: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture committed after verify listed the manifests adds its catalog row before
    verify compares the catalog with the manifests it checked: that row named none of them
    (W507, seen in CI beside concurrent captures). Rows of leaves appended meanwhile are not
    held to the listing; a forged row still is."""
    from preserve.audit import verify as verify_mod  # noqa: PLC0415

    archive = Archive(tmp_path)
    archive.init()
    archive.capture(site.url("/a"))
    sweep = verify_mod._Audit.sweep_archive

    def capture_meanwhile(self: verify_mod._Audit) -> None:
        archive.capture(site.url("/b"))
        sweep(self)

    monkeypatch.setattr(verify_mod._Audit, "sweep_archive", capture_meanwhile)
    assert "W507" not in {f.code.code for f in verify_mod.verify(tmp_path).findings}
    monkeypatch.undo()
    with sqlite3.connect(_catalog(tmp_path)) as db:
        db.execute("UPDATE captures SET title = 'forged' WHERE leaf_index = 0")
    db.close()
    assert "W507" in {f.code.code for f in archive.verify(record=False).findings}


def test_a_batch_reads_each_commit_record_once_to_prove_previous(
        site: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within a batch (signed at its end), an earlier capture of the same URL is proved by
    its commit record. Every group re-read every record of the batch to find it: O(n²)
    record reads over a batch that captures URLs again. Each is read once now."""
    from preserve.log import journal  # noqa: PLC0415

    archive = Archive(tmp_path)
    archive.init()
    reads: list[str] = []
    parse = journal.parse_record_bytes

    def counted(path: Path, data: bytes, verifier: object) -> object:
        reads.append(path.name)
        return parse(path, data, verifier)  # type: ignore[arg-type]

    monkeypatch.setattr(journal, "parse_record_bytes", counted)
    ids = [archive.capture(site.url("/a"), checkpoint=False).capture_id for _ in range(6)]
    assert archive.manifest(ids[-1]).previous == tuple(ids[:-1])
    assert len(reads) == len(set(reads)) == 5, reads


def test_a_changed_url_key_is_found_and_an_older_catalog_rebuilt(site: TestServer,
                                                                  tmp_path: Path) -> None:
    """A row's URL keys are what ``history`` and ``previous`` look captures up by: one changed
    hides a capture from both while every field the row shows is right. verify compares the
    keys with the row's URLs (W507) and repair rebuilds them. A catalog of the version before
    (keys of the URL as spelled) is rebuilt when next used, and is no finding meanwhile."""
    archive = Archive(tmp_path)
    archive.init()
    first = archive.capture(site.url("/a")).capture_id
    with sqlite3.connect(_catalog(tmp_path)) as db:
        db.execute("UPDATE captures SET url_key = ?, final_key = ?",
                   (url_key(site.url("/b")), url_key(site.url("/b"))))
    db.close()
    assert archive.history(site.url("/a")) == []  # what the attacker wanted
    report = archive.verify(record=False)
    assert "W507" in {f.code.code for f in report.findings}
    assert [a.kind for a in repair(tmp_path).actions] == ["rebuilt"]
    assert [c.capture_id for c in archive.history(site.url("/a"))] == [first]

    with sqlite3.connect(_catalog(tmp_path)) as db:  # as version 2 wrote it
        db.execute("UPDATE captures SET url_key = ?, final_key = ?",
                   ("0" * 64, "0" * 64))
        db.execute("UPDATE meta SET value = '2' WHERE key = 'version'")
    db.close()
    assert not archive.verify(record=False).findings
    assert [c.capture_id for c in Archive(tmp_path).history(site.url("/a"))] == [first]
    with sqlite3.connect(_catalog(tmp_path)) as db:
        version = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]
    db.close()
    assert version == str(catalog_mod.SCHEMA_VERSION)


def test_an_index_directory_linked_out_of_the_archive_is_neither_used_nor_emptied(
        site: TestServer, tmp_path: Path) -> None:
    """``archive/index`` replaced by a symlink to a directory elsewhere: the catalog was
    refused, then "discarded" through the link, deleting ``catalog.sqlite3`` and its
    journals out there. Nothing is removed now, list and history work from the manifests,
    and verify names the link (W507)."""
    root = tmp_path / "root"
    archive = Archive(root)
    archive.init()
    first = archive.capture(site.url("/a")).capture_id
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for name in ("catalog.sqlite3", "catalog.sqlite3-journal", "catalog.sqlite3-wal"):
        (outside / name).write_bytes(b"someone else's data")
    index = root / INDEX_DIR
    for child in index.iterdir():
        child.unlink()
    index.rmdir()
    index.symlink_to(outside, target_is_directory=True)
    fresh = Archive(root)
    assert [c.capture_id for c in fresh.captures()] == [first]
    assert [c.capture_id for c in fresh.history(site.url("/a"))] == [first]
    assert sorted(p.name for p in outside.iterdir()) == [
        "catalog.sqlite3", "catalog.sqlite3-journal", "catalog.sqlite3-wal"]
    assert all(p.read_bytes() == b"someone else's data" for p in outside.iterdir())
    assert "W507" in {f.code.code for f in fresh.verify(record=False).findings}


def test_a_deleted_row_is_found_and_the_catalog_rebuilt(site: TestServer,
                                                        tmp_path: Path) -> None:
    """A row deleted from the catalog hides its capture from ``list`` and ``history``, and
    every row left still matches its manifest: verify compared only the rows there. Every
    logged capture the catalog was brought past must have its row (W507), and repair
    rebuilds it. A capture whose manifest is gone is reported as such (E305), not here."""
    archive = Archive(tmp_path)
    archive.init()
    first = archive.capture(site.url("/a")).capture_id
    second = archive.capture(site.url("/b")).capture_id
    with sqlite3.connect(_catalog(tmp_path)) as db:
        db.execute("DELETE FROM captures WHERE capture_id = ?", (first,))
        db.execute("UPDATE meta SET value = '1' WHERE key = 'logged'")  # the count agrees
    db.close()
    assert [c.capture_id for c in archive.captures()] == [second]  # hidden
    found = [f for f in archive.verify(record=False).findings if f.code.code == "W507"]
    assert found and "have no row" in found[0].message and first in found[0].message
    assert [a.kind for a in repair(tmp_path).actions] == ["rebuilt"]
    assert [c.capture_id for c in archive.captures()] == [first, second]
    assert not archive.verify(record=False).findings
