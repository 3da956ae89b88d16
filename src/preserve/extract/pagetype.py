"""Guess what kind of page this is: article, forum, listing, product, documentation or other.

From what the page declares about itself (schema.org types in JSON-LD or microdata,
``og:type``) and from the structure of its content: a comment thread that is the page's
content is a forum; code blocks make documentation; a main region of many item cards is a
listing; an article container that won is an article. Language-independent; never keyed to a
site. A guess for the manifest; the text is chosen without it.
"""

from __future__ import annotations

from .metadata import Metadata

__all__ = ["declares_article", "guess_page_type", "is_forum", "is_product"]

_FORUM = frozenset({"discussionforumposting", "qapage", "question", "answer", "socialmediaposting"})
_PRODUCT = frozenset({"product", "productgroup", "offer", "aggregateoffer", "individualproduct"})
_LISTING = frozenset(
    {"itemlist", "collectionpage", "searchresultspage", "offercatalog", "productcollection"}
)
_DOCS = frozenset({"techarticle", "apireference", "softwaresourcecode", "howto"})
_ARTICLE = frozenset(
    {
        "article",
        "newsarticle",
        "blogposting",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "opinionnewsarticle",
        "reviewnewsarticle",
        "scholarlyarticle",
        "report",
        "liveblogposting",
        "posting",
    }
)


#: Code blocks (``<pre>``) in the text that make a page documentation.
MIN_CODE_BLOCKS = 2
#: Item cards in the chosen main region that make a page a listing.
MIN_CARDS = 6


def guess_page_type(
    meta: Metadata, method: str | None, *, thread: bool, cards: int, code_blocks: int
) -> str:
    """One of ``article``, ``forum``, ``listing``, ``product``, ``documentation``, ``other``."""
    kinds = meta.kinds
    if thread or kinds & _FORUM:
        return "forum"
    if kinds & _LISTING:
        return "listing"
    if kinds & _PRODUCT:
        return "product"
    if kinds & _DOCS or code_blocks >= MIN_CODE_BLOCKS:
        return "documentation"
    if cards >= MIN_CARDS:
        return "listing"
    if kinds & _ARTICLE or method == "article":
        return "article"
    return "other"


def is_forum(meta: Metadata) -> bool:
    """The page says it is a discussion (a forum thread, a question and its answers)."""
    return bool(meta.kinds & _FORUM)


def declares_article(meta: Metadata) -> bool:
    """The page says it is an article (schema.org Article types, ``og:type`` article)."""
    return bool(meta.kinds & _ARTICLE)


def is_product(meta: Metadata) -> bool:
    """The page says it is one product (and not a list of them)."""
    return bool(meta.kinds & _PRODUCT) and not meta.kinds & _LISTING
