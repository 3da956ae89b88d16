"""Fetch a URL over HTTP(S), recording every hop as an :class:`~preserve.capture.exchange.Exchange`.

What it does:

* validates the URL (scheme http/https, a host, a sane port) before touching the network;
* sends ``GET`` over HTTP/1.1 with httpcore, one fresh connection per hop, through
  :mod:`preserve.capture.transport`, which keeps the request bytes exactly as written, the response
  head exactly as read, and a SHA-256 of every response byte read from the socket;
* streams the entity body (transfer coding removed, content coding kept) to a spool file in
  the caller's ``spool_dir`` while hashing it, never holding it in memory;
* follows redirects itself (301, 302, 303, 307, 308 with a ``Location``), each hop its own
  Exchange, and refuses loops and over-long chains;
* reads peer IP/port, local IP and, for HTTPS, the TLS version, cipher, ALPN and the peer's leaf
  certificate from the very connection that carried the bytes;
* enforces a total wall-clock limit over all hops and reads, a body size limit, and optionally
  an SSRF guard (no private, loopback, link-local or reserved addresses, checked after DNS on
  every hop, connecting to the checked address).

4xx and 5xx responses are results, not errors: they are evidence. Failures to capture raise
:mod:`preserve.errors` classes with a one-line message naming the URL (``StorageError`` if a
spool file cannot be written); spool files made for a failed capture are deleted. Interim 1xx
responses are hashed with the wire bytes but are not part of ``response_head``. No cookies
are kept between hops, credentials in URLs are not sent, and no proxy settings are read from
the environment.

:func:`read_decoded_body` / :func:`decode_body` remove the content codings (gzip, deflate, br,
zstd, stacked up to four deep) from a spooled body with a hard bound on the decoded size, so a
decompression bomb cannot exhaust memory (:mod:`preserve.capture.codings`). Only gzip and
deflate are advertised (``Accept-Encoding``): a server that sends br or zstd anyway, or a
browser capture (Chromium asks for both), is decoded all the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from preserve._lazy import lazy_module
from preserve._version import __version__
from preserve.capture._httpcore import httpcore
from preserve.capture.codings import (
    MAX_GZIP_MEMBERS,
    DecodedBody,
    content_codings,
    content_encoding,
    decodable_codings,
    decode_chunks,
)
from preserve.capture.transport import (
    Deadline,
    IPAddress,
    PeerFacts,
    RecordingBackend,
    RecordingStream,
    is_blocked_address,
)
from preserve.capture.urls import URL, InvalidURL
from preserve.errors import (
    CaptureError,
    CaptureTimeoutError,
    ConnectError,
    InvalidURLError,
    ProtocolError,
    StorageError,
    TooLargeError,
    UnsupportedSchemeError,
)

if TYPE_CHECKING:
    import ssl

    from cryptography import x509

    from preserve.capture import exchange as records
    from preserve.capture.exchange import Certificate, Exchange, FetchResult, TLSInfo
else:  # the records are made once the response is in: imported after the request leaves
    records = lazy_module("preserve.capture.exchange")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: What plain HTTP captures ask for. decode_body also undoes br and zstd, but asking for them
#: would change what servers send and so what the WARC holds, and warcio check decodes br with
#: whichever module is named ``brotli`` (docs/verify-without-preserve.md).
ACCEPT_ENCODING = "gzip, deflate"
DEFAULT_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
_SPOOL_BLOCK = 1 << 16
_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?\Z")


@dataclass(frozen=True)
class FetchOptions:
    """Limits and policy for one capture."""

    #: Total wall-clock limit for the whole capture (all hops, DNS, connects, every read).
    timeout: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    #: Most body bytes one capture accepts, the bodies of all its hops together.
    max_body_size: int = 512 * 2**20
    max_redirects: int = 10
    user_agent: str = f"preserve/{__version__} (+python-httpcore)"
    verify_tls: bool = True
    #: PEM file of CA certificates to trust instead of the default (certifi) bundle.
    ca_bundle: Path | None = None
    #: False turns on the SSRF guard (see the module docstring).
    allow_private: bool = True
    #: Extra request headers; a name given here replaces the default header of that name.
    headers: tuple[tuple[str, str], ...] = field(default=())


def utc_timestamp() -> str:
    """Now, as RFC 3339 UTC with microseconds and ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- URLs ------------------------------------------------------------------------------------


