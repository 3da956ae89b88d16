"""The extraction pipeline: decode, parse, read metadata, clean, cut comments, choose the
article container or the main region, fall back step by step when that finds (almost)
nothing, render the clean text. Pure: no I/O, no global state, deterministic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from lxml import etree

from . import article, budget, decode, dom, pruning, regions, scoring
from .blocks import HEADING_TAGS, Block, render_blocks
from .clean import DESKTOP_WIDTH, HIDDEN_KEEP_SHARE, PARKED_PIECE_SHARE, clean
from .comments import cut_comments
from .html5 import MAX_DEPTH, MAX_SINGLE_CHOICE_OPTIONS
from .metadata import Metadata, read_metadata
from .model import Comment, Extraction
from .nesting import MAX_FORMATTING
from .pagetype import declares_article, guess_page_type, is_forum, is_product

__all__ = [
    "EXTRACTOR_NAME",
    "EXTRACTOR_SETTINGS",
    "EXTRACTOR_VERSION",
    "REASON_STOPPED",
    "TIME_LIMIT_SECONDS",
    "PreserveExtractor",
    "extract",
    "stopped_reason",
    "was_stopped",
]

EXTRACTOR_NAME = "preserve"
#: Changes whenever the output for some input may change (a test pins a corpus hash to it).
EXTRACTOR_VERSION = "2.13.0"
#: An extraction running longer than this (wall-clock seconds) is stopped: its result is
#: empty with :data:`REASON_STOPPED` (since 2.12.0; see :mod:`preserve.extract.budget`).
TIME_LIMIT_SECONDS = 30.0
#: A result shorter than this (in characters) and than TINY_SHARE of the page's visible text
#: is tiny: the next step of the fallback chain is tried.
MIN_TEXT_CHARS = 200
TINY_SHARE = 0.1
#: The article container wins over the main region when it holds this share of its text,
#: or, on pages declared articles, when it has this share of the prose in the rest.
ARTICLE_SHARE = 0.7
REST_PROSE_SHARE = 0.5
PROSE_CHARS = 80
#: The article's scoring overrides that choice. The main region wins when the rest of it
#: earns REST_POINTS_SHARE of the container's paragraph points, REST_STRONG_SHARE (of the
#: container's size) of it inside elements scoring STRONG_SCORE of the best score.
REST_POINTS_SHARE = 0.55
REST_STRONG_SHARE = 0.03
STRONG_SCORE = 0.5
#: The container wins when it holds MIN_ARTICLE_SHARE of the region's text and the
#: article's pruning, run over the region, keeps less than MAIN_KEPT_SHARE of it.
MIN_ARTICLE_SHARE = 0.3
MAIN_KEPT_SHARE = 0.05
#: The blocks of a chosen main region before its first <h1> are left out when they hold at
#: most this share of its text (since 2.6.0).
BEFORE_HEADING_SHARE = 0.3
#: Pruning that would keep less than this share of the main region's text is not done: the
#: region is then a list of link cards (job offers, search results), not chrome (since 2.10.0).
PRUNED_MIN_SHARE = 0.1

EXTRACTOR_SETTINGS: Mapping[str, object] = MappingProxyType(
    {
        "max_parse_chars": dom.MAX_PARSE_CHARS,
        "max_parse_tags": dom.MAX_PARSE_TAGS,
        "max_sniff_bytes": decode.MAX_SNIFF_BYTES,
        "comments": "separate",
        "title_in_text": False,
        **article.SETTINGS,
        "min_text_chars": MIN_TEXT_CHARS,
        "tiny_share": TINY_SHARE,
        "article_share": ARTICLE_SHARE,
        "rest_prose_share": REST_PROSE_SHARE,
        "prose_chars": PROSE_CHARS,
        "rest_points_share": REST_POINTS_SHARE,
        "rest_strong_share": REST_STRONG_SHARE,
        "strong_score": STRONG_SCORE,
        "min_article_share": MIN_ARTICLE_SHARE,
        "main_kept_share": MAIN_KEPT_SHARE,
        "before_heading_share": BEFORE_HEADING_SHARE,
        "pruned_min_share": PRUNED_MIN_SHARE,
        "main_min_share": regions.MAIN_MIN_SHARE,
        "keep_share": regions.KEEP_SHARE,
        "max_depth": MAX_DEPTH,
        "max_formatting": MAX_FORMATTING,
        "max_single_choice_options": MAX_SINGLE_CHOICE_OPTIONS,
        "desktop_width": DESKTOP_WIDTH,
        "hidden_keep_share": HIDDEN_KEEP_SHARE,
        "parked_piece_share": PARKED_PIECE_SHARE,
        "time_limit_seconds": TIME_LIMIT_SECONDS,
    }
)

REASON_EMPTY = "empty document"
REASON_NO_CONTENT = "no article-like content found"
REASON_FRAMESET = "frameset document: the content is in other documents"
REASON_REPLACEMENT = "encoding 'replacement': browsers show this page as a single U+FFFD"
#: The reason of an extraction stopped at its time limit; always starts with this.
REASON_STOPPED = "extraction stopped"

_FOLD = re.compile(r"\W+")


def _fold(text: str) -> str:
    return _FOLD.sub(" ", text.casefold()).strip()


def _trim(blocks: list[Block], meta: Metadata, *, thread: bool = False) -> list[str]:
    """Drop the title repeated as a heading and a bare byline line (not in a thread, where
    the first post's author line is part of the post). Text the page gives twice is kept
    twice: it may be an honest repeat (see docs/extraction.md)."""
    title = _fold(meta.title) if meta.title else None
    byline = _fold(meta.byline) if meta.byline and not thread else None
    texts: list[str] = []
    for index, block in enumerate(blocks):
        if index < 5:  # only the first blocks can repeat the title or the byline
            folded = _fold(block.text)
            if title and block.tag in HEADING_TAGS and folded == title:
                continue
            if byline and len(block.text) < 100 and folded.endswith(byline):
                continue
        texts.append(block.text)
    return texts


def _measure(blocks: list[Block]) -> int:
    return sum(len(block.text) for block in blocks)


def _is_tiny(size: int, page_size: int) -> bool:
    """Too little text to be the page's content, given how much text the page shows."""
    return size == 0 or (size < MIN_TEXT_CHARS and size < TINY_SHARE * page_size)


def _prose(blocks: list[Block]) -> int:
    """Characters in paragraphs of prose: long blocks that are not mostly links."""
    return sum(
        len(block.text)
        for block in blocks
        if len(block.text) >= PROSE_CHARS and block.link_density < 0.3
    )


def _container(blocks: list[Block]) -> list[etree._Element]:
    """The ancestor chain (innermost first) of the element holding all of ``blocks``."""
    owners = list(dict.fromkeys(block.owner for block in blocks))
    if not owners:
        return []
    chain = [owners[0], *owners[0].iterancestors()]
    position = {id(element): index for index, element in enumerate(chain)}
    deepest = 0
    for owner in owners[1:]:
        for element in (owner, *owner.iterancestors()):
            index = position.get(id(element))
            if index is not None:
                deepest = max(deepest, index)
                break
    return chain[deepest:]


def _sibling_prose(best: list[Block], rest: list[Block]) -> int:
    """Prose of ``rest`` beside the article container: inside its parent (sibling sections
    of the same content), not further away (teasers, sidebars, footers)."""
    chain = _container(best)
    if len(chain) < 2:
        return 0
    near = {id(chain[0]), id(chain[1])}
    levels = {id(element) for element in chain}
    size = 0
    for block in rest:
        if len(block.text) < PROSE_CHARS or block.link_density >= 0.3:
            continue
        for element in block.owner.iterancestors():
            if id(element) in levels:
                if id(element) in near:
                    size += len(block.text)
                break
    return size


def _rest(best: list[Block], main: list[Block]) -> list[Block]:
    """The blocks of the main region that are not in the article container."""
    chosen = {(id(block.owner), block.text) for block in best}
    return [block for block in main if (id(block.owner), block.text) not in chosen]


def _size_rule(best: list[Block], main: list[Block], declared_article: bool) -> bool:
    """The article container is the content when it holds most of the main region's text,
    or, on a page that declares itself an article, when the rest of the region has less than
    twice its prose (the rest is then lists, links and chrome, not more of the content) and
    the container's own siblings do not hold as much prose as it does (then it is one
    section of several, and the region is the content)."""
    if _measure(best) >= ARTICLE_SHARE * _measure(main):
        return True
    if not declared_article:
        return False
    rest = _rest(best, main)
    prose = _prose(best)
    return prose >= REST_PROSE_SHARE * _prose(rest) and _sibling_prose(best, rest) < prose


def _rest_is_content(
    best: list[Block], rest: list[Block], scorer: Callable[[], scoring.Scorer]
) -> bool:
    """The article scoring judges the rest of the region to be content too: its paragraphs
    earn REST_POINTS_SHARE of the container's points and some of its text sits in elements
    scoring STRONG_SCORE of the best score (more sections of the content, not a sidebar of
    teasers, whose points go to weak containers)."""
    points = sum(map(scoring.paragraph_points, rest))
    if points <= 0 or points < REST_POINTS_SHARE * sum(map(scoring.paragraph_points, best)):
        return False
    scores = scorer()  # built only now: few pages get this far
    top = scores.top_score()
    if top <= 0:
        return False
    strong = 0
    for block in rest:
        node = scoring.scored_container(block)
        if node is not None and scores.final_score(node) >= STRONG_SCORE * top:
            strong += len(block.text)
    return strong >= REST_STRONG_SHARE * _measure(best)


def _region_is_chrome(main: list[Block], scorer: scoring.Scorer) -> bool:
    """The article pruning, run over the whole main region, keeps almost none of its text
    (under MAIN_KEPT_SHARE): the region is link lists and boxes named like chrome."""
    chain = _container(main)
    if not chain:
        return False
    flags = pruning.verdicts(scorer, [chain[0]])
    kept = sum(len(b.text) for b in main if pruning.keep(b, flags.get(b.owner, 0)))
    return kept < MAIN_KEPT_SHARE * _measure(main)


def _article_wins(
    best: list[Block],
    main: list[Block],
    declared_article: bool,
    scorer: Callable[[], scoring.Scorer],
) -> bool:
    """Article container or main region. The size rule (_size_rule) decides first; the
    article's own boilerplate judgement then overrides it both ways: the region wins when
    the text it adds is judged content (_rest_is_content), the container wins when it holds
    a fair share (MIN_ARTICLE_SHARE) of a region judged chrome (_region_is_chrome).
    ``scorer`` builds the scoring of every paragraph of the body (unlikely regions
    included), only when needed."""
    if not best or not main:
        return _size_rule(best, main, declared_article)
    if _size_rule(best, main, declared_article):
        return not _rest_is_content(best, _rest(best, main), scorer)
    return _measure(best) >= MIN_ARTICLE_SHARE * _measure(main) and _region_is_chrome(
        main, scorer()
    )


def _from_title_heading(blocks: list[Block]) -> list[Block]:
    """The main region from its first ``<h1>`` on, when what comes before it is a small
    share of the region (under BEFORE_HEADING_SHARE): promotion bars, shipping notices, skip
    links and breadcrumbs that are not landmarks or named like chrome. A region with much
    text before its ``<h1>`` is left whole (an intro, a listing whose heading comes late)."""
    for index, block in enumerate(blocks):
        if block.tag == "h1":
            if index and _measure(blocks[:index]) <= BEFORE_HEADING_SHARE * _measure(blocks):
                return blocks[index:]
            break
    return blocks


def _select(
    body: etree._Element,
    *,
    keep_hidden: bool,
    declared_article: bool = False,
    title: str | None = None,
    product: bool = False,
    thread: bool = False,
) -> tuple[str, list[Block], int]:
    """The first steps of the chain: the article container or the main region, then the
    main region with less pruning. Returns (method, blocks, cards); the blocks may be tiny;
    ``cards`` counts the item cards (card_runs) of a main region that was chosen."""
    all_blocks = render_blocks(body)
    totals = scoring.aggregate(body, all_blocks)
    page_size = totals[body].text_chars if body in totals else 0
    region = regions.main_region(body, totals)
    if keep_hidden:
        return "hidden", regions.region_blocks(region, all_blocks, totals, prune=False), 0
    heading = regions.title_heading(body, title)
    main = regions.region_blocks(
        region, all_blocks, totals, prune=True, title=heading, drop_cards=product
    )
    region_size = totals[region].text_chars if region in totals else 0
    if _measure(main) < PRUNED_MIN_SHARE * region_size:  # never prune a region away
        main = regions.region_blocks(
            region, all_blocks, totals, prune=False, title=heading, drop_cards=product
        )
    best = article.select_article(body, all_blocks, totals, thread=thread)
    if _article_wins(
        best,
        main,
        declared_article,
        lambda: scoring.Scorer(body, all_blocks, totals, skip_unlikely=False),
    ):
        method, blocks = "article", best
    else:
        method, blocks = "main", _from_title_heading(main)
    cards = len(regions.card_runs(region, totals)) if method == "main" else 0
    if not _is_tiny(_measure(blocks), page_size):
        return method, blocks, cards
    relaxed = regions.region_blocks(region, all_blocks, totals, prune=False)
    if _measure(relaxed) > _measure(blocks):
        return "relaxed", relaxed, cards
    return method, blocks, cards


def _visible_body(body: etree._Element, *, short_links: bool = False) -> list[Block]:
    """The last fallback: every visible block of the body but navigation landmarks and links
    in boxes named like chrome (and short links, unless ``short_links``)."""
    all_blocks = render_blocks(body)
    totals = scoring.aggregate(body, all_blocks)
    return regions.region_blocks(body, all_blocks, totals, prune=False, short_links=short_links)


def _run(html: str | bytes, charset: str | None) -> Extraction:
    if isinstance(html, bytes):
        text, encoding = decode.decode_html(html, charset)
        if encoding == "replacement":
            return Extraction(text="", reason=REASON_REPLACEMENT)
    else:
        text = html
    root = dom.parse(text)
    if root is None:
        return Extraction(text="", reason=REASON_EMPTY)
    meta = read_metadata(root)
    body = root.find("body")
    if body is None:
        if root.find(".//frameset") is not None:
            return _empty(meta, REASON_FRAMESET)
        body = root
    withheld, page_size = clean(root, body)
    comments, thread = cut_comments(
        body,
        forum=is_forum(meta),
        product=is_product(meta),
        article=declares_article(meta),
        page_size=page_size,
    )
    discussion = thread or is_forum(meta)
    method, blocks, cards = _select(
        body,
        keep_hidden=False,
        declared_article=declares_article(meta),
        title=meta.title,
        product=is_product(meta),
        thread=is_forum(meta),
    )
    texts = _trim(blocks, meta, thread=discussion)
    code_blocks = sum(1 for block in blocks if block.tag == "pre")
    if _is_tiny(sum(map(len, texts)), page_size + withheld):
        # Fall back: hidden and <noscript> content, then the whole visible body.
        hidden_root = dom.parse(text)
        hidden_body = hidden_root.find("body") if hidden_root is not None else None
        if hidden_root is not None and hidden_body is not None:
            clean(hidden_root, hidden_body, keep_hidden=True)
            # (comments holding half of the page are its thread here whatever the page
            # declares: this step is taken when cutting them left almost nothing)
            cut_comments(hidden_body, forum=is_forum(meta), product=is_product(meta))
            _, more, _ = _select(hidden_body, keep_hidden=True)
            more_texts = _trim(more, meta, thread=discussion)
            if sum(map(len, more_texts)) > 2 * sum(map(len, texts)):
                method, texts = "hidden", more_texts
    if _is_tiny(sum(map(len, texts)), page_size):
        more_texts = _trim(_visible_body(body), meta, thread=discussion)
        if sum(map(len, more_texts)) > 2 * sum(map(len, texts)):
            method, texts = "body", more_texts
        if not texts:
            # everything the page shows is links (a grid of product cards, a directory of
            # short titles): those, rather than nothing (since 2.11.0)
            texts = _trim(_visible_body(body, short_links=True), meta, thread=discussion)
            method = "body"
    if not texts and meta.article_body:
        # Nothing in the markup reads like content, but the page declares its body in
        # JSON-LD (common when the text is rendered by JavaScript): use that.
        texts = [" ".join(line.split()) for line in meta.article_body.splitlines()]
        texts = [line for line in texts if line]
        method = "structured-data"
    clean_text = unicodedata.normalize("NFC", "\n\n".join(texts)).strip()
    return Extraction(
        text=clean_text,
        title=meta.title,
        byline=meta.byline,
        published=meta.published,
        language=meta.language,
        comments=tuple(Comment(author=a, date=d, text=t) for a, d, t in comments),
        reason=None if clean_text else REASON_NO_CONTENT,
        method=method if clean_text else None,
        page_type=guess_page_type(
            meta,
            method if clean_text else None,
            thread=thread,
            cards=cards,
            code_blocks=code_blocks,
        ),
    )


def _empty(meta: Metadata, reason: str) -> Extraction:
    return Extraction(
        text="",
        title=meta.title,
        byline=meta.byline,
        published=meta.published,
        language=meta.language,
        reason=reason,
    )


def extract(html: str | bytes, url: str | None = None, *, charset: str | None = None,
            time_limit: float | None = TIME_LIMIT_SECONDS) -> Extraction:
    """Extract the article text, metadata and comments of one HTML page. Never raises.

    ``url`` is accepted for interface compatibility and not used. ``charset`` is the HTTP
    Content-Type charset when known; it is used only for ``bytes`` input. An extraction
    running longer than ``time_limit`` seconds (``None``: no limit) is stopped and gives an
    empty text whose reason starts with :data:`REASON_STOPPED` (ValueError for a negative or
    NaN ``time_limit``: an argument, not the page, is wrong).
    """
    del url
    if time_limit is not None and not time_limit >= 0:
        raise ValueError(f"time_limit is a number of seconds, not {time_limit!r}")
    try:
        return budget.call_with_time_limit(time_limit, _run, html, charset)
    except budget.Stopped:
        return Extraction(text="", reason=stopped_reason(time_limit or 0.0))
    except Exception as exc:  # the contract: never raise; the reason says what happened
        return Extraction(text="", reason=f"extraction failed: {type(exc).__name__}")


def stopped_reason(seconds: float) -> str:
    """The reason recorded for an extraction stopped after ``seconds``."""
    return f"{REASON_STOPPED}: still running after its time limit of {seconds:g} s"


class _Reasoned(Protocol):
    @property
    def reason(self) -> str | None: ...


def was_stopped(extraction: _Reasoned) -> bool:
    """Whether ``extraction`` (an :class:`Extraction`, or a manifest's record of one) was
    stopped at its time limit: its empty text then says nothing about the page."""
    return (extraction.reason or "").startswith(REASON_STOPPED)


class PreserveExtractor:
    """preserve's own extractor as an :class:`~preserve.extract.Extractor`."""

    name = EXTRACTOR_NAME
    version = EXTRACTOR_VERSION
    settings = EXTRACTOR_SETTINGS

    def extract(
        self, html: str | bytes, url: str | None = None, *, charset: str | None = None
    ) -> Extraction:
        return extract(html, url, charset=charset)

    def __call__(
        self, html: str | bytes, url: str | None = None, *, charset: str | None = None
    ) -> Extraction:
        return extract(html, url, charset=charset)
