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
import tracemalloc
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from warcio.archiveiterator import ArchiveIterator

from browser_site import KeepAliveServer, wait_until
from measure import processes
from preserve.capture.ca import InterceptionCA
from preserve.capture.fetch import FetchOptions
from preserve.capture.proxy import TOKEN_HEADER, RecordingProxy
from preserve.capture.transport import Deadline
from preserve.errors import ManifestError
from preserve.storage.manifest import SCHEMA_V1, manifest_from_dict, parse_manifest
from preserve.warc.write import _new_warc
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


def _proxy(tmp_path: Path, max_total_size: int | None = None, **options: object
           ) -> RecordingProxy:
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    fetch = FetchOptions(**options)  # type: ignore[arg-type]
    proxy = RecordingProxy(tmp_path, fetch, InterceptionCA(ca_dir, "t"), Deadline(20, "test"),
                           max_exchanges=3, token="secret", max_total_size=max_total_size)
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


def test_a_websocket_handshake_without_the_token_is_refused_as_the_pages(
        tmp_path: Path) -> None:
    """Chromium adds no extra headers to a page's WebSocket handshake, so it comes without
    the capture token: it is refused (501, never forwarded) and listed as the page's failed
    request, not counted as a request of the browser itself."""
    with KeepAliveServer() as server:
        proxy = _proxy(tmp_path)
        try:
            with socket.create_connection(proxy.address) as sock:
                url = server.url("/live")
                sock.sendall((f"GET {url} HTTP/1.1\r\nHost: {url.split('/')[2]}\r\n"
                              "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += sock.recv(65536)
                assert answer.startswith(b"HTTP/1.1 501")
        finally:
            proxy.stop()
        assert not server.requests and not proxy.exchanges
        assert proxy.refused_foreign == 0
        assert [(f.url, "not recorded" in f.message) for f in proxy.failed] == [(url, True)]


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


def test_the_capture_total_caps_what_all_resources_spool_together(tmp_path: Path) -> None:
    """Each response was capped (512 MiB) but not their sum: a hostile page asking for 2,000
    large resources (or posting 2,000 large bodies) filled the disk. Past the capture's total,
    responses are kept cut short and request bodies are refused, and both are counted."""
    with TestServer() as server:
        server.routes["/big"] = stream_bytes(200_000)
        proxy = _proxy(tmp_path, max_total_size=300_000)
        try:
            host = server.url("/big").split("/")[2]
            whole = _exchange_raw(proxy, f"GET {server.url('/big')} HTTP/1.1\r\nHost: {host}\r\n"
                                  f"{TOKEN_HEADER}: secret\r\nConnection: close\r\n\r\n".encode())
            cut = _exchange_raw(proxy, f"GET {server.url('/big')} HTTP/1.1\r\nHost: {host}\r\n"
                                f"{TOKEN_HEADER}: secret\r\nConnection: close\r\n\r\n".encode())
            refused = _exchange_raw(proxy, (
                f"POST {server.url('/big')} HTTP/1.1\r\nHost: {host}\r\n"
                f"{TOKEN_HEADER}: secret\r\nContent-Length: 1000\r\n\r\n").encode() + b"x" * 1000)
        finally:
            proxy.stop()
    first, second = proxy.exchanges
    assert (first.truncated, first.exchange.body_size) == (None, 200_000)
    assert (second.truncated, second.exchange.body_size) == ("length", 100_000)
    assert whole.endswith(b"\0" * 200_000) and len(cut) < 200_000
    assert refused.startswith(b"HTTP/1.1 413")
    assert proxy.cut_by_total == 2
    assert sum(p.stat().st_size for p in tmp_path.glob(".preserve-spool-*")) <= 300_000


def test_response_heads_held_for_the_wire_are_capped_for_the_capture(tmp_path: Path) -> None:
    """Response heads stay in memory until the WARC is written: a server sending 2,000 heads
    of 100 KB took 775 MiB. Past the capture's budget of head bytes requests are refused (503)
    and counted; a token-less request is refused before its body is read or spooled."""
    with KeepAliveServer() as server:
        server.routes["/a"] = b"first"
        proxy = _proxy(tmp_path)
        proxy.max_heads_total = 1
        try:
            with socket.create_connection(proxy.address) as sock:
                assert _ask(sock, server.url("/a")).endswith(b"first")
                refused = _ask(sock, server.url("/a"))
            # Answered, then closed unread: depending on timing the client sees a reset, a broken
            # pipe or a socket already disconnected when it shuts its side down.
            with contextlib.suppress(OSError):
                _exchange_raw(proxy, (
                    f"POST {server.url('/a')} HTTP/1.1\r\n"
                    f"Host: {server.url('/').split('/')[2]}\r\nContent-Length: 100000\r\n\r\n"
                ).encode() + b"x" * 100_000)
        finally:
            proxy.stop()
    assert refused.startswith(b"HTTP/1.1 503")
    assert proxy.refused_over_heads == 1 and len(proxy.exchanges) == 1
    assert proxy.refused_foreign == 1
    assert not [p for p in tmp_path.glob(".preserve-spool-*.request") if p.stat().st_size]


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


class _BodyHashServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request with the SHA-256 of its
    body, and keeps each request as it arrived; ``cors`` adds the headers a CORS-aware API
    sends (it refuses preflights when ``preflights`` is False)."""

    def __init__(self, *, preflights: bool = True) -> None:
        self.preflights = preflights
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            digest = hashlib.sha256(body)
            received = len(body)
            while received < length:
                piece = conn.recv(1 << 20)
                if not piece:
                    break
                digest.update(piece)
                received += len(piece)
            self.requests.append((head, digest.digest()))
            if head.startswith(b"OPTIONS") and not self.preflights:
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            answer = digest.hexdigest().encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: http://page.test\r\n"
                         b"Access-Control-Allow-Headers: x-api-key\r\n"
                         b"Access-Control-Allow-Methods: PUT\r\nContent-Length: "
                         + str(len(answer)).encode() + b"\r\nConnection: close\r\n\r\n"
                         + answer)

    def close(self) -> None:
        self._listener.close()


def _exchange_raw(proxy: RecordingProxy, request: bytes, body_chunks: int = 0,
                  chunk: bytes = b"") -> bytes:
    with socket.create_connection(proxy.address) as sock:
        sock.sendall(request)
        for _ in range(body_chunks):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while piece := sock.recv(65536):
            received += piece
    return received


def test_proxy_spools_request_bodies_and_archives_them_as_sent(tmp_path: Path) -> None:
    """A page's POST body was held in memory three times over until the WARC was written
    (tens of large uploads took hundreds of MB); it is spooled to a file now, sent upstream
    from there, and archived from there: the request record holds head and body as sent."""
    server = _BodyHashServer()
    chunk = os.urandom(1 << 16)
    size = 128 * len(chunk)  # 8 MiB
    expected = hashlib.sha256(chunk * 128).hexdigest()
    proxy = _proxy(tmp_path)
    try:
        head = (f"POST {server.url('/upload')} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"{TOKEN_HEADER}: secret\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode()
        tracemalloc.start()
        answer = _exchange_raw(proxy, head, 128, chunk)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        proxy.stop()
        server.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(expected.encode())
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MiB held for an 8 MiB upload"
    (proxied,) = proxy.exchanges
    exchange = proxied.exchange
    assert exchange.request_bytes.startswith(b"POST /upload HTTP/1.1\r\n")
    assert exchange.request_bytes.endswith(b"\r\n\r\n")  # the head; the body is on disk
    assert exchange.request_body_path is not None and exchange.request_body_size == size
    assert exchange.request_body_sha256 == expected
    warc = tmp_path / "out.warc.gz"
    with _new_warc(warc, fsync=False) as writer:
        writer.write_hop(exchange)
    with warc.open("rb") as f:
        records = [(r.rec_type, r.rec_headers.get_header("WARC-Block-Digest"),
                    r.rec_headers.get_header("WARC-Payload-Digest"),
                    r.content_stream().read()) for r in ArchiveIterator(f)]
    request = next(r for r in records if r[0] == "request")
    whole = exchange.request_bytes + chunk * 128
    assert request[1] == "sha256:" + base64.b32encode(hashlib.sha256(whole).digest()).decode()
    assert request[2] == "sha256:" + base64.b32encode(bytes.fromhex(expected)).decode()
    assert hashlib.sha256(request[3]).hexdigest() == expected
    result = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", "-v",
                             str(warc)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upload_the_server_answers_early_is_recorded_as_far_as_it_was_sent(
        tmp_path: Path) -> None:
    """A server that refuses an upload at once (413 or 401 after the head, then a close) made
    the recorder see fewer body bytes sent than it had spooled: it called that a storage
    failure, and the whole browser capture failed (exit 3, 'changed while it was sent'). The
    exchange is kept now, its request record holding the part of the body that was sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def refuse() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n"
                         b"Connection: close\r\n\r\nnope")
            threading.Event().wait(0.2)  # then close, the upload unread: a reset

    threading.Thread(target=refuse, daemon=True).start()
    chunk = os.urandom(1 << 16)
    size = 255 * len(chunk)  # just under 16 MiB: more than the sockets' buffers take
    proxy = _proxy(tmp_path)
    try:
        answer = _exchange_raw(proxy, (
            f"POST http://127.0.0.1:{port}/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"{TOKEN_HEADER}: secret\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
        ).encode(), 255, chunk)
    finally:
        proxy.stop()
        listener.close()
    assert answer.startswith(b"HTTP/1.1 413") and answer.endswith(b"nope")
    assert proxy.storage_failure is None
    (proxied,) = proxy.exchanges
    exchange = proxied.exchange
    assert exchange.status == 413 and proxied.request_truncated == "disconnect"
    assert proxy.requests_cut == 1
    assert 0 < exchange.request_body_size < size
    sent = (chunk * 255)[:exchange.request_body_size]
    if exchange.request_body_path is not None:
        assert exchange.request_body_path.read_bytes() == sent
    warc = tmp_path / "out.warc.gz"
    with _new_warc(warc, fsync=False) as writer:
        writer.write_hop(exchange, request_truncated=proxied.request_truncated)
    with warc.open("rb") as f:
        request = next(r for r in ArchiveIterator(f) if r.rec_type == "request")
        assert request.rec_headers.get_header("WARC-Truncated") == "disconnect"
        assert request.content_stream().read() == sent
    result = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", "-v",
                             str(warc)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_capture_token_makes_no_cors_preflight_a_page_would_not_make(tmp_path: Path) -> None:
    """The token header is not CORS-safelisted, so a cross-origin ``fetch`` the page makes
    without a preflight got one naming the token: a server that does not allow that header
    refused it (and could tell the visitor was preserve). The proxy answers such a preflight
    itself now; a preflight the page's own headers need is forwarded without the token's
    name, and the browser is told the token is allowed as well."""
    server = _BodyHashServer(preflights=False)
    proxy = _proxy(tmp_path)
    host = f"127.0.0.1:{server.port}"
    try:
        simple = _exchange_raw(proxy, (
            f"OPTIONS {server.url('/api')} HTTP/1.1\r\nHost: {host}\r\n"
            "Origin: http://page.test\r\nAccess-Control-Request-Method: GET\r\n"
            f"Access-Control-Request-Headers: {TOKEN_HEADER.lower()}\r\n\r\n").encode())
        server.preflights = True
        own = _exchange_raw(proxy, (
            f"OPTIONS {server.url('/api')} HTTP/1.1\r\nHost: {host}\r\n"
            "Origin: http://page.test\r\nAccess-Control-Request-Method: PUT\r\n"
            f"Access-Control-Request-Headers: x-api-key,{TOKEN_HEADER.lower()}\r\n\r\n"
        ).encode())
    finally:
        proxy.stop()
        server.close()
    assert simple.startswith(b"HTTP/1.1 204")
    assert b"Access-Control-Allow-Origin: http://page.test" in simple
    assert TOKEN_HEADER.lower().encode() in simple.lower()
    assert proxy.preflights_answered == 1
    (sent,) = [head for head, _ in server.requests]  # only the page's own preflight went out
    assert b"access-control-request-headers: x-api-key\r\n" in sent.lower() + b"\r\n"
    assert b"preserve" not in sent.lower()
    assert own.startswith(b"HTTP/1.1 200")
    allowed = next(line for line in own.split(b"\r\n")
                   if line.lower().startswith(b"access-control-allow-headers"))
    assert b"x-api-key" in allowed and TOKEN_HEADER.lower().encode() in allowed.lower()
    (recorded,) = proxy.exchanges  # the WARC keeps the server's answer as it came
    assert TOKEN_HEADER.lower() not in recorded.exchange.response_head.decode().lower()


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
    return any(int(fields[2]) == pgid and fields[0] != b"Z" for _pid, fields in processes())


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


def test_console_arguments_are_released_kept_or_dropped() -> None:
    """Playwright keeps a handle on every console argument (with a preview of its value)
    until the page closes: a page logging ten strings of 100 MB held them all, past 2 GB in
    this process. Each message's handles are released once its text is kept, or dropped
    over the cap (measured with ten 100 MB messages: 2.15 GB peak before, 1.36 GB after)."""
    from preserve.capture import browser as browser_module  # noqa: PLC0415
    from preserve.capture.transport import Deadline  # noqa: PLC0415

    class Handle:
        disposed = 0

        def dispose(self) -> None:
            Handle.disposed += 1

    class Message:
        type, text, location = "log", "x" * 10, {"url": "http://example.org/", "lineNumber": 1}

        def __init__(self) -> None:
            self.args = [Handle(), Handle()]

    session = browser_module._Session(browser_module.BrowserOptions(max_console=3),
                                      Deadline(10.0, "http://example.org/"), 0.0, 10.0)
    for _ in range(5):
        session.on_console(Message())
    assert len(session.console) == 3 and session.console_dropped == 2
    assert Handle.disposed == 10
