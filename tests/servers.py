"""Real HTTP and HTTPS test servers on 127.0.0.1, with a route table you fill per test.

A :class:`TestServer` listens on a loopback address and an ephemeral port, serves each
connection in its own thread, reads one request head, looks the request path up in
``server.routes`` (``path -> handler``) and calls the handler, which writes whatever bytes it
likes to the socket (well-formed HTTP or deliberately broken HTTP). The connection is then
closed. Every request head received is kept in ``server.requests`` for assertions.

Handlers are plain callables ``handler(request, conn)``; the factories below build the common
ones::

    server.routes["/"] = respond(200, b"<p>hi</p>", headers=[("Content-Type", "text/html")])
    server.routes["/old"] = redirect("/", status=301)
    server.routes["/chunked"] = respond(200, b"abc" * 100, chunked=True)
    server.routes["/slow"] = drip(b"x" * 100, interval=0.05)
    server.routes["/reset"] = reset_mid_body(b"partial")
    server.routes["/raw"] = raw(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi")
    server.routes["/liar"] = lying_content_length(b"short", declared=100)
    server.routes["/bomb"] = gzip_bomb(64 * 2**20)
    server.routes["/loop"] = endless_redirect("/loop")
    server.routes["/big"] = stream_bytes(10 * 2**30, declare=False)
    server.routes["/silent"] = stall(5.0)
    server.routes["/broken"] = raw(MALFORMED_STATUS_LINE)

For HTTPS pass an ``ssl.SSLContext`` (``tests/conftest.py`` makes one from a trustme CA). The
TLS handshake runs in the connection thread; a client that refuses the certificate just ends
that connection. Unknown paths get a 404. Nothing here touches the network beyond loopback.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import socketserver
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReceivedRequest:
    """One request head as the server read it."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    raw: bytes  # the request head exactly as received, ending with the blank line

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


Handler = Callable[[ReceivedRequest, socket.socket], None]


class _ThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


@dataclass
class TestServer:
    """An HTTP (or, with ``ssl_context``, HTTPS) server on ``host`` with a route table."""

    __test__ = False  # not a pytest test class

    ssl_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[ReceivedRequest] = field(default_factory=list)
    #: DER of the leaf certificate the server presents (set by the HTTPS fixtures)
    certificate_der: bytes | None = None
    _server: _ThreadingServer | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def url(self, path: str = "/", host: str | None = None) -> str:
        """Absolute URL of ``path`` on this server (``host`` may name it differently)."""
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def start(self) -> TestServer:
        owner = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        self._server = _ThreadingServer((self.host, 0), _Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, sock: socket.socket) -> None:
        conn = sock
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(sock, server_side=True)
            conn.settimeout(10)
            request = _read_request(conn)
            if request is None:
                return
            self.requests.append(request)
            handler = self.routes.get(request.path, not_found)
            handler(request, conn)
        except (OSError, ssl.SSLError):
            return  # the client went away, refused our certificate, or we reset on purpose
        finally:
            with contextlib.suppress(OSError):
                conn.close()


def _read_request(conn: socket.socket) -> ReceivedRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
        if data.startswith(b"\x16\x03"):  # a TLS ClientHello on plain HTTP: answer as nginx does
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            return None
        if len(data) > 1 << 20:
            return None
    head = data[: data.index(b"\r\n\r\n") + 4]
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return ReceivedRequest(method, target, version, tuple(headers), head)


# --- handler factories ---------------------------------------------------------------------


