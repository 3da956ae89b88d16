"""The socket layer under httpcore: resolve, check, connect, and record the exact wire bytes.

:class:`RecordingBackend` is an httpcore network backend for *one* HTTP/1.1 connection. It

* resolves the host name itself (bounded by the connect timeout and the capture deadline),
  refuses private/loopback/link-local/reserved addresses when asked (SSRF guard), and connects
  to the very IP address it checked, so a second DNS answer cannot slip in (no rebinding);
* wraps the socket stream in a :class:`RecordingStream` that keeps the request bytes exactly
  as written (or, for a recorder that spools request bodies itself, the request head and a
  SHA-256 and byte count of the body), the response status line and header block exactly as
  read, and a SHA-256 and byte count of every response byte read from the socket (body and
  framing included) without keeping the body;
* caps every socket operation by the capture's overall deadline, so a server that drips one
  byte at a time cannot outlast the total time limit.

It does not parse HTTP (h11, inside httpcore, does that) and does not follow redirects.
Errors it raises on purpose are preserve errors; httpcore's own exceptions pass through and
are translated by :mod:`preserve.capture.fetch`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import threading
import time
import typing
from collections.abc import Iterable
from dataclasses import dataclass

from preserve.capture._httpcore import httpcore
from preserve.errors import (
    BlockedAddressError,
    CaptureTimeoutError,
    ConnectError,
    DNSError,
    ProtocolError,
    TLSError,
)

if typing.TYPE_CHECKING:
    import ssl

    from preserve.capture._tls import TLSSession

#: The most header bytes we keep while looking for the end of a response head. h11 refuses
#: heads over 100 KiB itself; this is only a backstop for our own buffer.
MAX_HEAD_BYTES = 1 << 20

_END_OF_HEAD = re.compile(rb"\n\r?\n")  # the same blank-line rule h11 applies
_INFORMATIONAL = re.compile(rb"^HTTP/\d\.\d 1\d\d")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


#: IPv6 prefixes whose low 32 bits carry an IPv4 address that the network may deliver to:
#: IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks), the NAT64
#: well-known prefix (RFC 6052) and IPv4-translated addresses (RFC 2765).
_EMBEDDING_PREFIXES = (
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)
#: Never global, whatever the address library says: local-use NAT64 (RFC 8215).
_NOT_GLOBAL = (ipaddress.IPv6Network("64:ff9b:1::/48"),)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, translated, 6to4,
    Teredo client), or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    for prefix in _EMBEDDING_PREFIXES:
        if address in prefix:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_blocked_address(address: IPAddress) -> bool:
    """True for addresses a capture with the SSRF guard on must not reach.

    Everything that is not globally routable: private, loopback, link-local, shared (CGNAT),
    reserved, unspecified, multicast, documentation ranges; IPv6 forms that carry an IPv4
    address (mapped, compatible, NAT64, translated, 6to4, Teredo) are judged by that address
    too.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None and is_blocked_address(embedded):
            return True
        if any(address in network for network in _NOT_GLOBAL):
            return True
    return (not address.is_global) or address.is_multicast or address.is_unspecified


class Deadline:
    """A monotonic-clock deadline that turns per-operation timeouts into 'what is left'."""

    def __init__(self, seconds: float, url: str) -> None:
        self.url = url
        self.total = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def cap(self, timeout: float | None) -> float:
        """``timeout`` shortened to what is left; raises once nothing is left."""
        left = self.remaining()
        if left <= 0:
            raise CaptureTimeoutError(
                f"capture of {self.url} exceeded its total time limit of {self.total:g} s"
            )
        return left if timeout is None else min(timeout, left)


@dataclass(frozen=True, slots=True)
class PeerFacts:
    """Where the connection went and, for HTTPS, the TLS session it used."""

    remote_ip: str
    remote_port: int
    local_ip: str | None
    tls: TLSSession | None = None


def _peer_of(stream: httpcore.NetworkStream, url: str) -> PeerFacts:
    sock = stream.get_extra_info("socket")
    try:
        remote = sock.getpeername()
        local = sock.getsockname()
    except OSError as exc:  # the peer hung up between connect() and here
        raise ConnectError(f"connection for {url} dropped as it was made: {exc}") from exc
    return PeerFacts(remote_ip=str(remote[0]), remote_port=int(remote[1]), local_ip=str(local[0]))


