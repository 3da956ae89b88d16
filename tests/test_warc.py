"""preserve.warc: write a capture as WARC 1.1, read it back with warcio, check it with tools."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from preserve.capture.exchange import FetchResult
from preserve.capture.fetch import FetchOptions, fetch
from preserve.errors import NotFoundError, StorageError
from preserve.hashing import hash_file
from preserve.warc import (
    RENAMED_CONTENT_LENGTH,
    RENAMED_TRANSFER_ENCODING,
    WarcWriteResult,
    check_warc,
    read_record_payload,
    write_capture,
)
from servers import TestServer, chunk_encode, raw, redirect, respond, respond_gzip

VENV_BIN = Path(sys.executable).parent
BODY = b"<html><body>" + b"<p>chunked evidence</p>" * 40 + b"</body></html>"
CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)
METADATA = json.dumps({"capture_id": "test", "note": "provenance"}, sort_keys=True).encode()
TEXT = b"chunked evidence\n"


def _b32(data: bytes) -> str:
    return "sha256:" + base64.b32encode(hashlib.sha256(data).digest()).decode()


def _capture(
    server: TestServer, spool_dir: Path, path: str, options: FetchOptions | None = None
) -> FetchResult:
    return fetch(server.url(path), spool_dir, options or FetchOptions())


def _write(dest: Path, result: FetchResult, text: bytes | None = TEXT) -> WarcWriteResult:
    return write_capture(
        dest,
        result,
        warcinfo={"description": "test capture"},
        metadata_json=METADATA,
        conversion_text=text,
    )


@pytest.fixture
def chunked_capture(
    http_server: TestServer, spool_dir: Path, tmp_path: Path
) -> tuple[FetchResult, Path, WarcWriteResult]:
    http_server.routes["/start"] = redirect("/page", status=301)
    http_server.routes["/page"] = raw(CHUNKED_HEAD + chunk_encode(BODY, 100))
    result = _capture(http_server, spool_dir, "/start")
    dest = tmp_path / "capture.warc.gz"
    return result, dest, _write(dest, result)


def test_records_in_order_with_links(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult],
) -> None:
    result, dest, written = chunked_capture
    assert written.records[5].target_uri == "urn:preserve:provenance:" + result.final_url
    assert written.records[6].target_uri == "urn:text:" + result.final_url
    types = [ref.type for ref in written.records]
    assert types == [
        "warcinfo",
        "request",
        "response",
        "request",
        "response",
        "metadata",
        "conversion",
    ]
    by_id = {ref.record_id: ref for ref in written.records}
    final_response = written.records[4]
    assert written.records[5].refers_to == final_response.record_id
    assert written.records[6].refers_to == final_response.record_id
    assert written.records[6].content_type == "text/plain; charset=utf-8"
    assert written.records[5].content_type == "application/json"
    with dest.open("rb") as f:
        records = list(_headers(f))
    info_id = f"<{written.records[0].record_id}>"
    for (ref, headers), hop_index in zip(
        list(zip(written.records, records, strict=True))[1:5], [0, 0, 1, 1], strict=True
    ):
        hop = result.exchanges[hop_index]
        assert headers["WARC-Warcinfo-ID"] == info_id
        assert headers["WARC-Date"] == hop.started
        assert headers["WARC-Target-URI"] == hop.url == ref.target_uri
        assert headers["WARC-IP-Address"] == "127.0.0.1"
        assert headers["WARC-Block-Digest"] == ref.block_digest
        assert headers["WARC-Payload-Digest"] == ref.payload_digest
        if ref.type == "request":
            concurrent = headers["WARC-Concurrent-To"].strip("<>")
            assert by_id[concurrent].type == "response"
            assert by_id[concurrent].target_uri == ref.target_uri
    assert all(ref.record_id.startswith("urn:uuid:") for ref in written.records)
    assert len({ref.record_id for ref in written.records}) == len(written.records)


def _headers(stream: object) -> list[dict[str, str]]:
    out = []
    for record in ArchiveIterator(stream):
        out.append(dict(record.rec_headers.headers))
    return out


def test_exact_bytes_read_back_with_warcio(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult],
) -> None:
    result, dest, _written = chunked_capture
    blocks = []
    with dest.open("rb") as f:
        for record in ArchiveIterator(f, no_record_parse=True):
            blocks.append((record.rec_type, record.raw_stream.read()))
    assert blocks[1] == ("request", result.exchanges[0].request_bytes)
    assert blocks[2] == (
        "response",
        result.exchanges[0].response_head + result.exchanges[0].body_path.read_bytes(),
    )
    stored_head = CHUNKED_HEAD.replace(b"Transfer-Encoding", RENAMED_TRANSFER_ENCODING)
    assert blocks[4] == ("response", stored_head + BODY)
    assert blocks[5] == ("metadata", METADATA)
    assert blocks[6] == ("conversion", TEXT)
    info = blocks[0][1].decode()
    for field in (
        "software: preserve/",
        "format: WARC File Format 1.1",
        "conformsTo: http",
        "host: ",
        "operator: ",
        "description: test capture",
    ):
        assert field in info


def test_payload_digest_is_of_the_dechunked_body(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult],
) -> None:
    result, _dest, written = chunked_capture
    final = written.records[4]
    assert final.payload_digest == _b32(BODY)
    stored_head = CHUNKED_HEAD.replace(b"Transfer-Encoding", RENAMED_TRANSFER_ENCODING)
    assert final.block_digest == _b32(stored_head + BODY)
    # the exact wire bytes, framing included, stay provable through the exchange
    assert (
        result.final.wire_sha256
        == hashlib.sha256(CHUNKED_HEAD + chunk_encode(BODY, 100)).hexdigest()
    )


def test_warcio_check_passes(chunked_capture: tuple[FetchResult, Path, WarcWriteResult]) -> None:
    _result, dest, written = chunked_capture
    run = subprocess.run(
        [str(VENV_BIN / "warcio"), "check", "-v", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("digest pass") == len(written.records)


def test_cdxj_indexer_indexes_the_file(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult],
) -> None:
    result, dest, written = chunked_capture
    run = subprocess.run(
        [str(VENV_BIN / "cdxj-indexer"), str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line.split(" ", 2)[2]) for line in run.stdout.splitlines()]
    final = written.records[4]
    entry = next(e for e in lines if e.get("status") == "200")
    assert entry["url"] == result.final_url
    assert int(entry["offset"]) == final.offset and int(entry["length"]) == final.length
    assert entry["digest"] == final.payload_digest
    assert entry["mime"] == "text/html"


def test_offsets_are_gzip_members_and_digests_cover_the_file(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult],
) -> None:
    _result, dest, written = chunked_capture
    data = dest.read_bytes()
    position = 0
    for ref in written.records:
        assert ref.offset == position
        member = gzip.decompress(data[ref.offset : ref.offset + ref.length])
        assert member.startswith(b"WARC/1.1\r\n")
        assert f"WARC-Record-ID: <{ref.record_id}>".encode() in member
        position += ref.length
    assert position == len(data)
    assert written.digests == hash_file(dest)


def test_members_use_a_fast_level_and_a_window_sized_to_the_record(
    http_server: TestServer, spool_dir: Path, tmp_path: Path
) -> None:
    """Each record's gzip member is written at GZIP_LEVEL with a window no larger than the
    record needs (cheaper to set up); a record larger than the biggest window, a small one
    and a long target URI all inflate exactly, and warcio check passes."""
    from preserve.warc import write as warc_write  # noqa: PLC0415

    assert warc_write.GZIP_LEVEL == 2
    assert warc_write._window_bits(1) == 9 and warc_write._window_bits(512) == 9
    assert warc_write._window_bits(513) == 10 and warc_write._window_bits(4096) == 12
    assert warc_write._window_bits(1 << 20) == 15
    for size in (1, 511, 512, 513, 5000, 40000, 1 << 20):
        assert 1 << warc_write._window_bits(size) >= min(size, 1 << 15)
    big = bytes(range(256)) * 40 + os.urandom(70_000) + b"<p>repeat</p>" * 5000
    http_server.routes["/big"] = respond(
        200, big, headers=[("Content-Type", "application/octet-stream")])
    long_path = "/small/" + "q" * 3000
    http_server.routes[long_path] = respond(200, b"tiny")
    for path, body in (("/big", big), (long_path, b"tiny")):
        result = _capture(http_server, spool_dir, path)
        dest = tmp_path / f"{len(body)}.warc.gz"
        written = _write(dest, result, text=b"t" * 70_000)
        data = dest.read_bytes()
        members = [gzip.decompress(data[r.offset : r.offset + r.length])
                   for r in written.records]
        assert data[8] == 0  # gzip XFL: neither "slowest" (9) nor "fastest" (1) level
        assert [m.startswith(b"WARC/1.1\r\n") for m in members] == [True] * len(members)
        response = members[[r.type for r in written.records].index("response")]
        assert response.endswith(body + b"\r\n\r\n")
        assert all(c.problems == () for c in check_warc(dest))
        run = subprocess.run([str(VENV_BIN / "warcio"), "check", str(dest)],
                             capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stdout + run.stderr


def test_check_warc_on_a_good_file(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult],
) -> None:
    _result, dest, written = chunked_capture
    checks = list(check_warc(dest))
    assert [c.record_id for c in checks] == [r.record_id for r in written.records]
    assert [(c.offset, c.length) for c in checks] == [(r.offset, r.length) for r in written.records]
    for check, ref in zip(checks, written.records, strict=True):
        assert check.problems == ()
        assert check.block_ok is True
        assert check.payload_ok is (None if ref.type == "warcinfo" else True)


def test_read_record_payload_decodes_content(
    http_server: TestServer, spool_dir: Path, tmp_path: Path
) -> None:
    http_server.routes["/z"] = respond_gzip(BODY, headers=[("Content-Type", "text/html")])
    result = _capture(http_server, spool_dir, "/z")
    dest = tmp_path / "z.warc.gz"
    written = _write(dest, result)
    response = next(r for r in written.records if r.type == "response")

    payload, headers = read_record_payload(dest, response.offset, 1 << 20)
    assert payload == BODY
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"] == "text/html"
    short, _ = read_record_payload(dest, response.offset, 10)
    assert short == BODY[:10]
    with pytest.raises(NotFoundError):
        read_record_payload(dest, 0, 100)  # the warcinfo record


def test_https_capture_keeps_the_certificate(
    https_server: TestServer, ca_bundle: Path, spool_dir: Path, tmp_path: Path
) -> None:
    https_server.routes["/"] = respond(200, BODY, headers=[("Content-Type", "text/html")])
    result = _capture(https_server, spool_dir, "/", FetchOptions(ca_bundle=ca_bundle))
    dest = tmp_path / "tls.warc.gz"
    written = _write(dest, result, text=None)

    assert [r.type for r in written.records] == [
        "warcinfo",
        "request",
        "response",
        "metadata",
        "metadata",
    ]
    cert_ref = written.records[4]
    assert cert_ref.content_type == "application/pkix-cert"
    assert cert_ref.refers_to == written.records[2].record_id
    with dest.open("rb") as f:
        records = [(dict(r.rec_headers.headers), r.raw_stream.read()) for r in ArchiveIterator(f)]
    assert records[4][1] == https_server.certificate_der
    response_headers = records[2][0]
    tls = result.final.tls
    assert tls is not None
    assert response_headers["WARC-Cipher-Suite"] == tls.cipher
    assert response_headers["WARC-Protocol"] in ("tls/1.2", "tls/1.3")  # the last one given
    assert all(c.problems == () for c in check_warc(dest))
    run = subprocess.run(
        [str(VENV_BIN / "warcio"), "check", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout


def test_existing_destination_is_never_overwritten(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult],
) -> None:
    result, dest, _written = chunked_capture
    before = dest.read_bytes()
    with pytest.raises(StorageError):
        _write(dest, result)
    assert dest.read_bytes() == before


def test_changed_spool_file_is_refused_and_partial_file_removed(
    http_server: TestServer, spool_dir: Path, tmp_path: Path
) -> None:
    http_server.routes["/"] = respond(200, BODY)
    result = _capture(http_server, spool_dir, "/")
    result.final.body_path.write_bytes(BODY.replace(b"evidence", b"forgery!"))
    dest = tmp_path / "bad.warc.gz"
    with pytest.raises(StorageError, match="spool"):
        _write(dest, result)
    assert not dest.exists()


def test_a_body_read_into_memory_or_streamed_gives_the_same_records(
    http_server: TestServer, spool_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body up to _IN_MEMORY is read once and written from memory, a larger one streamed
    from its spool file: the same digests either way, and a spool file changed since the
    capture is refused either way."""
    from preserve.warc import write as warc_write  # noqa: PLC0415

    http_server.routes["/"] = respond(200, BODY)
    result = _capture(http_server, spool_dir, "/")
    digests = []
    for limit in (warc_write._IN_MEMORY, 0):
        monkeypatch.setattr(warc_write, "_IN_MEMORY", limit)
        dest = tmp_path / f"{limit}.warc.gz"
        written = _write(dest, result)
        digests.append([(r.type, r.block_digest, r.payload_digest) for r in written.records])
        assert all(c.problems == () for c in check_warc(dest))
    assert digests[0] == digests[1]
    original = result.final.body_path.read_bytes()
    for limit, changed in ((1 << 20, original[:-1]), (1 << 20, original + b"x"),
                           (0, original.replace(b"evidence", b"forgery!"))):
        monkeypatch.setattr(warc_write, "_IN_MEMORY", limit)
        result.final.body_path.chmod(0o644)
        result.final.body_path.write_bytes(changed)
        dest = tmp_path / "bad.warc.gz"
        with pytest.raises(StorageError, match="spool"):
            _write(dest, result)
        assert not dest.exists()


