"""Export captures as a BagIt 1.0 bag (RFC 8493) whose ``data/`` is a preserve archive root.

Layout::

    bagit.txt, bag-info.txt, manifest-sha256.txt, manifest-sha512.txt,
    tagmanifest-sha256.txt, tagmanifest-sha512.txt
    data/archive/warc/YYYY/MM/<capture_id>.warc.gz   as in the archive, byte for byte
    data/archive/text/ab/cd/<blake3>                  the captures' text and comments objects
    data/manifests/<capture_id>.json                  their manifests, exact bytes
    data/manifests/log/...                            the whole integrity log as of the export
    data/proofs/<capture_id>.json                     each capture's inclusion-proof bundle
    data/preserve-export.json                         ``preserve-export/1`` (partial or not)

``preserve --root BAG/data verify --no-record`` audits the payload like any archive. The log
is exported whole (a Merkle log cannot lose leaves and stay verifiable), so a *partial* export
holds log leaves of captures it does not contain: ``preserve-export.json`` says
``"partial": true`` and lists the captures it does hold; ``preserve check-export BAG`` (and a
verify that knows the rule) accept a missing manifest only for a capture that the descriptor
does not list. See docs/exchange.md.

bag-info.txt carries Source-Organization, Contact-Name, Contact-Email (options, then the
``PRESERVE_SOURCE_ORGANIZATION``/``PRESERVE_CONTACT_NAME``/``PRESERVE_CONTACT_EMAIL``
environment, then ``<config>/bag-info.txt``), Bagging-Date, Bag-Software-Agent and
Payload-Oxum. Files are streamed and hashed (SHA-256 and SHA-512) in one pass; the bag is built
under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve._version import __version__
from preserve.archive import Archive
from preserve.errors import StorageError
from preserve.exchange.files import AtomicDirectory, Digester, SourceFile, copy_file, fsync_dir
from preserve.exchange.plan import (
    ExportPlan,
    ExportResult,
    copy_log,
    descriptor,
    plan_export,
    proof_bytes,
)
from preserve.exchange.source import ArchiveSource, source_for
from preserve.log.export_note import SIGNATURE, sign_descriptor
from preserve.log.keys import Signer

if TYPE_CHECKING:
    from preserve.remote.archive import RemoteArchive

ALGORITHMS = ("sha256", "sha512")
DESCRIPTOR_NAME = "preserve-export.json"
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9-]*\Z")
_ENV = {
    "Source-Organization": "PRESERVE_SOURCE_ORGANIZATION",
    "Contact-Name": "PRESERVE_CONTACT_NAME",
    "Contact-Email": "PRESERVE_CONTACT_EMAIL",
}


#: bag-info.txt labels that state facts of the bag itself: preserve writes them, and a copy in
#: the config file (a stale Payload-Oxum, another Bagging-Date) is not carried over: a second
#: Payload-Oxum made every bag invalid, a second Bagging-Date or agent contradicted the real one.
_COMPUTED_LABELS = frozenset({"bagging-date", "bag-software-agent", "payload-oxum", "bag-size",
                              "external-description", "bagit-version",
                              "tag-file-character-encoding"})


@dataclass(frozen=True)
class BagInfo:
    """Who made the bag: the descriptive fields of bag-info.txt."""

    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def gather(cls, *, source_organization: str | None = None, contact_name: str | None = None,
               contact_email: str | None = None, config: Path | None = None) -> BagInfo:
        """Options first, then the environment, then ``config`` (a bag-info.txt to start from;
        default ``$PRESERVE_CONFIG_HOME/bag-info.txt`` or ``~/.config/preserve/bag-info.txt``)."""
        given = {"Source-Organization": source_organization, "Contact-Name": contact_name,
                 "Contact-Email": contact_email}
        values: dict[str, str] = {}
        for label, value in read_info_file(config or default_config()):
            if label.lower() not in _COMPUTED_LABELS:
                values.setdefault(label, value)
        for label, env in _ENV.items():
            if os.environ.get(env):
                values[label] = os.environ[env]
        for label, option in given.items():
            if option:
                values[label] = option
        return cls(tuple(values.items()))


def default_config() -> Path:
    base = os.environ.get("PRESERVE_CONFIG_HOME")
    return (Path(base) if base else Path.home() / ".config" / "preserve") / "bag-info.txt"


def read_info_file(path: Path) -> list[tuple[str, str]]:
    """``Label: value`` lines (continuation lines start with whitespace); [] if no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line[:1].isspace() and fields:
            label, value = fields[-1]
            fields[-1] = (label, f"{value} {line.strip()}")
            continue
        label, sep, value = line.partition(":")
        if sep and _LABEL.match(label.strip()):
            fields.append((label.strip(), value.strip()))
    return fields


