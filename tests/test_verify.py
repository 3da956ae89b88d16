"""Tests for preserve.audit.verify and preserve.audit.findings.

Each test builds a small real archive in tmp_path: a WARC written with warcio's WARCWriter
(sha256 digests), text objects put through TextStore, text produced by the real extractor, and
a manifest written by preserve.storage.manifest. Then one thing is damaged and the audit must report
exactly the code for it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import brotlicffi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

from preserve.archive import EXTRACT_LIMIT
from preserve.audit import deep as deep_module
from preserve.audit import verify as verify_module
from preserve.audit.findings import Code, Report, Severity, markdown_table
from preserve.audit.verify import REEXTRACT_LIMIT, verify
from preserve.capture.codings import decodable_codings
from preserve.errors import ArchiveError
from preserve.extract import EXTRACTOR_NAME, EXTRACTOR_SETTINGS, EXTRACTOR_VERSION, extract
from preserve.storage.layout import ArchiveLayout, new_capture_id
from preserve.storage.manifest import (
    MAX_MANIFEST_BYTES,
    SCHEMA,
    Manifest,
    manifest_from_dict,
    write_manifest,
)
from preserve.storage.text_store import TextStore

REPO = Path(__file__).resolve().parent.parent
URL = "https://news.example/river"
STARTED = datetime(2026, 11, 21, 16, 41, 0, 123456, tzinfo=UTC)

HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>River report</title></head>
<body><nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>Findings on the river</h1>
<p>The water samples taken on three consecutive mornings showed lead levels well above the
legal limit, according to the laboratory report obtained by this newspaper.</p>
<p>Residents of the lower district said they had complained for months. “Nobody came,” said
one of them, who asked not to be named because she works for the utility.</p>
<p>The utility did not answer written questions sent on Monday. A spokesperson later said the
company would publish its own measurements next week.</p>
</article>
<section id="comments" class="comments"><h2>Comments</h2>
<div class="comment"><span class="author">reader1</span>
<p>This is a disgrace, the council must act now and test every school in the district.</p></div>
<div class="comment"><span class="author">reader2</span>
<p>I live there and we have been buying bottled water since the spring, nobody told us why.</p>
</div></section><footer>© 2026 Example News</footer></body></html>""".encode()


def _label(data: bytes) -> str:
    return "sha256:" + base64.b32encode(hashlib.sha256(data).digest()).decode()


@dataclass
class Built:
    root: Path
    layout: ArchiveLayout
    manifest: Manifest
    manifest_path: Path
    warc_path: Path
    document: dict[str, Any]

    @property
    def text_path(self) -> Path:
        assert self.manifest.text is not None
        return self.root / self.manifest.text.path

    def rewrite_manifest(self, **changes: Any) -> None:
        """Replace the manifest with an edited one (tests only: manifests are write-once)."""
        document = json.loads(json.dumps(self.document))
        for dotted, value in changes.items():
            *parents, last = dotted.split("__")
            target = document
            for key in parents:
                target = target[key]
            target[last] = value
        self.manifest_path.chmod(0o644)
        self.manifest_path.write_bytes(
            (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
        )


def _write_warc(path: Path, html: bytes, content_type: str, *,
                bad_block_digest: bool = False,
                content_encoding: str | None = None) -> list[dict[str, Any]]:
    coding = f"Content-Encoding: {content_encoding}\r\n" if content_encoding else ""
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{coding}"
        f"Content-Length: {len(html)}\r\n\r\n"
    ).encode()
    request = b"GET /river HTTP/1.1\r\nHost: news.example\r\n\r\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=True, warc_version="1.1")
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        for rec_type, block, payload, ctype in (
            ("request", request, None, "application/http; msgtype=request"),
            ("response", head + html, html, "application/http; msgtype=response"),
        ):
            digests = {"WARC-Block-Digest": _label(block + b"x" if bad_block_digest
                                                   and rec_type == "response" else block)}
            if payload is not None:
                digests["WARC-Payload-Digest"] = _label(payload)
            record = writer.create_warc_record(
                URL, rec_type, payload=io.BytesIO(block), length=len(block),
                warc_content_type=ctype, warc_headers_dict=digests,
            )
            writer.write_record(record)
    records = []
    with path.open("rb") as f:
        iterator = ArchiveIterator(f)
        for record in iterator:
            headers = record.rec_headers
            record.raw_stream.read()
            records.append({
                "id": headers.get_header("WARC-Record-ID").strip("<>"),
                "type": record.rec_type,
                "target_uri": headers.get_header("WARC-Target-URI"),
                "offset": iterator.get_record_offset(),
                "length": iterator.get_record_length(),
                "block_digest": headers.get_header("WARC-Block-Digest"),
                "payload_digest": headers.get_header("WARC-Payload-Digest"),
                "refers_to": None,
                "content_type": headers.get_header("Content-Type"),
            })
    return records


