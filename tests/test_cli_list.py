"""``preserve list`` prints plain rows a few thousand at a time and its ``--json`` from a
row template (issue 12: 100,000 captures in under a second): the output must stay exactly
what the per-row objects and ``json.dumps(indent=2)`` printed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from preserve.archive import Archive, CaptureSummary
from preserve.cli import app as cli_app
from preserve.cli import browse as cli_browse
from preserve.cli import main
from preserve.cli.app import envelope, json_rows
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
