"""preserve.capture.fetch against servers that misbehave: every failure maps to one preserve error,
names the URL, stays within its limits, and leaves no spool files behind."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import ssl
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from preserve import errors
from preserve.capture.fetch import (
    MAX_GZIP_MEMBERS,
    FetchOptions,
    _capture,
    decode_chunks,
    fetch,
)
from preserve.capture.transport import IPAddress, is_blocked_address
from servers import (
    MALFORMED_STATUS_LINE,
    ReceivedRequest,
    TestServer,
    drip,
    endless_redirect,
    gzip_bomb,
    lying_content_length,
    ragged_tls,
    raw,
    redirect,
    reset_mid_body,
    respond,
    stall,
    stream_bytes,
)


def _fails(
    exc_type: type[errors.CaptureError],
    url: str,
    spool_dir: Path,
    options: FetchOptions | None = None,
) -> errors.CaptureError:
    """Fetch ``url`` expecting ``exc_type``; check the message and the spool directory."""
    with pytest.raises(exc_type) as info:
        fetch(url, spool_dir, options or FetchOptions())
    message = str(info.value)
    assert "\n" not in message
    assert list(spool_dir.iterdir()) == [], "spool files left behind after a failed capture"
    return info.value


HTML_PAGE = b"<html><head><title>T</title></head><body><p>kept</p></body></html>"


# --- bad input: refused before any network ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["", "not a url", "http://", "http:///path", "http://exa mple.com/", "http://a:99999/"],
)
def test_invalid_urls(url: str, spool_dir: Path) -> None:
    error = _fails(errors.InvalidURLError, url, spool_dir)
    assert not isinstance(error, errors.UnsupportedSchemeError)


@pytest.mark.parametrize(
    "url", ["ftp://example.org/", "file:///etc/passwd", "javascript:alert(1)", "gopher://x/"]
)
def test_unsupported_schemes(url: str, spool_dir: Path) -> None:
    error = _fails(errors.UnsupportedSchemeError, url, spool_dir)
    assert url.split(":", maxsplit=1)[0] in str(error)


def test_unresolvable_host_is_a_dns_error(spool_dir: Path) -> None:
    # a 64-character label cannot be encoded for DNS: resolution fails locally, no query sent
    url = "http://" + "a" * 64 + ".test/"
    error = _fails(errors.DNSError, url, spool_dir)
    assert "a" * 64 in str(error)


def test_refused_connection(spool_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    error = _fails(errors.ConnectError, url, spool_dir)
    assert url in str(error)


# --- TLS -------------------------------------------------------------------------------------


def test_untrusted_certificate_is_a_tls_error(
    untrusted_https_server: TestServer, ca_bundle: Path, spool_dir: Path
) -> None:
    untrusted_https_server.routes["/"] = respond(200, b"should not be captured")
    url = untrusted_https_server.url("/")
    error = _fails(errors.TLSError, url, spool_dir, FetchOptions(ca_bundle=ca_bundle))
    assert url in str(error) and "certificate" in str(error).lower()
    assert untrusted_https_server.requests == []


def test_a_tls_body_ended_without_close_notify_is_noted(
    https_server: TestServer, ca_bundle: Path, spool_dir: Path
) -> None:
    """An HTTPS body the connection's end delimits (HTTP/1.0, no Content-Length), the TCP
    connection closed without TLS close_notify (as anyone on the path can do): it was kept
    as complete with nothing said; it is kept, with a note that it may be cut short."""
    head = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"

    def orderly(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(head + b"<p>all of it</p>")
        assert isinstance(conn, ssl.SSLSocket)
        conn.unwrap()  # close_notify, then the TCP close

    https_server.routes["/ragged"] = ragged_tls(head + b"<p>the first half")
    https_server.routes["/orderly"] = orderly
    options = FetchOptions(ca_bundle=ca_bundle)
    cut = fetch(https_server.url("/ragged"), spool_dir, options)
    assert cut.final.body_path.read_bytes() == b"<p>the first half"
    assert len(cut.notes) == 1 and "ended without close_notify" in cut.notes[0]
    assert "17 bytes kept may be cut short" in cut.notes[0]
    whole = fetch(https_server.url("/orderly"), spool_dir, options)
    assert whole.final.body_path.read_bytes() == b"<p>all of it</p>" and whole.notes == ()


def test_certificate_for_another_name_is_a_tls_error(
    test_ca: trustme.CA, ca_bundle: Path, spool_dir: Path
) -> None:
    # trusted CA, but the certificate names only other.example, not 127.0.0.1
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("other.example").configure_cert(context)
    with TestServer(ssl_context=context) as server:
        server.routes["/"] = respond(200, b"x")
        error = _fails(
            errors.TLSError, server.url("/"), spool_dir, FetchOptions(ca_bundle=ca_bundle)
        )
        assert server.requests == []
    assert "127.0.0.1" in str(error)


def test_tls_to_a_plain_http_server_is_a_tls_error(
    http_server: TestServer, spool_dir: Path
) -> None:
    http_server.routes["/"] = respond(200, b"plain")
    url = f"https://127.0.0.1:{http_server.port}/"
    _fails(errors.TLSError, url, spool_dir)


# --- malformed HTTP --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        MALFORMED_STATUS_LINE,  # no status code
        b"garbage that is not http\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header Without Colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nhi",
        b"",  # closes without a word
    ],
    ids=[
        "no-status-code",
        "not-http",
        "header-without-colon",
        "conflicting-lengths",
        "bad-chunk-size",
        "unsupported-transfer-coding",
        "nul-in-a-header",
        "empty",
    ],
)
def test_malformed_responses_are_protocol_errors(
    http_server: TestServer, spool_dir: Path, wire: bytes
) -> None:
    http_server.routes["/bad"] = raw(wire)
    url = http_server.url("/bad")
    error = _fails(errors.ProtocolError, url, spool_dir)
    assert url in str(error)
    assert "bytearray" not in str(error)  # the refused bytes shown as b'…', not Python's repr


def test_an_answer_that_is_not_http_is_called_so(http_server: TestServer,
                                                spool_dir: Path) -> None:
    """HTTP/0.9-style bytes, then a close: not "disconnected without sending a response"."""
    http_server.routes["/old"] = raw(b"<html><p>no status line at all</p></html>")
    http_server.routes["/silent"] = raw(b"")
    error = _fails(errors.ProtocolError, http_server.url("/old"), spool_dir)
    assert "sent 41 bytes that are not an HTTP response" in str(error)
    error = _fails(errors.ProtocolError, http_server.url("/silent"), spool_dir)
    assert "not an HTTP response" not in str(error)


def test_interim_responses_alone_are_called_so(http_server: TestServer,
                                               spool_dir: Path) -> None:
    """A 100 and a 103, then a close: HTTP, but no final response (not "not HTTP")."""
    http_server.routes["/interim"] = raw(b"HTTP/1.1 100 Continue\r\n\r\n"
                                         b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
    error = _fails(errors.ProtocolError, http_server.url("/interim"), spool_dir)
    assert "2 interim (1xx) response(s) but no final response" in str(error)
    assert "not an HTTP response" not in str(error)


def test_lying_content_length_is_a_protocol_error(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/short"] = lying_content_length(b"only ten!!", declared=100)
    _fails(errors.ProtocolError, http_server.url("/short"), spool_dir)


def test_chunked_body_cut_off_is_a_protocol_error(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/cut"] = raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n"
    )
    _fails(errors.ProtocolError, http_server.url("/cut"), spool_dir)


def test_reset_mid_body_is_a_protocol_error(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/reset"] = reset_mid_body(b"x" * 5000)
    _fails(errors.ProtocolError, http_server.url("/reset"), spool_dir)


def test_oversized_response_head_is_refused(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/head"] = raw(
        b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 300_000 + b"\r\n\r\n"
    )
    error = _fails(errors.ProtocolError, http_server.url("/head"), spool_dir)
    assert "is longer than 102400 bytes" in str(error)  # not h11's "Receive buffer too long"


# --- time limits -----------------------------------------------------------------------------


def test_total_timeout_stops_a_slow_drip(http_server: TestServer, spool_dir: Path) -> None:
    # each byte arrives well within the read timeout; only the total limit can stop it
    http_server.routes["/drip"] = drip(b"x" * 200, interval=0.05)
    options = FetchOptions(timeout=1.0, read_timeout=5.0)
    start = time.monotonic()
    error = _fails(errors.CaptureTimeoutError, http_server.url("/drip"), spool_dir, options)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.0, elapsed
    assert "total time limit" in str(error)


def test_total_timeout_spans_redirect_hops(http_server: TestServer, spool_dir: Path) -> None:
    """The time limit counts every hop; the redirects received before it ran out are kept
    (where a link pointed is evidence), the hop it cut is not."""
    http_server.routes["/a"] = stall(0.4, then=redirect("/b"))
    http_server.routes["/b"] = stall(0.4, then=redirect("/c"))
    http_server.routes["/c"] = stall(0.4, then=respond(200, b"late"))
    options = FetchOptions(timeout=1.0, read_timeout=5.0)
    start = time.monotonic()
    result = fetch(http_server.url("/a"), spool_dir, options)
    assert time.monotonic() - start < 1.6
    assert [e.url.rsplit("/", 1)[1] for e in result.exchanges] == ["a", "b"]
    assert len(result.notes) == 1 and "total time limit" in result.notes[0]
    assert result.notes[0].startswith("redirect not followed: ")
    assert sorted(spool_dir.iterdir()) == sorted(e.body_path for e in result.exchanges)


def test_tls_handshake_that_never_completes_times_out(spool_dir: Path) -> None:
    # the kernel accepts the connection into the backlog; nobody ever answers the ClientHello
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
        start = time.monotonic()
        error = _fails(
            errors.CaptureTimeoutError, url, spool_dir, FetchOptions(connect_timeout=0.3)
        )
    assert time.monotonic() - start < 1.5
    assert "TLS" in str(error)


def test_read_timeout_on_a_silent_server(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/silent"] = stall(3.0)
    options = FetchOptions(read_timeout=0.3)
    start = time.monotonic()
    _fails(errors.CaptureTimeoutError, http_server.url("/silent"), spool_dir, options)
    assert time.monotonic() - start < 1.5


# --- size limits -----------------------------------------------------------------------------


def test_declared_oversize_body_is_refused_before_reading(
    http_server: TestServer, spool_dir: Path
) -> None:
    http_server.routes["/big"] = stream_bytes(50 * 2**20)
    start = time.monotonic()
    error = _fails(
        errors.TooLargeError, http_server.url("/big"), spool_dir, FetchOptions(max_body_size=2**20)
    )
    assert time.monotonic() - start < 2.0
    assert "declares" in str(error)


@pytest.mark.parametrize("framing", ["close-delimited", "chunked"])
def test_undeclared_oversize_body_stops_at_the_limit(
    http_server: TestServer, spool_dir: Path, framing: str
) -> None:
    limit = 2**20
    if framing == "chunked":
        http_server.routes["/big"] = respond(
            200, b"y" * (4 * limit), chunked=True, chunk_size=65536
        )
    else:
        http_server.routes["/big"] = stream_bytes(200 * 2**20, declare=False)
    start = time.monotonic()
    _fails(
        errors.TooLargeError, http_server.url("/big"), spool_dir, FetchOptions(max_body_size=limit)
    )
    assert time.monotonic() - start < 3.0  # 200 MiB were on offer; we stopped early


def test_body_exactly_at_the_limit_is_accepted(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/edge"] = respond(200, b"z" * 1000, content_length=False)
    result = fetch(http_server.url("/edge"), spool_dir, FetchOptions(max_body_size=1000))
    assert result.final.body_size == 1000


def test_gzip_bomb_is_decoded_within_the_limit(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/bomb"] = gzip_bomb(64 * 2**20)
    hop = fetch(http_server.url("/bomb"), spool_dir).final
    assert hop.body_size < 2**20  # stored compressed, as sent

    tracemalloc.start()
    try:
        decoded = decode_chunks(hop.iter_body(1 << 16), "gzip", 1 << 20)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.truncated is True and decoded.decoded is True
    assert len(decoded.data) == 1 << 20 and set(decoded.data) == {0}
    assert peak < 8 * 2**20, f"decoding peaked at {peak} bytes"


def test_gzip_bomb_check_is_bounded_per_chunk() -> None:
    packed = gzip.compress(b"\0" * (32 * 2**20))
    result = decode_chunks([packed], "gzip", 100)  # one chunk holding the whole bomb
    assert result.truncated and result.data == b"\0" * 100


def test_bytes_after_the_gzip_data_cost_neither_memory_nor_time() -> None:
    """zlib keeps every byte fed after the end of the compressed data, and copies it again
    at every call: 20 MB of junk after a small member took 2.4 s and 68 MiB, time quadratic
    in the body (a 512 MiB body: half an hour, after the capture's deadline and again in
    every ``verify --deep``). Once the data has ended nothing more is fed to zlib."""
    junk = b"J" * 65536

    def body() -> Iterator[bytes]:
        yield gzip.compress(HTML_PAGE)
        for _ in range(40 * 16):  # 40 MB
            yield junk

    tracemalloc.start()
    began = time.perf_counter()
    result = decode_chunks(body(), "gzip", 3 * 2**20)
    spent = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.data == HTML_PAGE and "ignored" in (result.problem or "")
    assert spent < 1.0 and peak < 4 * 2**20, (spent, peak)


def test_many_gzip_members_are_decoded_in_order_and_their_number_bounded() -> None:
    """Members split across chunks and windows decode to the same bytes, in order; a body
    of empty members (0.12 s a MB, never reaching the output limit) stops being decoded
    after MAX_GZIP_MEMBERS members, and says so."""
    parts = [f"<p>part {i}</p>".encode() * (i % 7) for i in range(3000)]
    packed = b"".join(gzip.compress(part) for part in parts)
    pieces = [packed[i : i + 9999] for i in range(0, len(packed), 9999)]
    assert decode_chunks(pieces, "gzip", 10 * 2**20) == decode_chunks([packed], "gzip", 10 * 2**20)
    whole = decode_chunks(pieces, "gzip", 10 * 2**20)
    assert whole.data == b"".join(parts) and whole.problem is None
    empty = gzip.compress(b"")
    block = empty * (65536 // len(empty))
    began = time.perf_counter()
    result = decode_chunks([gzip.compress(HTML_PAGE)] + [block] * 16 * 50, "gzip", 3 * 2**20)
    assert time.perf_counter() - began < 1.0
    assert result.data == HTML_PAGE
    assert f"more than {MAX_GZIP_MEMBERS} gzip members" in (result.problem or "")


# --- redirects -------------------------------------------------------------------------------


def test_endless_redirects_stop_at_the_limit(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/loop"] = endless_redirect("/loop")
    options = FetchOptions(max_redirects=5)
    result = fetch(http_server.url("/loop"), spool_dir, options)
    assert len(http_server.requests) == 6  # the first request and five redirects followed
    assert len(result.exchanges) == 6 and result.final.status == 302
    assert result.notes == (f"redirect not followed: more than 5 redirects starting at "
                            f"{http_server.url('/loop')}",)


def test_redirect_loop_is_detected(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/a"] = redirect("/b")
    http_server.routes["/b"] = redirect("/a")
    result = fetch(http_server.url("/a"), spool_dir)
    assert len(http_server.requests) == 2
    assert [e.url for e in result.exchanges] == [http_server.url("/a"), http_server.url("/b")]
    assert result.notes == (f"redirect not followed: a loop back to {http_server.url('/a')}",)


def test_a_location_too_long_to_resolve_is_named_as_such(http_server: TestServer,
                                                        spool_dir: Path) -> None:
    """A relative Location that grows past the URL length limit when percent-encoded cannot
    be resolved: the note says so (not "URL has no scheme"), with the value cut short."""
    location = "/" + "\u00e9" * 12_000  # 24 KB of UTF-8 as sent, 72 KB once percent-encoded
    http_server.routes["/a"] = redirect(location.encode().decode("latin-1"))  # sent as UTF-8
    result = fetch(http_server.url("/a"), spool_dir)
    assert len(http_server.requests) == 1 and len(result.exchanges) == 1
    (note,) = result.notes
    assert note.startswith("redirect not followed: its Location '/\u00e9")
    assert "no scheme" not in note
    assert f"cannot be resolved against {http_server.url('/a')}: URL too long" in note
    assert "(12001 characters)" in note and len(note) < 500


def test_redirect_limit_zero_refuses_any_redirect(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/a"] = redirect("/b")
    result = fetch(http_server.url("/a"), spool_dir, FetchOptions(max_redirects=0))
    assert len(http_server.requests) == 1 and len(result.exchanges) == 1
    assert "more than 0 redirects" in result.notes[0]


def test_one_size_limit_spans_every_hop(http_server: TestServer, spool_dir: Path) -> None:
    """--max-size bounds the bodies of the whole chain (a hostile server cannot make a
    capture spool --max-redirects times the limit); the redirects within it are kept."""
    for hop in range(5):
        http_server.routes[f"/{hop}"] = respond(302, b"x" * 600,
                                                headers=[("Location", f"/{hop + 1}")])
    result = fetch(http_server.url("/0"), spool_dir, FetchOptions(max_body_size=1500))
    assert [e.body_size for e in result.exchanges] == [600, 600]
    (note,) = result.notes
    assert "over the limit of 300 (1200 of the 1500 went to earlier redirects)" in note
    assert len(http_server.requests) == 3
    assert sorted(spool_dir.iterdir()) == sorted(e.body_path for e in result.exchanges)


def test_a_redirect_to_a_dead_host_keeps_the_redirect(http_server: TestServer,
                                                      spool_dir: Path) -> None:
    """A later hop that cannot be fetched ends the chain there: what arrived is kept (the
    first hop failing is a failed capture, as before), and nothing of the failed hop."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/gone"
    http_server.routes["/short"] = redirect(dead)
    result = fetch(http_server.url("/short"), spool_dir)
    assert [e.url for e in result.exchanges] == [http_server.url("/short")]
    (note,) = result.notes
    assert note.startswith("redirect not followed: cannot connect") and "/gone" in note
    assert list(spool_dir.iterdir()) == [result.final.body_path]  # the failed hop's: gone
    (spool_dir / "first-hop").mkdir()  # the same host as the first hop: a failed capture
    _fails(errors.ConnectError, dead, spool_dir / "first-hop")


