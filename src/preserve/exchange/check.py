"""Check an exported package offline: a WACZ file or a BagIt bag written by ``preserve export``.

WACZ: the zip is laid out as preserve's exporter writes it (read raw, bounded, before any
member is: entries contiguous from offset 0, one central directory that the classic and any
ZIP64 end record both name, at most :data:`MAX_WACZ_ENTRIES` entries, regular files stored or
deflated only, their sizes summed within :func:`expansion_limit`); every zip entry is listed
once in ``datapackage.json`` and has its SHA-256 and size; the ``datapackage-digest.json``
hash matches; a ``signedData`` signature verifies with its public key (and equals
``wacz_public_key`` when one is given); a ``timeSignature`` verifies against ``tsa_roots`` when
given. Then, per capture listed in ``preserve/export.json``: the manifest's hashes are the
descriptor's, every other descriptor field of the capture is the manifest's, the WARC file and
text objects match the manifest (SHA-256 and BLAKE3), and the proof bundle holds (against
``trusted_key`` when given) for those exact manifest bytes. The descriptor's ``log`` fields
are those of the log files the package holds, which are always checked (key, checkpoint,
token). Last, the replay files are bound to those captures (:mod:`.binding`): no member but
those the exporter writes for them, the index and pages equal to what the exporter derives
from them.

Bag: the BagIt structure (every payload file listed, present and matching both manifests,
Payload-Oxum, tag manifests), the same descriptor and log checks as a WACZ, no payload file
but those the exporter writes for the listed captures, then the preserve audit of ``data/`` as
an archive root (:func:`preserve.audit.verify.verify` and the integrity-log audit, read-only:
no lock, no audit event recorded), with the partial-export rule: in a bag whose
``preserve-export.json`` says ``partial``, a log leaf whose manifest is absent (E305) is
expected for every capture the descriptor does not list, and is reported as a note; it is an
error for a listed capture. Then every proof bundle is checked.

Not proved (facts of the export, not of the captures): the descriptor's ``created``,
``software``, ``partial``, ``omitted_captures``, and in a WACZ its ``log.size`` beyond being
at least what the proofs show.

Problems are returned as data; nothing here raises for what it finds.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from preserve import log
from preserve.audit.findings import Report, Severity
from preserve.audit.verify import verify as audit_archive
from preserve.errors import PreserveError, StorageError
from preserve.exchange.bagit import ALGORITHMS, DESCRIPTOR_NAME
from preserve.exchange.binding import Proven, bind_wacz
from preserve.exchange.files import BLOCK_SIZE, Digester
from preserve.exchange.plan import EXPORT_FORMAT
from preserve.exchange.signing import verify_signed_data
from preserve.hashing import hash_bytes
from preserve.importing import MAX_WACZ_ENTRIES
from preserve.integrity import audit_log
from preserve.log.archive_log import CHECKPOINT_NAME
from preserve.log.entries import manifest_path
from preserve.log.export_note import SIGNATURE
from preserve.log.timestamp import load_roots_file, timestamp_time, verify_timestamp
from preserve.safe_io import loads_strict, open_binary, read_regular, read_text, walk_tree
from preserve.storage.manifest import Manifest, parse_manifest

WACZ_DESCRIPTOR = "preserve/export.json"
KEY_MEMBER = "log/key.pub"
CHECKPOINT_MEMBER = "log/checkpoint.txt"
TOKEN_MEMBER = "log/checkpoint.tsr"
#: Most bytes read into memory from one small package member (JSON, checkpoint, key, text).
MAX_MEMBER_BYTES = 64 * 1024 * 1024
#: Most bytes of small members kept in memory for a second reader (each is decompressed once).
MAX_KEPT_BYTES = 256 * 1024 * 1024
_PACKAGE_FILES = ("datapackage.json", "datapackage-digest.json")
_BAG_LOG = "manifests/log"
_BAG_LOG_FILE = re.compile(r"^manifests/log/(key\.pub|checkpoint|entries\.jsonl|entries\.idx|"
                           r"head\.json|tree/[0-9]{2}\.bin|checkpoints/[0-9]{12}-[0-9]{8}T"
                           r"[0-9]{12}Z\.(txt|tsr))\Z")

# The fields of a preserve-export/1 descriptor, as plan.descriptor writes them.
_DESCRIPTOR_FIELDS = frozenset({"format", "created", "software", "package", "partial",
                                "omitted_captures", "log", "captures"})
_LOG_FIELDS = frozenset({"size", "checkpoint_size", "verifier_key", "checkpoint", "timestamp",
                         "key"})
_CAPTURE_FIELDS = frozenset({"capture_id", "requested_url", "final_url", "started", "manifest",
                             "warc", "text", "comments", "proof", "proof_problem"})
_MANIFEST_FIELDS = frozenset({"path", "sha256", "blake3", "size"})
_WARC_FIELDS = frozenset({"path", "sha256", "size"})

# Zip records, as Python's zipfile (preserve's exporter) writes them.
_END = struct.Struct("<4s4H2LH")  # end of central directory record
_LOCATOR = struct.Struct("<4sLQL")  # ZIP64 end of central directory locator
_END64 = struct.Struct("<4sQ2H2L4Q")  # ZIP64 end of central directory record (no extension)
_ENTRY = struct.Struct("<4s6H3L5H2L")  # central directory file header
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header
_ZIP64_EXTRA = struct.Struct("<HHQQ")  # a local header's ZIP64 field: sizes as 64-bit
_END_MAGIC, _LOCATOR_MAGIC = b"PK\x05\x06", b"PK\x06\x07"
_END64_MAGIC, _ENTRY_MAGIC, _LOCAL_MAGIC = b"PK\x06\x06", b"PK\x01\x02", b"PK\x03\x04"
_SATURATED = (0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)  # entries, size, offset: "see the ZIP64 record"
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what the exporter writes
_ENCRYPTED, _DATA_DESCRIPTOR, _UTF8 = 0x1, 0x8, 0x800


@dataclass
class CheckResult:
    """What checking a package found."""

    path: Path
    kind: str  # "wacz" or "bagit"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    captures: list[str] = field(default_factory=list)
    partial: bool = False
    signature: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "ok": self.ok,
                "problems": self.problems, "notes": self.notes, "captures": self.captures,
                "partial": self.partial, "signature": self.signature}


@dataclass(frozen=True)
class _ProofFacts:
    """What a capture's proof bundle says of the log: the checkpoint and key it leads to."""

    path: str
    checkpoint: Any
    verifier_key: Any
    leaf_index: Any


