"""RFC 3161 timestamps on checkpoints, against a real TSA on 127.0.0.1 (``openssl ts -reply``)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from preserve.log import (
    checkpoint_paths,
    fixity_event,
    generate_key,
    init_log,
    load_signer,
    record_event,
    verify_log,
    write_checkpoint,
)
from preserve.log.timestamp import (
    TimestampChecker,
    Timestamper,
    TimestampError,
    load_roots,
    request_timestamp,
    timestamp_time,
    verify_timestamp,
)
from tsa import mint_tsa, running_tsa

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with running_tsa(tmp_path / "tsa") as served:
        yield served


def test_token_round_trip(tsa: tuple[str, Path]) -> None:
    url, tsa_dir = tsa
    roots = load_roots((tsa_dir / "ca.pem").read_bytes())
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    token = request_timestamp(b"a checkpoint\n", url)
    assert verify_timestamp(b"a checkpoint\n", token, roots) is None
    assert before <= timestamp_time(token) <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    assert verify_timestamp(b"another checkpoint\n", token, roots) is not None
    (tsa_dir / "other").mkdir()
    other = load_roots((mint_tsa(tsa_dir / "other", "Other Root") / "ca.pem").read_bytes())
    assert verify_timestamp(b"a checkpoint\n", token, other) is not None
    # openssl agrees that the stored reply verifies
    (tsa_dir / "data").write_bytes(b"a checkpoint\n")
    (tsa_dir / "token.tsr").write_bytes(token)
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tsa_dir / "data"), "-in",
         str(tsa_dir / "token.tsr"), "-CAfile", str(tsa_dir / "ca.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_unreachable_tsa_raises() -> None:
    with pytest.raises(TimestampError):
        request_timestamp(b"x", "http://127.0.0.1:9/tsa", timeout=2)
    with pytest.raises(TimestampError):
        request_timestamp(b"x", "file:///etc/hostname")


def test_checkpoints_with_tokens_in_the_audit(tsa: tuple[str, Path], tmp_path: Path) -> None:
    url, tsa_dir = tsa
    key_path, verifier = generate_key("test.example/ts", tmp_path / "k.key")
    root = tmp_path / "archive"
    init_log(root, verifier)
    path = write_checkpoint(root, load_signer(key_path), timestamper=Timestamper(url))
    token = path.with_suffix(".tsr")
    assert token.exists()
    checker = TimestampChecker(load_roots((tsa_dir / "ca.pem").read_bytes()))
    assert verify_log(root, timestamp_check=checker) == []
    # a token moved onto another checkpoint no longer matches it
    record_event(root, fixity_event(outcome="pass", counts={"manifests": 0}))
    second = write_checkpoint(root, load_signer(key_path))
    second.with_suffix(".tsr").write_bytes(token.read_bytes())
    findings = verify_log(root, timestamp_check=checker)
    assert [f.code for f in findings] == ["E314"]
    assert findings[0].path.endswith(second.with_suffix(".tsr").name)
    assert len(checkpoint_paths(root)) == 2