# --- damage ----------------------------------------------------------------------------------


def _replace_member(data: bytes, offset: int, length: int, new_member: bytes) -> bytes:
    return data[:offset] + new_member + data[offset + length :]


def test_check_warc_reports_a_tampered_payload(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult], tmp_path: Path
) -> None:
    _result, dest, written = chunked_capture
    final = written.records[4]
    data = dest.read_bytes()
    member = gzip.decompress(data[final.offset : final.offset + final.length])
    tampered = member.replace(b"chunked evidence", b"chunked evidencX", 1)
    assert tampered != member and len(tampered) == len(member)
    bad = tmp_path / "tampered.warc.gz"
    bad.write_bytes(_replace_member(data, final.offset, final.length, gzip.compress(tampered)))

    checks = list(check_warc(bad))

    assert len(checks) == len(written.records)
    bad_check = checks[4]
    assert bad_check.block_ok is False and bad_check.payload_ok is False
    assert any("digest" in p for p in bad_check.problems)
    assert all(c.problems == () for i, c in enumerate(checks) if i != 4)


def test_check_warc_reports_a_tampered_http_header(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult], tmp_path: Path
) -> None:
    _result, dest, written = chunked_capture
    final = written.records[4]
    data = dest.read_bytes()
    member = gzip.decompress(data[final.offset : final.offset + final.length])
    tampered = member.replace(b"200 OK", b"200 Ok", 1)
    bad = tmp_path / "header.warc.gz"
    bad.write_bytes(_replace_member(data, final.offset, final.length, gzip.compress(tampered)))

    check = list(check_warc(bad))[4]

    assert check.block_ok is False and check.payload_ok is True


