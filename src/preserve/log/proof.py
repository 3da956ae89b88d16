"""Self-contained proof bundles: "this manifest was in the signed log", checkable offline.

:func:`make_proof` gathers, for one capture: the manifest's exact bytes, its log leaf entry,
the RFC 9162 inclusion proof up to the latest signed checkpoint, that checkpoint, the archive's
verifier key and the WARC digests the manifest lists. :func:`check_proof` re-verifies a bundle
with nothing but the bundle (docs/integrity-log.md shows the same steps with hashlib and
cryptography only). A bundle proves the log's key holder committed to the manifest by the
checkpoint; whether that key is the archive's must be settled out of band (``trusted_key``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import LogError, PreserveError, ProofError, SigningKeyError
from ..hashing import hash_bytes
from ..safe_io import read_regular
from .archive_log import latest_checkpoint, open_log, read_verifier
from .entries import MAX_MANIFEST_BYTES, ManifestLeaf, manifest_path, parse_entry, utc_now
from .keys import Verifier, parse_verifier_key
from .merkle import leaf_hash, verify_inclusion
from .note import NoteError, verify_checkpoint

PROOF_FORMAT = "preserve-proof/1"
_RECORD_FIELDS = ("id", "type", "target_uri", "block_digest", "payload_digest")


def _warc_summary(manifest: Any) -> dict[str, Any]:
    warc = manifest.get("warc") if isinstance(manifest, dict) else None
    if not isinstance(warc, dict):
        return {}
    records = warc.get("records")
    if not isinstance(records, list):
        records = []
    return {
        "path": warc.get("path"),
        "size": warc.get("size"),
        "sha256": warc.get("sha256"),
        "blake3": warc.get("blake3"),
        "records": [{k: r.get(k) for k in _RECORD_FIELDS} for r in records if isinstance(r, dict)],
    }


class ProofLog(Protocol):
    """What a proof needs of an opened log (a local log or an object store's tiles)."""

    def iter_entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]: ...
    def root_hash(self, size: int | None = None) -> bytes: ...
    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]: ...


class ProofSource(Protocol):
    """Where a proof is gathered from: an archive directory or an object-store root."""

    def read_verifier(self) -> Verifier: ...
    def latest_note(self) -> str | None: ...
    def read_manifest(self, rel: str) -> bytes: ...
    def open_log(self) -> AbstractContextManager[ProofLog]: ...


@dataclass(frozen=True, slots=True)
class _LocalSource:
    root: Path

    def read_verifier(self) -> Verifier:
        return read_verifier(self.root)

    def latest_note(self) -> str | None:
        return latest_checkpoint(self.root)

    def read_manifest(self, rel: str) -> bytes:
        return read_regular(self.root / rel, MAX_MANIFEST_BYTES, what="manifest",
                            error=ProofError)

    def open_log(self) -> AbstractContextManager[ProofLog]:
        return open_log(self.root, readonly=True)


def make_proof(root: Path, capture_id: str) -> dict[str, Any]:
    """Build the proof bundle of one capture of the archive directory ``root`` (JSON-ready
    dict); see :func:`build_proof`."""
    return build_proof(_LocalSource(Path(root)), capture_id)