@dataclass
class _Payload:
    """The payload files written so far: path below the bag -> (sha256, sha512, size)."""

    bag: Path
    entries: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    def _add(self, path: Path, digester: Digester) -> None:
        digests = digester.hexdigests()
        rel = path.relative_to(self.bag).as_posix()
        self.entries[rel] = (digests["sha256"], digests["sha512"], digester.size)

    def copy(self, rel: str, source: Path | SourceFile, *, expect: dict[str, str],
             expect_size: int) -> None:
        target = self.bag / "data" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as out:
            digester = copy_file(source, out.write, ALGORITHMS, expect=expect,
                                 expect_size=expect_size)
            out.flush()
            os.fsync(out.fileno())
        self._add(target, digester)

    def write(self, rel: str, data: bytes) -> None:
        target = self.bag / "data" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        digester = Digester(ALGORITHMS)
        digester.update(data)
        self._add(target, digester)

    def adopt(self, files: Iterable[Path]) -> None:
        """Hash files already written below the bag (the copied log)."""
        for path in files:
            with path.open("rb") as handle:
                digester = copy_file(path, lambda _: None, ALGORITHMS)
                os.fsync(handle.fileno())
            self._add(path, digester)


def export_bagit(
    archive: Archive | RemoteArchive | ArchiveSource,
    ids: Sequence[str],
    out: Path,
    *,
    all_captures: bool = False,
    info: BagInfo | None = None,
) -> ExportResult:
    """Write the captures ``ids`` (or all) of ``archive`` (a directory or an ``s3://`` root)
    as a BagIt bag at directory ``out``.

    Raises :class:`~preserve.errors.NotFoundError` for an unknown id and
    :class:`~preserve.errors.StorageError` when ``out`` exists or cannot be written or a
    capture's files do not match its manifest; ``out`` then does not exist.
    """
    started = time.monotonic()
    out = Path(out)
    source = source_for(archive)
    source.refuse_output(out)
    plan = plan_export(source, ids, all_captures=all_captures)
    info = info or BagInfo.gather()
    with AtomicDirectory(out) as bag:
        payload = _Payload(bag)
        _write_payload(payload, plan, source.signer() if plan.partial else None)
        _write_tags(bag, payload, plan, info)
        for directory in {p.parent for p in bag.rglob("*") if p.is_file()}:
            fsync_dir(directory)
    total = sum(size for _, _, size in payload.entries.values())
    return ExportResult(out, "bagit", [c.capture_id for c in plan.captures],
                        len(payload.entries), total, plan.partial, plan.warnings(),
                        time.monotonic() - started)


