"""Find the article in a cleaned tree: score paragraph containers, pick the best one, add
related siblings, prune boilerplate inside it, and return its text blocks.

The method is readability-like: every paragraph of text gives its ancestors points for its
length and punctuation; a container's score is discounted by its link density and nudged by
generic class/id hints and semantic tags (``<article>``, ``<main>``, ``itemprop=articleBody``).
Inside the winner, link-heavy or boilerplate-named sub-blocks are removed (the "clean
conditionally" step), then short boilerplate blocks are dropped. No rule names a site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from .blocks import BLOCK_TAGS, HEADING_TAGS, Block, render_blocks
from .dom import text_of
from .hints import class_weight, hint_string, is_unlikely

__all__ = ["SETTINGS", "select_article"]

MIN_PARAGRAPH_CHARS = 25
ANCESTOR_LEVELS = 5
SIBLING_RATIO = 0.2
MIN_ARTICLE_CHARS = 250
SMALL_BOX_CHARS = 500
MIN_SIBLING_CHARS = 100

SETTINGS: dict[str, object] = {
    "min_paragraph_chars": MIN_PARAGRAPH_CHARS,
    "ancestor_levels": ANCESTOR_LEVELS,
    "sibling_ratio": SIBLING_RATIO,
    "min_article_chars": MIN_ARTICLE_CHARS,
    "small_box_chars": SMALL_BOX_CHARS,
    "min_sibling_chars": MIN_SIBLING_CHARS,
}

# Commas and semicolons of Latin, CJK and Arabic scripts; sentence ends likewise.
_COMMAS = re.compile("[,;\uff0c\u3001\u060c\uff1b]")
_SENTENCE_END = re.compile("[.!?\u3002\uff01\uff1f\u2026]['\"\u201d\u2019)]*(\\s|$)")
_BOILER_SHORT = re.compile(
    r"byline|author|dateline|date|time|meta|submitted|posted|share|sharing|social|tags|caption|credit|"
    r"breadcrumb|related|newsletter|subscribe|promo|advert|sponsor|comment|footer|nav|menu|"
    r"print|toolbar|widget|rating|follow|cookie|(^|[\s_-])ads?([\s_-]|$)"
)

# Figure captions and photo credits are not article text (they describe an image).
_CAPTION_TAGS = frozenset({"figure", "figcaption"})
_CAPTION = re.compile(r"caption|credit|photo-?desc|image-?desc|img-?desc")

_TAG_PRIOR = {
    "div": 5, "article": 10, "main": 5, "section": 2, "pre": 3, "td": 3, "blockquote": 3,
    "address": -3, "ol": -3, "ul": -3, "dl": -3, "dd": -3, "dt": -3, "li": -3, "form": -3,
    "h1": -5, "h2": -5, "h3": -5, "h4": -5, "h5": -5, "h6": -5, "th": -5,
}
_PARAGRAPH_TAGS = frozenset({"p", "li", "dd", "dt", "td", "th", "pre"})
_CLEAN_TAGS = frozenset(
    {"table", "ul", "ol", "dl", "div", "section", "aside", "header", "footer", "form", "nav",
     "figure", "center"}
)


@dataclass(slots=True)
class _Stats:
    """Text totals of one element's subtree."""

    text_chars: int = 0
    link_chars: int = 0
    commas: int = 0
    paragraphs: int = 0
    p_tags: int = 0
    images: int = 0
    list_items: int = 0
    figcaptions: int = 0
    quoted_chars: int = 0
    heading_chars: int = 0

    @property
    def link_density(self) -> float:
        return self.link_chars / self.text_chars if self.text_chars else 0.0


_EMPTY = _Stats()
_COUNTED_TAGS = frozenset({"p", "img", "li", "figcaption", "blockquote", *HEADING_TAGS})


