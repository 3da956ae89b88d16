"""Tests for preserve.storage.manifest: canonical bytes, strict parsing, write-once files."""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preserve.errors import ManifestError, StorageError, UnsafePathError
from preserve.hashing import sha256_base32
from preserve.storage import manifest as manifest_mod
from preserve.storage.layout import ArchiveLayout
from preserve.storage.manifest import (
    MAX_CONTAINERS,
    MAX_MANIFEST_BYTES,
    MAX_NESTING,
    MAX_STRINGS,
    MAX_TEXT_FIELD_CHARS,
    SCHEMA,
    Manifest,
    base32_decoded_length,
    bound_fields,
    iter_manifest_paths,
    iter_manifests,
    manifest_from_dict,
    nesting_depth,
    parse_manifest,
    read_manifest,
    write_manifest,
)

CID = "20261121T164100Z-abcdefgh23"
H1 = "1" * 64
H2 = "2" * 64
H3 = "a" * 64
DIGEST = sha256_base32(hashlib.sha256(b"block").digest())


def _hop(url: str, status: int, location: str | None) -> dict[str, Any]:
    return {
        "url": url, "method": "GET", "status": status, "location": location,
        "remote_ip": "127.0.0.1", "remote_port": 8443,
        "started": "2026-11-21T16:41:00.000001Z", "ended": "2026-11-21T16:41:00.500000Z",
        "transfer_encoding": None, "wire_sha256": H1, "wire_size": 100,
        "body_sha256": H2, "body_size": 10,
        "tls": {
            "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "alpn": None,
            "verified": True,
            "certificate": {
                "sha256_fingerprint": H3, "subject": "CN=localhost", "issuer": "O=trustme",
                "not_before": "2026-01-01T00:00:00Z", "not_after": "2036-01-01T00:00:00Z",
                "serial_number": "0a1b", "subject_alt_names": ["localhost", "127.0.0.1"],
            },
        },
    }


def sample_dict() -> dict[str, Any]:
    record = {
        "id": "urn:uuid:12345678-1234-1234-1234-123456789abc", "type": "response",
        "target_uri": "https://example.test/a", "offset": 0, "length": 500,
        "block_digest": DIGEST, "payload_digest": DIGEST, "refers_to": None,
        "content_type": "application/http; msgtype=response",
    }
    return {
        "schema": SCHEMA, "capture_id": CID, "status": "ok",
        "requested_url": "https://example.test/", "final_url": "https://example.test/a",
        "started": "2026-11-21T16:41:00.000000Z", "ended": "2026-11-21T16:41:01.000000Z",
        "http": {"status": 200, "reason": "OK", "content_type": "text/html; charset=utf-8"},
        "redirects": [_hop("https://example.test/", 301, "https://example.test/a"),
                      _hop("https://example.test/a", 200, None)],
        "connection": {"remote_ip": "::1", "remote_port": 8443, "local_ip": None,
                       "tls": _hop("x", 200, None)["tls"]},
        "warc": {"path": f"archive/warc/2026/11/{CID}.warc.gz", "size": 1000,
                 "blake3": H1, "sha256": H2, "records": [record]},
        "text": {"blake3": H3, "size": 12, "path": f"archive/text/aa/aa/{H3}"},
        "comments": None,
        "extraction": {"title": "Titel — “quoted”", "byline": None, "published": "2026-11-20",
                       "language": "de", "reason": None},
        "extractor": {"name": "preserve-extract", "version": "1",
                      "settings": {"min_chars": 25, "keep": ["p", "h1"], "ratio": 0.5}},
        "software": {"preserve": "0.1.0", "python": "CPython 3.11.7"},
        "host": "box", "operator": "ana",
        "previous": ["20261120T000000Z-aaaaaaaaaa"],
        "truncated": [], "notes": [],
    }


def sample() -> Manifest:
    return manifest_from_dict(sample_dict())