def _session_of(stream: httpcore.NetworkStream) -> TLSSession | None:
    tls = stream.get_extra_info("ssl_object")
    if tls is None:
        return None
    from preserve.capture._tls import TLSSession  # noqa: PLC0415 - TLS connections only

    cipher = tls.cipher()
    return TLSSession(
        version=tls.version() or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        alpn=tls.selected_alpn_protocol(),
        peer_der=tls.getpeercert(True),  # the C-level object takes no keywords
    )


class RecordingStream(httpcore.NetworkStream):
    """A network stream that records what crosses it (see the module docstring)."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline, *,
                 keep_request_body: bool = True) -> None:
        """``keep_request_body``: False keeps only the request head; the body is hashed and
        counted (:attr:`request_body_sha256`, :attr:`request_body_size`) for a caller that
        spooled it itself."""
        self._inner = inner
        self._deadline = deadline
        self._keep_body = keep_request_body
        self._request = bytearray()
        self._request_head_done = False
        self._request_body = hashlib.sha256()
        self._request_body_size = 0
        self._head = bytearray()
        self._head_done = False
        self._wire = hashlib.sha256()
        self._wire_size = 0
        self.final_head: bytes | None = None
        #: interim (1xx) responses read before the final head
        self.interim = 0
        #: the TLS connection ended without close_notify (see
        #: :class:`~preserve.capture._tls.StrictEOFContext`)
        self.ragged_eof = False
        self._tls_started = False
        #: read when the connection is made and after the TLS handshake, while it is open
        self.peer: PeerFacts = _peer_of(inner, deadline.url)

    # -- what was recorded ------------------------------------------------------------------

    @property
    def request_bytes(self) -> bytes:
        """The request as written: head and body, or the head alone when the body is not
        kept."""
        return bytes(self._request)

    @property
    def request_body_sha256(self) -> str:
        """SHA-256 of the request body bytes written (after the head); a write that failed
        (the server closed before taking the whole body) is not counted."""
        return self._request_body.hexdigest()

    @property
    def request_body_size(self) -> int:
        return self._request_body_size

    @property
    def wire_sha256(self) -> str:
        return self._wire.hexdigest()

    @property
    def wire_size(self) -> int:
        return self._wire_size

    def start_exchange(self) -> None:
        """Record a new exchange on this kept-alive connection: forget the previous one's
        request bytes, response head and wire hash (peer and TLS facts stay: same socket)."""
        self._request = bytearray()
        self._request_head_done = False
        self._request_body = hashlib.sha256()
        self._request_body_size = 0
        self._head = bytearray()
        self._head_done = False
        self._wire = hashlib.sha256()
        self._wire_size = 0
        self.final_head = None
        self.interim = 0
        self.ragged_eof = False

    def _record_read(self, data: bytes) -> None:
        self._wire.update(data)
        self._wire_size += len(data)
        if self._head_done or not data:
            return
        # search only the new bytes (and the two before them), so a head dripped one byte
        # at a time costs linear, not quadratic, time
        start = max(0, len(self._head) - 2)
        self._head += data
        while not self._head_done:
            match = _END_OF_HEAD.search(self._head, start)
            if match is None:
                if len(self._head) > MAX_HEAD_BYTES:
                    raise ProtocolError(
                        f"response head from {self._deadline.url} exceeds {MAX_HEAD_BYTES} bytes"
                    )
                return
            head = bytes(self._head[: match.end()])
            if _INFORMATIONAL.match(head):  # 1xx interim response: the real head follows
                self.interim += 1
                del self._head[: match.end()]
                start = 0
                continue
            self.final_head = head
            self._head_done = True
            self._head = bytearray()

    # -- httpcore.NetworkStream ---------------------------------------------------------------

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data = self._inner.read(max_bytes, self._deadline.cap(timeout))
        except httpcore.ReadError as exc:
            import ssl  # noqa: PLC0415 - loaded already when the connection is TLS

            if not isinstance(exc.__cause__, ssl.SSLEOFError):
                raise
            self.ragged_eof = True  # the end of the data all the same, but recorded as such
            data = b""
        self._record_read(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._request_head_done:  # body bytes count once the socket has taken them
            self._inner.write(buffer, self._deadline.cap(timeout))
            self._record_write(buffer)
            return
        self._record_write(buffer)
        self._inner.write(buffer, self._deadline.cap(timeout))

    def _record_write(self, data: bytes) -> None:
        body = data
        if not self._request_head_done:
            start = max(0, len(self._request) - 3)
            self._request += data
            end = self._request.find(b"\r\n\r\n", start)
            if end < 0:
                return
            self._request_head_done = True
            split = end + 4
            body = bytes(self._request[split:])
            if not self._keep_body:
                del self._request[split:]
        elif self._keep_body:
            self._request += data
        self._request_body.update(body)
        self._request_body_size += len(body)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            inner = self._inner.start_tls(ssl_context, server_hostname, self._deadline.cap(timeout))
        except httpcore.ConnectTimeout as exc:
            raise CaptureTimeoutError(f"TLS handshake with {self._deadline.url} timed out") from exc
        except httpcore.ConnectError as exc:
            reason = exc.__cause__ or exc
            raise TLSError(f"TLS handshake with {self._deadline.url} failed: {reason}") from exc
        self._inner = inner
        self._tls_started = True
        self.peer = PeerFacts(
            self.peer.remote_ip, self.peer.remote_port, self.peer.local_ip, _session_of(inner)
        )
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object" and not self._tls_started:
            return None  # what a plain connection answers (httpcore asks before each request)
        return self._inner.get_extra_info(info)


def _resolve(host: str, port: int, timeout: float, url: str) -> list[tuple[str, int]]:
    """getaddrinfo with a timeout (it has none of its own): run it in a daemon thread."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [(str(literal), port)]

    outcome: dict[str, typing.Any] = {}

    def work() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="preserve-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise CaptureTimeoutError(f"DNS lookup of {host!r} for {url} timed out")
    if "error" in outcome:
        raise DNSError(f"cannot resolve {host!r} for {url}: {outcome['error']}") from outcome[
            "error"
        ]
    addresses: list[tuple[str, int]] = []
    for _family, _type, _proto, _canon, sockaddr in outcome["infos"]:
        candidate = (str(sockaddr[0]), int(sockaddr[1]))
        if candidate not in addresses:
            addresses.append(candidate)
    if not addresses:
        raise DNSError(f"cannot resolve {host!r} for {url}: no addresses")
    return addresses


