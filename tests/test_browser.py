"""Browser capture end to end, with the system Chromium: a local site over HTTPS (test CA)
whose look and text depend on everything a browser loads, captured once per session and
checked record by record; replayed in pywb and compared with the capture-time screenshot;
and hostile pages (never quiet, thousands of requests, endless bodies, private redirects,
popups, renderer crash, SIGKILL) that must end in time and leave no browser behind.

These tests skip only when no browser is installed *and* the ``CI`` variable is unset (they
say why); in CI they run. About eight real browser launches in all.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import sync_playwright
from warcio.archiveiterator import ArchiveIterator

import preserve
from browser_site import (
    PNG_DIFFERENCE_JS,
    STORY_SENTENCE,
    png_size,
    story_routes,
    wait_until,
)
from preserve.capture import browser as browser_module
from preserve.capture.browser import BrowserOptions, browser_problem
from preserve.capture.fetch import parse_url
from preserve.cli import main
from servers import (
    TestServer,
    chunk_encode,
    ragged_tls,
    raw,
    redirect,
    respond,
    stream_bytes,
)

PROBLEM = browser_problem()
pytestmark = pytest.mark.skipif(
    PROBLEM is not None and not os.environ.get("CI"),
    reason=f"{PROBLEM} (these tests never skip when CI is set)",
)
VENV_BIN = Path(sys.executable).parent
CLI = [sys.executable, "-c", "from preserve.cli import main; main()"]
PYWB_PYTHON = os.environ.get("PRESERVE_PYWB_PYTHON", "")
TIMEOUT = 25.0
HTML = [("Content-Type", "text/html; charset=utf-8")]


def _options(ca_bundle: Path | None = None, timeout: float = TIMEOUT, **browser: Any
             ) -> preserve.CaptureOptions:
    fetch = preserve.FetchOptions(timeout=timeout, ca_bundle=ca_bundle)
    settings: dict[str, Any] = {"settle": 2.0, **browser}
    return preserve.CaptureOptions(fetch=fetch, browser=BrowserOptions(**settings))


def _records(path: Path) -> list[tuple[dict[str, str], bytes]]:
    with path.open("rb") as f:
        return [(dict(r.rec_headers.headers), r.raw_stream.read())
                for r in ArchiveIterator(f, no_record_parse=True)]


def _browser_processes(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line has ``marker``, and their groups."""
    table: dict[int, tuple[bool, int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            line = Path(f"/proc/{name}/cmdline").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        table[int(name)] = (marker.encode() in line, int(fields[2]), fields[0].decode())
    groups = {pgid for ours, pgid, _ in table.values() if ours}
    return [pid for pid, (ours, pgid, state) in table.items()
            if (ours or pgid in groups) and state != "Z" and pid != os.getpid()]


# --- the story site, captured once -----------------------------------------------------------


@dataclass
class Story:
    server: TestServer
    archive: preserve.Archive
    result: preserve.CaptureResult
    manifest: preserve.Manifest
    warc: Path
    records: list[tuple[dict[str, str], bytes]]
    seconds: float

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return self.server.url(path, host=host)

    def record(self, record_id: str) -> tuple[dict[str, str], bytes]:
        return next(r for r in self.records if r[0]["WARC-Record-ID"] == f"<{record_id}>")


@pytest.fixture(scope="session")
def story_server(test_ca: trustme.CA) -> Iterator[TestServer]:
    leaf = test_ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    pem = leaf.cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    with TestServer(ssl_context=context, certificate_der=der) as server:
        server.routes.update(story_routes(server.url("", host="localhost").rstrip("/")))
        yield server


@pytest.fixture(scope="session")
def story(story_server: TestServer, ca_bundle: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Story:
    archive = preserve.Archive(tmp_path_factory.mktemp("story"))
    started = time.monotonic()
    result = archive.capture(story_server.url("/story"), _options(ca_bundle))
    seconds = time.monotonic() - started
    warc = archive.root / result.warc_path
    return Story(story_server, archive, result, archive.manifest(result.capture_id), warc,
                 _records(warc), seconds)


def test_every_resource_is_a_request_response_pair_as_it_crossed_the_wire(story: Story) -> None:
    expected = {
        story.url("/story"): 200, story.url("/style.css"): 302,
        story.url("/css/site.css"): 200, story.url("/fonts/story.ttf"): 200,
        story.url("/img/bg.png"): 200, story.url("/img/logo.png"): 200,
        story.url("/img/lazy.png"): 200, story.url("/api/story.json"): 200,
        story.url("/app.js"): 200, story.url("/missing.js"): 404,
        story.url("/media/clip.mp4"): 200,
        story.url("/frame.html", host="localhost"): 200,
        story.url("/img/frame.png", host="localhost"): 200,
    }
    responses = {h["WARC-Target-URI"]: (h, block) for h, block in story.records
                 if h["WARC-Type"] == "response"}
    requests = {h["WARC-Concurrent-To"]: (h, block) for h, block in story.records
                if h["WARC-Type"] == "request"}
    for url, status in expected.items():
        assert url in responses, f"{url} not recorded; have {sorted(responses)}"
        headers, block = responses[url]
        assert block.startswith(f"HTTP/1.1 {status} ".encode())
        assert headers["WARC-IP-Address"] == "127.0.0.1"
        assert re.fullmatch(r"tls/1\.[23]", headers["WARC-Protocol"])
        assert headers["WARC-Cipher-Suite"]
        assert "WARC-Truncated" not in headers
        request_headers, request = requests[headers["WARC-Record-ID"]]
        path = "/" + url.split("/", 3)[3]
        assert request.startswith(f"GET {path} HTTP/1.1\r\n".encode())
        assert b"\r\nHost: " in request and b"preserve-capture-token" not in request.lower()
        assert request_headers["WARC-Target-URI"] == url
    # the chunked JSON is stored de-chunked, the framing header renamed (docs/format.md)
    _, story_json = responses[story.url("/api/story.json")]
    assert b"X-Preserve-Original-Transfer-Encoding: chunked" in story_json
    assert json.loads(story_json.split(b"\r\n\r\n", 1)[1])["paragraphs"][0].startswith(
        STORY_SENTENCE)
    _, media = responses[story.url("/media/clip.mp4")]
    assert len(media.split(b"\r\n\r\n", 1)[1]) == 3 * 2**20
    # the requisite slower than the deadline got no answer: listed as failed, not recorded
    assert story.url("/slow.png") not in responses
    browser = story.manifest.browser
    assert browser is not None
    slow = [f for f in browser.failed if f.url == story.url("/slow.png") and f.source == "proxy"]
    assert slow and slow[0].error == "CaptureTimeoutError"
    # the manifest names every exchange's records and the connection (peer + TLS) it used
    fingerprint = hashlib.sha256(story.server.certificate_der or b"").hexdigest()
    for connection in browser.connections:
        assert connection.remote_ip == "127.0.0.1" and connection.tls is not None
        assert connection.tls.verified
        assert connection.tls.certificate is not None
        assert connection.tls.certificate.sha256_fingerprint == fingerprint
    ids = {r.id: r for r in story.manifest.warc.records}
    for resource in browser.resources:
        assert ids[resource.response_record].target_uri == resource.url
        assert ids[resource.request_record].type == "request"
        assert resource.connection in {c.id for c in browser.connections}
    assert {r.resource_type for r in browser.resources} >= {
        "document", "stylesheet", "image", "font", "script", "fetch"}
    certificates = [h for h, _ in story.records
                    if h.get("WARC-Target-URI", "").startswith("urn:preserve:certificate:")]
    assert len(certificates) == len(browser.connections)


def test_the_interception_ca_is_recorded_and_the_browser_was_confined(story: Story) -> None:
    browser = story.manifest.browser
    assert browser is not None
    headers, der = story.record(browser.interception_ca.record)
    assert headers["Content-Type"] == "application/pkix-cert"
    assert headers["WARC-Target-URI"] == "urn:preserve:interception-ca:" + story.url("/story")
    cert = x509.load_der_x509_certificate(der)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "preserve interception CA" in cert.subject.rfc4514_string()
    assert browser.interception_ca.sha256_fingerprint == hashlib.sha256(der).hexdigest()
    flags = " ".join(browser.flags)
    for flag in ("--disable-quic", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--proxy-server=http://127.0.0.1:",
                 "--proxy-bypass-list=<-loopback>", "--ignore-certificate-errors-spki-list=",
                 "--headless"):
        assert flag in flags
    spki = re.search(r"--ignore-certificate-errors-spki-list=(\S+)", flags)
    assert spki is not None
    public = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64encode(hashlib.sha256(public).digest()).decode() in spki.group(1)
    assert browser.version and browser.product.startswith(("Chrome/", "HeadlessChrome/"))
    assert browser.user_agent.startswith("Mozilla/5.0")
    assert (browser.viewport.width, browser.viewport.height) == (1280, 800)
    assert {"launch", "navigate", "settle", "scroll", "snapshot", "total"} <= set(
        browser.timings_ms)


def test_screenshot_pdf_and_rendered_dom_are_kept_and_hashed(story: Story) -> None:
    artifacts = {a.kind: a for a in story.manifest.artifacts or ()}
    assert set(artifacts) == {"screenshot", "pdf", "dom"}
    final_response = story.manifest.browser.resources[0].response_record  # type: ignore[union-attr]
    for kind, artifact in artifacts.items():
        headers, block = story.record(artifact.record)
        assert headers["WARC-Type"] == "resource"
        assert headers["WARC-Target-URI"] == f"urn:preserve:{kind}:" + story.url("/story")
        assert headers["WARC-Concurrent-To"] == f"<{final_response}>"
        assert hashlib.sha256(block).hexdigest() == artifact.sha256
        assert len(block) == artifact.size
    _, png = story.record(artifacts["screenshot"].record)
    width, height = png_size(png)
    assert width == 1280 and height > 2400  # the whole page, not the viewport
    assert story.record(artifacts["pdf"].record)[1].startswith(b"%PDF-")
    dom = story.record(artifacts["dom"].record)[1].decode()
    assert STORY_SENTENCE in dom  # inserted by fetch() after load
    assert 'src="/img/lazy.png"' in dom  # set by the IntersectionObserver while scrolling


def test_text_is_extracted_from_the_rendered_dom(story: Story) -> None:
    text = story.archive.text(story.result.capture_id)
    assert STORY_SENTENCE in text and "Loading the story" not in text
    assert story.result.title == "Storm keeps the fleet in port"
    assert story.result.mode == "browser" and story.result.status == "ok"
    source = story.manifest.extraction.source
    dom = next(a for a in story.manifest.artifacts or () if a.kind == "dom")
    assert source is not None and (source.kind, source.record) == ("rendered-dom", dom.record)
    conversion = next(h for h, _ in story.records if h["WARC-Type"] == "conversion")
    assert conversion["WARC-Refers-To"] == f"<{dom.record}>"


def test_the_capture_ends_within_its_deadline(story: Story) -> None:
    assert story.seconds < TIMEOUT
    browser = story.manifest.browser
    assert browser is not None
    assert any("not quiet" in note for note in browser.notes)  # /slow.png never answered
    assert browser.timings_ms["total"] < TIMEOUT * 1000


def test_verify_deep_warcio_check_and_cdxj_indexer_pass(story: Story) -> None:
    report = story.archive.verify(deep=True, record=False)
    assert not [f for f in report.findings if f.code.severity.value == "error"], report.findings
    assert report.stats.texts_reextracted == 1
    check = subprocess.run([str(VENV_BIN / "warcio"), "check", str(story.warc)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    index = subprocess.run([str(VENV_BIN / "cdxj-indexer"), str(story.warc)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert index.returncode == 0, index.stderr
    urls = {json.loads(line.split(" ", 2)[2])["url"] for line in index.stdout.splitlines()}
    assert {r.url for r in story.manifest.browser.resources} <= urls  # type: ignore[union-attr]
    data = (story.archive.root / story.result.manifest_path).read_bytes()
    assert json.loads(data)["schema"] == "preserve/manifest/2"
    assert story.manifest.to_bytes() == data  # canonical, as written


def test_verify_deep_finds_a_screenshot_that_does_not_match(story: Story, tmp_path: Path
                                                            ) -> None:
    root = tmp_path / "copy"
    shutil.copytree(story.archive.root, root, ignore=shutil.ignore_patterns(".lock"))
    path = root / story.result.manifest_path
    document = json.loads(path.read_bytes())
    shot = next(a for a in document["artifacts"] if a["kind"] == "screenshot")
    shot["sha256"] = "0" * 64
    path.chmod(0o644)
    path.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    codes = {f.code.value for f in preserve.Archive(root).verify(deep=True, record=False)
             .findings}
    assert "E217" in codes


def test_show_lists_resources_artifacts_and_the_browser(story: Story) -> None:
    shown = CliRunner().invoke(main, ["--root", str(story.archive.root), "show",
                                      story.result.capture_id])
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert re.search(r"^browser +(Headless)?Chrome/", out, re.M)
    for kind in ("screenshot", "pdf", "dom"):
        assert re.search(rf"^{kind} +\S.* \d+ [kM]?B  sha256 [0-9a-f]{{64}}$", out, re.M), kind
    assert "text from rendered-dom record urn:uuid:" in out
    assert re.search(r"^resources \d+ recorded", out, re.M)
    assert "  302 GET  stylesheet " in out and story.url("/css/site.css") in out
    assert "failed  GET " + story.url("/slow.png") in out
    notes = [line for line in out.splitlines() if line.startswith("note ")]
    assert notes and len(notes) == len(set(notes))  # each note once (browser's and manifest's)


# --- replay --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_REPLAY_PATH = re.compile(r"^/coll/\d*(?:[a-z]{2}_)?/(.+)$")


@pytest.mark.skipif(not (PYWB_PYTHON and Path(PYWB_PYTHON).exists()),
                    reason="pywb not available: set PRESERVE_PYWB_PYTHON to a python that has "
                           "pywb installed (.ci/run does)")
def test_pywb_replays_the_page_with_every_resource_and_the_same_look(story: Story,
                                                                      tmp_path: Path) -> None:
    """pywb replays the capture (unframed, so the page is the top document as it was live); a
    browser loading it gets every resource that loaded live from the archive (nothing from
    the live site, which is blocked) and renders what the capture-time screenshot shows."""
    root = tmp_path / "pywb"
    root.mkdir()
    (root / "config.yaml").write_text("collections_root: collections\nframed_replay: false\n")
    manager = str(Path(PYWB_PYTHON).parent / "wb-manager")
    for args in (["init", "coll"], ["add", "coll", str(story.warc)]):
        subprocess.run([manager, *args], cwd=root, capture_output=True, timeout=120, check=True)
    port = _free_port()
    server = subprocess.Popen([str(Path(PYWB_PYTHON).parent / "wayback"), "-b", "127.0.0.1",
                               "-p", str(port)], cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    replayed: dict[str, int] = {}
    escaped: list[str] = []
    try:
        assert wait_until(lambda: _connects(port), 30), "pywb did not start"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(browser_module.find_chromium()),
                args=["--disable-background-networking", "--disable-quic"])
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(base + "/")
                          else (escaped.append(route.request.url), route.abort())[1])

            def seen(response: Any) -> None:
                match = _REPLAY_PATH.match(response.url[len(base):])
                if match:
                    replayed.setdefault(str(parse_url(match.group(1))), response.status)

            context.on("response", seen)
            page = context.new_page()
            page.goto(f"{base}/coll/{story.manifest.started[:4]}mp_/{story.url('/story')}",
                      wait_until="load", timeout=20_000)
            with contextlib.suppress(Exception):
                page.wait_for_load_state("networkidle", timeout=5_000)
            height = page.evaluate("document.documentElement.scrollHeight")
            for y in range(0, height, 800):  # as the capture did: scroll down, then back up
                page.evaluate(f"window.scrollTo(0, {y})")
                page.wait_for_timeout(150)
            with contextlib.suppress(Exception):
                page.wait_for_load_state("networkidle", timeout=5_000)
            page.evaluate("window.scrollTo(0, 0)")
            replay_png = page.screenshot(full_page=True, type="png", animations="disabled",
                                         caret="hide")
            artifact = next(a for a in story.manifest.artifacts or () if a.kind == "screenshot")
            capture_png = story.record(artifact.record)[1]
            blank = context.new_page()
            # Same Chromium, viewport and fonts, animations off: rendering is deterministic up to
            # anti-aliasing, so a pixel counts as different only beyond 32/255 in a channel, and
            # at most 0.1% of pixels may differ. That is below the smallest thing the page could
            # lose: the lazy image alone is 0.5% of it, the banner 3.5%, the background 10%.
            difference = blank.evaluate(PNG_DIFFERENCE_JS, [
                "data:image/png;base64," + base64.b64encode(capture_png).decode(),
                "data:image/png;base64," + base64.b64encode(replay_png).decode(), 32])
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    assert not escaped, f"the replay reached outside pywb: {escaped}"
    live = {r.url: r.status for r in story.manifest.browser.resources  # type: ignore[union-attr]
            if r.status < 400 and r.truncated is None and r.resource_type is not None}
    missing = {url: (status, replayed.get(str(parse_url(url))))
               for url, status in live.items() if replayed.get(str(parse_url(url))) != status}
    assert not missing, f"loaded live but not from the archive (live, replay): {missing}"
    assert difference <= 0.001, f"{difference:.2%} of the pixels differ"


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
    except OSError:
        return False
    return True


# --- a batch from the command line -----------------------------------------------------------


@pytest.fixture(scope="module")
def plain_site() -> Iterator[TestServer]:
    with TestServer() as server:
        for name in ("one", "two"):
            server.routes[f"/{name}"] = respond(200, (
                f"<html><head><title>Page {name}</title><link rel=stylesheet href=/s.css>"
                f"</head><body><article><p>Page {name} reports on the council meeting where "
                "the budget for the harbour repairs was discussed at length by members and "
                "residents.</p></article></body></html>").encode(), headers=HTML)
        server.routes["/s.css"] = respond(200, b"p{color:#345}",
                                          headers=[("Content-Type", "text/css")])
        server.routes["/busy"] = respond(200, (
            b"<html><body><p>A page that never goes quiet.</p><script>"
            b"setInterval(() => fetch('/s.css?' + Math.random()), 200);</script></body></html>"),
            headers=HTML)
        yield server


def test_cli_batch_with_concurrency_and_show(plain_site: TestServer, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    # two host names for one server: the batch runs one capture per host at a time
    urls.write_text(f"{plain_site.url('/one')}\n{plain_site.url('/two', host='localhost')}\n")
    root = tmp_path / "root"
    done = subprocess.run([*CLI, "--root", str(root), "capture", "--browser", "--from",
                           str(urls), "--concurrency", "2", "--timeout", "20", "--settle", "1",
                           "--json"], capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    captures = json.loads(done.stdout)["result"]["captures"]
    assert [c["mode"] for c in captures] == ["browser", "browser"]
    assert [c["title"] for c in captures] == ["Page one", "Page two"]
    assert all(c["resources"] >= 2 for c in captures)
    shown = subprocess.run([*CLI, "--root", str(root), "show", captures[1]["capture_id"]],
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0 and plain_site.url("/s.css", host="localhost") in shown.stdout


# --- hostile pages -------------------------------------------------------------------------------


def test_hostile_page_ends_in_time_with_what_arrived(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ca_bundle: Path,
        untrusted_https_server: TestServer) -> None:
    """Never quiet, popups, hundreds of requests (over the cap), an endless body, a redirect
    to a private address under the SSRF guard, a subresource with an untrusted certificate:
    the capture ends within its deadline and commits what arrived, marked as such."""
    untrusted_https_server.routes["/x.png"] = respond(200, b"never seen")
    with TestServer() as site, TestServer(host="127.0.0.2") as private:
        private.routes["/secret"] = respond(200, b"internal")
        site.routes["/hostile"] = respond(200, f"""<html><head><title>Hostile</title></head>
<body><article><p>This page does everything a capture must survive, and still has a story
to tell about the harbour and the storm that kept the fleet in port for three days.</p>
</article><img src="{untrusted_https_server.url('/x.png')}">
<script>
// the requests the assertions are about are made before the flood starts (the redirect's
// second request too), so that the exchange cap cannot refuse them first
function flood() {{
  setInterval(() => fetch('/tick?' + Math.random()), 100);
  for (let i = 0; i < 400; i++) {{ new Image().src = '/many/' + i + '.png'; }}
  window.open('/popup.html');
}}
fetch('/endless').then(r => r.arrayBuffer());
fetch('/leak').catch(() => null).finally(flood);
</script></body></html>""".encode(), headers=HTML)
        site.routes["/endless"] = stream_bytes(50 * 2**30, declare=False)
        site.routes["/leak"] = redirect(private.url("/secret"))
        monkeypatch.setattr(browser_module, "is_blocked_address",
                            lambda address: str(address) == "127.0.0.2")
        archive = preserve.Archive(tmp_path / "root")
        # a small size limit keeps the endless body (and so the test) short: at loopback speed
        # it would otherwise fill --max-size before the deadline and take seconds to write
        options = preserve.CaptureOptions(
            fetch=preserve.FetchOptions(timeout=12.0, ca_bundle=ca_bundle, allow_private=False,
                                        max_body_size=2 * 2**20),
            browser=BrowserOptions(settle=1.0, max_exchanges=40))
        started = time.monotonic()
        result = archive.capture(site.url("/hostile"), options)
        elapsed = time.monotonic() - started
        assert not private.requests  # the private address was never contacted
    assert elapsed < 12.0 + 3.0  # the deadline, plus closing the browser and committing
    manifest = archive.manifest(result.capture_id)
    browser = manifest.browser
    assert browser is not None
    assert len(browser.resources) <= 40 < len(browser.resources) + browser.refused_over_cap
    assert any("exchange cap of 40 reached" in note for note in browser.notes)
    endless = [r for r in browser.resources if r.url.endswith("/endless")]
    assert endless and endless[0].truncated in ("length", "time")
    errors = {f.url.split("/")[-1]: f.error for f in browser.failed if f.source == "proxy"}
    assert errors.get("secret") == "BlockedAddressError", browser.failed
    assert errors.get("x.png") == "TLSError", browser.failed
    assert not any(r.url.endswith("/popup.html") for r in browser.resources) or any(
        "popup" in note for note in browser.notes)
    assert "storm that kept the fleet" in archive.text(result.capture_id)
    report = archive.verify(deep=True, record=False)
    assert not [f for f in report.findings if f.code.severity.value == "error"], report.findings
    warc = archive.root / result.warc_path
    truncated = [h for h, _ in _records(warc) if h.get("WARC-Truncated")]
    assert truncated and truncated[0]["WARC-Target-URI"].endswith("/endless")
    check = subprocess.run([str(VENV_BIN / "warcio"), "check", str(warc)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout
    assert not _browser_processes(str((tmp_path / "root").resolve()))


def _forever(request: Any, conn: socket.socket) -> None:
    """A document that starts with its story and then never finishes arriving."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
                 b"<html><head><title>Live blog</title></head><body><article><p>The live blog "
                 b"about the storm opened at six with reports from the harbour, where the "
                 b"water was already over the quay.</p></article>")
    while True:
        time.sleep(0.1)
        conn.sendall(b"<!-- still loading -->\n")


def test_a_document_that_loads_forever_is_kept_as_far_as_it_arrived(tmp_path: Path) -> None:
    with TestServer() as site:
        site.routes["/live"] = _forever
        archive = preserve.Archive(tmp_path / "root")
        started = time.monotonic()
        result = archive.capture(site.url("/live"), _options(timeout=8.0, settle=1.0))
        elapsed = time.monotonic() - started
    assert elapsed < 8.0 + 3.0
    manifest = archive.manifest(result.capture_id)
    assert manifest.browser is not None
    (document,) = [r for r in manifest.browser.resources if r.url.endswith("/live")]
    assert document.truncated == "time" and document.body_size > 200
    assert "water was already over the quay" in archive.text(result.capture_id)
    assert {a.kind for a in manifest.artifacts or ()} == {"screenshot", "pdf", "dom"}
    report = archive.verify(deep=True, record=False)
    assert not [f for f in report.findings if f.code.severity.value == "error"]


def test_a_crashed_renderer_still_commits_what_arrived(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plain_site: TestServer) -> None:
    scroll = browser_module._scroll

    def crash_first(page: Any, session: Any) -> None:
        with contextlib.suppress(Exception):  # the debug URL kills the page's renderer
            page.goto("chrome://crash", timeout=5000)
        scroll(page, session)

    monkeypatch.setattr(browser_module, "_scroll", crash_first)
    archive = preserve.Archive(tmp_path / "root")
    result = archive.capture(plain_site.url("/one"), _options(timeout=15.0, settle=1.0))
    manifest = archive.manifest(result.capture_id)
    assert manifest.browser is not None
    assert any("crashed" in note for note in manifest.browser.notes)
    assert manifest.artifacts == ()
    assert manifest.extraction.source is not None
    assert manifest.extraction.source.kind == "response"  # no DOM: the HTML as received
    assert "council meeting" in archive.text(result.capture_id)
    report = archive.verify(deep=True, record=False)
    assert not [f for f in report.findings if f.code.severity.value == "error"]
    assert not _browser_processes(str((tmp_path / "root").resolve()))


def test_a_main_document_that_fails_commits_nothing(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    archive = preserve.Archive(tmp_path / "root")
    with pytest.raises(preserve.ConnectError, match=f"127.0.0.1:{port}"):
        archive.capture(f"http://127.0.0.1:{port}/", _options(timeout=15.0, settle=1.0))
    assert not list(archive.layout.manifests_dir.glob("*.json"))
    assert not list(archive.layout.tmp_dir.iterdir())
    assert not _browser_processes(str((tmp_path / "root").resolve()))


def test_sigkill_of_preserve_leaves_no_browser(tmp_path: Path, plain_site: TestServer) -> None:
    """SIGKILL to preserve's whole process group: preserve and Playwright's driver die at
    once, so nothing of theirs can close the browser; the watchdog must."""
    root = tmp_path / "root"
    marker = str(root.resolve())
    proc = subprocess.Popen([*CLI, "--root", str(root), "capture", "--browser", "--timeout",
                             "60", "--settle", "30", plain_site.url("/busy")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert wait_until(lambda: len(_browser_processes(marker)) >= 3, 30), \
            "the browser did not start"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert wait_until(lambda: not _browser_processes(marker), 10), _browser_processes(marker)


def test_webrtc_and_websockets_do_not_leave_unrecorded(tmp_path: Path) -> None:
    """A page's STUN request went out as UDP straight from Chromium (to any host and port,
    past the recorder and its address guard): nothing arrives now. A ``ws://`` socket was
    tunnelled, failed its TLS wrap and vanished; it is refused (501) and listed as failed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stun, TestServer() as site:
        stun.bind(("127.0.0.1", 0))
        stun.settimeout(0.2)
        port = stun.getsockname()[1]
        site.routes["/rtc"] = respond(200, f"""<html><head><title>Live</title></head><body>
<article><p>Results arrive over a socket from the newsroom while this page is open, and the
page also opens a peer connection, as video chats do.</p></article><script>
const pc = new RTCPeerConnection({{iceServers: [{{urls: 'stun:127.0.0.1:{port}'}}]}});
pc.createDataChannel('x'); pc.createOffer().then(o => pc.setLocalDescription(o));
new WebSocket('ws://' + location.host + '/live');
</script></body></html>""".encode(), headers=HTML)
        archive = preserve.Archive(tmp_path / "root")
        result = archive.capture(site.url("/rtc"), _options(settle=1.5))
        datagrams = []
        with contextlib.suppress(TimeoutError):
            while True:
                datagrams.append(stun.recvfrom(4096))
    assert not datagrams
    browser = archive.manifest(result.capture_id).browser
    assert browser is not None
    failed = [f for f in browser.failed if f.url.endswith("/live")]
    assert failed and "not recorded" in failed[0].message, browser.failed


def test_a_document_served_as_an_attachment_gets_no_blank_snapshot(tmp_path: Path) -> None:
    """``Content-Disposition: attachment`` makes Chromium download the document and show
    about:blank: the blank screenshot, PDF and DOM were bound to the document's URL and the
    text taken from that empty DOM. Now no snapshot is made, a note says why, and the text
    comes from the response as received."""
    with TestServer() as site:
        site.routes["/minutes"] = respond(
            200, b"<html><head><title>Council minutes</title></head><body><article><p>The "
            b"council voted seven to two to close the harbour road, the minutes say, after a "
            b"long debate that ran late into the evening.</p></article></body></html>",
            headers=[*HTML, ("Content-Disposition", 'attachment; filename="minutes.html"')])
        archive = preserve.Archive(tmp_path / "root")
        result = archive.capture(site.url("/minutes"), _options(settle=1.0))
    manifest = archive.manifest(result.capture_id)
    assert not manifest.artifacts
    assert manifest.browser is not None
    assert any("not the document" in note for note in manifest.browser.notes)
    assert "seven to two" in archive.text(result.capture_id)
    assert not [f for f in archive.verify(deep=True, record=False).findings
                if f.code.severity.value == "error"]


def test_a_cross_origin_fetch_gets_no_preflight_the_page_would_not_cause(tmp_path: Path) -> None:
    """The recorder's token header made Chromium send a CORS preflight before a simple
    cross-origin ``fetch``; an API that refuses preflights (as many do) then refused the
    page, and the capture lacked what a reader sees. The recorder answers that preflight
    itself now: the API sees the page's GET alone and the fetched text is captured."""
    figures = "Quarterly figures: the port handled forty-one thousand containers"

    def api(request: Any, conn: socket.socket) -> None:
        if request.method == "OPTIONS":
            respond(405, b"")(request, conn)
        else:
            respond(200, figures.encode(), headers=[("Access-Control-Allow-Origin", "*"),
                                                    ("Content-Type", "text/plain")])(request, conn)

    with TestServer() as site, TestServer(host="localhost") as other:
        other.routes["/figures"] = api
        site.routes["/report"] = respond(200, f"""<html><head><title>Port report</title></head>
<body><article><h1>Port report</h1><p>The harbour authority published its report on the
year's traffic this morning, with the figures below taken from its public data service.</p>
<p id="figures">loading</p></article><script>
fetch('{other.url("/figures")}').then(r => r.text()).then(t => {{
  document.getElementById('figures').textContent = t; }});
</script></body></html>""".encode(), headers=HTML)
        archive = preserve.Archive(tmp_path / "root")
        result = archive.capture(site.url("/report"), _options(settle=1.5))
        methods = [r.method for r in other.requests]
    assert methods == ["GET"], methods
    assert figures in archive.text(result.capture_id)
    browser = archive.manifest(result.capture_id).browser
    assert browser is not None
    assert any("preflight" in note for note in browser.notes), browser.notes


def test_a_rendered_dom_over_its_cap_is_never_taken_out_of_the_browser(tmp_path: Path) -> None:
    """A page that grew its DOM to hundreds of MB (one comment node, no layout) had it taken
    whole into preserve's memory (a 100 MB DOM: 465 MB resident; 250 MB: 1.1 GB) and written
    to the WARC outside every size cap. Over ``max_dom_chars`` no DOM is kept now, the notes
    say why, and the text comes from the response; under it the DOM is serialised in a world
    the page's scripts cannot reach (a page that fakes ``outerHTML`` fakes nothing)."""
    script = ("document.body.appendChild(document.createComment('x'.repeat(+location.search"
              ".slice(1))));Object.defineProperty(Element.prototype,'outerHTML',"
              "{get(){return '<html>forged</html>'}});XMLSerializer.prototype"
              ".serializeToString=()=>'';")
    page = (b"<html><head><title>Growing</title></head><body><article><p>The page says this "
            b"much before its script grows the document far beyond what anyone reads.</p>"
            b"</article><script>" + script.encode() + b"</script></body></html>")
    with TestServer() as site:
        site.routes["/grow"] = respond(200, page, headers=HTML)
        archive = preserve.Archive(tmp_path / "root")
        big = archive.capture(site.url("/grow?20000"), _options(settle=1.0, max_dom_chars=10000))
        small = archive.capture(site.url("/grow?2000"), _options(settle=1.0, max_dom_chars=10000))
    manifest = archive.manifest(big.capture_id)
    assert manifest.browser is not None
    assert "dom" not in {a.kind for a in manifest.artifacts}
    assert any("over the cap of 10000" in note for note in manifest.browser.notes)
    assert "says this much" in archive.text(big.capture_id)
    kept = archive.manifest(small.capture_id)
    (dom,) = [a for a in kept.artifacts if a.kind == "dom"]
    assert 2000 < dom.size < 10000
    assert "says this much" in archive.text(small.capture_id)
    assert "forged" not in archive.text(small.capture_id)


def test_a_page_that_lies_about_its_size_and_odd_headers_are_captured(tmp_path: Path) -> None:
    """Three things real servers and pages do, each of which broke a browser capture:
    a script redefining ``scrollHeight`` as NaN (preserve converted the page's answer to an
    int: internal error, exit 5, the rest of the batch lost); a header of UTF-8 bytes
    (``Set-Cookie: name=café``: the proxy re-encoded it as ASCII, crashed its thread and the
    browser saw an empty response); and ``Transfer-Encoding: chunked`` beside a
    ``Content-Length`` (the proxy passed the length on, the browser took ten bytes and the
    document was kept cut short). And ``history.replaceState`` showing an address never
    requested: the snapshots were bound to it. The page is captured whole, its snapshots
    bound to the document loaded, with notes for the lies."""
    page = ("<html><head><title>Liar</title></head><body><article><p>"
            + "The council met on Tuesday and agreed the harbour plan in full. " * 40
            + "</p></article><script>Object.defineProperty(Element.prototype, 'scrollHeight',"
            " {get() { return NaN; }}); history.replaceState({}, '', '/official/statement');"
            "</script></body></html>").encode()
    with TestServer() as site:
        site.routes["/liar"] = raw(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: name=caf\xc3\xa9\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
            + chunk_encode(page, 4096))
        site.routes["/good"] = respond(200, b"<html><title>Good</title><p>fine</p></html>",
                                       headers=[("Content-Type", "text/html")])
        root = tmp_path / "root"
        liar = site.url("/liar")
        done = subprocess.run([*CLI, "--root", str(root), "capture", "--browser", "--timeout",
                               "20", "--settle", "1", "--json", liar, site.url("/good")],
                              capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr
    captures = json.loads(done.stdout)["result"]["captures"]
    assert [c["title"] for c in captures] == ["Liar", "Good"]
    manifest = json.loads((root / "manifests" / f"{captures[0]['capture_id']}.json").read_bytes())
    assert any("no usable" in note for note in manifest["notes"]), manifest["notes"]
    # an address shown with the history API, never requested, is not what the snapshots are of
    assert manifest["browser"]["page_url"] == liar
    notes = manifest["notes"] + manifest["browser"]["notes"]
    assert any("history API" in note for note in notes), notes
    bodies, snapshots = [], []
    with (root / manifest["warc"]["path"]).open("rb") as stream:
        for record in ArchiveIterator(stream):
            target = record.rec_headers.get_header("WARC-Target-URI")
            if record.rec_type == "response" and target == liar:
                bodies.append(record.content_stream().read())
            elif (target or "").startswith("urn:preserve:"):
                snapshots.append(target)
    assert bodies == [page]
    assert snapshots and all(t.endswith(":" + liar) for t in snapshots), snapshots


def test_a_tls_body_ended_without_close_notify_is_noted_in_a_browser_capture(
        https_server: TestServer, ca_bundle: Path, tmp_path: Path) -> None:
    """An HTTPS document the connection's end delimits, the TCP connection closed without TLS
    close_notify (as anyone on the path can do): ``--http`` noted that it may be cut short,
    a browser capture kept it as complete with nothing said."""
    https_server.routes["/ragged"] = ragged_tls(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"
        b"<html><title>Half</title><p>the first half of the story")
    archive = preserve.Archive(tmp_path / "root")
    result = archive.capture(https_server.url("/ragged"), _options(ca_bundle, settle=1.0))
    browser = archive.manifest(result.capture_id).browser
    assert browser is not None
    assert any("without close_notify" in note for note in browser.notes), browser.notes


@pytest.mark.parametrize(("location", "requested"), [("/a|b", "/a%7Cb"), ("/a\\b", "/a/b")])
def test_a_redirect_the_browser_spells_its_own_way_is_followed(
        tmp_path: Path, location: str, requested: str) -> None:
    """Chromium follows ``Location: /a|b`` by requesting ``/a%7Cb`` (and ``/a\\b`` as
    ``/a/b``): the capture could not match that request to the Location, recorded the 302 as
    a redirect not followed (exit 1) while the text and snapshots were the target page's."""
    with TestServer() as site:
        site.routes["/start"] = redirect(location)
        site.routes[requested] = respond(200, b"<html><title>Target</title><p>arrived</p>"
                                         b"</html>", headers=HTML)
        archive = preserve.Archive(tmp_path / "root")
        result = archive.capture(site.url("/start"), _options(settle=1.0))
        manifest = archive.manifest(result.capture_id)
        assert manifest.status == "ok" and manifest.final_url == site.url(requested)


def test_bytes_past_a_response_are_never_taken_for_the_next_answer(tmp_path: Path) -> None:
    """A server that sends, after each answer on a kept-alive connection, a second response
    nobody asked for (response splitting, or junk): the recorder used the connection again
    and read those bytes as the answer to the browser's next request (or failed to delimit
    it). As a browser does, such a connection is not used again: every request gets its own
    answer, and nothing smuggled is recorded."""
    from servers import _read_request  # noqa: PLC0415

    smuggled = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\n"
                b"SMUGGLED")

    def keep_alive(request: Any, conn: socket.socket) -> None:
        while request is not None:
            conn.sendall(smuggled)
            try:
                request = _read_request(conn)
            except OSError:
                return

    page = (b"<html><title>Parts</title><p>" + b"A page of several small parts. " * 20
            + b"</p>" + b"".join(b"<img src='/part%d.png'>" % i for i in range(4))
            + b"</html>")
    with TestServer() as site:
        site.routes["/page"] = respond(200, page, headers=HTML)
        for i in range(4):
            site.routes[f"/part{i}.png"] = keep_alive
        archive = preserve.Archive(tmp_path / "root")
        result = archive.capture(site.url("/page"), _options(settle=1.0))
    browser = archive.manifest(result.capture_id).browser
    assert browser is not None
    parts = [r for r in browser.resources if "/part" in r.url]
    assert len(parts) == 4 and not [f for f in browser.failed if "/part" in f.url]
    records = _records(tmp_path / "root" / archive.manifest(result.capture_id).warc.path)
    assert not [body for _headers, body in records if b"SMUGGLED" in body]


def test_the_drivers_own_output_never_reaches_preserves_stderr(tmp_path: Path) -> None:
    """Playwright's driver wrote to preserve's stderr: a page that made it run out of memory
    put V8's eighteen-line fatal-error trace there. Its output goes to a scratch file now
    (here made to speak with Playwright's DEBUG switch): stderr holds preserve's lines only."""
    with TestServer() as site:
        site.routes["/"] = respond(200, b"<html><title>Quiet</title><p>a page</p></html>",
                                   headers=HTML)
        env = {**os.environ, "DEBUG": "pw:browser"}
        done = subprocess.run([*CLI, "--root", str(tmp_path / "root"), "capture", "--browser",
                               "--timeout", "20", "--settle", "1", site.url("/")],
                              capture_output=True, text=True, timeout=120, check=False, env=env)
    foreign = [line for line in done.stderr.splitlines() if not line.startswith("preserve: ")]
    assert done.returncode == 0 and not foreign, foreign[:2]
