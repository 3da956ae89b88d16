"""Render an lxml subtree into text blocks (paragraph-level units) in reading order.

A block is the inline text of one block-level element (a paragraph, heading, list item,
table cell, or text directly inside a div), with whitespace collapsed and ``<br>`` kept as a
newline; two ``<br>`` in a row split a block. Each block remembers the element that owns it
and how much of its text is link text. This module does not judge what is boilerplate.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from lxml import etree

__all__ = ["BLOCK_TAGS", "HEADING_TAGS", "Block", "render_blocks"]

BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
        "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html", "li",
        "main", "menu", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "ul", "noscript", "legend", "option", "frameset",
    }
)
HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

_SPACE = re.compile(r"\s+")
_BREAKS = re.compile(r"\n\s*\n")


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

    def flush(self) -> None:
        if not self.pieces:
            return
        raw = "".join(self.pieces)
        link_chars = self.link_chars
        self.pieces = []
        self.link_chars = 0
        owner = self.owner_stack[-1]
        tag = owner.tag if isinstance(owner.tag, str) else "div"
        if tag == "pre":
            texts = [_pre_text(raw)]
        else:
            texts = [_inline_text(part) for part in _BREAKS.split(raw)]
        texts = [text for text in texts if text]
        total = sum(len(text) for text in texts)
        for text in texts:
            share = round(link_chars * len(text) / total) if total else 0
            self.blocks.append(Block(text, owner, tag, min(share, len(text))))

    def add(self, text: str | None, in_link: bool, in_pre: bool) -> None:
        if not text:
            return
        if not in_pre:
            text = _SPACE.sub(" ", text)
        self.pieces.append(text)
        if in_link:
            self.link_chars += len(text.strip())

    def walk(self, element: etree._Element, in_link: bool, in_pre: bool) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag == "br":
            self.pieces.append("\n")
        elif tag in BLOCK_TAGS:
            self.flush()
            self.owner_stack.append(element)
            self.add(element.text, in_link, in_pre or tag == "pre")
            for child in element:
                self.walk(child, in_link, in_pre or tag == "pre")
            self.flush()
            self.owner_stack.pop()
        else:
            link = in_link or tag == "a"
            self.add(element.text, link, in_pre)
            for child in element:
                self.walk(child, link, in_pre)
        self.add(element.tail, in_link, in_pre)


def _inline_text(raw: str) -> str:
    lines = (_SPACE.sub(" ", line).strip() for line in raw.split("\n"))
    return unicodedata.normalize("NFC", "\n".join(line for line in lines if line))


def _pre_text(raw: str) -> str:
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
    tag = element.tag if isinstance(element.tag, str) else ""
    in_pre = tag == "pre"
    renderer.add(element.text, tag == "a", in_pre)
    for child in element:
        renderer.walk(child, tag == "a", in_pre)
    renderer.flush()
    return renderer.blocks
