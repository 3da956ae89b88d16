"""``preserve list`` prints plain rows a few thousand at a time and its ``--json`` from a
row template (issue 12: 100,000 captures in under a second): the output must stay exactly
what the per-row objects and ``json.dumps(indent=2)`` printed."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from preserve.archive import Archive, CaptureSummary
from preserve.cli import app as cli_app
from preserve.cli import browse as cli_browse
from preserve.cli import main
from preserve.cli.app import envelope, json_rows
from preserve.importing import import_file
from preserve.log.storage import TransparencyLog
from preserve.storage.catalog import SUMMARY_FIELDS
from servers import TestServer, respond

ROWS: list[tuple[Any, ...]] = [
    ("a", "http://x/\"quoted\"\\", "http://x/ünï", "2026", 200, "ok", None, "ab" * 32),
    ("b", "http://x/{0}{}", "http://x/\u2028\x1b[31m", "2027", 404, "http_error",
     "tab\there\nline  \u00a0nbsp", None),
    ("c", "", "", "", -1, "", "", ""),
]


def _dumped(rows: list[tuple[Any, ...]]) -> str:
    payload = {"captures": [dict(zip(SUMMARY_FIELDS, row, strict=True)) for row in rows]}
    return json.dumps(envelope("list", 0, payload), indent=2, ensure_ascii=False,
                      sort_keys=True)


def _chunked(rows: list[tuple[Any, ...]], size: int) -> list[list[tuple[Any, ...]]]:
    return [rows[start:start + size] for start in range(0, len(rows), size)]


@pytest.mark.parametrize("size", [1, 2, 5])
@pytest.mark.parametrize("rows", [[], ROWS[:1], ROWS])
def test_json_rows_match_json_dumps(rows: list[tuple[Any, ...]], size: int) -> None:
    empty = _dumped([])
    marker = '\n    "captures": []'
    assert empty.count(marker) == 1
    listed = "".join(json_rows(SUMMARY_FIELDS, _chunked(rows, size)))
    fast = empty.replace(marker, marker[:-2] + listed)
    assert fast == _dumped(rows)


def test_json_rows_other_scalars_and_field_names() -> None:
    fields = ("z{}", "a\"b", "m")
    rows = [(True, 1.5, None), (False, 10**30, "x")]
    expected = json.dumps({"k": {"k": [dict(zip(fields, r, strict=True)) for r in rows]}},
                          indent=2, ensure_ascii=False, sort_keys=True)
    empty = json.dumps({"k": {"k": []}}, indent=2, ensure_ascii=False, sort_keys=True)
    marker = '\n    "k": []'
    listed = "".join(json_rows(fields, [rows[:1], [], rows[1:]]))
    assert empty.replace(marker, marker[:-2] + listed) == expected


def _old_text(entries: list[CaptureSummary]) -> str:
    """What ``list`` printed before (one echo per capture)."""
    def clean(text: object, limit: int = 200) -> str:
        return " ".join(str(text).split())[:limit]

    lines = [f"{e.capture_id}  {e.http_status}  {(e.text_blake3 or '-')[:12]:<12}  "
             f"{clean(e.requested_url, 2000)}  {clean(e.title or '')}" for e in entries]
    return "".join(line + "\n" for line in [*lines, f"{len(entries)} capture(s)"])


@pytest.mark.parametrize("chunk", [4096, 2, 1])
def test_list_text_and_json_unchanged(http_server: TestServer, tmp_path: Path, chunk: int,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bytes whether the rows are written in one part or a few at a time."""
    monkeypatch.setattr(cli_app, "ROWS_CHUNK", chunk)
    monkeypatch.setattr(cli_browse, "ROWS_CHUNK", chunk)
    html = [("Content-Type", "text/html")]
    http_server.routes["/a"] = respond(200, b"<html><head><title>One\t two  </title></head>"
                                       b"<body><p>Text of a page.</p></body></html>",
                                       headers=html)
    http_server.routes["/b"] = respond(404, b"no title", headers=[("Content-Type",
                                                                    "text/plain")])
    archive = Archive(tmp_path)
    for path in ("/a", "/b", "/a"):
        archive.capture(http_server.url(path))
    runner = CliRunner()
    entries = Archive(tmp_path).captures()
    assert [tuple(getattr(e, f) for f in SUMMARY_FIELDS) for e in entries] == \
        Archive(tmp_path).capture_rows()

    text = runner.invoke(main, ["--root", str(tmp_path), "list"])
    assert text.exit_code == 0, text.output
    assert text.stdout == _old_text(entries)

    as_json = runner.invoke(main, ["--root", str(tmp_path), "list", "--json"])
    assert as_json.exit_code == 0, as_json.output
    expected = envelope("list", 0, {"captures": [e.to_json() for e in entries]})
    assert as_json.stdout == json.dumps(expected, indent=2, ensure_ascii=False,
                                        sort_keys=True) + "\n"


