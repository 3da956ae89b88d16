"""``preserve export --wacz``: layout, index, pages, proofs, signing, tools that read WACZ.

Outside tools: ``wacz validate`` (py-wacz, in a side venv: ``$PRESERVE_WACZ``), pywb
(``$PRESERVE_PYWB_PYTHON``), ``openssl ts``, ``cdxj-indexer`` (a test dependency). Each is
skipped only when absent and ``CI`` is unset.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cdxj_indexer.main import CDXJIndexer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import preserve.exchange.wacz as wacz_module
from exporting import (
    PRESERVE,
    Built,
    build_archive,
    navigated,
    pywb_python,
    tool,
    tree_state,
    tsa_server,
)
from measure import peak_rss
from preserve import Archive, log
from preserve.exchange import export_wacz
from preserve.exchange.cdxj import SortedLines
from preserve.exchange.check import check_wacz
from preserve.exchange.files import BLOCK_SIZE
from preserve.hashing import hash_bytes
from preserve.log.timestamp import request_timestamp
from preserve.storage.manifest import Manifest
from servers import ReceivedRequest, TestServer, respond


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    base = tmp_path_factory.mktemp("wacz")
    with TestServer() as server:
        yield build_archive(base / "root", base / "config", server)


def run(built: Built, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRESERVE, *args], capture_output=True, text=True,
                          env=built.env(**env), timeout=300, check=False)


@pytest.fixture(scope="module")
def two(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The news and blog captures as a WACZ (the archive holds no other capture)."""
    out = tmp_path_factory.mktemp("out") / "case-42.wacz"
    done = run(built, "export", built.ids[0][:22], built.ids[1], "--wacz", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return out


def test_layout_files_and_datapackage(built: Built, two: Path) -> None:
    archive = Archive(built.root)
    with zipfile.ZipFile(two) as z:
        names = set(z.namelist())
        package = json.loads(z.read("datapackage.json"))
        for capture_id in built.ids:
            m = archive.manifest(capture_id)
            warc = f"archive/{capture_id}.warc.gz"
            assert z.getinfo(warc).compress_type == zipfile.ZIP_STORED
            assert z.read(warc) == (built.root / m.warc.path).read_bytes()  # unchanged
            manifest = built.root / "manifests" / f"{capture_id}.json"
            assert z.read(f"manifests/{capture_id}.json") == manifest.read_bytes()
            assert m.text is not None
            assert z.read(f"text/{m.text.blake3}.txt") == (built.root / m.text.path).read_bytes()
            assert f"proofs/{capture_id}.json" in names
        assert {"indexes/index.cdx", "pages/pages.jsonl", "log/checkpoint.txt", "log/key.pub",
                "preserve/export.json", "datapackage-digest.json"} <= names
        assert all(n.count("/") <= 1 for n in names)  # wacz validate reads two levels only
        assert package["profile"] == "data-package"
        assert package["wacz_version"] == "1.1.1"
        listed = {r["path"]: r for r in package["resources"]}
        assert set(listed) == names - {"datapackage.json", "datapackage-digest.json"}
        for path, resource in listed.items():
            data = z.read(path)
            assert resource["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
            assert resource["bytes"] == len(data)
            assert resource["name"] == path.lower()
        digest = json.loads(z.read("datapackage-digest.json"))
        assert digest == {"path": "datapackage.json", "hash": "sha256:" + hashlib.sha256(
            z.read("datapackage.json")).hexdigest()}
        described = json.loads(z.read("preserve/export.json"))
    assert described["format"] == "preserve-export/1"
    assert described["partial"] is False
    assert [c["capture_id"] for c in described["captures"]] == built.ids


def test_pages_carry_url_time_title_and_clean_text(built: Built, two: Path) -> None:
    archive = Archive(built.root)
    with zipfile.ZipFile(two) as z:
        lines = [json.loads(line) for line in z.read("pages/pages.jsonl").splitlines()]
    assert lines[0]["format"] == "json-pages-1.0"
    assert lines[0]["hasText"] is True
    for page, capture_id in zip(lines[1:], built.ids, strict=True):
        m = archive.manifest(capture_id)
        assert page["id"] == capture_id
        assert page["url"] == m.final_url
        assert page["ts"] == m.redirects[-1].started
        assert page["title"] == m.extraction.title
        assert page["text"] == archive.text(capture_id)
        assert page["size"] == m.warc.size
    assert lines[1]["url"].endswith("/news/story.html")  # the page after the redirect


def test_a_page_names_the_url_its_title_and_text_were_taken_from(built: Built) -> None:
    """After a client-side navigation the screenshot, title and text are of the page the
    browser went to (``browser.page_url``), not of the final URL of the HTTP request. The page
    entry names the rendered page when its document was recorded (replay loads it), and never
    puts the title and text beside a URL they were not taken from."""
    m = Archive(built.root).manifest(built.ids[0])
    text = b"The clean text of the page."
    base = m.final_url.rsplit("/", 1)[0]
    final_ts = m.redirects[-1].started

    def entry(manifest: Manifest) -> dict[str, object]:
        page = wacz_module.page_entry(manifest, text)
        return {k: page.get(k) for k in ("url", "ts", "title", "text")}

    title, said = m.extraction.title, text.decode()
    # a script loaded another document: the page is that document, at its response's time
    assert entry(navigated(m, base + "/next.html")) == {
        "url": base + "/next.html", "ts": m.ended, "title": title, "text": said}
    # history.pushState: no document to replay there; the final URL, without title and text
    assert entry(navigated(m, base + "/pushed", loaded=False)) == {
        "url": m.final_url, "ts": final_ts, "title": None, "text": None}
    # another fragment of the final URL's document: that document's title and text
    assert entry(navigated(m, m.final_url + "#comments", loaded=False)) == {
        "url": m.final_url, "ts": final_ts, "title": title, "text": said}
    # text taken from the final response (not the DOM): it stays with the final URL
    assert entry(navigated(m, base + "/next.html", from_dom=False)) == {
        "url": m.final_url, "ts": final_ts, "title": title, "text": said}
    assert entry(m) == {"url": m.final_url, "ts": final_ts, "title": title, "text": said}


def test_index_is_what_cdxj_indexer_writes(built: Built, two: Path, tmp_path: Path) -> None:
    """Our CDXJ, built from record heads at the manifest's offsets, equals cdxj-indexer's."""
    with zipfile.ZipFile(two) as z:
        ours = z.read("indexes/index.cdx").decode()
        z.extractall(tmp_path, [n for n in z.namelist() if n.startswith("archive/")])
    out = tmp_path / "theirs.cdxj"
    CDXJIndexer(output=str(out), inputs=[str(tmp_path / "archive")], sort=True).process_all()
    assert ours == out.read_text()
    assert ours.splitlines() == sorted(ours.splitlines())
    assert '"status": "301"' in ours and '"mime": "text/html"' in ours


def test_proofs_are_preserve_prove_bundles(built: Built, two: Path) -> None:
    trusted = (built.root / "manifests/log/key.pub").read_text().strip()
    with zipfile.ZipFile(two) as z:
        checkpoint = z.read("log/checkpoint.txt").decode()
        for capture_id in built.ids:
            bundle = json.loads(z.read(f"proofs/{capture_id}.json"))
            assert log.check_proof(bundle, trusted) == []
            assert bundle["checkpoint"] == checkpoint
            made = log.make_proof(built.root, capture_id)
            assert {k: v for k, v in bundle.items() if k != "created"} == \
                {k: v for k, v in made.items() if k != "created"}
    assert check_wacz(two, trusted_key=trusted).ok


def test_wacz_validate_passes(two: Path) -> None:
    wacz = tool("wacz", "PRESERVE_WACZ")
    done = subprocess.run([wacz, "validate", "-f", str(two)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation succeeded" in done.stdout


_REPLAY = r"""
import os, sys
from pywb.apps.frontendapp import FrontEndApp
from werkzeug.test import Client
os.chdir(sys.argv[1])
response = Client(FrontEndApp()).get("/coll/id_/" + sys.argv[2])
sys.stdout.buffer.write(response.status.encode() + b"\n" + response.get_data())
"""


def test_pywb_replays_a_page_from_the_wacz(built: Built, two: Path, tmp_path: Path) -> None:
    python = pywb_python()
    manager = str(Path(python).parent / "wb-manager")
    (tmp_path / "config.yaml").write_text("collections_root: collections\n")
    for args in (["init", "coll"], ["add", "--unpack-wacz", "coll", str(two)]):
        done = subprocess.run([manager, *args], cwd=tmp_path, capture_output=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr
    m = Archive(built.root).manifest(built.ids[0])
    replay = subprocess.run([python, "-c", _REPLAY, str(tmp_path), m.final_url],
                            capture_output=True, timeout=300, check=False)
    assert replay.returncode == 0, replay.stderr.decode(errors="replace")[-2000:]
    status, _, body = replay.stdout.partition(b"\n")
    assert status.startswith(b"200"), replay.stdout[:500]
    assert body == (Path(__file__).parent / "fixtures/seeds/news.html").read_bytes()


# --- signing --------------------------------------------------------------------------------------


def independent_verify(wacz: Path) -> str:
    """A verifier that knows only the WACZ signing spec, zipfile, hashlib and cryptography.

    Raises unless every file matches datapackage.json, datapackage-digest.json holds its hash
    and the ECDSA signature over that hash verifies; returns the public key.
    """
    with zipfile.ZipFile(wacz) as z:
        package = z.read("datapackage.json")
        for resource in json.loads(package)["resources"]:
            actual = "sha256:" + hashlib.sha256(z.read(resource["path"])).hexdigest()
            assert actual == resource["hash"], f"{resource['path']} changed"
        digest = json.loads(z.read("datapackage-digest.json"))
    assert digest["hash"] == "sha256:" + hashlib.sha256(package).hexdigest(), "package changed"
    signed = digest["signedData"]
    assert signed["hash"] == digest["hash"]
    key = serialization.load_der_public_key(base64.b64decode(signed["publicKey"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    raw = base64.b64decode(signed["signature"])  # r || s, as WebCrypto writes it
    half = len(raw) // 2
    r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    der = encode_dss_signature(r, s)
    key.verify(der, signed["hash"].encode("utf-8"), ec.ECDSA(hashes.SHA256()))  # raises if bad
    return str(signed["publicKey"])


def _rezip(source: Path, dest: Path, change: str, edit: bytes, replacement: bytes) -> None:
    """Copy a zip, replacing ``edit`` by ``replacement`` in entry ``change`` (CRCs recomputed)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(dest, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == change:
                assert edit in data
                data = data.replace(edit, replacement, 1)
            new.writestr(info, data)


@pytest.fixture(scope="module")
def signed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("signed") / "signed.wacz"
    done = run(built, "export", "--all", "--wacz", str(out), "--sign", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["result"]
    key = built.config / "keys" / "test.example_archive.wacz.pem"
    assert result["signature"]["key_path"] == str(key) and result["signature"]["key_created"]
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert not key.is_relative_to(built.root)
    return out


def test_signature_verifies_independently(signed: Path, tmp_path: Path) -> None:
    public_key = independent_verify(signed)
    key = serialization.load_der_public_key(base64.b64decode(public_key))
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    assert check_wacz(signed, wacz_public_key=public_key).ok
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert check_wacz(signed, wacz_public_key=pem).ok  # the same key as PEM (a .pem file)
    other = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert any("another key" in p for p in check_wacz(signed, wacz_public_key=other).problems)
    # one byte changed inside a WARC file (a valid zip otherwise): refused
    warc = next(n for n in zipfile.ZipFile(signed).namelist() if n.endswith(".warc.gz"))
    changed = tmp_path / "warc-changed.wacz"
    first = zipfile.ZipFile(signed).read(warc)[40:41]
    _rezip(signed, changed, warc, first, bytes([first[0] ^ 1]))
    with pytest.raises(AssertionError, match="changed"):
        independent_verify(changed)
    assert not check_wacz(changed).ok
    # datapackage.json changed and its digest recomputed: only the signature catches it
    forged = tmp_path / "forged.wacz"
    _rezip(signed, forged, "datapackage.json", b'"title": "', b'"title": "X')
    with zipfile.ZipFile(forged) as z:
        package = z.read("datapackage.json")
    digest = json.loads(zipfile.ZipFile(signed).read("datapackage-digest.json"))
    digest["hash"] = digest["signedData"]["hash"] = "sha256:" + hashlib.sha256(package).hexdigest()
    again = tmp_path / "forged2.wacz"
    _rezip(forged, again, "datapackage-digest.json",
           zipfile.ZipFile(forged).read("datapackage-digest.json"), json.dumps(digest).encode())
    with pytest.raises(InvalidSignature):
        independent_verify(again)
    assert not check_wacz(again).ok
    # and a raw byte flip anywhere in the file is refused too
    raw = bytearray(signed.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    flipped = tmp_path / "flipped.wacz"
    flipped.write_bytes(bytes(raw))
    with pytest.raises((zipfile.BadZipFile, zlib.error, AssertionError, InvalidSignature)):
        independent_verify(flipped)
    assert not check_wacz(flipped).ok


def test_signed_package_still_validates_and_reuses_its_key(built: Built, signed: Path,
                                                           tmp_path: Path) -> None:
    wacz = tool("wacz", "PRESERVE_WACZ")
    done = subprocess.run([wacz, "validate", "-f", str(signed)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout
    again = tmp_path / "again.wacz"
    second = run(built, "export", built.ids[1], "--wacz", str(again), "--sign", "--json")
    assert json.loads(second.stdout)["result"]["signature"]["key_created"] is False
    assert independent_verify(again) == independent_verify(signed)


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with tsa_server(tmp_path / "tsa") as served:
        yield served


def test_signature_timestamped_by_a_tsa(built: Built, tsa: tuple[str, Path],
                                        tmp_path: Path) -> None:
    url, tsa_dir = tsa
    out = tmp_path / "stamped.wacz"
    done = run(built, "export", built.ids[0], "--wacz", str(out), "--sign", "--tsa", url)
    assert done.returncode == 0, done.stderr
    assert "timestamped" in done.stdout
    independent_verify(out)
    signed = json.loads(zipfile.ZipFile(out).read("datapackage-digest.json"))["signedData"]
    (tmp_path / "signature").write_bytes(signed["signature"].encode("ascii"))
    (tmp_path / "token.tsr").write_bytes(base64.b64decode(signed["timeSignature"]))
    verified = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / "signature"), "-in",
         str(tmp_path / "token.tsr"), "-CAfile", str(tsa_dir / "ca.pem")],
        capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    assert check_wacz(out, tsa_roots=tsa_dir / "ca.pem").ok
    checked = run(built, "check-export", str(out), "--tsa-roots", str(tsa_dir / "ca.pem"))
    assert checked.returncode == 0 and "by a trusted TSA" in checked.stdout


# --- failures and the archive left alone ---------------------------------------------------


def test_failures_are_one_line_and_leave_nothing(built: Built, tmp_path: Path) -> None:
    before = tree_state(built.root)
    out = tmp_path / "x.wacz"
    unknown = run(built, "export", "20991231T000000Z-aaaaaaaaaa", "--wacz", str(out))
    assert unknown.returncode == 3
    assert unknown.stderr.count("\n") == 1 and "no capture" in unknown.stderr
    out.write_bytes(b"keep me")
    exists = run(built, "export", built.ids[0], "--wacz", str(out))
    assert exists.returncode == 3 and "already exists" in exists.stderr
    assert out.read_bytes() == b"keep me"
    missing_dir = run(built, "export", built.ids[0], "--wacz", str(tmp_path / "no/x.wacz"))
    assert missing_dir.returncode == 3 and missing_dir.stderr.count("\n") == 1
    for inside in ("archive/x.wacz", "manifests/bag"):
        kind = "--bagit" if inside.endswith("bag") else "--wacz"
        refused = run(built, "export", built.ids[0], kind, str(built.root / inside))
        assert refused.returncode == 3 and "inside the archive" in refused.stderr
    for args in ([built.ids[0]], ["--wacz", str(out), "--bagit", str(tmp_path / "b")],
                 ["--all", built.ids[0], "--wacz", str(tmp_path / "y.wacz")],
                 [built.ids[0], "--wacz", str(tmp_path / "z.wacz"), "--tsa", "not a url"]):
        usage = run(built, "export", *args)
        assert usage.returncode == 2, (args, usage.stderr)
        assert usage.stderr.startswith("preserve: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wacz"]
    assert tree_state(built.root) == before


def test_export_never_changes_the_archive(built: Built, tmp_path: Path) -> None:
    before = tree_state(built.root)
    export_wacz(Archive(built.root), [], tmp_path / "a.wacz", all_captures=True)
    assert run(built, "export", "--all", "--bagit", str(tmp_path / "bag")).returncode == 0
    assert run(built, "report", built.ids[0], "-o", str(tmp_path / "r.html")).returncode == 0
    assert tree_state(built.root) == before


def test_an_interrupted_export_leaves_no_file(built: Built, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(wacz_module, "_page", boom)  # after the first files are in the zip
    with pytest.raises(KeyboardInterrupt):
        export_wacz(Archive(built.root), built.ids[:1], tmp_path / "cut.wacz")
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_capture_is_not_exported(built: Built, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(built.root, copy)
    m = Archive(copy).manifest(built.ids[1])
    warc = copy / m.warc.path
    warc.chmod(0o644)
    data = bytearray(warc.read_bytes())
    data[-10] ^= 1
    warc.write_bytes(bytes(data))
    done = run(built, "--root", str(copy), "export", "--all", "--wacz", str(tmp_path / "d.wacz"))
    assert done.returncode == 3
    assert "does not match its manifest" in done.stderr and "preserve verify" in done.stderr
    assert not (tmp_path / "d.wacz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]


# --- memory ------------------------------------------------------------------------------------


def _random_body(size: int) -> object:
    block = os.urandom(BLOCK_SIZE)  # deflate cannot reach back 1 MiB: incompressible

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n"
                     + f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            conn.sendall(piece)
            sent += len(piece)

    return handler


@pytest.mark.slow
def test_memory_does_not_grow_with_the_warc(tmp_path: Path) -> None:
    """Exporting a 64 MiB capture peaks within a few MiB of exporting a 1 KiB one."""
    size = 64 * 2**20
    with TestServer() as server:
        server.routes["/big"] = _random_body(size)
        server.routes["/small"] = respond(200, b"<p>small</p>",
                                          headers=[("Content-Type", "text/html")])
        archive = Archive(tmp_path / "root")
        big = archive.capture(server.url("/big")).capture_id
        small = archive.capture(server.url("/small")).capture_id
    assert archive.manifest(big).warc.size > size
    env = {**os.environ, "PRESERVE_ROOT": str(tmp_path / "root"),
           "PRESERVE_CONFIG_HOME": str(tmp_path / "config")}
    peaks = {}
    for name, capture_id in (("small", small), ("big", big)):
        for kind in ("wacz", "bagit"):
            out = tmp_path / f"{name}.{kind}"
            done = peak_rss([PRESERVE, "export", capture_id, f"--{kind}", str(out)], env=env)
            assert done.returncode == 0, done.stderr
            peaks[name, kind] = done.peak_kib
    with zipfile.ZipFile(tmp_path / "big.wacz") as z:
        assert z.getinfo(f"archive/{big}.warc.gz").file_size == archive.manifest(big).warc.size
    for kind in ("wacz", "bagit"):
        growth = peaks["big", kind] - peaks["small", kind]
        assert growth < 16 * 1024, f"{kind}: peak RSS grew by {growth} KiB for a 64 MiB WARC"


def test_gzip_members_survive_the_zip(two: Path, tmp_path: Path) -> None:
    """The WARC entries are stored, so every record is still its own gzip member."""
    with zipfile.ZipFile(two) as z:
        name = next(n for n in z.namelist() if n.endswith(".warc.gz"))
        data = z.read(name)
    assert gzip.decompress(data).startswith(b"WARC/1.1\r\n")


def test_capture_ids_from_a_file(built: Built, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# case 42\n{built.ids[1]}  # the blog\n\n{built.ids[0][:22]}\n")
    done = run(built, "export", "--from", str(ids), "--wacz", str(tmp_path / "f.wacz"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["captures"] == built.ids[:2]  # in capture order


def test_index_lines_sort_in_runs_as_in_memory(tmp_path: Path) -> None:
    lines = [f"{key} 2026{n:010d} {{}}" for n, key in enumerate(
        ["com,b)/", "com,a)/x", "com,a)/", "com,a)/ 1", "org,z)/", "com,a)/x?q", "com,a)/"] * 5)]
    with SortedLines(tmp_path, run_lines=4) as spilled:
        for line in lines:
            spilled.add(line)
        merged = list(spilled)
        assert len(list(tmp_path.glob("run-*"))) == 9
    assert merged == [line + "\n" for line in sorted(lines)]
    assert list(tmp_path.iterdir()) == []



def _write_package(dest: Path, members: dict[str, bytes], package: dict[str, object], *,
                   deflate: bool = False) -> None:
    """Write ``members`` as a WACZ at ``dest`` with ``package`` as its datapackage.json and
    a datapackage-digest.json over it, as a forger recomputing every hash would (every member
    stored, or with ``deflate`` all but the WARC files deflated)."""
    members["datapackage.json"] = json.dumps(package).encode()
    members["datapackage-digest.json"] = json.dumps(
        {"path": "datapackage.json",
         "hash": "sha256:" + hashlib.sha256(members["datapackage.json"]).hexdigest()}).encode()
    with zipfile.ZipFile(dest, "w") as new:
        for name, data in members.items():
            stored = not deflate or name.startswith("archive/")
            new.writestr(name, data,
                         compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)


def _forge_without_proof(source: Path, dest: Path, capture_id: str) -> None:
    """What anyone who handles an unsigned WACZ can do: edit a capture's manifest (and the page
    derived from it), drop its proof, and recompute every hash the package itself carries
    (descriptor, datapackage.json, the digest file), so that only the archive key can tell."""
    with zipfile.ZipFile(source) as old:
        members = {info.filename: old.read(info) for info in old.infolist()}
    manifest_name = f"manifests/{capture_id}.json"
    manifest = members[manifest_name].replace(b'"final_url": "http', b'"final_url": "xttp', 1)
    members[manifest_name] = manifest
    members["pages/pages.jsonl"] = members["pages/pages.jsonl"].replace(  # derived: redone
        b'"url": "http', b'"url": "xttp', 1)
    del members[f"proofs/{capture_id}.json"]
    described = json.loads(members["preserve/export.json"])
    for capture in described["captures"]:
        if capture["capture_id"] == capture_id:  # the descriptor says what the manifest says
            digests = hash_bytes(manifest)
            capture["manifest"].update(sha256=digests.sha256, blake3=digests.blake3,
                                       size=digests.size)
            capture["final_url"] = json.loads(manifest)["final_url"]
            capture["proof"] = None
            capture["proof_problem"] = "the capture is newer than the latest checkpoint"
    members["preserve/export.json"] = json.dumps(described).encode()
    package = json.loads(members["datapackage.json"])
    package["resources"] = [
        {**r, "hash": "sha256:" + hashlib.sha256(members[r["path"]]).hexdigest(),
         "bytes": len(members[r["path"]])}
        for r in package["resources"] if r["path"] in members]
    _write_package(dest, members, package)


def test_a_capture_without_proof_fails_against_a_trusted_key(built: Built, two: Path,
                                                              tmp_path: Path) -> None:
    """--trusted-key is a requirement, as for verify: a capture that carries no inclusion
    proof cannot be checked against it, so the package does not hold (without the key it is
    only a note: the package then checks nothing but itself)."""
    forged = tmp_path / "forged.wacz"
    _forge_without_proof(two, forged, built.ids[0])
    key = log.read_verifier(built.root).to_text()
    assert check_wacz(forged).ok  # consistent with itself: nothing else to check it against
    result = check_wacz(forged, trusted_key=key)
    assert not result.ok
    assert any(built.ids[0] in p and "no inclusion proof" in p for p in result.problems)
    assert check_wacz(two, trusted_key=key).ok


def test_damaged_packages_are_problems_never_exceptions(signed: Path, tmp_path: Path) -> None:
    """Byte flips across a signed WACZ (damaged deflate streams, headers, the central
    directory) and members of the wrong shape: every one a problem, never an exception."""
    data = signed.read_bytes()
    damaged = tmp_path / "damaged.wacz"
    for position in range(0, len(data), max(1, len(data) // 150)):
        raw = bytearray(data)
        raw[position] ^= 0xFF
        damaged.write_bytes(bytes(raw))
        check_wacz(damaged)  # must not raise; most flips are problems
    for member, content in (("preserve/export.json", b"[]"),
                            ("preserve/export.json", b"[" * 100_000),
                            ("datapackage-digest.json", b'"just a string"')):
        shaped = tmp_path / "shaped.wacz"
        with zipfile.ZipFile(signed) as src, zipfile.ZipFile(shaped, "w") as dst:
            for info in src.infolist():
                dst.writestr(info, content if info.filename == member else src.read(info))
        assert not check_wacz(shaped).ok


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_member_twice_is_a_problem(signed: Path, tmp_path: Path) -> None:
    """zipfile reads the last of two members of one name, unzip and others the first: a
    package with a planted first copy passed check-export while a recipient unpacking it got
    the planted bytes."""
    assert check_wacz(signed).ok
    with zipfile.ZipFile(signed) as src:
        warc_member = next(i.filename for i in src.infolist()
                           if i.filename.startswith("archive/"))
        planted = tmp_path / "planted.wacz"
        with zipfile.ZipFile(planted, "w") as dst:
            dst.writestr(warc_member, b"planted bytes")
            for info in src.infolist():
                dst.writestr(info, src.read(info))
    result = check_wacz(planted)
    assert not result.ok
    assert any("more than once" in p and warc_member in p for p in result.problems)


def test_a_fifo_as_package_or_signing_key_never_hangs(built: Built, tmp_path: Path) -> None:
    """check-export of a FIFO, and --wacz-key naming one, blocked for ever in open()."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    checked = subprocess.run([PRESERVE, "check-export", str(fifo)], capture_output=True,
                             text=True, env=built.env(), timeout=60, check=False)
    assert checked.returncode == 1 and "not a regular file" in checked.stdout, checked
    out = tmp_path / "signed.wacz"
    done = subprocess.run([PRESERVE, "export", built.ids[0], "--wacz", str(out), "--sign",
                           "--wacz-key", str(fifo)], capture_output=True, text=True,
                          env=built.env(), timeout=60, check=False)
    assert done.returncode == 3 and done.stderr.count("\n") == 1, done.stderr
    assert "not a regular file" in done.stderr and not out.exists()


@pytest.mark.parametrize("curve", [ec.SECP256K1(), None], ids=["secp256k1", "ed25519"])
def test_an_unsupported_wacz_key_is_refused_before_anything_is_written(
        built: Built, tmp_path: Path, curve: ec.EllipticCurve | None) -> None:
    """WACZ verifiers check ECDSA on the NIST curves only (wabac.js: P-384): a secp256k1 or
    Ed25519 key signed packages nobody could verify; it is now a usage error."""
    key = ec.generate_private_key(curve) if curve is not None else \
        ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(pem)
    key_file.chmod(0o600)
    out = tmp_path / "signed.wacz"
    done = run(built, "export", built.ids[0], "--wacz", str(out), "--sign", "--wacz-key",
               str(key_file))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("preserve: error:")
    assert ("secp256k1" if curve is not None else "not an ECDSA key") in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]
    assert key_file.read_bytes() == pem


def test_a_wacz_key_without_sign_is_a_usage_error_but_its_variable_is_not(
        built: Built, tmp_path: Path) -> None:
    """``--wacz-key`` without ``--sign`` was silently ignored (an unsigned package when a
    signed one was meant); ``$PRESERVE_WACZ_KEY`` set for convenience must not break an
    unsigned WACZ or a bag."""
    out = tmp_path / "unsigned.wacz"
    done = run(built, "export", built.ids[0], "--wacz", str(out), "--wacz-key",
               str(tmp_path / "k.pem"))
    assert done.returncode == 2 and "add --sign" in done.stderr, done.stderr
    assert not out.exists()
    key = str(tmp_path / "env.pem")
    done = run(built, "export", built.ids[0], "--wacz", str(out), PRESERVE_WACZ_KEY=key)
    assert done.returncode == 0, done.stderr
    done = run(built, "export", built.ids[0], "--bagit", str(tmp_path / "bag"),
               PRESERVE_WACZ_KEY=key)
    assert done.returncode == 0, done.stderr


def test_an_empty_output_path_is_a_usage_error(built: Built, tmp_path: Path) -> None:
    """``--wacz ""`` was read as ``.`` (the current directory) and failed late, exit 3."""
    for args in (["export", "--all", "--wacz", ""], ["export", "--all", "--bagit", ""],
                 ["export", "--all", "--wacz", " "],
                 ["export", "--all", "--wacz", str(tmp_path / "k.wacz"), "--sign",
                  "--wacz-key", ""],
                 ["report", built.ids[0], "-o", ""], ["prove", built.ids[0], "-o", ""],
                 ["keygen", "x.example/key", "-o", ""]):
        done = subprocess.run([PRESERVE, *args], capture_output=True, text=True,
                              env=built.env(), cwd=tmp_path, timeout=300, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("preserve: error:") and "empty path" in done.stderr
    assert list(tmp_path.iterdir()) == []


# --- the replay files are bound to the proven captures ---------------------------------------


def _repackage(source: Path, dest: Path, edit: Callable[[dict[str, bytes]], None]) -> None:
    """What anyone handling an unsigned WACZ can do: change its members (``edit``), then make
    datapackage.json list exactly the members with their new hashes, and the digest file
    hold the new hash of datapackage.json."""
    with zipfile.ZipFile(source) as old:
        members = {info.filename: old.read(info) for info in old.infolist()}
    edit(members)
    package = json.loads(members["datapackage.json"])
    package["resources"] = [
        {"name": name.lower(), "path": name,
         "hash": "sha256:" + hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, data in members.items()
        if name not in ("datapackage.json", "datapackage-digest.json")]
    _write_package(dest, members, package, deflate=True)


def _edit_line(member: str, number: int, old: bytes, new: bytes
               ) -> Callable[[dict[str, bytes]], None]:
    def edit(members: dict[str, bytes]) -> None:
        lines = members[member].splitlines(keepends=True)
        assert old in lines[number]
        lines[number] = lines[number].replace(old, new, 1)
        members[member] = b"".join(lines)
    return edit


def _add(member: str, data: bytes | Callable[[dict[str, bytes]], bytes]
         ) -> Callable[[dict[str, bytes]], None]:
    def edit(members: dict[str, bytes]) -> None:
        members[member] = data(members) if callable(data) else data
    return edit


def _extra_warc(members: dict[str, bytes]) -> bytes:
    """Another capture's WARC file, planted under a name of its own, with its index lines."""
    warc = next(n for n in members if n.startswith("archive/"))
    index = members["indexes/index.cdx"].decode()
    name = warc.removeprefix("archive/")
    extra = [line.replace(f'"filename": "{name}"', '"filename": "planted.warc.gz"')
             .replace(" 20", " 19", 1) for line in index.splitlines(keepends=True)
             if f'"filename": "{name}"' in line]
    members["indexes/index.cdx"] = "".join(sorted(index.splitlines(keepends=True) + extra)
                                           ).encode()
    return members[warc]


def _index_line(members: dict[str, bytes]) -> bytes:
    line = members["indexes/index.cdx"].splitlines(keepends=True)[0]
    planted = line.replace(b'"offset": "', b'"offset": "1', 1)
    return b"".join(sorted([*members["indexes/index.cdx"].splitlines(keepends=True), planted]))


@pytest.mark.parametrize(("edit", "member"), [
    (_add("archive/planted.warc.gz", _extra_warc), "archive/planted.warc.gz"),
    (_edit_line("pages/pages.jsonl", 1, b'"title": "', b'"title": "Retracted: '),
     "pages/pages.jsonl: line 2"),
    (_edit_line("pages/pages.jsonl", 2, b'"text": "', b'"text": "Planted sentence. '),
     "pages/pages.jsonl: line 3"),
    (_add("pages/pages.jsonl", lambda m: m["pages/pages.jsonl"] + m["pages/pages.jsonl"]
          .splitlines(keepends=True)[1].replace(b'"id": "', b'"id": "x')),
     "pages/pages.jsonl: line 4"),
    (_add("indexes/index.cdx", _index_line), "indexes/index.cdx: line"),
    (_edit_line("indexes/index.cdx", 0, b'"status": "', b'"status": "4'),
     "indexes/index.cdx: line 1"),
    (_add("notes/read-me-first.html", b"<p>planted</p>"), "notes/read-me-first.html"),
    (_add("datapackage.json", lambda m: m["datapackage.json"].replace(
        b'"resources"', b'"mainPageUrl": "https://example.org/", "resources"', 1)),
     "mainPageUrl"),
], ids=["extra-warc", "page-title", "page-text", "page-added", "index-line-added",
        "index-line-changed", "extra-file", "main-page"])
def test_replay_files_must_be_what_the_proven_captures_give(
        built: Built, two: Path, tmp_path: Path, edit: Callable[[dict[str, bytes]], None],
        member: str) -> None:
    """What pywb and ReplayWeb.page show comes from the WARC files, the index and the pages,
    not from the manifests: each was forgeable with the package hashes recomputed."""
    key = log.read_verifier(built.root).to_text()
    forged = tmp_path / "forged.wacz"
    _repackage(two, forged, edit)
    result = check_wacz(forged, trusted_key=key)
    assert not result.ok
    assert any(member in problem for problem in result.problems), result.problems
    assert all("\n" not in problem for problem in result.problems)
    untouched = tmp_path / "untouched.wacz"
    _repackage(two, untouched, lambda members: None)
    assert check_wacz(untouched, trusted_key=key).ok, check_wacz(untouched).problems


def test_check_export_names_a_planted_warc_file(built: Built, two: Path, tmp_path: Path) -> None:
    forged = tmp_path / "forged.wacz"
    _repackage(two, forged, _add("archive/planted.warc.gz", _extra_warc))
    key = built.root / "manifests/log/key.pub"
    done = run(built, "check-export", str(forged), "--trusted-key", str(key))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL archive/planted.warc.gz: a WARC file no proven capture names" in done.stdout
    assert "does NOT hold" in done.stdout and done.stderr == ""


def test_a_foreign_wacz_is_reported_as_not_a_preserve_export(two: Path, tmp_path: Path) -> None:
    """A WACZ another tool wrote (no preserve/export.json) still does not hold, and says why."""
    foreign = tmp_path / "foreign.wacz"
    _repackage(two, foreign, lambda members: members.pop("preserve/export.json"))
    result = check_wacz(foreign)
    assert not result.ok
    assert result.problems == [next(p for p in result.problems
                                    if p.startswith("not a preserve export"))]


def test_the_exporter_is_deterministic(built: Built, tmp_path: Path) -> None:
    """check-export derives the index and pages again: two exports of the same captures
    hold the same replay files byte for byte."""
    contents = []
    for name in ("a.wacz", "b.wacz"):
        export_wacz(Archive(built.root), built.ids[:2], tmp_path / name)
        with zipfile.ZipFile(tmp_path / name) as z:
            contents.append({n: z.read(n) for n in z.namelist()
                             if n.startswith(("archive/", "indexes/", "pages/", "manifests/",
                                              "text/"))})
    assert contents[0] == contents[1]


def test_the_checkpoint_token_is_checked_against_the_tsa_roots(
        built: Built, tsa: tuple[str, Path], tmp_path: Path) -> None:
    """log/checkpoint.tsr was carried unchecked: any token (or none of the checkpoint's)
    could be planted. Now it must stamp the checkpoint, verified against --tsa-roots."""
    url, tsa_dir = tsa
    copy, config = tmp_path / "copy", tmp_path / "config"  # the shared archive left alone
    shutil.copytree(built.root, copy)
    shutil.copytree(built.config, config)
    env = {"PRESERVE_CONFIG_HOME": str(config), "PRESERVE_ROOT": str(copy)}
    stamped = run(built, "--tsa", url, "checkpoint", **env)
    assert stamped.returncode == 0, stamped.stderr
    out = tmp_path / "stamped.wacz"
    done = run(built, "export", "--all", "--wacz", str(out), **env)
    assert done.returncode == 0, done.stderr
    assert "log/checkpoint.tsr" in zipfile.ZipFile(out).namelist()
    roots = tsa_dir / "ca.pem"
    checked = check_wacz(out, tsa_roots=roots)
    assert checked.ok, checked.problems
    assert any(n.startswith("log/checkpoint.tsr") and "trusted TSA" in n for n in checked.notes)
    assert any(n.startswith("log/checkpoint.tsr") and "--tsa-roots" in n
               for n in check_wacz(out).notes)
    other = request_timestamp(b"another checkpoint", url)
    forged = tmp_path / "forged.wacz"
    _repackage(out, forged, _add("log/checkpoint.tsr", other))
    result = check_wacz(forged, tsa_roots=roots)
    assert any(p.startswith("log/checkpoint.tsr: ") for p in result.problems), result.problems


# --- the descriptor and the log files are bound to what was proved ---------------------------


def _describe(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, bytes]], None]:
    """An edit of the descriptor ``preserve/export.json`` (parsed, changed, written back)."""
    def edit(members: dict[str, bytes]) -> None:
        described = json.loads(members["preserve/export.json"])
        change(described)
        members["preserve/export.json"] = json.dumps(described, indent=2).encode()
    return edit


def _first_capture(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(described: dict[str, Any]) -> None:
        capture = described["captures"][0]
        *path, last = field.split(".")
        for part in path:
            capture = capture[part]
        capture[last] = value
    return change


def _log_field(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(described: dict[str, Any]) -> None:
        described["log"][field] = value
    return change


@pytest.mark.parametrize(("change", "problem"), [
    (_first_capture("requested_url", "https://evil.example/"),
     "the descriptor's requested_url is not what its proven manifest says"),
    (_first_capture("final_url", "https://evil.example/"),
     "the descriptor's final_url is not what its proven manifest says"),
    (_first_capture("started", "2001-09-11T08:46:00Z"),
     "the descriptor's started is not what its proven manifest says"),
    (_first_capture("warc.sha256", "0" * 64),
     "the descriptor's warc SHA-256 and size is not what its proven manifest says"),
    (_first_capture("manifest.blake3", "0" * 64),
     "the descriptor's manifest BLAKE3 and size is not what its proven manifest says"),
    (_first_capture("proof_problem", "planted words"),
     "the descriptor's proof_problem is not what its proven manifest says"),
    (_log_field("verifier_key", "someone-else+00000000+AAAA"),
     "preserve/export.json: log.verifier_key is not the key log/key.pub holds"),
    (_log_field("checkpoint_size", 999_999),
     "preserve/export.json: log.checkpoint_size is not the size of the checkpoint"),
    (_log_field("size", 0), "preserve/export.json: log.size 0 is less than the log"),
    (lambda d: d.update(note="verified by the court"),
     "preserve/export.json: holds note, which preserve's export does not write"),
    (lambda d: d.update(package="bagit"), "says it describes a 'bagit' package"),
], ids=["requested-url", "final-url", "started", "warc-sha256", "manifest-blake3",
        "proof-problem", "verifier-key", "checkpoint-size", "log-size", "extra-field",
        "package"])
def test_the_descriptor_must_say_what_the_proven_manifests_and_log_say(
        built: Built, two: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None],
        problem: str) -> None:
    """The descriptor's capture and log fields were never compared with the proven manifests
    and log: lies in them (hashes recomputed) held, even with --trusted-key."""
    key = log.read_verifier(built.root).to_text()
    forged = tmp_path / "forged.wacz"
    _repackage(two, forged, _describe(change))
    result = check_wacz(forged, trusted_key=key)
    assert any(problem in p for p in result.problems), result.problems
    for unproved in (_log_field("size", 10**6), lambda d: d.update(partial=True),
                     lambda d: d.update(created="2001-01-01T00:00:00Z", omitted_captures=3)):
        _repackage(two, forged, _describe(unproved))  # facts of the export: not proved
        assert check_wacz(forged, trusted_key=key).ok, check_wacz(forged).problems


def test_the_log_members_are_checked_whatever_the_descriptor_says(
        built: Built, two: Path, tmp_path: Path) -> None:
    """A descriptor whose log.checkpoint was null switched off every check of log/: another
    key.pub, a forged checkpoint and a token that is none all held with --trusted-key."""
    key = log.read_verifier(built.root).to_text()
    _path, other = log.generate_key("other.example/key", tmp_path / "other.key")

    def forge(members: dict[str, bytes]) -> None:
        _describe(_log_field("checkpoint", None))(members)
        members["log/key.pub"] = other.to_text().encode() + b"\n"
        members["log/checkpoint.tsr"] = b"this is not an RFC 3161 token"

    forged = tmp_path / "forged.wacz"
    _repackage(two, forged, forge)
    result = check_wacz(forged, trusted_key=key)
    for problem in ("preserve/export.json: log.checkpoint is None, but the package holds "
                    "'log/checkpoint.txt'", "log/key.pub: is not the trusted key",
                    "log/key.pub: is not the key proofs/",
                    "log/checkpoint.txt: does not verify with the package's key",
                    "log/checkpoint.tsr: not an RFC 3161 token"):
        assert any(p.startswith(problem) for p in result.problems), (problem, result.problems)
    without = tmp_path / "without.wacz"  # no checkpoint at all, the proofs still lead to one
    _repackage(two, without, lambda members: members.pop("log/checkpoint.txt"))
    problems = check_wacz(without).problems
    assert any("leads to a checkpoint the package does not hold" in p for p in problems)


# --- the zip is laid out as the exporter writes it --------------------------------------------


def _end_record(raw: bytes) -> tuple[int, int, int]:
    """(entries, central directory size, its offset) from a zip's classic end record."""
    entries, size, offset = struct.unpack("<HII", raw[-12:-2])
    return entries, size, offset


def _prefixed(raw: bytes) -> bytes:
    return b"MZ" + b"\0" * 62 + raw  # Python's zipfile shifts every offset by 64 and reads on


def _gap_before_directory(raw: bytes) -> bytes:
    entries, size, offset = _end_record(raw)
    gap = b"<p>bytes no entry accounts for</p>"
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries, size,
                      offset + len(gap), 0)
    return raw[:offset] + gap + raw[offset:offset + size] + end


def _two_directories(raw: bytes) -> bytes:
    """Two central directories: the ZIP64 end record (Python's zipfile) names the second, the
    classic one (unzip and others) the first, which a forger would fill with other members."""
    entries, size, offset = _end_record(raw)
    directory = raw[offset:offset + size]
    at = offset + 2 * size
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size,
                        offset + size)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    return raw[:offset] + directory + directory + zip64 + locator + raw[-22:]


@pytest.mark.parametrize(("layout", "problem"), [
    (_prefixed, "does not end where the end records begin"),
    (_gap_before_directory, "belong to no entry"),
    (_two_directories, "the ZIP64 and the classic end records name different central "
                       "directories"),
], ids=["prefix", "gap", "two-directories"])
def test_a_zip_not_laid_out_as_the_exporter_writes_it_fails(
        built: Built, two: Path, tmp_path: Path, layout: Callable[[bytes], bytes],
        problem: str) -> None:
    """Python's zipfile reads each of these as the genuine package; other zip readers read
    other bytes (the prefix, the first central directory)."""
    forged = tmp_path / "forged.wacz"
    forged.write_bytes(layout(two.read_bytes()))
    with zipfile.ZipFile(forged) as z:  # the genuine members, as preserve's zipfile sees them
        assert z.namelist() == zipfile.ZipFile(two).namelist() and z.testzip() is None
    result = check_wacz(forged, trusted_key=log.read_verifier(built.root).to_text())
    assert any(p.startswith("zip layout: ") and problem in p for p in result.problems), \
        result.problems


def _rewrite(source: Path, dest: Path, change: Callable[[zipfile.ZipInfo], None]) -> None:
    """Copy a zip entry by entry, each entry's ZipInfo changed by ``change`` first."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(dest, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            change(info)
            new.writestr(info, data)


def test_entries_the_exporter_never_writes_fail(built: Built, two: Path,
                                               tmp_path: Path) -> None:
    """A WARC member marked as a symlink (unzip creates a link instead of the file), a member
    compressed with bzip2 (decompressed without bound before), a resource listed twice."""
    key = log.read_verifier(built.root).to_text()
    linked = tmp_path / "linked.wacz"

    def symlink(info: zipfile.ZipInfo) -> None:
        if info.filename.startswith("archive/"):
            info.external_attr = 0o120777 << 16
    _rewrite(two, linked, symlink)
    assert any(p.startswith("archive/") and "marked as a symlink" in p
               for p in check_wacz(linked, trusted_key=key).problems)
    squeezed = tmp_path / "bzip2.wacz"

    def bzip2(info: zipfile.ZipInfo) -> None:
        if info.filename == "pages/pages.jsonl":
            info.compress_type = zipfile.ZIP_BZIP2
    _rewrite(two, squeezed, bzip2)
    assert "pages/pages.jsonl: compressed with method 12 (preserve's export only stores or " \
        "deflates)" in check_wacz(squeezed, trusted_key=key).problems
    with zipfile.ZipFile(two) as old:
        members = {info.filename: old.read(info) for info in old.infolist()}
    package = json.loads(members["datapackage.json"])
    package["resources"].append(package["resources"][0])
    twice = tmp_path / "twice.wacz"
    _write_package(twice, members, package, deflate=True)
    assert f"{package['resources'][0]['path']}: listed more than once in datapackage.json" in \
        check_wacz(twice, trusted_key=key).problems


def test_members_expanding_past_the_bound_are_refused_unread(
        two: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The uncompressed sizes the central directory declares are summed before a member is
    read: more than 100 times the file's size plus 1 GiB is refused."""
    raw = bytearray(two.read_bytes())
    with zipfile.ZipFile(two) as z:
        info = z.getinfo("pages/pages.jsonl")
    declared = 0xF000_0000
    struct.pack_into("<I", raw, info.header_offset + 22, declared)  # the local header
    _entries, _size, offset = _end_record(bytes(raw))
    name = raw.index(b"pages/pages.jsonl", offset)
    struct.pack_into("<I", raw, name - 46 + 24, declared)  # its central-directory entry
    bomb = tmp_path / "bomb.wacz"
    bomb.write_bytes(bytes(raw))
    opened: list[str] = []
    original = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: (
        opened.append(getattr(name, "filename", name)), original(self, name, *a, **k))[1])
    result = check_wacz(bomb)
    assert any(p.startswith("zip layout: the members expand to") for p in result.problems), \
        result.problems
    assert opened == []


def test_more_entries_than_the_bound_are_refused_before_they_are_read(tmp_path: Path) -> None:
    """zipfile builds an object per central-directory entry: the count is read from the end
    record (and counted raw) first."""
    count = 100_001
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, zlib.crc32(b"x"), 1, 1,
                        1, 0) + b"a" + b"x"
    entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x031E, 20, 0, 0, 0, 0x21,
                        zlib.crc32(b"x"), 1, 1, 1, 0, 0, 0, 0, 0o100644 << 16, 0) + b"a"
    directory = entry * count
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                        len(directory), len(local))
    at = len(local) + len(directory)
    many = tmp_path / "many.wacz"
    many.write_bytes(local + directory + zip64 + struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
                     + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF,
                                   len(directory), len(local), 0))
    assert check_wacz(many).problems == [
        "zip layout: 100001 entries, more than 100000 (not a zip preserve's exporter writes)"]


def test_a_member_named_by_many_captures_is_read_once(
        built: Built, two: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A descriptor naming one (deflated, large) manifest for many captures had it
    decompressed and hashed once per capture."""
    forged = tmp_path / "forged.wacz"
    _repackage(two, forged, _describe(lambda d: d.update(
        captures=[d["captures"][0]] * 5 + d["captures"][1:])))
    opened: Counter[str] = Counter()
    original = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: (
        opened.update([getattr(name, "filename", name)]), original(self, name, *a, **k))[1])
    result = check_wacz(forged)
    manifest = f"manifests/{built.ids[0]}.json"
    assert f"capture {built.ids[0]}: {manifest} is another capture's in the descriptor" in \
        result.problems
    assert opened[manifest] <= 2, opened  # hashed with every member, read for its capture