def parse_url(url: str) -> URL:
    """Validate ``url`` for capture; returns it normalised, without fragment or credentials
    (parsed and normalised as httpx does: :mod:`preserve.capture.urls`)."""
    try:
        parsed = URL(url)
    except (InvalidURL, TypeError, ValueError) as exc:
        raise InvalidURLError(f"invalid URL {_shown(url)}: {exc}") from exc
    scheme = parsed.scheme.lower()
    if not scheme:
        raise InvalidURLError(f"URL has no scheme (expected http:// or https://): {_shown(url)}")
    if scheme not in ("http", "https"):
        raise UnsupportedSchemeError(f"unsupported URL scheme {_shown(scheme)} in {_shown(url)}")
    host = parsed.raw_host.decode("ascii", "replace")
    if not host:
        raise InvalidURLError(f"URL has no host: {_shown(url)}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise InvalidURLError(f"invalid host name {_shown(host)} in {_shown(url)}") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidURLError(f"invalid port {parsed.port} in {_shown(url)}")
    return parsed.copy_with(fragment=None, username=None, password=None)


def _shown(value: str, limit: int = 200) -> str:
    """``value`` quoted for a one-line message: a long one cut, with its length."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def _unfollowable(base: str, target: str, error: InvalidURLError) -> str:
    """Why a redirect to ``target`` is not followed: ``error``, or, for a Location that could
    not be resolved against the URL that gave it (kept as given then), that reason."""
    try:
        URL(base).join(target)
    except (InvalidURL, ValueError) as exc:
        return f"its Location {_shown(target)} cannot be resolved against {base}: {exc}"
    return str(error)


# --- TLS -------------------------------------------------------------------------------------


def _ssl_context(options: FetchOptions, url: str) -> ssl.SSLContext:
    import ssl  # noqa: PLC0415 - only for https (an http:// capture does without)

    import certifi  # noqa: PLC0415

    from preserve.capture._tls import StrictEOFContext  # noqa: PLC0415

    cafile = str(options.ca_bundle) if options.ca_bundle is not None else certifi.where()
    try:  # as ssl.create_default_context(cafile=cafile) makes it, ragged EOFs reported
        context = StrictEOFContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=cafile)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise CaptureError(f"cannot load CA certificates {cafile} to fetch {url}: {exc}") from exc
    if not options.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _rfc3339(moment: datetime) -> str:
    m = moment.astimezone(UTC)  # zero-padded by hand: strftime gives "999" for year 999
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER item at ``pos``."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("DER item runs past the end")
    return tag, pos, pos + length


def raw_validity(der: bytes) -> tuple[str, str]:
    """The notBefore and notAfter times exactly as the certificate states them
    (``asn1:<UTCTime or GeneralizedTime>``), for dates no calendar can hold (year 0, ...)."""
    _, cert, _ = _der_item(der, 0)  # Certificate
    _, pos, _ = _der_item(der, cert)  # TBSCertificate contents
    tag, _, end = _der_item(der, pos)
    if tag == 0xA0:  # [0] version
        pos = end
        tag, _, end = _der_item(der, pos)
    for _field in ("serialNumber", "signature", "issuer"):
        _, _, pos = _der_item(der, pos)
    tag, start, _ = _der_item(der, pos)  # Validity
    times = []
    for _ in range(2):
        tag, value_start, value_end = _der_item(der, start)
        if tag not in (0x17, 0x18):
            raise ValueError("validity is not a UTCTime or GeneralizedTime")
        text = der[value_start:value_end].decode("ascii")
        if not re.fullmatch(r"[0-9]{10,14}(\.[0-9]{1,9})?(Z|[+-][0-9]{4})?", text):
            raise ValueError("malformed certificate time")
        times.append("asn1:" + text)
        start = value_end
    return times[0], times[1]


def _validity(cert: x509.Certificate, der: bytes) -> tuple[str, str]:
    try:
        return _rfc3339(cert.not_valid_before_utc), _rfc3339(cert.not_valid_after_utc)
    except (ValueError, OverflowError):  # no calendar date: keep what the certificate says
        return raw_validity(der)


def _general_name(name: x509.GeneralName) -> str:
    from cryptography import x509  # noqa: PLC0415 - only for https

    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    return f"{type(name).__name__}:{name.value!s}"


def describe_certificate(der: bytes, der_path: Path | None = None) -> Certificate:
    """The facts preserve records about a DER certificate (parsed with ``cryptography``)."""
    from cryptography import x509  # noqa: PLC0415 - only for https
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(_general_name(n) for n in san)
    except x509.ExtensionNotFound:
        names = ()
    not_before, not_after = _validity(cert, der)
    return records.Certificate(
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=not_before,
        not_after=not_after,
        serial_number=format(cert.serial_number, "x"),
        subject_alt_names=names,
        der_path=der_path,
    )


def _unparseable_certificate() -> tuple[type[Exception], ...]:
    """What ``cryptography`` raises for a certificate it cannot describe (a general name type
    it does not support, such as x400Address, in a certificate OpenSSL accepts; an extension
    twice; a version it does not know), beside ValueError."""
    from cryptography import x509  # noqa: PLC0415 - only for https

    return (ValueError, IndexError, UnicodeDecodeError, x509.UnsupportedGeneralNameType,
            x509.DuplicateExtension, x509.InvalidVersion)


def _tls_info(peer: PeerFacts, options: FetchOptions, spool: _Spool) -> TLSInfo | None:
    tls = peer.tls
    if tls is None:
        return None
    der = tls.peer_der
    certificate = None
    der_path = None
    if der:
        der_path = spool.new_file(".der")
        der_path.write_bytes(der)
        try:
            certificate = describe_certificate(der, der_path)
        except _unparseable_certificate():
            certificate = None  # unparseable certificate: keep the DER, say nothing false
    return records.TLSInfo(
        version=tls.version,
        cipher=tls.cipher,
        certificate=certificate,
        verified=options.verify_tls,
        alpn=tls.alpn,
        der_path=der_path,
    )


# --- spooling --------------------------------------------------------------------------------


class _Spool:
    """The files one capture makes in ``spool_dir``; all removed if the capture fails."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.paths: list[Path] = []

    def new_file(self, suffix: str) -> Path:
        fd, name = tempfile.mkstemp(prefix=".preserve-spool-", suffix=suffix, dir=self.directory)
        os.close(fd)
        path = Path(name)
        self.paths.append(path)
        return path

    def discard(self, since: int = 0) -> None:
        """Remove the files made since the ``since``-th (all by default)."""
        for path in self.paths[since:]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        del self.paths[since:]


# --- one hop ---------------------------------------------------------------------------------


def _request_headers(url: URL, options: FetchOptions) -> list[tuple[bytes, bytes]]:
    defaults = [
        ("Host", url.netloc.decode("ascii")),
        ("User-Agent", options.user_agent),
        ("Accept", DEFAULT_ACCEPT),
        ("Accept-Encoding", ACCEPT_ENCODING),
    ]
    overridden = {name.lower() for name, _ in options.headers}
    merged = [(n, v) for n, v in defaults if n.lower() not in overridden or n == "Host"]
    merged += [(n, v) for n, v in options.headers if n.lower() != "host"]
    try:
        return [(n.encode("ascii"), v.encode("latin-1")) for n, v in merged]
    except UnicodeEncodeError as exc:
        raise CaptureError(f"request header cannot be sent for {url}: {exc}") from exc


def _timeouts(options: FetchOptions) -> dict[str, float]:
    return {
        "connect": options.connect_timeout,
        "read": options.read_timeout,
        "write": options.read_timeout,
        "pool": options.connect_timeout,
    }


#: How h11 shows the bytes it refused (``bytearray(b'X-A: a\x00b')``): the literal is kept.
_BYTES_REPR = re.compile(r"""bytearray\((b(['"]).*?\2)\)""")


def _plain(message: str) -> str:
    """An h11 message with its bytes shown as ``b'…'`` rather than as Python's ``bytearray(…)``."""
    return _BYTES_REPR.sub(r"\1", message)


#: h11's words when a response head outgrows httpcore's buffer for it
_HEAD_TOO_LONG = "Receive buffer too long"


def _spent(options: FetchOptions, limit: int) -> str:
    """Why ``limit`` is lower than ``--max-size``, if it is (earlier hops' bodies)."""
    spent = options.max_body_size - limit
    return f" ({spent} of the {options.max_body_size} went to earlier redirects)" if spent else ""


def _translate(
    exc: httpcore.TimeoutException | httpcore.NetworkError | httpcore.ProtocolError,
    url: str,
    deadline: Deadline,
    unparsed: int = 0,
    interim: int = 0,
) -> CaptureError:
    """One httpcore exception as a preserve error (the caller chains it with ``from``);
    ``unparsed``: bytes the server sent in which no final response head was found, ``interim``:
    how many interim (1xx) responses were among them."""
    if isinstance(exc, httpcore.TimeoutException):
        if deadline.remaining() <= 0:
            return CaptureTimeoutError(
                f"capture of {url} exceeded its total time limit of {deadline.total:g} s"
            )
        return CaptureTimeoutError(f"timed out talking to {url}: {type(exc).__name__}")
    if isinstance(exc, httpcore.ConnectError):
        return ConnectError(f"cannot connect for {url}: {exc}")
    if isinstance(exc, httpcore.ProtocolError):
        if unparsed and "without sending a response" in str(exc):  # h11's words for EOF
            if interim:
                return ProtocolError(f"invalid HTTP from {url}: the server sent {interim} "
                                     "interim (1xx) response(s) but no final response, then "
                                     "closed the connection")
            return ProtocolError(f"invalid HTTP from {url}: the server sent {unparsed} bytes "
                                 "that are not an HTTP response, then closed the connection")
        if str(exc) == _HEAD_TOO_LONG:
            limit = httpcore.HTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE
            return ProtocolError(f"invalid HTTP from {url}: a response head (or chunk header) "
                                 f"is longer than {limit} bytes")
        return ProtocolError(f"invalid HTTP from {url}: {_plain(str(exc))}")
    return ProtocolError(f"connection to {url} failed mid-exchange: {exc or type(exc).__name__}")


def _location(url: URL, headers: Iterable[tuple[str, str]]) -> str | None:
    """Where a redirect points, resolved against ``url`` as a browser resolves it (the header
    itself is recorded as received): its bytes read as UTF-8 (``/café`` is ``/caf%C3%A9``,
    not the Latin-1 reading ``/caf%C3%83%C2%A9``), bytes that are not UTF-8 percent-encoded
    one by one, and a backslash before the query taken for a slash (``/a\\b`` is ``/a/b``,
    ``\\\\host/x`` another host), as the WHATWG URL standard does for http and https."""
    for name, value in headers:
        if name.lower() == "location":
            target = _as_browsers_read(value.strip())
            try:
                return str(url.join(target))
            except (InvalidURL, ValueError):
                return target
    return None


def _as_browsers_read(value: str) -> str:
    """A Location value (header bytes as Latin-1 characters) as a browser reads it."""
    raw = value.encode("latin-1", "replace")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)
    cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
    return text[:cut].replace("\\", "/") + text[cut:]


