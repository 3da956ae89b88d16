#!/usr/bin/env python3
"""Compare preserve's extractor with trafilatura and readability-lxml on a gold data set.

Usage:
    python benchmarks/bench_extract.py DATA_DIR [--scorer PATH/score.py] [--only NAMES]
                                       [--repeat N] [--worst N] [--json OUT]

DATA_DIR holds ``html/<key>.html.gz`` (or ``.html``) and ``ground-truth.json``
(``{key: {"articleBody": ..., "url": ...}}``), the layout of the shared benchmark. The
scorer is imported from ``--scorer`` (default: ``DATA_DIR/../score.py``); its
``score_pair`` is the shingle-F1 metric. preserve gets the raw bytes (it decodes them
itself); the other extractors get the text decoded like the shared runner does (BOM, strict
UTF-8, ``<meta charset>``, cp1252). Only the extraction call is timed (``perf_counter``), one
untimed warm-up call first; docs/s = documents / sum of call times.

trafilatura and readability-lxml are the ``bench`` extra (``pip install preserve[bench]``);
an extractor whose package is missing is skipped with a note. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import gzip
import importlib.util
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

Extract = Callable[[bytes, str, "str | None"], str]

_META = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def decode_like_runner(raw: bytes) -> str:
    """The shared runner's best-effort decoding, so every extractor sees the same text."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            return raw.decode(codec, errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    match = _META.search(raw[:4096])
    if match:
        try:
            return raw.decode(match.group(1).decode("ascii"), errors="replace")
        except (LookupError, UnicodeError):
            pass
    return raw.decode("cp1252", errors="replace")


def load_scorer(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scorer", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import scorer from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scorer"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


def load_pages(data_dir: Path) -> list[tuple[str, bytes, str, str | None]]:
    gold = json.loads((data_dir / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for key in sorted(gold):
        for suffix in (".html.gz", ".html"):
            path = data_dir / "html" / f"{key}{suffix}"
            if path.is_file():
                raw = path.read_bytes()
                raw = gzip.decompress(raw) if suffix.endswith(".gz") else raw
                item = gold[key]
                pages.append((key, raw, item.get("articleBody") or "", item.get("url")))
                break
    if not pages:
        raise SystemExit(f"{data_dir}: no pages found")
    return pages


def extractors() -> dict[str, Extract]:
    found: dict[str, Extract] = {}
    from preserve.extract import extract  # noqa: PLC0415 - after sys.path is settled

    found["preserve"] = lambda raw, html, url: extract(raw, url).text
    try:
        import trafilatura  # noqa: PLC0415 - optional (bench extra)
    except ImportError:
        print("note: trafilatura not installed, skipped", file=sys.stderr)
    else:
        found["trafilatura"] = lambda raw, html, url: trafilatura.extract(html, url=url) or ""
        found["trafilatura(favor_precision)"] = lambda raw, html, url: (
            trafilatura.extract(html, url=url, favor_precision=True) or ""
        )
    try:
        from lxml import html as lxml_html  # noqa: PLC0415 - optional (bench extra)
        from readability import Document  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:
        print("note: readability-lxml not installed, skipped", file=sys.stderr)
    else:

        def readability_text(raw: bytes, html: str, url: str | None) -> str:
            summary = Document(html, url=url).summary(html_partial=True)
            if not summary.strip():
                return ""
            return str(lxml_html.fromstring(summary).text_content())  # type: ignore[attr-defined]

        found["readability-lxml"] = readability_text
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def run(
    name: str,
    func: Extract,
    pages: list[tuple[str, bytes, str, str | None]],
    scorer: ModuleType,
    repeat: int,
) -> dict[str, object]:
    decoded = [decode_like_runner(raw) for _, raw, _, _ in pages]
    with contextlib.suppress(Exception):  # a failing extractor is scored, not fatal
        func(pages[0][1], decoded[0], pages[0][3])  # warm-up, untimed
    best_seconds: list[float] = [float("inf")] * len(pages)
    texts: list[str] = [""] * len(pages)
    errors = 0
    for _ in range(repeat):
        for index, ((_key, raw, _gold, url), html) in enumerate(zip(pages, decoded, strict=True)):
            start = time.perf_counter()
            try:
                text = func(raw, html, url)
            except Exception:
                text = ""
                errors += 1
            best_seconds[index] = min(best_seconds[index], time.perf_counter() - start)
            texts[index] = text
    docs = [
        scorer.score_pair(key, gold, text)
        for (key, _, gold, _), text in zip(pages, texts, strict=True)
    ]
    return {
        "name": name,
        "f1": statistics.fmean(d.f1 for d in docs),
        "precision": statistics.fmean(d.precision for d in docs),
        "recall": statistics.fmean(d.recall for d in docs),
        "docs_per_s": len(pages) / sum(best_seconds),
        "p95_ms": percentile([s * 1000 for s in best_seconds], 0.95),
        "errors": errors // max(repeat, 1),
        "per_doc": {d.key: d.f1 for d in docs},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="benchmark directory (html/ + ground-truth.json)")
    parser.add_argument("--scorer", type=Path, help="path of score.py (default DATA/../score.py)")
    parser.add_argument("--only", help="comma-separated extractor names to run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="passes over the data; the fastest time per page is kept",
    )
    parser.add_argument("--worst", type=int, default=10, help="list preserve's N worst pages")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    scorer = load_scorer(args.scorer or args.data.resolve().parent / "score.py")
    pages = load_pages(args.data)
    chosen = extractors()
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        chosen = {name: func for name, func in chosen.items() if name in wanted}
    results = [run(name, func, pages, scorer, args.repeat) for name, func in chosen.items()]

    print(f"{len(pages)} pages from {args.data}")
    print(f"{'extractor':<30} {'F1':>6} {'P':>6} {'R':>6} {'docs/s':>8} {'p95 ms':>7} {'err':>4}")
    for r in results:
        print(
            f"{r['name']:<30} {r['f1']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} "
            f"{r['docs_per_s']:8.1f} {r['p95_ms']:7.1f} {r['errors']:>4}"
        )
    by_name = {str(r["name"]): r for r in results}
    mine = by_name.get("preserve")
    if mine is not None:
        ours: dict[str, float] = mine["per_doc"]  # type: ignore[assignment]
        for other in ("trafilatura", "trafilatura(favor_precision)"):
            if other in by_name:
                theirs: dict[str, float] = by_name[other]["per_doc"]  # type: ignore[assignment]
                bad = [k for k in ours if ours[k] < 0.5 and theirs[k] > 0.8]
                print(
                    f"pages below 0.5 for preserve but above 0.8 for {other}: {len(bad)}"
                    + (f" ({', '.join(k[:12] for k in bad)})" if bad else "")
                )
        print(f"preserve's {args.worst} worst pages:")
        for key in sorted(ours, key=lambda k: ours[k])[: args.worst]:
            others = "  ".join(
                f"{name}={by_name[name]['per_doc'][key]:.3f}"  # type: ignore[index]
                for name in by_name
                if name != "preserve"
            )
            print(f"  {key[:16]}  preserve={ours[key]:.3f}  {others}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
