"""Ed25519 keys and C2SP signed notes / checkpoints, against the Go sumdb/note vector."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from preserve.errors import SigningKeyError
from preserve.log.keys import (
    default_key_path,
    generate_key,
    load_signer,
    parse_signer_key,
    parse_verifier_key,
)
from preserve.log.note import (
    Checkpoint,
    NoteError,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)

# The example of golang.org/x/mod/sumdb/note (note.go doc comment and note_test.go).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_vector_signs_and_verifies_byte_for_byte() -> None:
    signer = parse_signer_key(GO_SKEY)
    verifier = parse_verifier_key(GO_VKEY)
    assert signer.verifier == verifier
    assert verifier.to_text() == GO_VKEY
    assert signer.to_text() == GO_SKEY
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE  # Ed25519 is deterministic
    assert open_note(GO_NOTE, verifier) == GO_TEXT


def test_tampered_note_is_rejected() -> None:
    verifier = parse_verifier_key(GO_VKEY)
    with pytest.raises(NoteError):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)
    with pytest.raises(NoteError):
        open_note(GO_NOTE.replace("\u2014", "--"), verifier)
    with pytest.raises(NoteError):
        open_note(GO_TEXT, verifier)


@pytest.mark.parametrize(
    "bad",
    [
        GO_VKEY.replace("c74f20a3", "c74f20a4"),  # key id does not match
        GO_VKEY.replace("+ARpc", "+AhRpc"),  # wrong type/length
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
    ],
)
def test_malformed_verifier_keys(bad: str) -> None:
    with pytest.raises(SigningKeyError):
        parse_verifier_key(bad)


def test_checkpoint_round_trip_and_other_key(tmp_path: Path) -> None:
    _, verifier = generate_key("example.org/archive", tmp_path / "a.key")
    signer = load_signer(tmp_path / "a.key")
    checkpoint = Checkpoint("example.org/archive", 12345, bytes(range(32)))
    note = sign_checkpoint(checkpoint, signer)
    lines = note.split("\n")
    root_b64 = base64.b64encode(bytes(range(32))).decode()
    assert lines[:3] == ["example.org/archive", "12345", root_b64]
    assert lines[3] == "" and lines[4].startswith("\u2014 example.org/archive ")
    assert verify_checkpoint(note, verifier, origin="example.org/archive") == checkpoint
    assert verify_checkpoint(note, verifier.to_text()) == checkpoint
    assert parse_checkpoint(note)[0] == checkpoint
    with pytest.raises(NoteError):
        verify_checkpoint(note, verifier, origin="other/origin")
    with pytest.raises(NoteError):
        verify_checkpoint(note.replace("12345", "12346"), verifier)
    generate_key("example.org/archive", tmp_path / "b.key")  # same name, different key
    forged = sign_checkpoint(checkpoint, load_signer(tmp_path / "b.key"))
    with pytest.raises(NoteError):
        verify_checkpoint(forged, verifier)


@pytest.mark.parametrize("size_line", ["-1", "01", "1e3", ""])
def test_malformed_checkpoint_sizes(tmp_path: Path, size_line: str) -> None:
    generate_key("o", tmp_path / "k")
    signer = load_signer(tmp_path / "k")
    text = f"o\n{size_line}\n{base64.b64encode(bytes(32)).decode()}\n"
    note = sign_note(text, [signer]) if size_line else text + "\n"
    with pytest.raises(NoteError):
        verify_checkpoint(note, signer.verifier)


def test_generated_key_file_is_private_and_outside_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRESERVE_CONFIG_HOME", str(tmp_path / "config"))
    path, verifier = generate_key("host.example/preserve")
    assert path == default_key_path("host.example/preserve")
    assert path.parent == tmp_path / "config" / "keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signer(path).verifier == verifier
    with pytest.raises(SigningKeyError):  # never overwritten
        generate_key("host.example/preserve")
    archive = tmp_path / "archive"
    archive.mkdir()
    with pytest.raises(SigningKeyError):
        generate_key("x", archive / "keys" / "x.key", archive_root=archive)
    path.chmod(0o644)
    with pytest.raises(SigningKeyError):  # readable by others: refused
        load_signer(path)
