"""Prune boilerplate inside the chosen article: readability's "clean conditionally" on
sub-containers, then block filters (link lines, small boxes named like bylines or share bars,
captions and photo credits, date lines at the edges).

Class and id words are soft evidence, generic web-template vocabulary; no rule names a site.
"""

from __future__ import annotations

import re

from lxml import etree

from .blocks import HEADING_TAGS, Block
from .hints import class_weight, hint_string
from .scoring import MIN_PARAGRAPH_CHARS, Scorer, tag_of

__all__ = [
    "EDGE_BLOCKS",
    "KEEP_SHARE",
    "SMALL_BOX_CHARS",
    "drop_edge_datelines",
    "keep",
    "verdicts",
]

SMALL_BOX_CHARS = 500
EDGE_BLOCKS = 3
#: A sub-container holding this share of the article's text is never pruned.
KEEP_SHARE = 0.5

_BOILER_SHORT = re.compile(
    r"byline|author|dateline|date|time|meta|submitted|posted|share|sharing|social|tags|"
    r"caption|credit|breadcrumb|related|newsletter|subscribe|promo|advert|sponsor|comment|footer|nav|menu|"
    r"print|toolbar|(^|\s)widget|widget(\s|$)|rating|follow|cookie|(^|[\s_-])ads?([\s_-]|$)"
)

_THREAD_BOILER_SHORT = re.compile(
    r"share|sharing|social|tags|caption|credit|breadcrumb|related|newsletter|subscribe|promo|"
    r"advert|sponsor|footer|nav|menu|print|toolbar|(^|\s)widget|widget(\s|$)|rating|follow|"
    r"cookie|(^|[\s_-])ads?([\s_-]|$)"
)

# In a thread, the boxes that hold a post's author and date.
_POST_HEADER = re.compile(r"author|user|poster|member|name|date|time|posted|meta")

# Figure captions and photo credits are not article text (they describe an image).
_CAPTION_TAGS = frozenset({"figure", "figcaption"})
_CAPTION = re.compile(r"caption|credit|photo-?desc|image-?desc|img-?desc")

_CLEAN_TAGS = frozenset(
    {
        "table",
        "ul",
        "ol",
        "dl",
        "div",
        "section",
        "aside",
        "header",
        "footer",
        "form",
        "nav",
        "figure",
        "center",
    }
)


def _should_remove(scorer: Scorer, element: etree._Element) -> bool:
    """Readability's 'clean conditionally', on one sub-container of the article."""
    tag = tag_of(element)
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
    if tag == "table" and density < 0.5 and stats.paragraphs >= 2:
        return False  # a data table (documentation, results) whose cells have some links
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


def _is_boilerplate_heading(scorer: Scorer, element: etree._Element) -> bool:
    return class_weight(element) < 0 or scorer.stat(element).link_density > 0.33


# Per-element verdicts inside the article, computed top-down in one pass (bit flags).
_REMOVED = 1  # removed by clean-conditionally, or inside a removed element
_CAPTION_ALWAYS = 2  # inside <figure>/<figcaption>
_CAPTION_NAMED = 4  # inside an element named like a caption or photo credit
_SMALL_BOILER = 8  # nearest named box is a small boilerplate box (not a quotation)


_FIGURE_CONTENT = frozenset({"table", "pre", "ul", "ol", "dl", "blockquote"})


def _in_figcaption(element: etree._Element, stop: etree._Element) -> bool:
    for ancestor in element.iterancestors():
        if ancestor.tag == "figcaption":
            return True
        if ancestor is stop:
            break
    return False


def verdicts(
    scorer: Scorer, parts: list[etree._Element], *, thread: bool = False
) -> dict[etree._Element, int]:
    """Flags for every element of the article's parts (see the _REMOVED... constants). In a
    ``thread`` (a forum page), boxes named author or date are the posts' headers: kept."""
    boiler = _THREAD_BOILER_SHORT if thread else _BOILER_SHORT
    flags: dict[etree._Element, int] = {}
    # Never prune away most of the article: a wrapper holding this much is not boilerplate.
    most = KEEP_SHARE * sum(scorer.stat(part).text_chars for part in parts)
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
            if scorer.stat(element).text_chars < most and (
                (
                    tag in _CLEAN_TAGS
                    and _should_remove(scorer, element)
                    and not (thread and _POST_HEADER.search(hint_string(element)))
                )
                or (tag in HEADING_TAGS and _is_boilerplate_heading(scorer, element))
            ):
                flags[element] = inherited | _REMOVED
                continue
            verdict = inherited
            if tag in _CAPTION_TAGS:
                verdict |= _CAPTION_ALWAYS
            elif tag in _FIGURE_CONTENT and not _in_figcaption(element, part):
                verdict &= ~_CAPTION_ALWAYS  # a table or code block shown as a figure
            hints = hint_string(element)
            if tag == "blockquote":
                verdict &= ~_SMALL_BOILER
            elif (
                hints and boiler.search(hints) and scorer.stat(element).text_chars < SMALL_BOX_CHARS
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


def keep(block: Block, verdict: int) -> bool:
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


def drop_edge_datelines(blocks: list[Block]) -> list[Block]:
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
