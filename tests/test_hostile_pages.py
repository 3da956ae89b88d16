"""A hostile page or server never blocks its own capture, and a batch never stops for one.

Fields taken from the page or the server (title, headers, certificate fields and dates) are
bounded and recorded faithfully: a length cap with a record of the cut, a certificate date out
of any calendar kept as the certificate states it. The WARC — the evidence — is committed
whenever the bytes arrived. Also: redirects not followed are recorded and reported, ``--from``
files may start with a byte-order mark, ``init`` never collides on a directory name.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID
from warcio.archiveiterator import ArchiveIterator

from measure import peak_rss
from preserve import Archive, CaptureOptions, FetchOptions
from preserve.capture.fetch import describe_certificate
from servers import TestServer, redirect, respond

PRESERVE = str(Path(sys.executable).with_name("preserve"))
HTML = [("Content-Type", "text/html; charset=utf-8")]
PAGE = (b"<html><head><title>Plain</title></head><body><article><p>" + b"Words of a page. " * 40
        + b"</p></article></body></html>")


def run(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRESERVE, "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120, check=False, input=stdin)


# --- DER surgery: a certificate whose validity dates no calendar library accepts ------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(tag, header length, content length, total length) of the DER item at ``pos``."""
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        return tag, 2, first, 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
    return tag, 2 + count, length, 2 + count + length