def test_list_without_a_usable_catalog_reads_the_manifests(http_server: TestServer,
                                                           tmp_path: Path) -> None:
    http_server.routes["/a"] = respond(200, b"<html><title>A</title><p>a</p></html>",
                                       headers=[("Content-Type", "text/html")])
    archive = Archive(tmp_path)
    first = archive.capture(http_server.url("/a"))
    catalog = tmp_path / "archive" / "index" / "catalog.sqlite3"
    with sqlite3.connect(catalog) as db:  # planted rows: more rows than logged captures
        db.execute("UPDATE meta SET value = '0' WHERE key = 'logged'")
    rows = Archive(tmp_path).capture_rows()
    assert [row[0] for row in rows] == [first.capture_id]
    listed = CliRunner().invoke(main, ["--root", str(tmp_path), "list", "--json"])
    assert [c["capture_id"] for c in json.loads(listed.stdout)["result"]["captures"]] == \
        [first.capture_id]


def test_a_catalog_with_values_of_the_wrong_type_never_crashes_list(http_server: TestServer,
                                                                    tmp_path: Path) -> None:
    """Someone with write access stores bytes and text where the catalog keeps text and
    integers: `list` still prints (the values as given: the catalog is a derived index) and
    its JSON stays valid JSON; `verify` reports the catalog (W507)."""
    http_server.routes["/a"] = respond(200, b"<html><title>A</title><p>a</p></html>",
                                       headers=[("Content-Type", "text/html")])
    Archive(tmp_path).capture(http_server.url("/a"))
    with sqlite3.connect(tmp_path / "archive" / "index" / "catalog.sqlite3") as db:
        db.execute("UPDATE captures SET title = X'00ff', http_status = 'abc', text_blake3 = 7")
    runner = CliRunner()
    text = runner.invoke(main, ["--root", str(tmp_path), "list"])
    assert text.exit_code == 0 and "1 capture(s)" in text.stdout, text.output
    listed = runner.invoke(main, ["--root", str(tmp_path), "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)["result"]["captures"]
    assert row["title"] == repr(b"\x00\xff") and row["http_status"] == "abc"
    verified = runner.invoke(main, ["--root", str(tmp_path), "verify", "--no-record"])
    assert "W507" in verified.output


HOSTILE = ("".join(map(chr, range(0x20))) + '"\\/%s%%{}\x7f\x80\x9f\u2028\u2029\u202e'
           "é€𝄞 مرحبا 日本語")


def _catalog_rows(root: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(root / "archive" / "index" / "catalog.sqlite3") as db:
        return db.execute(f"SELECT {', '.join(SUMMARY_FIELDS)} FROM captures "
                          "ORDER BY started, capture_id").fetchall()


def test_rows_the_catalog_renders_are_what_json_dumps_prints(http_server: TestServer,
                                                             tmp_path: Path) -> None:
    """``list --json`` lets SQLite render the rows (json_quote): byte for byte what
    ``json.dumps`` prints for every character class, NUL and separators included, and a
    row of a tampered catalog among them is rendered by Python, in its place."""
    http_server.routes["/a"] = respond(200, b"<html><title>A</title><p>a</p></html>",
                                       headers=[("Content-Type", "text/html")])
    archive = Archive(tmp_path)
    for _ in range(3):
        archive.capture(http_server.url("/a"))
    ids = [row[0] for row in _catalog_rows(tmp_path)]
    with sqlite3.connect(tmp_path / "archive" / "index" / "catalog.sqlite3") as db:
        db.execute("UPDATE captures SET title = ?, final_url = ? WHERE capture_id = ?",
                   (HOSTILE, HOSTILE[::-1], ids[0]))
        db.execute("UPDATE captures SET http_status = 'abc', text_blake3 = 7 "
                   "WHERE capture_id = ?", (ids[1],))
        db.execute("UPDATE captures SET title = NULL, text_blake3 = NULL, "
                   "http_status = -9223372036854775808 WHERE capture_id = ?", (ids[2],))
    layout = cli_app.json_row_layout(SUMMARY_FIELDS)
    chunks = list(Archive(tmp_path).capture_row_chunks(4096, layout))
    assert [type(row) for chunk in chunks for row in chunk] == [str, tuple, str]
    listed = CliRunner().invoke(main, ["--root", str(tmp_path), "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout == _dumped(_catalog_rows(tmp_path)) + "\n"


def test_a_sqlite_that_quotes_otherwise_leaves_rendering_to_python(http_server: TestServer,
                                                                   tmp_path: Path) -> None:
    """The catalog renders rows only when its ``json_quote`` escapes exactly as the caller
    does; asked for another quoting (here ASCII-only), it hands back the plain rows."""
    http_server.routes["/a"] = respond(200, b"<html><title>\xc3\xa9t\xc3\xa9</title>"
                                       b"<p>a</p></html>",
                                       headers=[("Content-Type", "text/html; charset=utf-8")])
    archive = Archive(tmp_path)
    archive.capture(http_server.url("/a"))
    layout = cli_app.json_row_layout(SUMMARY_FIELDS)
    ascii_only = type(layout)(layout.parts, layout.end, json.encoder.encode_basestring_ascii)
    (chunk,) = Archive(tmp_path).capture_row_chunks(4096, ascii_only)
    assert chunk == _catalog_rows(tmp_path)
    (chunk,) = Archive(tmp_path).capture_row_chunks(4096, layout)
    assert [type(row) for row in chunk] == [str]


def test_without_a_catalog_list_and_history_hold_manifests_to_their_leaves(
        http_server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a usable catalog (read-only media) `list` and `history` read the manifests,
    and read them unverified: one rewritten after it was logged (another URL and title) was
    shown as the capture, and one planted beside them as a capture. Now every logged capture
    is held to its leaf (one pass over the log): one that is not the leaf's is listed as
    unverified (its id and the leaf's capture time only), warned of, exit 1, as on an s3://
    root; a planted one is not a capture. With no log at all, nothing to hold them to."""
    for name in ("a", "b"):
        http_server.routes[f"/{name}"] = respond(
            200, b"<html><title>T" + name.encode() + b"</title><p>x</p></html>",
            headers=[("Content-Type", "text/html")])
    archive = Archive(tmp_path)
    archive.init()
    first = archive.capture(http_server.url("/a")).capture_id
    second = archive.capture(http_server.url("/b")).capture_id
    path = tmp_path / "manifests" / f"{first}.json"
    document = json.loads(path.read_bytes())
    document["extraction"]["title"] = "Forged title"
    document["requested_url"] = document["final_url"] = "https://forged.example/"
    path.chmod(0o644)
    path.write_text(json.dumps(document))
    planted = f"{first[:-10]}zzzzzzzzzz"
    document["capture_id"] = planted
    (tmp_path / "manifests" / f"{planted}.json").write_text(json.dumps(document))
    index = tmp_path / "archive" / "index"  # no catalog can be opened or made there
    shutil.rmtree(index)
    index.write_bytes(b"")

    passes: list[int] = []
    real = TransparencyLog.iter_entries

    def counted(self: TransparencyLog, start: int = 0) -> Any:
        passes.append(start)
        return real(self, start)

    monkeypatch.setattr(TransparencyLog, "iter_entries", counted)
    rows = {c.capture_id: c for c in Archive(tmp_path).captures()}
    assert len(passes) == 1, passes  # one pass over the log, not one per manifest
    assert set(rows) == {first, second}
    assert rows[first].status == "unverified" and rows[first].title is None
    assert rows[first].requested_url == "" and "is not the manifest log leaf" in \
        str(rows[first].problem)
    assert rows[second].status == "ok" and rows[second].problem is None
    monkeypatch.undo()

    runner = CliRunner()
    base = ["--root", str(tmp_path)]
    done = runner.invoke(main, [*base, "list"])
    assert done.exit_code == 1, done.output
    assert "Forged" not in done.stdout and "forged.example" not in done.stdout
    assert "[unverified: run preserve verify]" in done.stdout and planted not in done.stdout
    assert f"manifests/{first}.json is not the manifest log leaf" in done.stderr
    done = runner.invoke(main, [*base, "list", "--json"])
    out = json.loads(done.stdout)
    assert done.exit_code == 1 and out["exit_status"] == 1 and out["warnings"]
    assert {r["capture_id"]: r["status"] for r in out["result"]["captures"]} == {
        first: "unverified", second: "ok"}
    assert "forged" not in done.stdout.lower()
    done = runner.invoke(main, [*base, "history", "https://forged.example/"])
    assert done.exit_code == 1 and "Forged" not in done.stdout, done.output
    assert done.stdout.splitlines()[-1] == ("0 capture(s) of https://forged.example/, "
                                            "1 unverified"), done.stdout
    done = runner.invoke(main, [*base, "history", "--json", http_server.url("/b")])
    out = json.loads(done.stdout)
    assert done.exit_code == 1 and out["warnings"], done.output
    assert [(c["capture_id"], c["status"]) for c in out["result"]["captures"]] == [
        (first, "unverified"), (second, "ok")]

    bare = tmp_path / "bare"  # no log: nothing to hold the manifests to (as before)
    shutil.copytree(tmp_path, bare, ignore=shutil.ignore_patterns("log", "bare"))
    done = runner.invoke(main, ["--root", str(bare), "list", "--json"])
    assert done.exit_code == 0, done.output
    assert {r["capture_id"] for r in json.loads(done.stdout)["result"]["captures"]} == {
        first, second, planted}


def test_history_finds_a_capture_by_the_url_it_was_captured_with(http_server: TestServer,
                                                                 tmp_path: Path) -> None:
    """A capture records its URL normalised (scheme and host in lower case, the path
    percent-encoded, no fragment); `history` matched the URL given exactly, so `preserve
    history URL` with the very URL given to `preserve capture` found nothing when it had a
    fragment, capitals or a non-ASCII path (``…/wiki/Москва``). It now matches the URL as
    given and as a capture records it, with the catalog and without it."""
    http_server.routes["/wiki/%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0"] = respond(
        200, b"<html><title>Moscow</title><p>x</p></html>",
        headers=[("Content-Type", "text/html")])
    typed = http_server.url("/wiki/Москва").replace("http://", "HTTP://") + "#history"
    archive = Archive(tmp_path)
    archive.init()
    captured = archive.capture(typed).capture_id
    recorded = archive.manifest(captured).requested_url
    assert recorded == http_server.url("/wiki/%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0")
    runner = CliRunner()
    for url in (typed, recorded, http_server.url("/wiki/Москва")):
        done = runner.invoke(main, ["--root", str(tmp_path), "history", "--json", url])
        assert done.exit_code == 0, done.output
        assert [c["capture_id"] for c in json.loads(done.output)["result"]["captures"]] == \
            [captured], url
    assert Archive(tmp_path).history(http_server.url("/wiki/Москва#other")) != []
    assert Archive(tmp_path).history(http_server.url("/wiki/Париж")) == []
    http_server.routes["/"] = respond(200, b"<html><title>Home</title><p>x</p></html>",
                                      headers=[("Content-Type", "text/html")])
    home = archive.capture(http_server.url("/")[:-1]).capture_id  # "http://host:port"
    for url in (http_server.url("/"), http_server.url("/")[:-1] + "#top"):
        assert [c.capture_id for c in Archive(tmp_path).history(url)] == [home], url
    again = archive.capture(http_server.url("/")).capture_id  # with its "/": one resource
    assert archive.manifest(again).previous == (home,)
    index = tmp_path / "archive" / "index"  # without a catalog: from the log and manifests
    shutil.rmtree(index)
    index.write_bytes(b"")
    assert [c.capture_id for c in Archive(tmp_path).history(typed)] == [captured]


def test_history_finds_an_import_under_another_spelling_of_its_url(http_server: TestServer,
                                                                   tmp_path: Path) -> None:
    """Another tool's WARC names the page ``http://host/x/../%7eana/notes.html``: a dot
    segment, an escaped unreserved character. `history` with the URL as a person types it
    (or with capitals, a fragment) finds the import, with the catalog and without it, and a
    later capture of that URL names the import among its earlier captures: one resource, one
    identity. Another path or a query is another resource."""
    page = b"<html><title>Notes</title><p>notes of a meeting, kept by another tool</p></html>"
    http_server.routes["/~ana/notes.html"] = respond(200, page,
                                                     headers=[("Content-Type", "text/html")])
    typed = http_server.url("/~ana/notes.html")
    spelled = typed.replace("/~ana/", "/x/../%7eana/")

    warc = tmp_path / "other-tool.warc.gz"
    with warc.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(
            spelled, "response", http_headers=http, payload=io.BytesIO(page)))
    archive = Archive(tmp_path / "a")
    archive.init()
    imported = import_file(archive, warc).captures[0].capture_id
    assert archive.manifest(imported).requested_url == spelled
    for url in (typed, typed.replace("http:", "HTTP:") + "#top", spelled):
        assert [c.capture_id for c in Archive(tmp_path / "a").history(url)] == [imported], url
    assert archive.history(typed + "?q=1") == []
    assert archive.history(typed.replace("notes", "other")) == []
    captured = archive.capture(typed).capture_id
    assert archive.manifest(captured).previous == (imported,)
    index = tmp_path / "a" / "archive" / "index"  # without a catalog: from the manifests
    shutil.rmtree(index)
    index.write_bytes(b"")
    assert [c.capture_id for c in Archive(tmp_path / "a").history(typed)] == [imported,
                                                                             captured]
