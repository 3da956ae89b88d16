"""Turn HTML text into an lxml tree (bounded in size), and small tree helpers.

Cleaning the tree is clean.py's job; deciding what the article is, the selectors'.
"""

from __future__ import annotations

import re

from lxml import etree

from .html5 import parse_html5

__all__ = [
    "MAX_PARSE_CHARS",
    "MAX_PARSE_TAGS",
    "drop_keep_tail",
    "parse",
    "short_text",
    "strip_raw_text",
    "text_of",
    "visible_chars",
]

#: Documents longer than this (in characters, after removing scripts and styles) are cut
#: before parsing. Bounds time and memory; no real article page comes near it.
MAX_PARSE_CHARS = 3_000_000
#: ... and after this many tags (``<`` outside scripts, styles and comments). The tree costs
#: about 0.85 KB an element however short the text: 3,000,000 characters of ``<p>x`` made
#: 640 MB. The largest of the 1,564 development pages has under 30,000.
MAX_PARSE_TAGS = 100_000

# Raw-text elements whose bodies are removed before parsing: on large pages they are most of
# the bytes, and removing them first keeps the parse (and the cut above) about markup.
# JSON-LD scripts are kept: metadata reads them. Matched ignoring ASCII case only, on the
# text itself: a lowercased copy cost the page's size again, and its positions drift from
# the text's where lowercasing changes a length ("İ" becomes two characters).
_RAW_OPENER = re.compile(r"<(?:(script)|(style))|<!--", re.IGNORECASE | re.ASCII)
_RAW_CLOSER = {
    "script": re.compile("</script", re.IGNORECASE | re.ASCII),
    "style": re.compile("</style", re.IGNORECASE | re.ASCII),
    "comment": re.compile("-->"),
}
_TAG_NAME_ENDS = frozenset({" ", "\t", "\n", "\r", "\f", ">", "/"})


def _is_json_ld(text: str, start: int) -> bool:
    """Whether the script tag at ``start`` declares JSON-LD (in its start tag)."""
    open_end = text.find(">", start)
    return "ld+json" in text[start : open_end if open_end >= 0 else start].lower()


def strip_raw_text(text: str, limit: int | None = None) -> str:
    """Remove script (except JSON-LD), style and comment bodies in one linear pass; with
    ``limit``, only the first ``limit`` characters of the result are made (as if sliced)."""
    pieces: list[str] = []
    size = 0  # characters in pieces
    pos = 0
    while (limit is None or size < limit) and (
        opener := _RAW_OPENER.search(text, pos)
    ) is not None:
        start, opened = opener.start(), opener.end()
        kind = "script" if opener.group(1) else "style" if opener.group(2) else "comment"
        if kind != "comment" and (text[opened : opened + 1] not in _TAG_NAME_ENDS
                                  or (kind == "script" and _is_json_ld(text, start))):
            # not a tag ("<scripts"), or JSON-LD: kept, the search goes on after it
            pieces.append(text[pos:opened])
            size += opened - pos
            pos = opened
            continue
        pieces.append(text[pos:start])
        size += start - pos
        close = _RAW_CLOSER[kind].search(text, opened)
        if close is None:
            pos = len(text)  # unclosed: the rest is raw text, as in a browser
            break
        end = text.find(">", close.start()) if kind != "comment" else close.start() + 2
        pos = len(text) if end < 0 else end + 1
        pieces.append(" ")
        size += 1
    if not pieces:  # nothing removed: the text itself (no copy), cut to the limit
        return text if limit is None or len(text) <= limit else text[:limit]
    if limit is None or size < limit:
        rest = len(text) - pos if limit is None else min(len(text) - pos, limit - size)
        pieces.append(text[pos : pos + rest])
    else:
        while size > limit:  # past the limit by part of the last pieces
            last = pieces.pop()
            size -= len(last)
            if size < limit:
                pieces.append(last[: limit - size])
                size = limit
    return "".join(pieces)


def parse(text: str) -> etree._Element | None:
    """Parse ``text`` as a browser would (html5.py); None if there is no document at all."""
    if len(text) > MAX_PARSE_CHARS:
        text = strip_raw_text(text, MAX_PARSE_CHARS)
    tags = text.count("<")  # (counted in C, once: on a large page it costs 0.2 ms)
    if tags > MAX_PARSE_TAGS:  # (a page this long is rare)
        text = strip_raw_text(text)
        tags = text.count("<")
        if tags > MAX_PARSE_TAGS:
            text = text[: len(text) - len(text.split("<", MAX_PARSE_TAGS + 1)[-1]) - 1]
            tags = MAX_PARSE_TAGS
    if "\x00" in text:  # (a search is cheaper than a replace that finds nothing)
        text = text.replace("\x00", "")
    if not text or text.isspace():  # (as "not text.strip()", without copying the page)
        return None
    try:
        root = parse_html5(text, tags)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None
    if root is None or all(len(part) == 0 and not (part.text or "").strip() for part in root):
        return None  # nothing but an empty <head> and <body> (e.g. only a comment)
    return root


def drop_keep_tail(element: etree._Element) -> None:
    """Remove ``element`` but keep its tail text in the tree."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def text_of(element: etree._Element) -> str:
    """All text inside ``element`` (not its tail), as in the DOM's ``textContent``."""
    return "".join(str(piece) for piece in element.itertext(None))


def short_text(element: etree._Element, limit: int, max_elements: int = 300) -> str | None:
    """The text of ``element`` with its white space collapsed (``" ".join(text.split())``),
    if that is at most ``limit`` characters long and the element holds at most
    ``max_elements`` elements; else None, found without reading all of a large subtree (a
    box of a page's whole thread looked at as a possible name, date or title: boxes nested
    in one another were each read whole)."""
    pieces: list[str] = []
    size = 0
    check = 4 * limit + 64  # (white space collapses: the text read may be longer)
    elements = 0
    for event, node in etree.iterwalk(element, events=("start", "end")):
        if event == "start":
            elements += 1
            if elements > max_elements:
                return None
            piece = node.text
        else:
            piece = node.tail if node is not element else None
        if piece:
            pieces.append(str(piece))
            size += len(piece)
            if size > check:
                if len(" ".join("".join(pieces).split())) > limit:
                    return None
                check *= 2
    text = " ".join("".join(pieces).split())
    return text if len(text) <= limit else None


def visible_chars(element: etree._Element) -> int:
    """How many non-whitespace characters the subtree holds (a language-neutral size)."""
    text = str(etree.tostring(element, method="text", encoding="unicode", with_tail=False))
    if text.isascii():
        # the ASCII characters str.isspace accepts, deleted in C: 4x faster than the split
        return len(text.encode("ascii").translate(None, _ASCII_SPACE))
    # str.split() drops exactly the characters ``\s`` matches (both use str.isspace), at C
    # speed without building the stripped copy: 5x faster than re.sub on a large page. In
    # slices (the count is additive, whatever a slice cuts through): a list of every word of
    # a 3 MiB page was ~40 MiB, the peak of a whole capture.
    # (a page shorter than a slice is split whole: slicing all of a str gives the str itself)
    return sum(sum(map(len, text[at:at + _SLICE].split()))
               for at in range(0, len(text), _SLICE))


#: Characters of text counted at once by :func:`visible_chars`.
_SLICE = 1 << 16


#: The ASCII characters ``str.isspace`` accepts (and ``str.split()`` splits on).
_ASCII_SPACE = bytes(c for c in range(128) if chr(c).isspace())
