"""The attack matrix: what an attacker does to an archive, and what each anchor catches.

This module is data plus the attacks themselves. ``tests/test_attacks.py`` runs every attack
against a real archive (real captures, a real signing key, a real RFC 3161 TSA) under every
anchor and asserts the outcome written here, cell by cell; ``scripts/gen_threat_model.py``
renders the same table into docs/threat-model.md (a test keeps the document current). So the
documentation cannot claim that an anchor catches more than the tests show.

An outcome is either ``MISSED`` (verify finds no error: the attack is not detectable with that
anchor alone) or the set of error codes that verify must report (it may report more).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from preserve.archive import Archive
from preserve.exchange.bagit import export_bagit
from preserve.hashing import hash_bytes
from preserve.log import Signer
from preserve.log.archive_log import log_dir, write_checkpoint
from preserve.log.entries import (
    AdoptionLeaf,
    AuditLeaf,
    canonical_json,
    manifest_leaf_for_file,
    parse_entry,
    utc_now,
)
from preserve.log.storage import TransparencyLog
from preserve.log.timestamp import Timestamper

MISSED: frozenset[str] = frozenset()

ANCHORS: dict[str, str] = {
    "none": "nothing kept off-site: a verifier with no memory of the archive",
    "known head": "the operator's last verified head (kept beside the key, outside the archive)",
    "off-site checkpoint": "`verify --checkpoint FILE`: a signed checkpoint copied elsewhere",
    "trusted key": "`verify --trusted-key KEY`: the archive's public key kept elsewhere",
    "RFC 3161": "`verify --tsa-roots PEM`: checkpoints timestamped by an outside authority",
}

ATTACKERS: dict[str, str] = {
    "accident": "no intent: a disk, a copy or a person damages a file",
    "write access": "can change any file of the archive, but has not got the signing key",
    "key holder": "has write access and the signing key (an insider, or a stolen key)",
}


@dataclass(frozen=True)
class Context:
    """What an attack can use: the archive's history and the attacker's tools."""

    root: Path
    older_copy: Path  # the archive as it was after its first capture
    foreign: Path  # another archive with one capture of its own
    attacker: Signer  # a key the attacker made (same origin name as the archive's)
    owner: Signer  # the archive's real key (only the key holder may use it)
    owner_key: Path  # its file (what the operator's own exports are signed with)
    tsa_url: str


@dataclass(frozen=True)
class Attack:
    name: str
    attacker: str
    description: str
    run: Callable[[Context], None]
    outcomes: dict[str, frozenset[str]]


# --- tools an attacker uses -----------------------------------------------------------------------


def _writable(path: Path) -> None:
    path.chmod(0o644)


def manifests(root: Path) -> list[Path]:
    return sorted((root / "manifests").glob("*.json"))


def entries(root: Path) -> list[bytes]:
    with TransparencyLog.open(log_dir(root), readonly=True) as log:
        return [e for _, e in log.iter_entries()]


def rebuild_log(root: Path, new_entries: list[bytes]) -> None:
    """Throw the log away and write one holding ``new_entries``, with every hash recomputed."""
    directory = log_dir(root)
    for name in ("entries.jsonl", "entries.idx", "head.json"):
        (directory / name).unlink()
    shutil.rmtree(directory / "tree")
    with TransparencyLog.open(directory, create=True) as log:
        log.append_many(new_entries)


def drop_checkpoints(root: Path, *, key_too: bool = False) -> None:
    directory = log_dir(root)
    shutil.rmtree(directory / "checkpoints")
    (directory / "checkpoints").mkdir()
    (directory / "checkpoint").unlink(missing_ok=True)
    if key_too:
        (directory / "key.pub").unlink()


def edit_first_capture(root: Path) -> None:
    """Change what the first capture says (manifest and its text), recompute its leaf and the
    whole tree: every hash inside the archive agrees again; only signatures can tell."""
    path = manifests(root)[0]
    _writable(path)
    document = json.loads(path.read_bytes())
    document["final_url"] = document["final_url"] + "?edited"
    if document.get("text"):
        text_path = root / document["text"]["path"]
        forged = text_path.read_bytes().replace(b"Tehran", b"Moscow") + b"\nforged"
        digest = hash_bytes(forged)
        new_rel = f"archive/text/{digest.blake3[:2]}/{digest.blake3[2:4]}/{digest.blake3}"
        (root / new_rel).parent.mkdir(parents=True, exist_ok=True)
        (root / new_rel).write_bytes(forged)
        document["text"] = {"blake3": digest.blake3, "size": digest.size, "path": new_rel}
    data = (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    path.write_bytes(data)
    digest = hash_bytes(data)
    rewritten = []
    for entry in entries(root):
        leaf = json.loads(entry)
        if leaf.get("capture_id") == document["capture_id"]:
            leaf["manifest"].update(blake3=digest.blake3, sha256=digest.sha256, size=digest.size)
        rewritten.append(canonical_json(leaf))
    rebuild_log(root, rewritten)
    shutil.rmtree(log_dir(root) / "journal", ignore_errors=True)


# --- the attacks --------------------------------------------------------------------------------


def flip_warc_byte(ctx: Context) -> None:
    document = json.loads(manifests(ctx.root)[0].read_bytes())
    path = ctx.root / document["warc"]["path"]
    _writable(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def edit_manifest(ctx: Context) -> None:
    path = manifests(ctx.root)[0]
    _writable(path)
    path.write_bytes(path.read_bytes().replace(b'"final_url": "http', b'"final_url": "xttp'))


def edit_text(ctx: Context) -> None:
    document = json.loads(manifests(ctx.root)[0].read_bytes())
    path = ctx.root / document["text"]["path"]
    _writable(path)
    path.write_bytes(path.read_bytes().replace(b"Tehran", b"Moscow"))


def delete_capture(ctx: Context) -> None:
    path = manifests(ctx.root)[-1]
    document = json.loads(path.read_bytes())
    (ctx.root / document["warc"]["path"]).unlink()
    path.unlink()


def delete_everything(ctx: Context) -> None:
    for part in ("archive", "manifests"):
        shutil.rmtree(ctx.root / part)
        (ctx.root / part).mkdir()


def plant(ctx: Context) -> None:
    for path in manifests(ctx.foreign):
        document = json.loads(path.read_bytes())
        for rel in [document["warc"]["path"], *(document[k]["path"] for k in ("text", "comments")
                                                 if document.get(k))]:
            (ctx.root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ctx.foreign / rel, ctx.root / rel)
        shutil.copyfile(path, ctx.root / "manifests" / path.name)


def plant_and_log(ctx: Context) -> None:
    plant(ctx)
    leaf = manifest_leaf_for_file(manifests(ctx.foreign)[0]).to_bytes()
    with TransparencyLog.open(log_dir(ctx.root)) as log:
        log.append(leaf)


def plant_and_adopt(ctx: Context) -> None:
    """A planted capture logged by an adoption leaf: appending one needs no key."""
    plant(ctx)
    leaf = manifest_leaf_for_file(manifests(ctx.foreign)[0])
    adoption = AdoptionLeaf(capture_id=leaf.capture_id, path=leaf.path, blake3=leaf.blake3,
                            sha256=leaf.sha256, size=leaf.size, captured=leaf.captured,
                            committed=utc_now(), operator="editor",
                            reason="captured on the field laptop")
    with TransparencyLog.open(log_dir(ctx.root)) as log:
        log.append(adoption.to_bytes())


def copied_export_descriptor(ctx: Context) -> None:
    """The signed descriptor of a partial export the operator handed out (the first capture
    only) is copied into the archive, and a capture it left out is deleted."""
    bag = ctx.root.parent / "handed-out"
    first = manifests(ctx.root)[0].name.removesuffix(".json")
    export_bagit(Archive(ctx.root, key=ctx.owner_key, heads=None), [first], bag)
    for name in ("preserve-export.json", "preserve-export.sig"):
        shutil.copyfile(bag / "data" / name, ctx.root / name)
    delete_capture(ctx)


def rollback(ctx: Context) -> None:
    for part in ("archive", "manifests"):
        shutil.rmtree(ctx.root / part)
        shutil.copytree(ctx.older_copy / part, ctx.root / part)


def moved_rollback(ctx: Context) -> None:
    """The archive moves to another disk (its old path left as a symlink to the new place),
    and an older copy is restored there: the operator's known head must follow it."""
    rollback(ctx)
    moved = ctx.root.with_name(ctx.root.name + "-moved")
    os.rename(ctx.root, moved)
    os.symlink(moved, ctx.root)