def _write_payload(payload: _Payload, plan: ExportPlan, signer: Signer | None) -> None:
    paths: dict[str, dict[str, Any]] = {}
    texts: set[str] = set()
    warcs: set[str] = set()
    for capture in plan.captures_loaded():
        m = capture.manifest
        if m.warc.path not in warcs:  # an imported file shared by several captures: once
            payload.copy(m.warc.path, capture.warc_file, expect={"sha256": m.warc.sha256},
                         expect_size=m.warc.size)
            warcs.add(m.warc.path)
        manifest = capture.manifest_rel
        payload.write(manifest, capture.manifest_bytes)
        entry: dict[str, Any] = {"warc": {"path": m.warc.path, "sha256": m.warc.sha256,
                                          "size": m.warc.size},
                                 "manifest": manifest, "text": None, "comments": None,
                                 "proof": None}
        for kind, ref, source in (("text", m.text, capture.text_file),
                                  ("comments", m.comments, capture.comments_file)):
            if ref is None or source is None:
                continue
            if ref.path not in texts:
                payload.copy(ref.path, source, expect={"blake3": ref.blake3},
                             expect_size=ref.size)
                texts.add(ref.path)
            entry[kind] = ref.path
        if capture.proof is not None:
            entry["proof"] = f"proofs/{capture.capture_id}.json"
            payload.write(entry["proof"], proof_bytes(capture.proof))
        paths[capture.capture_id] = entry
    log_paths: dict[str, str | None] = {"log": None, "checkpoint": None, "timestamp": None,
                                        "key": None}
    if plan.snapshot is not None:
        files = copy_log(plan.snapshot, payload.bag / "data")
        payload.adopt(files)
        log_paths["log"] = "manifests/log"
        cp = plan.snapshot.checkpoint_name
        if cp is not None:
            log_paths["checkpoint"] = f"manifests/log/checkpoints/{cp}"
            if plan.snapshot.checkpoint_token is not None:
                tsr = cp.removesuffix(".txt") + ".tsr"
                log_paths["timestamp"] = f"manifests/log/checkpoints/{tsr}"
        if plan.snapshot.key_text is not None:
            log_paths["key"] = "manifests/log/key.pub"
    described = descriptor(plan, "bagit", paths, log_paths)
    payload.write(DESCRIPTOR_NAME, described)
    if signer is not None:  # lets verify on data/ accept the captures left out (see log)
        payload.write(SIGNATURE, sign_descriptor(described, signer).encode("utf-8"))


def _write_tags(bag: Path, payload: _Payload, plan: ExportPlan, info: BagInfo) -> None:
    tags: dict[str, bytes] = {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
    }
    for index, name in enumerate(ALGORITHMS):
        lines = [f"{digests[index]}  {_encode_path(rel)}\n"
                 for rel, digests in sorted(payload.entries.items())]
        tags[f"manifest-{name}.txt"] = "".join(lines).encode("utf-8")
    octets = sum(size for _, _, size in payload.entries.values())
    fields = [
        *info.fields,
        ("External-Description", _external_description(plan)),
        ("Bagging-Date", datetime.now(UTC).strftime("%Y-%m-%d")),
        ("Bag-Software-Agent", f"preserve {__version__}"),
        ("Payload-Oxum", f"{octets}.{len(payload.entries)}"),
    ]
    tags["bag-info.txt"] = "".join(f"{label}: {_one_line(value)}\n"
                                   for label, value in fields).encode("utf-8")
    for name, data in tags.items():
        _write_tag(bag / name, data)
    for name in ALGORITHMS:
        lines = []
        for tag in sorted(tags):
            digester = Digester([name])
            digester.update(tags[tag])
            lines.append(f"{digester.hexdigests()[name]}  {tag}\n")
        _write_tag(bag / f"tagmanifest-{name}.txt", "".join(lines).encode("utf-8"))


def _write_tag(path: Path, data: bytes) -> None:
    with path.open("xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _external_description(plan: ExportPlan) -> str:
    kind = "partial export" if plan.partial else "export"
    return (f"preserve {kind} of {len(plan.captures)} web page capture(s): WARC files, "
            "manifests, clean text, the integrity log and inclusion proofs; data/ is a "
            "preserve archive root (see data/preserve-export.json)")


def _encode_path(rel: str) -> str:
    """RFC 8493 section 2.1.3: percent-encode CR, LF and % in manifest paths."""
    return rel.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _one_line(value: str) -> str:
    return " ".join(value.split())


__all__ = ["ALGORITHMS", "DESCRIPTOR_NAME", "BagInfo", "export_bagit", "read_info_file"]