@pytest.mark.parametrize("cut", [0.35, 0.6, 0.95, -1, -8, -12])
def test_check_warc_reports_truncation_without_raising(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult], tmp_path: Path, cut: float
) -> None:
    _result, dest, _written = chunked_capture
    data = dest.read_bytes()
    bad = tmp_path / "cut.warc.gz"
    bad.write_bytes(data[: int(len(data) * cut)] if cut > 0 else data[: int(cut)])

    checks = list(check_warc(bad))

    assert checks, "a truncated file must yield at least one check"
    assert any(c.problems for c in checks)
    assert checks[-1].problems


def test_check_warc_reports_garbage(tmp_path: Path) -> None:
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(os.urandom(4096))
    checks = list(check_warc(junk))
    assert checks and checks[-1].problems


def test_check_warc_reports_trailing_bytes(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult], tmp_path: Path
) -> None:
    _result, dest, written = chunked_capture
    bad = tmp_path / "trailing.warc.gz"
    bad.write_bytes(dest.read_bytes() + b"\x00garbage after the end")
    checks = list(check_warc(bad))
    assert [c.problems == () for c in checks[: len(written.records)]] == [True] * len(
        written.records
    )
    assert checks[-1].problems


# --- replay with pywb ------------------------------------------------------------------------

