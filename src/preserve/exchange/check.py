"""Check an exported package offline: a WACZ file or a BagIt bag written by ``preserve export``.

WACZ: every zip entry is listed in ``datapackage.json`` and has its SHA-256 and size; the
``datapackage-digest.json`` hash matches; a ``signedData`` signature verifies with its public
key (and equals ``wacz_public_key`` when one is given); a ``timeSignature`` verifies against
``tsa_roots`` when given. Then, per capture listed in ``preserve/export.json``: the manifest's
hashes are the descriptor's, the WARC file and text objects match the manifest (SHA-256 and
BLAKE3), and the proof bundle holds (against ``trusted_key`` when given) for those exact
manifest bytes. Last, the replay files are bound to those captures (:mod:`.binding`): no
member but those the exporter writes for them, the index and pages equal to what the
exporter derives from them, and the log files (key, checkpoint token) checked.

Bag: the BagIt structure (every payload file listed, present and matching both manifests,
Payload-Oxum, tag manifests), then the preserve audit of ``data/`` as an archive root
(:func:`preserve.audit.verify.verify` and the integrity-log audit, read-only: no lock, no audit
event recorded), with the partial-export rule: in a bag whose ``preserve-export.json`` says
``partial``, a log leaf whose manifest is absent (E305) is expected for every capture the
descriptor does not list, and is reported as a note; it is an error for a listed capture. Then
every proof bundle is checked.

Problems are returned as data; nothing here raises for what it finds.
"""

from __future__ import annotations

import base64
import binascii
import stat
import zipfile
import zlib
from collections import Counter
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
from preserve.integrity import audit_log
from preserve.log.timestamp import load_roots_file, timestamp_time, verify_timestamp
from preserve.safe_io import loads_strict, open_binary, read_regular, read_text, walk_tree
from preserve.storage.manifest import Manifest, parse_manifest

WACZ_DESCRIPTOR = "preserve/export.json"
KEY_MEMBER = "log/key.pub"
TOKEN_MEMBER = "log/checkpoint.tsr"
#: Most bytes read into memory from one small package member (JSON, checkpoint, key, text).
MAX_MEMBER_BYTES = 64 * 1024 * 1024
_PACKAGE_FILES = ("datapackage.json", "datapackage-digest.json")


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
        with handle, zipfile.ZipFile(handle) as zf:
            _check_wacz(zf, handle.fileno(), result, trusted_key, wacz_public_key, roots)
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


def _json_member(zf: zipfile.ZipFile, name: str) -> Any:
    try:
        return loads_strict(_member(zf, name), max_bytes=MAX_MEMBER_BYTES, what=name)
    except StorageError as exc:
        raise ValueError(str(exc)) from exc


def _check_wacz(zf: zipfile.ZipFile, fd: int, result: CheckResult, trusted_key: str | None,
                wacz_public_key: str | None, roots: list[x509.Certificate] | None) -> None:
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
    _check_digest_file(zf, package_bytes, package, result, wacz_public_key, roots)
    try:
        described = _json_member(zf, WACZ_DESCRIPTOR)
    except (KeyError, ValueError) as exc:
        result.problems.append(f"not a preserve export ({WACZ_DESCRIPTOR} is missing or not "
                               f"JSON: {exc}): its datapackage hashes were checked, but nothing "
                               "ties its WARC files, index or pages to a proof")
        return

    def read(name: str) -> bytes | None:
        return _member(zf, name) if name in names else None

    proven = _check_captures(described, result, trusted_key, read=read, digests=digests.get)
    if not isinstance(described, dict) or described.get("format") != EXPORT_FORMAT:
        return
    _check_log_files(zf, names, described, result, trusted_key, roots)
    result.problems += bind_wacz(zf, fd, proven, package, read, digests)


def _check_log_files(zf: zipfile.ZipFile, names: set[str], described: dict[str, Any],
                     result: CheckResult, trusted_key: str | None,
                     roots: list[x509.Certificate] | None) -> None:
    """The checkpoint every proof leads to, the key they verify with (``log/key.pub``) and the
    checkpoint's RFC 3161 token (against ``roots`` when given)."""
    checkpoint = described.get("log", {}).get("checkpoint")
    if not (checkpoint and checkpoint in names):
        return
    raw_note = _member(zf, checkpoint)
    note = raw_note.decode("utf-8", errors="replace")
    key = _member(zf, KEY_MEMBER).decode("utf-8", "replace").strip() \
        if KEY_MEMBER in names else None
    for capture in described.get("captures", []):
        proof_path = capture.get("proof")
        if proof_path and proof_path in names:
            bundle = _json_member(zf, proof_path)
            if bundle.get("checkpoint") != note:
                result.problems.append(f"{proof_path}: leads to another checkpoint than "
                                       f"{checkpoint}")
            if key is not None and bundle.get("verifier_key") != key:
                result.problems.append(f"{KEY_MEMBER}: is not the key {proof_path} verifies "
                                       "with")
    if trusted_key is not None and key is not None and key != trusted_key.strip():
        result.problems.append(f"{KEY_MEMBER}: is not the trusted key")
    if TOKEN_MEMBER in names:
        _check_checkpoint_token(_member(zf, TOKEN_MEMBER), raw_note, result, roots)


