"""The data an extraction returns, and the protocol a pluggable extractor follows.

This module holds plain data types only; it does not parse HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: How the text was found, from the first step tried to the last fallback:
#: ``article`` (the best-scoring article container, pruned), ``main`` (the page's main region:
#: posts, items, product facts; pruned), ``relaxed`` (the main region with less pruning),
#: ``hidden`` (hidden and ``<noscript>`` content included), ``body`` (all visible text of the
#: body but navigation, header and footer), ``structured-data`` (the ``articleBody`` the page
#: declares in JSON-LD).
METHODS = ("article", "main", "relaxed", "hidden", "body", "structured-data")

#: The page types ``Extraction.page_type`` can take.
PAGE_TYPES = ("article", "forum", "listing", "product", "documentation", "other")


@dataclass(frozen=True, slots=True)
class Comment:
    """One reader comment: who wrote it, when (as the page states it), and its text."""

    author: str | None
    date: str | None
    text: str

    def render(self) -> str:
        """The comment as text: a ``author — date`` header line (if known), then the body."""
        header = " — ".join(part for part in (self.author, self.date) if part)
        return f"{header}\n{self.text}" if header else self.text


@dataclass(frozen=True, slots=True)
class Extraction:
    """The clean text of one page, its metadata, and the reader comments kept apart.

    ``text`` is the article body: headings, paragraphs, lists and tables, in reading order,
    blocks separated by one blank line, NFC-normalised, without trailing newline. The title and
    byline are not part of it. ``reason`` says why ``text`` is empty (``None`` otherwise).

    ``method`` says which step produced ``text`` (one of :data:`METHODS`; ``None`` when it is
    empty) and ``page_type`` is the extractor's guess of what kind of page this is (one of
    :data:`PAGE_TYPES`). Both are stable strings, documented in docs/extraction.md.
    """

    text: str
    title: str | None = None
    byline: str | None = None
    published: str | None = None
    language: str | None = None
    comments: tuple[Comment, ...] = ()
    reason: str | None = None
    method: str | None = None
    page_type: str = "other"

    @property
    def comments_text(self) -> str:
        """All comments in page order, each rendered by :meth:`Comment.render`, blank-line
        separated."""
        return "\n\n".join(comment.render() for comment in self.comments)


@runtime_checkable
class Extractor(Protocol):
    """What the archive needs from an extractor: identity for the manifest and a callable."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def settings(self) -> Mapping[str, object]: ...

    def extract(
        self, html: str | bytes, url: str | None = None, *, charset: str | None = None
    ) -> Extraction: ...

    def __call__(
        self, html: str | bytes, url: str | None = None, *, charset: str | None = None
    ) -> Extraction: ...