def build(root: Path, *, html: bytes = HTML, text_override: str | None = None,
          bad_block_digest: bool = False, content_type: str = "text/html; charset=utf-8",
          status: str | None = None, content_encoding: str | None = None,
          extracted_from: bytes | None = None, settings: dict[str, Any] | None = None) -> Built:
    """A one-capture archive; ``status`` forces the manifest status (else ok/no-text). The
    response body ``html`` is sent with ``content_encoding``; the text is extracted from it,
    or from ``extracted_from``; ``settings`` are added to the extractor's."""
    layout = ArchiveLayout(root)
    layout.ensure_dirs()
    cid = new_capture_id(STARTED)
    warc_rel = layout.warc_rel_for(cid, STARTED)
    warc_path = root / warc_rel
    records = _write_warc(warc_path, html, content_type, bad_block_digest=bad_block_digest,
                          content_encoding=content_encoding)
    data = warc_path.read_bytes()
    is_html = content_type.startswith("text/html")
    source = html if extracted_from is None else extracted_from
    extraction = extract(source if is_html else b"", URL, charset="utf-8")
    store = TextStore(layout)
    text = text_override if text_override is not None else extraction.text
    text_ref = store.put(text.encode()) if text else None
    comments_ref = store.put(extraction.comments_text.encode()) \
        if extraction.comments_text else None
    stamp = STARTED.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    hop = {
        "url": URL, "method": "GET", "status": 200, "location": None,
        "remote_ip": "127.0.0.1", "remote_port": 443, "started": stamp, "ended": stamp,
        "transfer_encoding": None, "wire_sha256": hashlib.sha256(html).hexdigest(),
        "wire_size": len(html), "body_sha256": hashlib.sha256(html).hexdigest(),
        "body_size": len(html), "tls": None,
    }
    document = {
        "schema": SCHEMA, "capture_id": cid,
        "status": status or ("ok" if text else "no-text"),
        "requested_url": URL, "final_url": URL, "started": stamp, "ended": stamp,
        "http": {"status": 200, "reason": "OK", "content_type": content_type},
        "redirects": [hop],
        "connection": {"remote_ip": "127.0.0.1", "remote_port": 443, "local_ip": None,
                       "tls": None},
        "warc": {"path": warc_rel, "size": len(data),
                 "blake3": blake3.blake3(data).hexdigest(),
                 "sha256": hashlib.sha256(data).hexdigest(), "records": records},
        "text": None if text_ref is None else
        {"blake3": text_ref.blake3, "size": text_ref.size, "path": text_ref.path_rel},
        "comments": None if comments_ref is None else
        {"blake3": comments_ref.blake3, "size": comments_ref.size, "path": comments_ref.path_rel},
        "extraction": {"title": extraction.title, "byline": extraction.byline,
                       "published": extraction.published, "language": extraction.language,
                       "reason": extraction.reason},
        "extractor": {"name": EXTRACTOR_NAME, "version": EXTRACTOR_VERSION,
                      "settings": {**EXTRACTOR_SETTINGS, **(settings or {})}},
        "software": {"preserve": "test"}, "host": "test-host", "operator": "tester",
        "previous": [],
    }
    manifest = manifest_from_dict(document)
    ref = write_manifest(layout, manifest)
    return Built(root, layout, manifest, ref.path, warc_path,
                 json.loads(manifest.to_bytes()))


def codes(report: Report) -> list[str]:
    return sorted(f.code.code for f in report.findings)


def flip_byte(path: Path, offset: int) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def archive(tmp_path: Path) -> Built:
    return build(tmp_path / "root")


# --- intact ----------------------------------------------------------------------------------


@pytest.mark.parametrize("deep", [False, True])
def test_intact_archive_has_no_findings(archive: Built, deep: bool) -> None:
    report = verify(archive.root, deep=deep)
    assert report.findings == [], [f.message for f in report.findings]
    assert report.ok and report.exit_status == 0
    stats = report.stats
    assert stats.manifests_checked == 1 and stats.warc_files_checked == 1
    assert stats.bytes_hashed >= archive.warc_path.stat().st_size
    assert stats.text_objects_checked == (2 if archive.manifest.comments else 1)
    if deep:
        assert stats.records_checked == len(archive.manifest.warc.records) == 3
        assert stats.texts_reextracted == 1
    else:
        assert stats.records_checked == 0


def test_fixture_has_text_and_comments(archive: Built) -> None:
    # the comment-object tests below mean something only if the extractor kept comments apart
    assert archive.manifest.text is not None
    assert archive.manifest.comments is not None


def test_report_json_and_progress(archive: Built) -> None:
    calls: list[tuple[int, int]] = []
    report = verify(archive.root, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 1)]
    doc = report.to_json()
    assert doc["ok"] is True and doc["exit_status"] == 0 and doc["findings"] == []
    assert doc["stats"]["manifests_checked"] == 1
    json.dumps(doc)