def rewrite(ctx: Context) -> None:
    edit_first_capture(ctx.root)
    drop_checkpoints(ctx.root)


def rewrite_and_strip(ctx: Context) -> None:
    edit_first_capture(ctx.root)
    drop_checkpoints(ctx.root, key_too=True)


def replace_key(ctx: Context) -> None:
    edit_first_capture(ctx.root)
    drop_checkpoints(ctx.root, key_too=True)
    (log_dir(ctx.root) / "key.pub").write_text(ctx.attacker.verifier.to_text() + "\n")
    resigned = []  # the key holder's audit leaves, re-signed with the attacker's key
    for data in entries(ctx.root):
        entry = parse_entry(data)
        if isinstance(entry, AuditLeaf) and entry.signature is not None:
            entry = AuditLeaf(entry.event, entry.committed).signed_by(ctx.attacker)
            resigned.append(entry.to_bytes())
        else:
            resigned.append(data)
    rebuild_log(ctx.root, resigned)
    write_checkpoint(ctx.root, ctx.attacker)


def _append_audit_dated(ctx: Context, committed: str) -> None:
    event = {"committed": committed,
             "event": {"eventType": "fixity check", "eventOutcomeInformation":
                       {"eventOutcome": "pass"}}, "type": "audit", "v": 1}
    with TransparencyLog.open(log_dir(ctx.root)) as log:
        log.append(canonical_json(event))