def _aggregate(body: etree._Element, blocks: list[Block]) -> dict[etree._Element, _Stats]:
    """Subtree totals (text, links, commas, tag counts) for every element, bottom-up, O(n)."""
    stats: dict[etree._Element, _Stats] = {}
    for block in blocks:
        found = stats.get(block.owner)
        if found is None:
            found = stats[block.owner] = _Stats()
        found.text_chars += len(block.text)
        found.link_chars += block.link_chars
        found.commas += len(_COMMAS.findall(block.text))
        if len(block.text) >= MIN_PARAGRAPH_CHARS and block.link_density < 0.5:
            found.paragraphs += 1
    for element in reversed(list(body.iter())):
        tag = element.tag
        own = stats.get(element)
        if tag in _COUNTED_TAGS:
            if own is None:
                own = stats[element] = _Stats()
            if tag == "p":
                own.p_tags += 1
            elif tag == "img":
                own.images += 1
            elif tag == "li":
                own.list_items += 1
            elif tag == "figcaption":
                own.figcaptions += 1
            elif tag == "blockquote":
                own.quoted_chars = own.text_chars
            else:
                own.heading_chars = own.text_chars
        parent = element.getparent()
        if own is None or element is body or parent is None:
            continue
        total = stats.get(parent)
        if total is None:
            total = stats[parent] = _Stats()
        total.text_chars += own.text_chars
        total.link_chars += own.link_chars
        total.commas += own.commas
        total.paragraphs += own.paragraphs
        total.p_tags += own.p_tags
        total.images += own.images
        total.list_items += own.list_items
        total.figcaptions += own.figcaptions
        total.quoted_chars += own.quoted_chars
        total.heading_chars += own.heading_chars
    return stats


def _tag(element: etree._Element) -> str:
    return element.tag if isinstance(element.tag, str) else ""