@dataclass(frozen=True)
class _LogFiles:
    """The log files a package holds (package paths, None when absent): what the
    descriptor's ``log`` must name."""

    checkpoint: str | None
    timestamp: str | None
    key: str | None


def check_package(path: Path, *, trusted_key: str | None = None,
                  wacz_public_key: str | None = None,
                  tsa_roots: Path | None = None) -> CheckResult:
    """Check a WACZ file or a bag directory (chosen by what ``path`` is)."""
    path = Path(path)
    if path.is_dir():
        return check_bag(path, trusted_key=trusted_key, tsa_roots=tsa_roots)
    return check_wacz(path, trusted_key=trusted_key, wacz_public_key=wacz_public_key,
                      tsa_roots=tsa_roots)


# --- WACZ --------------------------------------------------------------------------------------


class _LayoutError(ValueError):
    """The zip is not laid out as preserve's exporter writes it."""


def check_wacz(path: Path, *, trusted_key: str | None = None, wacz_public_key: str | None = None,
               tsa_roots: Path | None = None) -> CheckResult:
    result = CheckResult(Path(path), "wacz")
    roots = load_roots_file(tsa_roots) if tsa_roots is not None else None
    try:  # a regular file only: in zipfile a FIFO would block, a device (/dev/zero) never end
        handle = open_binary(path, follow_symlinks=True)
    except StorageError as exc:
        result.problems.append(f"cannot read {path}: {exc}")
        return result
    try:
        with handle:
            fd = handle.fileno()
            size = os.fstat(fd).st_size
            directory = central_directory(fd, size)  # before zipfile builds a single entry
            with zipfile.ZipFile(handle) as zf:
                layout = entry_problems(zf, fd, size, directory)
                if layout:  # nothing is decompressed from a zip the exporter did not write
                    result.problems += layout
                    return result
                _check_wacz(zf, fd, _Reader(zf, expansion_limit(size)), result, trusted_key,
                            wacz_public_key, roots)
    except _LayoutError as exc:
        result.problems.append(f"zip layout: {exc} (not a zip preserve's exporter writes)")
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        result.problems.append(f"cannot read {path} as a zip file: {exc}")
    except (zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # a damaged deflate stream, an unsupported compression method, an encrypted member
        result.problems.append(f"cannot decompress a member of {path}: {exc}")
    except (StorageError, KeyError, TypeError, AttributeError, ValueError) as exc:
        # JSON too large, too deep or not of the expected shape (a list for an object, ...)
        result.problems.append(f"{path} is not a well-formed package: "
                               f"{type(exc).__name__}: {exc}")
    return result


# --- the zip's layout, read raw ------------------------------------------------------------------


@dataclass(frozen=True)
class Directory:
    """Where a zip's central directory is and how many entries it holds."""

    entries: int
    offset: int
    size: int


def expansion_limit(size: int) -> int:
    """Most bytes the members of a package of ``size`` bytes may expand to, summed."""
    return 100 * size + 2**30


def _pread(fd: int, length: int, offset: int) -> bytes:
    """Exactly ``length`` bytes at ``offset``, or _LayoutError."""
    data = os.pread(fd, length, offset) if offset >= 0 else b""
    if len(data) != length:
        raise _LayoutError(f"a record at offset {offset} is cut short")
    return data


def central_directory(fd: int, size: int) -> Directory:
    """The central directory the end records name, checked raw (bounded, nothing else read):
    the classic end record ends the file without a comment; a ZIP64 record and its locator, when
    present, sit just before it and the classic record says the same (or is saturated); the
    central directory ends where they begin (no byte before the first entry: Python's zipfile
    would shift every offset); at most :data:`MAX_WACZ_ENTRIES` entries, each counted."""
    raw = _pread(fd, _END.size, size - _END.size)
    magic, disk, cd_disk, here, entries, cd_size, cd_offset, comment = _END.unpack(raw)
    if magic != _END_MAGIC or comment:
        raise _LayoutError("the file does not end with an end-of-central-directory record "
                           "(without a comment)")
    if disk or cd_disk or here != entries:
        raise _LayoutError("the end record describes a zip split over several disks")
    found, records = Directory(entries, cd_offset, cd_size), size - _END.size
    locator = records - _LOCATOR.size
    if locator >= 0 and os.pread(fd, 4, locator) == _LOCATOR_MAGIC:
        records = locator - _END64.size
        found = _zip64_directory(fd, locator, found)
    if found.entries > MAX_WACZ_ENTRIES:
        raise _LayoutError(f"{found.entries} entries, more than {MAX_WACZ_ENTRIES}")
    if found.offset + found.size != records:
        raise _LayoutError(f"the central directory ({found.size} bytes at offset "
                           f"{found.offset}) does not end where the end records begin "
                           f"({records}): bytes were added before, inside or after the zip")
    if found.size > MAX_MEMBER_BYTES:
        raise _LayoutError(f"a central directory of {found.size} bytes")
    _count_entries(fd, found)
    return found


def _zip64_directory(fd: int, locator: int, classic: Directory) -> Directory:
    """The ZIP64 end record the locator at ``locator`` names: just before it, and naming the
    central directory the ``classic`` end record names (zip readers that trust the classic
    record would otherwise read other members)."""
    magic, disk, record, disks = _LOCATOR.unpack(_pread(fd, _LOCATOR.size, locator))
    if disk or disks != 1 or record != locator - _END64.size:
        raise _LayoutError("the ZIP64 end record is not just before its locator")
    (magic, length, _made, _needed, disk, cd_disk, here, entries, cd_size,
     cd_offset) = _END64.unpack(_pread(fd, _END64.size, record))
    if magic != _END64_MAGIC or length != _END64.size - 12 or disk or cd_disk or \
            here != entries:
        raise _LayoutError("the ZIP64 end record is not one preserve's exporter writes")
    found = Directory(entries, cd_offset, cd_size)
    for value, stated, saturated in zip((entries, cd_size, cd_offset),
                                        (classic.entries, classic.size, classic.offset),
                                        _SATURATED, strict=True):
        if stated != min(value, saturated):
            raise _LayoutError("the ZIP64 and the classic end records name different central "
                               "directories (zip readers would disagree on the members)")
    return found


def _count_entries(fd: int, directory: Directory) -> None:
    """Walk the central directory's entry headers: exactly ``directory.entries`` of them,
    filling it (before zipfile builds one object per entry)."""
    position, end, count = directory.offset, directory.offset + directory.size, 0
    while position < end:
        if count == directory.entries:
            raise _LayoutError("the central directory holds more entries than its end "
                               "record says")
        head = _pread(fd, _ENTRY.size, position)
        if head[:4] != _ENTRY_MAGIC:
            raise _LayoutError(f"no central-directory entry at offset {position}")
        name, extra, comment = _ENTRY.unpack(head)[10:13]
        position += _ENTRY.size + name + extra + comment
        count += 1
    if position != end or count != directory.entries:
        raise _LayoutError("the central directory does not hold the entries its end record "
                           "says")


def entry_problems(zf: zipfile.ZipFile, fd: int, size: int, directory: Directory) -> list[str]:
    """Problems with the entries themselves, from the central directory and local headers
    alone (nothing decompressed): kinds and compressions the exporter never writes, a total
    expansion over :func:`expansion_limit`, bytes no entry accounts for."""
    infos = zf.infolist()
    if len(infos) != directory.entries:
        return [f"zip layout: {len(infos)} entries read, the end record says "
                f"{directory.entries}"]
    problems = [problem for info in infos for problem in _entry_kind(info)]
    total, limit = sum(info.file_size for info in infos), expansion_limit(size)
    if total > limit:
        problems.append(f"zip layout: the members expand to {total} bytes, more than a "
                        f"package of {size} bytes may ({limit}: 100 times its size + 1 GiB)")
    return problems or _contiguous(fd, infos, directory)


def _entry_kind(info: zipfile.ZipInfo) -> list[str]:
    """What makes one entry other than a regular file, stored or deflated, as the exporter
    writes it (unzip would create a symlink for a symlink entry, ...)."""
    name, problems = info.filename, []
    if info.compress_type not in _COMPRESSIONS:
        problems.append(f"{name}: compressed with method {info.compress_type} (preserve's "
                        "export only stores or deflates)")
    if info.flag_bits & (_ENCRYPTED | _DATA_DESCRIPTOR):
        problems.append(f"{name}: encrypted or followed by a data descriptor (preserve's "
                        "export writes neither)")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if info.is_dir() or kind not in (0, stat.S_IFREG):
        what = "a symlink" if kind == stat.S_IFLNK else "a directory" if \
            info.is_dir() or kind == stat.S_IFDIR else f"a file of type {kind:#o}"
        problems.append(f"{name}: marked as {what} (preserve's export writes regular files "
                        "only)")
    return problems


def _contiguous(fd: int, infos: list[zipfile.ZipInfo], directory: Directory) -> list[str]:
    """Entries one after the other from offset 0 up to the central directory, each local
    header saying what the central directory says: no byte that no entry accounts for, no
    entry inside another."""
    position = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != position:
            return [f"zip layout: {info.filename} starts at offset {info.header_offset}, "
                    f"not where the entry before it ends ({position})"]
        problem = _local_header(fd, info)
        if isinstance(problem, str):
            return [f"zip layout: {info.filename}: {problem}"]
        position = problem + info.compress_size
    if position != directory.offset:
        return [f"zip layout: bytes {position} to {directory.offset} belong to no entry"]
    return []


def _local_header(fd: int, info: zipfile.ZipInfo) -> int | str:
    """Where the entry's data starts, or what its local header says otherwise than the
    central directory (name, method, flags, CRC, sizes)."""
    try:
        head = _pread(fd, _LOCAL.size, info.header_offset)
        (magic, _version, flags, method, _time, _date, crc, packed, size, name_length,
         extra_length) = _LOCAL.unpack(head)
        if magic != _LOCAL_MAGIC:
            return "no local header at its offset"
        name = _pread(fd, name_length, info.header_offset + _LOCAL.size)
        extra = _pread(fd, extra_length, info.header_offset + _LOCAL.size + name_length)
    except _LayoutError as exc:
        return str(exc)
    if 0xFFFFFFFF in (packed, size):
        sizes = _zip64_sizes(extra)
        if sizes is None:
            return "its local header has no ZIP64 sizes"
        size, packed = sizes
    decoded = name.decode("utf-8" if flags & _UTF8 else "cp437", errors="replace")
    if (decoded, method, flags, crc, packed, size) != (info.orig_filename, info.compress_type,
                                                       info.flag_bits, info.CRC,
                                                       info.compress_size, info.file_size):
        return "its local header differs from its central-directory entry"
    return int(info.header_offset + _LOCAL.size + name_length + extra_length)


def _zip64_sizes(extra: bytes) -> tuple[int, int] | None:
    """(uncompressed, compressed) from a local header's ZIP64 extra field, if it has one."""
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        if tag == 1 and length == 16 and position + _ZIP64_EXTRA.size <= len(extra):
            _tag, _length, size, packed = _ZIP64_EXTRA.unpack_from(extra, position)
            return size, packed
        position += 4 + length
    return None


# --- members -------------------------------------------------------------------------------------


def _member(zf: zipfile.ZipFile, name: str) -> bytes:
    """A small member's bytes, read to at most :data:`MAX_MEMBER_BYTES` (the stated size
    is checked first, and the actual one while reading: a zip can lie about either)."""
    if zf.getinfo(name).file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"{name} is larger than {MAX_MEMBER_BYTES} bytes")
    with zf.open(name) as handle:
        data = handle.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise ValueError(f"{name} is larger than {MAX_MEMBER_BYTES} bytes")
    return data


