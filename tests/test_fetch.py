"""preserve.capture.fetch against real HTTP/HTTPS servers on 127.0.0.1: hops, bytes, TLS."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import re
import socket
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preserve.capture.exchange import Exchange
from preserve.capture.fetch import (
    ACCEPT_ENCODING,
    FetchOptions,
    decode_body,
    decode_chunks,
    describe_certificate,
    fetch,
    read_decoded_body,
)
from servers import ReceivedRequest, TestServer, chunk_encode, raw, redirect, respond, respond_gzip

RFC3339_MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
HTML = b"<!doctype html><title>t</title><p>Evidence \xc3\xa9</p>"


def test_redirect_chain_records_every_hop(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/a"] = redirect("/b", status=301)
    http_server.routes["/b"] = redirect(http_server.url("/final"), status=302)
    http_server.routes["/final"] = respond(200, HTML, headers=[("Content-Type", "text/html")])

    result = fetch(http_server.url("/a"), spool_dir)

    assert [hop.status for hop in result.exchanges] == [301, 302, 200]
    assert [hop.url for hop in result.exchanges] == [
        http_server.url("/a"),
        http_server.url("/b"),
        http_server.url("/final"),
    ]
    assert [hop.location for hop in result.exchanges] == [
        http_server.url("/b"),
        http_server.url("/final"),
        None,
    ]
    assert result.redirects_followed == 2
    assert result.requested_url == http_server.url("/a")
    assert result.final_url == http_server.url("/final")
    assert result.final.body_path.read_bytes() == HTML
    assert result.final.body_sha256 == hashlib.sha256(HTML).hexdigest()
    assert result.final.content_type == "text/html"
    # each hop's request is exactly what that server connection received
    assert [hop.request_bytes for hop in result.exchanges] == [r.raw for r in http_server.requests]
    for hop in result.exchanges:
        assert hop.remote_ip == "127.0.0.1"
        assert hop.remote_port == http_server.port
        assert hop.local_ip == "127.0.0.1"
        assert hop.tls is None
        assert RFC3339_MICRO.match(hop.started) and RFC3339_MICRO.match(hop.ended)
        assert hop.started <= hop.ended
    assert result.started <= result.exchanges[0].started
    assert result.ended >= result.final.ended


def test_exact_wire_bytes_of_a_chunked_response(http_server: TestServer, spool_dir: Path) -> None:
    body = b"0123456789abcdef" * 50
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type:  text/plain; charset=utf-8\r\n"  # odd spacing and case, kept as sent
        b"Transfer-Encoding: chunked\r\n"
        b"X-Odd:\tvalue \r\n"
        b"Connection: close\r\n\r\n"
    )
    wire = head + chunk_encode(body, 37)
    http_server.routes["/c"] = raw(wire)

    hop = fetch(http_server.url("/c"), spool_dir).final

    assert hop.response_head == head
    assert hop.wire_sha256 == hashlib.sha256(wire).hexdigest()
    assert hop.wire_size == len(wire)
    assert hop.body_path.read_bytes() == body
    assert hop.body_size == len(body)
    assert hop.transfer_encoding == "chunked"
    assert hop.status == 200 and hop.reason == "OK" and hop.http_version == "HTTP/1.1"
    assert ("content-type", "text/plain; charset=utf-8") in hop.headers


def test_head_arriving_byte_by_byte_is_kept_exactly(
    http_server: TestServer, spool_dir: Path
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"

    def dribble(request: ReceivedRequest, conn: socket.socket) -> None:
        for i in range(len(head)):
            conn.sendall(head[i : i + 1])
            time.sleep(0.002)
        conn.sendall(b"hello")

    http_server.routes["/d"] = dribble
    hop = fetch(http_server.url("/d"), spool_dir).final
    assert hop.response_head == head
    assert hop.body_path.read_bytes() == b"hello"


def test_interim_1xx_response_is_not_taken_for_the_head(
    http_server: TestServer, spool_dir: Path
) -> None:
    final_head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    wire = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + final_head + b"ok"
    http_server.routes["/hints"] = raw(wire)

    hop = fetch(http_server.url("/hints"), spool_dir).final

    assert hop.status == 200
    assert hop.response_head == final_head
    assert hop.wire_size == len(wire)


def test_request_names_preserve_and_does_not_lie_about_encodings(
    http_server: TestServer, spool_dir: Path
) -> None:
    http_server.routes["/"] = respond(200, b"ok")
    options = FetchOptions(headers=(("Accept-Language", "fr"), ("User-Agent", "custom/1")))

    fetch(http_server.url("/"), spool_dir, options)
    fetch(http_server.url("/"), spool_dir)

    custom, default = http_server.requests
    assert custom.header("User-Agent") == "custom/1"
    assert custom.header("Accept-Language") == "fr"
    assert re.fullmatch(
        r"preserve/\d+\.\d+\.\d+\S* \(\+python-httpcore\)", default.header("User-Agent") or ""
    )
    assert default.header("Accept-Encoding") == ACCEPT_ENCODING == "gzip, deflate"
    assert default.header("Host") == f"127.0.0.1:{http_server.port}"


@pytest.mark.parametrize("status", [404, 410, 500, 503])
def test_error_statuses_are_evidence_not_errors(
    http_server: TestServer, spool_dir: Path, status: int
) -> None:
    http_server.routes["/gone"] = respond(status, b"<h1>nope</h1>")

    result = fetch(http_server.url("/gone"), spool_dir)

    assert result.final.status == status
    assert result.final.body_path.read_bytes() == b"<h1>nope</h1>"


def test_redirect_without_location_is_the_final_response(
    http_server: TestServer, spool_dir: Path
) -> None:
    http_server.routes["/r"] = respond(302, b"nowhere")

    result = fetch(http_server.url("/r"), spool_dir)

    assert len(result.exchanges) == 1 and result.final.status == 302
    assert any("no Location" in note for note in result.notes)


def test_redirect_to_unsupported_scheme_stops_with_a_note(
    http_server: TestServer, spool_dir: Path
) -> None:
    http_server.routes["/r"] = redirect("ftp://example.org/file")

    result = fetch(http_server.url("/r"), spool_dir)

    assert len(result.exchanges) == 1 and result.final.status == 302
    assert any("ftp" in note for note in result.notes)


def test_fragment_and_credentials_are_not_sent(http_server: TestServer, spool_dir: Path) -> None:
    http_server.routes["/p"] = respond(200, b"ok")
    url = f"http://user:secret@127.0.0.1:{http_server.port}/p?q=1#section"

    result = fetch(url, spool_dir)

    assert result.final_url == f"http://127.0.0.1:{http_server.port}/p?q=1"
    (request,) = http_server.requests
    assert request.target == "/p?q=1"
    assert request.header("Authorization") is None
    assert b"secret" not in result.final.request_bytes


# --- HTTPS -----------------------------------------------------------------------------------


def test_https_records_tls_facts_of_the_same_connection(
    https_server: TestServer, ca_bundle: Path, spool_dir: Path
) -> None:
    https_server.routes["/"] = respond(200, HTML, headers=[("Content-Type", "text/html")])

    result = fetch(https_server.url("/"), spool_dir, FetchOptions(ca_bundle=ca_bundle))

    hop = result.final
    assert hop.body_path.read_bytes() == HTML
    assert hop.tls is not None
    assert hop.tls.verified is True
    assert hop.tls.version in ("TLSv1.2", "TLSv1.3")
    assert hop.tls.cipher
    assert hop.tls.alpn == "http/1.1"
    cert = hop.tls.certificate
    assert cert is not None
    der = https_server.certificate_der
    assert der is not None
    assert cert.sha256_fingerprint == hashlib.sha256(der).hexdigest()
    assert cert.der_path is not None and cert.der_path.read_bytes() == der
    assert cert.der_path.parent == spool_dir
    assert "IP:127.0.0.1" in cert.subject_alt_names
    assert "DNS:localhost" in cert.subject_alt_names
    assert cert.issuer and cert.subject != cert.issuer
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cert.not_before)
    assert cert.not_before < cert.not_after
    assert re.fullmatch(r"[0-9a-f]+", cert.serial_number)
    assert hop.remote_ip == "127.0.0.1" and hop.remote_port == https_server.port


def test_insecure_mode_captures_untrusted_server_and_says_so(
    untrusted_https_server: TestServer, ca_bundle: Path, spool_dir: Path
) -> None:
    untrusted_https_server.routes["/"] = respond(200, b"self-signed")
    options = FetchOptions(ca_bundle=ca_bundle, verify_tls=False)

    hop = fetch(untrusted_https_server.url("/"), spool_dir, options).final

    assert hop.body_path.read_bytes() == b"self-signed"
    assert hop.tls is not None and hop.tls.verified is False
    assert hop.tls.certificate is not None
    der = untrusted_https_server.certificate_der
    assert der is not None
    assert hop.tls.certificate.sha256_fingerprint == hashlib.sha256(der).hexdigest()


def test_describe_certificate_matches_the_der(https_server: TestServer) -> None:
    der = https_server.certificate_der
    assert der is not None
    cert = describe_certificate(der)
    assert cert.sha256_fingerprint == hashlib.sha256(der).hexdigest()
    assert cert.der_path is None


# --- content decoding ------------------------------------------------------------------------


def _exchange_for(http_server: TestServer, spool_dir: Path, route: str) -> Exchange:
    return fetch(http_server.url(route), spool_dir).final


def test_gzip_body_is_kept_encoded_and_decoded_on_request(
    http_server: TestServer, spool_dir: Path
) -> None:
    http_server.routes["/z"] = respond_gzip(HTML, headers=[("Content-Type", "text/html")])

    hop = _exchange_for(http_server, spool_dir, "/z")

    assert hop.body_path.read_bytes()[:2] == b"\x1f\x8b"  # stored as sent
    assert read_decoded_body(hop, 10_000) == (HTML, False)
    assert read_decoded_body(hop, 10) == (HTML[:10], True)
    assert decode_body(hop, 10_000).decoded is True


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    "encoded", [zlib.compress(HTML), _raw_deflate(HTML)], ids=["zlib-wrapped", "raw-deflate"]
)
def test_deflate_in_both_forms_servers_send(encoded: bytes) -> None:
    result = decode_chunks([encoded[:1], encoded[1:3], encoded[3:]], "deflate", 10_000)
    assert result.data == HTML and result.decoded and not result.truncated


def test_undecodable_body_comes_back_raw_and_flagged() -> None:
    junk = b"\x1f\x8b\x08\x00not really gzip at all"
    result = decode_chunks([junk], "gzip", 1000)
    assert result.decoded is False and result.data == junk and result.problem
    unknown = decode_chunks([b"abc"], "compress", 1000)
    assert unknown.decoded is False and unknown.data == b"abc"
    assert "compress" in (unknown.problem or "")


def test_truncated_gzip_is_reported() -> None:
    packed = gzip.compress(HTML)
    result = decode_chunks([packed[:-8]], "gzip", 10_000)
    assert result.data == HTML and result.problem and "truncated" in result.problem


def test_multi_member_gzip_is_decoded_whole() -> None:
    packed = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decode_chunks([packed], "gzip", 100).data == b"first second"


def test_junk_after_gzip_data_is_ignored_and_reported() -> None:
    result = decode_chunks([gzip.compress(HTML) + b"\r\n"], "gzip", 10_000)
    assert result.decoded and result.data == HTML
    assert result.problem and "ignored" in result.problem


def test_empty_encoded_body_is_not_a_problem() -> None:
    assert decode_chunks([], "gzip", 10) == decode_chunks([b""], "deflate", 10)
    assert decode_chunks([], "gzip", 10).problem is None


def test_identity_and_absent_coding_pass_through() -> None:
    assert decode_chunks([b"ab", b"cd"], "identity", 3).data == b"abc"
    assert decode_chunks([b"ab", b"cd"], None, 10).data == b"abcd"


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=5000),
    coding=st.sampled_from(["gzip", "deflate", None]),
    cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=6),
    limit=st.integers(min_value=0, max_value=6000),
)
def test_decoding_any_chunking_and_limit(
    data: bytes, coding: str | None, cuts: list[int], limit: int
) -> None:
    encoders: dict[str | None, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        None: bytes,
    }
    encoded = encoders[coding](data)
    bounds = sorted({0, len(encoded), *(c for c in cuts if c < len(encoded))})
    chunks = [encoded[a:b] for a, b in itertools.pairwise(bounds)]
    result = decode_chunks(chunks, coding, limit)
    assert result.decoded and result.problem is None
    assert result.data == data[:limit]
    assert result.truncated == (len(data) > limit)
