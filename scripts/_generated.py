"""Shared by the scripts that write generated parts of docs/: replace the text between a
``BEGIN``/``END`` marker pair, or with ``--check`` only report (exit 1) that it is stale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def render(current: str, begin: str, end: str, content: str, doc: Path) -> str:
    """``current`` with the text between the markers replaced by ``content``."""
    start = current.find(begin)
    stop = current.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{doc}: markers not found; add {begin!r} and {end!r}")
    return current[: start + len(begin)] + "\n\n" + content + "\n" + current[stop:]


def main(doc: Path, begin: str, end: str, content: str, script: str,
         argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"regenerate part of {doc.name}")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    current = doc.read_text(encoding="utf-8")
    wanted = render(current, begin, end, content, doc)
    if wanted == current:
        return 0
    if args.check:
        print(f"{doc} is out of date: run {script}", file=sys.stderr)
        return 1
    doc.write_text(wanted, encoding="utf-8")
    print(f"updated {doc}")
    return 0