class _Reader:
    """Small members of a zip (None for a name it does not hold), each decompressed once and
    kept for the next reader while :data:`MAX_KEPT_BYTES` allow; all the bytes decompressed
    count against ``budget`` (ValueError past it)."""

    def __init__(self, zf: zipfile.ZipFile, budget: int) -> None:
        self.zf, self.budget = zf, budget
        self.names = {info.filename for info in zf.infolist() if not info.is_dir()}
        self.kept: dict[str, bytes] = {}
        self.held = self.spent = 0

    def __call__(self, name: Any) -> bytes | None:
        if not isinstance(name, str) or name not in self.names:
            return None
        if name in self.kept:
            return self.kept[name]
        data = _member(self.zf, name)
        self.spent += len(data)
        if self.spent > self.budget:
            raise ValueError(f"reading its members again and again expands to more than "
                             f"{self.budget} bytes")
        if self.held + len(data) <= MAX_KEPT_BYTES:
            self.kept[name] = data
            self.held += len(data)
        return data

    def json(self, name: str) -> Any:
        data = self(name)
        if data is None:
            raise KeyError(f"There is no item named {name!r} in the archive")
        try:
            return loads_strict(data, max_bytes=MAX_MEMBER_BYTES, what=name)
        except StorageError as exc:
            raise ValueError(str(exc)) from exc


