"""WACZ package signatures (WACZ Signing and Verification 0.1.0, the anonymous form).

``datapackage-digest.json`` carries ``signedData``: the package hash
(``sha256:<hex of datapackage.json>``), an ECDSA signature over the UTF-8 bytes of that string
with SHA-256, the signer's public key (base64 of the DER SubjectPublicKeyInfo), the creation
time and the software. The signature is the raw ``r || s`` form (IEEE P1363) that WebCrypto
produces, which is what ArchiveWeb.page writes and ReplayWeb.page (wabac.js) checks; other
verifiers also accept it. New keys are on curve P-384 because wabac.js imports anonymous keys
as P-384 and rejects other curves; a P-256 or P-521 key given with ``--wacz-key`` also works
for verifiers that read the curve from the key. Any other key (RSA, Ed25519, secp256k1, ...)
is refused before anything is written.

With a TSA, ``timeSignature`` is an RFC 3161 TimeStampResp (base64) over the ASCII bytes of the
base64 ``signature``, as webrecorder's authsign stamps signatures.

The private key lives outside the archive, like the log's Ed25519 key:
``$PRESERVE_CONFIG_HOME/keys/<archive key name>.wacz.pem`` (default config dir
``~/.config/preserve``), created on first use with mode 0600; ``--wacz-key FILE`` or
``$PRESERVE_WACZ_KEY`` chooses another file. This module signs and verifies signature data; it
does not read or write packages.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from preserve import log
from preserve._version import __version__
from preserve.errors import PreserveError, SigningKeyError, UnsupportedKeyError
from preserve.integrity import default_key_name
from preserve.log.timestamp import request_timestamp
from preserve.safe_io import read_regular

KEY_ENV = "PRESERVE_WACZ_KEY"
KEY_SUFFIX = ".wacz.pem"
CURVE = ec.SECP384R1()
#: Curves a ``--wacz-key`` may use: those WebCrypto verifies ECDSA with (wabac.js only P-384).
SUPPORTED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


@dataclass(frozen=True)
class WaczSigner:
    """An ECDSA private key that signs WACZ packages, and where it is kept."""

    path: Path
    key: ec.EllipticCurvePrivateKey
    created: bool

    @property
    def public_key(self) -> str:
        """Base64 of the DER SubjectPublicKeyInfo, as ``signedData.publicKey`` carries it."""
        return public_key_text(self.key.public_key())

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the DER public key: a short name to compare out of band."""
        return hashlib.sha256(base64.b64decode(self.public_key)).hexdigest()

    def sign(self, message: str) -> str:
        """Base64 of the raw ``r || s`` ECDSA-SHA-256 signature over ``message`` (UTF-8)."""
        der = self.key.sign(message.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        size = (self.key.curve.key_size + 7) // 8
        return base64.b64encode(r.to_bytes(size, "big") + s.to_bytes(size, "big")).decode()


def public_key_text(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def default_key_path(archive_root: Path, key_name: str | None = None) -> Path:
    """``<config>/keys/<archive key name>.wacz.pem`` beside the archive's log key
    (``key_name``: that name, when the archive is not a directory, an ``s3://`` root)."""
    name = key_name
    if name is None:
        try:
            name = log.read_verifier(archive_root).name
        except PreserveError:
            name = default_key_name(archive_root)
    log_key = log.default_key_path(name)
    return log_key.with_name(log_key.name.removesuffix(".key") + KEY_SUFFIX)


def load_or_create(path: Path | None, archive_root: Path, *,
                   key_name: str | None = None) -> WaczSigner:
    """The WACZ signing key at ``path`` (default: :func:`default_key_path`), created if absent.

    A new key is written with mode 0600 and never inside the archive; an existing key that
    group or others can read is refused.
    """
    if path is None:
        path = Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else \
            default_key_path(archive_root, key_name)
    path = Path(path)
    if path.exists():
        return WaczSigner(path, _load(path), created=False)
    target = path.parent.resolve() / path.name
    if target.is_relative_to(Path(archive_root).resolve()):
        raise SigningKeyError(f"refusing to write the WACZ signing key inside the archive: {path}")
    key = ec.generate_private_key(CURVE)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created by another process meanwhile: use that one
        return WaczSigner(path, _load(path), created=False)
    except OSError as exc:
        raise SigningKeyError(f"cannot create the WACZ signing key {path}: {exc}") from exc
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return WaczSigner(path, key, created=True)


def _load(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SigningKeyError(f"cannot read the WACZ signing key {path}: {exc}") from exc
    # a regular file of a key's size: never block on a FIFO nor read a device without end
    data = read_regular(path, 1 << 16, what="WACZ signing key", error=SigningKeyError,
                        follow_symlinks=True)
    if mode & 0o077:
        raise SigningKeyError(f"WACZ signing key {path} is readable by others (chmod 600 it)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    return _supported(key, path)


def _supported(key: object, path: Path) -> ec.EllipticCurvePrivateKey:
    """``key`` if WACZ verifiers can check its signatures: ECDSA on P-256, P-384 or P-521
    (others, such as secp256k1, verify nowhere); :class:`UnsupportedKeyError` otherwise."""
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UnsupportedKeyError(f"{path} is not an ECDSA key (WACZ signatures are ECDSA "
                                  "P-384)")
    if key.curve.name not in SUPPORTED_CURVES:
        raise UnsupportedKeyError(f"{path} is an ECDSA key on curve {key.curve.name}, which "
                                  "WACZ verifiers do not check (use P-384)")
    return key


def signed_data(package_hash: str, created: str, signer: WaczSigner,
                tsa_url: str | None = None) -> dict[str, Any]:
    """The ``signedData`` object for ``datapackage-digest.json``."""
    signature = signer.sign(package_hash)
    data: dict[str, Any] = {
        "hash": package_hash,
        "created": created,
        "software": f"preserve {__version__}",
        "signature": signature,
        "publicKey": signer.public_key,
    }
    if tsa_url:
        token = request_timestamp(signature.encode("ascii"), tsa_url)
        data["timeSignature"] = base64.b64encode(token).decode()
    return data


def verify_signed_data(data: Any, package_hash: str) -> str | None:
    """Check an anonymous ``signedData`` against ``package_hash``: None if valid, else why not."""
    if not isinstance(data, dict):
        return "signedData is not an object"
    if data.get("hash") != package_hash:
        return "signedData.hash is not the hash of datapackage.json"
    try:
        key = serialization.load_der_public_key(base64.b64decode(data["publicKey"],
                                                                 validate=True))
        raw = base64.b64decode(data["signature"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        return f"signedData has no readable publicKey and signature: {exc}"
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "signedData.publicKey is not an ECDSA key"
    size = (key.curve.key_size + 7) // 8
    if len(raw) == 2 * size:
        der = encode_dss_signature(int.from_bytes(raw[:size], "big"),
                                   int.from_bytes(raw[size:], "big"))
    else:
        der = raw  # some signers write the DER form
    try:
        key.verify(der, package_hash.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the signature does not verify with signedData.publicKey"
    return None


__all__ = [
    "CURVE",
    "KEY_ENV",
    "SUPPORTED_CURVES",
    "WaczSigner",
    "default_key_path",
    "load_or_create",
    "public_key_text",
    "signed_data",
    "verify_signed_data",
]