def _encode(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _children(data: bytes) -> list[bytes]:
    items, pos = [], 0
    while pos < len(data):
        total = _tlv(data, pos)[3]
        items.append(data[pos : pos + total])
        pos += total
    return items


def with_validity(der: bytes, not_before: bytes, not_after: bytes) -> bytes:
    """``der`` with its validity replaced by two GeneralizedTime values (signature left stale:
    servers never check their own certificate, and the client runs with --insecure)."""
    _, head, _, _ = _tlv(der, 0)
    cert_parts = _children(der[head:])
    tbs = cert_parts[0]
    _, tbs_head, _, _ = _tlv(tbs, 0)
    fields = _children(tbs[tbs_head:])
    index = 4 if fields[0][0] == 0xA0 else 3  # [version], serial, signature, issuer, validity
    fields[index] = _encode(0x30, _encode(0x18, not_before) + _encode(0x18, not_after))
    new_tbs = _encode(0x30, b"".join(fields))
    return _encode(0x30, new_tbs + b"".join(cert_parts[1:]))


@pytest.fixture
def odd_dated_server(tmp_path: Path) -> Iterator[TestServer]:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(
        serialization.Encoding.DER)
    odd = with_validity(der, b"09990101000000Z", b"00000229000000Z")  # year 999; 29 Feb, year 0
    cert = tmp_path / "odd.pem"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\n"
                     + __import__("base64").encodebytes(odd)
                     + b"-----END CERTIFICATE-----\n")
    key = tmp_path / "odd.key"
    key.write_bytes(leaf.private_key_pem.bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with TestServer(ssl_context=context, certificate_der=odd) as server:
        server.routes["/"] = respond(200, PAGE, headers=HTML)
        yield server


def test_certificate_dated_outside_any_calendar_is_kept_as_given(
        odd_dated_server: TestServer, tmp_path: Path) -> None:
    facts = describe_certificate(odd_dated_server.certificate_der or b"")
    assert facts.not_before == "0999-01-01T00:00:00Z" or facts.not_before.startswith("asn1:")
    assert facts.not_after == "asn1:00000229000000Z"
    archive = Archive(tmp_path / "a")
    result = archive.capture(odd_dated_server.url("/"),
                             CaptureOptions(fetch=FetchOptions(verify_tls=False)))
    manifest = archive.manifest(result.capture_id)
    tls = manifest.connection.tls
    assert tls is not None and tls.certificate is not None and not tls.verified
    assert tls.certificate.not_after == "asn1:00000229000000Z"
    assert archive.verify(deep=True, record=False).ok


def _x400_certified_server(tmp_path: Path) -> TestServer:
    """HTTPS whose leaf, signed by a CA of its own, names 127.0.0.1 and an x400Address in its
    subjectAltName: OpenSSL verifies it, cryptography cannot describe it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x400 test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    ip = x509.GeneralNames([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    san = x509.SubjectAlternativeName(ip).public_bytes()  # SEQUENCE { [7] 127.0.0.1 }
    x400 = b"\xa3\x05\x30\x03\x61\x01\x00"  # [3] ORAddress, as a DER blob
    raw_san = bytes([0x30, len(san) - 2 + len(x400)]) + san[2:] + x400
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
                                                      raw_san), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "x400-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "x400.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "x400.key").write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "x400.pem", tmp_path / "x400.key")
    return TestServer(ssl_context=context,
                      certificate_der=leaf.public_bytes(serialization.Encoding.DER))


def test_a_verified_certificate_preserve_cannot_describe_is_kept_as_sent(
        tmp_path: Path) -> None:
    """A general name type cryptography does not support (x400Address) ended the capture in
    'internal error' (exit 5): the certificate is recorded as sent (its DER in the WARC), the
    manifest describes none, and the capture goes on."""
    with _x400_certified_server(tmp_path) as server:
        server.routes["/"] = respond(200, PAGE, headers=HTML)
        done = run(tmp_path / "a", "capture", "--http", "--ca-bundle",
                   str(tmp_path / "x400-ca.pem"), server.url("/"), "--json")
        assert done.returncode == 0, done.stderr
        capture_id = json.loads(done.stdout)["result"]["captures"][0]["capture_id"]
        archive = Archive(tmp_path / "a")
        manifest = archive.manifest(capture_id)
        tls = manifest.connection.tls
        assert tls is not None and tls.verified and tls.certificate is None
        with (archive.root / manifest.warc.path).open("rb") as f:
            kept = [r.content_stream().read() for r in ArchiveIterator(f)
                    if r.rec_headers.get_header("Content-Type") == "application/pkix-cert"]
        assert kept == [server.certificate_der]
        assert archive.verify(deep=True, record=False).ok


def test_title_of_millions_of_control_characters(http_server: TestServer,
                                                 tmp_path: Path) -> None:
    hostile = b"<html><head><title>" + b"\x01\x02" * 1_500_000 + b"</title></head><body>" \
        + b"<article><p>" + b"The article itself, which must be kept. " * 30 \
        + b"</p></article></body></html>"
    http_server.routes["/t"] = respond(200, hostile, headers=HTML)
    done = run(tmp_path, "capture", "--http", http_server.url("/t"), "--json")
    assert done.returncode == 0, done.stderr
    capture = json.loads(done.stdout)["result"]["captures"][0]
    manifest = Archive(tmp_path).manifest(capture["capture_id"])
    assert (tmp_path / manifest.warc.path).is_file()  # the evidence is committed
    fields = {cut.field for cut in manifest.truncated}
    title = manifest.extraction.title or ""
    assert "extraction.title" in fields or len(title) <= 4096
    assert (tmp_path / "manifests" / f"{manifest.capture_id}.json").stat().st_size < 2**20


def test_huge_header_values_are_cut_and_recorded(http_server: TestServer,
                                                 tmp_path: Path) -> None:
    http_server.routes["/h"] = respond(200, PAGE, headers=[
        ("Content-Type", "text/html; charset=utf-8; x=" + "a" * 90_000)])
    archive = Archive(tmp_path)
    result = archive.capture(http_server.url("/h"))
    manifest = archive.manifest(result.capture_id)
    assert [cut.field for cut in manifest.truncated] == ["http.content_type"]
    assert manifest.truncated[0].length > 90_000


def test_redirect_to_an_unsupported_scheme_is_recorded_and_reported(
        http_server: TestServer, tmp_path: Path) -> None:
    http_server.routes["/go"] = redirect("ftp://files.example/report.pdf")
    done = run(tmp_path, "capture", "--http", http_server.url("/go"))
    assert done.returncode == 1, done.stderr  # kept, but not the page itself
    assert "redirect not followed" in done.stdout
    assert "ftp://files.example/report.pdf" in done.stderr
    capture_id = done.stdout.split()[0]
    manifest = Archive(tmp_path).manifest(capture_id)
    assert manifest.status == "redirect-not-followed"
    assert any("ftp://files.example/report.pdf" in note for note in manifest.notes)


@pytest.mark.parametrize("target", ["dead", "loop"])
def test_a_redirect_whose_next_hop_fails_is_kept_and_reported(
        http_server: TestServer, tmp_path: Path, target: str) -> None:
    """A short link to a host that is gone, or a loop: the redirects that arrived are kept
    (where the link pointed is evidence), the hop that failed is named, exit 1; nothing of
    the failed hop is left behind and the archive verifies, deep."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/gone"
    http_server.routes["/short"] = redirect(dead if target == "dead" else "/again")
    http_server.routes["/again"] = redirect("/short")
    done = run(tmp_path, "capture", "--http", http_server.url("/short"))
    assert done.returncode == 1, done.stderr
    assert "redirect not followed" in done.stdout
    assert (dead if target == "dead" else "loop") in done.stderr
    manifest = Archive(tmp_path).manifest(done.stdout.split()[0])
    assert manifest.status == "redirect-not-followed"
    assert len([r for r in manifest.warc.records if r.type == "response"]) == \
        (1 if target == "dead" else 2)
    assert not list((tmp_path / "archive" / "tmp").rglob("*.body"))
    assert Archive(tmp_path).verify(deep=True).ok


def test_batch_goes_on_after_failures_and_counts_them(http_server: TestServer,
                                                      tmp_path: Path) -> None:
    http_server.routes["/ok"] = respond(200, PAGE, headers=HTML)
    urls = tmp_path / "urls.txt"
    urls.write_bytes(b"\xef\xbb\xbf" + "\n".join([  # a byte-order mark before the first URL
        http_server.url("/ok"), "http://127.0.0.1:9/refused", "not a url",
        http_server.url("/ok?second")]).encode())
    done = run(tmp_path, "capture", "--http", "--from", str(urls), "--timeout", "5")
    assert done.returncode == 4
    assert len(done.stdout.splitlines()) == 2  # both good pages were captured
    errors = [line for line in done.stderr.splitlines() if line.startswith("preserve: error:")]
    assert len(errors) == 2
    assert any("http://127.0.0.1:9/refused" in e for e in errors)
    assert any("not a url" in e for e in errors)
    assert "2 of 4 captured, 2 failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_from_standard_input(http_server: TestServer, tmp_path: Path) -> None:
    http_server.routes["/ok"] = respond(200, PAGE, headers=HTML)
    done = run(tmp_path, "capture", "--http", "--from", "-",
               stdin="\ufeff" + http_server.url("/ok") + "\n")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1


def test_init_twice_with_the_same_directory_name(tmp_path: Path) -> None:
    first = Archive(tmp_path / "one" / "evidence").init()
    second = Archive(tmp_path / "two" / "evidence").init()
    assert first.private_path != second.private_path and second.created
    assert first.verifier_key != second.verifier_key
    assert (tmp_path / "two" / "evidence" / "manifests/log/key.pub").is_file()


def test_timeout_must_be_finite(tmp_path: Path) -> None:
    for value in ("nan", "inf", "-inf", "1e999"):
        done = run(tmp_path / "x", "capture", "--http", "--timeout", value, "http://127.0.0.1:9/")
        assert done.returncode == 2, (value, done.stderr)
        assert not (tmp_path / "x").exists()


def test_terminal_output_never_carries_escape_sequences(http_server: TestServer,
                                                        tmp_path: Path) -> None:
    """A title, byline, text or URL holding escape sequences (OSC sets the terminal title or
    clipboard, CSI clears the screen), backspaces, carriage returns or bidi overrides is
    shown literally by every human-readable command, never acted on by the terminal."""
    esc = "\x1b"
    hostile = (f"Evil{esc}]0;PWNED\x07{esc}[2J\x9b31m\u202eRTL\x08\x08\rOVER\u2028end")
    page = (f"<html><head><title>{hostile}</title><meta name=author content='{esc}[5mby'>"
            f"</head><body><article><p>{('Words ' + hostile + ' of a page. ') * 30}</p>"
            "</article></body></html>").encode()
    http_server.routes["/hostile"] = respond(200, page, headers=HTML)
    http_server.routes["/plain"] = respond(200, PAGE, headers=HTML)
    root = tmp_path / "root"
    url = http_server.url("/hostile")
    ids = []
    for target in (url, http_server.url("/plain")):
        done = run(root, "capture", "--http", "--json", target)
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["result"]["captures"][0]["capture_id"])
    outputs = [run(root, "capture", "--http", url), run(root, "list"), run(root, "show", ids[0]),
               run(root, "history", url), run(root, "diff", ids[1], ids[0]),
               run(root, "show", f"{esc}]0;x\x07")]
    for done in outputs:
        for text in (done.stdout, done.stderr):
            bad = [c for c in text if c in f"{esc}\x07\x08\r\x9b\u202e\u2028"]
            assert not bad, (done.args, bad, text[:2000])
    shown = run(root, "show", ids[0]).stdout
    assert "⟨U+001B⟩]0;PWNED⟨U+0007⟩" in shown and "⟨U+202E⟩RTL" in shown
    assert json.loads(run(root, "show", ids[0], "--json").stdout)["result"]["extraction"][
        "title"].startswith(f"Evil{esc}]0;PWNED")  # --json keeps the values as they are


