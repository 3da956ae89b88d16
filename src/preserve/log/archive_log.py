"""The integrity log of one archive: where it lives and the writes the archive makes to it.

Layout under ``<root>/manifests/log/``: the Merkle log files (:mod:`preserve.log.storage`),
``key.pub`` (the archive's verifier key, C2SP format, one line), ``checkpoints/<size>-<time>.txt``
(every signed checkpoint ever written, never rewritten; an RFC 3161 token beside one as
``.tsr``), and ``checkpoint`` (a copy of the latest).

Writers must hold the archive lock; this module takes none. It does not verify (see
:mod:`preserve.log.audit`) and never sees a private key except the :class:`Signer` passed in.
:func:`write_checkpoint` signs whatever the log holds: preserve's own operations call it only
through :func:`preserve.log.signing.prove_and_sign`, which proves the tree first. Every read is
bounded and refuses symlinks and special files; every write refuses a log directory reached
through a symlink.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import LogError, NotFoundError, SigningKeyError, StorageError
from ..safe_io import read_regular, read_text, write_atomic
from .entries import (
    CAPTURE_ID,
    MANIFEST_DIR,
    AdoptionLeaf,
    AuditLeaf,
    ManifestLeaf,
    format_time,
    manifest_leaf_for_file,
    manifest_path,
    parse_entry,
    parse_time,
    utc_now,
)
from .keys import Signer, Verifier, parse_verifier_key
from .note import Checkpoint, sign_checkpoint
from .storage import TransparencyLog

LOG_DIR = Path("manifests") / "log"
KEY_FILE = "key.pub"
CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "checkpoint"
CHECKPOINT_NAME = re.compile(r"^([0-9]{12})-([0-9]{8}T[0-9]{6}[0-9]{6}Z)\.txt\Z")
#: Largest key.pub / checkpoint / timestamp token read (real ones are well under 1 KiB / 8 KiB).
MAX_KEY_FILE = 4096
MAX_CHECKPOINT_FILE = 64 * 1024
MAX_TOKEN_FILE = 256 * 1024
#: The checkpoint extension line preserve adds: when the key holder signed, by its own clock.
TIME_EXTENSION = "preserve-time "

Timestamper = Callable[[bytes], bytes]
"""Given the signed checkpoint bytes, return an RFC 3161 timestamp token (DER)."""


def log_dir(root: Path) -> Path:
    return Path(root) / LOG_DIR


def require_plain_log_dir(root: Path) -> Path:
    """The log directory, after checking that neither it nor ``manifests/`` is a symlink or a
    file (a write through either could land outside the archive). Raises LogError."""
    root = Path(root)
    for directory in (root / LOG_DIR.parent, root / LOG_DIR):
        if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
            raise LogError(f"{directory} is a symlink or not a directory; refusing to write "
                           "the log through it (run preserve verify)")
    return root / LOG_DIR


def require_plain_log_subdir(root: Path, name: str) -> Path:
    """``manifests/log/<name>`` (checkpoints, journal), after checking that neither it nor a
    directory above it is a symlink or a file: a checkpoint or commit record written through
    one would land elsewhere, perhaps outside the archive. Raises LogError."""
    directory = require_plain_log_dir(root) / name
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise LogError(f"{directory} is a symlink or not a directory; refusing to write "
                       "through it (run preserve verify)")
    return directory


def init_log(root: Path, verifier: Verifier | None = None) -> None:
    """Create the archive's log if absent and, if given, store its verifier key.

    Idempotent. Refuses to replace a different key already stored (a new key needs a new log).
    Without a key the log still records leaves; checkpoints need one.
    """
    directory = require_plain_log_dir(root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the log directory {directory}: {exc}") from exc
    if verifier is not None:
        key_path = directory / KEY_FILE
        text = verifier.to_text() + "\n"
        if key_path.exists() or key_path.is_symlink():
            if read_text(key_path, MAX_KEY_FILE, what="key file", error=SigningKeyError) != text:
                raise SigningKeyError(f"{key_path} already holds a different key")
        else:
            write_atomic(key_path, text.encode("utf-8"))
    TransparencyLog.open(directory, create=True).close()
    try:
        (directory / CHECKPOINT_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {directory / CHECKPOINT_DIR}: {exc}") from exc


def read_verifier(root: Path) -> Verifier:
    """The archive's verifier key from ``manifests/log/key.pub``."""
    path = log_dir(root) / KEY_FILE
    text = read_text(path, MAX_KEY_FILE, what="the archive's public key", error=SigningKeyError)
    return parse_verifier_key(text)


def open_log(root: Path, *, readonly: bool = False) -> TransparencyLog:
    """Open the archive's log (it must have been created by :func:`init_log`)."""
    return TransparencyLog.open(log_dir(root), readonly=readonly)


def record_manifest(root: Path, capture_id: str, *, committed: str | None = None) -> int:
    """Append the leaf of a just-committed manifest; return its leaf index."""
    path = Path(root) / manifest_path(capture_id)
    if not path.is_file():
        raise NotFoundError(f"no manifest for {capture_id}")
    return record_entries(root, [manifest_leaf_for_file(path, committed).to_bytes()],
                          dated_now=committed is None)


def record_event(root: Path, event: Mapping[str, Any], *, committed: str | None = None,
                 signer: Signer | None = None) -> int:
    """Append an audit event (see :mod:`preserve.log.events`), signed by ``signer`` when
    given (the key holder ran the audit); return its leaf index."""
    leaf = AuditLeaf(event, committed or utc_now())
    if signer is not None:
        leaf = leaf.signed_by(signer)
    return record_entries(root, [leaf.to_bytes()], dated_now=committed is None)


