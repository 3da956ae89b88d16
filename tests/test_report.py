"""``preserve report``: the HTML and PDF capture report, checked against the manifest.

The HTML is parsed (lxml) and every fact compared with the manifest; the PDF is printed by the
system Chromium and read back with ``pdftotext`` (poppler-utils). A hostile page must not get
markup or script into the report. Chromium and pdftotext are skipped only when absent and
``CI`` is unset.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import shlex
import shutil
import ssl
import struct
import subprocess
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import lxml.html
import pytest
import trustme
from click.testing import CliRunner
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from exporting import PRESERVE, Built, build_archive, missing, navigated, tool, tsa_server
from preserve import Archive
from preserve.archive import CaptureOptions
from preserve.capture.browser import BrowserOptions, browser_problem
from preserve.capture.fetch import FetchOptions
from preserve.cli import main
from preserve.exchange import export_wacz
from preserve.exchange import report as report_module
from preserve.exchange.check import check_wacz
from preserve.hashing import hash_bytes, sha256_base32
from preserve.storage.manifest import WarcRecordRef, manifest_from_dict
from servers import TestServer, respond

HOSTILE_TITLE = "</title><script>alert('t')</script>\u202eevil.com"
HOSTILE_TEXT = ("Breaking: <script>alert('x')</script> and <img src=x onerror=alert(1)> "
                "inside the article text, with \"quotes\" & ampersands. ")


def hostile_page() -> bytes:
    escaped = (HOSTILE_TEXT.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
               .replace('"', "&quot;"))
    title = HOSTILE_TITLE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    paragraphs = "".join(f"<p>{escaped} Paragraph {i} of a long report on events.</p>"
                         for i in range(8))
    return (f"<!DOCTYPE html><html><head><title>{title}</title></head><body><article>"
            f"<h1>{title}</h1>{paragraphs}</article></body></html>").encode()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, test_ca: trustme.CA) -> Iterator[Built]:
    base = tmp_path_factory.mktemp("report")
    leaf = test_ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    ca = base / "ca.pem"
    test_ca.cert_pem.write_to_path(str(ca))
    with TestServer() as http, TestServer(ssl_context=context) as https:
        result = build_archive(base / "root", base / "config", http, https, ca)
        http.routes["/hostile"] = respond(200, hostile_page(),
                                          headers=[("Content-Type", "text/html")])
        result.ids.append(Archive(result.root, key=result.key_path).capture(
            http.url("/hostile"), CaptureOptions(operator="<b>op</b>")).capture_id)
        yield result


def html_report(built: Built, capture_id: str, tmp_path: Path) -> tuple[str, lxml.html.HtmlElement]:
    out = tmp_path / f"{capture_id}.html"
    done = subprocess.run([PRESERVE, "report", capture_id, "-o", str(out), "--json"],
                          capture_output=True, text=True, env=built.env(), timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["path"] == str(out)
    text = out.read_text(encoding="utf-8")
    return text, lxml.html.fromstring(text)


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_html_states_the_facts_of_an_https_capture(built: Built, tmp_path: Path) -> None:
    archive = Archive(built.root)
    capture_id = built.ids[2]
    m = archive.manifest(capture_id)
    page, tree = html_report(built, capture_id, tmp_path)
    shown = tree.text_content()
    flat = squeeze(shown)
    assert tree.findtext(".//h1") == m.extraction.title
    for value in (m.requested_url, m.final_url, capture_id, m.connection.remote_ip,
                  m.operator, m.host, m.software["preserve"], m.extractor.version):
        assert value in shown, value
    assert m.started.replace("T", " ").replace("Z", " UTC") in shown  # capture time in UTC
    assert len(m.redirects) == 2
    chain = tree.xpath("//h3[.='Redirect chain']/following-sibling::table[1]//tbody/tr")
    assert [row.xpath("td")[1].text for row in chain] == ["301", "200"]
    assert squeeze(chain[0].xpath("td")[3].text_content()) == m.redirects[0].location
    tls = m.connection.tls
    assert tls is not None and tls.certificate is not None
    for value in (tls.version, tls.cipher, tls.certificate.subject, tls.certificate.issuer,
                  tls.certificate.sha256_fingerprint, tls.certificate.serial_number):
        assert value in shown, value
    assert tls.certificate.not_after.replace("T", " ").replace("Z", " UTC") in shown
    for paragraph in archive.text(capture_id).split("\n\n")[:5]:
        assert squeeze(paragraph) in flat
    digests = hash_bytes((built.root / "manifests" / f"{capture_id}.json").read_bytes())
    assert m.text is not None
    for value in (digests.sha256, digests.blake3, m.warc.sha256, m.warc.blake3, m.text.blake3,
                  *(r.block_digest for r in m.warc.records)):
        assert value in flat, value
    assert "No screenshot (HTTP capture)" in shown
    checkpoint = (built.root / "manifests/log/checkpoint").read_text()
    assert tree.xpath("//h3[.='Signed checkpoint']/following-sibling::pre[1]")[0].text == \
        checkpoint
    subprocess.run([PRESERVE, "prove", capture_id, "-o", str(tmp_path / "p.json")],
                   env=built.env(), capture_output=True, check=True)
    proof = json.loads((tmp_path / "p.json").read_text())
    for value in proof["inclusion_proof"]["hashes"]:
        assert value in shown
    assert "The proof holds" in shown and "no RFC 3161 timestamp" in shown
    howto = tree.xpath("//section[@class='howto']/pre")[0].text
    assert f"sha256sum {m.warc.path}" in howto and f"#   expect {m.warc.sha256}" in howto
    key = shlex.quote(proof["verifier_key"])
    assert f"preserve check-proof proof.json --trusted-key {key}" in howto
    assert "warcio check -v" in howto and "preserve verify --deep --no-record" in howto
    assert "http://" not in page.split("<body>")[0].replace("http-equiv", "")  # no remote refs


def test_a_hostile_page_cannot_inject_markup(built: Built, tmp_path: Path) -> None:
    capture_id = built.ids[3]
    page, tree = html_report(built, capture_id, tmp_path)
    assert tree.xpath("//script") == []
    assert tree.xpath("//img") == []  # no screenshot, and nothing from the page
    assert tree.xpath("//a") == []
    assert not [a for el in tree.iter() for a in getattr(el, "attrib", {})
                if a.lower().startswith("on")]
    assert "default-src 'none'" in tree.xpath("//meta[@http-equiv]/@content")[0]
    shown = tree.text_content()
    assert "<script>alert('x')</script>" in shown  # quoted as text, visibly
    assert "<img src=x onerror=alert(1)>" in shown
    assert "⟨U+202E⟩evil.com" in tree.findtext(".//h1")  # the bidi override made visible
    assert "<b>op</b>" in shown and "<b>op</b>" not in page
    assert "&lt;script&gt;" in page and "<script>" not in page.lower().replace(
        "&lt;script&gt;", "")


def test_html_without_a_log_proof_says_so(built: Built, tmp_path: Path) -> None:
    root = tmp_path / "nolog"
    shutil.copytree(built.root, root, ignore=shutil.ignore_patterns("log"))
    html = report_module.render_html(report_module.gather(Archive(root), built.ids[0]))
    assert "No inclusion proof: the archive has no integrity log." in html


# --- screenshots ------------------------------------------------------------------------------


def png(width: int = 40, height: int = 20) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\0" + b"\xcc\x22\x22" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def with_screenshot(built: Built, dest: Path, image: bytes, *, digest: str | None = None) -> str:
    """A copy of the news capture whose WARC gains a screenshot ``resource`` record, as a
    browser capture writes one, and whose manifest lists it (an archive without a log)."""
    archive = Archive(built.root)
    m = archive.manifest(built.ids[0])
    shutil.copytree(built.root / "archive", dest / "archive")
    (dest / "manifests").mkdir(parents=True)
    warc = dest / m.warc.path
    warc.chmod(0o644)
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    record = writer.create_warc_record(
        "urn:preserve:screenshot:" + m.final_url, "resource", payload=io.BytesIO(image),
        warc_content_type="image/png",
        warc_headers_dict={"WARC-Date": m.ended})
    writer.write_record(record)
    old = warc.read_bytes()
    warc.write_bytes(old + buffer.getvalue())
    document = m.to_dict()
    record_id = record.rec_headers.get_header("WARC-Record-ID").strip("<>")
    block = digest or sha256_base32(hashlib.sha256(image).digest())
    document["warc"]["records"].append({
        "id": record_id, "type": "resource", "target_uri": "urn:preserve:screenshot:" +
        m.final_url, "offset": len(old), "length": len(buffer.getvalue()),
        "block_digest": block, "payload_digest": block, "refers_to": None,
        "content_type": "image/png"})
    digests = hash_bytes(warc.read_bytes())
    document["warc"].update(size=digests.size, sha256=digests.sha256, blake3=digests.blake3)
    (dest / "manifests" / f"{m.capture_id}.json").write_bytes(
        manifest_from_dict(document).to_bytes())
    return m.capture_id


def test_the_screenshot_is_shown_when_the_manifest_names_one(built: Built,
                                                             tmp_path: Path) -> None:
    image = png()
    capture_id = with_screenshot(built, tmp_path / "shot", image)
    data = report_module.gather(Archive(tmp_path / "shot"), capture_id)
    assert data.screenshot is not None and data.screenshot[1] == image
    tree = lxml.html.fromstring(report_module.render_html(data))
    sources = tree.xpath("//figure//img/@src")
    assert sources == ["data:image/png;base64," + base64.b64encode(image).decode()]
    assert "No screenshot" not in tree.text_content()


def test_a_screenshot_that_fails_its_digest_is_not_shown(built: Built, tmp_path: Path) -> None:
    wrong = sha256_base32(hashlib.sha256(b"something else").digest())
    capture_id = with_screenshot(built, tmp_path / "bad", png(), digest=wrong)
    html = report_module.render_html(report_module.gather(Archive(tmp_path / "bad"),
                                                          capture_id))
    assert "<img" not in html
    assert "do not match its recorded digest; not shown" in html


def row(tree: lxml.html.HtmlElement, label: str) -> str:
    cells = tree.xpath(f"//tr[th='{label}']/td")
    assert len(cells) == 1, label
    return str(cells[0].text_content())


def test_after_a_client_side_navigation_the_rendered_page_is_named(built: Built,
                                                                   tmp_path: Path) -> None:
    """A browser capture whose page changed the address after it loaded: the screenshot,
    title and text are of the rendered page (``browser.page_url``), and the report says so
    where it shows them; the final URL stays what the HTTP request reached. The rendered
    address came from the page: it is escaped like every URL and linked nowhere."""
    capture_id = with_screenshot(built, tmp_path / "nav", png())
    data = report_module.gather(Archive(tmp_path / "nav"), capture_id)
    assert data.screenshot is not None
    m = data.manifest
    base = m.final_url.rsplit("/", 1)[0]
    rendered = base + "/next.html?<script>alert(1)</script>\u202e"
    shown = base + "/next.html?<script>alert(1)</script>⟨U+202E⟩"
    data.capture = dataclasses.replace(
        data.capture, manifest=navigated(m, rendered, screenshot=data.screenshot[2].id))
    page = report_module.render_html(data)
    tree = lxml.html.fromstring(page)
    assert tree.xpath("//script") == [] and tree.xpath("//a") == []
    assert "<script>alert(1)" not in page
    assert tree.findtext(".//h1") == m.extraction.title
    assert tree.xpath("//header/p[@class='url']")[0].text_content() == shown  # the title's page
    header = squeeze(tree.xpath("//header/p[@class='note']")[0].text_content())
    assert squeeze(f"the title and the text are of the rendered page {shown}") in header
    assert squeeze(f"ended at the final URL {m.final_url}") in header
    assert row(tree, "Final URL").startswith(m.final_url + " (where the HTTP request")
    rendered_row = row(tree, "Rendered page")
    assert rendered_row.startswith(shown + " (the address the browser showed")
    assert "the browser loaded this document: HTTP 200" in rendered_row
    caption = squeeze(tree.xpath("//figcaption")[0].text_content())
    assert squeeze(f"It shows the rendered page at {shown}, not the final URL") in caption
    assert row(tree, "Taken from") == shown + " (the browser's rendered DOM, when the snapshot " \
        "was taken)"

    pushed = navigated(m, rendered, loaded=False, from_dom=False)
    data.capture = dataclasses.replace(data.capture, manifest=pushed)
    tree = lxml.html.fromstring(report_module.render_html(data))
    assert "no document response for this address was recorded, as when a script changes " \
        "the address without loading a document (history.pushState)" in row(tree, "Rendered page")
    assert tree.xpath("//header/p[@class='url']")[0].text_content() == m.final_url
    assert "The title and text are those of the final URL's response" in \
        tree.xpath("//header/p[@class='note']")[0].text_content()
    assert row(tree, "Taken from") == m.final_url + " (the final HTTP response)"


NAVIGATING = (b"<!DOCTYPE html><html><head><title>Front door</title></head><body><p>Wait."
              b"</p><script>addEventListener('load', () => setTimeout(() => "
              b"{ location.href = '/minutes'; }, 50));</script></body></html>")
MINUTES = (b"<!DOCTYPE html><html><head><title>Council minutes</title></head><body><article>"
           b"<h1>Council minutes</h1>" + b"<p>The council voted seven to two to close the "
           b"harbour road after a long debate that ran late into the evening.</p>" * 4 +
           b"</article></body></html>")


@pytest.mark.skipif(browser_problem() is not None and not os.environ.get("CI"),
                    reason=f"{browser_problem()} (never skipped when CI is set)")
def test_a_browser_capture_names_the_page_a_script_navigated_to(tmp_path: Path) -> None:
    """The page the browser was sent to loads another document by script: the manifest's
    final URL is the first, the screenshot, title and text are of the second. The report
    names the rendered page beside them, and the WACZ page is the second document (recorded,
    so replay loads it), which check-export derives again."""
    html = [("Content-Type", "text/html; charset=utf-8")]
    with TestServer() as site:
        site.routes["/door"] = respond(200, NAVIGATING, headers=html)
        site.routes["/minutes"] = respond(200, MINUTES, headers=html)
        archive = Archive(tmp_path / "root")
        archive.init(key_name="test.example/navigation")
        capture_id = archive.capture(site.url("/door"), CaptureOptions(
            fetch=FetchOptions(timeout=25.0),
            browser=BrowserOptions(settle=2.0, pdf=False))).capture_id
        door, minutes = site.url("/door"), site.url("/minutes")
    m = archive.manifest(capture_id)
    assert m.browser is not None and m.extraction.source is not None
    assert (m.final_url, m.browser.page_url) == (door, minutes)
    assert m.extraction.source.kind == "rendered-dom"
    assert m.extraction.title == "Council minutes"
    document = next(r for r in m.browser.resources if r.url == minutes)
    assert document.resource_type == "document"

    tree = lxml.html.fromstring(report_module.render_html(report_module.gather(archive,
                                                                               capture_id)))
    assert tree.findtext(".//h1") == "Council minutes"
    assert tree.xpath("//header/p[@class='url']")[0].text_content() == minutes
    assert row(tree, "Final URL").startswith(door + " (where the HTTP request")
    assert row(tree, "Rendered page").startswith(minutes + " (the address the browser showed")
    assert squeeze(f"It shows the rendered page at {minutes}") in squeeze(
        tree.xpath("//figcaption")[0].text_content())
    assert row(tree, "Taken from").startswith(minutes)
    shown = CliRunner().invoke(main, ["--root", str(archive.root), "show", capture_id])
    assert f"rendered {minutes} (screenshot, PDF, DOM; not the final URL)" in shown.output

    out = tmp_path / "navigation.wacz"
    export_wacz(archive, [capture_id], out)
    with zipfile.ZipFile(out) as z:
        page = json.loads(z.read("pages/pages.jsonl").splitlines()[1])
        package = json.loads(z.read("datapackage.json"))
    assert (page["url"], page["ts"], page["title"]) == (minutes, document.started,
                                                       "Council minutes")
    assert "seven to two" in page["text"]
    assert (package["mainPageUrl"], package["mainPageDate"]) == (minutes, document.started)
    checked = check_wacz(out)
    assert checked.ok, checked.problems


def test_screenshot_rule() -> None:
    def ref(kind: str, target: str, ctype: str) -> WarcRecordRef:
        return WarcRecordRef("urn:uuid:x", kind, target, 0, 1, "sha256:A", None, None, ctype)

    other = ref("resource", "urn:preserve:favicon", "image/png")
    shot = ref("resource", "urn:preserve:screenshot:https://e.org/", "image/png")
    response = ref("response", "https://e.org/screenshot.png", "application/http")
    assert report_module.find_screenshot([response, other, shot]) is shot
    assert report_module.find_screenshot([response, other]) is other
    assert report_module.find_screenshot([response]) is None
    assert report_module.find_screenshot([ref("resource", "x", "image/svg+xml")]) is None


# --- PDF ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pdf_text(built: Built, tmp_path_factory: pytest.TempPathFactory) -> str:
    if report_module.find_chromium() is None:
        missing("Chromium not installed: PDF reports cannot be printed")
    pdftotext = tool("pdftotext")
    out = tmp_path_factory.mktemp("pdf") / "report.pdf"
    done = subprocess.run([PRESERVE, "report", built.ids[2], "-o", str(out)],
                          capture_output=True, text=True, env=built.env(), timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"%PDF-")
    assert [p.name for p in out.parent.iterdir()] == ["report.pdf"]
    return subprocess.run([pdftotext, "-layout", str(out), "-"], capture_output=True,
                          text=True, check=True).stdout


def test_pdf_states_the_same_facts(built: Built, pdf_text: str) -> None:
    m = Archive(built.root).manifest(built.ids[2])
    flat = squeeze(pdf_text)
    tls = m.connection.tls
    assert tls is not None and tls.certificate is not None
    for value in (m.capture_id, m.final_url, m.requested_url, m.warc.sha256, m.warc.blake3,
                  tls.certificate.sha256_fingerprint, m.connection.remote_ip,
                  "Howtocheckthisyourself", "Theproofholds", "noRFC3161timestamp"):
        assert squeeze(value) in flat, value
    assert squeeze(Archive(built.root).text(m.capture_id).split("\n\n")[1]) in flat


def test_pdf_without_chromium_is_a_clear_error(built: Built, tmp_path: Path) -> None:
    done = subprocess.run([PRESERVE, "report", built.ids[0], "-o", str(tmp_path / "r.pdf")],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=built.env(PRESERVE_CHROMIUM=str(tmp_path / "no-chromium")))
    assert done.returncode == 3
    assert done.stderr.strip().count("\n") == 0 and "needs Chromium" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_rfc3161_status_and_timestamped_exports(built: Built, tmp_path: Path) -> None:
    """A checkpoint stamped by a TSA: the report gives the TSA's time, verified with the roots;
    both exports carry the token."""
    root = tmp_path / "root"
    shutil.copytree(built.root, root)
    with tsa_server(tmp_path / "tsa") as (url, tsa_dir):
        done = subprocess.run([PRESERVE, "--root", str(root), "--tsa", url, "checkpoint"],
                              env=built.env(), capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    archive = Archive(root)
    html = report_module.render_html(report_module.gather(archive, built.ids[0]))
    assert "Time asserted by the TSA" in html and "signature was not checked here" in html
    assert "openssl ts -verify -data manifests/log/checkpoints/" in html
    checked = report_module.gather(archive, built.ids[0], tsa_roots=tsa_dir / "ca.pem")
    assert checked.timestamp["state"] == "verified"
    assert "(verified)" in report_module.render_html(checked)
    env = built.env(PRESERVE_ROOT=str(root))
    for kind, out in (("--wacz", tmp_path / "t.wacz"), ("--bagit", tmp_path / "bag")):
        done = subprocess.run([PRESERVE, "export", built.ids[0], kind, str(out)], env=env,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    token = next((root / "manifests/log/checkpoints").glob("*.tsr")).read_bytes()
    with zipfile.ZipFile(tmp_path / "t.wacz") as z:
        assert z.read("log/checkpoint.tsr") == token
    assert next((tmp_path / "bag/data/manifests/log/checkpoints").glob("*.tsr")).read_bytes() \
        == token
    verified = subprocess.run([PRESERVE, "--root", str(tmp_path / "bag/data"), "verify",
                               "--no-record", "--tsa-roots", str(tsa_dir / "ca.pem")],
                              env=env, capture_output=True, text=True, check=False)
    codes = {line.split()[0] for line in verified.stdout.splitlines()[:-1]}
    assert codes == {"W307", "W308"}, verified.stdout  # a signed partial bag; the token holds


def test_a_report_is_never_written_into_the_archive(built: Built, tmp_path: Path) -> None:
    """As for exports: -o below archive/ or manifests/ (also through a symlink) is refused
    with one line and exit 3, and nothing is created there."""
    link = tmp_path / "link"
    link.symlink_to(built.root / "archive" / "warc")
    before = sorted(p for p in built.root.rglob("*") if p.name != ".lock")
    for out in (built.root / "archive" / "r.html", built.root / "manifests" / "r.pdf",
                link / "r.html", built.root / "manifests" / "log" / "r.html"):
        done = subprocess.run([PRESERVE, "report", built.ids[0], "-o", str(out)],
                              capture_output=True, text=True, env=built.env(), timeout=120,
                              check=False)
        assert done.returncode == 3, (out, done.stderr)
        assert done.stderr.count("\n") == 1 and "inside the archive" in done.stderr
    assert sorted(p for p in built.root.rglob("*") if p.name != ".lock") == before


def _imported_and_reported(source: Path, tmp_path: Path) -> str:
    """The HTML report of the one page of ``source``, imported into a new archive (CLI)."""
    root = tmp_path / "root"
    env = {**os.environ, "PRESERVE_CONFIG_HOME": str(tmp_path / "config")}
    for args in (["init", "--key-name", "test.example/imported"], ["import", str(source)]):
        done = subprocess.run([PRESERVE, "--root", str(root), *args], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    capture_id = next((root / "manifests").glob("*.json")).stem
    out = tmp_path / "r.html"
    done = subprocess.run([PRESERVE, "--root", str(root), "report", capture_id, "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return out.read_text(encoding="utf-8")


def test_a_screenshot_in_an_imported_file_is_labelled_as_the_files_claim(
        tmp_path: Path) -> None:
    """An imported WARC file may carry an image record named like preserve's screenshots and
    linked to the page: the report showed it as "Screenshot taken by the capturing browser",
    preserve's own word for what an imported file merely claims."""
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    source = tmp_path / "other-tool.warc"
    with source.open("wb") as out:
        writer = WARCWriter(out, gzip=False)
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        page = writer.create_warc_record(
            "http://example.org/shot", "response", http_headers=http,
            payload=io.BytesIO(b"<html><title>t</title><p>Plain words of a page.</p></html>"))
        writer.write_record(page)
        writer.write_record(writer.create_warc_record(
            "urn:preserve:screenshot:http://example.org/shot", "resource",
            payload=io.BytesIO(png), warc_content_type="image/png",
            warc_headers_dict={"WARC-Concurrent-To":
                               page.rec_headers.get_header("WARC-Record-ID")}))
    html = _imported_and_reported(source, tmp_path)
    assert "the file&#x27;s claim, not a screenshot preserve took" in html
    assert "taken by the capturing browser" not in html


