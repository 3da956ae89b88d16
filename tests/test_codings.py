"""preserve.capture.codings: br, zstd and stacked content codings, decoded streaming and
bounded, with real compressors (brotlicffi, zstd, zlib); and a capture of br and zstd pages
from a real server on 127.0.0.1, extracted, stored as sent and re-extracted by verify --deep."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import brotlicffi
import pytest
from warcio.archiveiterator import ArchiveIterator

import preserve
from measure import peak_rss
from preserve.capture.codings import (
    MAX_CODINGS,
    MAX_ZSTD_FRAMES,
    DecodedBody,
    decode_chunks,
)
from preserve.hashing import warc_digest_to_hex
from servers import TestServer, respond

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

PARAGRAPHS = (
    "The archive keeps every byte the server sent, compressed as it was sent.",
    "Les archives gardent chaque octet envoyé par le serveur, compressé tel quel.",
    "アーカイブはサーバーが送ったすべてのバイトを、送られたとおりに圧縮したまま保存します。",
    "Архив хранит каждый байт, отправленный сервером, в том виде, в каком он был сжат.",
    "يحتفظ الأرشيف بكل بايت أرسله الخادم، مضغوطًا كما أُرسل.",
    "संग्रह सर्वर द्वारा भेजे गए हर बाइट को वैसे ही संकुचित रखता है जैसे वह भेजा गया था।",
)
PAGE = ("<!doctype html><html><head><meta charset='utf-8'><title>Compressed evidence</title>"
        "</head><body><article><h1>Compressed evidence</h1>"
        + "".join(f"<p>{p}</p>" for p in PARAGRAPHS * 2)
        + "</article></body></html>").encode()
PRESERVE = str(Path(sys.executable).with_name("preserve"))

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotlicffi.compress,
    "zstd": zstd.compress,
}


def encode(data: bytes, header: str) -> bytes:
    """``data`` with the codings of a Content-Encoding value applied, in the order listed."""
    for coding in (c.strip() for c in header.split(",")):
        data = ENCODERS[coding](data)
    return data


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# --- br and zstd, alone and stacked ----------------------------------------------------------


@pytest.mark.parametrize("header", ["br", "zstd", "gzip, br", "deflate, zstd", "gzip, gzip",
                                    "br, gzip", "zstd, deflate, br, gzip"])
def test_codings_are_undone_last_applied_first_in_any_chunking(header: str) -> None:
    body = encode(PAGE, header)
    whole = decode_chunks([body], header, 10_000)
    assert whole == DecodedBody(PAGE, truncated=False, decoded=True)
    assert decode_chunks(bytewise(body), header, 10_000) == whole
    cut = decode_chunks(bytewise(body), header, 100)
    assert cut == DecodedBody(PAGE[:100], truncated=True, decoded=True)


def test_codings_listed_in_the_wrong_order_are_corrupt_data() -> None:
    body = encode(PAGE, "gzip, br")  # gzipped, then brotli-compressed
    result = decode_chunks([body], "br, gzip", 10_000)
    assert result.decoded is False and result.data == body
    assert result.problem is not None and result.problem.startswith("gzip data is corrupt")


@pytest.mark.parametrize("header", ["br", "zstd", "gzip, br", "deflate, zstd"])
def test_truncated_data_gives_what_was_decoded_and_says_so(header: str) -> None:
    body = encode(PAGE * 20, header)
    result = decode_chunks([body[: len(body) * 2 // 3]], header, 100_000)
    assert result.decoded and not result.truncated
    assert (PAGE * 20).startswith(result.data) and len(result.data) < len(PAGE) * 20
    for coding in (c.strip() for c in header.split(",")):  # each ran out of data
        assert f"{coding} stream is truncated" in (result.problem or "")


@pytest.mark.parametrize(("header", "body", "named"), [
    ("br", b"\xff" * 40, "br"),
    ("zstd", b"\x28\xb5\x2f\xfd" + b"junk" * 10, "zstd"),
    ("gzip, br", brotlicffi.compress(b"\x1f\x8b\x08\x00not gzip at all"), "gzip"),
    ("br, zstd", zstd.compress(b"\xff" * 40), "br"),
])
def test_corrupt_data_at_any_stage_gives_the_raw_bytes(header: str, body: bytes,
                                                       named: str) -> None:
    result = decode_chunks(bytewise(body), header, 10_000)
    assert result.decoded is False and result.data == body and not result.truncated
    assert result.problem is not None and result.problem.startswith(f"{named} data is corrupt")
    assert decode_chunks([body], header, 7) == DecodedBody(
        body[:7], truncated=True, decoded=False, problem=result.problem)


def test_bytes_after_zstd_data_are_ignored_and_reported() -> None:
    body = zstd.compress(PAGE) + b"\r\n<junk>"
    for chunks in ([body], bytewise(body)):
        result = decode_chunks(chunks, "zstd", 10_000)
        assert result.decoded and result.data == PAGE
        assert result.problem == "bytes after the end of the zstd data were ignored"


def test_bytes_after_gzip_data_inside_zstd_end_the_decoding_without_false_problems() -> None:
    """The gzip decoder's data ended: zstd, which fed it, is not judged truncated for it."""
    body = zstd.compress(gzip.compress(PAGE) + b"trailing junk")
    result = decode_chunks(bytewise(body), "gzip, zstd", 10_000)
    assert result.decoded and result.data == PAGE
    assert result.problem == "bytes after the end of the gzip data were ignored"


