"""The archive key's signature over an export descriptor, so verify can tell a partial export.

An export whose ``data/`` (BagIt) is an archive root carries ``preserve-export.json`` (which
captures it holds; ``"partial": true`` when not all) and, when the exporter had the archive
key, ``preserve-export.sig``: a C2SP signed note ``preserve-export/1 / <origin> / <SHA-256 of
the descriptor bytes>`` signed with that key. ``verify`` lets the log name captures that are
not there (instead of E305) only under such a signature — an unsigned or forged descriptor
changes nothing, so nobody can hide deleted captures by planting one.

This module signs and checks that note; it does not write or read packages.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import LogError, PreserveError
from ..safe_io import loads_strict, read_regular, read_text
from .keys import Signer, Verifier
from .note import NoteError, open_note, sign_note

DESCRIPTOR = "preserve-export.json"
SIGNATURE = "preserve-export.sig"
HEADER = "preserve-export/1"
MAX_DESCRIPTOR = 64 * 2**20


def sign_descriptor(descriptor: bytes, signer: Signer) -> str:
    """The signed note over ``descriptor``'s SHA-256."""
    text = f"{HEADER}\n{signer.name}\n{hashlib.sha256(descriptor).hexdigest()}\n"
    return sign_note(text, [signer])


@dataclass(frozen=True, slots=True)
class Described:
    """A partial export's signed descriptor found at a root: the captures it lists, and why
    it does not describe that root (None: it does)."""

    captures: set[str]
    foreign: str | None


def exported_captures(root: Path, verifier: Verifier, log_size: int) -> Described | None:
    """The descriptor of a *partial* export at ``root`` that ``verifier`` signed; None when
    there is none (no descriptor, not partial, unsigned, forged). A signed one describes
    ``root`` only if ``root`` is a bag's ``data/`` directory and the log there has the
    ``log_size`` leaves it had when exported (the caller also holds the manifests present
    to the list): a descriptor of one of the operator's exports copied into the live archive
    must not excuse deletions there."""
    descriptor_path, note_path = Path(root) / DESCRIPTOR, Path(root) / SIGNATURE
    if not descriptor_path.exists() or not note_path.exists():
        return None
    try:
        data = read_regular(descriptor_path, MAX_DESCRIPTOR, what="export descriptor",
                            error=LogError)
        text = open_note(read_text(note_path, 4096, what="export signature", error=LogError),
                         verifier)
        document = loads_strict(data, max_bytes=MAX_DESCRIPTOR, max_depth=8,
                                what="export descriptor", error=LogError)
    except (PreserveError, NoteError):
        return None
    if text != f"{HEADER}\n{verifier.name}\n{hashlib.sha256(data).hexdigest()}\n":
        return None
    if not isinstance(document, dict) or document.get("format") != HEADER \
            or document.get("partial") is not True:
        return None
    captures = document.get("captures")
    if not isinstance(captures, list):
        return None
    listed = {c["capture_id"] for c in captures
              if isinstance(c, dict) and isinstance(c.get("capture_id"), str)}
    return Described(listed, _foreign(Path(root), document, log_size))


def _foreign(root: Path, document: dict[str, object], log_size: int) -> str | None:
    """Why a signed descriptor is not that of the package at ``root`` (None: it may be)."""
    real = root.resolve()
    if real.name != "data" or not (real.parent / "bagit.txt").is_file():
        return "the root is not the data/ directory of a BagIt bag"
    described = document.get("log")
    size = described.get("size") if isinstance(described, dict) else None
    if size != log_size:
        return f"it was made when the log had {size} leaves, the log has {log_size}"
    return None


__all__ = ["DESCRIPTOR", "SIGNATURE", "Described", "exported_captures", "sign_descriptor"]