def test_claims_of_an_imported_file_are_shown_literally(tmp_path: Path) -> None:
    """An imported file's own claims (its name, WARC-Date, status reason, record digests)
    reached the report HTML-escaped only: a NUL in the WARC-Date put a NUL in the HTML and a
    right-to-left override in the date made it read otherwise."""
    source = tmp_path / "evil\x1b[8mgpj.warc"
    with source.open("wb") as out:
        writer = WARCWriter(out, gzip=False)
        http = StatusAndHeaders("200 O\x1b[8mK\x01", [("Content-Type", "text/html")],
                                protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(
            "http://example.org/claims", "response", http_headers=http,
            payload=io.BytesIO(b"<html><title>t</title><p>Plain words of a page.</p></html>"),
            warc_headers_dict={"WARC-Date": "\x00 2020-01-01T00:00:00Z \u202eevil"}))
    page = _imported_and_reported(source, tmp_path)
    hidden = sorted({f"U+{ord(c):04X}" for c in page
                     if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t"})
    assert hidden == [], hidden
    assert "⟨U+0000⟩ 2020-01-01T00:00:00Z ⟨U+202E⟩evil" in page
    assert "evil⟨U+001B⟩[8mgpj.warc" in page and "200 O⟨U+001B⟩[8mK⟨U+0001⟩" in page