@pytest.mark.parametrize("junk", [b"\r\n", b"\x00", b"<junk>" * 1000])
def test_bytes_after_brotli_data_are_ignored_and_reported_in_any_chunking(junk: bytes) -> None:
    """As Chromium does (and as after gzip or zstd data). brotlicffi refuses such bytes in
    the call that ends the stream and drops that call's output: the stage decodes again and
    finds the end itself. Before, such a body was corrupt: a page a browser shows had no
    text. Each chunking ends the stream in another place: inside a piece fed whole, inside
    one drained in steps (the page is larger than a step), at a piece's end."""
    page = PAGE * 400  # several output steps
    body = brotlicffi.compress(page) + junk
    cut = len(body) - len(junk)
    for chunks in ([body], [body[:cut], body[cut:]], [body[:cut - 3], body[cut - 3:]],
                   [body[i:i + 777] for i in range(0, len(body), 777)], bytewise(body)):
        result = decode_chunks(chunks, "br", 10 * len(page))
        assert result.decoded and result.data == page and not result.truncated
        assert result.problem == "bytes after the end of the br data were ignored"
    assert decode_chunks([body], "br", 1000).data == page[:1000]
    stacked = brotlicffi.compress(gzip.compress(page)) + junk
    assert decode_chunks([stacked], "gzip, br", 10 * len(page)).data == page