def _check_wacz(zf: zipfile.ZipFile, fd: int, read: _Reader, result: CheckResult,
                trusted_key: str | None, wacz_public_key: str | None,
                roots: list[x509.Certificate] | None) -> None:
    listing = [i.filename for i in zf.infolist() if not i.is_dir()]
    names = set(listing)
    if len(names) != len(listing):  # zipfile reads the last copy, unzip and others the first
        repeated = sorted(n for n, count in Counter(listing).items() if count > 1)
        result.problems.append(f"{repeated[0]}: in the package more than once (tools disagree "
                               "on which copy it holds)")
    try:
        package_bytes = _member(zf, "datapackage.json")
        package = loads_strict(package_bytes, max_bytes=MAX_MEMBER_BYTES,
                               what="datapackage.json", error=StorageError)
    except (KeyError, ValueError, StorageError) as exc:
        result.problems.append(f"datapackage.json is missing or not JSON: {exc}")
        return
    digests: dict[str, dict[str, str]] = {}
    listed = set()
    for resource in package.get("resources", []):
        name = resource.get("path")
        if name in listed:  # hashed once; a tool may read either entry
            result.problems.append(f"{name}: listed more than once in datapackage.json")
            continue
        listed.add(name)
        if name not in names:
            result.problems.append(f"{name}: listed in datapackage.json but not in the package")
            continue
        if zf.getinfo(name).file_size != resource.get("bytes"):  # not read: it may be a bomb
            result.problems.append(f"{name}: the zip declares another size than "
                                   "datapackage.json")
            continue
        found = _zip_digests(zf, name)
        digests[name] = found
        if f"sha256:{found['sha256']}" != resource.get("hash") or \
                int(found["size"]) != resource.get("bytes"):
            result.problems.append(f"{name}: SHA-256 or size differs from datapackage.json")
    for name in sorted(names - listed - set(_PACKAGE_FILES)):
        result.problems.append(f"{name}: in the package but not listed in datapackage.json")
    _check_digest_file(read, package_bytes, package, result, wacz_public_key, roots)
    try:
        described = read.json(WACZ_DESCRIPTOR)
    except (KeyError, ValueError) as exc:
        result.problems.append(f"not a preserve export ({WACZ_DESCRIPTOR} is missing or not "
                               f"JSON: {exc}): its datapackage hashes were checked, but nothing "
                               "ties its WARC files, index or pages to a proof")
        return
    proven, facts = _check_captures(described, result, trusted_key, read=read,
                                    digests=digests.get, kind="wacz")
    if not isinstance(described, dict) or described.get("format") != EXPORT_FORMAT:
        return
    files = _LogFiles(*(name if name in names else None
                        for name in (CHECKPOINT_MEMBER, TOKEN_MEMBER, KEY_MEMBER)))
    _check_log(described, files, read, facts, result, trusted_key, where=WACZ_DESCRIPTOR,
               size=None, roots=roots, tokens=True)
    result.problems += bind_wacz(zf, fd, proven, package, read, digests)


def _zip_digests(zf: zipfile.ZipFile, name: str) -> dict[str, str]:
    digester = Digester(["sha256", "blake3"])
    with zf.open(name) as handle:
        while block := handle.read(BLOCK_SIZE):
            digester.update(block)
    return {**digester.hexdigests(), "size": str(digester.size)}


def _check_digest_file(read: _Reader, package_bytes: bytes, package: dict[str, Any],
                       result: CheckResult, wacz_public_key: str | None,
                       roots: list[x509.Certificate] | None) -> None:
    try:
        digest = read.json("datapackage-digest.json")
    except (KeyError, ValueError) as exc:
        result.problems.append(f"datapackage-digest.json is missing or not JSON: {exc}")
        return
    digester = Digester(["sha256"])
    digester.update(package_bytes)
    own = "sha256:" + digester.hexdigests()["sha256"]
    if digest.get("hash") != own or digest.get("path") != "datapackage.json":
        result.problems.append("datapackage-digest.json does not hold the hash of "
                               "datapackage.json")
    signed = digest.get("signedData")
    if signed is None:
        if wacz_public_key:
            result.problems.append("the package is not signed, but a WACZ public key was given")
        else:
            result.notes.append("the package is not signed")
        return
    problem = verify_signed_data(signed, own)
    if problem:
        result.problems.append(f"signature: {problem}")
        return
    result.signature = {"public_key": signed.get("publicKey"), "created": signed.get("created"),
                        "software": signed.get("software"), "timestamp": None}
    if wacz_public_key and _public_key_der(str(signed.get("publicKey") or "")) != \
            _public_key_der(wacz_public_key):
        result.problems.append("the package is signed by another key than the one given")
    elif not wacz_public_key:
        result.notes.append(f"signed by public key {signed.get('publicKey')}: compare it with "
                            "the key its author published (--wacz-public-key)")
    if signed.get("created") != package.get("created"):
        result.problems.append("signedData.created differs from datapackage.json created")
    if "timeSignature" in signed:
        _check_time_signature(signed, result, roots)


