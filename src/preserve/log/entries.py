"""The leaf entries of the integrity log: canonical JSON bytes, one leaf per fact.

Four kinds of leaf, in commit order:

- ``manifest``: ``{"capture_id", "captured", "committed", "manifest": {"blake3", "path",
  "sha256", "size"}, "type": "manifest", "v": 1}`` (one per committed manifest; ``captured`` is
  the manifest's ``started`` time, ``committed`` when it was logged)
- ``import``: the same fields with ``"type": "import"``: a manifest of a page imported from a
  WARC or WACZ file another tool wrote (``preserve import``). preserve vouches for when it
  received the file, not for what the file claims; ``captured`` is the receipt time.
  :class:`ImportLeaf` is a :class:`ManifestLeaf` (it logs its manifest the same way), so code
  that handles manifest leaves handles it; signing tells them apart (an import leaf needs an
  ``import`` commit record, a manifest leaf a ``capture`` one).
- ``adoption``: the same fields plus ``"operator"`` and ``"reason"``, ``"type": "adoption"``:
  an operator vouched, with the archive key, for a manifest that preserve did not commit
  itself (planted, foreign, or captured without the key). Never written by capture or repair.
- ``audit``: ``{"committed", "event": {...PREMIS-style event...}, "type": "audit", "v": 1}``,
  plus ``"signature"`` when the verify that ran was the key holder's: ``"<key name>
  <base64(key id ‖ Ed25519 signature)>"`` over :func:`audit_signing_message` of the leaf's
  bytes without it. An audit leaf without one is a claim (anyone who can write the log can
  append it); a signed one is the key holder's statement that it ran that audit and found
  that outcome.

Canonical JSON: keys sorted, separators ``,`` and ``:``, ASCII only (``\\uXXXX`` escapes), no
NaN, UTF-8 bytes, no trailing newline. The leaf hash is over these exact bytes, so anyone can
recompute it; :func:`parse_entry` rejects bytes that are not in canonical form.
Times are RFC 3339 UTC with ``Z`` and microseconds. This module does not touch the log files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LogError, ManifestError
from ..hashing import Digests, hash_bytes
from ..safe_io import loads_strict, read_regular

if TYPE_CHECKING:
    from .keys import Signer, Verifier

ENTRY_VERSION = 1
CAPTURE_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[a-z2-7]{10}\Z")
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
#: a key name (no space, no '+') and base64 of key id (4 bytes) ‖ Ed25519 signature (64)
_AUDIT_SIGNATURE = re.compile(r"^[^\s+]{1,256} [A-Za-z0-9+/]{91}=\Z")
MANIFEST_DIR = "manifests"
#: Manifests are read whole; larger files are refused (the manifest parser's own limit).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (see the module docstring)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with ``Z`` and microseconds."""
    if when.tzinfo is None:
        raise ValueError("a log time must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or offset); raise ValueError if it has no zone."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return when


#: How far a leaf's commit time may lie ahead of the reader's clock (machines sharing an
#: archive disagree a little). A leaf from further ahead is refused: it would make every
#: honest leaf after it look back-dated, for good once a checkpoint covered it.
MAX_CLOCK_SKEW = timedelta(minutes=10)
#: How far ahead of this clock a leaf may be dated and still be signed over (the committer
#: and the signer may be different machines of one cluster); verify warns beyond it (W311).
SIGNING_SKEW = timedelta(seconds=5)


def commit_time_problem(index: int, committed: str, previous: datetime | None,
                        now: datetime) -> str | None:
    """Why leaf ``index``'s commit time cannot be right, or None: before ``previous`` (the
    latest commit time of the leaves before it: back-dated, or a clock jump back), or ahead of
    ``now`` by more than :data:`MAX_CLOCK_SKEW` (from the future). ValueError if malformed."""
    when = parse_time(committed)
    if previous is not None and when < previous:
        return f"leaf {index} committed {committed}, before the previous leaf"
    if when > now + MAX_CLOCK_SKEW:
        return (f"leaf {index} committed {committed}, in the future (this clock says "
                f"{now.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})")
    return None


def utc_now() -> str:
    return format_time(datetime.now(UTC))


def manifest_path(capture_id: str) -> str:
    """The archive-relative path of a capture's manifest."""
    if not CAPTURE_ID.match(capture_id):
        raise ValueError(f"invalid capture id {capture_id!r}")
    return f"{MANIFEST_DIR}/{capture_id}.json"


@dataclass(frozen=True, slots=True)
class ManifestLeaf:
    capture_id: str
    path: str
    blake3: str
    sha256: str
    size: int
    captured: str
    committed: str

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "capture_id": self.capture_id,
                "captured": self.captured,
                "committed": self.committed,
                "manifest": {
                    "blake3": self.blake3,
                    "path": self.path,
                    "sha256": self.sha256,
                    "size": self.size,
                },
                "type": "manifest",
                "v": ENTRY_VERSION,
            }
        )


