"""Select the article of a cleaned page: score (scoring.py), prune (pruning.py), and fall
back to scoring everything when skipping unlikely regions found too little.
"""

from __future__ import annotations

from lxml import etree

from . import pruning, scoring
from .blocks import BLOCK_TAGS, HEADING_TAGS, Block, render_blocks

__all__ = ["MIN_ARTICLE_CHARS", "SETTINGS", "select_article"]

MIN_ARTICLE_CHARS = 250

SETTINGS: dict[str, object] = {
    "min_paragraph_chars": scoring.MIN_PARAGRAPH_CHARS,
    "ancestor_levels": scoring.ANCESTOR_LEVELS,
    "split_min_share": scoring.SPLIT_MIN_SHARE,
    "sibling_ratio": scoring.SIBLING_RATIO,
    "min_sibling_chars": scoring.MIN_SIBLING_CHARS,
    "min_article_chars": MIN_ARTICLE_CHARS,
    "small_box_chars": pruning.SMALL_BOX_CHARS,
    "edge_blocks": pruning.EDGE_BLOCKS,
}


def select_article(
    body: etree._Element,
    all_blocks: list[Block],
    totals: dict[etree._Element, scoring.Stats],
    *,
    thread: bool = False,
) -> list[Block]:
    """The article's blocks, in reading order; empty if nothing looks like an article.

    ``all_blocks`` are the body's blocks and ``totals`` their aggregate (scoring.aggregate);
    ``thread``: the page is a discussion, whose posts keep their author and date lines.
    """
    best: list[Block] = []
    for skip_unlikely in (True, False):
        scorer = scoring.Scorer(body, all_blocks, totals, skip_unlikely)
        chosen = scoring.choose_top(scorer)
        if chosen is None:
            continue
        top, top_score = chosen
        parts = scoring.repeated_parts(scorer, top) or scoring.sibling_parts(scorer, top, top_score)
        verdicts = pruning.verdicts(scorer, parts, thread=thread)
        if all(scoring.tag_of(part) in BLOCK_TAGS for part in parts):
            # Block-level parts render exactly as they did inside the body: reuse those blocks.
            candidates = [block for block in all_blocks if block.owner in verdicts]
        else:
            candidates = [block for part in parts for block in render_blocks(part)]
        blocks = [b for b in candidates if pruning.keep(b, verdicts.get(b.owner, 0))]
        blocks = pruning.drop_edge_datelines(blocks)
        while blocks and blocks[-1].tag in HEADING_TAGS:
            blocks.pop()  # a heading with nothing after it introduced something we removed
        if sum(len(block.text) for block in blocks) >= MIN_ARTICLE_CHARS:
            return blocks
        if sum(len(b.text) for b in blocks) > sum(len(b.text) for b in best):
            best = blocks
    return best