class RecordingBackend(httpcore.NetworkBackend):
    """Backend for one connection; keeps the :class:`RecordingStream` it made in ``stream``."""

    def __init__(
        self,
        *,
        deadline: Deadline,
        allow_private: bool,
        is_blocked: typing.Callable[[IPAddress], bool] = is_blocked_address,
        keep_request_body: bool = True,
    ) -> None:
        """``keep_request_body``: see :class:`RecordingStream`."""
        self._deadline = deadline
        self._allow_private = allow_private
        self._is_blocked = is_blocked
        self._keep_request_body = keep_request_body
        self._tcp = httpcore.SyncBackend()
        self.stream: RecordingStream | None = None

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        url = self._deadline.url
        addresses = _resolve(host, port, self._deadline.cap(timeout), url)
        if not self._allow_private:
            for ip, _port in addresses:
                # scope ids (fe80::1%eth0) are not part of the address proper
                if self._is_blocked(ipaddress.ip_address(ip.split("%", 1)[0])):
                    raise BlockedAddressError(
                        f"refusing {url}: {host} resolves to non-public address {ip}"
                    )
        last_error: Exception | None = None
        timed_out = False
        for ip, ip_port in addresses:
            try:
                inner = self._tcp.connect_tcp(
                    ip, ip_port, self._deadline.cap(timeout), local_address, socket_options
                )
            except httpcore.ConnectTimeout as exc:
                timed_out, last_error = True, exc
                continue
            except httpcore.ConnectError as exc:
                last_error = exc
                continue
            self.stream = RecordingStream(inner, self._deadline,
                                          keep_request_body=self._keep_request_body)
            return self.stream
        if timed_out:
            raise CaptureTimeoutError(f"connecting to {host}:{port} for {url} timed out") from (
                last_error
            )
        reason = last_error.__cause__ if last_error and last_error.__cause__ else last_error
        raise ConnectError(f"cannot connect to {host}:{port} for {url}: {reason}") from last_error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise ConnectError("unix sockets are not used by preserve")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