PYWB_PYTHON = os.environ.get("PRESERVE_PYWB_PYTHON", "")

_REPLAY = r"""
import os, sys
from pywb.apps.frontendapp import FrontEndApp
from werkzeug.test import Client
os.chdir(sys.argv[1])
response = Client(FrontEndApp()).get("/coll/id_/" + sys.argv[2])
length = response.headers.get("Content-Length") or "-"
sys.stdout.buffer.write(f"{response.status}\n{length}\n".encode() + response.get_data())
"""


_NEEDS_PYWB = pytest.mark.skipif(
    not (PYWB_PYTHON and Path(PYWB_PYTHON).exists()),
    reason="pywb not available: set PRESERVE_PYWB_PYTHON to a python that has pywb installed",
)


def _pywb_replay(dest: Path, url: str, tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    """Replay ``url`` from ``dest`` through pywb's WSGI app (no network), indexed with pywb's
    own wb-manager: (status line, Content-Length served or ``-``, body)."""
    root = tmp_path / "pywb"
    root.mkdir()
    (root / "config.yaml").write_text("collections_root: collections\n")
    manager = str(Path(PYWB_PYTHON).parent / "wb-manager")
    for args in (["init", "coll"], ["add", "coll", str(dest)]):
        subprocess.run([manager, *args], cwd=root, capture_output=True, timeout=120, check=True)
    replay = subprocess.run(
        [PYWB_PYTHON, "-c", _REPLAY, str(root), url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr.decode(errors="replace")[-2000:]
    status, length, body = replay.stdout.split(b"\n", 2)
    return status, length, body


@_NEEDS_PYWB
def test_pywb_replays_the_capture(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult], tmp_path: Path
) -> None:
    result, dest, _written = chunked_capture
    status, _length, body = _pywb_replay(dest, result.final_url, tmp_path)
    assert status.startswith(b"200"), status
    assert body == BODY


@_NEEDS_PYWB
def test_pywb_replays_all_of_a_chunked_body_that_also_declared_a_length(
    http_server: TestServer, spool_dir: Path, tmp_path: Path
) -> None:
    """A server sent Content-Length: 5 beside chunked framing: replay must not serve the
    5 as the length (the client would cut the page there and read the rest as a further
    response)."""
    http_server.routes["/both"] = raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                      b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      + chunk_encode(BODY, 100))
    result = _capture(http_server, spool_dir, "/both")
    dest = tmp_path / "both.warc.gz"
    _write(dest, result)
    status, length, body = _pywb_replay(dest, result.final_url, tmp_path)
    assert status.startswith(b"200"), status
    assert length in (b"-", str(len(BODY)).encode()) and body == BODY


def test_check_warc_reads_an_uncompressed_copy_and_flags_an_empty_file(
    chunked_capture: tuple[FetchResult, Path, WarcWriteResult], tmp_path: Path
) -> None:
    _result, dest, written = chunked_capture
    plain = tmp_path / "plain.warc"
    plain.write_bytes(gzip.decompress(dest.read_bytes()))  # members concatenate to one stream
    checks = list(check_warc(plain))
    assert [c.record_id for c in checks] == [r.record_id for r in written.records]
    assert all(c.problems == () and c.block_ok for c in checks)
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    assert [c.problems for c in check_warc(empty)] == [("file is empty",)]
    with pytest.raises(NotFoundError):
        list(check_warc(tmp_path / "missing.warc.gz"))


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Length: %d\n\n",  # bare LF lines
        b"HTTP/1.0 200\r\nContent-Length: %d\r\n\r\n",  # HTTP/1.0, no reason phrase
        b"HTTP/1.1 200 OK\r\ntransfer-encoding:chunked\r\nContent-Type: text/html\r\n\r\n",
        # both framings: chunked wins (RFC 9112 6.3); the 5 must not frame the stored body
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["bare-lf", "http10-no-reason", "lowercase-te-no-space", "content-length-and-chunked"],
)
def test_unusual_but_valid_heads_round_trip(
    http_server: TestServer, spool_dir: Path, tmp_path: Path, head: bytes
) -> None:
    chunked = b"chunked" in head
    wire = head + chunk_encode(BODY, 64) if chunked else (head % len(BODY)) + BODY
    http_server.routes["/odd"] = raw(wire)
    result = _capture(http_server, spool_dir, "/odd")
    dest = tmp_path / "odd.warc.gz"
    written = _write(dest, result)

    response = written.records[2]
    assert response.payload_digest == _b32(BODY)
    assert all(c.problems == () for c in check_warc(dest))
    run = subprocess.run(
        [str(VENV_BIN / "warcio"), "check", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout
    payload, headers = read_record_payload(dest, response.offset, 1 << 20)
    assert payload == BODY
    if chunked:
        assert not {"transfer-encoding", "content-length"} & {k.lower() for k in headers}
        assert headers[RENAMED_TRANSFER_ENCODING.decode()] == "chunked"
        if b"Content-Length" in head:
            assert headers[RENAMED_CONTENT_LENGTH.decode()] == "5"