def _public_key_der(text: str) -> bytes | None:
    """A public key given as base64 of its DER (the WACZ's ``publicKey``) or as PEM, as DER;
    None when it is neither (then it equals no key)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            return key.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64decode(text, validate=True) or None
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        return None


def _check_time_signature(signed: dict[str, Any], result: CheckResult,
                          roots: list[x509.Certificate] | None) -> None:
    try:
        token = base64.b64decode(signed["timeSignature"], validate=True)
        when = timestamp_time(token).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, binascii.Error, PreserveError) as exc:
        result.problems.append(f"timeSignature is not an RFC 3161 token: {exc}")
        return
    assert result.signature is not None
    result.signature["timestamp"] = when
    if roots is None:
        result.notes.append(f"the signature was timestamped at {when} (TSA not checked: "
                            "give --tsa-roots)")
        return
    problem = verify_timestamp(str(signed["signature"]).encode("ascii"), token,
                               roots)
    if problem:
        result.problems.append(f"timeSignature: {problem}")
    else:
        result.notes.append(f"the signature was timestamped at {when} by a trusted TSA")


# --- the descriptor and the captures (both kinds) ------------------------------------------------


def _check_captures(described: Any, result: CheckResult, trusted_key: str | None, *,
                    read: Callable[[Any], bytes | None], digests: Any | None,
                    kind: str) -> tuple[list[Proven], list[_ProofFacts]]:
    """Check each capture the descriptor lists; ``digests`` (name -> SHA-256/BLAKE3/size)
    checks WARC files and text objects too (a bag leaves that to the archive audit). Returns
    the captures whose manifest was read, with it, and what their proofs say of the log.
    Each manifest and proof is read for one capture only."""
    proven: list[Proven] = []
    facts: list[_ProofFacts] = []
    if not isinstance(described, dict) or described.get("format") != EXPORT_FORMAT:
        result.problems.append(f"the export descriptor is not {EXPORT_FORMAT}")
        return proven, facts
    where_described = WACZ_DESCRIPTOR if kind == "wacz" else f"data/{DESCRIPTOR_NAME}"
    result.problems += _descriptor_fields(described, kind, where_described)
    result.partial = bool(described.get("partial"))
    used: set[str] = set()
    for capture in described.get("captures", []):
        capture_id = capture.get("capture_id")
        result.captures.append(capture_id)
        where = f"capture {capture_id}"
        manifest_at = capture.get("manifest", {}).get("path")
        proof_path = capture.get("proof")
        again = next((p for p in (manifest_at, proof_path) if p in used), None)
        if again is not None:
            result.problems.append(f"{where}: {again} is another capture's in the descriptor")
            continue
        used.update(p for p in (manifest_at, proof_path) if isinstance(p, str))
        data = read(manifest_at)
        if data is None:
            result.problems.append(f"{where}: manifest {manifest_at} is missing")
            continue
        digester = Digester(["sha256"])
        digester.update(data)
        if digester.hexdigests()["sha256"] != capture["manifest"].get("sha256"):
            result.problems.append(f"{where}: the manifest is not the one the export describes")
        try:
            manifest = parse_manifest(data)
        except PreserveError as exc:
            result.problems.append(f"{where}: invalid manifest: {exc}")
            continue
        result.problems += _described_capture(capture, manifest, data, kind)
        if digests is not None:
            _check_files(capture, manifest, result, digests)
        found = _check_proof(capture, data, result, trusted_key, read)
        if found is not None:
            facts.append(found)
        proven.append((capture, manifest))
    if trusted_key is None and any(c.get("proof") for c in described.get("captures", [])):
        result.notes.append("the proofs were checked against the archive key carried in the "
                            "package; give --trusted-key with a copy obtained elsewhere")
    return proven, facts


def _fields(where: str, value: Any, expected: frozenset[str]) -> list[str]:
    """``value`` must be an object with exactly the fields preserve's export writes."""
    if not isinstance(value, dict):
        return [f"{where}: not a JSON object"]
    problems = []
    if expected - value.keys():
        problems.append(f"{where}: lacks {', '.join(sorted(expected - value.keys()))}")
    if value.keys() - expected:
        problems.append(f"{where}: holds {', '.join(sorted(value.keys() - expected))}, which "
                        "preserve's export does not write")
    return problems


def _descriptor_fields(described: dict[str, Any], kind: str, where: str) -> list[str]:
    """The descriptor's own fields: the exporter's, and ``package`` saying what it is in."""
    problems = _fields(where, described, _DESCRIPTOR_FIELDS)
    log_fields = _LOG_FIELDS | {"log"} if kind == "bagit" else _LOG_FIELDS
    problems += _fields(f"{where}: log", described.get("log"), log_fields)
    if described.get("package") != kind:
        problems.append(f"{where}: says it describes a {described.get('package')!r} package, "
                        f"not this {kind}")
    if not isinstance(described.get("captures"), list):
        problems.append(f"{where}: captures is not a list")
    return problems


