"""The capture pipeline end to end: a real server, a real archive, real WARC readers."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

import preserve
from preserve.hashing import hash_file
from servers import TestServer, drip, redirect, respond, stream_bytes

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
HTML = [("Content-Type", "text/html; charset=utf-8")]


def _warcio(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("warcio")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)


@pytest.fixture
def archive(tmp_path: Path) -> preserve.Archive:
    return preserve.Archive(tmp_path / "root")


def _options(ca_bundle: Path | None = None, **fetch: object) -> preserve.CaptureOptions:
    return preserve.CaptureOptions(
        fetch=preserve.FetchOptions(ca_bundle=ca_bundle, **fetch),  # type: ignore[arg-type]
        operator="test operator",
    )


def _committed_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "manifests").glob("*.json")) if root.exists() else []


def test_capture_news_page_over_https_with_redirects(
    https_server: TestServer, ca_bundle: Path, archive: preserve.Archive
) -> None:
    https_server.routes["/a"] = redirect("/b", status=301)
    https_server.routes["/b"] = redirect("/news.html", status=302)
    https_server.routes["/news.html"] = respond(200, (SEEDS / "news.html").read_bytes(),
                                                headers=HTML, chunked=True)
    result = archive.capture(https_server.url("/a"), _options(ca_bundle))

    assert result.status == "ok" and result.http_status == 200
    assert result.title == "A massacre in Iraq that must have pleased Tehran"
    text = archive.text(result.capture_id)
    assert "Sometime in the past six months" in text
    assert "Latest news" not in text and "Enlarge Image" not in text

    m = archive.manifest(result.capture_id)
    assert [hop.status for hop in m.redirects] == [301, 302, 200]
    assert m.final_url == https_server.url("/news.html")
    tls = m.connection.tls
    assert tls is not None and tls.verified and tls.version.startswith("TLSv1.")
    assert tls.certificate is not None
    assert tls.certificate.sha256_fingerprint == hashlib.sha256(
        https_server.certificate_der or b"").hexdigest()
    assert m.operator == "test operator"
    assert m.extractor.name == "preserve"

    # The WARC file: named digests match, warcio check passes, 3 request/response pairs.
    warc_path = archive.root / m.warc.path
    digests = hash_file(warc_path)
    assert (digests.sha256, digests.blake3, digests.size) == (m.warc.sha256, m.warc.blake3,
                                                              m.warc.size)
    check = _warcio("check", "-v", str(warc_path))
    assert check.returncode == 0, check.stdout + check.stderr
    with warc_path.open("rb") as f:
        records = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"))
                   for r in ArchiveIterator(f)]
    types = [t for t, _ in records]
    assert types[:7] == ["warcinfo"] + ["request", "response"] * 3
    assert types[-1] == "conversion" and set(types[7:-1]) == {"metadata"}
    # Every record the manifest names is where it says.
    with warc_path.open("rb") as f:
        for ref in m.warc.records:
            f.seek(ref.offset)
            record = next(iter(ArchiveIterator(f)))
            assert record.rec_headers.get_header("WARC-Record-ID") == f"<{ref.id}>"
    assert archive.verify(deep=True).ok


def test_capture_blog_keeps_comments_apart(http_server: TestServer,
                                           archive: preserve.Archive) -> None:
    http_server.routes["/post"] = respond(200, (SEEDS / "blog.html").read_bytes(), headers=HTML)
    result = archive.capture(http_server.url("/post"), _options())
    m = archive.manifest(result.capture_id)
    assert m.comments is not None and m.text is not None
    comments = archive.store.get(m.comments.blake3).decode()
    assert comments.strip() and comments[:40] not in archive.text(result.capture_id)
    expected = (SEEDS / "blog.expected.txt").read_text(encoding="utf-8")
    assert archive.text(result.capture_id) == expected


def test_same_text_stored_once_and_recaptures_linked(http_server: TestServer,
                                                     archive: preserve.Archive) -> None:
    http_server.routes["/n"] = respond(200, (SEEDS / "news.html").read_bytes(), headers=HTML)
    first = archive.capture(http_server.url("/n"), _options())
    second = archive.capture(http_server.url("/n"), _options())
    assert first.capture_id != second.capture_id
    assert first.text_blake3 == second.text_blake3
    objects = [p for p in (archive.root / "archive" / "text").rglob("*") if p.is_file()]
    assert len(objects) == 1
    assert archive.manifest(second.capture_id).previous == (first.capture_id,)
    # every sealed file is read-only: the WARC files too, as the objects and manifests
    sealed = [*objects, archive.root / first.manifest_path,
              archive.root / archive.manifest(first.capture_id).warc.path]
    assert {stat.S_IMODE(p.stat().st_mode) for p in sealed} == {0o444}
    assert [c.capture_id for c in archive.captures()] == [first.capture_id, second.capture_id]


def test_http_error_is_kept_as_evidence(http_server: TestServer,
                                        archive: preserve.Archive) -> None:
    http_server.routes["/gone"] = respond(410, b"<html><body><p>Gone.</p></body></html>",
                                          headers=HTML)
    result = archive.capture(http_server.url("/gone"), _options())
    assert result.http_status == 410 and result.status == "http-error" and not result.ok
    assert archive.verify(deep=True).ok


def test_non_html_is_kept_without_text(http_server: TestServer,
                                       archive: preserve.Archive) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    http_server.routes["/doc.pdf"] = respond(200, pdf, headers=[("Content-Type",
                                                                 "application/pdf")])
    result = archive.capture(http_server.url("/doc.pdf"), _options())
    assert result.status == "not-html" and result.text_blake3 is None
    assert result.reason is not None and "application/pdf" in result.reason
    m = archive.manifest(result.capture_id)
    assert m.text is None and m.extraction.reason == result.reason
    with (archive.root / m.warc.path).open("rb") as f:
        bodies = [r.content_stream().read() for r in ArchiveIterator(f)
                  if r.rec_type == "response"]
    assert bodies == [pdf]
    assert archive.verify(deep=True).ok


@pytest.mark.parametrize(
    ("route", "options", "error"),
    [
        ("big", {"max_body_size": 10_000}, preserve.TooLargeError),
        ("slow", {"timeout": 0.5}, preserve.CaptureTimeoutError),
    ],
)
def test_failed_capture_commits_nothing(http_server: TestServer, archive: preserve.Archive,
                                        route: str, options: dict[str, object],
                                        error: type[Exception]) -> None:
    http_server.routes["/big"] = stream_bytes(1_000_000)
    http_server.routes["/slow"] = drip(b"x" * 1000, interval=0.05)
    with pytest.raises(error):
        archive.capture(http_server.url("/" + route), _options(**options))
    root = archive.root
    assert _committed_files(root) == []
    assert not list((root / "archive" / "warc").rglob("*.warc.gz"))
    assert not list((root / "archive" / "tmp").iterdir())
    assert archive.verify().ok


def test_rolled_back_archive_gets_no_capture(http_server: TestServer, tmp_path: Path) -> None:
    """A single capture checks the known head under the archive lock, after its fetch: an
    older copy of the archive restored in place gets nothing, and nothing is left behind."""
    http_server.routes["/a"] = respond(200, b"<title>a</title><p>first page</p>", headers=HTML)
    root = tmp_path / "root"
    archive = preserve.Archive(root)
    archive.init()
    archive.capture(http_server.url("/a"), _options())
    older = tmp_path / "older"
    shutil.copytree(root, older)
    archive.capture(http_server.url("/a"), _options())  # the known head moves on
    shutil.rmtree(root)
    shutil.copytree(older, root)
    before = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

    with pytest.raises(preserve.NotProvedError, match="rolled back"):
        preserve.Archive(root).capture(http_server.url("/a"), _options())
    assert sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()) == before
    assert not list((root / "archive" / "tmp").iterdir())


def test_bad_input_raises_before_touching_disk(tmp_path: Path) -> None:
    archive = preserve.Archive(tmp_path / "never-created")
    with pytest.raises(preserve.UnsupportedSchemeError):
        archive.capture("ftp://example.org/file")
    with pytest.raises(preserve.InvalidURLError):
        archive.capture("http://")
    assert not (tmp_path / "never-created").exists()


def test_refused_and_untrusted(untrusted_https_server: TestServer, ca_bundle: Path,
                               archive: preserve.Archive) -> None:
    untrusted_https_server.routes["/"] = respond(200, b"<p>hi</p>", headers=HTML)
    with pytest.raises(preserve.TLSError):
        archive.capture(untrusted_https_server.url("/"), _options(ca_bundle))
    with pytest.raises(preserve.ConnectError):
        archive.capture("http://127.0.0.1:9/", _options())  # discard port: nothing listens
    assert _committed_files(archive.root) == []
    insecure = archive.capture(untrusted_https_server.url("/"),
                               _options(ca_bundle, verify_tls=False))
    tls = archive.manifest(insecure.capture_id).connection.tls
    assert tls is not None and tls.verified is False


def test_manifest_bytes_are_canonical_and_match_result(http_server: TestServer,
                                                       archive: preserve.Archive) -> None:
    http_server.routes["/"] = respond(200, (SEEDS / "news.html").read_bytes(), headers=HTML)
    result = archive.capture(http_server.url("/"), _options())
    path = archive.root / result.manifest_path
    data = path.read_bytes()
    assert hash_file(path).blake3 == result.manifest_blake3
    document = json.loads(data)
    assert data.decode() == json.dumps(document, sort_keys=True, indent=2,
                                       ensure_ascii=False) + "\n"
    assert document["schema"] == "preserve/manifest/2"
    software = document["software"]
    assert software["preserve"] == preserve.__version__ and "python" in software


def test_capture_records_its_extraction_input_bound(tmp_path: Path, http_server: TestServer
                                                    ) -> None:
    from preserve.archive import EXTRACT_LIMIT  # noqa: PLC0415

    http_server.routes["/"] = respond(200, b"<html><body><p>Hello there.</p></body></html>",
                                      headers=[("Content-Type", "text/html")])
    archive = preserve.Archive(tmp_path / "a")
    m = archive.manifest(archive.capture(http_server.url("/")).capture_id)
    assert m.extractor.settings["max_input_bytes"] == EXTRACT_LIMIT


@pytest.mark.parametrize("route", ["pdf", "empty", "no-content", "unsupported-redirect"])
def test_a_capture_without_text_has_a_canonical_manifest(http_server: TestServer,
                                                        archive: preserve.Archive,
                                                        route: str) -> None:
    """No text means no extraction method: the manifest leaves the field out, as verify's own
    serialisation does, instead of writing it as null (then every such capture was W109)."""
    http_server.routes["/pdf"] = respond(200, b"%PDF-1.4\n", headers=[("Content-Type",
                                                                       "application/pdf")])
    http_server.routes["/empty"] = respond(200, b"", headers=HTML)
    http_server.routes["/no-content"] = respond(204)
    http_server.routes["/unsupported-redirect"] = redirect("ftp://127.0.0.1/file")
    result = archive.capture(http_server.url("/" + route), _options())
    assert result.text_blake3 is None
    data = (archive.root / "manifests" / f"{result.capture_id}.json").read_bytes()
    assert b'"method": null' not in data
    assert archive.manifest(result.capture_id).to_bytes() == data
    report = archive.verify(deep=True)
    assert report.ok and "W109" not in [f.code.value for f in report.findings]