def build_proof(source: ProofSource, capture_id: str) -> dict[str, Any]:
    """Build the proof bundle of one capture (JSON-ready dict) from ``source``.

    Raises :class:`ProofError` if the capture is not logged, its manifest changed, or no
    signed checkpoint covers its leaf yet (write a checkpoint first).
    """
    try:
        verifier = source.read_verifier()
    except SigningKeyError as exc:
        raise ProofError(str(exc)) from exc
    note = source.latest_note()
    if note is None:
        raise ProofError("the archive has no signed checkpoint yet")
    try:
        checkpoint = verify_checkpoint(note, verifier, origin=verifier.name)
    except NoteError as exc:
        raise ProofError(f"the latest checkpoint does not verify: {exc}") from exc
    try:
        manifest_bytes = source.read_manifest(manifest_path(capture_id))
    except (ValueError, PreserveError) as exc:
        raise ProofError(f"no manifest for {capture_id}: {exc}") from exc
    with source.open_log() as log:
        found: tuple[int, bytes] | None = None
        for index, data in log.iter_entries():
            if f'"capture_id":"{capture_id}"'.encode() in data:
                entry = parse_entry(data)
                if isinstance(entry, ManifestLeaf) and entry.capture_id == capture_id:
                    found = (index, data)
                    break
        if found is None:
            raise ProofError(f"capture {capture_id} is not in the log")
        index, data = found
        if index >= checkpoint.size:
            raise ProofError(
                f"leaf {index} is newer than the latest checkpoint (size {checkpoint.size}); "
                "write a checkpoint first"
            )
        if log.root_hash(checkpoint.size) != checkpoint.root_hash:
            raise LogError("the log does not match its latest checkpoint")
        path = log.inclusion_proof(index, checkpoint.size)
    bundle = {
        "format": PROOF_FORMAT,
        "capture_id": capture_id,
        "created": utc_now(),
        "manifest": {
            "path": manifest_path(capture_id),
            "base64": base64.b64encode(manifest_bytes).decode(),
        },
        "leaf": {"index": index, "entry": data.decode("ascii")},
        "inclusion_proof": {
            "leaf_index": index,
            "tree_size": checkpoint.size,
            "hashes": [base64.b64encode(h).decode() for h in path],
        },
        "checkpoint": note,
        "verifier_key": verifier.to_text(),
        "warc": _warc_summary(json.loads(manifest_bytes)),
    }
    problems = check_proof(bundle)
    if problems:
        raise ProofError("; ".join(problems))
    return bundle


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    return base64.b64decode(value, validate=True)


def check_proof(bundle: Any, trusted_key: str | None = None) -> list[str]:
    """Verify a proof bundle offline; return the problems found (empty: the proof holds)."""
    try:
        return _check(bundle, trusted_key)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError, binascii.Error) as exc:
        return [f"malformed bundle: {exc!r}"]


def _check(bundle: Any, trusted_key: str | None) -> list[str]:
    problems: list[str] = []
    if bundle.get("format") != PROOF_FORMAT:
        problems.append(f"unknown bundle format {bundle.get('format')!r}")
    capture_id = bundle["capture_id"]
    manifest_bytes = _b64(bundle["manifest"]["base64"])
    entry_bytes = bundle["leaf"]["entry"].encode("ascii")
    entry = parse_entry(entry_bytes)
    if not isinstance(entry, ManifestLeaf):
        return [*problems, "the leaf is not a manifest leaf"]
    digests = hash_bytes(manifest_bytes)
    if (digests.sha256, digests.blake3, digests.size) != (entry.sha256, entry.blake3, entry.size):
        problems.append("the manifest bytes do not match the leaf entry's hashes")
    manifest = json.loads(manifest_bytes)
    if not (entry.capture_id == capture_id == manifest.get("capture_id")):
        problems.append("capture ids of bundle, leaf and manifest differ")
    if bundle.get("warc") != _warc_summary(manifest):
        problems.append("the bundle's WARC digests are not the manifest's")
    try:
        verifier = parse_verifier_key(bundle["verifier_key"])
        if trusted_key is not None and verifier != parse_verifier_key(trusted_key):
            problems.append("the bundle is signed by a key other than the trusted key")
        checkpoint = verify_checkpoint(bundle["checkpoint"], verifier, origin=verifier.name)
    except (SigningKeyError, NoteError) as exc:
        return [*problems, f"checkpoint: {exc}"]
    inclusion = bundle["inclusion_proof"]
    index, size = inclusion["leaf_index"], inclusion["tree_size"]
    if not all(type(n) is int for n in (index, size, bundle["leaf"]["index"])):
        return [*problems, "malformed bundle: leaf indexes and tree sizes are whole numbers"]
    hashes = [_b64(h) for h in inclusion["hashes"]]
    if index != bundle["leaf"]["index"] or size != checkpoint.size:
        problems.append("the inclusion proof is not for this leaf and checkpoint")
    if not verify_inclusion(leaf_hash(entry_bytes), index, size, hashes, checkpoint.root_hash):
        problems.append("the inclusion proof does not lead to the checkpoint's root hash")
    return problems