def _check_checkpoint_token(token: bytes, note: bytes, result: CheckResult,
                            roots: list[x509.Certificate] | None) -> None:
    try:
        when = timestamp_time(token).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, PreserveError) as exc:
        result.problems.append(f"{TOKEN_MEMBER}: not an RFC 3161 token: {exc}")
        return
    if roots is None:
        result.notes.append(f"{TOKEN_MEMBER}: the checkpoint was timestamped at {when} (TSA "
                            "not checked: give --tsa-roots)")
        return
    problem = verify_timestamp(note, token, roots)
    if problem:
        result.problems.append(f"{TOKEN_MEMBER}: {problem}")
    else:
        result.notes.append(f"{TOKEN_MEMBER}: the checkpoint was timestamped at {when} by a "
                            "trusted TSA")


def _zip_digests(zf: zipfile.ZipFile, name: str) -> dict[str, str]:
    digester = Digester(["sha256", "blake3"])
    with zf.open(name) as handle:
        while block := handle.read(BLOCK_SIZE):
            digester.update(block)
    return {**digester.hexdigests(), "size": str(digester.size)}


def _check_digest_file(zf: zipfile.ZipFile, package_bytes: bytes, package: dict[str, Any],
                       result: CheckResult, wacz_public_key: str | None,
                       roots: list[x509.Certificate] | None) -> None:
    try:
        digest = _json_member(zf, "datapackage-digest.json")
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
    if wacz_public_key and signed.get("publicKey") != wacz_public_key.strip():
        result.problems.append("the package is signed by another key than the one given")
    elif not wacz_public_key:
        result.notes.append(f"signed by public key {signed.get('publicKey')}: compare it with "
                            "the key its author published (--wacz-public-key)")
    if signed.get("created") != package.get("created"):
        result.problems.append("signedData.created differs from datapackage.json created")
    if "timeSignature" in signed:
        _check_time_signature(signed, result, roots)


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


def _check_captures(described: Any, result: CheckResult, trusted_key: str | None, *,
                    read: Any, digests: Any | None) -> list[Proven]:
    """Check each capture the descriptor lists; ``digests`` (name -> SHA-256/BLAKE3/size)
    checks WARC files and text objects too (a bag leaves that to the archive audit). Returns
    the captures whose manifest was read, with it."""
    proven: list[Proven] = []
    if not isinstance(described, dict) or described.get("format") != EXPORT_FORMAT:
        result.problems.append(f"the export descriptor is not {EXPORT_FORMAT}")
        return proven
    result.partial = bool(described.get("partial"))
    for capture in described.get("captures", []):
        capture_id = capture.get("capture_id")
        result.captures.append(capture_id)
        where = f"capture {capture_id}"
        manifest_path = capture.get("manifest", {}).get("path")
        data = read(manifest_path)
        if data is None:
            result.problems.append(f"{where}: manifest {manifest_path} is missing")
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
        if digests is not None:
            _check_files(capture, manifest, result, digests)
        _check_proof(capture, data, result, trusted_key, read)
        proven.append((capture, manifest))
    if trusted_key is None and any(c.get("proof") for c in described.get("captures", [])):
        result.notes.append("the proofs were checked against the archive key carried in the "
                            "package; give --trusted-key with a copy obtained elsewhere")
    return proven


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
                 trusted_key: str | None, read: Any) -> None:
    where = f"capture {capture.get('capture_id')}"
    proof_path = capture.get("proof")
    if not proof_path:
        why = f"no inclusion proof ({capture.get('proof_problem')})"
        if trusted_key is not None:  # the anchor is a requirement: nothing ties it to the key
            result.problems.append(f"{where}: {why}, so it cannot be checked against the "
                                   "trusted key")
        else:
            result.notes.append(f"{where}: {why}")
        return
    raw = read(proof_path)
    if raw is None:
        result.problems.append(f"{where}: proof {proof_path} is missing")
        return
    try:
        bundle = loads_strict(raw, max_bytes=MAX_MEMBER_BYTES, what=str(proof_path))
        carried = base64.b64decode(bundle["manifest"]["base64"])
    except (ValueError, KeyError, TypeError, binascii.Error, StorageError) as exc:
        result.problems.append(f"{where}: unreadable proof: {exc}")
        return
    if carried != manifest_bytes:
        result.problems.append(f"{where}: the proof is for other manifest bytes")
    for problem in log.check_proof(bundle, trusted_key):
        result.problems.append(f"{where}: proof: {problem}")


# --- BagIt -------------------------------------------------------------------------------------


def check_bag(path: Path, *, trusted_key: str | None = None,
              tsa_roots: Path | None = None) -> CheckResult:
    bag = Path(path)
    result = CheckResult(bag, "bagit")
    if not _check_bag_structure(bag, result):
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

    def read(name: str | None) -> bytes | None:
        inside = _inside(data, name) if isinstance(name, str) else None
        try:
            return read_regular(inside, MAX_MEMBER_BYTES) if inside else None
        except StorageError:
            return None

    try:
        # WARC files and text objects are re-hashed by the archive audit below (E2xx, E4xx).
        _check_captures(described, result, trusted_key, read=read, digests=None)
        _audit(data, described, result, trusted_key, tsa_roots)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        result.problems.append(f"data/{DESCRIPTOR_NAME} is not of the expected shape: "
                               f"{type(exc).__name__}: {exc}")
    return result


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



def _check_bag_structure(bag: Path, result: CheckResult) -> bool:
    try:
        declaration = read_text(bag / "bagit.txt", MAX_MEMBER_BYTES, what="bagit.txt")
    except StorageError as exc:
        result.problems.append(f"not a bag: bagit.txt unreadable: {exc}")
        return False
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
    return True


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
