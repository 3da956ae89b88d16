"""``preserve import``: WARC and WACZ files other tools wrote become captures.

Inputs are made by real tools against the local test server: ``wget --warc-file`` (gzip per
record), warcio's ``capture_http`` (gzip per record and plain), the plain file gzipped as one
stream, and a WACZ packed by py-wacz (``wacz create``; skipped without it unless ``$CI``).
Each import is checked by ``verify --deep``, the log, ``show`` and the manifests; every
failure (a flipped byte, a truncated gzip member, a text file, a WACZ whose datapackage hash
is wrong) must commit nothing and exit with its documented status.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from warcio.capture_http import capture_http
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from exporting import missing
from measure import peak_rss
from preserve import Archive, commit, errors, exchange, importing, integrity, log
from preserve.audit.repair import repair
from preserve.importing import ImportOptions, import_file
from preserve.log.entries import ImportLeaf, ManifestLeaf, parse_entry
from preserve.log.known_heads import KnownHeads
from preserve.log.signing import _record_kinds
from preserve.storage.manifest import read_manifest
from preserve.warc import foreign
from preserve.warc.foreign import MAX_KEPT_BYTES, scan_warc
from servers import TestServer, raw, respond

PRESERVE = str(Path(sys.executable).with_name("preserve"))
HTML = [("Content-Type", "text/html; charset=utf-8")]
KEY = "test.example/import"


def _page(title: str, words: str) -> bytes:
    return (f"<!doctype html><html><head><title>{title}</title>"
            "<link rel=stylesheet href='/style.css'></head><body><article>"
            f"<h1>{title}</h1><p>{(words + ' ') * 30}</p><a href='/about.html'>about</a>"
            "</article></body></html>").encode()


@pytest.fixture
def site(http_server: TestServer) -> TestServer:
    http_server.routes["/"] = respond(200, _page("Home", "Hello from the home page."),
                                      headers=HTML)
    http_server.routes["/about.html"] = respond(200, _page("About", "All about this site."),
                                                headers=HTML)
    http_server.routes["/style.css"] = respond(200, b"body { color: #333 }",
                                               headers=[("Content-Type", "text/css")])
    return http_server


@pytest.fixture
def wget_warc(site: TestServer, tmp_path: Path) -> Path:
    """A WARC written by ``wget --warc-file`` (gzip per record): two pages and a stylesheet."""
    wget = shutil.which("wget")
    if wget is None:
        missing("wget not installed")
    assert wget is not None
    work = tmp_path / "wget"
    work.mkdir()
    subprocess.run([wget, "-q", "-r", "-l", "2", "-p", "--delete-after", "-e", "robots=off",
                    "--warc-file=site", "--no-warc-keep-log", site.url("/")], cwd=work,
                   check=True, timeout=60)
    return work / "site.warc.gz"


def _warcio_warc(site: TestServer, path: Path, *, gzipped: bool) -> Path:
    with capture_http(str(path), gzip=gzipped):
        for page in ("/", "/about.html"):
            with urllib.request.urlopen(site.url(page), timeout=10) as answer:
                answer.read()
    return path


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    created = Archive(tmp_path / "archive")
    created.init(key_name=KEY)
    return created


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRESERVE, "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120, check=False, env=dict(os.environ))


def _manifests(root: Path) -> list[Path]:
    return sorted((root / "manifests").glob("*.json"))


def _leaves(root: Path) -> list[object]:
    with log.open_log(root, readonly=True) as opened:
        return [parse_entry(data) for _i, data in opened.iter_entries()]


def _deep_ok(archive: Archive) -> None:
    report = archive.verify(deep=True)
    codes = sorted({f.code.code for f in report.findings})
    assert report.ok, [f"{f.code.code} {f.path} {f.message}" for f in report.findings]
    assert not {"W215", "W111", "W501", "E207"} & set(codes), codes


# --- imports that work -----------------------------------------------------------------------


def test_wget_warc_imports_each_page_once_stored_and_verified(
        archive: Archive, wget_warc: Path, site: TestServer) -> None:
    result = import_file(archive, wget_warc, ImportOptions(operator="Ana"))
    assert result.status == "imported" and result.kind == "warc"
    assert result.sha256 == hashlib.sha256(wget_warc.read_bytes()).hexdigest()
    urls = sorted(c.requested_url for c in result.captures)
    assert urls == [site.url("/"), site.url("/about.html")]  # not the CSS, not robots.txt
    assert all(c.mode == "import" and c.status == "ok" and c.text_blake3 for c in result.captures)
    assert result.signed and result.not_signed is None
    # the file is kept once, byte for byte, and both manifests name it
    assert len(result.stored) == 1
    stored = archive.root / result.stored[0]
    assert stored.read_bytes() == wget_warc.read_bytes()
    assert stored.name == f"{result.captures[0].capture_id}.warc.gz"
    for capture in result.captures:
        m, _ = read_manifest(archive.root / capture.manifest_path)
        assert m.warc.path == result.stored[0] and m.imported is not None
        assert m.imported.source.name == "site.warc.gz" and m.imported.source.kind == "warc"
        assert m.imported.source.member is None
        assert m.imported.source.sha256 == result.sha256
        assert m.imported.framing == "gzip-members"
        assert m.imported.warcinfo is not None
        assert (m.imported.warcinfo.software or "").startswith("Wget/")
        assert m.started == m.imported.received  # what preserve vouches for
        assert m.redirects[0].started.startswith(m.imported.original_date[:19])
        assert m.connection.remote_ip == "127.0.0.1" and m.connection.tls is None
        types = [r.type for r in m.warc.records]
        assert types[0] == "warcinfo" and "request" in types and "response" in types
        assert m.extraction.source is not None and m.extraction.source.kind == "response"
    _deep_ok(archive)
    leaves = [e for e in _leaves(archive.root) if isinstance(e, ManifestLeaf)]
    assert len(leaves) == 2 and all(isinstance(e, ImportLeaf) for e in leaves)


def test_reimport_is_idempotent(archive: Archive, wget_warc: Path) -> None:
    first = import_file(archive, wget_warc)
    before = _manifests(archive.root)
    leaves = len(_leaves(archive.root))
    again = import_file(archive, wget_warc)
    assert again.status == "already-imported" and not again.captures
    assert sorted(again.already) == sorted(c.capture_id for c in first.captures)
    assert _manifests(archive.root) == before and len(_leaves(archive.root)) == leaves
    assert not list((archive.root / "archive" / "tmp").iterdir())


def test_a_planted_import_is_never_taken_as_already_imported(
        archive: Archive, wget_warc: Path, site: TestServer, tmp_path: Path) -> None:
    """Manifests of an import made elsewhere, planted (not logged) with catalog rows that
    name them in place of genuine ones (the row count kept): importing the same file must
    import it, not answer "already imported as" the planted captures — they are not in the
    log, so nothing vouches for them."""
    genuine = [archive.capture(site.url("/")), archive.capture(site.url("/about.html"))]
    elsewhere = Archive(tmp_path / "elsewhere")
    planted = import_file(elsewhere, wget_warc).captures
    for capture in planted:
        shutil.copyfile(elsewhere.root / capture.manifest_path,
                        archive.root / capture.manifest_path)
    archive.captures()  # the catalog brought up to the log
    db = sqlite3.connect(archive.root / "archive" / "index" / "catalog.sqlite3")
    with db:
        for capture, real in zip(planted, genuine, strict=True):
            row = db.execute("SELECT * FROM captures WHERE capture_id = ?",
                             (real.capture_id,)).fetchone()
            assert row is not None and row[3] == capture.requested_url
            db.execute("UPDATE captures SET capture_id = ? WHERE capture_id = ?",
                       (capture.capture_id, real.capture_id))
    db.close()
    result = import_file(archive, wget_warc)
    assert result.status == "imported" and not result.already, result.already
    assert result.signed
    again = import_file(archive, wget_warc)  # and the genuine import is recognised
    assert again.status == "already-imported"
    assert sorted(again.already) == sorted(c.capture_id for c in result.captures)


def test_warcio_capture_http_gzip_plain_and_one_gzip_stream(
        archive: Archive, site: TestServer, tmp_path: Path) -> None:
    gz = _warcio_warc(site, tmp_path / "warcio.warc.gz", gzipped=True)
    plain = _warcio_warc(site, tmp_path / "warcio.warc", gzipped=False)
    stream = tmp_path / "whole.warc.gz"  # records not each their own gzip member
    stream.write_bytes(gzip.compress(plain.read_bytes()))
    framings = {}
    for path in (gz, plain, stream):
        result = import_file(archive, path)
        assert len(result.captures) == 2, path
        m, _ = read_manifest(archive.root / result.captures[0].manifest_path)
        assert m.imported is not None and m.imported.warcinfo is None  # warcio writes none
        assert [r.type for r in m.warc.records] == ["response", "request"]
        framings[path.name] = (m.imported.framing, m.warc.path.endswith(".warc.gz"))
    assert framings == {"warcio.warc.gz": ("gzip-members", True),
                        "warcio.warc": ("plain", False),
                        "whole.warc.gz": ("gzip-stream", True)}
    _deep_ok(archive)  # re-reads records at manifest offsets, in the decompressed stream too
    out = tmp_path / "all.wacz"  # check-export derives each framing's index and pages again
    exchange.export_wacz(archive, [], out, all_captures=True)
    checked = exchange.check_package(out)
    assert checked.ok, checked.problems


def test_url_option_imports_a_response_that_is_not_html(
        archive: Archive, wget_warc: Path, site: TestServer) -> None:
    css = site.url("/style.css")
    result = import_file(archive, wget_warc, ImportOptions(urls=(css, site.url("/nothing"))))
    by_url = {c.requested_url: c for c in result.captures}
    assert by_url[css].status == "not-html" and by_url[css].text_blake3 is None
    assert result.urls_not_found == [site.url("/nothing")]
    _deep_ok(archive)


def test_cli_import_log_and_show(tmp_path: Path, wget_warc: Path) -> None:
    root = tmp_path / "cli"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    done = run(root, "import", str(wget_warc), "--json")
    assert done.returncode == 0, done.stderr
    envelope = json.loads(done.stdout)
    assert envelope["ok"] and envelope["command"] == "import"
    files = envelope["result"]["files"]
    assert files[0]["status"] == "imported" and envelope["result"]["imported"] == 2
    capture_id = files[0]["captures"][0]["capture_id"]
    logged = run(root, "log")
    assert logged.returncode == 0
    assert logged.stdout.count("IMPORT  ") == 2
    shown = run(root, "show", capture_id)
    assert "import    from site.warc.gz" in shown.stdout and "received  " in shown.stdout
    assert "warcinfo  software Wget/" in shown.stdout
    again = run(root, "import", str(wget_warc))
    assert again.returncode == 0 and "already imported as" in again.stdout
    assert run(root, "verify", "--deep").returncode == 0


def test_a_large_file_imported_again_is_named_in_one_short_line(tmp_path: Path) -> None:
    """The line for a file already imported names its first ten captures and how many more
    (it named every one: 2,000 pages made a line of 60 KB)."""
    root = tmp_path / "root"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    source = _tiny_pages_warc(tmp_path / "pages.warc.gz", 13)
    assert run(root, "import", str(source)).returncode == 0
    again = run(root, "import", str(source))
    assert again.returncode == 0, again.stderr
    (line,) = again.stdout.splitlines()
    assert line.startswith(f"{source}: already imported as ") and line.endswith(" and 3 more")
    assert line.count(", ") == 9


# --- failures: nothing committed, one line, a documented status ------------------------------


def _flip_in_payload(source: Path, target: Path) -> None:
    """A copy of a plain WARC with one byte of a page's payload changed."""
    data = bytearray(source.read_bytes())
    data[data.index(b"Hello from the home page.")] ^= 0x20
    target.write_bytes(bytes(data))