def record_entries(root: Path, entries: list[bytes], *, dated_now: bool = True) -> int:
    """Append leaf entries in order with one set of fsyncs; return the first new index.
    ``dated_now``: the entries are dated by this clock, and are refused (LogError) if one is
    dated before the log's last entry (see :func:`check_clock`); leaves owed since an earlier
    commit (repair) carry their own dates."""
    require_plain_log_dir(root)
    with open_log(root) as log:
        if dated_now and entries:
            _check_order(log, [parse_time(parse_entry(e).committed) for e in entries])
        return log.append_many(entries)


def check_clock(root: Path) -> None:
    """LogError if the log's last entry is dated after this clock: an entry appended now
    would be dated before it, and every later verify would call the honest entry back-dated
    (E310). The clock was set back, or someone appended an entry dated ahead (an unsigned
    audit needs no key); verify shows which. Checked before a commit, so that nothing is
    committed that could not be logged."""
    with open_log(root, readonly=True) as log:
        _check_order(log, [datetime.now(UTC)])


def _check_order(log: TransparencyLog, dates: list[datetime]) -> None:
    if not log.size:
        return
    try:
        last = parse_time(parse_entry(log.leaf(log.size - 1)).committed)
    except ValueError:
        return  # a malformed last entry: verify reports it (E302)
    if min(dates) < last:
        raise LogError(f"the log's last entry (leaf {log.size - 1}) is dated {format_time(last)}"
                       f", after this clock's {format_time(min(dates))}: an entry appended now "
                       "would look back-dated. Check this computer's clock; if it is right, "
                       "someone dated that entry ahead (run preserve verify)")


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
            if isinstance(entry, ManifestLeaf | AdoptionLeaf):  # an adoption logs one too
                logged.add(entry.capture_id)
    return sorted(on_disk - logged)


def checkpoint_paths(root: Path) -> list[Path]:
    """Stored checkpoint files, oldest first (by size, then time)."""
    directory = log_dir(root) / CHECKPOINT_DIR
    if directory.is_symlink() or not directory.is_dir():
        return []
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".txt")
    except OSError as exc:
        raise LogError(f"cannot list {directory}: {exc.strerror or exc}") from exc


def read_checkpoint_file(path: Path) -> str:
    """The text of a checkpoint file, bounded; LogError if it is not a small UTF-8 file."""
    return read_text(path, MAX_CHECKPOINT_FILE, what="checkpoint", error=LogError)


def read_token_file(path: Path) -> bytes:
    """An RFC 3161 token stored beside a checkpoint, bounded."""
    return read_regular(path, MAX_TOKEN_FILE, what="timestamp token", error=LogError)


def latest_checkpoint(root: Path) -> str | None:
    """The text of the latest signed checkpoint, or None if none was written."""
    path = log_dir(root) / LATEST_CHECKPOINT
    if not path.exists() and not path.is_symlink():
        return None
    return read_checkpoint_file(path)


def checkpoint_time(checkpoint: Checkpoint) -> datetime | None:
    """When the key holder says it signed ``checkpoint`` (its ``preserve-time`` extension)."""
    for line in checkpoint.extensions:
        if line.startswith(TIME_EXTENSION):
            try:
                return parse_time(line[len(TIME_EXTENSION):])
            except ValueError:
                return None
    return None


def write_checkpoint(
    root: Path,
    signer: Signer,
    *,
    now: datetime | None = None,
    timestamper: Timestamper | None = None,
    size: int | None = None,
) -> Path:
    """Sign a checkpoint of the log's first ``size`` leaves (default: all), store it, and
    return its path. **Unchecked**: preserve proves the tree first
    (:func:`preserve.log.signing.prove_and_sign`); this is the storing step.

    The signer must be the archive's key. The note carries a ``preserve-time`` extension line
    (the signing time by this machine's clock). With a ``timestamper``, its RFC 3161 token over
    the signed checkpoint bytes is stored beside it (``.tsr``). Every file is written to a temp
    file, fsynced and linked into place, so a kill never leaves a partial checkpoint.
    """
    verifier = read_verifier(root)
    if signer.verifier != verifier:
        raise SigningKeyError(f"the signing key is not the archive's key ({verifier.to_text()})")
    directory = require_plain_log_subdir(root, CHECKPOINT_DIR)
    when = now or datetime.now(UTC)
    with open_log(root, readonly=True) as log:
        tree_size = log.size if size is None else size
        checkpoint = Checkpoint(verifier.name, tree_size, log.root_hash(tree_size),
                                (TIME_EXTENSION + when.astimezone(UTC).strftime(
                                    "%Y-%m-%dT%H:%M:%SZ"),))
    note = sign_checkpoint(checkpoint, signer).encode("utf-8")
    stamp = format_time(when).replace("-", "").replace(":", "").replace(".", "")
    path = directory / f"{checkpoint.size:012d}-{stamp}.txt"
    token = timestamper(note) if timestamper is not None else None
    try:
        directory.mkdir(exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {directory}: {exc}") from exc
    if token is not None:  # the token first: a checkpoint is never left without its stamp
        write_atomic(path.with_suffix(".tsr"), token, exclusive=True, sync_dir=False)
    try:
        write_atomic(path, note, exclusive=True)
    except FileExistsError as exc:
        raise StorageError(f"checkpoint {path} already exists; not replaced") from exc
    write_atomic(log_dir(root) / LATEST_CHECKPOINT, note)
    return path