@dataclass(frozen=True, slots=True)
class ImportLeaf(ManifestLeaf):
    """The leaf of a manifest that ``preserve import`` committed (see the module docstring)."""

    @classmethod
    def of(cls, leaf: ManifestLeaf) -> ImportLeaf:
        """The import leaf for the same manifest, times and capture as ``leaf``."""
        return cls(capture_id=leaf.capture_id, path=leaf.path, blake3=leaf.blake3,
                   sha256=leaf.sha256, size=leaf.size, captured=leaf.captured,
                   committed=leaf.committed)

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "capture_id": self.capture_id,
                "captured": self.captured,
                "committed": self.committed,
                "manifest": {
                    "blake3": self.blake3,
                    "path": self.path,
                    "sha256": self.sha256,
                    "size": self.size,
                },
                "type": "import",
                "v": ENTRY_VERSION,
            }
        )


@dataclass(frozen=True, slots=True)
class AuditLeaf:
    """The record of one verify (a PREMIS-style event), signed when the key holder ran it."""

    event: Mapping[str, Any]
    committed: str
    #: ``"<key name> <base64(key id ‖ signature)>"``, or None: a claim nobody signed
    signature: str | None = None

    def unsigned_bytes(self) -> bytes:
        """The leaf's bytes without its signature (what the signature is over)."""
        return canonical_json(
            {"committed": self.committed, "event": dict(self.event), "type": "audit", "v": 1}
        )

    def to_bytes(self) -> bytes:
        if self.signature is None:
            return self.unsigned_bytes()
        return canonical_json({"committed": self.committed, "event": dict(self.event),
                               "signature": self.signature, "type": "audit", "v": 1})

    def signed_by(self, signer: Signer) -> AuditLeaf:
        """This leaf with ``signer``'s signature."""
        raw = signer.sign(audit_signing_message(self.unsigned_bytes()))
        blob = base64.b64encode(signer.key_id + raw).decode("ascii")
        return AuditLeaf(self.event, self.committed, f"{signer.name} {blob}")

    def signature_state(self, verifier: Verifier | None) -> str:
        """``"unsigned"``; ``"signed"`` (by ``verifier``, and it verifies); ``"invalid"``
        (it names ``verifier``'s key and does not verify, or names another key); or
        ``"unchecked"`` (signed, but no key to check it with)."""
        if self.signature is None:
            return "unsigned"
        if verifier is None:
            return "unchecked"
        name, _, blob = self.signature.rpartition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            return "invalid"
        if name != verifier.name or raw[:4] != verifier.key_id or len(raw) != 68:
            return "invalid"
        message = audit_signing_message(self.unsigned_bytes())
        return "signed" if verifier.verify(message, raw[4:]) else "invalid"


def audit_signing_message(unsigned: bytes) -> bytes:
    """What an audit leaf's signature covers: a context line (so no checkpoint, commit record
    or other signed text can pass for it) and the SHA-256 of the leaf's unsigned bytes."""
    return b"preserve audit leaf v1\n" + hashlib.sha256(unsigned).hexdigest().encode() + b"\n"


@dataclass(frozen=True, slots=True)
class AdoptionLeaf:
    """An operator's explicit adoption of a manifest preserve did not commit itself."""

    capture_id: str
    path: str
    blake3: str
    sha256: str
    size: int
    captured: str
    committed: str
    operator: str
    reason: str

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "capture_id": self.capture_id,
                "captured": self.captured,
                "committed": self.committed,
                "manifest": {
                    "blake3": self.blake3,
                    "path": self.path,
                    "sha256": self.sha256,
                    "size": self.size,
                },
                "operator": self.operator,
                "reason": self.reason,
                "type": "adoption",
                "v": ENTRY_VERSION,
            }
        )


LogEntry = ManifestLeaf | ImportLeaf | AdoptionLeaf | AuditLeaf
#: Leaves that put a manifest into the log (a capture's own, an import's, or an operator's
#: adoption). An ImportLeaf is also a ManifestLeaf.
ManifestEntry = ManifestLeaf | ImportLeaf | AdoptionLeaf
MAX_ENTRY_DEPTH = 16


def manifest_leaf_for_bytes(data: bytes, committed: str | None = None, *,
                            kind: str = "capture") -> ManifestLeaf:
    """The leaf for a manifest file's exact bytes (capture id and start time read from it);
    ``kind`` is the commit record's kind: ``"import"`` gives an :class:`ImportLeaf`."""
    doc = loads_strict(data, max_bytes=MAX_MANIFEST_BYTES, what="manifest", error=ManifestError)
    capture_id = doc.get("capture_id") if isinstance(doc, dict) else None
    started = doc.get("started") if isinstance(doc, dict) else None
    if not isinstance(capture_id, str) or not CAPTURE_ID.match(capture_id):
        raise ManifestError("manifest has no valid capture_id")
    if not isinstance(started, str):
        raise ManifestError("manifest has no started time")
    return manifest_leaf(capture_id, started, hash_bytes(data), committed, kind=kind)