def test_flipped_byte_truncated_member_and_text_file_commit_nothing(
        tmp_path: Path, wget_warc: Path) -> None:
    root = tmp_path / "cli"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    plain = tmp_path / "plain.warc"
    plain.write_bytes(gzip.decompress(wget_warc.read_bytes()))
    flipped = tmp_path / "flipped.warc"
    _flip_in_payload(plain, flipped)
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(wget_warc.read_bytes()[:-6])  # the last member loses its trailer
    text = tmp_path / "notes.txt"
    text.write_text("not a WARC file\n")
    cases = [(flipped, 1, "digest failed"), (cut, 1, "gzip member"),
             (text, 2, "not a WARC or WACZ file")]
    for path, status, words in cases:
        done = run(root, "import", str(path))
        assert done.returncode == status, (path, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"preserve: error: {path}"), lines
        assert words in lines[0]
    flipped_line = run(root, "import", str(flipped)).stderr
    assert "record <urn:uuid:" not in flipped_line and "record urn:uuid:" in flipped_line
    assert not _manifests(root)
    assert not list((root / "archive" / "warc").rglob("*.warc*"))
    assert not list((root / "archive" / "tmp").iterdir())
    # several files: the good one is imported, the bad one is not, the worst status counts
    mixed = run(root, "import", str(text), str(wget_warc), str(flipped), "--json")
    assert mixed.returncode == 1
    result = json.loads(mixed.stdout)["result"]
    assert [f["status"] for f in result["files"]] == ["failed", "imported", "failed"]
    assert [f.get("exit_status") for f in result["files"]] == [2, None, 1]
    assert len(_manifests(root)) == 2
    assert run(root, "verify", "--deep").returncode == 0


def test_library_errors_name_the_problem(archive: Archive, tmp_path: Path,
                                         wget_warc: Path) -> None:
    plain = tmp_path / "plain.warc"
    plain.write_bytes(gzip.decompress(wget_warc.read_bytes()))
    truncated = tmp_path / "truncated.warc"
    truncated.write_bytes(plain.read_bytes()[:-300])
    with pytest.raises(errors.ImportIntegrityError, match=r"truncated|not a complete"):
        import_file(archive, truncated)
    stream = tmp_path / "stream.warc.gz"
    stream.write_bytes(gzip.compress(plain.read_bytes())[:-7])
    with pytest.raises(errors.ImportIntegrityError, match="gzip"):
        import_file(archive, stream)
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    with pytest.raises(errors.ImportInputError):
        import_file(archive, empty)
    assert not _manifests(archive.root)


# --- WACZ ------------------------------------------------------------------------------------


