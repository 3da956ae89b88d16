"""Find the page's main region and render it without the page chrome around its content.

The main region is the outermost ``<main>`` (or ``role=main``) that holds a fair share of
the page's text, else the body. Inside it, chrome is left out: landmarks (``<nav>``,
``<aside>``, page-level ``<header>`` and ``<footer>``, ARIA navigation, banner, contentinfo,
complementary and search roles), and, when pruning, boxes whose class or id names say
navigation, sidebar, breadcrumb, sharing, cookie banner and the like, and link lists whose
items are short links. A box that holds half of the region's text and half of its prose is
never left out. This is the text of pages whose content is not one run of prose: forum
threads, listings, product pages, service pages. Choosing between it and the article container is
the caller's job.
"""

from __future__ import annotations

import re

from lxml import etree

from .blocks import Block
from .dom import short_text
from .hints import is_unlikely
from .scoring import Stats

__all__ = ["LANDMARK_ROLES", "main_region", "region_blocks", "title_heading"]

#: A ``<main>`` holding less than this share of the page's text is not the main region.
MAIN_MIN_SHARE = 0.25
#: A box holding at least this share of the region's text and of its prose (paragraphs of
#: PROSE_CHARS that are not links) is never left out.
KEEP_SHARE = 0.5
PROSE_CHARS = 80

#: Blocks that are one link are kept (as listing items) from this length, when pruning.
MIN_LINK_BLOCK_CHARS = 20
#: Cards (card_runs): at least this many look-alike siblings, shorter than this on average.
CARD_MIN_RUN = 4
CARD_MAX_CHARS = 300
_DIGITS = re.compile(r"\d+")

LANDMARK_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "search", "menubar", "toolbar"}
)
_SECTIONING = frozenset({"article", "section", "main"})
_LINK_LIST_TAGS = frozenset({"ul", "ol", "nav", "div", "section", "table", "dl", "p"})


def _role(element: etree._Element) -> str:
    return (element.get("role") or "").strip().lower()


def main_region(body: etree._Element, totals: dict[etree._Element, Stats]) -> etree._Element:
    """The outermost ``<main>``/``role=main`` with a fair share of the text, else ``body``."""
    total = totals[body].text_chars if body in totals else 0
    best: etree._Element | None = None
    for element in body.iter("main", "div", "section", "article"):
        if element.tag != "main" and _role(element) != "main":
            continue
        stats = totals.get(element)
        size = stats.text_chars if stats else 0
        if size >= MAIN_MIN_SHARE * total and (best is None or size > totals[best].text_chars):
            if best is not None and best in element.iterancestors():
                continue
            best = element
    return best if best is not None else body


def _signature(element: etree._Element) -> tuple[str, str]:
    return str(element.tag), _DIGITS.sub("", element.get("class") or "").strip()


def card_runs(region: etree._Element, totals: dict[etree._Element, Stats]) -> set[etree._Element]:
    """Cards: runs of CARD_MIN_RUN or more look-alike siblings (same tag and class), each a
    short box with a link (a product tile, a teaser). On a product page these are other
    products, not this one."""
    cards: set[etree._Element] = set()
    for parent in region.iter():
        if len(parent) < CARD_MIN_RUN or not isinstance(parent.tag, str):
            continue
        groups: dict[tuple[str, str], list[etree._Element]] = {}
        for child in parent:
            if isinstance(child.tag, str):
                groups.setdefault(_signature(child), []).append(child)
        for members in groups.values():
            if len(members) < CARD_MIN_RUN:
                continue
            sized = [totals[m].text_chars for m in members if m in totals]
            linked = sum(1 for m in members if m.tag == "a" or m.find(".//a") is not None)
            if sized and linked >= 0.75 * len(members) and sum(sized) / len(sized) < CARD_MAX_CHARS:
                cards.update(members)
    return cards


def title_heading(body: etree._Element, title: str | None) -> etree._Element | None:
    """The first ``<h1>`` whose text is the page's title."""
    if not title:
        return None
    wanted = " ".join(title.split()).casefold()
    for heading in body.iter("h1"):
        # (read only as far as it could match: casefolding never shortens a text; headings
        # nested in links nested in headings were each read whole)
        text = short_text(heading, len(wanted))
        if text is not None and text.casefold() == wanted:
            return heading
    return None


