"""The integrity log of one archive: where it lives and the writes the archive makes to it.

Layout under ``<root>/manifests/log/``: the Merkle log files (:mod:`preserve.log.storage`),
``key.pub`` (the archive's verifier key, C2SP format, one line), ``checkpoints/<size>-<time>.txt``
(every signed checkpoint ever written, never rewritten; an RFC 3161 token beside one as
``.tsr``), and ``checkpoint`` (a copy of the latest).

Writers must hold the archive lock; this module takes none. It does not verify (see
:mod:`preserve.log.audit`) and never sees a private key except the :class:`Signer` passed in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import LogError, NotFoundError, SigningKeyError, StorageError
from .entries import (
    CAPTURE_ID,
    MANIFEST_DIR,
    AuditLeaf,
    ManifestLeaf,
    format_time,
    manifest_leaf_for_file,
    manifest_path,
    parse_entry,
    utc_now,
)
from .keys import Signer, Verifier, parse_verifier_key
from .note import Checkpoint, sign_checkpoint
from .storage import TransparencyLog, fsync_dir, write_file_atomic

LOG_DIR = Path("manifests") / "log"
KEY_FILE = "key.pub"
CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "checkpoint"
CHECKPOINT_NAME = re.compile(r"^(\d{12})-(\d{8}T\d{6}\d{6}Z)\.txt$")

Timestamper = Callable[[bytes], bytes]
"""Given the signed checkpoint bytes, return an RFC 3161 timestamp token (DER)."""


def log_dir(root: Path) -> Path:
    return Path(root) / LOG_DIR


def init_log(root: Path, verifier: Verifier | None = None) -> None:
    """Create the archive's log if absent and, if given, store its verifier key.

    Idempotent. Refuses to replace a different key already stored (a new key needs a new log).
    Without a key the log still records leaves; checkpoints need one.
    """
    directory = log_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    if verifier is not None:
        key_path = directory / KEY_FILE
        text = verifier.to_text() + "\n"
        if key_path.exists():
            if key_path.read_text(encoding="utf-8") != text:
                raise SigningKeyError(f"{key_path} already holds a different key")
        else:
            write_file_atomic(key_path, text.encode("utf-8"))
    TransparencyLog.open(directory, create=True).close()
    (directory / CHECKPOINT_DIR).mkdir(exist_ok=True)


def read_verifier(root: Path) -> Verifier:
    """The archive's verifier key from ``manifests/log/key.pub``."""
    path = log_dir(root) / KEY_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read the archive's public key {path}: {exc}") from exc
    return parse_verifier_key(text)


def open_log(root: Path, *, readonly: bool = False) -> TransparencyLog:
    """Open the archive's log (it must have been created by :func:`init_log`)."""
    return TransparencyLog.open(log_dir(root), readonly=readonly)


def record_manifest(root: Path, capture_id: str, *, committed: str | None = None) -> int:
    """Append the leaf of a just-committed manifest; return its leaf index."""
    path = Path(root) / manifest_path(capture_id)
    if not path.is_file():
        raise NotFoundError(f"no manifest for {capture_id}")
    entry = manifest_leaf_for_file(path, committed).to_bytes()
    with open_log(root) as log:
        return log.append(entry)


def record_event(root: Path, event: Mapping[str, Any], *, committed: str | None = None) -> int:
    """Append an audit event (see :mod:`preserve.log.events`); return its leaf index."""
    entry = AuditLeaf(event, committed or utc_now()).to_bytes()
    with open_log(root) as log:
        return log.append(entry)


def unlogged_manifests(root: Path) -> list[str]:
    """Capture ids whose manifest is on disk but has no leaf (e.g. a crash between the two).

    Logging them is a decision for the caller: a manifest planted by someone else would look
    the same.
    """
    directory = Path(root) / MANIFEST_DIR
    on_disk = {
        p.name[: -len(".json")]
        for p in directory.glob("*.json")
        if CAPTURE_ID.match(p.name[: -len(".json")])
    }
    logged: set[str] = set()
    with open_log(root, readonly=True) as log:
        for _, data in log.iter_entries():
            try:
                entry = parse_entry(data)
            except ValueError:
                continue
            if isinstance(entry, ManifestLeaf):
                logged.add(entry.capture_id)
    return sorted(on_disk - logged)


def checkpoint_paths(root: Path) -> list[Path]:
    """Stored checkpoint files, oldest first (by size, then time)."""
    directory = log_dir(root) / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".txt")


def latest_checkpoint(root: Path) -> str | None:
    """The text of the latest signed checkpoint, or None if none was written."""
    path = log_dir(root) / LATEST_CHECKPOINT
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise LogError(f"cannot read {path}: {exc}") from exc


def write_checkpoint(
    root: Path,
    signer: Signer,
    *,
    now: datetime | None = None,
    timestamper: Timestamper | None = None,
) -> Path:
    """Sign a checkpoint of the log as it is now, store it, and return its path.

    The signer must be the archive's key. With a ``timestamper``, its RFC 3161 token over the
    signed checkpoint bytes is stored beside it (``.tsr``).
    """
    verifier = read_verifier(root)
    if signer.verifier != verifier:
        raise SigningKeyError(f"the signing key is not the archive's key ({verifier.to_text()})")
    with open_log(root, readonly=True) as log:
        checkpoint = Checkpoint(verifier.name, log.size, log.root_hash())
    note = sign_checkpoint(checkpoint, signer).encode("utf-8")
    stamp = format_time(now or datetime.now(UTC)).replace("-", "").replace(":", "")
    stamp = stamp.replace(".", "")
    directory = log_dir(root) / CHECKPOINT_DIR
    path = directory / f"{checkpoint.size:012d}-{stamp}.txt"
    token = timestamper(note) if timestamper is not None else None
    try:
        directory.mkdir(exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, note)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(directory)
    except OSError as exc:
        raise StorageError(f"cannot write checkpoint {path}: {exc}") from exc
    if token is not None:
        write_file_atomic(path.with_suffix(".tsr"), token)
    write_file_atomic(log_dir(root) / LATEST_CHECKPOINT, note)
    return path