@pytest.fixture
def wacz_tool() -> str:
    candidates = [os.environ.get("PRESERVE_WACZ"),
                  str(Path(__file__).resolve().parents[1] / ".ci-wacz" / "bin" / "wacz"),
                  shutil.which("wacz")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    missing("wacz (py-wacz) not installed (set $PRESERVE_WACZ; .ci/run does)")
    raise AssertionError("unreachable")


@pytest.fixture
def wacz_file(wacz_tool: str, wget_warc: Path, tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "site.wacz"
    subprocess.run([wacz_tool, "create", "-o", str(out), str(wget_warc)], check=True,
                   capture_output=True, timeout=120)
    yield out


def test_wacz_from_py_wacz_imports_and_verifies(archive: Archive, wacz_file: Path,
                                                wget_warc: Path) -> None:
    result = import_file(archive, wacz_file)
    assert result.kind == "wacz" and len(result.captures) == 2
    assert result.sha256 == hashlib.sha256(wacz_file.read_bytes()).hexdigest()
    m, _ = read_manifest(archive.root / result.captures[0].manifest_path)
    assert m.imported is not None and m.imported.source.kind == "wacz"
    assert m.imported.source.name == "site.wacz"
    assert m.imported.source.member == "archive/site.warc.gz"
    assert (archive.root / m.warc.path).read_bytes() == wget_warc.read_bytes()
    _deep_ok(archive)
    # the WARC inside is the same bytes as the file imported directly: nothing new
    assert import_file(archive, wget_warc).status == "already-imported"


def _rewrite_wacz(source: Path, target: Path, *, fix_digest: bool) -> None:
    """A copy of ``source`` whose datapackage.json gives the WARC a wrong SHA-256 (and, with
    ``fix_digest``, a datapackage-digest.json that matches the changed datapackage.json)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        package = json.loads(src.read("datapackage.json"))
        for resource in package["resources"]:
            if resource["path"].startswith("archive/"):
                resource["hash"] = "sha256:" + "0" * 64
        package_bytes = json.dumps(package).encode()
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "datapackage.json":
                data = package_bytes
            elif info.filename == "datapackage-digest.json" and fix_digest:
                data = json.dumps({"path": "datapackage.json", "hash": "sha256:"
                                   + hashlib.sha256(package_bytes).hexdigest()}).encode()
            out.writestr(info, data)


def test_wacz_with_a_wrong_datapackage_hash_is_refused(tmp_path: Path,
                                                       wacz_file: Path) -> None:
    root = tmp_path / "cli"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    for fix_digest, words in ((True, "SHA-256 or size differs"),
                              (False, "datapackage-digest.json")):
        bad = tmp_path / f"bad-{fix_digest}.wacz"
        _rewrite_wacz(wacz_file, bad, fix_digest=fix_digest)
        done = run(root, "import", str(bad))
        assert done.returncode == 1, done.stderr
        assert words in done.stderr and str(bad) in done.stderr
    assert not _manifests(root)
    assert not list((root / "archive" / "warc").rglob("*.warc*"))


# --- what imports do to the rest of the archive ----------------------------------------------


def test_exports_of_imports_hold_the_shared_file_once(archive: Archive, wget_warc: Path,
                                                      tmp_path: Path) -> None:
    import_file(archive, wget_warc)
    out = tmp_path / "out.wacz"
    exported = exchange.export_wacz(archive, [], out, all_captures=True)
    assert len(exported.captures) == 2
    with zipfile.ZipFile(out) as zf:
        warcs = [n for n in zf.namelist() if n.startswith("archive/")]
    assert len(warcs) == 1
    assert exchange.check_package(out).ok
    bag = tmp_path / "bag"
    exchange.export_bagit(archive, [], bag, all_captures=True)
    assert exchange.check_package(bag).ok


def test_import_leaf_needs_an_import_record(archive: Archive, wget_warc: Path) -> None:
    """An import leaf is proved only by an ``import`` commit record, a manifest leaf only by
    a ``capture`` one: rewriting an import leaf's type is caught before anything is signed."""
    result = import_file(archive, wget_warc)
    entries = [e for e in _leaves(archive.root) if isinstance(e, ImportLeaf)]
    assert {e.capture_id for e in entries} == {c.capture_id for c in result.captures}
    leaf = entries[0]
    assert _record_kinds(leaf) == ("import",)
    plain = ManifestLeaf(leaf.capture_id, leaf.path, leaf.blake3, leaf.sha256, leaf.size,
                         leaf.captured, leaf.committed)
    assert _record_kinds(plain) == ("capture",)
    data = leaf.to_bytes()
    assert b'"type":"import"' in data and parse_entry(data) == leaf
    rows = [r for r in integrity.history(archive.root) if r["type"] == "import"]
    assert len(rows) == 2 and rows[0]["summary"].startswith("IMPORT")


def test_repair_logs_an_interrupted_import_as_an_import(
        archive: Archive, wget_warc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill between the commit point and the log leaves committed manifests that a signed
    ``import`` commit record names: repair appends import leaves, and the log signs."""
    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(commit.log, "record_entries", fail)
    with pytest.raises(commit.PartialCommitError):
        import_file(archive, wget_warc)
    monkeypatch.undo()
    assert len(_manifests(archive.root)) == 2
    assert not [e for e in _leaves(archive.root) if isinstance(e, ManifestLeaf)]
    repair(archive.root, heads=KnownHeads())
    leaves = [e for e in _leaves(archive.root) if isinstance(e, ManifestLeaf)]
    assert len(leaves) == 2 and all(isinstance(e, ImportLeaf) for e in leaves)
    _deep_ok(archive)


def test_verify_finds_damage_in_a_shared_imported_file(tmp_path: Path, archive: Archive,
                                                       site: TestServer) -> None:
    """One byte changed in the stored file: every page's manifest sees the file digests
    differ, and the deep check names the damaged record once."""
    plain = _warcio_warc(site, tmp_path / "pages.warc", gzipped=False)
    result = import_file(archive, plain)
    stored = archive.root / result.stored[0]
    data = bytearray(stored.read_bytes())
    data[data.index(b"All about this site.")] ^= 0x20
    stored.chmod(0o644)
    stored.write_bytes(bytes(data))
    report = archive.verify(deep=True, record=False)
    codes = [f.code.code for f in report.findings]
    assert codes.count("E204") == 2 and codes.count("E203") == 2
    assert codes.count("E213") == 1 and codes.count("E214") == 1  # the about page's response
    assert "W215" not in codes


def test_a_response_without_content_type_is_a_page_only_if_it_looks_like_html(
        archive: Archive, http_server: TestServer, tmp_path: Path) -> None:
    html = _page("Bare", "A page served without a media type.")
    http_server.routes["/bare"] = raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                      % (len(html), html))
    http_server.routes["/blob"] = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
                                      b"\x00\x01\x02\x03")
    path = tmp_path / "bare.warc.gz"
    with capture_http(str(path)):
        for page in ("/bare", "/blob"):
            with urllib.request.urlopen(http_server.url(page), timeout=10) as answer:
                answer.read()
    result = import_file(archive, path)
    assert [c.requested_url for c in result.captures] == [http_server.url("/bare")]
    assert result.captures[0].status == "ok" and result.captures[0].title == "Bare"
    _deep_ok(archive)


# --- hostile files: memory stays bounded ------------------------------------------------------


def _hostile_heads_warc(path: Path, *, records: int, page: bool) -> Path:
    """Records whose heads are each near the 1 MiB bound and compress to almost nothing."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for i in range(records):
            if page:
                http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"),
                                                   *((f"X-Pad-{j}", "p" * 60_000)
                                                     for j in range(15))],
                                        protocol="HTTP/1.1")
                writer.write_record(writer.create_warc_record(
                    f"http://example.org/{i}", "response", http_headers=http,
                    payload=io.BytesIO(b"<html><title>t</title><p>hello</p></html>")))
            else:
                record = writer.create_warc_record(
                    f"http://example.org/{'u' * 60_000}{i}", "resource",
                    payload=io.BytesIO(b"x"), warc_content_type="text/plain")
                for j in range(15):
                    record.rec_headers.add_header("WARC-Concurrent-To",
                                                  f"<urn:x:{'c' * 60_000}{j}>")
                writer.write_record(record)
    return path


def test_huge_heads_that_compress_well_keep_memory_bounded(archive: Archive,
                                                           tmp_path: Path) -> None:
    # HTTP headers an import never reads are not kept (30 x 900 KB would be 27 MB)
    pages = _hostile_heads_warc(tmp_path / "pages.warc.gz", records=30, page=True)
    found = scan_warc(pages)
    assert [sorted(k.lower() for k, _v in r.http.headers) for r in found.records
            if r.http is not None] == [["content-type"]] * 30
    # what is kept of all heads together is bounded: a 1.5 MB file may not cost 1 GB
    heads = _hostile_heads_warc(tmp_path / "heads.warc.gz", records=1_000, page=False)
    assert heads.stat().st_size < 4 * 2**20 < MAX_KEPT_BYTES
    with pytest.raises(errors.ImportInputError, match="more than 67108864 bytes of URIs"):
        import_file(archive, heads)
    assert not _manifests(archive.root)
    assert not list((archive.root / "archive" / "tmp").iterdir())


# --- hostile WACZ files: damaged or unreadable zip entries -------------------------------------


def _hand_wacz(path: Path, members: dict[str, bytes], *, deflate: bool = True) -> Path:
    """A minimal WACZ: the members, a datapackage.json listing them, its digest file."""
    resources = [{"name": n.lower(), "path": n, "bytes": len(b),
                  "hash": "sha256:" + hashlib.sha256(b).hexdigest()} for n, b in members.items()]
    package = json.dumps({"profile": "data-package", "wacz_version": "1.1.1",
                          "resources": resources, "title": "t" * 4000}).encode()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=method)
        zf.writestr("datapackage.json", package, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("datapackage-digest.json", json.dumps(
            {"path": "datapackage.json",
             "hash": "sha256:" + hashlib.sha256(package).hexdigest()}))
    return path


def _patch_entry(path: Path, name: str, *, flags: int | None = None,
                 method: int | None = None, garble: bool = False) -> None:
    """Change the general-purpose flags or compression method of entry ``name`` (in its local
    and central headers), or garble the start of its compressed data."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1 and data[local + 30:local + 30 + len(encoded)] != encoded:
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1 and data[central + 46:central + 46 + len(encoded)] != encoded:
        central = data.find(b"PK\x01\x02", central + 4)
    assert local != -1 and central != -1
    for header, base in ((local, 6), (central, 8)):
        if flags is not None:
            data[header + base:header + base + 2] = flags.to_bytes(2, "little")
        if method is not None:
            data[header + base + 2:header + base + 4] = method.to_bytes(2, "little")
    if garble:
        start = local + 30 + len(encoded) + int.from_bytes(data[local + 28:local + 30], "little")
        for i in range(start + 2, start + 12):
            data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_unreadable_wacz_entries_are_one_line_errors(tmp_path: Path, wget_warc: Path) -> None:
    root = tmp_path / "cli"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    warc_bytes = wget_warc.read_bytes()
    members = {"archive/site.warc.gz": warc_bytes, "pages/pages.jsonl": b"{}\n" * 2000}
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("pages/pages.jsonl", {"garble": True}, 1, "pages/pages.jsonl cannot be read"),
        ("datapackage.json", {"garble": True}, 1, "datapackage.json cannot be read"),
        ("archive/site.warc.gz", {"method": 99}, 2, "compression method 99"),
        ("archive/site.warc.gz", {"flags": 1}, 2, "is encrypted"),
        ("datapackage.json", {"flags": 1}, 2, "is encrypted"),
    ]
    for index, (entry, patch, status, words) in enumerate(cases):
        bad = _hand_wacz(tmp_path / f"bad-{index}.wacz", members)
        _patch_entry(bad, entry, **patch)
        done = run(root, "import", str(bad))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == status and len(lines) == 1, (entry, patch, done.stderr)
        assert lines[0].startswith(f"preserve: error: {bad}") and words in lines[0], lines
    assert not _manifests(root)
    assert not list((root / "archive" / "tmp").iterdir())
    good = _hand_wacz(tmp_path / "good.wacz", members)
    assert run(root, "import", str(good)).returncode == 0
    assert len(_manifests(root)) == 2


def test_library_chatter_never_reaches_stderr(tmp_path: Path) -> None:
    """warcio logs a WARC-Target-URI with spaces verbatim each time it reads the record
    (verify --deep, report, export): stderr carries only preserve's own lines."""
    hostile = tmp_path / "hostile.warc.gz"
    uri = "urn:x:a b \x1b]0;PWNED\x07 <script>"
    with hostile.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        response = writer.create_warc_record(
            "http://example.org/", "response", http_headers=http,
            payload=io.BytesIO(b"<html><title>t</title><p>hello there</p></html>"))
        writer.write_record(response)
        writer.write_record(writer.create_warc_record(
            uri, "metadata", payload=io.BytesIO(b"a: b\r\n"), warc_content_type="text/plain",
            warc_headers_dict={"WARC-Concurrent-To":
                               response.rec_headers.get_header("WARC-Record-ID")}))
    root = tmp_path / "cli"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    done = run(root, "import", "--json", str(hostile))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    capture_id = json.loads(done.stdout)["result"]["files"][0]["captures"][0]["capture_id"]
    for args in (["verify", "--deep"], ["report", capture_id, "-o", str(tmp_path / "r.html")],
                 ["export", "--all", "--wacz", str(tmp_path / "o.wacz")]):
        done = run(root, *args)
        assert done.returncode == 0 and "\x1b" not in done.stderr + done.stdout, done
        assert "WARC-Target-URI" not in done.stderr, done.stderr


def test_long_header_lines_are_read_whole_or_refused(archive: Archive, tmp_path: Path) -> None:
    """warcio's readline(limit) stops short across its buffer: a 60,000-character
    WARC-Target-URI was kept cut at ~49,000, and the import then failed verify --deep (E212).
    Lines up to 64 KiB are read whole; a longer one is refused, never cut."""
    made = {}
    for size in (60_000, 70_000):
        made[size] = tmp_path / f"long-{size}.warc.gz"
        with made[size].open("wb") as out:
            writer = WARCWriter(out, gzip=True)
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"),
                                               ("X-Long", "v" * size)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                "http://example.org/" + "a" * size, "response", http_headers=http,
                payload=io.BytesIO(b"<html><title>t</title><p>hello there</p></html>")))
    result = import_file(archive, made[60_000])
    manifest = archive.manifest(result.captures[0].capture_id)
    assert manifest.final_url == "http://example.org/" + "a" * 60_000
    _deep_ok(archive)
    with pytest.raises(errors.ImportInputError, match="header line is longer than 65536"):
        import_file(archive, made[70_000])
    assert len(_manifests(archive.root)) == 1


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_wacz_with_an_entry_twice_is_refused(tmp_path: Path, wget_warc: Path) -> None:
    """Python's zipfile reads the last of two entries of one name, unzip and others the
    first: preserve checked and imported one copy while a recipient would see the other."""
    root = tmp_path / "cli"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    good = _hand_wacz(tmp_path / "good.wacz", {"archive/site.warc.gz": wget_warc.read_bytes()})
    bad = tmp_path / "twice.wacz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as out:
        out.writestr("archive/site.warc.gz", b"another copy, checked by no one")
        for info in src.infolist():
            out.writestr(info, src.read(info))
    done = run(root, "import", str(bad))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "archive/site.warc.gz is in the zip more than once" in done.stderr
    # datapackage.json listing one path twice (once with a false hash) is refused too
    listed_twice = tmp_path / "listed-twice.wacz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(listed_twice, "w") as out:
        package = json.loads(src.read("datapackage.json"))
        package["resources"].insert(0, {**package["resources"][0], "hash": "sha256:" + "0" * 64})
        data = json.dumps(package).encode()
        out.writestr("datapackage.json", data)
        out.writestr("datapackage-digest.json", json.dumps(
            {"path": "datapackage.json", "hash": "sha256:" + hashlib.sha256(data).hexdigest()}))
        out.writestr("archive/site.warc.gz", src.read("archive/site.warc.gz"))
    done = run(root, "import", str(listed_twice))
    assert done.returncode == 1 and "lists archive/site.warc.gz more than once" in done.stderr
    assert not _manifests(root)


