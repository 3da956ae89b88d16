"""Score paragraph containers and choose the article: readability-like.

Every paragraph of text (a block of 25+ characters) gives its container points for being a
paragraph, for its commas and for its length; the container's ancestors get a decreasing share.
A container's score starts from a prior (its tag, generic class/id hints, ``itemprop``) and is
discounted by its link density. The best container, climbed to the ancestor that holds a split
article, plus siblings that score well, is the article. Pruning inside it is pruning.py's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from .blocks import HEADING_TAGS, Block
from .dom import text_of
from .hints import class_weight, is_overlay, is_unlikely

__all__ = [
    "ANCESTOR_LEVELS",
    "MIN_PARAGRAPH_CHARS",
    "MIN_SIBLING_CHARS",
    "SIBLING_RATIO",
    "Scorer",
    "Stats",
    "aggregate",
    "choose_top",
    "paragraph_points",
    "scored_container",
    "sibling_parts",
    "tag_of",
]

MIN_PARAGRAPH_CHARS = 25
ANCESTOR_LEVELS = 5
SIBLING_RATIO = 0.2
MIN_SIBLING_CHARS = 100
#: Look-alike siblings (repeated_parts): how many, how much text each, how far up to look.
REPEAT_MIN_SIBLINGS = 2
REPEAT_MIN_CHARS = 50
REPEAT_LEVELS = 3

# Commas and semicolons of Latin, CJK and Arabic scripts; sentence ends likewise.
_COMMAS = re.compile("[,;\uff0c\u3001\u060c\uff1b]")
_SENTENCE_END = re.compile("[.!?\u3002\uff01\uff1f\u2026]['\"\u201d\u2019)]*(\\s|$)")

_TAG_PRIOR = {
    "div": 5,
    "article": 10,
    "main": 5,
    "section": 2,
    "pre": 3,
    "td": 3,
    "blockquote": 3,
    "address": -3,
    "ol": -3,
    "ul": -3,
    "dl": -3,
    "dd": -3,
    "dt": -3,
    "li": -3,
    "form": -3,
    "h1": -5,
    "h2": -5,
    "h3": -5,
    "h4": -5,
    "h5": -5,
    "h6": -5,
    "th": -5,
}
_PARAGRAPH_TAGS = frozenset({"p", "li", "dd", "dt", "td", "th", "pre"})


@dataclass(slots=True)
class Stats:
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
    blocks: int = 0

    @property
    def link_density(self) -> float:
        return self.link_chars / self.text_chars if self.text_chars else 0.0


_EMPTY = Stats()
_COUNTED_TAGS = frozenset({"p", "img", "li", "figcaption", "blockquote", *HEADING_TAGS})


def aggregate(body: etree._Element, blocks: list[Block]) -> dict[etree._Element, Stats]:
    """Subtree totals (text, links, commas, tag counts) for every element, bottom-up, O(n)."""
    stats: dict[etree._Element, Stats] = {}
    for block in blocks:
        found = stats.get(block.owner)
        if found is None:
            found = stats[block.owner] = Stats()
        found.text_chars += len(block.text)
        found.blocks += 1
        found.link_chars += block.link_chars
        found.commas += len(_COMMAS.findall(block.text))
        if len(block.text) >= MIN_PARAGRAPH_CHARS and block.link_density < 0.5:
            found.paragraphs += 1
    for element in reversed(list(body.iter(etree.Element))):
        tag = element.tag
        own = stats.get(element)
        if tag in _COUNTED_TAGS:
            if own is None:
                own = stats[element] = Stats()
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
        if own is None or element is body:
            continue
        parent = element.getparent()
        if parent is None:
            continue
        total = stats.get(parent)
        if total is None:
            total = stats[parent] = Stats()
        # (a test is cheaper than an addition stored back: most counts are zero)
        if own.blocks:
            total.text_chars += own.text_chars
            total.link_chars += own.link_chars
            total.blocks += own.blocks
            if own.commas:
                total.commas += own.commas
            if own.paragraphs:
                total.paragraphs += own.paragraphs
            if own.quoted_chars:
                total.quoted_chars += own.quoted_chars
            if own.heading_chars:
                total.heading_chars += own.heading_chars
        if own.p_tags:
            total.p_tags += own.p_tags
        if own.images:
            total.images += own.images
        if own.list_items:
            total.list_items += own.list_items
        if own.figcaptions:
            total.figcaptions += own.figcaptions
    return stats


def tag_of(element: etree._Element) -> str:
    return element.tag if isinstance(element.tag, str) else ""


def _paragraph_score(block: Block) -> float:
    length = len(block.text)
    return (1 + len(_COMMAS.findall(block.text)) + min(length // 100, 3)) * (1 - block.link_density)


def paragraph_points(block: Block) -> float:
    """The points ``block`` gives its container (0 for a heading or a block too short to
    be a paragraph); ``unlikely`` regions are not excluded here."""
    if len(block.text) < MIN_PARAGRAPH_CHARS or tag_of(block.owner) in HEADING_TAGS:
        return 0.0
    return _paragraph_score(block)


def scored_container(block: Block) -> etree._Element | None:
    """The element that ``block``'s points go to first (see Scorer._add)."""
    owner = block.owner
    return owner.getparent() if tag_of(owner) in _PARAGRAPH_TAGS else owner


