"""The extraction pipeline: decode, parse, read metadata, cut comments, select the article,
render the clean text. Pure: no I/O, no global state, deterministic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

from . import article, decode, dom
from .blocks import HEADING_TAGS, Block
from .comments import cut_comments
from .metadata import Metadata, read_metadata
from .model import Comment, Extraction

__all__ = [
    "EXTRACTOR_NAME",
    "EXTRACTOR_SETTINGS",
    "EXTRACTOR_VERSION",
    "PreserveExtractor",
    "extract",
]

EXTRACTOR_NAME = "preserve"
#: Changes whenever the output for some input may change (a test pins a corpus hash to it).
EXTRACTOR_VERSION = "1.0.0"
EXTRACTOR_SETTINGS: Mapping[str, object] = MappingProxyType(
    {
        "max_parse_chars": dom.MAX_PARSE_CHARS,
        "max_sniff_bytes": decode.MAX_SNIFF_BYTES,
        "comments": "separate",
        "title_in_text": False,
        **article.SETTINGS,
    }
)

REASON_EMPTY = "empty document"
REASON_NO_CONTENT = "no article-like content found"
REASON_FRAMESET = "frameset document: the content is in other documents"

_FOLD = re.compile(r"\W+")


def _fold(text: str) -> str:
    return _FOLD.sub(" ", text.casefold()).strip()


def _trim(blocks: list[Block], meta: Metadata) -> list[str]:
    """Drop the title repeated as a heading and a bare byline line."""
    title = _fold(meta.title) if meta.title else None
    byline = _fold(meta.byline) if meta.byline else None
    texts: list[str] = []
    for index, block in enumerate(blocks):
        folded = _fold(block.text)
        if title and block.tag in HEADING_TAGS and folded == title and index < 5:
            continue
        if byline and index < 5 and len(block.text) < 100 and folded.endswith(byline):
            continue
        texts.append(block.text)
    return texts


def _run(html: str | bytes, charset: str | None) -> Extraction:
    text = decode.decode_html(html, charset)[0] if isinstance(html, bytes) else html
    root = dom.parse(text)
    if root is None:
        return Extraction(text="", reason=REASON_EMPTY)
    meta = read_metadata(root)
    body = root.find("body")
    if body is None:
        if root.find(".//frameset") is not None:
            return _empty(meta, REASON_FRAMESET)
        body = root
    dom.strip_junk(root)
    comments = tuple(
        Comment(author=author, date=date, text=text) for author, date, text in cut_comments(body)
    )
    texts = _trim(article.select_article(body), meta)
    if not texts and meta.article_body:
        # Nothing in the markup reads like an article, but the page declares its body in
        # JSON-LD (common when the text is rendered by JavaScript): use that.
        texts = [" ".join(line.split()) for line in meta.article_body.splitlines()]
        texts = [line for line in texts if line]
    clean = unicodedata.normalize("NFC", "\n\n".join(texts)).strip()
    return Extraction(
        text=clean,
        title=meta.title,
        byline=meta.byline,
        published=meta.published,
        language=meta.language,
        comments=comments,
        reason=None if clean else REASON_NO_CONTENT,
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


def extract(html: str | bytes, url: str | None = None, *, charset: str | None = None) -> Extraction:
    """Extract the article text, metadata and comments of one HTML page. Never raises.

    ``url`` is accepted for interface compatibility and not used. ``charset`` is the HTTP
    Content-Type charset when known; it is used only for ``bytes`` input.
    """
    del url
    try:
        return _run(html, charset)
    except Exception as exc:  # the contract: never raise; the reason says what happened
        return Extraction(text="", reason=f"extraction failed: {type(exc).__name__}")


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