def test_a_file_given_through_a_symlink_is_imported(archive: Archive, tmp_path: Path,
                                                     wget_warc: Path) -> None:
    """The files to import are the user's input, not archive content: a symlink to one is
    followed (it failed with 'Too many levels of symbolic links'); a FIFO behind one is not
    a regular file and is refused without blocking."""
    link = tmp_path / "link.warc.gz"
    link.symlink_to(wget_warc)
    assert len(import_file(archive, link).captures) == 2
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "fifo-link.warc").symlink_to(fifo)
    with pytest.raises(errors.ImportInputError, match="not a regular file"):
        import_file(archive, tmp_path / "fifo-link.warc")


# --- deflate bombs: what a zip declares, and what its entries expand to ----------------------


def _bomb_wacz(path: Path, *, real: int, declared: int | None = None) -> Path:
    """A WACZ whose one WARC entry is ``real`` zero bytes, deflated (about 1000:1); the zip's
    central directory and datapackage.json both declare ``declared`` bytes (default: the
    real size), datapackage.json with the SHA-256 of the zeros."""
    digest = hashlib.sha256()
    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("archive/bomb.warc.gz", (2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as out:
            for start in range(0, real, len(block)):
                piece = block[: min(len(block), real - start)]
                out.write(piece)
                digest.update(piece)
        size = real if declared is None else declared
        zf.infolist()[-1].file_size = size  # what the central directory will say
        package = json.dumps({"profile": "data-package", "wacz_version": "1.1.1", "resources": [
            {"name": "archive/bomb.warc.gz", "path": "archive/bomb.warc.gz", "bytes": size,
             "hash": "sha256:" + digest.hexdigest()}]}).encode()
        zf.writestr("datapackage.json", package)
    assert path.stat().st_size < max(real // 500, 1 << 16)
    return path


def test_a_deflate_bomb_larger_than_the_free_spool_space_is_refused_unread(
        archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 MiB of zeros in a 64 KiB zip, on a spool with 16 MiB to spare: refused before a
    byte is streamed (the entry was streamed to the spool up to its declared size)."""
    bomb = _bomb_wacz(tmp_path / "bomb.wacz", real=64 << 20)
    monkeypatch.setattr(importing, "spool_free_bytes",
                        lambda _spool: (256 << 20) + (16 << 20), raising=False)
    written: list[int] = []
    real_stream = importing._stream_entry
    monkeypatch.setattr(importing, "_stream_entry",
                        lambda *args: written.append(1) or real_stream(*args))
    with pytest.raises(errors.ImportInputError, match=r"declare 67108864 bytes, more than"):
        import_file(archive, bomb)
    assert written == []
    assert not list((archive.root / "archive" / "tmp").iterdir())
    assert not _manifests(archive.root)


def test_an_entry_declaring_a_huge_size_is_refused_with_exit_2(tmp_path: Path) -> None:
    """A central directory (and datapackage.json) declaring a terabyte for 1 MiB of
    deflated zeros: beyond preserve's bound for one entry, one line, exit 2."""
    root = tmp_path / "cli"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    bomb = _bomb_wacz(tmp_path / "huge.wacz", real=1 << 20, declared=1 << 40)
    done = run(root, "import", str(bomb))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "declares 1099511627776 bytes, over preserve's bound" in lines[0]
    assert not list((root / "archive" / "tmp").iterdir())


def test_an_entry_expanding_past_its_declared_size_is_cut_and_refused(tmp_path: Path) -> None:
    """8 MiB of zeros declared as 1000 bytes (zip and datapackage.json agree, the data
    lies): reading stops at the declared size, one line, exit 1."""
    root = tmp_path / "cli"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    liar = _bomb_wacz(tmp_path / "liar.wacz", real=8 << 20, declared=1000)
    done = run(root, "import", str(liar))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "archive/bomb.warc.gz" in lines[0]
    assert not _manifests(root)


def test_an_entry_expanding_over_a_hundred_times_its_compressed_size_is_refused_unread(
        archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """16 MiB of zeros deflated to 16 KiB (the floor below which any ratio is let through
    lowered to 1 MiB here; it is 1 GiB): refused from the zip's sizes, nothing streamed."""
    monkeypatch.setattr(importing, "EXPANSION_FLOOR", 1 << 20)
    bomb = _bomb_wacz(tmp_path / "bomb.wacz", real=16 << 20)
    streamed: list[int] = []
    real_stream = importing._stream_entry
    monkeypatch.setattr(importing, "_stream_entry",
                        lambda *args: streamed.append(1) or real_stream(*args))
    with pytest.raises(errors.ImportInputError, match=r"over 100 times \(a decompression bomb"):
        import_file(archive, bomb)
    assert streamed == []
    assert not list((archive.root / "archive" / "tmp").iterdir())
    assert not _manifests(archive.root)


def test_a_warc_whose_records_expand_over_a_hundred_times_the_file_is_refused(
        archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gzip WARC whose second record declares 64 MiB of zeros, the file a few dozen KiB:
    refused from that record's head (the floor lowered to 1 MiB here), before its body is
    read; nothing is committed. Reading it would take time in proportion to what it
    expands to (a real bomb: terabytes)."""
    monkeypatch.setattr(foreign, "EXPANSION_FLOOR", 1 << 20)
    path = tmp_path / "bomb.warc.gz"
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        html = b"<html><body><article><p>A page before the bomb.</p></article></body></html>"
        writer.write_record(writer.create_warc_record(
            "http://example.org/", "response", payload=io.BytesIO(html),
            http_headers=StatusAndHeaders("200 OK", HTML, protocol="HTTP/1.1")))
        writer.write_record(writer.create_warc_record(
            "http://example.org/zeros", "resource", payload=io.BytesIO(bytes(64 << 20)),
            warc_content_type="application/octet-stream"))
    assert path.stat().st_size < 256 << 10
    read: list[int] = []
    real_read = foreign._read_record
    monkeypatch.setattr(foreign, "_read_record",
                        lambda record, *args: read.append(record.length) or
                        real_read(record, *args))
    with pytest.raises(errors.ImportInputError, match=r"over 100 times the file's"):
        import_file(archive, path)
    assert max(read) < 1 << 20, "the bomb's body was read"
    assert not _manifests(archive.root)
    assert not list((archive.root / "archive" / "tmp").iterdir())


# --- memory: text is spooled, never held until the commit ------------------------------------


def _text_heavy_warc(path: Path, pages: int, text_bytes: int) -> Path:
    """``pages`` HTML responses, each with about ``text_bytes`` of article text."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for i in range(pages):
            sentence = b"<p>Page %d: preserved words repeat to make a long article. </p>\n" % i
            body = sentence * (text_bytes // (len(sentence) - 8) + 1)
            html = (b"<html><head><title>Page %d</title></head><body><article><h1>Page %d</h1>"
                    % (i, i) + body + b"</article></body></html>")
            writer.write_record(writer.create_warc_record(
                f"http://example.org/{i}", "response", payload=io.BytesIO(html),
                http_headers=StatusAndHeaders("200 OK", HTML, protocol="HTTP/1.1")))
    return path


@pytest.mark.slow
def test_import_memory_does_not_grow_with_the_text_of_its_pages(tmp_path: Path) -> None:
    """Importing 26 pages of 1 MiB text each peaks within a few MiB of importing 2 of them (it
    held every page's text until the one commit: about 1 MiB of RSS a page)."""
    peaks = {}
    for pages in (2, 26):
        root = tmp_path / f"root-{pages}"
        assert run(root, "init", "--key-name", f"{KEY}-{pages}").returncode == 0
        source = _text_heavy_warc(tmp_path / f"{pages}.warc.gz", pages, 2**20)
        done = peak_rss([PRESERVE, "--root", str(root), "import", str(source)])
        assert done.returncode == 0, done.stderr
        peaks[pages] = done.peak_kib
        assert len(_manifests(root)) == pages
        assert not list((root / "archive" / "tmp").iterdir())
    archive = Archive(tmp_path / "root-26")
    assert archive.verify().ok
    assert all(len(archive.text(c.capture_id)) > 2**20 for c in archive.captures())
    growth = peaks[26] - peaks[2]
    assert growth < 10 * 1024, f"peak RSS grew by {growth} KiB for 24 more pages of 1 MiB text"


def _tiny_pages_warc(path: Path, pages: int) -> Path:
    """``pages`` short HTML responses, as a crawl of many small pages is."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for i in range(pages):
            html = (b"<html><head><title>Page %d</title></head><body><p>Page %d of a crawl."
                    b"</p></body></html>" % (i, i))
            writer.write_record(writer.create_warc_record(
                f"http://example.org/{i}", "response", payload=io.BytesIO(html),
                http_headers=StatusAndHeaders("200 OK", HTML, protocol="HTTP/1.1")))
    return path


def _held_at_commit(root: Path, pages: int) -> tuple[int, list[str]]:
    """Bytes of the Python heap (tracemalloc, after a full garbage collection) held when the
    commit writes its first commit record, all pages of a WARC of ``pages`` tiny pages then
    prepared, placed and built, as it is imported into a new archive at ``root``; and the
    five places that allocated most of it (to say what, should it be too much)."""
    source = _tiny_pages_warc(root.with_suffix(".warc.gz"), pages)
    archive = Archive(root)
    archive.init(key_name=f"{KEY}-{root.name}")
    held: list[int] = []
    top: list[str] = []
    write_record = commit.write_record

    def measured(*args: Any, **kwargs: Any) -> Path:
        if not held:
            gc.collect()
            held.append(tracemalloc.get_traced_memory()[0])
            stats = tracemalloc.take_snapshot().statistics("lineno")
            top.extend(f"{s.size} B at {s.traceback}" for s in stats[:5])
        return write_record(*args, **kwargs)

    commit.write_record = measured  # type: ignore[assignment]
    tracemalloc.start()
    try:
        result = import_file(archive, source)
    finally:
        tracemalloc.stop()
        commit.write_record = write_record
    assert len(result.captures) == pages and result.status == "imported"
    last = result.captures[-1]
    assert last.requested_url == f"http://example.org/{pages - 1}"
    assert hashlib.sha256((root / last.manifest_path).read_bytes()).hexdigest() \
        == last.manifest_sha256
    return held[0], top


_HELD_IN_A_CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_import import _held_at_commit
work = Path(sys.argv[2])
_held_at_commit(work / "warm-up", 2)  # modules imported on first use
print(json.dumps({pages: _held_at_commit(work / f"pages-{pages}", int(pages))
                  for pages in sys.argv[3:]}))
"""


def test_import_memory_does_not_grow_with_the_number_of_pages(tmp_path: Path) -> None:
    """When the commit of 240 pages writes its commit record (every page prepared, placed and
    built), it holds no more than for 60 pages. Every page's sealed manifest and parsed
    structures (and every record of the scan) were held until that one commit: about 20 KB a
    page, 1 GB at the 50,000-page bound. Measured in a process of its own: tracemalloc counts
    what every thread allocates, and threads other tests leave behind would be counted."""
    done = subprocess.run(
        [sys.executable, "-c", _HELD_IN_A_CHILD, str(Path(__file__).parent), str(tmp_path),
         "60", "240"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    held = json.loads(done.stdout)
    per_page = (held["240"][0] - held["60"][0]) / 180
    assert per_page < 2000, (f"{per_page:.0f} more bytes held a page; at 240 pages: "
                             + "; ".join(held["240"][1]))


def test_more_pages_than_a_commit_record_names_get_a_record_for_each_that_many(
        archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit record names at most 10,000 manifests (``MAX_RECORDS``, 3 here): one record
    for every page of a larger file failed with an internal error (exit 5) once every page
    was extracted. Each 3 pages get a record, all written before the commit point; the log is
    proved and signed with them, and repair completes an interrupted commit from them."""
    monkeypatch.setattr(commit, "MAX_RECORDS", 3, raising=False)
    written: list[str] = []
    write_record = commit.write_record

    def kept(*args: Any, **kwargs: Any) -> Path:
        path = write_record(*args, **kwargs)
        written.append(path.read_text())
        return path

    monkeypatch.setattr(commit, "write_record", kept)
    result = import_file(archive, _tiny_pages_warc(tmp_path / "eight.warc.gz", 8))
    assert len(result.captures) == 8 and result.signed
    assert [text.count("\nimport ") for text in written] == [3, 3, 2]
    assert {line.split()[1] for text in written for line in text.splitlines()
            if line.startswith("import ")} == {c.capture_id for c in result.captures}
    assert not list((archive.root / "manifests" / "log" / "journal").glob("*.txt"))
    _deep_ok(archive)

    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patched, pytest.raises(commit.PartialCommitError):
        patched.setattr(commit.log, "record_entries", fail)
        import_file(archive, _tiny_pages_warc(tmp_path / "seven.warc.gz", 7))
    assert len(written) == 6 and len(_manifests(archive.root)) == 15
    repair(archive.root, heads=KnownHeads())
    assert len([e for e in _leaves(archive.root) if isinstance(e, ImportLeaf)]) == 15
    _deep_ok(archive)


def test_an_import_that_fails_before_its_commit_point_leaves_no_text_objects(
        archive: Archive, wget_warc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spooled text objects linked into the store are removed with everything else."""
    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patched, \
            pytest.raises(errors.StorageError, match="disk full"):
        patched.setattr(commit, "write_record", fail)
        import_file(archive, wget_warc)
    assert not _manifests(archive.root)
    assert not [p for p in (archive.root / "archive" / "text").rglob("*") if p.is_file()]
    assert not list((archive.root / "archive" / "tmp").iterdir())
    assert archive.verify().ok
    assert len(import_file(archive, wget_warc).captures) == 2
    _deep_ok(archive)


def test_an_import_killed_while_spooling_text_leaves_only_debris(tmp_path: Path) -> None:
    """SIGKILL after some pages' text is spooled: no capture, verify finds no error (the
    spool is debris), repair clears it, and the file imports afterwards."""
    root = tmp_path / "root"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    source = _text_heavy_warc(tmp_path / "pages.warc.gz", 12, 2**19)
    process = subprocess.Popen([PRESERVE, "--root", str(root), "import", str(source)],
                               env=dict(os.environ), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    spooled: list[Path] = []
    while process.poll() is None and len(spooled) < 2:
        spooled = list((root / "archive" / "tmp").glob("*/text/*"))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(spooled) >= 2, "the import ended before two pages were spooled"
    assert not _manifests(root)
    report = Archive(root).verify()
    assert report.ok, [f"{f.code.code} {f.path} {f.message}" for f in report.findings]
    repair(root, heads=KnownHeads())
    assert not list((root / "archive" / "tmp").iterdir())
    done = run(root, "import", str(source))
    assert done.returncode == 0, done.stderr
    assert len(_manifests(root)) == 12
    assert Archive(root).verify().ok


def test_an_import_killed_in_its_commit_before_the_commit_point_leaves_only_debris(
        tmp_path: Path) -> None:
    """SIGKILL while the commit writes the pages' manifests to temp files (their WARC file
    and text already placed): no manifest, no leaf, verify finds no error, repair clears the
    debris, and the file imports afterwards exactly as it would have."""
    root = tmp_path / "root"
    assert run(root, "init", "--key-name", KEY).returncode == 0
    source = _tiny_pages_warc(tmp_path / "pages.warc.gz", 200)
    process = subprocess.Popen([PRESERVE, "--root", str(root), "import", str(source)],
                               env=dict(os.environ), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    temps: list[Path] = []
    while process.poll() is None and not temps:
        temps = list((root / "manifests").glob(".tmp-*"))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert temps, "the import ended before its commit wrote a manifest"
    assert not _manifests(root)
    assert not [e for e in _leaves(root) if isinstance(e, ManifestLeaf)]
    report = Archive(root).verify()
    assert report.ok, [f"{f.code.code} {f.path} {f.message}" for f in report.findings]
    repair(root, heads=KnownHeads())
    assert not list((root / "manifests").glob(".tmp-*"))
    assert not list((root / "archive" / "tmp").iterdir())
    done = run(root, "import", str(source))
    assert done.returncode == 0, done.stderr
    archive = Archive(root)
    assert sorted(c.requested_url for c in archive.captures()) == sorted(
        f"http://example.org/{i}" for i in range(200))
    assert len(list((root / "archive" / "warc").rglob("*.warc.gz"))) == 1
    _deep_ok(archive)


# --- records without an HTTP head: data: URIs and resource records ----------------------------


def _records_without_http_head(path: Path, *, gzipped: bool) -> dict[str, str]:
    """A page, then a ``response`` record for a ``data:`` URI and a ``resource`` record that
    refer to it, all written by warcio (which digests such a block whole, as WARC 1.1 says).
    Returns record id by kind."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=gzipped)
        page = writer.create_warc_record(
            "http://example.org/", "response", payload=io.BytesIO(_page("Home", "Hello data.")),
            http_headers=StatusAndHeaders("200 OK", HTML, protocol="HTTP/1.1"))
        page_id = page.rec_headers.get_header("WARC-Record-ID")
        linked = {"WARC-Concurrent-To": page_id}
        data = writer.create_warc_record(
            "data:text/html,<p>inline</p>", "response", payload=io.BytesIO(b"<p>inline</p>"),
            warc_content_type="text/html", warc_headers_dict=linked)
        resource = writer.create_warc_record(
            "http://example.org/shot.png", "resource", payload=io.BytesIO(b"\x89PNG not really"),
            warc_content_type="image/png", warc_headers_dict=linked)
        for record in (page, data, resource):
            writer.write_record(record)
    return {kind: record.rec_headers.get_header("WARC-Record-ID").strip("<>")
            for kind, record in (("page", page), ("data", data), ("resource", resource))}


@pytest.mark.parametrize("gzipped", [True, False])
def test_data_uri_responses_and_resource_records_from_warcio_import(
        archive: Archive, tmp_path: Path, gzipped: bool) -> None:
    """warcio digests a block without an HTTP head (a data: response, a resource record) whole
    for WARC-Payload-Digest; import checks them the same way (the file is accepted, the
    resource record named in the page's manifest), and verify --deep agrees."""
    source = tmp_path / ("records.warc.gz" if gzipped else "records.warc")
    ids = _records_without_http_head(source, gzipped=gzipped)
    found = {r.record_id: r for r in scan_warc(source).records}
    for kind in ("data", "resource"):
        record = found[ids[kind]]
        assert record.http is None and record.payload_digest == record.block_digest
    result = import_file(archive, source)
    assert len(result.captures) == 1
    manifest = archive.manifest(result.captures[0].capture_id)
    assert {r.id for r in manifest.warc.records} >= {ids["page"], ids["resource"]}
    _deep_ok(archive)


def test_a_data_uri_response_whose_payload_digest_is_wrong_is_refused(
        archive: Archive, tmp_path: Path) -> None:
    source = tmp_path / "records.warc"
    _records_without_http_head(source, gzipped=False)
    data = source.read_bytes()
    head_end = data.index(b"data:text/html")
    start = data.index(b"WARC-Payload-Digest: sha1:", head_end) + len(b"WARC-Payload-Digest: sha1:")
    tampered = tmp_path / "tampered.warc"
    tampered.write_bytes(data[:start] + b"A" * 32 + data[start + 32:])
    with pytest.raises(errors.ImportIntegrityError, match="payload digest failed"):
        import_file(archive, tampered)
    assert not _manifests(archive.root)
    # the block changed with both digests kept: refused too
    body = data.index(b"\r\n\r\n<p>inline</p>") + 4
    flipped = tmp_path / "flipped.warc"
    flipped.write_bytes(data[:body] + b"<p>INLINE</p>" + data[body + 13:])
    with pytest.raises(errors.ImportIntegrityError, match="digest failed"):
        import_file(archive, flipped)
    assert not _manifests(archive.root)


def _sha1_label(data: bytes) -> bytes:
    return b"sha1:" + base64.b32encode(hashlib.sha1(data).digest())


@pytest.mark.parametrize("uri", [b"not a url", b"urn:example:page", b"",
                                 b"HTTP://example.org/"])
def test_an_http_message_under_a_uri_that_is_not_http_is_not_called_damaged(
        archive: Archive, tmp_path: Path, uri: bytes) -> None:
    """warcio parses the HTTP head only under URIs starting ``http:`` or ``https:`` (in
    lower case), so it checks the payload digest (rightly taken over the entity) against the
    whole block: the file is refused as beyond what preserve checks (exit 2), never reported
    as failing its own digests (exit 1), which a scheme in capitals was."""
    entity = _page("Odd", "An HTTP response filed under a target that is not a URL.")
    block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
             + str(len(entity)).encode() + b"\r\n\r\n" + entity)
    record = (b"WARC/1.1\r\nWARC-Type: response\r\n"
              b"WARC-Record-ID: <urn:uuid:3d1e3b4e-7f3c-4c59-9d0b-2a9c1f0e8a11>\r\n"
              b"WARC-Date: 2024-01-02T03:04:05Z\r\nWARC-Target-URI: " + uri + b"\r\n"
              b"Content-Type: application/http; msgtype=response\r\n"
              b"WARC-Block-Digest: " + _sha1_label(block) + b"\r\n"
              b"WARC-Payload-Digest: " + _sha1_label(entity) + b"\r\n"
              b"Content-Length: " + str(len(block)).encode() + b"\r\n\r\n" + block + b"\r\n\r\n")
    source = tmp_path / "odd.warc"
    source.write_bytes(record)
    with pytest.raises(errors.ImportInputError, match="does not start 'http:' or 'https:'") \
            as info:
        import_file(archive, source)
    assert "digest failed" not in str(info.value)
    assert not _manifests(archive.root)
    done = run(archive.root, "import", str(source))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _warc_record(kind: bytes, uri: bytes, block: bytes, *extra: bytes,
                 content_type: bytes = b"application/http; msgtype=response") -> bytes:
    """One WARC/1.1 record with its block digest (``extra``: further header lines)."""
    return (b"WARC/1.1\r\nWARC-Type: " + kind + b"\r\nWARC-Record-ID: <urn:uuid:"
            + str(uuid.uuid4()).encode() + b">\r\n"
            b"WARC-Date: 2024-01-02T03:04:05Z\r\nWARC-Target-URI: " + uri + b"\r\n"
            b"Content-Type: " + content_type + b"\r\n"
            b"WARC-Block-Digest: " + _sha1_label(block) + b"\r\n"
            + b"".join(line + b"\r\n" for line in extra)
            + b"Content-Length: " + str(len(block)).encode() + b"\r\n\r\n" + block + b"\r\n\r\n")


def test_a_page_cut_into_segments_says_its_text_is_of_the_first_one(
        archive: Archive, tmp_path: Path) -> None:
    """A response continued in a continuation record was imported as if whole: its text
    came from the first segment alone and nothing said so."""
    entity = _page("Segmented", "A response long enough to be split across two records. " * 5)
    block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
             + str(len(entity)).encode() + b"\r\n\r\n" + entity)
    cut = len(block) - 120
    first = _warc_record(b"response", b"http://example.org/long", block[:cut],
                         b"WARC-Segment-Number: 1")
    origin = first.split(b"WARC-Record-ID: ", 1)[1].split(b"\r\n", 1)[0]
    rest = _warc_record(b"continuation", b"http://example.org/long", block[cut:],
                        b"WARC-Segment-Number: 2", b"WARC-Segment-Origin-ID: " + origin,
                        b"WARC-Segment-Total-Length: " + str(len(block)).encode())
    source = tmp_path / "segmented.warc"
    source.write_bytes(first + rest)
    result = import_file(archive, source)
    manifest = archive.manifest(result.captures[0].capture_id)
    assert any("segment '1' of a segmented record" in note for note in manifest.notes)
    _deep_ok(archive)


def test_a_record_id_used_twice_is_refused(archive: Archive, tmp_path: Path) -> None:
    """Two exchanges whose responses share one WARC-Record-ID: the request linked to it by
    WARC-Concurrent-To was taken for both pages (page b's manifest named page a's request);
    record ids are unique, so the file fails its own checks (exit 1), nothing imported."""
    shared = b"WARC-Concurrent-To: <urn:uuid:0d9e2c4e-1b7a-4a0e-9f55-5b2d6c3e1a77>"
    dup = b"<urn:uuid:0d9e2c4e-1b7a-4a0e-9f55-5b2d6c3e1a77>"
    parts = []
    for path in (b"/a", b"/b"):
        url = b"http://example.org" + path
        parts.append(_warc_record(b"request", url, b"GET " + path + b" HTTP/1.1\r\n"
                                  b"Host: example.org\r\n\r\n", shared,
                                  content_type=b"application/http; msgtype=request"))
        entity = _page("Page " + path.decode(), "Words of a page with a shared record id.")
        block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                 + str(len(entity)).encode() + b"\r\n\r\n" + entity)
        response = _warc_record(b"response", url, block)
        start = response.index(b"WARC-Record-ID: ") + len(b"WARC-Record-ID: ")
        parts.append(response[:start] + dup + response[response.index(b"\r\n", start):])
    source = tmp_path / "dup.warc"
    source.write_bytes(b"".join(parts))
    with pytest.raises(errors.ImportIntegrityError, match="is used twice"):
        import_file(archive, source)
    assert not _manifests(archive.root)
    done = run(archive.root, "import", str(source))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_response_without_a_target_uri_is_named_so(archive: Archive, tmp_path: Path) -> None:
    """warcio fails on it with an AttributeError ('NoneType' … 'startswith'), which was all the
    message said: the missing field is named (exit 1, nothing imported)."""
    entity = _page("Nowhere", "A response that does not say which URI it answered.")
    block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
             + str(len(entity)).encode() + b"\r\n\r\n" + entity)
    record = _warc_record(b"response", b"http://example.org/", block)
    start = record.index(b"WARC-Target-URI: ")
    source = tmp_path / "untargeted.warc"
    source.write_bytes(record[:start] + record[record.index(b"\r\n", start) + 2:])
    with pytest.raises(errors.ImportIntegrityError,
                       match="the WARC header lacks WARC-Target-URI") as info:
        import_file(archive, source)
    assert "AttributeError" not in str(info.value)
    assert not _manifests(archive.root)


def test_a_redirect_whose_location_cannot_be_resolved_is_kept_as_given(
        archive: Archive, tmp_path: Path) -> None:
    """A 3xx response whose Location no URL parser takes (``http://[::1/x``: an unclosed
    IPv6 literal) stopped the import with an internal error (exit 5); the hop keeps the
    Location as given, as a live capture does."""
    block = b"HTTP/1.1 302 Found\r\nLocation: http://[::1/x\r\nContent-Length: 0\r\n\r\n"
    source = tmp_path / "redirect.warc"
    source.write_bytes(_warc_record(b"response", b"http://example.org/r", block))
    done = run(archive.root, "import", "--url", "http://example.org/r", str(source))
    assert done.returncode in (0, 1) and "internal error" not in done.stderr, done.stderr
    manifest = archive.manifest(_manifests(archive.root)[0].stem)
    assert [hop.location for hop in manifest.redirects] == ["http://[::1/x"]


@pytest.mark.parametrize("length", [b"-5", b"abc", b"1e3"])
def test_a_content_length_that_is_no_number_is_named(archive: Archive, tmp_path: Path,
                                                      length: bytes) -> None:
    """warcio reads a negative or non-numeric Content-Length as 0 and leaves the HTTP
    message unparsed; the import then blamed the (http) target URI. The file fails its own
    framing: exit 1, one line naming the length."""
    entity = _page("Lengths", "A page whose record declares a length that is no number.")
    block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
             + str(len(entity)).encode() + b"\r\n\r\n" + entity)
    record = _warc_record(b"response", b"http://example.org/a", block)
    record = record.replace(b"Content-Length: " + str(len(block)).encode() + b"\r\n\r\n",
                            b"Content-Length: " + length + b"\r\n\r\n", 1)
    source = tmp_path / "lengths.warc"
    source.write_bytes(record)
    done = run(archive.root, "import", str(source))
    assert done.returncode == 1, done.stderr
    line, = done.stderr.strip().splitlines()
    assert "Content-Length" in line and repr(length.decode()) in line, line
    assert not _manifests(archive.root)


def test_a_wacz_member_that_is_no_warc_is_named(archive: Archive, tmp_path: Path) -> None:
    """A WACZ whose listed WARC member is not a WARC: the message names the member, not
    only the WACZ (which is one)."""
    member = b"\0" * 1000
    source = tmp_path / "m.wacz"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("datapackage.json", json.dumps({"resources": [
            {"path": "archive/data.warc.gz", "hash": "sha256:" + hashlib.sha256(member).hexdigest(),
             "bytes": len(member)}]}))
        zf.writestr("archive/data.warc.gz", member)
    done = run(archive.root, "import", str(source))
    assert done.returncode == 2, done.stderr
    line, = done.stderr.strip().splitlines()
    assert "m.wacz:archive/data.warc.gz: not a WARC or WACZ file" in line, line


def test_a_response_whose_content_coding_cannot_be_undone_gives_no_text(
        archive: Archive, tmp_path: Path) -> None:
    """An imported response whose Content-Encoding could not be removed (corrupt gzip, or a
    body that says br and is not) was extracted from its raw bytes: the gzip one gave a text of
    binary debris and status "ok". A capture (and a browser) shows no page there; an import
    now does as a capture does: no text, the reason named, and verify --deep agrees."""
    parts = []
    for path, coding, entity in (
            (b"/corrupt-gzip", b"gzip", b"\x1f\x8b\x08\x00" + b"<p>debris \xff\xfe</p>" * 40),
            (b"/not-br", b"br", _page("Plain", "A body that says it is brotli and is not."))):
        block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: " + coding
                 + b"\r\nContent-Length: " + str(len(entity)).encode() + b"\r\n\r\n" + entity)
        parts.append(_warc_record(b"response", b"http://example.org" + path, block))
    source = tmp_path / "codings.warc"
    source.write_bytes(b"".join(parts))
    result = import_file(archive, source)
    assert len(result.captures) == 2
    for capture, coding in zip(result.captures, ("gzip", "br"), strict=True):
        manifest = archive.manifest(capture.capture_id)
        assert manifest.text is None and manifest.status == "no-text"
        reason = manifest.extraction.reason or ""
        assert reason.startswith("content coding not decoded: ") and coding in reason, reason
    _deep_ok(archive)


def test_a_page_larger_than_the_extraction_bound_verifies_deep(archive: Archive,
                                                              tmp_path: Path) -> None:
    """An import extracts from the first 3 MiB of a page, as a capture does, but did not
    record that bound in its manifest (``max_input_bytes``), so `verify --deep` re-extracted
    with the bound of the versions that recorded none (16 MiB), got more text, and reported
    the text of an intact import as changed (E406). Imports now record it."""
    # (two bytes a letter: the extractor's own bound, in characters, is not reached first)
    paragraph = ("<p>" + "Свидетели описывают ночь, когда река вышла из берегов. " * 20
                 + "</p>").encode()
    entity = (b"<!doctype html><html><head><title>Long</title></head><body><article>"
              + paragraph * (5 * 2**20 // len(paragraph)) + b"</article></body></html>")
    block = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
             + str(len(entity)).encode() + b"\r\n\r\n" + entity)
    source = tmp_path / "long.warc"
    source.write_bytes(_warc_record(b"response", b"http://example.org/long", block))
    result = import_file(archive, source)
    manifest = archive.manifest(result.captures[0].capture_id)
    assert manifest.text is not None and manifest.text.size < 3 * 2**20
    assert manifest.extractor.settings["max_input_bytes"] == 3 * 2**20
    _deep_ok(archive)
    # an import made before the bound was recorded is re-extracted with the one it used
    from preserve.audit.deep import deep_check  # noqa: PLC0415

    settings = {k: v for k, v in manifest.extractor.settings.items() if k != "max_input_bytes"}
    legacy = dataclasses.replace(
        manifest, extractor=dataclasses.replace(manifest.extractor, settings=settings))
    checked = deep_check(legacy, str(archive.root / manifest.warc.path), "text")
    assert checked.texts_reextracted == 1 and not checked.findings, checked.findings


def _raw_zip(path: Path, members: list[tuple[str, bytes, int, int]],
             directory_copies: int = 1) -> None:
    """A zip written by hand: ``(name, data, method, declared size)`` per member (the CRC is
    of ``data``: never read, as the sizes are refused first), its central directory repeated
    ``directory_copies`` times (entries pointing at the same local headers)."""
    with path.open("wb") as out:
        central = []
        for name, data, method, declared in members:
            offset = out.tell()
            raw = name.encode()
            crc = zlib.crc32(data)
            out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 46, 0x800, method, 0, 0x21,
                                  crc, len(data), declared, len(raw), 0) + raw + data)
            central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 0x031E, 46, 0x800,
                                       method, 0, 0x21, crc, len(data), declared, len(raw), 0,
                                       0, 0, 0, 0o100644 << 16, offset) + raw)
        start = out.tell()
        for _ in range(directory_copies):
            out.write(b"".join(central))
        count = len(central) * directory_copies
        end = out.tell()
        out.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                              end - start, start))
        out.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1))
        out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                              0xFFFFFFFF, 0))


