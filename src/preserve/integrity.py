"""How an archive uses its integrity log: keys, audits, adoption, the catalog's sync.

:mod:`preserve.log` knows Merkle trees, notes, keys, commit records and proofs; this module
knows where an archive keeps them and when to use them. It finds the signing key (``--key``,
``$PRESERVE_KEY``, or the default path for the archive's key name), installs a new key,
records audits (signing only after an audit without errors, through
:func:`preserve.log.signing.prove_and_sign`), appends adoption leaves, and turns log findings
into :class:`~preserve.audit.findings.Finding` objects. Writers hold the archive lock.
It never prints and never decides exit statuses.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve import log
from preserve.audit.findings import Code, Finding, Report
from preserve.errors import NotProvedError, PreserveError, SigningKeyError
from preserve.log.archive_log import read_checkpoint_file
from preserve.log.entries import (
    AdoptionLeaf,
    AuditLeaf,
    ImportLeaf,
    ManifestLeaf,
    manifest_leaf_for_file,
)
from preserve.log.journal import CommitEntry, write_record
from preserve.log.known_heads import KnownHeads, identity_for
from preserve.log.signing import Signed, prove_and_sign
from preserve.log.storage import has_log as _has_log

if TYPE_CHECKING:  # rfc3161-client and urllib: loaded only where a timestamp is made or read
    from preserve.log.timestamp import Timestamper

KEY_ENV = "PRESERVE_KEY"
TSA_ENV = "PRESERVE_TSA"


@dataclass(frozen=True)
class KeyInfo:
    """The archive's signing key: where the private half is and the public verifier key."""

    private_path: Path
    verifier_key: str
    created: bool


@dataclass(frozen=True)
class PreparedKey:
    """A key ready to be installed in an archive (made or loaded, nothing in the archive yet)."""

    path: Path
    verifier: log.Verifier
    created: bool


@dataclass(frozen=True)
class AuditRecord:
    """What recording an audit did: whether its event was appended, and the checkpoint."""

    recorded: bool = False
    outcome: str | None = None  # "pass" | "fail"
    signed: Signed | None = None
    not_signed: str | None = None
    #: why nothing was recorded although recording was asked for (None: not said)
    not_recorded: str | None = None


def default_key_name(root: Path) -> str:
    """``<host>/<archive directory name>-<random>``: the log's origin in checkpoints, unique
    even for two archives with the same directory name on one host."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", Path(root).resolve().name) or "archive"
    return f"{host}/{name}-{secrets.token_hex(3)}"


def prepare_key(root: Path, *, key_name: str | None = None,
                key_path: Path | None = None) -> PreparedKey:
    """The key an archive gets from ``preserve init``, decided before the archive is touched:
    the one it has (``key.pub``; ``key_path`` must then be that key), the one in ``key_path``,
    or a new one (private half outside the archive). Raises SigningKeyError."""
    verifier_file = log.log_dir(root) / "key.pub"
    if verifier_file.exists() or verifier_file.is_symlink():
        verifier = log.read_verifier(root)
        if key_path is not None and log.load_signer(key_path).verifier != verifier:
            raise SigningKeyError(f"{key_path} is not this archive's key ({verifier.to_text()})")
        return PreparedKey(key_path or log.default_key_path(verifier.name), verifier, False)
    if key_path is not None and key_path.exists():
        signer = log.load_signer(key_path)
        return PreparedKey(key_path, signer.verifier, False)
    path, verifier = log.generate_key(key_name or default_key_name(root), key_path,
                                      archive_root=root)
    return PreparedKey(path, verifier, True)


def install_key(root: Path, key: PreparedKey, *, heads: KnownHeads | None,
                timestamper: Timestamper | None = None) -> KeyInfo:
    """Finish ``preserve init`` (the log already holds ``key.pub``): an existing history that
    was never signed is checked and signed as adopted at initialisation (caller holds the
    lock). Raises NotProvedError if a manifest does not match its leaf."""
    signer = log.load_signer(key.path) if key.path.exists() else None
    if signer is not None and signer.verifier == key.verifier:
        with log.open_log(root, readonly=True) as opened:
            size = opened.size
        if size and log.latest_checkpoint(root) is None:
            prove_and_sign(root, signer, heads=heads, timestamper=timestamper,
                           adopt_history=True)
    return KeyInfo(key.path, key.verifier.to_text(), key.created)


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
    return _has_log(root)


def audit_log(
    root: Path,
    report: Report,
    *,
    external_checkpoints: Sequence[Path] = (),
    trusted_key: str | None = None,
    tsa_roots: Path | None = None,
    heads: KnownHeads | None = None,
    anchor_max_age: timedelta | None = None,
    partial_export: bool = True,
) -> None:
    """Check the log and add its findings to ``report`` (``partial_export``: see
    :func:`preserve.log.audit.verify_log`)."""
    check = None
    if tsa_roots is not None:
        from preserve.log.timestamp import (  # noqa: PLC0415 - rfc3161-client
            TimestampChecker,
            load_roots_file,
        )

        check = TimestampChecker(load_roots_file(tsa_roots))
    for item in log.verify_log(root, external_checkpoints=external_checkpoints,
                               trusted_key=trusted_key, timestamp_check=check, heads=heads,
                               anchor_max_age=anchor_max_age, partial_export=partial_export):
        report.add(Finding(Code.from_code(item.code), item.path, item.message))


def archive_errors(root: Path, *, heads: KnownHeads | None) -> list[Finding]:
    """The errors ``preserve verify`` finds in the whole archive now (its default audit:
    every file re-hashed, then the log against its checkpoints and the known head). A
    signing path that is not the capture's own calls it, under the lock, before it signs."""
    from preserve.audit.verify import verify  # noqa: PLC0415 - the audit imports storage

    report = verify(root)
    audit_log(root, report, heads=heads, partial_export=False)
    return report.errors


