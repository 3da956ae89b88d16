"""Render an lxml subtree into text blocks (paragraph-level units) in reading order.

A block is the inline text of one block-level element (a paragraph, heading, list item,
table cell, or text directly inside a div), with whitespace collapsed and ``<br>`` kept as a
newline; two ``<br>`` in a row split a block. Where one inline element ends or starts between
two letters or digits with no space (``<a>Brand</a><a>Design</a>``, ``<em>Note</em>The``),
a space separates them when the next character starts a new word by its case (an upper-case
letter or a digit): style sheets draw such elements as separate boxes (tags, chips, labels),
so a reader sees two words; a drop cap (``<span>I</span>f``) or a word split for styling
stays whole, and so does text in scripts without case (CJK has no spaces to restore). Each
block remembers the element that owns it and how much of its text is link text. This module
does not judge what is boilerplate.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from lxml import etree

__all__ = ["BLOCK_TAGS", "HEADING_TAGS", "Block", "render_blocks"]

BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "html",
        "li",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "noscript",
        "legend",
        "option",
        "frameset",
    }
)
HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

_BR = "\x00"  # marks a <br> while a block is assembled (NUL never survives parsing)
#: Inline elements whose edges never separate words: sub- and superscripts (H2O, 10th).
_NO_EDGE_TAGS = frozenset({"sub", "sup", "wbr"})


def _starts_word(before: str, after: str) -> bool:
    """Whether an element edge between ``before`` and ``after`` separates two words:
    ``before`` is a letter of a cased script or a digit, ``after`` an upper-case letter or a
    digit."""
    return (before.isdigit() or before.lower() != before.upper()) and (
        after.isdigit() or after.isupper()
    )


@dataclass(slots=True)
class Block:
    """One paragraph-level unit of text."""

    text: str
    owner: etree._Element
    tag: str
    link_chars: int

    @property
    def link_density(self) -> float:
        return self.link_chars / len(self.text) if self.text else 0.0


class _Renderer:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.pieces: list[str] = []
        self.link_chars = 0
        self.owner_stack: list[etree._Element] = []
        # An inline element started or ended since the last text was added (see add()).
        self.edge = False

    def flush(self) -> None:
        if not self.pieces:
            return
        raw = "".join(self.pieces)
        link_chars = self.link_chars
        self.pieces = []
        self.link_chars = 0
        if raw.isspace():
            return
        owner = self.owner_stack[-1]
        tag = owner.tag if isinstance(owner.tag, str) else "div"
        if _BR not in raw and tag != "pre":  # most blocks: one paragraph, no line break
            text = unicodedata.normalize("NFC", " ".join(raw.split()))
            if text:
                self.blocks.append(Block(text, owner, tag, min(link_chars, len(text))))
            return
        if not raw.replace(_BR, ""):
            return
        texts = [_pre_text(raw)] if tag == "pre" else _inline_texts(raw)
        texts = [text for text in texts if text]
        total = sum(len(text) for text in texts)
        for text in texts:
            share = round(link_chars * len(text) / total) if total else 0
            self.blocks.append(Block(text, owner, tag, min(share, len(text))))

    def add(self, text: str | None, in_link: bool) -> None:
        if not text:
            return
        if not self.pieces and text.isspace() and self.owner_stack[-1].tag != "pre":
            return  # white space opening a block collapses away (most text between blocks)
        if self.edge:
            # Words drawn in separate inline boxes: a space where the edge separates words
            # (see the module docstring), never inside <pre>.
            self.edge = False
            last = self.pieces[-1] if self.pieces else ""
            if last and _starts_word(last[-1], text[0]) and self.owner_stack[-1].tag != "pre":
                self.pieces.append(" ")
        self.pieces.append(text)
        if in_link:
            self.link_chars += len(text.strip())

    def walk(self, element: etree._Element, in_link: bool) -> None:
        """Render ``element``, its subtree and its tail. Iterative: nesting depth is bounded
        only by the parser, not by Python's recursion limit."""
        # The hot loop of extraction (every element of the page, twice): the calls to
        # flush() and add() are guarded here, where most of them would return at once.
        links: list[bool] = []  # per open element: whether its children are inside a link
        rows: set[etree._Element] = set()  # simple table rows, rendered whole by row()
        owners = self.owner_stack
        walker = etree.iterwalk(element, events=("start", "end"))
        for event, node in walker:
            tag = node.tag
            if not isinstance(tag, str):
                tag = ""
            if event == "end":
                links.pop()
                if tag in BLOCK_TAGS and node not in rows:
                    if self.pieces:
                        self.flush()
                    owners.pop()
                elif tag and tag not in _NO_EDGE_TAGS:
                    self.edge = True
                text = node.tail
                if text:
                    self.add(text, links[-1] if links else in_link)
                continue
            link = links[-1] if links else in_link
            if tag == "br":
                self.pieces.append(_BR)
            elif tag == "tr" and _is_simple_row(node):
                self.row(node, link)
                rows.add(node)
                walker.skip_subtree()
            elif tag in BLOCK_TAGS:
                if self.pieces:
                    self.flush()
                owners.append(node)
                text = node.text
                if text:
                    self.add(text, link)
            else:
                link = link or (tag == "a" and _is_link(node))
                if tag and tag not in _NO_EDGE_TAGS:
                    self.edge = True
                text = node.text
                if text:
                    self.add(text, link)
            links.append(link)

    def row(self, element: etree._Element, in_link: bool) -> None:
        """A table row of plain cells becomes one block: cells joined by " | "."""
        self.flush()
        self.owner_stack.append(element)
        cells: list[str] = []
        link_chars = 0
        for cell in element:
            if not isinstance(cell.tag, str):
                continue
            self.walk_inline(cell, in_link)
            link_chars += self.link_chars
            text = " ".join("".join(self.pieces).replace(_BR, " ").split())
            self.pieces = []
            self.link_chars = 0
            if text:
                cells.append(text)
        if cells:
            text = unicodedata.normalize("NFC", " | ".join(cells))
            self.blocks.append(Block(text, element, "tr", min(link_chars, len(text))))
        self.owner_stack.pop()

    def walk_inline(self, cell: etree._Element, in_link: bool) -> None:
        link = in_link or _is_link(cell)
        self.add(cell.text, link)
        for child in cell:
            self.walk(child, link)