def forge_audit(ctx: Context) -> None:
    leaf = AuditLeaf({"eventType": "fixity check", "eventOutcomeInformation":
                      {"eventOutcome": "pass"}}, utc_now())
    with TransparencyLog.open(log_dir(ctx.root)) as log:
        log.append(leaf.signed_by(ctx.attacker).to_bytes())


def back_date(ctx: Context) -> None:
    _append_audit_dated(ctx, "2020-01-01T00:00:00.000000Z")


def future_date(ctx: Context) -> None:
    _append_audit_dated(ctx, "2099-01-01T00:00:00.000000Z")


def insider_rewrite(ctx: Context) -> None:
    edit_first_capture(ctx.root)
    drop_checkpoints(ctx.root)
    write_checkpoint(ctx.root, ctx.owner, timestamper=Timestamper(ctx.tsa_url))


def _all(codes: set[str]) -> dict[str, frozenset[str]]:
    return {anchor: frozenset(codes) for anchor in ANCHORS}


ATTACKS: list[Attack] = [
    Attack("bit rot", "accident", "one byte of a WARC file changes", flip_warc_byte,
           _all({"E203", "E204"})),
    Attack("edit manifest", "write access", "a manifest is edited in place", edit_manifest,
           _all({"E306"})),
    Attack("edit text", "write access", "a clean-text object is edited in place", edit_text,
           _all({"E402"})),
    Attack("delete a capture", "write access", "a capture's manifest and WARC file are deleted",
           delete_capture, _all({"E305"})),
    Attack("delete everything", "write access", "every file of the archive is deleted (its "
           "empty directories left)", delete_everything,
           {"none": MISSED, "known head": frozenset({"E301", "E313"}),
            "off-site checkpoint": frozenset({"E301", "E309"}),
            "trusted key": frozenset({"E301", "E313"}),
            "RFC 3161": frozenset({"E301", "E314"})}),
    Attack("plant", "write access", "a capture made elsewhere is copied in, not logged", plant,
           _all({"E304"})),
    Attack("plant and log", "write access", "a planted capture is also appended to the log, "
           "every tree hash recomputed", plant_and_log, _all({"E316"})),
    Attack("plant and adopt", "write access", "a planted capture is logged by an adoption "
           "leaf (an operator's vouching, which needs no key to append)", plant_and_adopt,
           _all({"E316"})),
    Attack("excuse a deletion", "write access", "the signed descriptor of a partial export the "
           "operator handed out is copied into the archive, and a capture it left out is "
           "deleted", copied_export_descriptor, _all({"E305"})),
    Attack("rollback", "write access", "an older copy of the whole archive (consistent and "
           "signed) is restored", rollback,
           {"none": MISSED, "known head": frozenset({"E315"}),
            "off-site checkpoint": frozenset({"E309"}), "trusted key": MISSED,
            "RFC 3161": MISSED}),
    Attack("moved and rolled back", "write access", "the archive is moved to another path "
           "and an older copy of it is restored there", moved_rollback,
           {"none": MISSED, "known head": frozenset({"E315"}),
            "off-site checkpoint": frozenset({"E309"}), "trusted key": MISSED,
            "RFC 3161": MISSED}),
    Attack("rewrite", "write access", "a manifest and its text are changed, the leaf and the "
           "whole tree recomputed, the checkpoints that no longer verify deleted", rewrite,
           {"none": frozenset({"E316"}), "known head": frozenset({"E315", "E316"}),
            "off-site checkpoint": frozenset({"E309", "E316"}),
            "trusted key": frozenset({"E316"}), "RFC 3161": frozenset({"E314", "E316"})}),
    Attack("rewrite and strip", "write access", "a rewrite, then key.pub and every checkpoint "
           "deleted, so the archive looks as if it had never been signed", rewrite_and_strip,
           {"none": MISSED, "known head": frozenset({"E313"}),
            "off-site checkpoint": frozenset({"E309"}), "trusted key": frozenset({"E313"}),
            "RFC 3161": frozenset({"E314"})}),
    Attack("key replacement", "write access", "a rewrite, then key.pub replaced by the "
           "attacker's own key and the log signed with it", replace_key,
           {"none": MISSED, "known head": frozenset({"E313"}),
            "off-site checkpoint": frozenset({"E307", "E309"}),
            "trusted key": frozenset({"E313"}), "RFC 3161": frozenset({"E314"})}),
    Attack("forged audit", "write access", "an audit leaf saying \"pass\" is appended, "
           "signed with a key that is not the archive's (unsigned, it is shown as a claim)",
           forge_audit, _all({"E318"})),
    Attack("back-dating", "write access", "a leaf is appended with a commit time in the past",
           back_date, _all({"E310"})),
    Attack("future-dating", "write access", "a leaf is appended with a commit time in the "
           "future (once signed, every later leaf would look back-dated)", future_date,
           _all({"E310"})),
    Attack("insider rewrite", "key holder", "a rewrite, signed with the archive's own key and "
           "timestamped afresh", insider_rewrite,
           {"none": MISSED, "known head": frozenset({"E315"}),
            "off-site checkpoint": frozenset({"E309"}), "trusted key": MISSED,
            "RFC 3161": MISSED}),
]


def outcome_text(codes: frozenset[str]) -> str:
    return "not caught" if not codes else "caught: " + ", ".join(sorted(codes))


def markdown_table() -> str:
    """The matrix as a Markdown table (docs/threat-model.md)."""
    header = "| attack | attacker | " + " | ".join(ANCHORS) + " |"
    lines = [header, "|" + "---|" * (len(ANCHORS) + 2)]
    for attack in ATTACKS:
        cells = [outcome_text(attack.outcomes[anchor]) for anchor in ANCHORS]
        lines.append(f"| **{attack.name}**: {attack.description} | {attack.attacker} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, symlinks=True,
                    ignore=shutil.ignore_patterns(".lock"))
