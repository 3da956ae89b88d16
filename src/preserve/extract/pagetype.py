"""Guess what kind of page this is: article, forum, listing, product, documentation or other.

From what the page declares about itself (schema.org types in JSON-LD or microdata,
``og:type``) and from how its content was found (a comment thread that is the page's content
is a forum; an article container that won is an article). Language-independent; never keyed
to a site. A guess for the manifest, not used to choose the text.
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


def guess_page_type(meta: Metadata, method: str | None, thread: bool) -> str:
    """One of ``article``, ``forum``, ``listing``, ``product``, ``documentation``, ``other``."""
    kinds = meta.kinds
    if thread or kinds & _FORUM:
        return "forum"
    if kinds & _PRODUCT:
        return "product"
    if kinds & _DOCS:
        return "documentation"
    if kinds & _LISTING:
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