def _prior(element: etree._Element) -> float:
    prior = float(_TAG_PRIOR.get(tag_of(element), 0) + class_weight(element))
    itemprop = (element.get("itemprop") or "").lower()
    if "articlebody" in itemprop or itemprop == "text":
        prior += 30
    return prior


class Scorer:
    def __init__(
        self,
        body: etree._Element,
        blocks: list[Block],
        totals: dict[etree._Element, Stats],
        skip_unlikely: bool,
    ) -> None:
        self.body = body
        self.totals = totals
        self.scores: dict[etree._Element, float] = {}
        self.unlikely: set[etree._Element] = set()
        # Without skip_unlikely (pages that name their content with chrome words), overlays
        # are still skipped: a cookie-consent or sign-in box is never the article.
        self._mark_unlikely(is_unlikely if skip_unlikely else is_overlay)
        for block in blocks:
            self._add(block)

    def _mark_unlikely(self, unlikely: Callable[[etree._Element], bool]) -> None:
        for element in self.body.iter():
            if (
                isinstance(element.tag, str)
                and element not in self.unlikely
                and element.tag not in {"body", "html", "a"}
                and unlikely(element)
            ):
                self.unlikely.update(element.iter())

    def stat(self, element: etree._Element) -> Stats:
        return self.totals.get(element) or _EMPTY

    def _add(self, block: Block) -> None:
        owner = block.owner
        if len(block.text) < MIN_PARAGRAPH_CHARS or owner in self.unlikely:
            return
        if tag_of(owner) in HEADING_TAGS:
            return
        points = _paragraph_score(block)
        # A paragraph scores for its container (level 0 is the owner's parent, as in
        # readability, where text inside a div is treated like a <p>).
        node = owner.getparent() if tag_of(owner) in _PARAGRAPH_TAGS else owner
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

    def top_score(self) -> float:
        """The best final score of any element (0 when nothing scored)."""
        return max(map(self.final_score, self.scores), default=0.0)

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


def choose_top(scorer: Scorer) -> tuple[etree._Element, float] | None:
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
        if score >= 0.75 * top_score
        and el not in top_line
        and top not in _ancestors(el)
        and scorer.stat(el).text_chars >= SPLIT_MIN_SHARE * scorer.stat(top).text_chars
    ]
    if len(alternatives) >= 2:
        for ancestor in _ancestors(top):
            if tag_of(ancestor) in {"body", "html"}:
                break
            inside = sum(1 for alt in alternatives if ancestor in _ancestors(alt))
            if inside >= 2:
                top = ancestor
                break
    # Climb while the parent scores nearly as well (the article wraps its parts).
    last = scorer.final_score(top)
    threshold = last / 3
    for parent in _ancestors(top):
        if tag_of(parent) in {"body", "html"}:
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
    while wrapper is not None and tag_of(wrapper) not in {"body", "html"} and len(wrapper) == 1:
        top = wrapper
        wrapper = top.getparent()
    return top, max(scorer.final_score(top), top_score)


#: A strong candidate counts as another part of a split article only with this share of the
#: best candidate's text (a teaser's one paragraph scores nearly as well, by its class name).
SPLIT_MIN_SHARE = 0.1

_DIGITS = re.compile(r"\d+")
_REPEAT_TAGS = frozenset({"article", "section", "li", "tr"})


def _signature(element: etree._Element) -> tuple[str, str]:
    return tag_of(element), _DIGITS.sub("", element.get("class") or "").strip()


def repeated_parts(scorer: Scorer, top: etree._Element) -> list[etree._Element] | None:
    """When the chosen container is one of a run of look-alike siblings (posts of a thread,
    sections of a page, cards), the content is split across them: all of them, in order.

    Looks at the container and its first ancestors; a look-alike has the same tag and class
    (digits ignored), holds REPEAT_MIN_CHARS of text that is not mostly links.
    """
    node = top
    for _ in range(REPEAT_LEVELS):
        parent = node.getparent()
        if parent is None or tag_of(parent) in {"body", "html"}:
            return None
        tag, cls = _signature(node)
        if cls or tag in _REPEAT_TAGS:
            same = [
                sibling
                for sibling in parent
                if sibling is not node
                and isinstance(sibling.tag, str)
                and _signature(sibling) == (tag, cls)
                and sibling not in scorer.unlikely
                and scorer.stat(sibling).text_chars >= REPEAT_MIN_CHARS
                and scorer.stat(sibling).link_density < 0.3
            ]
            if len(same) >= REPEAT_MIN_SIBLINGS:
                chosen = {node, *same}
                return [sibling for sibling in parent if sibling in chosen]
        node = parent
    return None


def sibling_parts(scorer: Scorer, top: etree._Element, top_score: float) -> list[etree._Element]:
    parent = top.getparent()
    if parent is None or tag_of(top) in {"body", "html"}:
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
        if tag_of(sibling) == "p":
            stats = scorer.stat(sibling)
            length, density = stats.text_chars, stats.link_density
            if length > 80 and density < 0.25:
                parts.append(sibling)
            elif 0 < length <= 80 and density == 0:
                text = text_of(sibling)
                if _SENTENCE_END.search(text):
                    parts.append(sibling)
    return parts
