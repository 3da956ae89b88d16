"""The recording proxy a browser capture sends all of the page's traffic through.

:class:`RecordingProxy` listens on 127.0.0.1 (an ephemeral port) for one browser instance. It
takes plain HTTP requests in absolute form and ``CONNECT`` tunnels, which it terminates with a
certificate from the capture's :class:`~preserve.capture.ca.InterceptionCA`, and sends every
request on upstream itself, through the same recording transport as an HTTP capture
(:class:`~preserve.capture.transport.RecordingBackend` under httpcore). So for every request
the page makes it keeps:

* the request exactly as sent upstream and the response head exactly as received, the entity
  body with transfer coding removed (content coding kept) spooled to a file while it is relayed
  to the browser as it arrives (never held whole in memory), the SHA-256 and size of every
  response byte read from the socket;
* the peer address and, for HTTPS, the TLS version, cipher, ALPN and leaf certificate of the
  upstream connection that carried it. Connections are kept alive per origin; each exchange
  names its connection, whose facts are read once from that socket.

Limits apply to every request: the capture's total deadline (every socket operation is capped
by it, and :meth:`RecordingProxy.stop` cuts whatever is still running), ``max_body_size`` per
response (what arrived is kept, marked truncated), ``max_total_size`` for all the bodies of
the capture together (responses past it kept cut short, request bodies refused, counted), the
SSRF guard after DNS resolution on every new connection, upstream TLS verification as the
capture options say, and a cap on the number of recorded exchanges and on the bytes of their
response heads, which are kept in memory (requests past either get a 503 from the proxy and
are counted).
Only the page's requests are forwarded: the browser tags every request a page, frame or
worker makes with a per-capture secret header (:data:`TOKEN_HEADER`, removed before the
request goes upstream); requests without it come from the browser itself (component updates,
account checks) and are refused and counted, never sent. The token must not change what the
server sees: a CORS preflight, which the browser sends without the page's extra headers but
naming the token in ``Access-Control-Request-Headers``, is answered by the proxy itself (and
counted, not recorded) when the token alone caused it, and otherwise forwarded with the
token's name taken out, the token being allowed in the answer the browser gets (the WARC
keeps the server's answer as received). Request bodies are spooled to files, sent upstream
and archived from there; a server that answers before it has taken a whole body (an early
413 or 401, then a close) gets its answer recorded, and the request record holds the part of
the body that was sent (``WARC-Truncated: disconnect``).
A request that gets no response head (DNS, refused, TLS, blocked, timeout) is recorded as a
:class:`~preserve.capture.page.FailedRequest` and answered with a 502 carrying
``X-Preserve-Proxy-Error``; a response cut short is kept with its truncation reason.

It does not record WebSocket traffic (upgrades are refused with 501 and listed as failed),
does not speak HTTP/2 to the browser or upstream, keeps no cookies of its own (the browser
sends its own), and does not decide what the page is (see :mod:`.browser`).
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11

from preserve.capture._httpcore import httpcore
from preserve.capture.ca import InterceptionCA
from preserve.capture.exchange import Exchange, TLSInfo
from preserve.capture.fetch import (
    REDIRECT_STATUSES,
    URL,
    FetchOptions,
    _iter_stream,
    _location,
    _Spool,
    _ssl_context,
    _timeouts,
    _tls_info,
    _translate,
    parse_url,
    utc_timestamp,
)
from preserve.capture.page import (
    FailedRequest,
    ProxiedExchange,
    UpstreamConnection,
    new_record_id,
)
from preserve.capture.transport import (
    Deadline,
    IPAddress,
    RecordingBackend,
    RecordingStream,
    is_blocked_address,
)
from preserve.errors import (
    BlockedAddressError,
    CaptureError,
    CaptureTimeoutError,
    InvalidURLError,
    StorageError,
)

#: Largest request body (POST from a form or XHR) the proxy forwards; it is spooled to a file
#: as it arrives, sent upstream from there and archived from there (never held in memory).
MAX_REQUEST_BODY = 16 * 2**20
#: Most bytes of response heads one capture keeps (they are held in memory until the WARC is
#: written; a page's heads are a few hundred KB, a hostile server's 2,000 heads of 100 KB
#: took 775 MiB). Requests past it are refused and counted, like those past the exchange cap.
MAX_HEADS_TOTAL = 16 * 2**20
#: Request bodies are read from the browser and sent upstream in pieces of this size.
_BODY_CHUNK = 1 << 16
#: Longest failure message kept per failed request.
MAX_MESSAGE = 500
#: The header the browser adds to the page's requests (value: the capture's secret token).
TOKEN_HEADER = "X-Preserve-Capture-Token"
#: How many refused browser-internal URLs are kept for the record.
MAX_FOREIGN = 20
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
    "te", "trailer", "transfer-encoding", "upgrade",
})
_RECV = 1 << 16


class _StoppedError(Exception):
    """The proxy is stopping: give up the current connection."""


@dataclass(frozen=True, slots=True)
class _RequestBody:
    """A request body as the browser sent it: spooled to ``path`` (None: empty)."""

    path: Path | None
    size: int
    sha256: str

    def chunks(self) -> Iterator[bytes]:
        """The body, read from its spool file a piece at a time (anew on every call)."""
        if self.path is None:
            return
        with self.path.open("rb") as f:
            while piece := f.read(_BODY_CHUNK):
                yield piece


_NO_BODY = _RequestBody(None, 0, hashlib.sha256().hexdigest())


def _sent_part(body: _RequestBody, size: int, sha256: str) -> _RequestBody | None:
    """``body`` cut to the ``size`` bytes of SHA-256 ``sha256`` that were sent (a server may
    answer and close before it has read a whole upload); None when the spool file does not
    begin with them."""
    if body.path is None or size > body.size:
        return None
    digest, left = hashlib.sha256(), size
    with body.path.open("rb+") as f:
        while left and (piece := f.read(min(_BODY_CHUNK, left))):
            digest.update(piece)
            left -= len(piece)
        if left or digest.hexdigest() != sha256:
            return None
        f.truncate(size)
    return _RequestBody(body.path, size, sha256) if size else _NO_BODY


class _ExchangeDeadline(Deadline):
    """The capture's deadline as seen by one upstream connection; expires early on stop."""

    def __init__(self, shared: Deadline, stopped: threading.Event, url: str) -> None:
        # not super().__init__: the end is the shared deadline's, not a new one
        self.url = url
        self.total = shared.total
        self._shared = shared
        self._stopped = stopped

    def remaining(self) -> float:
        return -1.0 if self._stopped.is_set() else self._shared.remaining()


