"""C2SP signed notes and tlog checkpoints (text formats; signing via :mod:`preserve.log.keys`).

A signed note (c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank line, then
signature lines ``— <key name> <base64(key id (4 bytes) || signature)>``; the signature covers
the text including its final newline. A checkpoint (c2sp.org/tlog-checkpoint) is a note whose
text is the origin line, the tree size in decimal, the base64 root hash, then optional
extension lines.

This module formats, parses and checks; it does not read or write files.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import LogError, SigningKeyError
from .keys import Signer, Verifier, check_key_name, parse_verifier_key
from .merkle import HASH_SIZE

SIG_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,19})\Z")
#: The control characters a note's text may not hold (all but the newline).
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x09\x0b-\x1f]")


class NoteError(LogError):
    """A signed note or checkpoint is malformed or its signature does not verify."""


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{SIG_PREFIX}{self.name} {blob}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text must end with a newline and contain no blank line")
    if _CONTROL.search(text):
        raise NoteError("note text contains control characters")


def _check_data(data: bytes) -> None:
    """:func:`_check_text` of the text whose UTF-8 bytes are ``data`` (a byte below 0x20 is
    that character in UTF-8, never part of another)."""
    if not data.endswith(b"\n") or b"\n\n" in data:
        raise NoteError("note text must end with a newline and contain no blank line")
    if _CONTROL_BYTES.search(data):
        raise NoteError("note text contains control characters")


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Sign ``text`` with each signer; return the signed note."""
    lines = signature_lines(text.encode("utf-8"), signers).decode("utf-8")
    return "".join([text, "\n", lines])


def signature_lines(data: bytes, signers: Sequence[Signer]) -> bytes:
    """The signature lines :func:`sign_note` puts after the blank line, for the text whose
    UTF-8 bytes are ``data``, as UTF-8: a long note (a commit record) is signed and written
    as bytes, never held as one string, which its em dashes would make two bytes a
    character."""
    _check_data(data)
    return "".join(NoteSignature(s.name, s.key_id, s.sign(data)).line()
                   for s in signers).encode("utf-8")


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and parsed signature lines (not verified)."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note (no blank line before signatures)")
    text = note[: cut + 1]
    return text, note_signatures(text, note[cut + 2 :])


def note_signatures(text: str, sig_block: str) -> list[NoteSignature]:
    """The parsed signature lines ``sig_block`` of a note whose text is ``text`` (what follows
    the blank line, and what precedes it), both checked (not verified)."""
    _check_text(text)
    signatures: list[NoteSignature] = []
    for line in sig_block.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        name, sep, blob = line[len(SIG_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise NoteError("signature is not valid base64") from exc
        if not sep or len(raw) < 5:
            raise NoteError(f"malformed signature line {line[:200]!r}")
        try:
            check_key_name(name)
        except SigningKeyError as exc:
            raise NoteError(f"malformed signature line: {exc}") from exc
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise NoteError(f"a note needs 1 to {MAX_SIGNATURES} signatures")
    return signatures


def open_note(note: str, verifier: Verifier) -> str:
    """Return the note's text if ``verifier`` signed it; raise :class:`NoteError` otherwise.

    A signature line that names this key and fails to verify rejects the note.
    """
    text, signatures = split_note(note)
    verify_signatures(text.encode("utf-8"), signatures, verifier)
    return text


def verify_signatures(data: bytes | memoryview, signatures: Sequence[NoteSignature],
                      verifier: Verifier) -> None:
    """Raise :class:`NoteError` unless ``verifier`` made one of ``signatures`` (those of a
    split note whose text's UTF-8 bytes are ``data``) and every signature naming its key
    verifies."""
    matching = [s for s in signatures if s.name == verifier.name and s.key_id == verifier.key_id]
    if not matching:
        raise NoteError(f"the note is not signed by {verifier.name}+{verifier.key_id.hex()}")
    for sig in matching:
        if not verifier.verify(data, sig.signature):
            raise NoteError(f"invalid signature by {verifier.name}")


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = field(default=())

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a checkpoint body (the note text, without signatures)."""
    _check_text(text)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint needs an origin, a size and a root hash")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise NoteError("empty checkpoint origin")
    if not _DECIMAL.match(size_text):
        raise NoteError(f"bad checkpoint tree size {size_text!r}")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("checkpoint root hash is not base64") from exc
    if len(root) != HASH_SIZE:
        raise NoteError("checkpoint root hash is not 32 bytes")
    if any(not e for e in extensions):
        raise NoteError("empty checkpoint extension line")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The signed-note text of ``checkpoint``."""
    return sign_note(checkpoint.text(), [signer])


def parse_checkpoint(note: str) -> tuple[Checkpoint, list[NoteSignature]]:
    """Parse a signed checkpoint without verifying it."""
    text, signatures = split_note(note)
    return parse_checkpoint_text(text), signatures


def verify_checkpoint(note: str, verifier: Verifier | str, origin: str | None = None) -> Checkpoint:
    """Verify the signature (and, if given, the origin) of a signed checkpoint; return it.

    ``verifier`` is a :class:`Verifier` or a verifier key string.
    """
    if isinstance(verifier, str):
        verifier = parse_verifier_key(verifier)
    checkpoint = parse_checkpoint_text(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint
