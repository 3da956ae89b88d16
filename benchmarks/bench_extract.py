#!/usr/bin/env python3
"""Compare preserve's extractor with trafilatura, readability-lxml and resiliparse on a gold set.

Usage:
    python benchmarks/bench_extract.py DATA_DIR [--scorer PATH/score.py] [--only NAMES]
                                       [--types TYPES] [--repeat N] [--worst N]
                                       [--json OUT] [--dump DIR]

DATA_DIR holds ``html/<key>.html.gz`` (or ``.html``) and ``ground-truth.json``
(``{key: {"articleBody": ..., "url": ...}}``), the layout of the shared benchmark. A key
``<type>__<id>`` belongs to page type ``<type>`` (WCXB); results are printed overall and per
page type. The scorer is imported from ``--scorer`` (default: ``DATA_DIR/../score.py``); its
``score_pair`` is the shingle-F1 metric. preserve gets the raw bytes (it decodes them itself);
the other extractors get the text decoded like the shared runner does (BOM, strict UTF-8,
``<meta charset>``, cp1252).

Timing: the extractors run interleaved, page by page (the order rotates from page to page),
so that the load of a shared machine falls on all of them alike; compare ratios within one
run. Only the extraction call is timed (``perf_counter``), one untimed warm-up call first;
docs/s = documents / sum of call times (with ``--repeat N`` the fastest of N calls per page).
"empty" counts pages with gold text for which the extractor returned no word at all.

trafilatura, readability-lxml and resiliparse are the ``bench`` extra
(``pip install preserve[bench]``); an extractor whose package is missing is skipped with a
note. Not part of the test suite.
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
from typing import Any

Extract = Callable[[bytes, str, "str | None"], str]
Page = tuple[str, bytes, str, "str | None"]

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


def page_type(key: str) -> str:
    """The page type of a key: the part before ``__`` (WCXB), else ``all``."""
    return key.split("__", 1)[0] if "__" in key else "all"


def load_pages(data_dir: Path, types: set[str] | None = None) -> list[Page]:
    gold = json.loads((data_dir / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for key in sorted(gold):
        if types and page_type(key) not in types:
            continue
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
    try:
        from resiliparse.extract.html2text import (  # noqa: PLC0415 - optional (bench extra)
            extract_plain_text,
        )
        from resiliparse.parse.html import HTMLTree  # noqa: PLC0415
    except ImportError:
        print("note: resiliparse not installed, skipped", file=sys.stderr)
    else:

        def resiliparse_text(raw: bytes, html: str, url: str | None) -> str:
            tree = HTMLTree.parse(html)
            return str(extract_plain_text(tree, main_content=True))

        found["resiliparse"] = resiliparse_text
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def run_all(
    chosen: dict[str, Extract], pages: list[Page], repeat: int
) -> tuple[dict[str, list[str]], dict[str, list[float]], dict[str, int]]:
    """Run every extractor on every page, interleaved; texts, best seconds, errors."""
    names = list(chosen)
    decoded = [decode_like_runner(raw) for _, raw, _, _ in pages]
    for name in names:
        with contextlib.suppress(Exception):  # a failing extractor is scored, not fatal
            chosen[name](pages[0][1], decoded[0], pages[0][3])  # warm-up, untimed
    texts = {name: [""] * len(pages) for name in names}
    seconds = {name: [float("inf")] * len(pages) for name in names}
    errors = dict.fromkeys(names, 0)
    for round_ in range(repeat):
        for index, ((_key, raw, _gold, url), html) in enumerate(zip(pages, decoded, strict=True)):
            shift = (index + round_) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                try:
                    text = chosen[name](raw, html, url)
                except Exception:
                    text = ""
                    if round_ == 0:
                        errors[name] += 1
                elapsed = time.perf_counter() - start
                seconds[name][index] = min(seconds[name][index], elapsed)
                texts[name][index] = text
    return texts, seconds, errors


def summarise(
    name: str,
    pages: list[Page],
    texts: list[str],
    seconds: list[float],
    errors: int,
    scorer: ModuleType,
) -> dict[str, Any]:
    docs = [
        scorer.score_pair(key, gold, text)
        for (key, _, gold, _), text in zip(pages, texts, strict=True)
    ]

    def group(indices: list[int]) -> dict[str, Any]:
        chosen = [docs[i] for i in indices]
        return {
            "pages": len(chosen),
            "f1": statistics.fmean(d.f1 for d in chosen),
            "precision": statistics.fmean(d.precision for d in chosen),
            "recall": statistics.fmean(d.recall for d in chosen),
            "empty": sum(1 for d in chosen if d.pred_tokens == 0 and d.gold_tokens > 0),
            "docs_per_s": len(chosen) / sum(seconds[i] for i in indices),
            "p95_ms": percentile([seconds[i] * 1000 for i in indices], 0.95),
        }

    by_type: dict[str, list[int]] = {}
    for index, (key, _, _, _) in enumerate(pages):
        by_type.setdefault(page_type(key), []).append(index)
    return {
        "name": name,
        **group(list(range(len(pages)))),
        "errors": errors,
        "gold_nonempty": sum(1 for d in docs if d.gold_tokens > 0),
        "types": {kind: group(indices) for kind, indices in sorted(by_type.items())},
        "per_doc": {d.key: d.f1 for d in docs},
    }


def _row(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label:<30} {r['f1']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} "
        f"{r['empty']:>5} {r['docs_per_s']:8.1f} {r['p95_ms']:7.1f}"
    )


def report(results: list[dict[str, Any]], pages: list[Page], data: Path, worst: int) -> None:
    header = (
        f"{'extractor':<30} {'F1':>6} {'P':>6} {'R':>6} {'empty':>5} {'docs/s':>8} {'p95 ms':>7}"
    )
    print(f"{len(pages)} pages from {data}")
    print(header + f" {'err':>4}")
    for r in results:
        print(_row(str(r["name"]), r) + f" {r['errors']:>4}")
    kinds = list(results[0]["types"])
    if len(kinds) > 1:
        for kind in kinds:
            count = results[0]["types"][kind]["pages"]
            print(f"\n[{kind}] {count} pages")
            print(header)
            for r in results:
                print(_row(str(r["name"]), r["types"][kind]))
        print("\nper page type, F1 (empty):")
        names = [str(r["name"]) for r in results]
        print(f"{'type':<14}" + "".join(f" {n[:16]:>16}" for n in names))
        for kind in kinds:
            cells = "".join(
                f" {r['types'][kind]['f1']:9.3f} ({r['types'][kind]['empty']:>3})" for r in results
            )
            print(f"{kind:<14}{cells}")
    by_name = {str(r["name"]): r for r in results}
    mine = by_name.get("preserve")
    if mine is None:
        return
    share = mine["empty"] / max(1, mine["gold_nonempty"])
    print(f"\npreserve: {mine['empty']} empty outputs = {share:.2%} of pages with gold text")
    for name, other in by_name.items():
        if name != "preserve":
            print(f"preserve speed / {name}: {mine['docs_per_s'] / other['docs_per_s']:.2f}x")
    ours: dict[str, float] = mine["per_doc"]
    for other in ("trafilatura", "trafilatura(favor_precision)"):
        if other in by_name:
            theirs: dict[str, float] = by_name[other]["per_doc"]
            bad = [k for k in ours if ours[k] < 0.5 and theirs[k] > 0.8]
            print(f"pages below 0.5 for preserve but above 0.8 for {other}: {len(bad)}")
    if worst:
        print(f"preserve's {worst} worst pages:")
        for key in sorted(ours, key=lambda k: (ours[k], k))[:worst]:
            others = "  ".join(
                f"{name}={by_name[name]['per_doc'][key]:.3f}"
                for name in by_name
                if name != "preserve"
            )
            print(f"  {key[:40]:<40}  preserve={ours[key]:.3f}  {others}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("data", type=Path, help="benchmark directory (html/ + ground-truth.json)")
    parser.add_argument("--scorer", type=Path, help="path of score.py (default DATA/../score.py)")
    parser.add_argument("--only", help="comma-separated extractor names to run")
    parser.add_argument("--types", help="comma-separated page types (key prefixes) to run")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="passes over the data; the fastest time per page is kept",
    )
    parser.add_argument("--worst", type=int, default=10, help="list preserve's N worst pages")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--dump", type=Path, help="write each extractor's texts here as JSON")
    args = parser.parse_args(argv)

    scorer = load_scorer(args.scorer or args.data.resolve().parent / "score.py")
    types = {t.strip() for t in args.types.split(",")} if args.types else None
    pages = load_pages(args.data, types)
    chosen = extractors()
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        chosen = {name: func for name, func in chosen.items() if name in wanted}
    texts, seconds, errors = run_all(chosen, pages, max(1, args.repeat))
    results = [
        summarise(name, pages, texts[name], seconds[name], errors[name], scorer) for name in chosen
    ]
    report(results, pages, args.data, args.worst)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        for name in chosen:
            out = {
                key: {"articleBody": text}
                for (key, *_), text in zip(pages, texts[name], strict=True)
            }
            path = args.dump / f"{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}.json"
            path.write_text(json.dumps(out, ensure_ascii=False, indent=0), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