def _derived_paths(capture: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    """Where a bag's exporter puts each file of the capture: as in the archive."""
    return {"warc": manifest.warc.path, "manifest": manifest_path(manifest.capture_id),
            "text": manifest.text.path if manifest.text else None,
            "comments": manifest.comments.path if manifest.comments else None,
            "proof": f"proofs/{manifest.capture_id}.json" if capture.get("proof") else None}


def _described_capture(capture: dict[str, Any], manifest: Manifest, data: bytes,
                       kind: str) -> list[str]:
    """Every field the descriptor gives a capture is what its proven manifest says (a WACZ's
    paths are :mod:`.binding`'s to check, a bag's are checked here)."""
    where = f"capture {manifest.capture_id}"
    problems = _fields(where, capture, _CAPTURE_FIELDS)
    described_manifest, warc = capture.get("manifest"), capture.get("warc")
    problems += _fields(f"{where}: manifest", described_manifest, _MANIFEST_FIELDS)
    problems += _fields(f"{where}: warc", warc, _WARC_FIELDS)
    own = hash_bytes(data)
    expected: dict[str, tuple[Any, Any]] = {
        "capture_id": (capture.get("capture_id"), manifest.capture_id),
        "requested_url": (capture.get("requested_url"), manifest.requested_url),
        "final_url": (capture.get("final_url"), manifest.final_url),
        "started": (capture.get("started"), manifest.started),
        "manifest BLAKE3 and size": (
            (described_manifest.get("blake3"), described_manifest.get("size"))
            if isinstance(described_manifest, dict) else None, (own.blake3, own.size)),
        "warc SHA-256 and size": ((warc.get("sha256"), warc.get("size"))
                                  if isinstance(warc, dict) else None,
                                  (manifest.warc.sha256, manifest.warc.size)),
        "proof_problem": (capture.get("proof_problem") is None, bool(capture.get("proof"))),
    }
    if kind == "bagit":
        stated = {"warc": warc.get("path") if isinstance(warc, dict) else None,
                  "manifest": described_manifest.get("path")
                  if isinstance(described_manifest, dict) else None,
                  "text": capture.get("text"), "comments": capture.get("comments"),
                  "proof": capture.get("proof")}
        for name, path in _derived_paths(capture, manifest).items():
            expected[f"{name} path"] = (stated[name], path)
    for name, (stated_value, value) in expected.items():
        if stated_value != value:
            problems.append(f"{where}: the descriptor's {name} is not what its proven manifest "
                            "says")
    return problems


def _check_files(capture: dict[str, Any], manifest: Manifest, result: CheckResult,
                 digests: Any) -> None:
    where = f"capture {capture.get('capture_id')}"
    warc = digests(capture.get("warc", {}).get("path"))
    if warc is None:
        result.problems.append(f"{where}: WARC file missing")
    elif (warc["sha256"], warc["blake3"], int(warc["size"])) != \
            (manifest.warc.sha256, manifest.warc.blake3, manifest.warc.size):
        result.problems.append(f"{where}: the WARC file does not match its manifest")
    for kind, ref in (("text", manifest.text), ("comments", manifest.comments)):
        if ref is None:
            continue
        found = digests(capture.get(kind))
        if found is None or found["blake3"] != ref.blake3:
            result.problems.append(f"{where}: the {kind} object is missing or does not "
                                   "match its manifest")


def _check_proof(capture: dict[str, Any], manifest_bytes: bytes, result: CheckResult,
                 trusted_key: str | None,
                 read: Callable[[Any], bytes | None]) -> _ProofFacts | None:
    """Check the capture's proof bundle; return what it says of the log (None: no bundle)."""
    where = f"capture {capture.get('capture_id')}"
    proof_path = capture.get("proof")
    if not proof_path:
        why = f"no inclusion proof ({capture.get('proof_problem')})"
        if trusted_key is not None:  # the anchor is a requirement: nothing ties it to the key
            result.problems.append(f"{where}: {why}, so it cannot be checked against the "
                                   "trusted key")
        else:
            result.notes.append(f"{where}: {why}")
        return None
    raw = read(proof_path)
    if raw is None:
        result.problems.append(f"{where}: proof {proof_path} is missing")
        return None
    try:
        bundle = loads_strict(raw, max_bytes=MAX_MEMBER_BYTES, what=str(proof_path))
        carried = base64.b64decode(bundle["manifest"]["base64"])
    except (ValueError, KeyError, TypeError, binascii.Error, StorageError) as exc:
        result.problems.append(f"{where}: unreadable proof: {exc}")
        return None
    if carried != manifest_bytes:
        result.problems.append(f"{where}: the proof is for other manifest bytes")
    for problem in log.check_proof(bundle, trusted_key):
        result.problems.append(f"{where}: proof: {problem}")
    leaf = bundle.get("leaf")
    return _ProofFacts(str(proof_path), bundle.get("checkpoint"), bundle.get("verifier_key"),
                       leaf.get("index") if isinstance(leaf, dict) else None)


# --- the log files (both kinds) ------------------------------------------------------------------


def _check_log(described: dict[str, Any], files: _LogFiles, read: Callable[[Any], bytes | None],
               facts: list[_ProofFacts], result: CheckResult, trusted_key: str | None, *,
               where: str, size: int | None, roots: list[x509.Certificate] | None,
               tokens: bool) -> None:
    """The log files the package holds, whatever the descriptor says: the descriptor's
    ``log`` names exactly them; the key (``files.key``) is the one every proof verifies with
    and the trusted key; the checkpoint is the one every proof leads to, verifies with that
    key and has the descriptor's ``checkpoint_size``; a token stamps it (checked against
    ``roots`` when ``tokens``). ``size``: the log's size in the package (a bag's), if known."""
    stated = described.get("log")
    stated = stated if isinstance(stated, dict) else {}
    for name, path in (("checkpoint", files.checkpoint), ("timestamp", files.timestamp),
                       ("key", files.key)):
        if stated.get(name) != path:
            result.problems.append(f"{where}: log.{name} is {stated.get(name)!r}, but the "
                                   f"package holds {path!r}")
    key_text, verifier = _log_key(files.key, read, result)
    if trusted_key is not None and files.key is not None and \
            _same_key(key_text, trusted_key) is False:
        result.problems.append(f"{files.key}: is not the trusted key")
    if stated.get("verifier_key") != (verifier.to_text() if verifier is not None else None):
        result.problems.append(f"{where}: log.verifier_key is not the key {files.key} holds")
    note = read(files.checkpoint) if files.checkpoint is not None else None
    for found in facts:
        if note is None:
            result.problems.append(f"{found.path}: leads to a checkpoint the package does not "
                                   "hold")
        elif found.checkpoint != note.decode("utf-8", "replace"):
            result.problems.append(f"{found.path}: leads to another checkpoint than "
                                   f"{files.checkpoint}")
        if key_text is None:
            result.problems.append(f"{found.path}: verifies with a key the package does not "
                                   "hold")
        elif _same_key(key_text, found.verifier_key) is not True:
            result.problems.append(f"{files.key}: is not the key {found.path} verifies with")
    checkpoint_size = _checkpoint_size(files.checkpoint, note, verifier, result)
    if stated.get("checkpoint_size") != checkpoint_size:
        result.problems.append(f"{where}: log.checkpoint_size is not the size of the "
                               "checkpoint the package holds")
    result.problems += _log_size(stated.get("size"), size, checkpoint_size, facts, files,
                                 where)
    if files.timestamp is not None and tokens:
        token = read(files.timestamp)
        if note is None or token is None:
            result.problems.append(f"{files.timestamp}: a token with no checkpoint to stamp")
        else:
            _check_checkpoint_token(files.timestamp, token, note, result, roots)


def _log_key(path: str | None, read: Callable[[Any], bytes | None],
             result: CheckResult) -> tuple[str | None, log.Verifier | None]:
    """The key file's text and the verifier it holds (None when it is absent or invalid)."""
    raw = read(path) if path is not None else None
    if raw is None:
        return None, None
    text = raw.decode("utf-8", "replace").strip()
    try:
        return text, log.parse_verifier_key(text)
    except PreserveError as exc:
        result.problems.append(f"{path}: not a verifier key: {exc}")
        return text, None


def _same_key(text: str | None, other: Any) -> bool | None:
    """Whether two verifier key strings name the same key (None: one of them is none)."""
    if not isinstance(text, str) or not isinstance(other, str):
        return None
    try:
        return bool(log.parse_verifier_key(text) == log.parse_verifier_key(other.strip()))
    except PreserveError:
        return text == other.strip()


def _checkpoint_size(path: str | None, note: bytes | None, verifier: log.Verifier | None,
                     result: CheckResult) -> int | None:
    """The size of the checkpoint the package holds, verified with its key (None: none)."""
    if path is None or note is None:
        return None
    if verifier is None:
        result.problems.append(f"{path}: no valid key in the package verifies it")
        return None
    try:
        return log.verify_checkpoint(note.decode("utf-8"), verifier, origin=verifier.name).size
    except (UnicodeDecodeError, PreserveError) as exc:
        result.problems.append(f"{path}: does not verify with the package's key: {exc}")
        return None


def _log_size(stated: Any, size: int | None, checkpoint_size: int | None,
              facts: list[_ProofFacts], files: _LogFiles, where: str) -> list[str]:
    """``log.size``: the log's own size when the package holds it (a bag); otherwise (a WACZ)
    at least what the checkpoint and proofs show, and null only for an archive without a log."""
    if size is not None:
        return [] if stated == size else [f"{where}: log.size is not the size of the log "
                                          "the package holds"]
    if stated is None:
        if files.key is None and files.checkpoint is None and not facts:
            return []
        return [f"{where}: log.size is null, but the package holds log files"]
    least = max([checkpoint_size or 0] + [f.leaf_index + 1 for f in facts
                                          if isinstance(f.leaf_index, int)])
    if not isinstance(stated, int) or isinstance(stated, bool) or stated < least:
        return [f"{where}: log.size {stated!r} is less than the log the proofs show"]
    return []


def _check_checkpoint_token(path: str, token: bytes, note: bytes, result: CheckResult,
                            roots: list[x509.Certificate] | None) -> None:
    try:
        when = timestamp_time(token).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, PreserveError) as exc:
        result.problems.append(f"{path}: not an RFC 3161 token: {exc}")
        return
    if roots is None:
        result.notes.append(f"{path}: the checkpoint was timestamped at {when} (TSA "
                            "not checked: give --tsa-roots)")
        return
    problem = verify_timestamp(note, token, roots)
    if problem:
        result.problems.append(f"{path}: {problem}")
    else:
        result.notes.append(f"{path}: the checkpoint was timestamped at {when} by a "
                            "trusted TSA")