@dataclass(eq=False)
class _Upstream:
    """One upstream connection: httpcore over the recording backend, kept alive per origin."""

    id: int
    origin: tuple[str, str, int]
    backend: RecordingBackend
    deadline: _ExchangeDeadline
    connection: httpcore.HTTPConnection
    tls: TLSInfo | None = None
    facts: UpstreamConnection | None = None
    used: int = 0
    #: A body is being relayed; ``cut``: :meth:`abort` ended it (a close-delimited body cut
    #: by our own shutdown would otherwise look complete).
    relaying: bool = False
    cut: bool = False
    state: threading.Lock = field(default_factory=threading.Lock)

    @property
    def stream(self) -> RecordingStream | None:
        return self.backend.stream

    def abort(self) -> None:
        """Wake a thread blocked on this connection's socket (called from :meth:`stop`)."""
        with self.state:
            self.cut = self.relaying
        stream = self.backend.stream
        if stream is None:
            return
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a half-dead connection may raise anything
            self.connection.close()


@dataclass(eq=False)
class _Client:
    """One connection from the browser, with the h11 state machine for its side."""

    sock: socket.socket
    stopped: threading.Event
    conn: h11.Connection = field(default_factory=lambda: h11.Connection(h11.SERVER))
    alive: bool = True

    def send(self, event: h11.Request | h11.Response | h11.Data | h11.EndOfMessage) -> None:
        data = self.conn.send(event)
        if data and self.alive:
            try:
                self.sock.sendall(data)
            except OSError:
                self.alive = False

    def next_event(self) -> object:
        """The next event from the browser; None when it closed, the proxy stops, or it sent
        something h11 refuses."""
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:
                return None
            if isinstance(event, h11.ConnectionClosed):
                return None
            if event is not h11.NEED_DATA:
                return event
            data = self.recv()
            if data is None:
                return None
            try:
                self.conn.receive_data(data)
            except h11.RemoteProtocolError:
                return None

    def recv(self) -> bytes | None:
        while not self.stopped.is_set():
            if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                ready = True
            else:
                try:
                    ready = bool(select.select([self.sock], [], [], 0.25)[0])
                except (OSError, ValueError):
                    return None
            if not ready:
                continue
            try:
                return self.sock.recv(_RECV)
            except ssl.SSLWantReadError:
                continue
            except OSError:
                return None
        return None