def test_roundtrip_and_canonical_bytes() -> None:
    manifest = sample()
    data = manifest.to_bytes()
    assert parse_manifest(data) == manifest
    assert data.endswith(b"}\n")
    assert "Titel — “quoted”".encode() in data  # not \\u-escaped
    expected = json.dumps(sample_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert data == expected.encode()


def test_to_dict_is_plain_json() -> None:
    assert json.loads(json.dumps(sample().to_dict())) == sample_dict()


def test_to_dict_is_what_dataclasses_asdict_gives_as_plain_json() -> None:
    """``to_dict`` walks the dataclasses itself (asdict copied every value: six times
    slower, on every capture's seal and every verify's canonical check); it gives exactly
    what ``asdict`` made plain gives, here for the sample and the sample collection's
    manifests (when it was written, for 10,438 manifests of every kind too: browser
    captures, imports, the test suite's hostile ones, the 100,000-capture archive)."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    collection = sorted((Path(__file__).parent.parent / "manifests").glob("*.json"))
    manifests = [sample(), *(parse_manifest(p.read_bytes()) for p in collection)]
    assert len(manifests) >= 3
    for manifest in manifests:
        assert manifest_mod._json_of(manifest) == plain(dataclasses.asdict(manifest))
        assert parse_manifest(manifest.to_bytes()) == manifest


def test_settings_normalised_from_python_values() -> None:
    d = sample_dict()
    d["extractor"]["settings"] = {"keep": ("p", "h1")}
    assert manifest_from_dict(d).extractor.settings == {"keep": ["p", "h1"]}


def _mutated(path: str, value: Any) -> dict[str, Any]:
    d = copy.deepcopy(sample_dict())
    *parents, last = path.split(".")
    target: Any = d
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[int(last) if isinstance(target, list) else last] = value
    return d


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("schema", "preserve/manifest/3"),
        ("capture_id", "20261121T164100Z-ABCDEFGH23"),
        ("capture_id", "../../x"),
        ("status", "fine"),
        ("requested_url", ""),
        ("requested_url", 5),
        ("started", "2026-11-21T16:41:00Z"),
        ("started", "2026-11-21 16:41:00.000000Z"),
        ("started", "2026-02-30T16:41:00.000000Z"),
        ("ended", "2026-11-21T16:40:00.000000Z"),  # before started
        ("http.status", "200"),
        ("http.status", True),
        ("http.status", 42),
        ("http.extra", 1),
        ("redirects.0.remote_ip", "not-an-ip"),
        ("redirects.0.remote_port", 70000),
        ("redirects.0.wire_sha256", "A" * 64),
        ("redirects.0.tls.verified", "yes"),
        ("redirects.0.tls.certificate.subject_alt_names", ["a", 1]),
        ("connection.tls", _DELETE),
        ("warc.size", -1),
        ("warc.size", 499),  # record extends past the end
        ("warc.blake3", "z" * 64),
        ("warc.records.0.id", "<urn:uuid:12345678-1234-1234-1234-123456789abc>"),
        ("warc.records.0.type", "bogus"),
        ("warc.records.0.length", 0),
        ("warc.records.0.offset", 1.5),
        ("warc.records.0.block_digest", "sha256:ABC"),
        ("warc.records.0.block_digest", "md5:" + "a" * 32),
        ("warc.records.0.payload_digest", "sha1:" + "a" * 64),
        ("text.size", None),
        ("text.blake3", "short"),
        ("extractor.settings", []),
        ("software.python", 3),
        ("previous", ["yesterday"]),
        ("host", None),
        ("extraction.title", "\ud800"),  # lone surrogate
    ],
)
def test_invalid_fields_rejected(path: str, value: Any) -> None:
    with pytest.raises(ManifestError):
        manifest_from_dict(_mutated(path, value))


@pytest.mark.parametrize(
    "bad_path",
    ["/etc/passwd", "../outside.warc.gz", "archive/../../x", "archive\\warc\\x", "manifests/x",
     "archive/te\x00xt", "C:/x"],
)
def test_unsafe_paths_rejected(bad_path: str) -> None:
    with pytest.raises(UnsafePathError):
        manifest_from_dict(_mutated("warc.path", bad_path))
    with pytest.raises(UnsafePathError):
        manifest_from_dict(_mutated("text.path", bad_path))


def test_records_must_not_overlap() -> None:
    d = sample_dict()
    second = dict(d["warc"]["records"][0], offset=499,
                  id="urn:uuid:12345678-1234-1234-1234-123456789abd")
    d["warc"]["records"].append(second)
    with pytest.raises(ManifestError, match="overlaps"):
        manifest_from_dict(d)


@pytest.mark.parametrize("label", ["sha256:" + "a" * 64, DIGEST.rstrip("=")])
def test_hex_and_unpadded_warc_digests_accepted(label: str) -> None:
    d = _mutated("warc.records.0.payload_digest", label)
    assert manifest_from_dict(d).warc.records[0].payload_digest == label


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe{}",
        "\ufeff{}".encode(),
        b"[1, 2]",
        b'{"schema": NaN}',
        b'{"a": 1, "a": 2}',
        b"{" * 10,
        b"not json",
    ],
)
def test_decoding_errors(data: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(data)


def test_deep_nesting_rejected_before_json_loads() -> None:
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    with pytest.raises(ManifestError, match="nested deeper"):
        parse_manifest(deep)
    with pytest.raises(ManifestError, match="nested deeper"):
        parse_manifest(b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1))
    assert nesting_depth(b"[" * MAX_NESTING + b"]" * MAX_NESTING) == MAX_NESTING
    assert nesting_depth(b"[" * (MAX_NESTING + 50)) > MAX_NESTING


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (rb'{"a": [[{}]], "b": "[[[[[[[[[[[["}', 4),
        (rb'{"a": "x\"[[[[", "b": [[1]]}', 3),  # escaped quote inside a string
        (rb'{"a": "x\\", "b": [[1]]}', 3),  # escaped backslash ends the string
        (rb'{"a": "x\\\"[[[", "b": [[1]]}', 3),
        (rb"[[],[[]],{}]", 3),
        (rb"]]][[", 2),
    ],
)
def test_nesting_depth_ignores_strings(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_title_full_of_brackets_is_fine() -> None:
    d = _mutated("extraction.title", "[" * 1000 + "{" * 1000 + '\\"')
    assert parse_manifest(manifest_from_dict(d).to_bytes()).extraction.title == d[
        "extraction"]["title"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"[" + b'"",' * (MAX_STRINGS + 1) + b"1]", "strings"),
        (b"[" + b"[]," * (MAX_CONTAINERS + 1) + b"1]", "objects and lists"),
    ],
)
def test_complexity_bounded(data: bytes, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        parse_manifest(data)


def test_oversize_rejected() -> None:
    with pytest.raises(ManifestError, match="larger"):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1))


def test_write_manifest_once(tmp_path: Path) -> None:
    layout = ArchiveLayout(tmp_path)
    manifest = sample()
    ref = write_manifest(layout, manifest)
    data = ref.path.read_bytes()
    assert ref.path == tmp_path / "manifests" / f"{CID}.json"
    assert ref.blake3 == blake3.blake3(data).hexdigest()
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert stat.S_IMODE(ref.path.stat().st_mode) == 0o444
    with pytest.raises(StorageError, match="already exists"):
        write_manifest(layout, manifest)
    assert ref.path.read_bytes() == data
    assert sorted(p.name for p in layout.manifests_dir.iterdir()) == [f"{CID}.json"]

    parsed, digests = read_manifest(ref.path)
    assert parsed == manifest
    assert digests.blake3 == ref.blake3


def test_iter_manifests_skips_temp_and_log(tmp_path: Path) -> None:
    layout = ArchiveLayout(tmp_path)
    layout.ensure_dirs()
    write_manifest(layout, sample())
    (layout.manifests_dir / ".tmp-debris").write_text("{}")
    (layout.log_dir / "entries.json").write_text("{}")
    assert [p.name for p in iter_manifest_paths(layout)] == [f"{CID}.json"]
    assert [m.capture_id for _, m, _ in iter_manifests(layout)] == [CID]


def test_read_manifest_names_file_on_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_bytes(b"{}")
    with pytest.raises(ManifestError, match=r"x\.json"):
        read_manifest(bad)


_web_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


@settings(max_examples=60, deadline=None)
@given(title=st.none() | _web_text, byline=st.none() | _web_text, host=_web_text,
       setting=st.recursive(st.none() | st.booleans() | st.integers() | _web_text,
                            lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(_web_text, inner, max_size=3), max_leaves=8))
def test_roundtrip_any_web_strings(title: str | None, byline: str | None, host: str,
                                   setting: Any) -> None:
    d = sample_dict()
    d["extraction"].update(title=title, byline=byline)
    d["host"] = host
    d["extractor"]["settings"] = {"x": setting}
    manifest = manifest_from_dict(d)
    data = manifest.to_bytes()
    assert parse_manifest(data) == manifest
    assert manifest_from_dict(json.loads(data)).to_bytes() == data


def test_v1_manifest_stays_v1_byte_for_byte() -> None:
    """Manifests are never migrated: a v1 manifest parses, and re-serialises to its own bytes
    (no v2 fields appear), so its hash and log leaf stay valid for ever."""
    d = sample_dict()
    d["schema"] = "preserve/manifest/1"
    del d["truncated"], d["notes"]
    data = (json.dumps(d, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    parsed = parse_manifest(data)
    assert parsed.schema == "preserve/manifest/1" and parsed.notes == ()
    assert parsed.to_bytes() == data
    d["notes"] = ["a v2 field in a v1 manifest"]
    with pytest.raises(ManifestError, match="unknown field"):
        manifest_from_dict(d)


def test_bound_fields_cuts_hostile_strings_and_records_the_cut() -> None:
    d = sample_dict()
    d["extraction"]["title"] = "\x01" * 3_000_000
    d["connection"]["tls"]["certificate"]["subject_alt_names"] = [f"DNS:h{i}.test"
                                                                  for i in range(5000)]
    bounded = bound_fields(d)
    m = manifest_from_dict(bounded)
    assert len(m.extraction.title or "") == MAX_TEXT_FIELD_CHARS
    (cut,) = m.truncated
    assert cut.field == "extraction.title" and cut.length == 3_000_000
    assert cut.sha256 == hashlib.sha256(("\x01" * 3_000_000).encode()).hexdigest()
    assert any("subject_alt_names" in note for note in m.notes)
    assert len(m.to_bytes()) < MAX_MANIFEST_BYTES


def test_certificate_dates_out_of_calendar_are_kept_as_given() -> None:
    d = sample_dict()
    cert = d["connection"]["tls"]["certificate"]
    cert["not_before"] = "0999-01-01T00:00:00Z"
    cert["not_after"] = "asn1:00000101000000Z"
    m = manifest_from_dict(d)
    assert m.connection.tls is not None and m.connection.tls.certificate is not None
    assert m.connection.tls.certificate.not_after == "asn1:00000101000000Z"
    cert["not_after"] = "asn1:garbage"
    with pytest.raises(ManifestError):
        manifest_from_dict(d)


def test_v2_extraction_method_and_page_type_round_trip() -> None:
    document = sample_dict()
    document["extraction"]["method"] = "main"
    document["extraction"]["page_type"] = "forum"
    manifest = manifest_from_dict(document)
    assert (manifest.extraction.method, manifest.extraction.page_type) == ("main", "forum")
    assert parse_manifest(manifest.to_bytes()) == manifest
    document["schema"] = "preserve/manifest/1"
    for key in ("truncated", "notes"):
        document.pop(key, None)
    with pytest.raises(ManifestError, match="unknown field"):
        manifest_from_dict(document)


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", max_size=120),
       st.integers(min_value=0, max_value=9))
@settings(max_examples=400, deadline=None)
def test_base32_length_count_agrees_with_b32decode(body: str, padding: int) -> None:
    encoded = body + "=" * padding
    stripped = encoded.rstrip("=")
    try:
        expected: int | None = len(base64.b32decode(stripped + "=" * (-len(stripped) % 8)))
    except binascii.Error:
        expected = None
    assert base32_decoded_length(encoded) == expected


@pytest.mark.parametrize("extraction_extra", [{}, {"method": None, "page_type": None},
                                              {"method": "article", "page_type": "article"}])
def test_seal_writes_the_parsed_manifests_own_bytes(
    extraction_extra: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sealed draft is the canonical serialisation of the manifest parsed from it (what
    verify holds canonical, W109); it is re-serialised only when parsing changed something
    (a null field the schema leaves out when absent), else the bytes parsed are kept."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from preserve.commit import PreparedCapture  # noqa: PLC0415
    from preserve.hashing import Digests  # noqa: PLC0415
    from preserve.warc import RecordRef, WarcWriteResult  # noqa: PLC0415

    document = sample_dict()
    for key in ("schema", "warc", "text", "comments", "previous"):
        del document[key]
    document["extraction"].update(extraction_extra)
    record = RecordRef("urn:uuid:12345678-1234-1234-1234-123456789abc", "response",
                       "https://example.test/a", 0, 500, DIGEST, DIGEST, None,
                       "application/http; msgtype=response")
    prepared = PreparedCapture(
        capture_id=CID, started_at=datetime(2026, 11, 21, tzinfo=UTC), kind="capture",
        requested_url="https://example.test/", warc_tmp=Path("capture.warc.gz"),
        warc=WarcWriteResult(records=(record,), digests=Digests(H1, H2, 1000)),
        text=b"clean text", comments=None, document=document)
    serialised: list[Manifest] = []
    to_bytes = Manifest.to_bytes

    def counting(self: Manifest) -> bytes:
        serialised.append(self)
        return to_bytes(self)

    monkeypatch.setattr(Manifest, "to_bytes", counting)
    prepared.seal()
    assert prepared.draft is not None and prepared.draft_manifest is not None
    assert len(serialised) == (1 if extraction_extra.get("method", "") is None else 0)
    assert parse_manifest(prepared.draft) == prepared.draft_manifest
    assert to_bytes(prepared.draft_manifest) == prepared.draft
    if extraction_extra.get("method", "") is None:
        assert "method" not in json.loads(prepared.draft)["extraction"]


def test_real_date_time_accepts_what_strptime_accepts() -> None:
    """Dates and times are checked without strptime; the same ones are accepted."""
    import itertools  # noqa: PLC0415
    from datetime import datetime  # noqa: PLC0415

    def by_strptime(value: str) -> bool:
        try:
            datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return False
        return True

    years, months = ("0000", "0001", "1999", "2000", "2024", "2100", "9999"), range(0, 14)
    days, hours = (0, 1, 9, 28, 29, 30, 31, 32), ("00", "23", "24")
    minutes, seconds = ("00", "59", "60"), ("00", "59", "60", "61")
    for year, month, day, hour, minute, second in itertools.product(
            years, months, days, hours, minutes, seconds):
        stamp = f"{year}-{month:02d}-{day:02d}T{hour}:{minute}:{second}.000000Z"
        assert manifest_mod.real_date_time(stamp) is by_strptime(stamp), stamp
