"""The integrity log: an RFC 9162 Merkle log of manifests and audit events, signed checkpoints.

Modules: :mod:`~.merkle` (tree hashing, proofs), :mod:`~.storage` (the on-disk append-only
log), :mod:`~.entries` (canonical leaf bytes), :mod:`~.events` (PREMIS-style audit events),
:mod:`~.keys` (Ed25519 keys, C2SP key formats), :mod:`~.note` (signed notes, checkpoints),
:mod:`~.archive_log` (the log of one archive), :mod:`~.audit` (findings E3xx/W3xx),
:mod:`~.proof` (offline proof bundles). See docs/integrity-log.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .archive_log import (
        check_clock,
        checkpoint_paths,
        init_log,
        latest_checkpoint,
        log_dir,
        open_log,
        read_verifier,
        record_entries,
        record_event,
        record_manifest,
        unlogged_manifests,
        write_checkpoint,
    )
    from .audit import (
        CODES,
        DESCRIPTIONS,
        LogFinding,
        verify_log,
    )
    from .entries import (
        AdoptionLeaf,
        AuditLeaf,
        ImportLeaf,
        ManifestLeaf,
        canonical_json,
        parse_entry,
    )
    from .events import fixity_event
    from .keys import (
        Signer,
        Verifier,
        default_key_path,
        generate_key,
        load_signer,
        parse_verifier_key,
    )
    from .merkle import (
        consistency_path,
        inclusion_path,
        leaf_hash,
        node_hash,
        root_from_leaf_hashes,
        verify_consistency,
        verify_inclusion,
    )
    from .note import (
        Checkpoint,
        NoteError,
        open_note,
        parse_checkpoint,
        sign_checkpoint,
        sign_note,
        verify_checkpoint,
    )
    from .proof import check_proof, make_proof
    from .storage import TransparencyLog

# Loaded on first use (PEP 562): keys and notes import cryptography, timestamps
# rfc3161-client; a capture needs none of them before its first network byte.
_SUBMODULE = {
    "AdoptionLeaf": "entries",
    "AuditLeaf": "entries",
    "CODES": "audit",
    "ImportLeaf": "entries",
    "Checkpoint": "note",
    "DESCRIPTIONS": "audit",
    "LogFinding": "audit",
    "ManifestLeaf": "entries",
    "NoteError": "note",
    "Signer": "keys",
    "TransparencyLog": "storage",
    "Verifier": "keys",
    "canonical_json": "entries",
    "check_proof": "proof",
    "checkpoint_paths": "archive_log",
    "consistency_path": "merkle",
    "default_key_path": "keys",
    "fixity_event": "events",
    "generate_key": "keys",
    "inclusion_path": "merkle",
    "init_log": "archive_log",
    "latest_checkpoint": "archive_log",
    "leaf_hash": "merkle",
    "load_signer": "keys",
    "check_clock": "archive_log",
    "log_dir": "archive_log",
    "make_proof": "proof",
    "node_hash": "merkle",
    "open_log": "archive_log",
    "open_note": "note",
    "parse_checkpoint": "note",
    "parse_entry": "entries",
    "parse_verifier_key": "keys",
    "read_verifier": "archive_log",
    "record_entries": "archive_log",
    "record_event": "archive_log",
    "record_manifest": "archive_log",
    "root_from_leaf_hashes": "merkle",
    "sign_checkpoint": "note",
    "sign_note": "note",
    "unlogged_manifests": "archive_log",
    "verify_checkpoint": "note",
    "verify_consistency": "merkle",
    "verify_inclusion": "merkle",
    "verify_log": "audit",
    "write_checkpoint": "archive_log",
}


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CODES",
    "DESCRIPTIONS",
    "AdoptionLeaf",
    "AuditLeaf",
    "Checkpoint",
    "ImportLeaf",
    "LogFinding",
    "ManifestLeaf",
    "NoteError",
    "Signer",
    "TransparencyLog",
    "Verifier",
    "canonical_json",
    "check_clock",
    "check_proof",
    "checkpoint_paths",
    "consistency_path",
    "default_key_path",
    "fixity_event",
    "generate_key",
    "inclusion_path",
    "init_log",
    "latest_checkpoint",
    "leaf_hash",
    "load_signer",
    "log_dir",
    "make_proof",
    "node_hash",
    "open_log",
    "open_note",
    "parse_checkpoint",
    "parse_entry",
    "parse_verifier_key",
    "read_verifier",
    "record_entries",
    "record_event",
    "record_manifest",
    "root_from_leaf_hashes",
    "sign_checkpoint",
    "sign_note",
    "unlogged_manifests",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "write_checkpoint",
]