def _one_hop(
    url: URL,
    options: FetchOptions,
    deadline: Deadline,
    spool: _Spool,
    is_blocked: Callable[[IPAddress], bool],
    notes: list[str] | None = None,
    limit: int | None = None,
) -> Exchange:
    """One request and its response; ``limit``: most body bytes accepted (default
    ``options.max_body_size``)."""
    text_url = str(url)
    limit = options.max_body_size if limit is None else limit
    started = utc_timestamp()
    backend = RecordingBackend(
        deadline=deadline, allow_private=options.allow_private, is_blocked=is_blocked
    )
    port = url.port or (443 if url.scheme == "https" else 80)
    origin = httpcore.Origin(url.scheme.encode("ascii"), url.raw_host, port)
    connection = httpcore.HTTPConnection(
        origin,
        ssl_context=_ssl_context(options, text_url) if url.scheme == "https" else None,
        http1=True,
        http2=False,
        network_backend=backend,
    )
    request = httpcore.Request(
        b"GET",
        httpcore.URL(
            scheme=url.scheme.encode("ascii"), host=url.raw_host, port=port, target=url.raw_path
        ),
        headers=_request_headers(url, options),
        extensions={"timeout": _timeouts(options)},
    )
    body_hash = hashlib.sha256()
    body_size = 0
    try:
        body_path = spool.new_file(".body")
        with connection:
            response = connection.handle_request(request)
            try:
                headers = tuple(
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers
                )
                declared = _declared_length(headers)
                if declared is not None and declared > limit:
                    raise TooLargeError(
                        f"response from {text_url} declares {declared} bytes, over the limit "
                        f"of {limit}{_spent(options, limit)}"
                    )
                with body_path.open("wb") as sink:
                    for chunk in _iter_stream(response):
                        body_size += len(chunk)
                        if body_size > limit:
                            raise TooLargeError(
                                f"response body from {text_url} exceeds the limit of "
                                f"{limit} bytes{_spent(options, limit)}"
                            )
                        body_hash.update(chunk)
                        sink.write(chunk)
            finally:
                response.close()
            stream = backend.stream
            if stream is None or stream.final_head is None:
                raise ProtocolError(f"could not delimit the response head from {text_url}")
            if stream.ragged_eof and notes is not None:  # h11 took the end as the body's end
                notes.append(f"the TLS connection for {text_url} ended without close_notify, "
                             f"and its end ended the body: the {body_size} bytes kept may be "
                             "cut short")
            peer = stream.peer
            tls = _tls_info(peer, options, spool)
            return _exchange(
                url,
                response=response,
                headers=headers,
                stream=stream,
                peer=peer,
                tls=tls,
                body_path=body_path,
                body_size=body_size,
                body_sha256=body_hash.hexdigest(),
                started=started,
            )
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        stream = backend.stream
        head_missing = stream is not None and stream.final_head is None
        unparsed = stream.wire_size if stream is not None and head_missing else 0
        interim = stream.interim if stream is not None and head_missing else 0
        raise _translate(exc, text_url, deadline, unparsed, interim) from exc
    except OSError as exc:  # local files only: httpcore turns socket errors into its own
        raise StorageError(f"cannot spool the response from {text_url}: {exc}") from exc