def test_a_wacz_that_would_expand_too_far_is_refused_before_a_byte_is_unpacked(
        archive: Archive, tmp_path: Path) -> None:
    """Each member was held to 100 times its compressed size plus 1 GiB: a few hundred bytes
    of bzip2 unpacking to a GiB of zeros passed, and a 9 KB file of eight of them took 48 s
    of CPU. The members together are held to 100 times the file's size plus 1 GiB now, as a
    WARC file's records are. A zip directory declaring two hundred thousand entries is
    refused from its end record, before zipfile builds an object for every entry."""
    zeros = "sha256:" + hashlib.sha256(b"").hexdigest()  # never compared: refused before
    warc = gzip.compress(b"WARC/1.1\r\n")
    resources = [{"name": "w", "path": "archive/a.warc.gz", "hash": zeros, "bytes": len(warc)},
                 *({"name": f"z/{i}", "path": f"z/{i}", "hash": zeros, "bytes": 1 << 30}
                   for i in range(3))]
    package = json.dumps({"profile": "data-package", "resources": resources}).encode()
    bomb = tmp_path / "bomb.wacz"
    _raw_zip(bomb, [("archive/a.warc.gz", warc, zipfile.ZIP_STORED, len(warc)),
                    *((f"z/{i}", b"BZh9" + b"\0" * 40, zipfile.ZIP_BZIP2, 1 << 30)
                      for i in range(3)),
                    ("datapackage.json", package, zipfile.ZIP_STORED, len(package))])
    with pytest.raises(errors.ImportInputError, match="decompression bomb"):
        import_file(archive, bomb)
    many = tmp_path / "many.wacz"
    _raw_zip(many, [("a", b"x", zipfile.ZIP_STORED, 1)], directory_copies=200_000)
    tracemalloc.start()
    try:
        with pytest.raises(errors.ImportInputError, match="zip directory declares"):
            import_file(archive, many)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, peak
    assert not _manifests(archive.root)
    done = run(archive.root, "import", str(bomb))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_flood_of_blank_lines_between_records_is_refused_at_once(
        archive: Archive, tmp_path: Path) -> None:
    """warcio reads every blank line after a record with its own readline: a gzip member of a
    few hundred bytes holding a megabyte of newlines cost a second of CPU, and blank lines
    count against no bound (a 128 KB file took two minutes). More than a few are refused."""
    page = b"<html><title>t</title><p>Plain words of a page.</p></html>"
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=False)
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record("http://example.org/", "response",
                                                  http_headers=http, payload=io.BytesIO(page)))
    flood = tmp_path / "flood.warc.gz"
    flood.write_bytes(gzip.compress(buffer.getvalue() + b"\n" * 2**20) * 20)
    started = time.monotonic()
    with pytest.raises(errors.ImportInputError, match="blank lines after a record"):
        import_file(archive, flood)
    assert time.monotonic() - started < 5
    assert not _manifests(archive.root)
    fine = tmp_path / "fine.warc.gz"  # a few more than the two a writer puts are tolerated
    fine.write_bytes(gzip.compress(buffer.getvalue() + b"\r\n" * 3))
    assert import_file(archive, fine).status == "imported"


