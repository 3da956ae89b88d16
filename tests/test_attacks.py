"""The attack matrix (tests/attack_matrix.py): every attack under every anchor, asserted cell
by cell against a real archive — real captures from a local server, a real signing key, every
checkpoint stamped by a real RFC 3161 TSA on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from attack_matrix import ANCHORS, ATTACKS, Attack, Context, copy_tree, markdown_table
from preserve import Archive
from preserve.errors import NotProvedError
from preserve.log import generate_key, load_signer, read_verifier
from preserve.log.known_heads import KnownHeads
from servers import TestServer, respond
from tsa import running_tsa

REPO = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).parent / "fixtures" / "seeds"
HTML = [("Content-Type", "text/html; charset=utf-8")]

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (TSA)")


@dataclass(frozen=True)
class Setting:
    root: Path  # the honest archive: two captures, an audit, every checkpoint timestamped
    config: Path  # the honest operator's config dir (key, known head)
    older: Path  # the archive after its first capture
    foreign: Path
    offsite: Path  # a checkpoint the operator copied elsewhere at the end
    key: Path
    ca: Path
    tsa_url: str


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setting]:
    base = tmp_path_factory.mktemp("attacks")
    config = base / "config"
    patch = pytest.MonkeyPatch()
    patch.setenv("PRESERVE_CONFIG_HOME", str(config))
    with running_tsa(base / "tsa") as (tsa_url, tsa_dir), TestServer() as server:
        server.routes["/news"] = respond(200, (SEEDS / "news.html").read_bytes(), headers=HTML)
        server.routes["/blog"] = respond(200, (SEEDS / "blog.html").read_bytes(), headers=HTML)
        root = base / "archive"
        archive = Archive(root, tsa_url=tsa_url)
        info = archive.init(key_name="evidence.example/archive")
        archive.capture(server.url("/news"))
        older = base / "older"
        copy_tree(root, older)
        archive.capture(server.url("/blog"))
        assert archive.verify().ok
        offsite = base / "offsite-checkpoint.txt"
        shutil.copyfile(root / "manifests/log/checkpoint", offsite)
        foreign = base / "foreign"
        Archive(foreign, heads=None).capture(server.url("/blog?elsewhere"))
        yield Setting(root, config, older, foreign, offsite, info.private_path,
                      tsa_dir / "ca.pem", tsa_url)
    patch.undo()


def _cell(setting: Setting, attack: Attack, work: Path) -> Context:
    root, config = work / "archive", work / "config"
    copy_tree(setting.root, root)
    copy_tree(setting.config, config)
    older = work / "older"
    copy_tree(setting.older, older)
    attacker_key, _ = generate_key("evidence.example/archive", work / "attacker.key")
    return Context(root=root, older_copy=older, foreign=setting.foreign,
                   attacker=load_signer(attacker_key), owner=load_signer(setting.key),
                   owner_key=setting.key, tsa_url=setting.tsa_url)


def _verify(setting: Setting, ctx: Context, anchor: str, config: Path) -> set[str]:
    heads = KnownHeads(config / "heads") if anchor == "known head" else None
    archive = Archive(ctx.root, heads=heads)
    report = archive.verify(
        record=False,
        checkpoints=[setting.offsite] if anchor == "off-site checkpoint" else [],
        trusted_key=(read_verifier(setting.root).to_text() if anchor == "trusted key"
                     else None),
        tsa_roots=setting.ca if anchor == "RFC 3161" else None,
    )
    return {f.code.code for f in report.errors}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_under_every_anchor(setting: Setting, attack: Attack, tmp_path: Path) -> None:
    for number, anchor in enumerate(ANCHORS):
        work = tmp_path / str(number)
        ctx = _cell(setting, attack, work)
        before = _verify(setting, ctx, anchor, work / "config")
        assert not before, (anchor, "the untouched archive must verify", before)
        attack.run(ctx)
        found = _verify(setting, ctx, anchor, work / "config")
        expected = attack.outcomes[anchor]
        if expected:
            assert expected <= found, (attack.name, anchor, sorted(found))
        else:
            assert not found, (attack.name, anchor, "documented as not caught", sorted(found))


def test_no_attack_is_signed_over(setting: Setting, tmp_path: Path) -> None:
    """After any attack without the key, the next ordinary verify by the key holder records
    its failure but signs nothing: no checkpoint covers the forged state."""
    for attack in ATTACKS:
        if attack.attacker == "key holder":
            continue
        work = tmp_path / attack.name.replace(" ", "-")
        ctx = _cell(setting, attack, work)
        archive = Archive(ctx.root, key=setting.key, heads=KnownHeads(work / "config/heads"))
        assert archive.verify().ok  # the operator's routine audit, before the attack
        attack.run(ctx)
        checkpoints = sorted((ctx.root / "manifests/log/checkpoints").glob("*.txt")) \
            if (ctx.root / "manifests/log/checkpoints").is_dir() else []
        report = archive.verify()
        if report.ok:  # nothing this operator can detect: only the documented MISSED cells
            assert not attack.outcomes["known head"], attack.name
            continue
        after = sorted((ctx.root / "manifests/log/checkpoints").glob("*.txt")) \
            if (ctx.root / "manifests/log/checkpoints").is_dir() else []
        assert after == checkpoints, (attack.name, "a checkpoint was signed over a forgery")
        assert archive.last_audit.signed is None


@pytest.mark.parametrize("name", ["back-dating", "future-dating"])
def test_no_signature_covers_a_leaf_out_of_time_order(setting: Setting, name: str,
                                                      tmp_path: Path) -> None:
    """A leaf appended without the key with a commit time out of order (audit leaves need no
    commit record) is never signed over, by verify or by any other signing (a checkpoint, a
    capture): once covered, it could not be removed, and a leaf from the future would make
    every honest leaf after it look back-dated for good."""
    attack = next(a for a in ATTACKS if a.name == name)
    ctx = _cell(setting, attack, tmp_path)
    archive = Archive(ctx.root, key=setting.key, heads=KnownHeads(tmp_path / "config/heads"))
    assert archive.verify().ok
    attack.run(ctx)
    stored = sorted((ctx.root / "manifests/log/checkpoints").glob("*.txt"))
    with pytest.raises(NotProvedError, match=r"E310|committed"):
        archive.checkpoint()
    assert not archive.verify().ok
    assert sorted((ctx.root / "manifests/log/checkpoints").glob("*.txt")) == stored


def test_threat_model_doc_is_current() -> None:
    doc = (REPO / "docs" / "threat-model.md").read_text(encoding="utf-8")
    assert markdown_table() in doc, "run: python scripts/gen_threat_model.py"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_threat_model.py"),
                           "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