def test_root_missing_raises(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        verify(tmp_path / "nope")
    with pytest.raises(ArchiveError):
        verify(tmp_path)  # exists, but holds no archive


# --- WARC files ------------------------------------------------------------------------------


def test_flipped_byte_in_warc(archive: Built) -> None:
    flip_byte(archive.warc_path, archive.warc_path.stat().st_size // 2)
    report = verify(archive.root)
    assert codes(report) == ["E203", "E204"]
    assert report.exit_status == 1
    assert all(f.capture_id == archive.manifest.capture_id for f in report.findings)


def test_flipped_byte_in_warc_deep_locates_record(archive: Built) -> None:
    response = next(r for r in archive.manifest.warc.records if r.type == "response")
    flip_byte(archive.warc_path, response.offset + response.length // 2)
    found = set(codes(verify(archive.root, deep=True)))
    assert {"E203", "E204"} <= found
    assert found & {"E207", "E213", "E214", "E210"}  # the damaged record is named


def test_missing_warc(archive: Built) -> None:
    archive.warc_path.unlink()
    assert codes(verify(archive.root, deep=True)) == ["E201"]


def test_truncated_warc(archive: Built) -> None:
    size = archive.warc_path.stat().st_size
    with archive.warc_path.open("r+b") as f:
        f.truncate(size - 40)
    assert codes(verify(archive.root)) == ["E206"]
    deep = set(codes(verify(archive.root, deep=True)))
    assert "E206" in deep and deep & {"E207", "E210", "E212"}


def test_appended_warc(archive: Built) -> None:
    with archive.warc_path.open("ab") as f:
        f.write(b"appended")
    assert codes(verify(archive.root)) == ["E202"]


def test_record_digest_mismatch_deep(tmp_path: Path) -> None:
    # the file itself matches the manifest; the response record's stated digest is wrong
    built = build(tmp_path / "root", bad_block_digest=True)
    assert codes(verify(built.root)) == []
    assert codes(verify(built.root, deep=True)) == ["E213"]


def test_record_id_and_offset_mismatch_deep(archive: Built) -> None:
    records = archive.document["warc"]["records"]
    records[1] = dict(records[1], id="urn:uuid:00000000-0000-4000-8000-000000000000")
    records[2] = dict(records[2], offset=records[2]["offset"] + 1, length=records[2]["length"] - 1)
    archive.rewrite_manifest(warc__records=records)
    found = codes(verify(archive.root, deep=True))
    assert "E211" in found and "E210" in found and "W215" in found


def test_record_fields_mismatch_deep(archive: Built) -> None:
    records = archive.document["warc"]["records"]
    records[2] = dict(records[2], target_uri="https://elsewhere.example/")
    archive.rewrite_manifest(warc__records=records)
    report = verify(archive.root, deep=True)
    assert "E212" in codes(report)
    e212 = next(f for f in report.findings if f.code is Code.E212)
    assert e212.detail is not None and "target_uri" in e212.detail["fields"]


# --- text objects ----------------------------------------------------------------------------


def test_flipped_byte_in_text_object(archive: Built) -> None:
    flip_byte(archive.text_path, 3)
    assert codes(verify(archive.root)) == ["E402"]


def test_missing_text_object(archive: Built) -> None:
    archive.text_path.unlink()
    assert codes(verify(archive.root)) == ["E401"]


def test_comments_object_damage(archive: Built) -> None:
    assert archive.manifest.comments is not None
    path = archive.root / archive.manifest.comments.path
    flip_byte(path, 0)
    assert codes(verify(archive.root)) == ["E404"]
    path.unlink()
    assert codes(verify(archive.root)) == ["E403"]


def test_text_path_inconsistent(archive: Built) -> None:
    assert archive.manifest.comments is not None
    archive.rewrite_manifest(text__path=archive.manifest.comments.path)
    assert "E108" in codes(verify(archive.root))


def test_unreferenced_and_misnamed_objects(archive: Built) -> None:
    store = TextStore(archive.layout)
    orphan = store.put(b"an orphan from an interrupted capture")
    assert codes(verify(archive.root)) == ["W502"]
    flip_byte(archive.root / orphan.path_rel, 0)
    report = verify(archive.root)
    assert codes(report) == ["E402", "W502"]
    (archive.layout.text_dir / "stray.txt").write_text("x")
    assert "W505" in codes(verify(archive.root))


_TRICKY_NAMES = ["a", "a-b", "a\x01", "ab", "a b", "A", "\u00e9t\u00e9", "\u65e5\u672c",
                 "z\udc80", "z\udcff", "z\u00ff", "\U0001f600", "a.warc.gz", "a.warc.gz.x"]


def test_a_large_listing_is_sorted_on_disk_in_the_order_sorted_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from preserve.audit import listing  # noqa: PLC0415

    entries = [(name, i % 4) for i, name in enumerate(_TRICKY_NAMES + [f"n{i:05}" for i in
                                                                      range(3000)])]
    entries.reverse()
    in_memory = list(listing.sorted_entries(entries))
    monkeypatch.setattr(listing, "IN_MEMORY_ENTRIES", 5)
    on_disk = listing.sorted_entries(entries)
    assert not isinstance(on_disk, list)  # a generator reading the scratch database
    assert list(on_disk) == in_memory == sorted(entries)


def test_the_sweep_of_a_large_directory_reports_as_of_a_small_one(
    archive: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orphan WARC files beside the capture's, and a symlink: the same findings, in the same
    order, whether the directory's listing is sorted in memory or on disk."""
    from preserve.audit import listing  # noqa: PLC0415

    month = archive.warc_path.parent
    for i in reversed(range(40)):
        (month / f"20240101T00000{i % 10}Z-orphan{i:04}.warc.gz").write_bytes(b"x")
    (month / "zz-link.warc.gz").symlink_to(archive.warc_path)
    for odd in (b"\xff\xfe-not-utf8.warc.gz", "n\u00e4he.warc.gz".encode(), b"a\x01.warc.gz"):
        (month / os.fsdecode(odd)).write_bytes(b"x")
    small = [(f.code.code, f.path) for f in verify(archive.root).findings]
    monkeypatch.setattr(listing, "IN_MEMORY_ENTRIES", 3)
    large = [(f.code.code, f.path) for f in verify(archive.root).findings]
    assert large == small
    assert [code for code, _path in small].count("W501") == 43


def test_reextraction_differs_same_version(tmp_path: Path) -> None:
    built = build(tmp_path / "root", text_override="Text the extractor never produced.")
    assert codes(verify(built.root)) == []  # the objects themselves are intact
    report = verify(built.root, deep=True)
    assert codes(report) == ["E406"]


def test_reextraction_differs_new_extractor_version(tmp_path: Path) -> None:
    built = build(tmp_path / "root", text_override="Text the extractor never produced.")
    built.rewrite_manifest(extractor__version="0-older")
    report = verify(built.root, deep=True)
    assert codes(report) == ["W407"]
    assert report.ok


BUDGET_HTML = ("<!doctype html><html><body><main>" + "".join(
    f"<section><h2>Part {i}</h2><p>Paragraph {i} of a long report, "
    + "words " * 30 + "</p></section>" for i in range(3000)) + "</main></body></html>").encode()


def test_a_reextraction_stopped_at_its_time_limit_is_not_compared(tmp_path: Path) -> None:
    """A re-extraction still running at the time limit the capture recorded says nothing
    about the page: W409, the text not compared (its object is still hashed: E402 stays)."""
    built = build(tmp_path / "root", html=BUDGET_HTML, settings={"time_limit_seconds": 0.01})
    assert built.manifest.text is not None
    report = verify(built.root, deep=True)
    assert codes(report) == ["W409"] and report.ok
    assert "stopped" in report.findings[0].message
    assert report.stats.texts_reextracted == 0
    flip_byte(built.root / built.manifest.text.path, 0)
    assert codes(verify(built.root, deep=True)) == ["E402", "W409"]


def test_a_capture_stopped_at_its_time_limit_is_not_held_to_a_text_made_now(
        tmp_path: Path) -> None:
    """A capture whose extraction was stopped claims no text; re-extracted now (a faster
    machine) the page gives one, which is not the capture's: W409, not E406. Stopped then
    and now: nothing claimed, nothing compared, no finding."""
    from preserve.extract.core import stopped_reason  # noqa: PLC0415

    built = build(tmp_path / "root", html=BUDGET_HTML, text_override="")
    built.rewrite_manifest(extraction__reason=stopped_reason(30))
    report = verify(built.root, deep=True)
    assert codes(report) == ["W409"] and report.ok
    assert "capture's extraction stopped" in report.findings[0].message
    built.rewrite_manifest(extraction__reason="no article-like content found")
    assert codes(verify(built.root, deep=True)) == ["E406"]  # not stopped: a real difference
    built.rewrite_manifest(extraction__reason=stopped_reason(30),
                           extractor__settings={**EXTRACTOR_SETTINGS,
                                                "time_limit_seconds": 0.01})
    assert codes(verify(built.root, deep=True)) == []


def test_reextraction_differs_under_other_libraries_than_the_capture_recorded(
        tmp_path: Path) -> None:
    """The text also depends on Python and the libraries that parse, detect and decode: a
    capture made under other versions than this machine runs may re-extract differently
    with nothing wrong (a dependency upgraded years later), so that is W407 naming what
    changed, not E406 (an archive NOT INTACT). What the manifest does not record is no
    evidence either way; recorded and the same, a difference stays E406."""
    from preserve.capture.provenance import software  # noqa: PLC0415

    now = software()
    assert {"python", "lxml", "selectolax", "charset-normalizer"} <= set(now)
    built = build(tmp_path / "root", text_override="Text the extractor never produced.")
    built.rewrite_manifest(software={**now, "selectolax": "0.0.1"})
    report = verify(built.root, deep=True)
    assert codes(report) == ["W407"] and report.ok
    assert f"selectolax 0.0.1 then, {now['selectolax']} now" in report.findings[0].message
    built.rewrite_manifest(software=now)
    assert codes(verify(built.root, deep=True)) == ["E406"]


def test_a_br_body_is_reextracted_as_the_capture_decoded_it(tmp_path: Path) -> None:
    """Manifests list the content codings decoded before extraction; one without the list
    was made when only one gzip or deflate coding was, and an import then extracted a br
    body as stored (mojibake): each is re-extracted as it was made, not as preserve would
    make it now."""
    body = brotlicffi.compress(HTML)
    listed = {"content_codings": decodable_codings()}
    decoded = build(tmp_path / "decoded", html=body, content_encoding="br",
                    extracted_from=HTML, settings=listed)
    legacy = build(tmp_path / "legacy", html=body, content_encoding="br")
    assert decoded.manifest.text is not None and legacy.manifest.text is not None
    assert decoded.manifest.text.blake3 != legacy.manifest.text.blake3
    for built in (decoded, legacy):
        report = verify(built.root, deep=True)
        assert codes(report) == [] and report.stats.texts_reextracted == 1


def test_a_body_whose_decoder_is_missing_here_is_not_reextracted_as_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = build(tmp_path / "root", html=brotlicffi.compress(HTML), content_encoding="br",
                  extracted_from=HTML, settings={"content_codings": decodable_codings()})
    monkeypatch.setitem(sys.modules, "brotlicffi", None)  # import brotlicffi: ImportError
    report = verify(built.root, deep=True)
    assert codes(report) == ["E408"]
    assert report.findings[0].message == ("cannot re-extract: the response's content coding "
                                          "'br' is not decoded here (brotlicffi is not "
                                          "installed)")


def test_no_text_page_is_reextracted(tmp_path: Path) -> None:
    built = build(tmp_path / "root", html=b"<html><body><nav><a href=/>Hi.</a></nav></body>")
    assert built.manifest.status == "no-text" and built.manifest.text is None
    report = verify(built.root, deep=True)
    assert codes(report) == []
    assert report.stats.texts_reextracted == 1


def test_no_text_claim_contradicted(tmp_path: Path) -> None:
    built = build(tmp_path / "root")
    built.rewrite_manifest(text=None, comments=None, status="no-text")
    found = codes(verify(built.root, deep=True))
    assert found.count("E406") == 2  # text and comments were extractable after all
    assert set(found) == {"E406", "W502"}


def test_not_html_is_not_reextracted(tmp_path: Path) -> None:
    built = build(tmp_path / "root", html=b"plain words " * 50, content_type="text/plain",
                  status="not-html")
    report = verify(built.root, deep=True)
    assert codes(report) == []
    assert report.stats.texts_reextracted == 0 and report.stats.records_checked == 3


# --- manifests -------------------------------------------------------------------------------


def test_flipped_byte_in_manifest_syntax(archive: Built) -> None:
    flip_byte(archive.manifest_path, 0)  # "{" -> "z"
    report = verify(archive.root)
    # nothing in unparseable JSON can be attributed, so what it named shows up as orphans
    assert codes(report) == ["E102", "W501", "W502", "W502"]


def test_flipped_byte_in_manifest_digest(archive: Built) -> None:
    data = bytearray(archive.manifest_path.read_bytes())
    offset = data.index(archive.manifest.warc.blake3.encode()) + 5
    data[offset] = ord("0") if data[offset] != ord("0") else ord("1")  # another hex digit
    archive.manifest_path.chmod(0o644)
    archive.manifest_path.write_bytes(bytes(data))
    assert codes(verify(archive.root)) == ["E203"]


def test_flipped_byte_in_manifest_schema(archive: Built) -> None:
    data = archive.manifest_path.read_bytes()
    flip_byte(archive.manifest_path, data.index(b'"status": "ok"') + 12)  # "ok" -> "oj"
    report = verify(archive.root)
    assert codes(report) == ["E103"]  # the files it named are not reported as orphans


def test_manifest_not_canonical(archive: Built) -> None:
    data = archive.manifest_path.read_bytes()
    archive.manifest_path.chmod(0o644)
    archive.manifest_path.write_bytes(data.replace(b"\n", b"\n ", 1))
    assert codes(verify(archive.root)) == ["W109"]


def test_unsupported_schema(archive: Built) -> None:
    archive.rewrite_manifest(schema="preserve/manifest/99")
    assert codes(verify(archive.root)) == ["E104"]


def test_manifest_name_and_duplicate_id(archive: Built) -> None:
    copy = archive.layout.manifests_dir / "copy.json"
    copy.write_bytes(archive.manifest_path.read_bytes())
    assert codes(verify(archive.root)) == ["E105", "E106"]


def test_deleted_manifest_leaves_orphans(archive: Built) -> None:
    archive.manifest_path.unlink()
    assert codes(verify(archive.root)) == ["W501", "W502", "W502"]


def test_previous_capture_missing(archive: Built) -> None:
    archive.rewrite_manifest(previous=["20200101T000000Z-aaaaaaaaaa"])
    assert codes(verify(archive.root)) == ["W110"]


def test_oversized_manifest(archive: Built) -> None:
    huge = archive.layout.manifests_dir / "20261121T000000Z-cccccccccc.json"
    huge.write_bytes(b" " * (MAX_MANIFEST_BYTES + 1))
    assert codes(verify(archive.root)) == ["E101"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=4))
def test_verify_never_raises_on_mangled_manifest(
    archive: Built, edits: list[tuple[float, int]]
) -> None:
    original = archive.manifest_path.read_bytes()
    data = bytearray(original)
    for where, value in edits:
        data[int(where * len(data))] = value
    archive.manifest_path.chmod(0o644)
    archive.manifest_path.write_bytes(bytes(data))
    try:
        for deep in (False, True):
            report = verify(archive.root, deep=deep)
            assert report.exit_status == (0 if report.ok else 1)
            # (an edit to a field no file is bound to, e.g. the operator's name, is only
            # detectable through the integrity log, which this audit does not read)
            json.dumps(report.to_json())
    finally:
        archive.manifest_path.write_bytes(original)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=4))
def test_deep_verify_never_raises_on_mangled_warc(
    archive: Built, edits: list[tuple[float, int]]
) -> None:
    original = archive.warc_path.read_bytes()
    data = bytearray(original)
    for where, value in edits:
        data[int(where * len(data))] = value
    archive.warc_path.chmod(0o644)
    archive.warc_path.write_bytes(bytes(data))
    try:
        report = verify(archive.root, deep=True)
        if bytes(data) != original:  # the file is bound by its digests: always noticed
            assert {"E203", "E204"} <= set(codes(report))
        else:
            assert codes(report) == []
    finally:
        archive.warc_path.write_bytes(original)


# --- debris ----------------------------------------------------------------------------------


def test_debris(archive: Built) -> None:
    (archive.layout.tmp_dir / "text-abc").write_bytes(b"partial")
    (archive.layout.tmp_dir / archive.manifest.capture_id).mkdir()
    (archive.layout.manifests_dir / ".tmp-x-1").write_bytes(b"{")
    assert codes(verify(archive.root)) == ["W503", "W503", "W504"]
    assert verify(archive.root).ok  # warnings only


def test_unreferenced_warc(archive: Built) -> None:
    other = archive.warc_path.parent / "20261121T000000Z-bbbbbbbbbb.warc.gz"
    other.write_bytes(archive.warc_path.read_bytes())
    assert codes(verify(archive.root)) == ["W501"]


# --- path safety -----------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    directory = tmp_path / "outside"
    directory.mkdir()
    return directory


@pytest.mark.parametrize("key", ["warc__path", "text__path"])
@pytest.mark.parametrize("bad", ["../outside/x", "/etc/passwd", "archive/../../outside/x"])
def test_unsafe_manifest_paths(archive: Built, outside: Path, key: str, bad: str) -> None:
    (outside / "x").write_bytes(b"not evidence")
    archive.rewrite_manifest(**{key: bad})
    report = verify(archive.root)
    assert "E107" in codes(report)
    assert set(codes(report)) <= {"E107", "W501"}  # the WARC is orphaned if its path was bad
    assert report.stats.bytes_hashed == 0  # nothing was opened, inside or outside


def test_symlinked_text_dir_outside_root(archive: Built, outside: Path) -> None:
    # move the fan-out directory outside and leave a symlink: the bytes are intact out there,
    # but verify must neither open them nor call them present
    text = archive.manifest.text
    assert text is not None
    fan = archive.layout.text_dir / text.blake3[:2]
    fan.rename(outside / "fan")
    os.symlink(outside / "fan", fan)
    report = verify(archive.root)
    assert "E107" in codes(report)
    assert not {"E401", "E402"} & set(codes(report))
    assert report.stats.text_objects_checked <= 1  # only the comments object, if elsewhere


def test_symlinked_warc_outside_root(archive: Built, outside: Path) -> None:
    moved = outside / archive.warc_path.name
    archive.warc_path.rename(moved)
    os.symlink(moved, archive.warc_path)
    report = verify(archive.root, deep=True)
    assert codes(report) == ["E107", "E107"]  # the manifest's path, and the swept symlink
    assert report.stats.warc_files_checked == 0 and report.stats.records_checked == 0
    assert report.stats.texts_reextracted == 0


def test_symlinked_manifest_outside_root(archive: Built, outside: Path) -> None:
    moved = outside / archive.manifest_path.name
    archive.manifest_path.rename(moved)
    os.symlink(moved, archive.manifest_path)
    report = verify(archive.root)
    assert report.stats.manifests_checked == 0
    assert codes(report) == ["E107", "W501", "W502", "W502"]


# --- the catalogue -----------------------------------------------------------------------------

PUBLISHED = {
    "E101", "E102", "E103", "E104", "E105", "E106", "E107", "E108", "W109", "W110", "W111",
    "E201", "E202", "E203", "E204", "E205", "E206", "E207", "E210", "E211", "E212", "E213",
    "E214", "W215", "E401", "E402", "E403", "E404", "E405", "E406", "W407", "E408", "W409",
    "W501", "W502", "W503", "W504", "W505", "E506",
}


def test_codes_are_stable_and_well_formed() -> None:
    with pytest.raises(ValueError):
        Code.from_code("E999")
    values = [c.value for c in Code]
    assert set(values) >= PUBLISHED, "a published finding code disappeared"
    assert len(values) == len(set(values))
    for code in Code:
        assert code.name == code.value
        assert code.value[0] in "EW" and code.value[1:].isdigit() and len(code.value) == 4
        expected = Severity.ERROR if code.value[0] == "E" else Severity.WARNING
        assert code.severity is expected
        assert code.title and code.description.endswith(".")
        assert Code.from_code(code.value) is code


def test_format_doc_is_current() -> None:
    script = REPO / "scripts" / "gen_findings_doc.py"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    result = subprocess.run([sys.executable, str(script), "--check"], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert markdown_table() in (REPO / "docs" / "format.md").read_text(encoding="utf-8")


def test_reextract_limit_matches_capture() -> None:
    assert EXTRACT_LIMIT == REEXTRACT_LIMIT


# --- parallel audit ----------------------------------------------------------------------------


def _damaged_archive(root: Path) -> Path:
    """Twelve captures, several of them damaged in different ways, plus debris."""
    built = [build(root, html=HTML.replace(b"river", f"river {i}".encode())) for i in range(12)]
    flip_byte(built[1].warc_path, 40)
    flip_byte(built[4].warc_path, built[4].warc_path.stat().st_size - 3)
    built[5].warc_path.unlink()
    text_5 = built[6].manifest.text
    assert text_5 is not None
    (root / text_5.path).chmod(0o644)
    (root / text_5.path).write_bytes(b"changed")
    (built[7].layout.manifests_dir / "copy.json").write_bytes(
        built[7].manifest_path.read_bytes())
    built[8].rewrite_manifest(previous=["20200101T000000Z-aaaaaaaaaa"])
    built[9].manifest_path.unlink()
    with built[10].warc_path.open("ab") as f:
        f.write(b"junk")
    flip_byte(built[11].manifest_path, 0)
    (root / "archive" / "tmp" / "leftover").write_bytes(b"x")
    return root


@pytest.mark.parametrize("deep", [False, True])
def test_findings_order_does_not_depend_on_workers(
    tmp_path: Path, deep: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _damaged_archive(tmp_path / "root")
    monkeypatch.setattr(verify_module, "DEEP_POOL_MIN_MANIFESTS", 0)  # processes even here
    monkeypatch.setattr(deep_module, "_SPLIT_BYTES", 0)  # records and text as two jobs
    serial = verify(root, deep=deep, workers=1)
    assert len(serial.findings) >= 10
    for workers in (2, 5):
        parallel = verify(root, deep=deep, workers=workers)
        assert [f.to_json() for f in parallel.findings] == \
            [f.to_json() for f in serial.findings]
        for name in ("manifests_checked", "warc_files_checked", "records_checked",
                     "text_objects_checked", "texts_reextracted", "bytes_hashed"):
            assert getattr(parallel.stats, name) == getattr(serial.stats, name), name


def test_reextraction_uses_the_input_bound_the_capture_recorded(archive: Built) -> None:
    from preserve.audit.deep import _input_limit  # noqa: PLC0415
    from preserve.audit.verify import LEGACY_REEXTRACT_LIMIT  # noqa: PLC0415

    assert "max_input_bytes" not in archive.manifest.extractor.settings
    assert _input_limit(archive.manifest) == LEGACY_REEXTRACT_LIMIT  # made before it was kept
    for recorded, used in ((EXTRACT_LIMIT, EXTRACT_LIMIT), (10**15, LEGACY_REEXTRACT_LIMIT),
                           (-1, LEGACY_REEXTRACT_LIMIT), ("3", LEGACY_REEXTRACT_LIMIT)):
        settings = {**archive.manifest.extractor.settings, "max_input_bytes": recorded}
        manifest = dataclasses.replace(
            archive.manifest,
            extractor=dataclasses.replace(archive.manifest.extractor, settings=settings))
        assert _input_limit(manifest) == used


# --- what the file pass keeps ------------------------------------------------------------------


def test_the_file_pass_keeps_what_it_needs_out_of_memory() -> None:
    """Manifest names with their two flags, the text objects named and the catalog row
    digests are kept in a scratch database: 20,000 manifests add under 1 MiB to the Python
    heap (the packed names, byte arrays and sets this replaced took about 200 bytes a
    capture), and it answers as they did: names once each, in ``sorted`` order across read
    chunks, flags set while walking, a text counted as hashed if any manifest hashed it."""
    import tracemalloc  # noqa: PLC0415

    from preserve.audit.file_index import FileIndex  # noqa: PLC0415

    names = [f"20260101T{n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}Z-"
             f"{'abcdefgh'[n % 8] * 10}.json" for n in range(20_000)]
    digests = [hashlib.blake2b(str(n).encode(), digest_size=32).digest() for n in range(20_000)]
    tracemalloc.start()
    try:
        with FileIndex() as index:
            before = tracemalloc.get_traced_memory()[0]
            index.add_manifests(reversed(names))
            index.add_manifests(names[:10])  # given twice, kept once
            walked = []
            for at, name in enumerate(index.manifests()):
                walked.append(at)
                index.mark(name, claimed=at % 2 == 0, own_warc=at % 3 == 0)
                index.add_texts([(digests[at], at % 5 != 0)])
                index.add_catalog_rows([digests[at][:16]])
            index.add_texts([(digests[0], True), (digests[5], False)])
            grown = tracemalloc.get_traced_memory()[0] - before - 8 * len(walked) - 200_000
            assert grown < 2**20, f"{grown} bytes held for 20,000 manifests"
            assert index.manifest_count == 20_000
            assert list(index.manifests()) == sorted(names)
            ordered = sorted(names)
            assert index.claimed_among([*ordered[:6], "absent.json"]) == set(ordered[:6:2])
            assert index.claimed(ordered[0]) and not index.claimed(ordered[1])
            assert index.own_warc(ordered[3]) and not index.own_warc(ordered[4])
            assert not index.claimed("absent.json") and not index.own_warc("absent.json")
            assert index.texts_hashed() == 20_000 - 4_000 + 1  # digests[0] hashed later
            assert index.text_named(digests[19_999]) and not index.text_named(b"\0" * 32)
            rows = index.catalog_rows()
            assert digests[7][:16] in rows and digests[7] not in rows and "x" not in rows
    finally:
        tracemalloc.stop()


def test_manifests_are_checked_in_name_order_whatever_their_bytes(tmp_path: Path) -> None:
    """Copies of one manifest under names that are not UTF-8 on disk, accented, CJK and
    ASCII: the first in Python's order of the names claims the capture id and every later
    one is E106, reported in that order (the scratch database orders as Python does; byte
    order would put the lone byte 0xF0 after the full-width yen sign)."""
    built = build(tmp_path / "root")
    data = built.manifest_path.read_bytes()
    raw = [b"\xff\xfe.json", b"\xc3\xa9t\xc3\xa9.json", "日本.json".encode(), b"Z.json",
           b"a.json", b"\xed\xa0\x80x.json", b"\xf0.json", "￥.json".encode()]
    directory = os.fsencode(built.layout.manifests_dir)
    for name in raw:
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(data)
    report = verify(built.root, workers=3)
    claimed_again = [f.path for f in report.findings if f.code == Code.E106]
    names = sorted([os.fsdecode(name) for name in raw] + [built.manifest_path.name])
    assert claimed_again == [f"manifests/{name}" for name in names[1:]]


def test_the_file_pass_runs_where_no_temporary_file_can_be_made(
        archive: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read-only media with no writable temporary directory: what the pass keeps is in an
    in-memory database, and the archive verifies as it does otherwise."""
    from preserve import scratch  # noqa: PLC0415

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    expected = verify(archive.root)
    monkeypatch.setattr(scratch.tempfile, "mkstemp", refuse)
    report = verify(archive.root)
    assert report.ok and [f.to_json() for f in report.findings] == \
        [f.to_json() for f in expected.findings]
    assert report.stats.manifests_checked == 1 and report.stats.text_objects_checked >= 1


def test_the_file_pass_answers_the_same_whatever_its_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes are buffered and claims looked up in batches: with batches of one (every
    write and lookup at once) the damaged archive gives the same findings, W110 for a
    previous capture no manifest claims included; a claim still buffered is seen; a name
    with a NUL byte (no file can have one) is refused."""
    from preserve.audit import file_index  # noqa: PLC0415

    root = _damaged_archive(tmp_path / "root")
    linked = [build(tmp_path / "linked", html=HTML.replace(b"river", f"lake {i}".encode()))
              for i in range(3)]
    first, middle, last = sorted(linked, key=lambda b: b.manifest.capture_id)
    first.rewrite_manifest(previous=[middle.manifest.capture_id, last.manifest.capture_id])
    middle.rewrite_manifest(previous=[first.manifest.capture_id, "20200101T000000Z-aaaaaaaaaa"])
    last.rewrite_manifest(previous=[last.manifest.capture_id])  # itself
    batched = [verify(root, workers=2), verify(tmp_path / "linked", workers=2)]
    assert Code.W110 in [f.code for f in batched[0].findings]
    assert [(f.code, f.capture_id) for f in batched[1].findings] == \
        [(Code.W110, middle.manifest.capture_id)]  # only the link to no manifest
    monkeypatch.setattr(file_index, "_BATCH", 1)
    monkeypatch.setattr(file_index, "_CHUNK", 1)
    monkeypatch.setattr(verify_module, "_PREVIOUS_BATCH", 1)
    for one_root, expected in zip([root, tmp_path / "linked"], batched, strict=True):
        one_by_one = verify(one_root, workers=2)
        assert [f.to_json() for f in one_by_one.findings] == \
            [f.to_json() for f in expected.findings]
    monkeypatch.undo()
    with file_index.FileIndex() as index:
        index.add_manifests(["b.json", "a.json"])
        index.mark("b.json", claimed=True, own_warc=False)  # buffered, not written
        assert index.claimed_among(["a.json", "b.json"]) == {"b.json"}
        assert not index.own_warc("b.json") and index.claimed("b.json")  # now written
        with pytest.raises(ValueError, match="NUL"):
            index.add_manifests(["c\0.json"])