def _iter_stream(response: httpcore.Response) -> Iterator[bytes]:
    stream = response.stream
    if not isinstance(stream, Iterable):
        raise ProtocolError("httpcore returned a non-iterable response stream")
    for chunk in stream:
        if isinstance(chunk, bytes):
            yield chunk


def _declared_length(headers: tuple[tuple[str, str], ...]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def _exchange(
    url: URL,
    *,
    response: httpcore.Response,
    headers: tuple[tuple[str, str], ...],
    stream: RecordingStream,
    peer: PeerFacts,
    tls: TLSInfo | None,
    body_path: Path,
    body_size: int,
    body_sha256: str,
    started: str,
) -> Exchange:
    reason = response.extensions.get("reason_phrase", b"")
    version = response.extensions.get("http_version", b"HTTP/1.1")
    transfer = [v for k, v in headers if k.lower() == "transfer-encoding"]
    location = _location(url, headers) if response.status in REDIRECT_STATUSES else None
    assert stream.final_head is not None
    return records.Exchange(
        url=str(url),
        method="GET",
        request_bytes=stream.request_bytes,
        response_head=stream.final_head,
        status=response.status,
        reason=reason.decode("latin-1") if isinstance(reason, bytes) else str(reason),
        http_version=version.decode("ascii") if isinstance(version, bytes) else str(version),
        headers=headers,
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
        tls=tls,
        location=location,
    )


# --- the capture -----------------------------------------------------------------------------


def fetch(url: str, spool_dir: Path, options: FetchOptions | None = None) -> FetchResult:
    """Capture ``url`` and every redirect hop; bodies are spooled to files in ``spool_dir``.

    The caller owns the returned spool files (``Exchange.body_path``, certificate
    ``der_path``) and deletes them when done; on error they are deleted here.
    """
    return _capture(url, spool_dir, options or FetchOptions(), is_blocked=is_blocked_address)


def _capture(
    url: str, spool_dir: Path, options: FetchOptions, *, is_blocked: Callable[[IPAddress], bool]
) -> FetchResult:
    """:func:`fetch` with the SSRF address predicate as a parameter (tests block 127.0.0.2)."""
    current = parse_url(url)
    requested = str(current)
    deadline = Deadline(options.timeout, requested)
    spool = _Spool(spool_dir)
    started = utc_timestamp()
    exchanges: list[Exchange] = []
    notes: list[str] = []
    seen = {requested}
    try:
        while True:
            made = len(spool.paths)
            # one budget for the bodies of the whole chain: ten redirects cannot spool ten
            # times --max-size
            limit = options.max_body_size - sum(e.body_size for e in exchanges)
            try:
                exchange = _one_hop(current, options, deadline, spool, is_blocked, notes, limit)
            except CaptureError as exc:
                if not exchanges:
                    raise
                # the redirects that led here are kept (where a link pointed is evidence
                # too); nothing of the hop that failed
                spool.discard(since=made)
                notes.append(f"redirect not followed: {exc}")
                break
            exchanges.append(exchange)
            target = exchange.location
            if target is None:
                if exchange.status in REDIRECT_STATUSES:
                    notes.append(f"{exchange.status} from {exchange.url} has no Location")
                break
            try:
                following = parse_url(target)
            except InvalidURLError as exc:
                notes.append(f"redirect not followed: {_unfollowable(exchange.url, target, exc)}")
                break
            if len(exchanges) > options.max_redirects:
                notes.append(f"redirect not followed: more than {options.max_redirects} "
                             f"redirects starting at {url}")
                break
            if str(following) in seen:
                notes.append(f"redirect not followed: a loop back to {following}")
                break
            seen.add(str(following))
            deadline.url = str(following)
            current = following
    except BaseException:
        spool.discard()
        raise
    return records.FetchResult(
        requested_url=requested,
        exchanges=tuple(exchanges),
        started=started,
        ended=utc_timestamp(),
        redirects_followed=len(exchanges) - 1,
        notes=tuple(notes),
    )


# --- content decoding ------------------------------------------------------------------------


def decode_body(exchange: Exchange, limit: int) -> DecodedBody:
    """The spooled body of ``exchange`` with its content codings removed (see decode_chunks;
    several ``Content-Encoding`` lines count as one list)."""
    return decode_chunks(
        exchange.iter_body(_SPOOL_BLOCK), content_encoding(exchange.headers), limit
    )


def read_decoded_body(exchange: Exchange, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the content-decoded body, and whether it was cut short.

    If the body cannot be decoded (unknown coding, corrupt data) the raw bytes are returned
    instead; call :func:`decode_body` to learn whether that happened and why.
    """
    result = decode_body(exchange, limit)
    return result.data, result.truncated


__all__ = [
    "ACCEPT_ENCODING",
    "MAX_GZIP_MEMBERS",
    "REDIRECT_STATUSES",
    "URL",
    "DecodedBody",
    "FetchOptions",
    "content_codings",
    "decodable_codings",
    "decode_body",
    "decode_chunks",
    "describe_certificate",
    "fetch",
    "parse_url",
    "read_decoded_body",
    "utc_timestamp",
]
