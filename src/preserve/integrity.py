"""How an archive uses its integrity log: keys, checkpoints, audit events, proofs.

:mod:`preserve.log` knows Merkle trees, notes and keys; this module knows where an archive
keeps them and when to use them. It finds the signing key (``--key``, ``$PRESERVE_KEY``, or the
default path for the archive's key name), appends and signs under the archive lock (the caller
holds it), and turns log findings into :class:`~preserve.audit.findings.Finding` objects.
It never prints and never decides exit statuses.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve import log
from preserve.errors import SigningKeyError
from preserve.log.storage import HEAD_NAME
from preserve.storage.layout import LOG_DIR

if TYPE_CHECKING:
    from preserve.audit.findings import Report
    from preserve.log.timestamp import Timestamper

KEY_ENV = "PRESERVE_KEY"
TSA_ENV = "PRESERVE_TSA"


@dataclass(frozen=True)
class KeyInfo:
    """The archive's signing key: where the private half is and the public verifier key."""

    private_path: Path
    verifier_key: str
    created: bool


def default_key_name(root: Path) -> str:
    """``<host>/<archive directory name>``: names the log's origin in checkpoints."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", root.resolve().name) or "archive"
    return f"{host}/{name}"


def init(root: Path, *, key_name: str | None = None, key_path: Path | None = None) -> KeyInfo:
    """Create the log and, unless the archive has one, a signing key for it.

    A new key's private half is written outside the archive (``key_path`` or the default
    config path); ``key_path`` naming an existing key file installs that key instead.
    """
    verifier_file = log.log_dir(root) / "key.pub"
    if verifier_file.exists():
        verifier = log.read_verifier(root)
        path = key_path or log.default_key_path(verifier.name)
        if key_path is not None and log.load_signer(key_path).verifier != verifier:
            raise SigningKeyError(f"{key_path} is not this archive's key ({verifier.to_text()})")
        log.init_log(root)
        return KeyInfo(path, verifier.to_text(), created=False)
    if key_path is not None and key_path.exists():
        signer = log.load_signer(key_path)
        log.init_log(root, signer.verifier)
        return KeyInfo(key_path, signer.verifier.to_text(), created=False)
    path, verifier = log.generate_key(key_name or default_key_name(root), key_path,
                                      archive_root=root)
    log.init_log(root, verifier)
    return KeyInfo(path, verifier.to_text(), created=True)


def find_signer(root: Path, key_path: Path | None = None) -> log.Signer | None:
    """The archive's signer, or None when the archive has no key or its key is not here."""
    explicit = key_path or (Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else None)
    if explicit is not None:
        return log.load_signer(explicit)
    try:
        verifier = log.read_verifier(root)
    except SigningKeyError:
        return None
    default = log.default_key_path(verifier.name)
    return log.load_signer(default) if default.exists() else None


def timestamper(tsa_url: str | None) -> Timestamper | None:
    url = tsa_url or os.environ.get(TSA_ENV)
    if not url:
        return None
    from preserve.log.timestamp import Timestamper  # noqa: PLC0415 - rfc3161-client

    return Timestamper(url)


def has_log(root: Path) -> bool:
    """Whether the archive has an integrity log (its head file exists)."""
    directory = Path(root) / LOG_DIR  # never write through a symlinked log directory
    return not directory.is_symlink() and (directory / HEAD_NAME).is_file()


def record_capture(root: Path, capture_id: str) -> None:
    """Append the leaf of a just-committed manifest (caller holds the archive lock)."""
    log.record_manifest(root, capture_id)


def checkpoint(root: Path, signer: log.Signer | None, tsa_url: str | None = None) -> Path | None:
    """Sign a checkpoint of the log as it is now; None when no signer is available."""
    if signer is None:
        return None
    return log.write_checkpoint(root, signer, timestamper=timestamper(tsa_url))


def audit_log(
    root: Path,
    report: Report,
    *,
    external_checkpoints: Sequence[Path] = (),
    trusted_key: str | None = None,
    tsa_roots: Path | None = None,
) -> None:
    """Check the log and add its findings to ``report``."""
    from preserve.audit.findings import Code, Finding  # noqa: PLC0415 - start-up time

    check = None
    if tsa_roots:
        from preserve.log.timestamp import (  # noqa: PLC0415 - rfc3161-client
            TimestampChecker,
            load_roots,
        )

        check = TimestampChecker(load_roots(tsa_roots.read_bytes()))
    for item in log.verify_log(root, external_checkpoints=external_checkpoints,
                               trusted_key=trusted_key, timestamp_check=check):
        report.add(Finding(Code.from_code(item.code), item.path, item.message))


def record_audit(root: Path, report: Report) -> int:
    """Append the audit as a PREMIS-style fixity event; returns its leaf index."""
    counts = {
        "manifests": report.stats.manifests_checked,
        "warc_files": report.stats.warc_files_checked,
        "records": report.stats.records_checked,
        "text_objects": report.stats.text_objects_checked,
        "errors": len(report.errors),
        "warnings": len(report.warnings),
    }
    event = log.fixity_event(
        outcome="pass" if report.ok else "fail",
        counts=counts,
        finding_codes=sorted(report.counts()),
        detail="deep" if report.deep else "default",
    )
    return log.record_event(root, event)


def history(root: Path) -> Iterator[dict[str, Any]]:
    """The log's entries in commit order, as JSON-ready rows with a one-line summary."""
    with log.open_log(root, readonly=True) as opened:
        for index, data in opened.iter_entries():
            try:
                entry = log.parse_entry(data)
            except ValueError as exc:
                yield {"index": index, "committed": "?", "type": "invalid",
                       "summary": f"unreadable entry: {exc}"}
                continue
            if isinstance(entry, log.ManifestLeaf):
                yield {"index": index, "committed": entry.committed, "type": "capture",
                       "capture_id": entry.capture_id, "manifest_blake3": entry.blake3,
                       "summary": f"capture {entry.capture_id}  manifest blake3:{entry.blake3}"}
            else:
                outcome = entry.event.get("eventOutcomeInformation", {})
                detail = outcome.get("eventOutcomeDetail", {})
                counts = detail.get("counts", {})
                codes = ",".join(detail.get("findingCodes", [])) or "-"
                yield {"index": index, "committed": entry.committed, "type": "audit",
                       "event": dict(entry.event),
                       "summary": f"audit   {outcome.get('eventOutcome')}  "
                                  f"{counts.get('manifests', 0)} manifests  "
                                  f"{counts.get('errors', 0)} errors  codes {codes}"}
