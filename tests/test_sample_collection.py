"""The sample collection shipped in archive/ + manifests/ verifies, deep, on any clone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRESERVE = str(Path(sys.executable).with_name("preserve"))


def test_sample_collection_verifies_deep(tmp_path: Path) -> None:
    for part in ("archive", "manifests"):
        shutil.copytree(
            REPO / part, tmp_path / part, ignore=shutil.ignore_patterns(".lock", "tmp", "index")
        )
    done = subprocess.run(
        [PRESERVE, "--root", str(tmp_path), "verify", "--deep", "--json", "--no-record"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0, report["findings"]
    assert report["stats"]["manifests_checked"] == 2
    assert report["stats"]["texts_reextracted"] == 2
    titles = {
        json.loads(p.read_text())["extraction"]["title"]
        for p in (tmp_path / "manifests").glob("*.json")
    }
    assert titles == {
        "April 2011 Massacre at Camp Ashraf",
        "A massacre in Iraq that must have pleased Tehran",
    }
