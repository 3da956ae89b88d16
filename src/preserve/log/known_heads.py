"""The operator's own memory of each archive's log: the last tree head they verified or signed.

Like a transparency-log client, an operator keeps, *outside* the archive (beside the private
key: ``$PRESERVE_CONFIG_HOME/heads/`` or ``~/.config/preserve/heads/``), the newest tree head
``(size, root)`` they have proved for each archive identity. A later verify, capture or
signing refuses a log that does not extend it, so restoring an older copy of an archive, or
rewriting its log and deleting its checkpoints, is caught without any off-site checkpoint —
as long as the attacker cannot also change this machine's files (off-site checkpoints remain
the defence against that).

An archive's identity is its log key (``<origin>+<key id>``); an archive without a key is
known by the real path of its root. Each head also lists the paths it was seen at, so an
archive whose ``key.pub`` disappeared is still recognised by where it lives.
``forget`` resets a head deliberately (``preserve reset-head``).

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
MAX_PATHS = 32
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class KnownHead:
    """The newest tree head an operator proved for one archive identity."""

    identity: str
    size: int
    root: bytes
    updated: str
    paths: tuple[str, ...]


def identity_for(verifier: Verifier | None, root: Path) -> str:
    """``<origin>+<key id hex>`` for a keyed archive, ``unsigned:<sha256 of the real root
    path>`` for one without a key."""
    if verifier is not None:
        return f"{verifier.name}+{verifier.key_id.hex()}"
    real = str(Path(root).resolve())
    return "unsigned:" + hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()


class KnownHeads:
    """The heads directory of this operator (one JSON file per archive identity)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else config_home() / "heads"

    def _path(self, identity: str) -> Path:
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
        return self.directory / f"{_SAFE.sub('_', identity)[:80]}-{digest}.json"

    def get(self, identity: str) -> KnownHead | None:
        """The stored head for ``identity``, or None. LogError if the file is damaged."""
        path = self._path(identity)
        if not path.exists() and not path.is_symlink():
            return None
        head = self._load(path)
        if head.identity != identity:
            raise LogError(f"{path} holds the head of {head.identity!r}, not {identity!r}")
        return head

    def _load(self, path: Path) -> KnownHead:
        doc = loads_strict(read_regular(path, MAX_HEAD_FILE, what="known head", error=LogError),
                           max_bytes=MAX_HEAD_FILE, max_depth=2, what=str(path), error=LogError)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise LogError(f"{path} is not a {FORMAT} file")
        identity, size, root = doc.get("identity"), doc.get("size"), doc.get("root")
        updated, paths = doc.get("updated"), doc.get("paths")
        if not (isinstance(identity, str) and isinstance(size, int)
                and not isinstance(size, bool) and size >= 0 and isinstance(root, str)
                and _HEX64.match(root) and isinstance(updated, str) and isinstance(paths, list)
                and all(isinstance(p, str) for p in paths)):
            raise LogError(f"{path} is malformed")
        return KnownHead(identity, size, bytes.fromhex(root), updated, tuple(paths))

    def for_path(self, root: Path) -> list[KnownHead]:
        """Heads of keyed identities that were seen at ``root`` (to notice a removed key)."""
        real = str(Path(root).resolve())
        found = []
        if not self.directory.is_dir():
            return []
        for path in sorted(self.directory.glob("*.json")):
            try:
                head = self._load(path)
            except LogError:
                continue
            if real in head.paths and not head.identity.startswith("unsigned:"):
                found.append(head)
        return found

    def others_at(self, root: Path, identity: str) -> list[KnownHead]:
        """Keyed heads seen at ``root`` under another identity than ``identity`` (the
        archive's key was replaced, or another archive now lives at that path)."""
        return [head for head in self.for_path(root) if head.identity != identity]

    def advance(self, identity: str, size: int, root_hash: bytes, archive_root: Path) -> None:
        """Record ``(size, root_hash)`` as the newest proved head of ``identity``, seen at
        ``archive_root``. The caller has proved that it extends the stored head."""
        previous = self.get(identity)
        real = str(Path(archive_root).resolve())
        paths = [p for p in (previous.paths if previous else ()) if p != real]
        paths = [*paths[-(MAX_PATHS - 1):], real]
        doc = {"format": FORMAT, "identity": identity, "paths": paths, "root": root_hash.hex(),
               "size": size, "updated": utc_now()}
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise LogError(f"cannot create {self.directory}: {exc.strerror or exc}") from exc
        write_atomic(self._path(identity), canonical_json(doc) + b"\n", mode=0o600)

    def forget(self, identity: str) -> KnownHead | None:
        """Delete the stored head of ``identity``; return what it was (None if there was none)."""
        head = self.get(identity)
        if head is not None:
            try:
                self._path(identity).unlink()
            except OSError as exc:
                raise LogError(f"cannot remove {self._path(identity)}: {exc}") from exc
        return head


__all__ = ["FORMAT", "KnownHead", "KnownHeads", "identity_for"]