def _paragraph_score(block: Block) -> float:
    length = len(block.text)
    return (1 + len(_COMMAS.findall(block.text)) + min(length // 100, 3)) * (
        1 - block.link_density
    )


def _prior(element: etree._Element) -> float:
    prior = float(_TAG_PRIOR.get(_tag(element), 0) + class_weight(element))
    itemprop = (element.get("itemprop") or "").lower()
    if "articlebody" in itemprop or itemprop == "text":
        prior += 30
    return prior


class _Scorer:
    def __init__(
        self,
        body: etree._Element,
        blocks: list[Block],
        totals: dict[etree._Element, _Stats],
        skip_unlikely: bool,
    ) -> None:
        self.body = body
        self.totals = totals
        self.scores: dict[etree._Element, float] = {}
        self.unlikely: set[etree._Element] = set()
        if skip_unlikely:
            self._mark_unlikely()
        for block in blocks:
            self._add(block)

    def _mark_unlikely(self) -> None:
        for element in self.body.iter():
            if (
                isinstance(element.tag, str)
                and element not in self.unlikely
                and element.tag not in {"body", "html", "a"}
                and is_unlikely(element)
            ):
                self.unlikely.update(element.iter())

    def stat(self, element: etree._Element) -> _Stats:
        return self.totals.get(element) or _EMPTY

    def _add(self, block: Block) -> None:
        owner = block.owner
        if len(block.text) < MIN_PARAGRAPH_CHARS or owner in self.unlikely:
            return
        if _tag(owner) in HEADING_TAGS:
            return
        points = _paragraph_score(block)
        # A paragraph scores for its container (level 0 is the owner's parent, as in
        # readability, where text inside a div is treated like a <p>).
        node = owner.getparent() if _tag(owner) in _PARAGRAPH_TAGS else owner
        level = 0
        while node is not None and level < ANCESTOR_LEVELS:
            if node in self.unlikely:
                break
            score = self.scores.get(node)
            if score is None:
                score = _prior(node)
            divider = 1 if level == 0 else 2 if level == 1 else level * 3
            self.scores[node] = score + points / divider
            node = node.getparent()
            level += 1

    def final_score(self, element: etree._Element) -> float:
        score = self.scores.get(element)
        if score is None:
            return 0.0
        return score * (1 - self.stat(element).link_density)

    def candidates(self) -> list[tuple[float, int, etree._Element]]:
        ranked: list[tuple[float, int, etree._Element]] = []
        for order, element in enumerate(self.scores):
            ranked.append((self.final_score(element), -order, element))
        ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return ranked


def _ancestors(element: etree._Element) -> list[etree._Element]:
    result = []
    node = element.getparent()
    while node is not None:
        result.append(node)
        node = node.getparent()
    return result


def _choose_top(scorer: _Scorer) -> tuple[etree._Element, float] | None:
    ranked = scorer.candidates()
    if not ranked:
        return None
    top_score, _, top = ranked[0]
    if top_score <= 0:
        return None
    # Several strong candidates under one ancestor: the article is split; take the ancestor.
    top_line = set(_ancestors(top))
    alternatives = [
        el
        for score, _, el in ranked[1:5]
        if score >= 0.75 * top_score and el not in top_line and top not in _ancestors(el)
    ]
    if len(alternatives) >= 2:
        for ancestor in _ancestors(top):
            if _tag(ancestor) in {"body", "html"}:
                break
            inside = sum(1 for alt in alternatives if ancestor in _ancestors(alt))
            if inside >= 2:
                top = ancestor
                break
    # Climb while the parent scores nearly as well (the article wraps its parts).
    last = scorer.final_score(top)
    threshold = last / 3
    for parent in _ancestors(top):
        if _tag(parent) in {"body", "html"}:
            break
        score = scorer.final_score(parent)
        if score < threshold:
            break
        if score > last:
            top = parent
            break
        last = score
    # An only child carries no structure of its own.
    wrapper = top.getparent()
    while wrapper is not None and _tag(wrapper) not in {"body", "html"} and len(wrapper) == 1:
        top = wrapper
        wrapper = top.getparent()
    return top, max(scorer.final_score(top), top_score)


def _sibling_parts(
    scorer: _Scorer, top: etree._Element, top_score: float
) -> list[etree._Element]:
    parent = top.getparent()
    if parent is None or _tag(top) in {"body", "html"}:
        return [top]
    threshold = max(10.0, top_score * SIBLING_RATIO)
    top_class = top.get("class") or ""
    parts: list[etree._Element] = []
    for sibling in parent:
        if not isinstance(sibling.tag, str):
            continue
        if sibling is top:
            parts.append(sibling)
            continue
        if sibling in scorer.unlikely:
            continue
        bonus = top_score * 0.2 if top_class and sibling.get("class") == top_class else 0.0
        if (
            scorer.final_score(sibling) + bonus >= threshold
            and scorer.stat(sibling).text_chars >= MIN_SIBLING_CHARS
        ):
            parts.append(sibling)
            continue
        if _tag(sibling) == "p":
            stats = scorer.stat(sibling)
            length, density = stats.text_chars, stats.link_density
            if length > 80 and density < 0.25:
                parts.append(sibling)
            elif 0 < length <= 80 and density == 0:
                text = text_of(sibling)
                if _SENTENCE_END.search(text):
                    parts.append(sibling)
    return parts


def _should_remove(scorer: _Scorer, element: etree._Element) -> bool:
    """Readability's 'clean conditionally', on one sub-container of the article."""
    tag = _tag(element)
    weight = class_weight(element)
    stats = scorer.stat(element)
    length = stats.text_chars
    if stats.quoted_chars * 2 >= length > 0:
        return False  # an embedded post or a quotation: quoted text is the article's
    if weight < 0 and weight + scorer.scores.get(element, 0.0) < 0:
        return True
    if stats.commas >= 10:
        return False
    paragraphs = max(stats.paragraphs, stats.p_tags)
    images = stats.images
    items = stats.list_items
    density = stats.link_density
    in_list = tag in {"ul", "ol", "dl"}
    if tag == "figure" or stats.figcaptions:
        return False
    if in_list and density < 0.5 and length >= 60 * max(1, items):
        return False  # a list of sentences (bullet-point prose), not a list of links
    if images > 1 and paragraphs / images < 0.5 and density > 0.1:
        return True
    if not in_list and items - 100 > paragraphs:
        return True
    if not in_list and length < MIN_PARAGRAPH_CHARS and (images == 0 or images > 2):
        # Tiny and not a picture: remove, unless it only wraps a subheading.
        return not (length and stats.heading_chars == length)
    if weight < 25 and density > 0.2:
        return True
    return weight >= 25 and density > 0.5


def _is_boilerplate_heading(scorer: _Scorer, element: etree._Element) -> bool:
    return class_weight(element) < 0 or scorer.stat(element).link_density > 0.33


# Per-element verdicts inside the article, computed top-down in one pass (bit flags).
_REMOVED = 1  # removed by clean-conditionally, or inside a removed element
_CAPTION_ALWAYS = 2  # inside <figure>/<figcaption>
_CAPTION_NAMED = 4  # inside an element named like a caption or photo credit
_SMALL_BOILER = 8  # nearest named box is a small boilerplate box (not a quotation)


def _verdicts(scorer: _Scorer, parts: list[etree._Element]) -> dict[etree._Element, int]:
    """Flags for every element of the article's parts (see the _REMOVED... constants)."""
    flags: dict[etree._Element, int] = {}
    for part in parts:
        flags[part] = _CAPTION_ALWAYS if part.tag in _CAPTION_TAGS else 0
        for element in part.iterdescendants():
            if not isinstance(element.tag, str):
                continue
            tag = element.tag
            inherited = flags.get(element.getparent(), 0)  # type: ignore[arg-type]
            if inherited & _REMOVED:
                flags[element] = inherited
                continue
            if (tag in _CLEAN_TAGS and _should_remove(scorer, element)) or (
                tag in HEADING_TAGS and _is_boilerplate_heading(scorer, element)
            ):
                flags[element] = inherited | _REMOVED
                continue
            verdict = inherited
            if tag in _CAPTION_TAGS:
                verdict |= _CAPTION_ALWAYS
            hints = hint_string(element)
            if tag == "blockquote":
                verdict &= ~_SMALL_BOILER
            elif (
                hints
                and _BOILER_SHORT.search(hints)
                and scorer.stat(element).text_chars < SMALL_BOX_CHARS
            ):
                verdict |= _SMALL_BOILER
            if (
                hints
                and _CAPTION.search(hints)
                and scorer.stat(element).text_chars < SMALL_BOX_CHARS
            ):
                verdict |= _CAPTION_NAMED
            flags[element] = verdict
    return flags


def _keep(block: Block, verdict: int) -> bool:
    length = len(block.text)
    if verdict & (_REMOVED | _CAPTION_ALWAYS):
        return False
    if verdict & _CAPTION_NAMED and length < 400:
        return False
    if block.link_density > 0.5 and length < 300:
        plain = length - block.link_chars
        # Only a one-line <p> sentence may be mostly links (names and titles linked in prose);
        # lines of links separated by <br> are a link list.
        if block.tag != "p" or "\n" in block.text or block.link_density > 0.85 or plain < 20:
            return False
    return not (length < 120 and verdict & _SMALL_BOILER)


_DATELINE = re.compile(
    r"(1[89]|20)\d\d\b.*\b\d{1,2}[:h.]\d\d\b|\b\d{1,2}[:h.]\d\d\b.*(1[89]|20)\d\d"
)
EDGE_BLOCKS = 3


def _drop_edge_datelines(blocks: list[Block]) -> list[Block]:
    """Drop short date-and-time lines ("Nov. 19, 2019, 8:41 AM") at the article's edges."""
    last = len(blocks) - 1
    return [
        block
        for index, block in enumerate(blocks)
        if not (
            (index < EDGE_BLOCKS or index > last - EDGE_BLOCKS)
            and len(block.text) <= 60
            and _DATELINE.search(block.text)
        )
    ]


def select_article(body: etree._Element) -> list[Block]:
    """The article's blocks, in reading order; empty if nothing looks like an article."""
    all_blocks = render_blocks(body)
    totals = _aggregate(body, all_blocks)
    best: list[Block] = []
    for skip_unlikely in (True, False):
        scorer = _Scorer(body, all_blocks, totals, skip_unlikely)
        chosen = _choose_top(scorer)
        if chosen is None:
            continue
        top, top_score = chosen
        parts = _sibling_parts(scorer, top, top_score)
        verdicts = _verdicts(scorer, parts)
        if all(_tag(part) in BLOCK_TAGS for part in parts):
            # Block-level parts render exactly as they did inside the body: reuse those blocks.
            candidates = [block for block in all_blocks if block.owner in verdicts]
        else:
            candidates = [block for part in parts for block in render_blocks(part)]
        blocks = [block for block in candidates if _keep(block, verdicts.get(block.owner, 0))]
        blocks = _drop_edge_datelines(blocks)
        while blocks and blocks[-1].tag in HEADING_TAGS:
            blocks.pop()  # a heading with nothing after it introduced something we removed
        if sum(len(block.text) for block in blocks) >= MIN_ARTICLE_CHARS:
            return blocks
        if sum(len(b.text) for b in blocks) > sum(len(b.text) for b in best):
            best = blocks
    return best
