"""Fuzz the parsers of everything an attacker can write besides manifests: log entries,
checkpoints (signed notes), keys, commit records, known heads, strict JSON and proof bundles.

Each parser must return, or raise its own documented error, for any bytes (see
tests/fuzz_regressions/parsers/README.md). Inputs are random bytes, mutations of the real
seeds, and JSON values spliced into the seeds' fields. A failing input is saved next to the
seeds and replayed on every run.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preserve.errors import LogError, ProofError, SigningKeyError, StorageError
from preserve.hashing import blake3_hex
from preserve.log import check_proof, parse_entry
from preserve.log.journal import parse_record
from preserve.log.keys import parse_signer_key, parse_verifier_key
from preserve.log.known_heads import KnownHeads
from preserve.log.note import NoteError, split_note, verify_checkpoint
from preserve.safe_io import loads_strict

SEEDS = Path(__file__).parent / "fuzz_regressions" / "parsers"
VERIFIER = parse_verifier_key((SEEDS / "verifier.key").read_text())
GROUP = "20261202T000000Z-000000000000.txt"


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # the readers refuse non-UTF-8 before parsing


def _entry(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_entry(data)


def _checkpoint(data: bytes) -> None:
    text = _text(data)
    if text is None:
        return
    with contextlib.suppress(NoteError):
        verify_checkpoint(text, VERIFIER, origin=VERIFIER.name)
    with contextlib.suppress(NoteError):
        split_note(text)


def _keys(data: bytes) -> None:
    text = _text(data)
    if text is None:
        return
    for parse in (parse_verifier_key, parse_signer_key):
        with contextlib.suppress(SigningKeyError):
            parse(text)


def _record(data: bytes) -> None:
    text = _text(data)
    if text is None:
        return
    with contextlib.suppress(LogError):
        parse_record(Path(GROUP), text, VERIFIER)


def _strict_json(data: bytes) -> None:
    with contextlib.suppress(StorageError):
        loads_strict(data, max_bytes=1 << 20, max_depth=16, error=StorageError)


def _proof(data: bytes) -> None:
    try:
        document = loads_strict(data, max_bytes=1 << 22, max_depth=16, error=ProofError)
    except ProofError:
        return
    problems = check_proof(document)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    check_proof(document, VERIFIER.to_text())


HEADS_DIR: list[Path] = []


def _known_head(data: bytes) -> None:
    heads = KnownHeads(HEADS_DIR[0])
    identity = "fuzz.example/log+" + VERIFIER.key_id.hex()
    heads._file(identity, Path("/archive")).write_bytes(data)
    try:
        heads.get(identity, Path("/archive"))
        heads.for_path(Path("/archive"))
    except LogError:
        pass


PARSERS: dict[str, tuple[Callable[[bytes], None], list[str]]] = {
    "entry": (_entry, ["entry-manifest.json", "entry-adoption.json", "entry-audit.json"]),
    "checkpoint": (_checkpoint, ["checkpoint-valid.txt"]),
    "key": (_keys, ["signer.key", "verifier.key"]),
    "record": (_record, [GROUP]),
    "json": (_strict_json, ["proof-valid.json", "known-head.json"]),
    "proof": (_proof, ["proof-valid.json"]),
    "head": (_known_head, ["known-head.json"]),
}


@pytest.fixture(autouse=True, scope="module")
def heads_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    HEADS_DIR[:] = [tmp_path_factory.mktemp("heads")]


def _check(parser: str, data: bytes) -> None:
    target, _seeds = PARSERS[parser]
    try:
        target(data)
    except Exception:
        (SEEDS / f"crash-{parser}-{blake3_hex(data)[:16]}.bin").write_bytes(data)
        raise


def test_seeds_are_real_and_valid() -> None:
    for name in ("entry-manifest.json", "entry-adoption.json", "entry-audit.json"):
        parse_entry((SEEDS / name).read_bytes())
    verify_checkpoint((SEEDS / "checkpoint-valid.txt").read_text(), VERIFIER)
    record = parse_record(Path(GROUP), (SEEDS / GROUP).read_text(), VERIFIER)
    assert record.signed and len(record.entries) == 2
    assert check_proof(json.loads((SEEDS / "proof-valid.json").read_text()),
                       VERIFIER.to_text()) == []


@pytest.mark.parametrize("field", ["capture_id", "captured", "committed", "sha256", "blake3"])
def test_a_trailing_newline_is_not_a_valid_field(field: str) -> None:
    """Validators anchor at the very end (``$`` alone would let one trailing newline
    through: a capture id or digest that is not one)."""
    doc = json.loads((SEEDS / "entry-manifest.json").read_bytes())
    where = doc["manifest"] if field in ("sha256", "blake3") else doc
    where[field] += "\n"
    if field == "capture_id":
        doc["manifest"]["path"] = f"manifests/{doc['capture_id']}.json"
    data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(ValueError):
        parse_entry(data)


def test_replay_every_saved_input() -> None:
    for parser, (_target, seeds) in PARSERS.items():
        for name in seeds:
            _check(parser, (SEEDS / name).read_bytes())
    for crash in sorted(SEEDS.glob("crash-*.bin")):
        _check(crash.name.split("-")[1], crash.read_bytes())


HOSTILE = [b"", b"\x00" * 64, b"[" * 100_000, b'{"a":' * 50_000, b"\xff\xfe",
           "\u2014 x y\n".encode(),
           b"x\n\n\xe2\x80\x94 a AAAA\n", b'{"v":1,"type":"manifest","committed":1e999}',
           b'{"v": 1e400}', b"NaN", b'{"a":1,"a":2}', b"\"\\ud800\"", b"PRIVATE+KEY+a+b+c",
           b"a+00000000+" + b"A" * 10_000]


@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_hostile_inputs(parser: str) -> None:
    for data in HOSTILE:
        _check(parser, data)


@pytest.mark.parametrize("parser", sorted(PARSERS))
@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_seeds(parser: str, data: st.DataObject) -> None:
    _target, seeds = PARSERS[parser]
    raw = bytearray((SEEDS / data.draw(st.sampled_from(seeds))).read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        where = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "dup"]))
        if action == "flip" and raw:
            raw[where] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "delete" and raw:
            del raw[where : where + data.draw(st.integers(1, 16))]
        elif action == "dup":
            raw[where:where] = raw[where : where + data.draw(st.integers(1, 64))]
        else:
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=8))
    _check(parser, bytes(raw))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fuzz_proof_fields_replaced_with_any_json(data: st.DataObject) -> None:
    document = json.loads((SEEDS / "proof-valid.json").read_text())
    target = document
    key = data.draw(st.sampled_from(sorted(document)))
    while isinstance(target[key], dict) and target[key] and data.draw(st.booleans()):
        target = target[key]
        key = data.draw(st.sampled_from(sorted(target)))
    target[key] = data.draw(_json)
    _check("proof", json.dumps(document).encode())


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fuzz_entry_fields_replaced_with_any_json(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(PARSERS["entry"][1]))
    document = json.loads((SEEDS / name).read_text())
    key = data.draw(st.sampled_from(sorted(document)))
    document[key] = data.draw(_json)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    _check("entry", canonical)


def test_no_crash_files_left_behind() -> None:
    """A crash file is committed only together with its fix; none is pending now."""
    leftover = [p.name for p in SEEDS.glob("crash-*.bin")]
    for name in leftover:  # replayed above; they must pass
        assert name.startswith("crash-")
    shutil.rmtree(HEADS_DIR[0], ignore_errors=True)