def not_intact(errors: Sequence[Finding]) -> str:
    """One line: nothing was signed because verify finds ``errors`` in the archive."""
    listed = "; ".join(f"{f.code.code} {f.path}" for f in errors[:5])
    more = f"; {len(errors) - 5} more" if len(errors) > 5 else ""
    return (f"verify finds {len(errors)} error(s) in the archive ({listed}{more}): nothing "
            "was signed; run preserve verify")


def sign_if_intact(root: Path, signer: log.Signer, *, heads: KnownHeads | None,
                   timestamper: Timestamper | None = None) -> Signed:
    """Sign a checkpoint only if the whole archive passes verify's checks, then prove the
    log (:func:`prove_and_sign`). Raises NotProvedError (caller holds the lock)."""
    errors = archive_errors(root, heads=heads)
    if errors:
        raise NotProvedError(not_intact(errors))
    return prove_and_sign(root, signer, heads=heads, timestamper=timestamper)


def record_audit(
    root: Path,
    report: Report,
    *,
    signer: log.Signer | None,
    heads: KnownHeads | None,
    timestamper: Timestamper | None = None,
    trusted_key: str | None = None,
) -> AuditRecord:
    """Append the audit as a PREMIS-style fixity event (pass or fail; signed by ``signer``,
    the key holder who ran it, else a claim); then, only if it passed, prove the log and sign
    a checkpoint (or, without the key, remember the head).
    Nothing is recorded when the archive has no log (caller holds the lock)."""
    if not has_log(root):
        return AuditRecord()
    outcome = "pass" if report.ok else "fail"
    try:
        log.record_event(root, fixity_event_for(report),
                         signer=signer if _is_archive_key(root, signer) else None)
    except (PreserveError, OSError) as exc:
        return AuditRecord(not_recorded=str(exc))
    if not report.ok:
        return AuditRecord(True, outcome, None, "the audit found integrity errors: nothing "
                           "was signed")
    if signer is None:
        if heads is not None and head_may_be_remembered(report):
            remember_head(root, heads, trusted_key)
        return AuditRecord(True, outcome, None, None)
    try:
        signed = prove_and_sign(root, signer, heads=heads, timestamper=timestamper)
    except NotProvedError as exc:
        return AuditRecord(True, outcome, None, f"not signed: {exc}")
    except PreserveError as exc:
        return AuditRecord(True, outcome, None, f"checkpoint not signed: {exc}")
    return AuditRecord(True, outcome, signed, None)


def _is_archive_key(root: Path, signer: log.Signer | None) -> bool:
    """Whether ``signer`` is the archive's own key (an audit leaf signed by another key
    would be reported as a forgery for good)."""
    if signer is None:
        return False
    try:
        return log.read_verifier(root) == signer.verifier
    except PreserveError:
        return False


def fixity_event_for(report: Report) -> dict[str, Any]:
    """The PREMIS-style fixity event that records ``report`` in the log."""
    counts = {
        "manifests": report.stats.manifests_checked,
        "warc_files": report.stats.warc_files_checked,
        "records": report.stats.records_checked,
        "text_objects": report.stats.text_objects_checked,
        "errors": len(report.errors),
        "warnings": len(report.warnings),
    }
    return dict(log.fixity_event(
        outcome="pass" if report.ok else "fail",
        counts=counts,
        finding_codes=sorted(report.counts()),
        detail="deep" if report.deep else "default",
    ))


def head_may_be_remembered(report: Report) -> bool:
    """Whether the log as ``report`` found it may become this operator's known head: intact,
    and no leaf dated ahead of this clock (W311). A known head is a base a later signature
    builds on without checking its leaves again, so it never covers a leaf this clock
    could not have dated."""
    return report.ok and not any(f.code.code == "W311" for f in report.findings)


def remember_head(root: Path, heads: KnownHeads, trusted_key: str | None = None) -> None:
    """After an audit without errors, remember the log's head as this operator's known head
    (for an operator without the key; the key holder's signing does it itself)."""
    try:
        verifier = (log.parse_verifier_key(trusted_key) if trusted_key is not None
                    else log.read_verifier(root))
    except PreserveError:
        verifier = None
    if not has_log(root):
        return
    try:
        with log.open_log(root, readonly=True) as opened:
            heads.advance(identity_for(verifier, root), opened.size, opened.root_hash(), root)
    except (PreserveError, OSError):
        return