@pytest.mark.parametrize("label", ["md5:{md5}", "SHA1:{b32lower}", "sha256:{b64}"])
def test_a_digest_in_a_form_preserve_does_not_check_is_not_called_damaged(
        archive: Archive, tmp_path: Path, label: str) -> None:
    """A right digest written as MD5 hex (read by warcio as base32, by its length), as
    lower-case base32 or as base64 was reported as a failing digest (exit 1: the file called
    damaged), or as an internal schema message. It is refused as not checkable (exit 2)."""
    block = b"plain text of a resource record"
    value = label.format(
        md5=hashlib.md5(block).hexdigest(),
        b32lower=base64.b32encode(hashlib.sha1(block).digest()).decode().lower(),
        b64=base64.b64encode(hashlib.sha256(block).digest()).decode())
    record = (b"WARC/1.1\r\nWARC-Type: resource\r\n"
              b"WARC-Record-ID: <urn:uuid:3d1e3b4e-7f3c-4c59-9d0b-2a9c1f0e8a12>\r\n"
              b"WARC-Date: 2024-01-02T03:04:05Z\r\nWARC-Target-URI: http://example.org/r\r\n"
              b"Content-Type: text/plain\r\nWARC-Block-Digest: " + value.encode() + b"\r\n"
              b"Content-Length: " + str(len(block)).encode() + b"\r\n\r\n" + block + b"\r\n\r\n")
    source = tmp_path / "odd-digest.warc"
    source.write_bytes(record)
    with pytest.raises(errors.ImportInputError, match="not in a form preserve checks"):
        import_file(archive, source)
    assert not _manifests(archive.root)