def test_error_lines_are_bounded_and_show_invisible_characters(http_server: TestServer,
                                                              tmp_path: Path) -> None:
    """A 1 MB line of a --from file was echoed whole (twice) in its error line; a byte-order
    mark inside the file made a URL that failed look exactly like a good one."""
    http_server.routes["/a"] = respond(200, PAGE, headers=HTML)
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{http_server.url('/a')}\n\ufeff{http_server.url('/a')}\n"
                    f"{http_server.url('/')}{'a' * 1_000_000}\n", encoding="utf-8")
    done = run(tmp_path / "root", "capture", "--http", "--from", str(urls))
    assert done.returncode in (2, 4), done.stderr[:500]
    lines = done.stderr.splitlines()
    assert all(len(line) < 4200 for line in lines), [len(line) for line in lines]
    # (the line is cut when read, at 65,537 characters: too long for any URL; the error
    # quotes it once in full and cuts its own copy at 200 characters)
    assert any("… (65," in line and "characters)" in line for line in lines), lines
    assert any(f"⟨U+FEFF⟩{http_server.url('/a')}" in line for line in lines), lines


@pytest.mark.slow
def test_a_long_url_list_is_streamed_not_held(tmp_path: Path) -> None:
    """50,000 invalid lines peak within a few MiB of 500 (every URL, its position and its
    outcome were held: about 200 MB for 100,000); each is still reported on its own line and
    counted in the exit status and summary."""
    peaks = {}
    for lines in (500, 50_000):
        urls = tmp_path / f"{lines}.txt"
        urls.write_text("# invalid on purpose\n"
                        + "".join(f"not a url {i}\n" for i in range(lines)))
        done = peak_rss([PRESERVE, "--root", str(tmp_path / "root"), "capture", "--http",
                         "--from", str(urls)])
        peaks[lines], stderr = done.peak_kib, done.stderr
        errors = [line for line in stderr.splitlines() if line.startswith("preserve: error:")]
        assert len(errors) == lines and f"not a url {lines - 1}" in errors[-1]
        assert f"0 of {lines} captured, {lines} failed" in stderr
    growth = peaks[50_000] - peaks[500]
    assert growth < 16 * 1024, f"peak RSS grew by {growth} KiB for 49,500 more lines"


