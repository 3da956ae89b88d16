"""Ed25519 signing keys for the log, in the C2SP signed-note key formats.

- verifier key (public, stored in the archive as ``manifests/log/key.pub``):
  ``<name>+<key id hex>+<base64(0x01 || public key)>``
- signer key (private, kept OUTSIDE the archive, file mode 0600):
  ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte seed)>`` (the Go
  ``golang.org/x/mod/sumdb/note`` format, so Go tooling can read it too)

The key id is the first 4 bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``.
This is the only module that imports ``cryptography``; it does not format notes (see
:mod:`preserve.log.note`) and never prints or logs key material.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import SigningKeyError
from ..safe_io import read_regular

ED25519_TYPE = 0x01
_NAME_FORBIDDEN = re.compile(r"[\s+]")
_SAFE_FILE = re.compile(r"[^A-Za-z0-9._-]")


def check_key_name(name: str) -> str:
    """A C2SP key name: non-empty, no Unicode space, no ``+``."""
    if not name or _NAME_FORBIDDEN.search(name):
        raise SigningKeyError(f"invalid key name {name!r}: must be non-empty, no spaces, no '+'")
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte C2SP key id of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_TYPE]) + public_key).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def verify(self, message: bytes | memoryview, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_text(self) -> str:
        """The verifier key string ``name+keyid+base64``."""
        blob = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"


class Signer:
    """A named Ed25519 private key that signs notes."""

    __slots__ = ("_key", "name", "verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._key = private_key
        self.verifier = Verifier(self.name, _raw_public(private_key.public_key()))

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def to_text(self) -> str:
        """The Go-format signer key string (secret!)."""
        seed = self._key.private_bytes_raw()
        blob = base64.b64encode(bytes([ED25519_TYPE]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{blob}"


def _split_key(text: str, parts: int) -> list[str]:
    fields = text.strip().split("+", parts - 1)  # the base64 part may itself contain '+'
    if len(fields) != parts:
        raise SigningKeyError("malformed key string")
    return fields


def _decode_typed(blob: str, length: int) -> bytes:
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SigningKeyError("key material is not valid base64") from exc
    if len(raw) != length + 1 or raw[0] != ED25519_TYPE:
        raise SigningKeyError("key is not an Ed25519 (type 0x01) key")
    return raw[1:]


def parse_verifier_key(text: str) -> Verifier:
    """Parse ``name+keyid+base64(0x01||pub)``; the key id must match the name and key."""
    name, hexid, blob = _split_key(text, 3)
    check_key_name(name)
    verifier = Verifier(name, _decode_typed(blob, 32))
    try:
        Ed25519PublicKey.from_public_bytes(verifier.public_key)
    except ValueError as exc:
        raise SigningKeyError("invalid Ed25519 public key") from exc
    if hexid != verifier.key_id.hex():
        raise SigningKeyError(f"key id {hexid} does not match the key of {name!r}")
    return verifier


def parse_signer_key(text: str) -> Signer:
    """Parse a ``PRIVATE+KEY+name+keyid+base64(0x01||seed)`` signer key."""
    fields = _split_key(text, 5)
    if fields[:2] != ["PRIVATE", "KEY"]:
        raise SigningKeyError("not a signer key (must start with PRIVATE+KEY+)")
    _, _, name, hexid, blob = fields
    signer = Signer(name, Ed25519PrivateKey.from_private_bytes(_decode_typed(blob, 32)))
    if hexid != signer.key_id.hex():
        raise SigningKeyError(f"key id {hexid} does not match the key of {name!r}")
    return signer


def config_home() -> Path:
    """``$PRESERVE_CONFIG_HOME``, or ``~/.config/preserve``: the operator's own files
    (private keys, known heads), never inside an archive."""
    base = os.environ.get("PRESERVE_CONFIG_HOME")
    return Path(base) if base else Path.home() / ".config" / "preserve"


def default_key_path(name: str) -> Path:
    """``$PRESERVE_CONFIG_HOME/keys/<name>.key`` or ``~/.config/preserve/keys/<name>.key``."""
    return config_home() / "keys" / (_SAFE_FILE.sub("_", name) + ".key")


def generate_key(
    name: str, path: Path | None = None, *, archive_root: Path | None = None
) -> tuple[Path, Verifier]:
    """Create a new signer key file (mode 0600, never overwritten); return (path, verifier).

    ``path`` defaults to :func:`default_key_path`. If ``archive_root`` is given, a path inside
    it is refused: the private key must not travel with the archive it signs.
    """
    check_key_name(name)
    path = Path(path) if path is not None else default_key_path(name)
    if archive_root is not None:
        target = path.parent.resolve() / path.name
        if target.is_relative_to(Path(archive_root).resolve()):
            raise SigningKeyError(f"refusing to write the private key inside the archive: {path}")
    signer = Signer(name, Ed25519PrivateKey.generate())
    if path.exists() or path.is_symlink():
        raise SigningKeyError(f"key file already exists, not overwriting: {path}")
    # written whole beside it, then linked into place: a full disk or a kill never leaves an
    # empty key file that would block the name for good
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (signer.to_text() + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # fails if it exists: never overwritten
    except FileExistsError as exc:
        raise SigningKeyError(f"key file already exists, not overwriting: {path}") from exc
    except OSError as exc:
        raise SigningKeyError(f"cannot create key file {path}: "
                              f"{exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path, signer.verifier


def load_signer(path: Path) -> Signer:
    """Read a signer key file; refuse one that group or others can read."""
    data = read_regular(path, 4096, what="signing key", error=SigningKeyError)
    try:
        mode = path.stat().st_mode
        text = data.decode("utf-8")  # a key name may be any text but spaces and '+'
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read signing key {path}: not a key file") from exc
    if mode & 0o077:
        raise SigningKeyError(f"signing key {path} is readable by others (chmod 600 it)")
    return parse_signer_key(text)