# --- BagIt -------------------------------------------------------------------------------------


def check_bag(path: Path, *, trusted_key: str | None = None,
              tsa_roots: Path | None = None) -> CheckResult:
    bag = Path(path)
    result = CheckResult(bag, "bagit")
    payload = _check_bag_structure(bag, result)
    if payload is None:
        return result
    data = bag / "data"
    try:
        described = loads_strict(read_regular(data / DESCRIPTOR_NAME, MAX_MEMBER_BYTES),
                                 max_bytes=MAX_MEMBER_BYTES, what=DESCRIPTOR_NAME)
        if not isinstance(described, dict):
            raise StorageError("not a JSON object")
    except StorageError as exc:
        result.problems.append(f"data/{DESCRIPTOR_NAME} is missing or not JSON: {exc}")
        return result

    def read(name: Any) -> bytes | None:
        inside = _inside(data, name) if isinstance(name, str) else None
        try:
            return read_regular(inside, MAX_MEMBER_BYTES) if inside else None
        except StorageError:
            return None

    try:
        # WARC files and text objects are re-hashed by the archive audit below (E2xx, E4xx).
        proven, facts = _check_captures(described, result, trusted_key, read=read,
                                        digests=None, kind="bagit")
        if described.get("format") == EXPORT_FORMAT:
            _check_log(described, _bag_log_files(payload), read, facts, result, trusted_key,
                       where=f"data/{DESCRIPTOR_NAME}", size=_bag_log_size(data), roots=None,
                       tokens=False)  # the audit checks the tokens (against tsa_roots)
            result.problems += _unexpected_payload(payload, described, proven)
        _audit(data, described, result, trusted_key, tsa_roots)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        result.problems.append(f"data/{DESCRIPTOR_NAME} is not of the expected shape: "
                               f"{type(exc).__name__}: {exc}")
    return result


def _bag_log_files(payload: set[str]) -> _LogFiles:
    """The log files of a bag's copied log (paths below ``data/``): its key, the newest
    checkpoint (the one the exporter chose; proofs lead to it) and that checkpoint's token."""
    inner = {rel.removeprefix("data/") for rel in payload}
    directory = f"{_BAG_LOG}/checkpoints/"
    names = sorted(rel.removeprefix(directory) for rel in inner if rel.startswith(directory))
    newest = next((n for n in reversed(names) if CHECKPOINT_NAME.match(n)), None)
    checkpoint = f"{directory}{newest}" if newest is not None else None
    token = checkpoint.removesuffix(".txt") + ".tsr" if checkpoint is not None else None
    key = f"{_BAG_LOG}/key.pub"
    return _LogFiles(checkpoint, token if token in inner else None,
                     key if key in inner else None)