def test_a_url_list_that_is_not_utf8_is_refused_before_the_first_capture(
        tmp_path: Path, http_server: TestServer) -> None:
    """The list is checked (and counted, for progress) before the first capture: a line that
    is not UTF-8 anywhere in it is one error line and exit 2, with nothing captured."""
    http_server.routes["/ok"] = respond(200, PAGE, headers=HTML)
    urls = tmp_path / "urls.txt"
    urls.write_bytes(f"{http_server.url('/ok')}\n".encode() + b"http://example.org/caf\xe9\n")
    done = run(tmp_path / "root", "capture", "--http", "--from", str(urls))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "is not UTF-8 text" in done.stderr
    assert not list((tmp_path / "root").glob("manifests/*.json"))


def test_url_list_lines_end_with_cr_too_and_a_long_one_is_one_invalid_url(
        tmp_path: Path, http_server: TestServer) -> None:
    """CR and CRLF end lines as LF does; a line too long for any URL is cut when read (not
    held whole) and reported as one invalid URL; a long comment is still a comment."""
    http_server.routes["/ok"] = respond(200, PAGE, headers=HTML)
    good = http_server.url("/ok")
    urls = tmp_path / "urls.txt"
    urls.write_bytes(f"{good}\r{good}?2\r\n#{'c' * 300_000}\n".encode()
                     + f"{good}?{'a' * 300_000}\n{good}?3".encode())
    done = run(tmp_path / "root", "capture", "--http", "--from", str(urls), "--timeout", "5")
    assert done.returncode == 4, done.stderr[-500:]
    assert len(done.stdout.splitlines()) == 3
    errors = [line for line in done.stderr.splitlines() if line.startswith("preserve: error:")]
    assert len(errors) == 1 and "(65,8" in errors[0] and len(errors[0]) < 4200
    assert "3 of 4 captured, 1 failed" in done.stderr
