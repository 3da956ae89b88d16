"""The operator's own memory of each archive's log: the last tree head they verified or signed.

Like a transparency-log client, an operator keeps, *outside* the archive (beside the private
key: ``$PRESERVE_CONFIG_HOME/heads/`` or ``~/.config/preserve/heads/``), the newest tree head
``(size, root)`` they have proved for each archive identity. A later verify, capture or
signing refuses a log that does not extend it, so restoring an older copy of an archive, or
rewriting its log and deleting its checkpoints, is caught without any off-site checkpoint —
as long as the attacker cannot also change this machine's files (off-site checkpoints remain
the defence against that).

A head belongs to an archive identity — its log key (``<origin>+<key id>``), or ``unsigned``
for an archive without a key — at one place: the real path of its root. A copy elsewhere (a
backup, an exported bag) has its own head, and an archive whose ``key.pub`` disappeared or
changed is still recognised by where it lives. ``forget`` resets a head deliberately
(``preserve reset-head``).

This module stores and loads heads; it does not decide whether a log extends one (see
:meth:`preserve.log.storage.TransparencyLog.verify_extension`).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import LogError
from ..safe_io import loads_strict, read_regular, write_atomic
from .entries import canonical_json, utc_now
from .keys import Verifier, config_home

FORMAT = "preserve-known-head/1"
MAX_HEAD_FILE = 64 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class KnownHead:
    """The newest tree head an operator proved for one archive (identity, at one place)."""

    identity: str
    path: str  # the real path of the archive root
    size: int
    root: bytes
    updated: str


def identity_for(verifier: Verifier | None, root: Path) -> str:
    """``<origin>+<key id hex>`` for a keyed archive, ``unsigned`` for one without a key."""
    if verifier is not None:
        return f"{verifier.name}+{verifier.key_id.hex()}"
    return "unsigned"


def _real(root: Path) -> str:
    return str(Path(root).resolve())


class KnownHeads:
    """The heads directory of this operator (one JSON file per archive identity and place)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else config_home() / "heads"

    def _file(self, identity: str, root: Path) -> Path:
        real = _real(root)
        digest = hashlib.sha256(f"{identity}\n{real}".encode("utf-8", "surrogateescape"))
        return self.directory / f"{_SAFE.sub('_', identity)[:60]}-{digest.hexdigest()[:20]}.json"

    def get(self, identity: str, root: Path) -> KnownHead | None:
        """The stored head of ``identity`` at ``root``, or None. LogError if it is damaged."""
        path = self._file(identity, root)
        if not path.exists() and not path.is_symlink():
            return None
        head = self._load(path)
        if (head.identity, head.path) != (identity, _real(root)):
            raise LogError(f"{path} holds the head of {head.identity!r} at {head.path!r}")
        return head

    def _load(self, path: Path) -> KnownHead:
        doc = loads_strict(read_regular(path, MAX_HEAD_FILE, what="known head", error=LogError),
                           max_bytes=MAX_HEAD_FILE, max_depth=2, what=str(path), error=LogError)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise LogError(f"{path} is not a {FORMAT} file")
        identity, size, root = doc.get("identity"), doc.get("size"), doc.get("root")
        updated, where = doc.get("updated"), doc.get("path")
        if not (isinstance(identity, str) and isinstance(size, int)
                and not isinstance(size, bool) and size >= 0 and isinstance(root, str)
                and _HEX64.match(root) and isinstance(updated, str) and isinstance(where, str)):
            raise LogError(f"{path} is malformed")
        return KnownHead(identity, where, size, bytes.fromhex(root), updated)

    def for_path(self, root: Path) -> list[KnownHead]:
        """Heads of keyed identities known at ``root`` (to notice a removed or replaced key)."""
        real = _real(root)
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                head = self._load(path)
            except LogError:
                continue
            if head.path == real and head.identity != "unsigned":
                found.append(head)
        return found

    def others_at(self, root: Path, identity: str) -> list[KnownHead]:
        """Keyed heads known at ``root`` under another identity than ``identity`` (the
        archive's key was replaced or removed, or another archive now lives at that path)."""
        return [head for head in self.for_path(root) if head.identity != identity]

    def advance(self, identity: str, size: int, root_hash: bytes, archive_root: Path) -> None:
        """Record ``(size, root_hash)`` as the newest proved head of ``identity`` at
        ``archive_root``. The caller has proved that it extends the stored head."""
        doc = {"format": FORMAT, "identity": identity, "path": _real(archive_root),
               "root": root_hash.hex(), "size": size, "updated": utc_now()}
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise LogError(f"cannot create {self.directory}: {exc.strerror or exc}") from exc
        write_atomic(self._file(identity, archive_root), canonical_json(doc) + b"\n",
                     mode=0o600)

    def forget(self, identity: str, root: Path) -> KnownHead | None:
        """Delete the stored head of ``identity`` at ``root``; return it (None: there was none)."""
        head = self.get(identity, root)
        if head is not None:
            try:
                self._file(identity, root).unlink()
            except OSError as exc:
                raise LogError(f"cannot remove a known head: {exc}") from exc
        return head


__all__ = ["FORMAT", "KnownHead", "KnownHeads", "identity_for"]