def test_a_brotli_body_that_is_corrupt_before_its_end_is_still_corrupt() -> None:
    body = bytearray(brotlicffi.compress(PAGE * 400))
    body[len(body) // 2] ^= 0xFF
    result = decode_chunks([bytes(body) + b"\r\n"], "br", 10**7)
    assert result.decoded is False and "br data is corrupt" in (result.problem or "")


def test_zstd_frames_are_decoded_in_turn_and_their_number_bounded() -> None:
    skippable = b"\x5a\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc"
    body = zstd.compress(b"first ") + skippable + zstd.compress(b"second")
    assert decode_chunks(bytewise(body), "zstd", 100).data == b"first second"
    empty = zstd.compress(b"")
    many = [zstd.compress(PAGE)] + [empty * (65536 // len(empty))] * 16 * 5
    began = time.perf_counter()
    result = decode_chunks(many, "zstd", 3 * 2**20)
    assert time.perf_counter() - began < 1.0
    assert result.data == PAGE
    assert result.problem == f"more than {MAX_ZSTD_FRAMES} zstd frames; the rest was not decoded"


def test_a_zstd_window_larger_than_rfc_9659_allows_is_refused() -> None:
    options = {zstd.CompressionParameter.window_log: 24}  # 16 MiB, over the 8 MiB limit
    body = zstd.compress(PAGE * 40_000, options=options)
    result = decode_chunks([body], "zstd", 2**20)
    assert result.decoded is False and "zstd data is corrupt" in (result.problem or "")
    within = zstd.compress(PAGE * 40_000, options={zstd.CompressionParameter.window_log: 23})
    assert decode_chunks([within], "zstd", 2**20).data == (PAGE * 40_000)[: 2**20]


@pytest.mark.parametrize(("header", "why"), [
    ("compress", "'compress' is not a coding preserve decodes"),
    ("gzip, x-compress", "'x-compress' is not a coding preserve decodes"),
    ("gzip, " * MAX_CODINGS + "br", f"more than {MAX_CODINGS} codings"),
])
def test_codings_not_decoded_give_the_raw_bytes_and_say_why(header: str, why: str) -> None:
    result = decode_chunks([b"ab", b"cd"], header, 3)
    assert result == DecodedBody(b"abc", truncated=True, decoded=False,
                                 problem=f"content coding {header!r} not decoded: {why}")


def test_as_many_codings_as_allowed_are_decoded() -> None:
    header = ", ".join(["gzip"] * MAX_CODINGS)
    assert decode_chunks([encode(PAGE, header)], header, 10_000).data == PAGE


def test_without_the_decoder_packages_bodies_come_back_raw_and_say_what_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "brotlicffi", None)  # import brotlicffi: ImportError
    module = "compression" if sys.version_info >= (3, 14) else "backports"
    monkeypatch.setitem(sys.modules, f"{module}.zstd", None)
    monkeypatch.delattr(sys.modules[module], "zstd")
    package = f"{module}.zstd"
    for header, missing in (("br", "brotlicffi"), ("zstd", package), ("gzip, br", "brotlicffi")):
        body = encode(PAGE, header)
        result = decode_chunks([body], header, 10_000)
        assert result == DecodedBody(
            body, truncated=False, decoded=False,
            problem=f"content coding {header!r} not decoded: {missing} is not installed")
    assert decode_chunks([gzip.compress(PAGE)], "gzip", 10_000).data == PAGE


# --- bombs -----------------------------------------------------------------------------------


def _zeros_compressed(coding: str, megabytes: int) -> bytes:
    """``megabytes`` MiB of zero bytes, compressed a MiB at a time (never all in memory)."""
    zeros = b"\0" * 2**20
    if coding == "br":
        packer = brotlicffi.Compressor(quality=5)
        return b"".join(packer.process(zeros) for _ in range(megabytes)) + packer.finish()
    zpacker = zstd.ZstdCompressor()
    return b"".join(zpacker.compress(zeros) for _ in range(megabytes)) + zpacker.flush()


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_bomb_is_cut_at_the_limit_in_any_chunking(coding: str) -> None:
    body = _zeros_compressed(coding, 100)
    assert len(body) < 8192
    for chunks in ([body], bytewise(body)):
        began = time.perf_counter()
        result = decode_chunks(chunks, coding, 2**20)
        assert time.perf_counter() - began < 1.0
        assert result == DecodedBody(b"\0" * 2**20, truncated=True, decoded=True)


_DECODE_FILE = """
import sys
from preserve.capture.codings import decode_chunks
path, coding, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
def chunks():
    with open(path, "rb") as f:
        while block := f.read(65536):
            yield block
result = decode_chunks(chunks(), coding, limit)
print(len(result.data), result.truncated, result.decoded)
"""


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_bomb_costs_memory_bounded_by_the_limit(coding: str, tmp_path: Path) -> None:
    """Peak RSS (decoders' own memory included) of decoding 100 MiB of zeros to a 1 MiB
    limit, against decoding a tiny body: a few MiB more, not the 100 MiB the body holds."""
    peaks = {}
    for name, body in (("tiny", ENCODERS[coding](b"<p>hi</p>")),
                       ("bomb", _zeros_compressed(coding, 100))):
        (tmp_path / name).write_bytes(body)
        done = peak_rss([sys.executable, "-c", _DECODE_FILE, str(tmp_path / name), coding,
                         str(2**20)])
        assert done.returncode == 0, done.stderr
        peaks[name] = done.peak_kib
    assert done.stdout.split() == [str(2**20), "True", "True"]
    growth = peaks["bomb"] - peaks["tiny"]
    assert growth < 16 * 1024, f"decoding the bomb took {growth} KiB more"


def test_a_stacked_bomb_of_empty_deflate_blocks_stops_early() -> None:
    """brotli that expands to 100 MB of empty stored deflate blocks: the deflate decoder
    never outputs a byte, so only the bound on what one decoder hands the next stops it."""
    empty_blocks = b"\x00\x00\x00\xff\xff" * (4 * 2**20)  # 20 MB, repeated below
    packer = brotlicffi.Compressor(quality=5)
    body = (packer.process(b"\x78\x9c")
            + b"".join(packer.process(empty_blocks) for _ in range(5)) + packer.finish())
    began = time.perf_counter()
    result = decode_chunks([body], "deflate, br", 2**20)
    assert time.perf_counter() - began < 1.0
    assert result.decoded and result.data == b"" and not result.truncated
    assert result.problem is not None and result.problem.startswith(
        "the br data gave more than") and result.problem.endswith("the rest was not decoded")


# --- end to end: a capture of br and zstd pages ------------------------------------------------


def _response_record(warc: Path, url: str) -> tuple[bytes, str, str | None]:
    """The payload, payload digest and Content-Encoding of the response for ``url``."""
    with warc.open("rb") as f:
        for record in ArchiveIterator(f):
            if (record.rec_type == "response"
                    and record.rec_headers.get_header("WARC-Target-URI") == url):
                return (record.raw_stream.read(),
                        record.rec_headers.get_header("WARC-Payload-Digest"),
                        record.http_headers.get_header("Content-Encoding"))
    raise AssertionError(f"no response record for {url}")


def test_br_zstd_and_stacked_pages_are_extracted_kept_as_sent_and_reextracted(
        http_server: TestServer, tmp_path: Path) -> None:
    """The stacked page names its codings on two Content-Encoding lines (one list, RFC 9110)."""
    sent = {"/br": ("br", brotlicffi.compress(PAGE)),
            "/zstd": ("zstd", zstd.compress(PAGE)),
            "/stacked": ("gzip, br", encode(PAGE, "gzip, br")),
            "/br-and-a-newline": ("br", brotlicffi.compress(PAGE) + b"\r\n")}
    for path, (header, body) in sent.items():
        codings = [("Content-Encoding", coding.strip()) for coding in header.split(",")]
        http_server.routes[path] = respond(200, body, headers=[
            ("Content-Type", "text/html; charset=utf-8"), *codings])
    archive = preserve.Archive(tmp_path / "root")
    options = preserve.CaptureOptions(operator="test operator")
    for path, (header, body) in sent.items():
        url = http_server.url(path)
        result = archive.capture(url, options)
        assert result.status == "ok" and result.title == "Compressed evidence"
        text = archive.text(result.capture_id)
        assert all(paragraph in text for paragraph in PARAGRAPHS)
        m = archive.manifest(result.capture_id)
        assert m.extraction.reason is None
        assert m.extractor.settings["content_codings"] == ["gzip", "x-gzip", "deflate", "br",
                                                            "zstd"]
        payload, digest, encoding = _response_record(archive.root / m.warc.path, url)
        assert (payload, encoding) == (body, header.split(",")[0])  # stored as sent
        assert warc_digest_to_hex(digest) == ("sha256", hashlib.sha256(body).hexdigest())
    done = subprocess.run([PRESERVE, "--root", str(archive.root), "verify", "--deep", "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], done.stdout + done.stderr
    assert report["result"]["stats"]["texts_reextracted"] == len(sent)  # none skipped


#: warcio check, as run where no module named ``brotli`` can be imported: what preserve's own
#: dependencies install (brotlicffi is imported as brotlicffi). Google's brotli package, which
#: FastWARC (the bench extra) brings, makes warcio check fail on any br record (warcio#73).
_WARCIO_CHECK_WITHOUT_BROTLI = """
import sys
sys.modules["brotli"] = None
from warcio.cli import main
main(["check", "-v", sys.argv[1]])
"""


def test_warcio_check_passes_on_br_and_zstd_captures(http_server: TestServer,
                                                     tmp_path: Path) -> None:
    """warcio decodes neither zstd nor (without a brotli module) br: its check hashes the
    bodies as stored, which is what preserve's payload digests are of."""
    archive = preserve.Archive(tmp_path / "root")
    for coding in ("br", "zstd"):
        http_server.routes[f"/{coding}"] = respond(200, ENCODERS[coding](PAGE), headers=[
            ("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", coding)])
        result = archive.capture(http_server.url(f"/{coding}"),
                                 preserve.CaptureOptions(operator="t"))
        warc = archive.root / archive.manifest(result.capture_id).warc.path
        check = subprocess.run([sys.executable, "-c", _WARCIO_CHECK_WITHOUT_BROTLI, str(warc)],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.count("digest pass") == 5, check.stdout