def manifest_leaf(capture_id: str, started: str, digests: Digests, committed: str | None = None,
                  *, kind: str = "capture") -> ManifestLeaf:
    """The leaf of the manifest of ``capture_id`` started at ``started`` whose exact bytes
    have ``digests`` (what :func:`manifest_leaf_for_bytes` reads from the bytes)."""
    try:
        captured = format_time(parse_time(started))
    except ValueError as exc:
        raise ManifestError(f"manifest started time is invalid: {exc}") from exc
    leaf = ManifestLeaf(
        capture_id=capture_id,
        path=manifest_path(capture_id),
        blake3=digests.blake3,
        sha256=digests.sha256,
        size=digests.size,
        captured=captured,
        committed=committed or utc_now(),
    )
    return ImportLeaf.of(leaf) if kind == "import" else leaf


def manifest_leaf_for_file(path: Path, committed: str | None = None) -> ManifestLeaf:
    """The leaf for a manifest file on disk (manifests are small; read whole)."""
    data = read_regular(path, MAX_MANIFEST_BYTES, what="manifest", error=ManifestError)
    leaf = manifest_leaf_for_bytes(data, committed)
    if path.name != f"{leaf.capture_id}.json":
        raise ManifestError(f"{path.name} does not hold capture {leaf.capture_id}")
    return leaf


def _require(doc: Mapping[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"entry field {key!r} missing or not {kind.__name__}")
    return value


def _manifest_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    capture_id = _require(doc, "capture_id", str)
    captured = _require(doc, "captured", str)
    parse_time(captured)
    m = _require(doc, "manifest", dict)
    fields = {
        "capture_id": capture_id,
        "path": _require(m, "path", str),
        "blake3": _require(m, "blake3", str),
        "sha256": _require(m, "sha256", str),
        "size": _require(m, "size", int),
        "captured": captured,
        "committed": doc["committed"],
    }
    if fields["path"] != manifest_path(capture_id) or set(m) != {"blake3", "path", "sha256",
                                                                  "size"}:
        raise ValueError("manifest entry path does not match its capture id")
    if not (_HEX64.match(fields["blake3"]) and _HEX64.match(fields["sha256"])) \
            or fields["size"] < 0:
        raise ValueError("manifest entry digests or size are malformed")
    return fields


def parse_entry(data: bytes) -> LogEntry:
    """Parse and validate leaf bytes; raise ValueError if malformed or not canonical."""
    try:
        doc = loads_strict(data, max_bytes=1 << 20, max_depth=MAX_ENTRY_DEPTH,
                           what="log entry", error=LogError)
    except LogError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(doc, dict):
        raise ValueError("entry is not a JSON object")
    try:
        canonical = canonical_json(doc)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"entry cannot be canonicalised: {exc}") from exc
    if canonical != data:
        raise ValueError("entry is not in canonical form")
    if doc.get("v") != ENTRY_VERSION:
        raise ValueError(f"unknown entry version {doc.get('v')!r}")
    committed = _require(doc, "committed", str)
    parse_time(committed)
    kind = doc.get("type")
    if kind == "manifest":
        if set(doc) != {"capture_id", "captured", "committed", "manifest", "type", "v"}:
            raise ValueError("manifest entry has unexpected fields")
        return ManifestLeaf(**_manifest_fields(doc))
    if kind == "import":
        if set(doc) != {"capture_id", "captured", "committed", "manifest", "type", "v"}:
            raise ValueError("import entry has unexpected fields")
        return ImportLeaf(**_manifest_fields(doc))
    if kind == "adoption":
        if set(doc) != {"capture_id", "captured", "committed", "manifest", "operator",
                        "reason", "type", "v"}:
            raise ValueError("adoption entry has unexpected fields")
        return AdoptionLeaf(**_manifest_fields(doc), operator=_require(doc, "operator", str),
                            reason=_require(doc, "reason", str))
    if kind == "audit":
        if set(doc) - {"signature"} != {"committed", "event", "type", "v"}:
            raise ValueError("audit entry has unexpected fields")
        signature = doc.get("signature")
        if signature is not None and (not isinstance(signature, str)
                                      or not _AUDIT_SIGNATURE.match(signature)):
            raise ValueError("audit entry signature is malformed")
        return AuditLeaf(_require(doc, "event", dict), committed, signature)
    raise ValueError(f"unknown entry type {kind!r}")