def test_a_gzip_file_cut_short_is_said_to_be_cut_short(archive: Archive, tmp_path: Path) -> None:
    """A WARC file whose one gzip member is cut short (an interrupted download) was refused
    as "no WARC record" (exit 2) or as a record lacking its headers (exit 1), depending on
    where the cut fell. It is said to be cut short, wherever the cut is (exit 1)."""
    page = b"<html><title>t</title><p>" + b"Plain words of a page. " * 50 + b"</p></html>"
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record("http://example.org/", "response",
                                                  http_headers=http, payload=io.BytesIO(page)))
    whole = buffer.getvalue()
    for share in (0.2, 0.3, 0.5, 0.7, 0.9, 0.99):
        cut = tmp_path / f"cut{share}.warc.gz"
        cut.write_bytes(whole[: int(len(whole) * share)])
        with pytest.raises(errors.ImportIntegrityError, match="cut short"):
            import_file(archive, cut)
    assert not _manifests(archive.root)


def test_an_import_cut_short_after_its_commit_point_is_never_stored_twice(
        archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An import interrupted between its commit point and its log leaves (Ctrl-C, a full
    disk), then the same file imported again: the pages committed the first time were not
    in the log, so not recognised, and were stored a second time (2,797 captures for a file
    of 2,500 pages, once repair had logged both). The second import is refused until repair
    has logged them; then it adds nothing."""
    source = _tiny_pages_warc(tmp_path / "five.warc.gz", 5)

    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patched, pytest.raises(commit.PartialCommitError) as cut:
        patched.setattr(commit.log, "record_entries", fail)
        import_file(archive, source)
    assert "and 0 more" not in str(cut.value) and len(str(cut.value)) < 400
    with pytest.raises(errors.StorageError, match="run preserve repair first"):
        import_file(archive, source)
    assert len(_manifests(archive.root)) == 5
    repair(archive.root, heads=KnownHeads())
    again = import_file(archive, source)
    assert again.status == "already-imported" and len(again.already) == 5
    assert len(_manifests(archive.root)) == 5