def _is_landmark(element: etree._Element) -> bool:
    tag = element.tag
    if tag in {"nav", "aside"} or _role(element) in LANDMARK_ROLES:
        return True
    if tag in {"header", "footer"}:
        # Only the page's own header and footer; an article's header holds its title.
        return not any(a.tag in _SECTIONING for a in element.iterancestors())
    return False


def _is_page_footer(element: etree._Element) -> bool:
    """The page's own footer (``role=contentinfo``, a ``<footer>`` outside any sectioning
    element): fine print, however much of the page it holds."""
    if _role(element) == "contentinfo":
        return True
    return element.tag == "footer" and not any(
        a.tag in _SECTIONING for a in element.iterancestors()
    )


def _is_link_list(stats: Stats, blocks_in: int) -> bool:
    """Many short links and little else: a menu, a tag cloud, a list of other pages."""
    if stats.text_chars == 0 or blocks_in < 3:
        return False
    return stats.link_density > 0.8 and stats.text_chars / blocks_in < 30


def region_blocks(
    region: etree._Element,
    blocks: list[Block],
    totals: dict[etree._Element, Stats],
    *,
    prune: bool,
    title: etree._Element | None = None,
    drop_cards: bool = False,
    short_links: bool = False,
) -> list[Block]:
    """The blocks of ``region`` without its chrome (see the module docstring): landmarks,
    and when ``prune``, boxes named like chrome and link lists (and with ``drop_cards``,
    card runs); blocks that are all link inside boxes named like chrome, and short ones
    (menu entries) unless ``short_links``. The boxes around ``title`` (the page's title
    heading) are never chrome."""
    region_size = totals[region].text_chars if region in totals else 0
    protected = set(title.iterancestors()) if title is not None else set()
    keep_size = KEEP_SHARE * region_size
    left_out: set[etree._Element] = card_runs(region, totals) if drop_cards else set()
    named_chrome: set[etree._Element] = set()
    inside = set(region.iter())
    prose_in: dict[etree._Element, int] = {}
    region_prose = 0
    for block in blocks:
        if len(block.text) >= PROSE_CHARS and block.link_density < 0.3 and block.owner in inside:
            region_prose += len(block.text)
            for ancestor in block.owner.iterancestors():
                prose_in[ancestor] = prose_in.get(ancestor, 0) + len(block.text)
    # A box is the content (never left out) only with half of the region's text and half of
    # its prose: a sidebar made big by link lists, with one short blurb, is still a sidebar.
    prose_size = max(1.0, KEEP_SHARE * region_prose)
    walker = etree.iterwalk(region, events=("start",))
    for _, element in walker:
        if element is region or not isinstance(element.tag, str):
            continue
        stats = totals.get(element)
        if stats is None:
            walker.skip_subtree()  # no text inside
            continue
        if element in protected or (
            stats.text_chars >= keep_size
            and prose_in.get(element, 0) >= prose_size
            and not _is_page_footer(element)
        ):
            continue
        if _is_landmark(element) or (
            prune
            and (
                is_unlikely(element)
                or (element.tag in _LINK_LIST_TAGS and _is_link_list(stats, stats.blocks))
            )
        ):
            left_out.add(element)
            walker.skip_subtree()
        elif not prune and is_unlikely(element):
            named_chrome.add(element)
    excluded: set[etree._Element] = set()
    for element in left_out:
        excluded.update(element.iter())
    in_named: set[etree._Element] = set()
    for element in named_chrome:
        in_named.update(element.iterdescendants())
    kept: list[Block] = []
    for block in blocks:
        owner = block.owner
        if owner not in inside or owner in excluded:
            continue
        if block.link_density >= 1.0 and (
            (len(block.text) < MIN_LINK_BLOCK_CHARS and not short_links) or owner in in_named
        ):
            continue  # a menu entry; longer links are kept (the item titles of a listing)
        kept.append(block)
    return kept