def _is_link(element: etree._Element) -> bool:
    """A link to somewhere else; an anchor to a place on the same page (``href="#intro"``,
    headings that link to themselves) is not."""
    if element.tag != "a":
        return False
    href = (element.get("href") or "").strip()
    return not (len(href) > 1 and href.startswith("#"))


def _is_simple_row(row: etree._Element) -> bool:
    """True if every cell holds inline content only (a data row, not a layout row)."""
    for cell in row:
        if not isinstance(cell.tag, str):
            continue
        if cell.tag not in {"td", "th"}:
            return False
        for node in cell.iterdescendants():
            if isinstance(node.tag, str) and node.tag in BLOCK_TAGS:
                return False
    return True


def _inline_texts(raw: str) -> list[str]:
    """Collapse whitespace; one <br> is a newline, two or more split the block."""
    texts: list[str] = []
    lines: list[str] = []
    for line in raw.split(_BR):
        collapsed = " ".join(line.split())
        if collapsed:
            lines.append(collapsed)
        elif lines:
            texts.append("\n".join(lines))
            lines = []
    if lines:
        texts.append("\n".join(lines))
    return [unicodedata.normalize("NFC", text) for text in texts]


def _pre_text(raw: str) -> str:
    raw = raw.replace(_BR, "\n").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in raw.expandtabs(4).split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return unicodedata.normalize("NFC", "\n".join(lines))


def render_blocks(element: etree._Element) -> list[Block]:
    """The blocks of ``element``'s subtree in document order (its tail is not included)."""
    renderer = _Renderer()
    renderer.owner_stack.append(element)
    in_link = _is_link(element)
    renderer.add(element.text, in_link)
    for child in element:
        renderer.walk(child, in_link)
    renderer.flush()
    return renderer.blocks