def adopt(root: Path, capture_ids: Sequence[str], *, signer: log.Signer, reason: str,
          operator: str) -> None:
    """Append an *adoption* leaf for each capture, after a commit record signed by the key
    (caller holds the lock and has checked the captures)."""
    leaves = []
    entries = []
    for capture_id in capture_ids:
        leaf = manifest_leaf_for_file(root / "manifests" / f"{capture_id}.json")
        adoption = AdoptionLeaf(capture_id=leaf.capture_id, path=leaf.path, blake3=leaf.blake3,
                                sha256=leaf.sha256, size=leaf.size, captured=leaf.captured,
                                committed=leaf.committed, operator=operator, reason=reason)
        leaves.append(adoption.to_bytes())
        entries.append(CommitEntry("adopt", leaf.capture_id, leaf.sha256, leaf.blake3,
                                   leaf.size))
    write_record(root, entries, signer=signer, origin=signer.name)
    log.record_entries(root, leaves)


def anchor_summary(path: Path) -> str:
    """One line about an off-site checkpoint file (for messages)."""
    try:
        text = read_checkpoint_file(path)
    except PreserveError as exc:
        return f"{path}: {exc}"
    lines = text.split("\n")
    return f"{path}: {lines[0]} size {lines[1] if len(lines) > 1 else '?'}"


def history(root: Path) -> Iterator[dict[str, Any]]:
    """The log's entries in commit order, as JSON-ready rows with a one-line summary (audit
    leaves checked against the archive's ``key.pub``, which verify holds to the key you last
    verified it with)."""
    try:
        verifier: log.Verifier | None = log.read_verifier(root)
    except PreserveError:
        verifier = None
    with log.open_log(root, readonly=True) as opened:
        yield from history_rows(opened.iter_entries(), verifier)


#: How ``preserve log`` qualifies an audit leaf, by :meth:`AuditLeaf.signature_state`.
_AUDIT_SIGNATURE_NOTES = {
    "signed": "signed by the archive key",
    "unsigned": "unsigned: a claim, recorded without the archive key",
    "invalid": "FORGED: signed, but not validly by the archive key (E318)",
    "unchecked": "signed; the archive has no key to check it with",
}


def history_rows(entries: Iterable[tuple[int, bytes]],
                 verifier: log.Verifier | None = None) -> Iterator[dict[str, Any]]:
    """JSON-ready rows of ``(index, entry bytes)`` (any log: a directory or tiles); audit
    leaves' signatures are checked with ``verifier``."""
    for index, data in entries:
        try:
            entry = log.parse_entry(data)
        except ValueError as exc:
            yield {"index": index, "committed": "?", "type": "invalid",
                   "summary": f"unreadable entry: {exc}"}
            continue
        if isinstance(entry, ImportLeaf):
            yield {"index": index, "committed": entry.committed, "type": "import",
                   "capture_id": entry.capture_id, "manifest_blake3": entry.blake3,
                   "summary": f"IMPORT  {entry.capture_id}  manifest blake3:{entry.blake3} "
                              "(received from a file another tool wrote)"}
        elif isinstance(entry, ManifestLeaf):
            yield {"index": index, "committed": entry.committed, "type": "capture",
                   "capture_id": entry.capture_id, "manifest_blake3": entry.blake3,
                   "summary": f"capture {entry.capture_id}  manifest blake3:{entry.blake3}"}
        elif isinstance(entry, AdoptionLeaf):
            yield {"index": index, "committed": entry.committed, "type": "adoption",
                   "capture_id": entry.capture_id, "manifest_blake3": entry.blake3,
                   "operator": entry.operator, "reason": entry.reason,
                   "summary": f"ADOPTED {entry.capture_id} by {entry.operator}: "
                              f"{entry.reason}"}
        else:
            yield _audit_row(index, entry, entry.signature_state(verifier))


def _audit_row(index: int, entry: AuditLeaf, signature: str) -> dict[str, Any]:
    outcome = entry.event.get("eventOutcomeInformation", {})
    detail = outcome.get("eventOutcomeDetail", {}) if isinstance(outcome, dict) else {}
    counts = detail.get("counts", {}) if isinstance(detail, dict) else {}
    codes_list = detail.get("findingCodes", []) if isinstance(detail, dict) else []
    codes = ",".join(str(c) for c in codes_list) if isinstance(codes_list, list) else "-"
    if not isinstance(counts, dict):
        counts = {}
    result = outcome.get("eventOutcome") if isinstance(outcome, dict) else None
    return {"index": index, "committed": entry.committed, "type": "audit",
            "event": dict(entry.event), "signature": signature,
            "summary": f"audit   {result}  {counts.get('manifests', 0)} manifests  "
                       f"{counts.get('errors', 0)} errors  codes {codes or '-'}  "
                       f"({_AUDIT_SIGNATURE_NOTES[signature]})"}