# --- SSRF guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # carrier-grade NAT
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped loopback
        ("2002:7f00:1::", True),  # 6to4 wrapping 127.0.0.1
        ("2002:a9fe:a9fe::", True),  # 6to4 wrapping the cloud metadata address
        ("::127.0.0.1", True),  # IPv4-compatible loopback
        ("::a9fe:a9fe", True),  # IPv4-compatible 169.254.169.254
        ("64:ff9b::7f00:1", True),  # NAT64 well-known prefix wrapping 127.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 wrapping 10.0.0.1
        ("64:ff9b:1::a00:1", True),  # local-use NAT64 (RFC 8215)
        ("::ffff:0:7f00:1", True),  # IPv4-translated (RFC 2765)
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True),  # Teredo
        ("64:ff9b::808:808", False),  # NAT64 wrapping a public address
        ("::8.8.8.8", False),
        ("93.184.216.34", False),
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_blocked_address_table(address: str, blocked: bool) -> None:
    assert is_blocked_address(ipaddress.ip_address(address)) is blocked


def test_ssrf_guard_refuses_loopback(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/"] = respond(200, b"internal")
    error = _fails(
        errors.BlockedAddressError,
        http_server.url("/"),
        spool_dir,
        FetchOptions(allow_private=False),
    )
    assert "127.0.0.1" in str(error)
    assert http_server.requests == []


def test_ssrf_guard_checks_after_dns(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/"] = respond(200, b"internal")
    _fails(
        errors.BlockedAddressError,
        http_server.url("/", host="localhost"),
        spool_dir,
        FetchOptions(allow_private=False),
    )
    assert http_server.requests == []


def test_ssrf_guard_applies_to_every_redirect_hop(spool_dir: Path) -> None:
    # 127.0.0.1 stands in for "public", 127.0.0.2 for "private": the same machinery, one rule.
    def only_second(address: IPAddress) -> bool:
        return str(address) == "127.0.0.2"

    with TestServer(host="127.0.0.2") as inner, TestServer() as outer:
        inner.routes["/secret"] = respond(200, b"metadata credentials")
        outer.routes["/go"] = redirect(inner.url("/secret"))
        kept = _capture(outer.url("/go"), spool_dir, FetchOptions(allow_private=False),
                        is_blocked=only_second)
        assert len(outer.requests) == 1
        assert inner.requests == []  # refused after DNS, before any byte was sent
        # the redirect is kept (where it pointed is evidence), nothing of the refused hop
        assert len(kept.exchanges) == 1 and kept.final.status == 302
        (note,) = kept.notes
        assert note.startswith("redirect not followed: ") and "127.0.0.2" in note
        assert list(spool_dir.iterdir()) == [kept.final.body_path]
        # with the guard off the same chain is followed (the test setup itself is sound)
        result = _capture(
            outer.url("/go"), spool_dir, FetchOptions(allow_private=True), is_blocked=only_second
        )
        assert result.final.body_path.read_bytes() == b"metadata credentials"


# --- local failures ---------------------------------------------------------------------------


def test_unwritable_spool_is_a_storage_error(http_server: TestServer, tmp_path: Path) -> None:
    http_server.routes["/"] = respond(200, b"ok")
    with pytest.raises(errors.StorageError, match="cannot spool"):
        fetch(http_server.url("/"), tmp_path / "does-not-exist")
    assert http_server.requests == []


def test_unreadable_ca_bundle_is_a_capture_error(
    https_server: TestServer, tmp_path: Path, spool_dir: Path
) -> None:
    bogus = tmp_path / "not-a-ca.pem"
    bogus.write_text("this is not PEM")
    options = FetchOptions(ca_bundle=bogus)
    error = _fails(errors.CaptureError, https_server.url("/"), spool_dir, options)
    assert str(bogus) in str(error)


@pytest.mark.parametrize(("location", "followed"), [
    (b"/caf\xc3\xa9", "/caf%C3%A9"),  # UTF-8 bytes, as browsers read them
    (b"/caf\xe9", "/caf%E9"),  # bytes that are not UTF-8, each percent-encoded
    (b"/a\\b?x=\\y", "/a/b?x=\\y"),  # a backslash is a slash, in the path only
])
def test_a_location_is_followed_where_a_browser_would_go(
        http_server: TestServer, spool_dir: Path, location: bytes, followed: str) -> None:
    """A Location of UTF-8 bytes was read as Latin-1 (``/café`` fetched as
    ``/caf%C3%83%C2%A9``, the server's 404 kept), and a backslash sent as it came: a capture
    followed another resource than the browser of anyone who clicked the link. The header is
    recorded as received either way."""
    http_server.routes["/start"] = raw(b"HTTP/1.1 302 Found\r\nLocation: " + location
                                       + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    result = fetch(http_server.url("/start"), spool_dir)
    assert [r.target for r in http_server.requests][1] == followed
    assert result.exchanges[-1].url == http_server.url(followed)
    assert result.exchanges[0].location == http_server.url(followed)
