"""Parse HTML as a browser does and hand back an lxml tree.

lexbor (through selectolax) builds the tree by the HTML standard's tree-construction rules
(implied end tags, foster parenting, misnested formatting, stray ``</html>`` and ``</body>``,
``<noscript>`` read as markup since scripting is off); its serialization, in which every
element is closed explicitly, is then read by lxml's libxml2 parser, which keeps that
structure. Nesting is capped at :data:`MAX_DEPTH` levels by flattening deeper elements into
their ancestor at the cap (text is never dropped), and deep block nesting is flattened before
lexbor sees it (lexbor's time grows with the square of that depth). Does not clean the tree.
"""

from __future__ import annotations

import re

from lxml import etree
from selectolax.lexbor import LexborHTMLParser

__all__ = ["MAX_DEPTH", "parse_html5"]

#: Deepest element nesting kept; deeper elements are unwrapped (their text stays in place).
#: Browsers cap it too (Chromium at 512).
MAX_DEPTH = 512

# Documents with more tags than this are scanned for their nesting depth before lexbor parses
# them; below it even a document that is all nested blocks parses in well under a second.
_SCAN_ABOVE_TAGS = 8_000

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "frame",
        "basefont",
        "bgsound",
        "image",
    }
)


# Elements whose end tag is optional: in tag soup they are closed by what follows, so they do
# not count as nesting (their own deep nesting is cheap for lexbor).
_IMPLIED_END = frozenset(
    {"p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody", "tfoot",
     "colgroup", "caption", "rb", "rt", "rtc", "rp", "html", "head", "body"}
)  # fmt: skip


def _flatten(markup: str, cap: int) -> str:
    """Drop start and end tags nested deeper than ``cap`` (by tag balance); keep all text.

    Exact on well-formed markup (a serialization); an approximation on tag soup, where it only
    has to bound the depth.
    """
    pieces: list[str] = []
    pos = 0
    depth = 0
    dropped = 0  # open elements deeper than the cap whose end tags are still to come
    for match in _TAG.finditer(markup):
        closing, name, self_closing = match.group(1), match.group(2).lower(), match.group(3)
        if name in _VOID or name in _IMPLIED_END or self_closing:
            continue
        if closing:
            if depth == 0:
                continue
            depth -= 1
            if dropped and depth >= cap:
                dropped -= 1
                pieces.append(markup[pos : match.start()])
                pos = match.end()
            continue
        depth += 1
        if depth > cap:
            dropped += 1
            pieces.append(markup[pos : match.start()])
            pos = match.end()
    pieces.append(markup[pos:])
    return "".join(pieces)


def _lxml_parser() -> etree.HTMLParser:
    # A fresh parser per call: parsers keep state and are not safe to share across threads.
    # huge_tree lifts libxml2's nesting limit of 256 (to its hard limit of 2048 levels).
    return etree.HTMLParser(
        encoding="utf-8",
        remove_comments=True,
        remove_pis=True,
        no_network=True,
        recover=True,
        huge_tree=True,
    )


def _too_deep(parser: etree.HTMLParser) -> bool:
    return any("depth" in entry.message.lower() for entry in parser.error_log)


def parse_html5(text: str) -> etree._Element | None:
    """The document's tree as a browser builds it, as an lxml ``<html>`` element."""
    if text.count("<") > _SCAN_ABOVE_TAGS:
        text = _flatten(text, MAX_DEPTH)
    serialized = LexborHTMLParser(text).html or ""
    data = serialized.encode("utf-8", "replace")
    parser = _lxml_parser()
    root = etree.fromstring(data, parser=parser)
    if _too_deep(parser):
        parser = _lxml_parser()
        root = etree.fromstring(_flatten(serialized, MAX_DEPTH).encode("utf-8", "replace"), parser)
    return root
