"""The parts of browser capture that need no browser: the interception CA, the recording
proxy (driven by a raw socket client), manifest v1/v2 parsing, and the CLI's answer when no
browser is installed."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from browser_site import KeepAliveServer, wait_until
from preserve.capture.ca import InterceptionCA
from preserve.capture.fetch import FetchOptions
from preserve.capture.proxy import TOKEN_HEADER, RecordingProxy
from preserve.capture.transport import Deadline
from preserve.errors import ManifestError
from preserve.storage.manifest import SCHEMA_V1, manifest_from_dict, parse_manifest
from servers import TestServer, respond, stream_bytes
from test_manifest import sample_dict

CLI = [sys.executable, "-c", "from preserve.cli import main; main()"]


# --- the interception CA ----------------------------------------------------------------------


def test_interception_ca_issues_certificates_only_its_browser_trusts(tmp_path: Path) -> None:
    ca = InterceptionCA(tmp_path, "test")
    cert = x509.load_der_x509_certificate(ca.certificate_der)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "preserve interception CA test" in cert.subject.rfc4514_string()
    assert ca.fingerprint == hashlib.sha256(ca.certificate_der).hexdigest()
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64encode(hashlib.sha256(spki).digest()).decode() in ca.spki_hashes
    assert (tmp_path / "leaf-key.pem").stat().st_mode & 0o077 == 0  # private to this user

    # a TLS client that trusts exactly this CA accepts the proxy's certificate for a name or IP
    for host in ("localhost", "127.0.0.1"):
        server_side, client_side = socket.socketpair()
        context = ca.server_context(host)
        assert ca.server_context(host) is context  # cached per host
        done: list[str] = []

        def serve(sock: socket.socket = server_side, ctx: ssl.SSLContext = context,
                  out: list[str] = done) -> None:
            with ctx.wrap_socket(sock, server_side=True) as tls:
                out.append(tls.version() or "")

        thread = threading.Thread(target=serve)
        thread.start()
        client = ssl.create_default_context(cadata=ca.certificate_pem.decode())
        with client.wrap_socket(client_side, server_hostname=host) as tls:
            leaf = x509.load_der_x509_certificate(tls.getpeercert(True) or b"")
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
        thread.join(5)
        assert done and done[0].startswith("TLS")
        leaf.verify_directly_issued_by(cert)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(v) for v in names.get_values_for_type(x509.DNSName)] + [
            str(v) for v in names.get_values_for_type(x509.IPAddress)] == [host]


# --- the recording proxy, driven by hand ------------------------------------------------------


def _proxy(tmp_path: Path, **options: object) -> RecordingProxy:
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    fetch = FetchOptions(**options)  # type: ignore[arg-type]
    proxy = RecordingProxy(tmp_path, fetch, InterceptionCA(ca_dir, "t"), Deadline(20, "test"),
                           max_exchanges=3, token="secret")
    proxy.start()
    return proxy


def _ask(sock: socket.socket, url: str, token: str | None = "secret") -> bytes:
    """Send one absolute-form GET through the proxy; return the whole response."""
    host = url.split("/")[2]
    tag = f"{TOKEN_HEADER}: {token}\r\n" if token else ""
    sock.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\n{tag}Accept: */*\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_proxy_records_each_exchange_on_a_kept_alive_connection(tmp_path: Path) -> None:
    with KeepAliveServer() as server:
        server.routes["/a"] = b"first"
        server.routes["/b"] = b"second"
        proxy = _proxy(tmp_path)
        try:
            with socket.create_connection(proxy.address) as sock:
                assert _ask(sock, server.url("/a")).endswith(b"first")
                assert _ask(sock, server.url("/b")).endswith(b"second")
                refused = _ask(sock, server.url("/c"), token=None)  # not the page's request
                assert refused.startswith(b"HTTP/1.1 403") and b"NotFromPage" in refused
                assert _ask(sock, server.url("/a")).endswith(b"first")
                over = _ask(sock, server.url("/b"))  # the fourth: over the cap of 3
                assert over.startswith(b"HTTP/1.1 503") and b"ExchangeCapReached" in over
        finally:
            proxy.stop()
        recorded = proxy.exchanges
        assert [p.exchange.url.rsplit("/", 1)[1] for p in recorded] == ["a", "b", "a"]
        assert {p.connection for p in recorded} == {1}  # one upstream connection, reused
        for proxied in recorded:
            exchange = proxied.exchange
            path = exchange.url.rsplit("/", 1)[1]
            assert exchange.request_bytes.startswith(f"GET /{path} HTTP/1.1\r\n".encode())
            assert TOKEN_HEADER.lower().encode() not in exchange.request_bytes.lower()
            assert exchange.response_head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert exchange.wire_size == len(exchange.response_head) + exchange.body_size
            assert exchange.wire_sha256 == hashlib.sha256(
                exchange.response_head + exchange.body_path.read_bytes()).hexdigest()
        assert [r.path for r in server.requests] == ["/a", "/b", "/a"]
        assert proxy.refused_foreign == 1 and proxy.refused_over_cap == 1
        assert [c.id for c in proxy.connections] == [1]


def test_proxy_keeps_what_arrived_of_a_response_over_the_size_limit(tmp_path: Path) -> None:
    with TestServer() as server:
        server.routes["/big"] = stream_bytes(10 * 2**20, declare=False)
        server.routes["/small"] = respond(200, b"ok")
        proxy = _proxy(tmp_path, max_body_size=100_000)
        try:
            with socket.create_connection(proxy.address) as sock:
                host = server.url("/big").split("/")[2]
                sock.sendall(f"GET {server.url('/big')} HTTP/1.1\r\nHost: {host}\r\n"
                             f"{TOKEN_HEADER}: secret\r\n\r\n".encode())
                received = b""
                while piece := sock.recv(65536):  # the proxy cuts the browser's connection
                    received += piece
            with socket.create_connection(proxy.address) as sock:
                assert _ask(sock, server.url("/small")).endswith(b"ok")
        finally:
            proxy.stop()
        big = proxy.exchanges[0]
        assert big.truncated == "length"
        assert big.exchange.body_size == 100_000 == big.exchange.body_path.stat().st_size
        assert len(received) < 200_000
        assert proxy.exchanges[1].truncated is None


def test_proxy_answers_a_failed_upstream_with_502_and_records_it(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    proxy = _proxy(tmp_path)
    try:
        with socket.create_connection(proxy.address) as sock:
            answer = _ask(sock, f"http://127.0.0.1:{port}/x")
    finally:
        proxy.stop()
    assert answer.startswith(b"HTTP/1.1 502") and b"X-Preserve-Proxy-Error: ConnectError" in answer
    assert proxy.exchanges == []
    (failed,) = proxy.failed
    assert failed.error == "ConnectError" and failed.source == "proxy"
    assert f"http://127.0.0.1:{port}/x" in proxy.errors_by_url


# --- manifests ---------------------------------------------------------------------------------


def test_v1_manifests_still_parse_and_keep_their_exact_bytes() -> None:
    document = sample_dict()
    document["schema"] = SCHEMA_V1
    for key in ("truncated", "notes"):  # v2 fields
        document.pop(key, None)
    data = (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    manifest = parse_manifest(data)
    assert manifest.schema == SCHEMA_V1
    assert manifest.browser is None and manifest.artifacts is None
    assert manifest.extraction.source is None
    assert manifest.to_bytes() == data  # canonical: nothing added to a v1 manifest
    for key, value in (("browser", None), ("artifacts", [])):
        with pytest.raises(ManifestError, match="unknown field"):
            manifest_from_dict(dict(copy.deepcopy(document), **{key: value}))
    changed = copy.deepcopy(document)
    changed["extraction"]["source"] = {"kind": "response", "record": "urn:uuid:x"}
    with pytest.raises(ManifestError, match="unknown field"):
        manifest_from_dict(changed)


def test_v2_sources_and_artifacts_must_name_records_of_the_warc_file() -> None:
    document = sample_dict()
    record = document["warc"]["records"][0]["id"]
    document["extraction"]["source"] = {"kind": "response", "record": record}
    assert manifest_from_dict(document).extraction.source is not None
    document["extraction"]["source"] = {"kind": "rendered-dom", "record": record}
    with pytest.raises(ManifestError, match="not a resource record"):
        manifest_from_dict(document)
    document["extraction"]["source"] = None
    document["artifacts"] = [{"kind": "screenshot", "record": record, "target_uri": "urn:x",
                              "media_type": "image/png", "size": 1, "sha256": "a" * 64,
                              "blake3": "b" * 64}]
    with pytest.raises(ManifestError):
        manifest_from_dict(document)


# --- no browser here ---------------------------------------------------------------------------


def test_without_a_browser_capture_says_what_to_install(
        tmp_path: Path, http_server: TestServer) -> None:
    http_server.routes["/"] = respond(200, b"<p>plain</p>", headers=[("Content-Type",
                                                                     "text/html")])
    env = dict(os.environ, PRESERVE_CHROMIUM=str(tmp_path / "no-such-chromium"))
    base = [*CLI, "--root", str(tmp_path / "root"), "capture"]

    forced = subprocess.run([*base, "--browser", http_server.url("/")], env=env, check=False,
                            capture_output=True, text=True, timeout=60)
    assert forced.returncode == 3, forced.stderr
    line = forced.stderr.strip()
    assert "\n" not in line and line.startswith("preserve: error:")
    for hint in ("apt install chromium", "brew install --cask chromium", "PRESERVE_CHROMIUM",
                 "pip install playwright"):
        assert hint in line
    assert not (tmp_path / "root" / "manifests").exists() or not list(
        (tmp_path / "root" / "manifests").glob("*.json"))

    auto = subprocess.run([*base, "--json", http_server.url("/")], env=env, check=False,
                          capture_output=True, text=True, timeout=60)
    assert auto.returncode == 0, auto.stderr
    (note,) = [line for line in auto.stderr.splitlines() if "browser" in line]
    assert note.startswith("preserve: note:") and "HTTP only" in note
    (captured,) = json.loads(auto.stdout)["result"]["captures"]
    assert captured["mode"] == "http"

    both = subprocess.run([*base, "--browser", "--http", http_server.url("/")], env=env,
                          check=False, capture_output=True, text=True, timeout=60)
    assert both.returncode == 2


# --- the watchdog ------------------------------------------------------------------------------


def _group_alive(pgid: int) -> bool:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != b"Z":
                return True
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_watchdog_kills_the_browser_group_when_preserve_is_killed(tmp_path: Path) -> None:
    """A stand-in browser (a shell carrying the marker, with a child in its process group),
    and a stand-in preserve holding the watchdog: SIGKILL preserve, the group must go."""
    marker = str(tmp_path / "archive" / "tmp" / "capture")
    fake = subprocess.Popen(["/bin/sh", "-c", f"sleep 60 & sleep 60 # {marker}"],
                            start_new_session=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from preserve.capture.browser import _Reaper;"
         f" _Reaper({marker!r}); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        assert _group_alive(fake.pid)
        holder.kill()  # SIGKILL: no cleanup code of preserve's runs
        holder.wait(10)
        assert wait_until(lambda: not _group_alive(fake.pid), 10)
    finally:
        with contextlib.suppress(OSError):
            os.killpg(fake.pid, signal.SIGKILL)
        fake.wait(10)