def _bag_log_size(data: Path) -> int | None:
    """The size of the bag's copied log (its ``head.json``), None when unreadable."""
    try:
        head = loads_strict(read_regular(data / _BAG_LOG / "head.json", 4096),
                            max_bytes=4096, what="head.json")
    except StorageError:
        return None
    size = head.get("size") if isinstance(head, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _unexpected_payload(payload: set[str], described: dict[str, Any],
                        proven: list[Proven]) -> list[str]:
    """Payload files the exporter does not write for the proven captures: anything but their
    files, the descriptor (and its signature, in a partial bag) and the copied log's files."""
    expected = {DESCRIPTOR_NAME} | ({SIGNATURE} if described.get("partial") is True else set())
    for capture, manifest in proven:
        expected.update(p for p in _derived_paths(capture, manifest).values() if p)
    problems = []
    for rel in sorted(payload):
        inner = rel.removeprefix("data/")
        if inner in expected or _BAG_LOG_FILE.match(inner):
            continue
        what = "a WARC file no proven capture names" if inner.startswith("archive/warc/") \
            else "a file preserve's export does not write for these captures"
        problems.append(f"{rel}: {what}")
    return problems


def _inside(base: Path, rel: str) -> Path | None:
    """``base / rel`` when ``rel`` is a relative path that stays inside ``base`` (no ``..``,
    no absolute path, no symlinked directory leading out); None otherwise."""
    candidate = Path(rel)
    if not rel or candidate.is_absolute() or ".." in candidate.parts:
        return None
    path = base / candidate
    try:
        if not path.parent.resolve().is_relative_to(base.resolve()):
            return None
    except OSError:
        return None
    return path


def _check_bag_structure(bag: Path, result: CheckResult) -> set[str] | None:
    """The BagIt checks; the payload (paths below the bag), or None when it is no bag."""
    try:
        declaration = read_text(bag / "bagit.txt", MAX_MEMBER_BYTES, what="bagit.txt")
    except StorageError as exc:
        result.problems.append(f"not a bag: bagit.txt unreadable: {exc}")
        return None
    if "BagIt-Version: 1.0" not in declaration:
        result.problems.append("bagit.txt does not declare BagIt-Version 1.0")
    # everything but directories: a FIFO, device or symlink in the payload is a problem too
    payload = {p.relative_to(bag).as_posix() for p, mode, _depth in walk_tree(bag / "data")
               if not stat.S_ISDIR(mode)}
    manifests: dict[str, dict[str, str]] = {}
    for name in ALGORITHMS:
        listed = _read_manifest(bag / f"manifest-{name}.txt", result)
        if listed is None:
            continue
        manifests[name] = listed
        for rel in sorted(payload - listed.keys()):
            hint = (" (the lock file 'preserve verify' leaves in an archive root: delete it, "
                    "or run verify on a copy of the bag)") if rel == "data/archive/.lock" else ""
            result.problems.append(f"{rel}: payload file not in manifest-{name}.txt{hint}")
        for rel in sorted(listed.keys() - payload):
            result.problems.append(f"{rel}: listed in manifest-{name}.txt but missing")
    octets = 0
    for rel in sorted(payload):
        digester = Digester(ALGORITHMS)
        try:
            with open_binary(bag / rel) as handle:
                while block := handle.read(BLOCK_SIZE):
                    digester.update(block)
        except (StorageError, OSError) as exc:
            result.problems.append(f"{rel}: cannot be read as a regular file: {exc}")
            continue
        octets += digester.size
        for name, value in digester.hexdigests().items():
            expected = manifests.get(name, {}).get(rel)
            if expected is not None and expected != value:
                result.problems.append(f"{rel}: {name} differs from manifest-{name}.txt")
    try:
        info = read_text(bag / "bag-info.txt", MAX_MEMBER_BYTES, what="bag-info.txt")
    except StorageError:
        info = ""
    oxum = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("Payload-Oxum:")), None)
    if oxum is not None and oxum != f"{octets}.{len(payload)}":
        result.problems.append(f"Payload-Oxum {oxum} does not match the payload "
                               f"({octets}.{len(payload)})")
    for name in ALGORITHMS:
        tags = _read_manifest(bag / f"tagmanifest-{name}.txt", result, required=False) or {}
        for rel, value in tags.items():
            digester = Digester([name])
            inside = _inside(bag, rel)
            try:
                if inside is None:
                    raise StorageError(f"{rel} is outside the bag")
                digester.update(read_regular(inside, MAX_MEMBER_BYTES, what=rel))
            except StorageError:
                result.problems.append(f"{rel}: listed in tagmanifest-{name}.txt but missing")
                continue
            if digester.hexdigests()[name] != value:
                result.problems.append(f"{rel}: {name} differs from tagmanifest-{name}.txt")
    return payload


def _read_manifest(path: Path, result: CheckResult, *,
                   required: bool = True) -> dict[str, str] | None:
    if not path.exists() and not path.is_symlink():
        if required:
            result.problems.append(f"{path.name} is missing")
        return None
    try:
        text = read_text(path, MAX_MEMBER_BYTES, what=path.name)
    except StorageError as exc:
        result.problems.append(f"{path.name} unreadable: {exc}")
        return None
    listed = {}
    for line in text.splitlines():
        value, _, rel = line.strip().partition(" ")
        rel = rel.strip().replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
        if rel:
            listed[rel] = value.lower()
    return listed


def _audit(data: Path, described: dict[str, Any], result: CheckResult,
           trusted_key: str | None, tsa_roots: Path | None) -> None:
    report: Report = audit_archive(data)
    audit_log(data, report, trusted_key=trusted_key, tsa_roots=tsa_roots)
    listed = {c.get("capture_id") for c in described.get("captures", [])}
    omitted = 0
    for finding in report.findings:
        code = finding.code.code
        capture_id = Path(finding.path or "").name.removesuffix(".json")
        if code == "E305" and result.partial and capture_id not in listed:
            omitted += 1
            continue
        line = f"{code} {finding.message}" + (f"  {finding.path}" if finding.path else "")
        if finding.severity is Severity.ERROR:
            result.problems.append(f"verify: {line}")
        else:
            result.notes.append(f"verify: {line}")
    if omitted:
        result.notes.append(f"partial export: {omitted} capture(s) of the archive's log are not "
                            "in this bag (expected)")


__all__ = ["CheckResult", "check_bag", "check_package", "check_wacz"]