def _head(status: int, reason: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk_encode(body: bytes, chunk_size: int) -> bytes:
    """``body`` in HTTP/1.1 chunked transfer coding, ``chunk_size`` bytes per chunk."""
    out = bytearray()
    for start in range(0, len(body), chunk_size):
        piece = body[start : start + chunk_size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


def respond(
    status: int = 200,
    body: bytes = b"",
    *,
    headers: Sequence[tuple[str, str]] = (),
    reason: str | None = None,
    chunked: bool = False,
    chunk_size: int = 7,
    content_length: bool = True,
) -> Handler:
    """A well-formed response. Adds ``Content-Length`` (or chunked framing) and ``Connection:
    close`` unless ``headers`` already name them."""
    names = {k.lower() for k, _ in headers}
    all_headers = list(headers)
    if chunked:
        all_headers.append(("Transfer-Encoding", "chunked"))
    elif content_length and "content-length" not in names:
        all_headers.append(("Content-Length", str(len(body))))
    if "connection" not in names:
        all_headers.append(("Connection", "close"))
    head = _head(status, reason or _REASONS.get(status, "Status"), all_headers)
    payload = chunk_encode(body, chunk_size) if chunked else body

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(head + payload)

    return handler


def respond_gzip(
    body: bytes,
    *,
    status: int = 200,
    headers: Sequence[tuple[str, str]] = (),
    chunked: bool = False,
) -> Handler:
    """``body`` gzip-compressed, sent with ``Content-Encoding: gzip``."""
    extra = [*headers, ("Content-Encoding", "gzip")]
    return respond(status, gzip.compress(body), headers=extra, chunked=chunked)


def redirect(location: str, status: int = 302) -> Handler:
    """A redirect to ``location`` (relative or absolute) with a small body."""
    return respond(status, b"moved", headers=[("Location", location)])


def ragged_tls(data: bytes) -> Handler:
    """Send ``data`` over TLS, then close the TCP connection without TLS close_notify (as
    anyone on the path can end it)."""

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(data)
        raw_socket = socket.socket(fileno=conn.fileno())  # under TLS: no close_notify
        raw_socket.shutdown(socket.SHUT_RDWR)
        raw_socket.detach()

    return handler


def raw(data: bytes, *, then_reset: bool = False) -> Handler:
    """Send exactly ``data`` (any bytes, valid HTTP or not), then close (or reset)."""

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(data)
        if then_reset:
            _reset(conn)

    return handler


def drip(
    body: bytes, *, interval: float = 0.05, headers: Sequence[tuple[str, str]] = ()
) -> Handler:
    """A 200 whose body arrives one byte every ``interval`` seconds (a slow-drip server)."""
    head = _head(200, "OK", [*headers, ("Content-Length", str(len(body))), ("Connection", "close")])

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(head)
        for i in range(len(body)):
            time.sleep(interval)
            conn.sendall(body[i : i + 1])

    return handler


def stall(seconds: float, then: Handler | None = None) -> Handler:
    """Say nothing for ``seconds`` (a server that never answers in time), then maybe answer."""

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        time.sleep(seconds)
        if then is not None:
            then(request, conn)

    return handler


def reset_mid_body(sent: bytes, declared: int | None = None) -> Handler:
    """Declare ``declared`` body bytes (default: twice what is sent), send ``sent``, then RST."""
    length = declared if declared is not None else 2 * len(sent) + 1
    head = _head(200, "OK", [("Content-Length", str(length))])

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(head + sent)
        time.sleep(0.05)
        _reset(conn)

    return handler


def stream_bytes(total: int, *, block: int = 65536, declare: bool = True) -> Handler:
    """A 200 with ``total`` bytes of body generated on the fly (for size limits)."""
    headers = [("Content-Type", "application/octet-stream"), ("Connection", "close")]
    if declare:
        headers.append(("Content-Length", str(total)))
    head = _head(200, "OK", headers)

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(head)
        sent = 0
        chunk = b"\0" * block
        while sent < total:
            piece = chunk[: min(block, total - sent)]
            conn.sendall(piece)
            sent += len(piece)

    return handler


def endless_redirect(path: str, status: int = 302) -> Handler:
    """Mount at ``path``: each request redirects to ``path?n=<n+1>``, forever."""

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        n = int(request.target.partition("?n=")[2] or 0)
        redirect(f"{path}?n={n + 1}", status)(request, conn)

    return handler


def lying_content_length(sent: bytes, declared: int) -> Handler:
    """Declare ``declared`` body bytes, send only ``sent``, then close normally (FIN)."""
    return raw(_head(200, "OK", [("Content-Length", str(declared))]) + sent)


def gzip_bomb(decoded_size: int, *, headers: Sequence[tuple[str, str]] = ()) -> Handler:
    """A small gzip body that inflates to ``decoded_size`` zero bytes (built in 1 MiB steps)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = b"\0" * (1 << 20)
    packed = bytearray()
    for start in range(0, decoded_size, len(zeros)):
        packed += packer.compress(zeros[: min(len(zeros), decoded_size - start)])
    packed += packer.flush()
    return respond(200, bytes(packed), headers=[*headers, ("Content-Encoding", "gzip")])


MALFORMED_STATUS_LINE = b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nhi"


def not_found(request: ReceivedRequest, conn: socket.socket) -> None:
    respond(404, b"not found", headers=[("Content-Type", "text/plain")])(request, conn)


def _reset(conn: socket.socket) -> None:
    """Abort the TCP connection with RST instead of FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


_REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    404: "Not Found",
    500: "Internal Server Error",
}