def _header_list(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _connection_tokens(headers: list[tuple[str, str]]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def _is_upgrade(headers: list[tuple[str, str]]) -> bool:
    """Whether a request asks to switch protocols (a WebSocket handshake)."""
    return "upgrade" in _connection_tokens(headers)


def _ends_at_close(headers: list[tuple[str, str]]) -> bool:
    """Whether a response body is delimited by the connection closing (RFC 9112 6.3): no
    Content-Length and no chunked coding. Only then does a cut connection look complete."""
    names = {n.lower(): v.lower() for n, v in headers}
    return "content-length" not in names and "chunked" not in names.get("transfer-encoding", "")


def _is_preflight(method: str, headers: list[tuple[str, str]]) -> bool:
    names = {n.lower() for n, _ in headers}
    return method == "OPTIONS" and "access-control-request-method" in names and "origin" in names


_TOKEN_NAME = TOKEN_HEADER.lower()
#: Methods a page may use across origins without a preflight (Fetch: CORS-safelisted method).
_SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    return next((v for n, v in headers if n.lower() == lname), None)


def _requested_headers(headers: list[tuple[str, str]]) -> list[str]:
    asked = _header(headers, "access-control-request-headers")
    return [n.strip() for n in (asked or "").split(",") if n.strip()]


def _asks_for_token(headers: list[tuple[str, str]]) -> bool:
    return _TOKEN_NAME in (n.lower() for n in _requested_headers(headers))


def _without_token_request(headers: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """A CORS preflight's headers as the page alone would have caused them.

    The token header, which the browser adds to every request of the page, is not
    CORS-safelisted: a cross-origin ``fetch`` the page makes without a preflight gets one that
    names it in ``Access-Control-Request-Headers``, and a server that does not allow that
    header refuses it. Returns None when the token alone caused the preflight (the proxy then
    answers it itself); else the headers with the token's name taken out of that list, to be
    sent upstream as the page's own preflight.
    """
    rest = [n for n in _requested_headers(headers) if n.lower() != _TOKEN_NAME]
    method = (_header(headers, "access-control-request-method") or "").strip()
    private = _header(headers, "access-control-request-private-network") is not None
    if not rest and method.upper() in _SAFELISTED_METHODS and not private:
        return None
    kept = [(n, v) for n, v in headers if n.lower() != "access-control-request-headers"]
    return [*kept, ("Access-Control-Request-Headers", ",".join(rest))] if rest else kept


def _allowing_token(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A preflight's response as given to the browser: the token header allowed too (the
    server answered for the page's own headers; the WARC keeps its response as received)."""
    allowed = _header(headers, "access-control-allow-headers")
    if allowed is None:
        return [*headers, ("Access-Control-Allow-Headers", _TOKEN_NAME)]
    return [(n, f"{v}, {_TOKEN_NAME}" if n.lower() == "access-control-allow-headers" else v)
            for n, v in headers]


def _end_if_bodiless(client: _Client, headers: list[tuple[str, str]]) -> None:
    """Read the end of a request that has no body (no socket read: h11 has it already), so
    that the connection can carry the browser's next request."""
    length = _header(headers, "content-length")
    if _header(headers, "transfer-encoding") is None and (length is None or length.strip() == "0"):
        client.next_event()


def _bytes_ahead(connection: httpcore.HTTPConnection) -> bool:
    """Whether the server sent bytes past the response it just finished (a second response
    nobody asked for yet, or junk): as a browser does, the connection is not used again, so
    they are never taken for the answer to the next request. httpcore does not say; h11's
    receive buffer does (read through private names, None-safe)."""
    inner = getattr(connection, "_connection", None)
    state = getattr(inner, "_h11_state", None)
    trailing = getattr(state, "trailing_data", None)
    return bool(trailing and trailing[0])


def _end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop fields (RFC 9110 7.6.1), in order, casing kept."""
    dropped = _HOP_BY_HOP | _connection_tokens(headers)
    return [(n, v) for n, v in headers if n.lower() not in dropped]


class RecordingProxy:
    """An HTTP(S) recording proxy for one browser capture (see the module docstring)."""

    def __init__(
        self,
        spool_dir: Path,
        options: FetchOptions,
        ca: InterceptionCA,
        deadline: Deadline,
        *,
        max_exchanges: int,
        max_failed: int = 500,
        token: str | None = None,
        is_blocked: Callable[[IPAddress], bool] = is_blocked_address,
        max_total_size: int | None = None,
    ) -> None:
        """``token``: forward only requests carrying it in :data:`TOKEN_HEADER` (and CORS
        preflights); None forwards everything. ``max_total_size``: most bytes spooled for the
        whole capture, response and request bodies together (None: no cap beyond the
        per-response one); past it responses are kept cut short and bodies refused."""
        self._spool = _Spool(spool_dir)
        self.max_total_size = max_total_size
        self._spooled = 0
        #: responses cut short, and request bodies refused, because the total was reached
        self.cut_by_total = 0
        self._token = token
        self.foreign: list[str] = []  # browser-internal requests refused (first MAX_FOREIGN)
        self.refused_foreign = 0
        self._options = options
        self._ca = ca
        self._deadline = deadline
        self._is_blocked = is_blocked
        self.max_exchanges = max_exchanges
        self.max_failed = max_failed
        self._stopped = threading.Event()
        self._lock = threading.Condition()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._clients: set[_Client] = set()
        self._idle: dict[tuple[str, str, int], list[_Upstream]] = {}
        self._busy: set[_Upstream] = set()
        self._upstreams: list[_Upstream] = []
        self._sequence = 0
        self._recorded: list[ProxiedExchange] = []
        self._failed: list[FailedRequest] = []
        self._failed_dropped = 0
        self.errors_by_url: dict[str, CaptureError] = {}
        #: the first failure to spool what crossed the proxy; the capture cannot be complete
        self.storage_failure: StorageError | None = None
        #: CORS preflights the token header alone caused, answered here and not sent
        self.preflights_answered = 0
        #: request bodies the server answered before taking whole (recorded as far as sent)
        self.requests_cut = 0
        #: responses whose body ended with a TLS connection closed without close_notify
        #: (the end of such a body may have been cut off: an attacker can end a TCP stream)
        self.ragged: list[str] = []
        self.refused_over_cap = 0
        self.max_heads_total = MAX_HEADS_TOTAL
        self._heads = 0  # bytes of the response heads recorded so far
        #: requests refused because the recorded heads reached max_heads_total
        self.refused_over_heads = 0
        self._in_flight = 0
        self._last_change = time.monotonic()
        self.requests_seen = 0

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Listen on 127.0.0.1 and serve in background threads; returns (host, port)."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        self._listener = listener
        self._spawn(self._accept_loop, "preserve-proxy-accept")
        host, port = listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "proxy not started"
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def stop(self, join_timeout: float = 5.0) -> list[str]:
        """Stop accepting, cut every connection still open, wait for the handlers to record
        what they have. Returns notes about anything that could not be waited for (nothing
        when called again)."""
        if self._stopped.is_set():
            return []
        self._stopped.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            clients = list(self._clients)
            upstreams = list(self._upstreams)
        for client in clients:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
        for upstream in upstreams:
            upstream.abort()
        end = time.monotonic() + join_timeout
        notes: list[str] = []
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))
            if thread.is_alive():
                notes.append(f"proxy thread {thread.name} did not finish in time; "
                             "its exchange may be missing")
        for upstream in upstreams:
            upstream.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.sock.close()
        return notes

    def discard(self) -> None:
        """Delete every spool file the proxy made (after a failed capture)."""
        self._spool.discard()

    # --- what was recorded -----------------------------------------------------------------

    @property
    def exchanges(self) -> list[ProxiedExchange]:
        with self._lock:
            return sorted(self._recorded, key=lambda p: p.sequence)

    @property
    def failed(self) -> list[FailedRequest]:
        with self._lock:
            return list(self._failed)

    @property
    def failed_dropped(self) -> int:
        return self._failed_dropped

    @property
    def connections(self) -> list[UpstreamConnection]:
        with self._lock:
            return [u.facts for u in sorted(self._upstreams, key=lambda u: u.id)
                    if u.facts is not None]

    def activity(self) -> tuple[int, float]:
        """(requests in flight, monotonic time of the last start or end of one)."""
        with self._lock:
            return self._in_flight, self._last_change

    def _begin(self) -> int | None:
        """Count a request in; its sequence number, or None when the cap is reached."""
        with self._lock:
            self.requests_seen += 1
            if self._sequence >= self.max_exchanges:
                self.refused_over_cap += 1
                return None
            if self._heads >= self.max_heads_total:
                self.refused_over_heads += 1
                return None
            self._sequence += 1
            self._in_flight += 1
            self._last_change = time.monotonic()
            return self._sequence

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_change = time.monotonic()
            self._lock.notify_all()

    def _fail(self, url: str, method: str, exc: BaseException) -> None:
        message = " ".join(str(exc).split())[:MAX_MESSAGE] or type(exc).__name__
        with self._lock:
            if isinstance(exc, CaptureError):
                self.errors_by_url.setdefault(url, exc)
            if len(self._failed) >= self.max_failed:
                self._failed_dropped += 1
                return
            self._failed.append(FailedRequest(url=url, method=method, source="proxy",
                                              error=type(exc).__name__, message=message,
                                              time=utc_timestamp()))

    # --- serving the browser ---------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopped.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = _Client(sock, self._stopped)
            with self._lock:
                self._clients.add(client)
            self._spawn(self._serve, "preserve-proxy-client", client)

    def _serve(self, client: _Client) -> None:
        try:
            self._serve_plain(client)
        except (_StoppedError, OSError, h11.LocalProtocolError, h11.RemoteProtocolError):
            pass
        except StorageError as exc:  # the spool failed (disk full): the capture must fail
            with self._lock:
                if self.storage_failure is None:
                    self.storage_failure = exc
        finally:
            with self._lock:
                self._clients.discard(client)
            with contextlib.suppress(OSError):
                client.sock.close()

    def _serve_plain(self, client: _Client) -> None:
        while client.alive and not self._stopped.is_set():
            event = client.next_event()
            if not isinstance(event, h11.Request):
                return
            if event.method == b"CONNECT":
                self._serve_tunnel(client, event)
                return
            target = event.target.decode("latin-1")
            if not self._handle(client, event, target):
                return
            if not self._next_cycle(client):
                return

    @staticmethod
    def _next_cycle(client: _Client) -> bool:
        conn = client.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False

    def _serve_tunnel(self, client: _Client, request: h11.Request) -> None:
        authority = request.target.decode("latin-1")
        host, _, port_text = authority.rpartition(":")
        if not host or not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
            self._respond_simple(client, 400, "bad CONNECT target")
            return
        while client.next_event() not in (h11.PAUSED, None):  # EndOfMessage, then PAUSED
            pass
        client.send(h11.Response(status_code=200, headers=[], reason=b"Connection established"))
        if client.conn.trailing_data[0]:  # the browser waits for our 200 before its ClientHello
            return
        client.sock.settimeout(max(1.0, min(10.0, self._deadline.remaining())))
        try:  # a TLS handshake starts with 0x16; anything else is plain HTTP (a ws:// URL)
            tls_first = client.sock.recv(1, socket.MSG_PEEK) == b"\x16"
        except OSError:
            return
        if tls_first:
            scheme, default_port = "https", port_text == "443"
            try:
                context = self._ca.server_context(host)
                inner_sock: socket.socket = context.wrap_socket(client.sock, server_side=True)
            except (OSError, ValueError) as exc:
                self._fail(f"https://{authority}/", "CONNECT", exc)
                return
        else:
            scheme, default_port, inner_sock = "http", port_text == "80", client.sock
        inner_sock.settimeout(None)
        inner = _Client(inner_sock, self._stopped)
        with self._lock:
            self._clients.add(inner)
        try:
            base = f"{scheme}://{host}" if default_port else f"{scheme}://{host}:{port_text}"
            while inner.alive and not self._stopped.is_set():
                event = inner.next_event()
                if not isinstance(event, h11.Request):
                    return
                target = event.target.decode("latin-1")
                if not target.startswith("/"):
                    self._respond_simple(inner, 400, "expected an origin-form request")
                    return
                if not self._handle(inner, event, base + target):
                    return
                if not self._next_cycle(inner):
                    return
        finally:
            with self._lock:
                self._clients.discard(inner)

    def _respond_simple(self, client: _Client, status: int, message: str,
                        error: str | None = None) -> None:
        body = f"preserve recording proxy: {message}\n".encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"),
                   ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
        if error:
            headers.append(("X-Preserve-Proxy-Error", error))
        try:
            client.send(h11.Response(status_code=status, headers=headers))
            client.send(h11.Data(data=body))
            client.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            client.alive = False

    def _allot(self, wanted: int) -> int:
        """Take up to ``wanted`` bytes of the capture's total; how many were granted (a
        negative ``wanted`` gives bytes back)."""
        if self.max_total_size is None:
            return wanted
        with self._lock:
            granted = max(-self._spooled, min(wanted, self.max_total_size - self._spooled))
            self._spooled += granted
            return granted

    def _answer_token_preflight(self, client: _Client, headers: list[tuple[str, str]]) -> None:
        """Allow the token header to the browser for a request that needs no preflight of its
        own: nothing is sent upstream, so the server sees the page's request as a browser
        without preserve would send it."""
        method = _header(headers, "access-control-request-method") or "GET"
        origin = _header(headers, "origin") or "null"
        with self._lock:
            self.preflights_answered += 1
        try:
            client.send(h11.Response(status_code=204, headers=[
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Allow-Methods", method),
                ("Access-Control-Allow-Headers", _TOKEN_NAME),
                ("Access-Control-Max-Age", "600"),
                ("Vary", "Origin"),
                ("Content-Length", "0"),
            ]))
            client.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            client.alive = False

    def _read_body(self, client: _Client, url: str) -> _RequestBody | None:
        """The request's body, spooled to a file as it arrives; None when it exceeds
        :data:`MAX_REQUEST_BODY` (what arrived is discarded)."""
        event = client.next_event()
        if isinstance(event, h11.EndOfMessage):
            return _NO_BODY
        try:
            path = self._spool.new_file(".request")
            with path.open("wb") as sink:
                digest, size = hashlib.sha256(), 0
                while isinstance(event, h11.Data):
                    granted = self._allot(len(event.data)) if \
                        size + len(event.data) <= MAX_REQUEST_BODY else 0
                    size += len(event.data)
                    if granted < len(event.data):  # refused: what it took of the total back
                        self._allot(-(size - len(event.data) + granted))
                        if size <= MAX_REQUEST_BODY:
                            with self._lock:
                                self.cut_by_total += 1
                        sink.truncate(0)
                        return None
                    digest.update(event.data)
                    sink.write(event.data)
                    event = client.next_event()
        except OSError as exc:
            raise StorageError(f"cannot spool the request body to {url}: {exc}") from exc
        if not isinstance(event, h11.EndOfMessage):
            raise _StoppedError
        return _RequestBody(path, size, digest.hexdigest()) if size else _NO_BODY

    def _handle(self, client: _Client, request: h11.Request, target: str) -> bool:
        """Forward one request and relay its response; False: close the browser connection."""
        method = request.method.decode("ascii", "replace")
        headers = _header_list(list(request.headers.raw_items()))
        try:
            url = parse_url(target)
        except InvalidURLError as exc:
            self._respond_simple(client, 400, str(exc))
            return False
        text_url = str(url)
        allow_token = False  # whether the browser must be told the token header is allowed
        # a request refused below before its body is read ends the browser's connection
        # (its body is never spooled; see _next_cycle), unless it has none
        if self._token is not None:
            tagged = [v for n, v in headers if n.lower() == TOKEN_HEADER.lower()]
            # a page's WebSocket handshake carries no token (Chromium 150 adds no extra
            # headers to it); it is refused below all the same, and listed as the page's
            if not tagged and not _is_preflight(method, headers) and not _is_upgrade(headers):
                with self._lock:
                    self.refused_foreign += 1
                    if len(self.foreign) < MAX_FOREIGN:
                        self.foreign.append(f"{method} {text_url.split('?', 1)[0]}"[:200])
                _end_if_bodiless(client, headers)
                self._respond_simple(client, 403, "not a request of the page; not forwarded",
                                     "NotFromPage")
                return True
            if tagged and tagged[0] != self._token:
                self._respond_simple(client, 403, "wrong capture token", "NotFromPage")
                return False
            headers = [(n, v) for n, v in headers if n.lower() != TOKEN_HEADER.lower()]
            if _is_preflight(method, headers) and _asks_for_token(headers):
                page_asked = _without_token_request(headers)
                if page_asked is None:  # only the token header made the browser ask
                    _end_if_bodiless(client, headers)
                    self._answer_token_preflight(client, headers)
                    return True
                headers, allow_token = page_asked, True
        if _is_upgrade(headers):
            self._fail(text_url, method, CaptureError(
                f"protocol upgrade (WebSocket) to {text_url} is not recorded; refused"))
            _end_if_bodiless(client, headers)
            self._respond_simple(client, 501, "protocol upgrades are not recorded")
            return True
        body = self._read_body(client, text_url)
        if body is None:
            self._fail(text_url, method, CaptureError(
                f"request body to {text_url} exceeds {MAX_REQUEST_BODY} bytes or what is left "
                "of the capture's total size; not forwarded"))
            self._respond_simple(client, 413, "request body too large to record")
            return False
        sequence = self._begin()
        if sequence is None:
            self._respond_simple(client, 503, f"the capture's cap of {self.max_exchanges} "
                                 f"recorded exchanges or {self.max_heads_total} bytes of "
                                 "response heads is reached", "ExchangeCapReached")
            return True
        try:
            return self._exchange(client, sequence, method, url, headers, body, allow_token)
        finally:
            self._end()

    # --- upstream --------------------------------------------------------------------------

    def _checkout(self, url: URL) -> tuple[_Upstream, bool]:
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        origin = (scheme, url.raw_host.decode("ascii"), port)
        with self._lock:
            idle = self._idle.get(origin, [])
            while idle:
                upstream = idle.pop()
                if upstream.connection.has_expired() or upstream.connection.is_closed():
                    upstream.close()
                    continue
                self._busy.add(upstream)
                return upstream, True
            if self._stopped.is_set():
                raise _StoppedError
            number = len(self._upstreams) + 1
            deadline = _ExchangeDeadline(self._deadline, self._stopped, str(url))
            backend = RecordingBackend(deadline=deadline, allow_private=self._options.allow_private,
                                       is_blocked=self._is_blocked, keep_request_body=False)
            connection = httpcore.HTTPConnection(
                httpcore.Origin(scheme.encode("ascii"), url.raw_host, port),
                ssl_context=_ssl_context(self._options, str(url)) if scheme == "https" else None,
                http1=True, http2=False, network_backend=backend,
            )
            upstream = _Upstream(number, origin, backend, deadline, connection)
            self._upstreams.append(upstream)
            self._busy.add(upstream)
            return upstream, False

    def _checkin(self, upstream: _Upstream, reusable: bool) -> None:
        reusable = reusable and not _bytes_ahead(upstream.connection)
        with self._lock:
            self._busy.discard(upstream)
            if reusable and not self._stopped.is_set() and upstream.connection.is_idle():
                self._idle.setdefault(upstream.origin, []).append(upstream)
                return
        upstream.close()

    def _send(self, method: str, url: URL, headers: list[tuple[str, str]],
              body: _RequestBody) -> tuple[_Upstream, httpcore.Response]:
        """Send the request upstream, its body from the spool file (retrying once on a fresh
        connection when a kept-alive one turns out dead before answering)."""
        wire_headers = _end_to_end(headers)
        if body.size or method in ("POST", "PUT", "PATCH"):
            wire_headers = [(n, v) for n, v in wire_headers if n.lower() != "content-length"]
            wire_headers.append(("Content-Length", str(body.size)))
        encoded = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in wire_headers]
        port = url.port or (443 if url.scheme == "https" else 80)
        for attempt in (0, 1):
            request = httpcore.Request(
                method.encode("ascii"),
                httpcore.URL(scheme=url.scheme.encode("ascii"), host=url.raw_host, port=port,
                             target=url.raw_path),
                headers=encoded, content=body.chunks(),
                extensions={"timeout": _timeouts(self._options)},
            )
            upstream, reused = self._checkout(url)
            upstream.deadline.url = str(url)
            if reused and upstream.stream is not None:
                upstream.stream.start_exchange()
            try:
                return upstream, upstream.connection.handle_request(request)
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                    httpcore.ConnectionNotAvailable) as exc:
                stream = upstream.stream
                nothing_read = stream is None or stream.wire_size == 0
                self._checkin(upstream, reusable=False)
                if reused and attempt == 0 and nothing_read and not self._stopped.is_set():
                    continue
                if isinstance(exc, httpcore.ConnectionNotAvailable):
                    raise CaptureError(f"connection for {url} not available") from exc
                raise _translate(exc, str(url), upstream.deadline) from exc
            except BaseException:
                self._checkin(upstream, reusable=False)
                raise
        raise AssertionError("unreachable")

    def _exchange(self, client: _Client, sequence: int, method: str, url: URL,
                  headers: list[tuple[str, str]], body: _RequestBody,
                  allow_token: bool = False) -> bool:
        text_url = str(url)
        started = utc_timestamp()
        try:
            upstream, response = self._send(method, url, headers, body)
        except _StoppedError:
            self._fail(text_url, method, CaptureTimeoutError(
                f"request to {text_url} not sent: the capture ended"))
            return False
        except CaptureError as exc:
            if self._stopped.is_set() and not isinstance(exc, BlockedAddressError):
                exc = CaptureTimeoutError(f"request to {text_url} got no answer before the "
                                          "capture ended")
            self._fail(text_url, method, exc)
            self._respond_simple(client, 403 if isinstance(exc, BlockedAddressError) else 502,
                                 str(exc), type(exc).__name__)
            return True
        return self._relay(client, sequence, method, url, body, upstream, response, started,
                           allow_token)

    def _relay(self, client: _Client, sequence: int, method: str, url: URL, body: _RequestBody,
               upstream: _Upstream, response: httpcore.Response, started: str,
               allow_token: bool = False) -> bool:
        text_url = str(url)
        limit = self._options.max_body_size
        headers = _header_list(list(response.headers))
        reason = response.extensions.get("reason_phrase", b"")
        reason_bytes = reason if isinstance(reason, bytes) else str(reason).encode("latin-1")
        body_hash = hashlib.sha256()
        body_size = 0
        truncated: str | None = None
        try:
            body_path = self._spool.new_file(".body")
        except OSError as exc:
            response.close()
            self._checkin(upstream, reusable=False)
            raise StorageError(f"cannot spool the response from {text_url}: {exc}") from exc
        to_browser = _end_to_end(headers)
        if allow_token:
            to_browser = _allowing_token(to_browser)
        if any(n.lower() == "transfer-encoding" for n, _ in headers):
            # the coding, not the length, delimited the body (RFC 9112 6.3); relayed decoded,
            # the body's length is not the one a Content-Length beside it claims
            to_browser = [(n, v) for n, v in to_browser if n.lower() != "content-length"]
        sent_length = any(n.lower() == "content-length" for n, _ in to_browser)
        try:
            # as bytes, the bytes received: h11 would encode text as ASCII, and a header of
            # Latin-1 or UTF-8 bytes (Set-Cookie: name=café) is common
            client.send(h11.Response(status_code=response.status, reason=reason_bytes,
                                     headers=[(n.encode("latin-1"), v.encode("latin-1"))
                                              for n, v in to_browser]))
        except h11.LocalProtocolError:
            client.alive = False
        with upstream.state:
            upstream.relaying = True
        try:
            with body_path.open("wb") as sink:
                for received in _iter_stream(response):
                    room = self._allot(min(limit - body_size, len(received)))
                    chunk = received[:room]
                    if len(chunk) < len(received):
                        if body_size + room < limit:
                            with self._lock:
                                self.cut_by_total += 1
                        truncated = "length"
                    body_size += len(chunk)
                    body_hash.update(chunk)
                    sink.write(chunk)
                    if client.alive:
                        client.send(h11.Data(data=chunk))
                    if truncated:
                        break
                    if not client.alive and (sequence != 1 or self._stopped.is_set()):
                        # the browser gave up, or the capture is ending; but the page's own
                        # document (the first request) is read to its end as evidence even
                        # when the browser drops it (a download it refuses, a navigation away)
                        truncated = "time" if self._stopped.is_set() else "disconnect"
                        break
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                CaptureError, h11.LocalProtocolError):
            truncated = "time" if (self._stopped.is_set()
                                   or upstream.deadline.remaining() <= 0) else "disconnect"
        except OSError as exc:
            raise StorageError(f"cannot spool the response from {text_url}: {exc}") from exc
        finally:
            with contextlib.suppress(Exception):
                response.close()
            with upstream.state:
                upstream.relaying = False
                if upstream.cut and truncated is None and _ends_at_close(headers):
                    truncated = "time"  # our own shutdown ended a body that ends at close
        stream = upstream.stream
        if stream is None or stream.final_head is None:
            self._checkin(upstream, reusable=False)
            self._fail(text_url, method, CaptureError(
                f"could not delimit the response head from {text_url}"))
            return False
        if stream.ragged_eof and truncated is None and _ends_at_close(headers):
            with self._lock:
                self.ragged.append(text_url)
        request_cut = (stream.request_body_size, stream.request_body_sha256) != (
            body.size, body.sha256)
        if request_cut:  # the server answered before taking the whole body: keep what it got
            try:
                sent = _sent_part(body, stream.request_body_size, stream.request_body_sha256)
            except OSError as exc:
                sent = None
                problem = f": {exc}"
            else:
                problem = ""
            if sent is None:
                self._checkin(upstream, reusable=False)
                raise StorageError(f"the request body spooled for {text_url} changed while it "
                                   f"was sent; not recorded{problem}")
            body = sent
            with self._lock:
                self.requests_cut += 1
        self._record(sequence, method, url, body, headers, response, upstream, stream,
                     body_path, body_size, body_hash.hexdigest(), started, truncated,
                     "disconnect" if request_cut else None)
        self._checkin(upstream, reusable=truncated is None and not request_cut)
        if truncated is not None:
            if not sent_length and client.alive:
                # chunked to the browser: end the message cleanly so it keeps what it got
                with contextlib.suppress(h11.LocalProtocolError):
                    client.send(h11.EndOfMessage())
            return False  # the browser's view of this response is cut; drop its connection
        try:
            client.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return False
        return client.alive

    def _record(self, sequence: int, method: str, url: URL, request_body: _RequestBody,
                headers: list[tuple[str, str]], response: httpcore.Response,
                upstream: _Upstream, stream: RecordingStream, body_path: Path, body_size: int,
                body_sha256: str, started: str, truncated: str | None,
                request_truncated: str | None = None) -> ProxiedExchange:
        peer = stream.peer
        if upstream.facts is None:
            upstream.tls = _tls_info(peer, self._options, self._spool)
            upstream.facts = UpstreamConnection(upstream.id, peer.remote_ip, peer.remote_port,
                                                peer.local_ip, upstream.tls)
        upstream.used += 1
        version = response.extensions.get("http_version", b"HTTP/1.1")
        reason = response.extensions.get("reason_phrase", b"")
        transfer = [v for k, v in headers if k.lower() == "transfer-encoding"]
        exchange = Exchange(
            url=str(url),
            method=method,
            request_bytes=stream.request_bytes,
            response_head=stream.final_head or b"",
            status=response.status,
            reason=reason.decode("latin-1") if isinstance(reason, bytes) else str(reason),
            http_version=version.decode("ascii") if isinstance(version, bytes) else str(version),
            headers=tuple(headers),
            body_path=body_path,
            body_size=body_size,
            body_sha256=body_sha256,
            transfer_encoding=", ".join(transfer) if transfer else None,
            wire_sha256=stream.wire_sha256,
            wire_size=stream.wire_size,
            started=started,
            ended=utc_timestamp(),
            remote_ip=peer.remote_ip,
            remote_port=peer.remote_port,
            local_ip=peer.local_ip,
            tls=upstream.tls,
            location=_location(url, headers) if response.status in REDIRECT_STATUSES else None,
            request_body_path=request_body.path,
            request_body_size=request_body.size,
            request_body_sha256=request_body.sha256 if request_body.path else None,
        )
        proxied = ProxiedExchange(
            exchange=exchange,
            sequence=sequence,
            connection=upstream.id,
            request_record_id=new_record_id(),
            response_record_id=new_record_id(),
            truncated=truncated,
            request_truncated=request_truncated,
        )
        with self._lock:
            self._recorded.append(proxied)
            self._heads += len(exchange.response_head)
        return proxied


__all__ = ["MAX_REQUEST_BODY", "TOKEN_HEADER", "RecordingProxy"]
