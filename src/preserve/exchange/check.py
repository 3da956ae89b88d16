"""Check an exported package offline: a WACZ file or a BagIt bag written by ``preserve export``.

WACZ: every zip entry is listed in ``datapackage.json`` and has its SHA-256 and size; the
``datapackage-digest.json`` hash matches; a ``signedData`` signature verifies with its public
key (and equals ``wacz_public_key`` when one is given); a ``timeSignature`` verifies against
``tsa_roots`` when given. Then, per capture listed in ``preserve/export.json``: the manifest's
hashes are the descriptor's, the WARC file and text objects match the manifest (SHA-256 and
BLAKE3), and the proof bundle holds (against ``trusted_key`` when given) for those exact
manifest bytes.

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
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preserve import log
from preserve.audit.findings import Report, Severity
from preserve.audit.verify import verify as audit_archive
from preserve.errors import PreserveError
from preserve.exchange.bagit import ALGORITHMS, DESCRIPTOR_NAME
from preserve.exchange.files import BLOCK_SIZE, Digester
from preserve.exchange.plan import EXPORT_FORMAT
from preserve.exchange.signing import verify_signed_data
from preserve.integrity import audit_log
from preserve.log.timestamp import load_roots, timestamp_time, verify_timestamp
from preserve.storage.manifest import Manifest, parse_manifest

WACZ_DESCRIPTOR = "preserve/export.json"
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
    try:
        with zipfile.ZipFile(path) as zf:
            _check_wacz(zf, result, trusted_key, wacz_public_key, tsa_roots)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        result.problems.append(f"cannot read {path} as a zip file: {exc}")
    return result


def _check_wacz(zf: zipfile.ZipFile, result: CheckResult, trusted_key: str | None,
                wacz_public_key: str | None, tsa_roots: Path | None) -> None:
    names = {i.filename for i in zf.infolist() if not i.is_dir()}
    try:
        package_bytes = zf.read("datapackage.json")
        package = json.loads(package_bytes)
    except (KeyError, ValueError) as exc:
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
        found = _zip_digests(zf, name)
        digests[name] = found
        if f"sha256:{found['sha256']}" != resource.get("hash") or \
                int(found["size"]) != resource.get("bytes"):
            result.problems.append(f"{name}: SHA-256 or size differs from datapackage.json")
    for name in sorted(names - listed - set(_PACKAGE_FILES)):
        result.problems.append(f"{name}: in the package but not listed in datapackage.json")
    _check_digest_file(zf, package_bytes, package, result, wacz_public_key, tsa_roots)
    try:
        described = json.loads(zf.read(WACZ_DESCRIPTOR))
    except (KeyError, ValueError) as exc:
        result.problems.append(f"{WACZ_DESCRIPTOR} is missing or not JSON: {exc}")
        return
    _check_captures(described, result, trusted_key,
                    read=lambda name: zf.read(name) if name in names else None,
                    digests=digests.get)
    checkpoint = described.get("log", {}).get("checkpoint")
    if checkpoint and checkpoint in names:
        note = zf.read(checkpoint).decode("utf-8", errors="replace")
        for capture in described.get("captures", []):
            proof_path = capture.get("proof")
            if proof_path and proof_path in names:
                bundle = json.loads(zf.read(proof_path))
                if bundle.get("checkpoint") != note:
                    result.problems.append(f"{proof_path}: leads to another checkpoint than "
                                           f"{checkpoint}")


def _zip_digests(zf: zipfile.ZipFile, name: str) -> dict[str, str]:
    digester = Digester(["sha256", "blake3"])
    with zf.open(name) as handle:
        while block := handle.read(BLOCK_SIZE):
            digester.update(block)
    return {**digester.hexdigests(), "size": str(digester.size)}


def _check_digest_file(zf: zipfile.ZipFile, package_bytes: bytes, package: dict[str, Any],
                       result: CheckResult, wacz_public_key: str | None,
                       tsa_roots: Path | None) -> None:
    try:
        digest = json.loads(zf.read("datapackage-digest.json"))
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
        _check_time_signature(signed, result, tsa_roots)


def _check_time_signature(signed: dict[str, Any], result: CheckResult,
                          tsa_roots: Path | None) -> None:
    try:
        token = base64.b64decode(signed["timeSignature"], validate=True)
        when = timestamp_time(token).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, binascii.Error, PreserveError) as exc:
        result.problems.append(f"timeSignature is not an RFC 3161 token: {exc}")
        return
    assert result.signature is not None
    result.signature["timestamp"] = when
    if tsa_roots is None:
        result.notes.append(f"the signature was timestamped at {when} (TSA not checked: "
                            "give --tsa-roots)")
        return
    problem = verify_timestamp(str(signed["signature"]).encode("ascii"), token,
                               load_roots(tsa_roots.read_bytes()))
    if problem:
        result.problems.append(f"timeSignature: {problem}")
    else:
        result.notes.append(f"the signature was timestamped at {when} by a trusted TSA")


def _check_captures(described: Any, result: CheckResult, trusted_key: str | None, *,
                    read: Any, digests: Any | None) -> None:
    """Check each capture the descriptor lists; ``digests`` (name -> SHA-256/BLAKE3/size)
    checks WARC files and text objects too (a bag leaves that to the archive audit)."""
    if not isinstance(described, dict) or described.get("format") != EXPORT_FORMAT:
        result.problems.append(f"the export descriptor is not {EXPORT_FORMAT}")
        return
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
    if trusted_key is None and any(c.get("proof") for c in described.get("captures", [])):
        result.notes.append("the proofs were checked against the archive key carried in the "
                            "package; give --trusted-key with a copy obtained elsewhere")


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
        result.notes.append(f"{where}: no inclusion proof ({capture.get('proof_problem')})")
        return
    raw = read(proof_path)
    if raw is None:
        result.problems.append(f"{where}: proof {proof_path} is missing")
        return
    try:
        bundle = json.loads(raw)
        carried = base64.b64decode(bundle["manifest"]["base64"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
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
        described = json.loads((data / DESCRIPTOR_NAME).read_bytes())
    except (OSError, ValueError) as exc:
        result.problems.append(f"data/{DESCRIPTOR_NAME} is missing or not JSON: {exc}")
        return result

    def read(name: str | None) -> bytes | None:
        try:
            return (data / name).read_bytes() if name else None
        except OSError:
            return None

    # WARC files and text objects are re-hashed by the archive audit below (E2xx, E4xx).
    _check_captures(described, result, trusted_key, read=read, digests=None)
    _audit(data, described, result, trusted_key, tsa_roots)
    return result


def _check_bag_structure(bag: Path, result: CheckResult) -> bool:
    try:
        declaration = (bag / "bagit.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result.problems.append(f"not a bag: bagit.txt unreadable: {exc}")
        return False
    if "BagIt-Version: 1.0" not in declaration:
        result.problems.append("bagit.txt does not declare BagIt-Version 1.0")
    payload = {p.relative_to(bag).as_posix() for p in (bag / "data").rglob("*") if p.is_file()}
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
        with (bag / rel).open("rb") as handle:
            while block := handle.read(BLOCK_SIZE):
                digester.update(block)
        octets += digester.size
        for name, value in digester.hexdigests().items():
            expected = manifests.get(name, {}).get(rel)
            if expected is not None and expected != value:
                result.problems.append(f"{rel}: {name} differs from manifest-{name}.txt")
    info = (bag / "bag-info.txt").read_text(encoding="utf-8") if \
        (bag / "bag-info.txt").is_file() else ""
    oxum = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("Payload-Oxum:")), None)
    if oxum is not None and oxum != f"{octets}.{len(payload)}":
        result.problems.append(f"Payload-Oxum {oxum} does not match the payload "
                               f"({octets}.{len(payload)})")
    for name in ALGORITHMS:
        tags = _read_manifest(bag / f"tagmanifest-{name}.txt", result, required=False) or {}
        for rel, value in tags.items():
            digester = Digester([name])
            try:
                digester.update((bag / rel).read_bytes())
            except OSError:
                result.problems.append(f"{rel}: listed in tagmanifest-{name}.txt but missing")
                continue
            if digester.hexdigests()[name] != value:
                result.problems.append(f"{rel}: {name} differs from tagmanifest-{name}.txt")
    return True


def _read_manifest(path: Path, result: CheckResult, *,
                   required: bool = True) -> dict[str, str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            result.problems.append(f"{path.name} is missing")
        return None
    except (OSError, UnicodeDecodeError) as exc:
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
