"""Parse HTML as a browser does and hand back an lxml tree.

lexbor (through selectolax) builds the tree by the HTML standard's tree-construction rules
(implied end tags, foster parenting, misnested formatting, stray ``</html>`` and ``</body>``,
``<noscript>`` read as markup since scripting is off); its serialization, in which every
element is closed explicitly, is then read by lxml's libxml2 parser, which keeps that
structure. Nesting is capped at :data:`MAX_DEPTH` levels by flattening deeper elements into
their ancestor at the cap (text is never dropped); on pages with many tags, the nesting lexbor
would build is bounded before it sees them (:mod:`.nesting`: lexbor's time grows with the
number of tags times the depth, and it reopens misnested formatting elements before every
text), and a page with thousands of options has its lists parsed as multiple-choice ones
(:func:`_multiple_choice`: lexbor re-checks a single-choice list's selection at every
option). A tag loses what follows
its first :data:`MAX_TAG_TOKENS` attributes and separators before lexbor sees it (attributes,
never shown as text): lexbor and libxml2 check every attribute against the tag's others, so
a hostile page's one tag with 20,000 attributes took 35 s, and 3 MiB of them hours. Scripts
(but JSON-LD, which metadata reads) and style sheets are emptied in lexbor's tree before it is
handed on: they are never text, and are often most of a page's bytes. Does not otherwise
clean the tree.

The tag scan that enforces this reads tags, attributes, comments and raw-text elements by the
HTML tokenizer's rules; it does not model every state (script-data escapes, CDATA in SVG), so
a page crafted against those differences can still slow its own extraction down.
"""

from __future__ import annotations

import re

from lxml import etree
from selectolax.lexbor import LexborHTMLParser, LexborNode

from .nesting import bound_nesting
from .tokenizer import ATTRIBUTE, RAW_TEXT_ELEMENTS, WS

__all__ = ["MAX_DEPTH", "parse_html5"]

#: Deepest element nesting kept; deeper elements are unwrapped (their text stays in place).
#: Browsers cap it too (Chromium at 512).
MAX_DEPTH = 512

# Documents with more tags than this have the nesting lexbor would build bounded first
# (nesting.bound_nesting, a step in Python per tag: about 1 us); below it even a document that
# is all nested blocks parses in well under a second.
_SCAN_ABOVE_TAGS = 8_000

# Documents with more tags than this (and fewer than _SCAN_ABOVE_TAGS) have their nesting
# bounded too when they hold more than _MAX_FORMATTING_WITH_ATTRIBUTES formatting elements
# with attributes: the formatting elements the tree builder reopens before every text can
# multiply a page's elements by that many (see nesting.py; 1,500 such tags made 586 MB and
# 12 s). Below, their square stays small. The count costs about 0.25 ms a page.
_FORMATTING_SCAN_ABOVE_TAGS = 600
_MAX_FORMATTING_WITH_ATTRIBUTES = 300
# A formatting element's start tag with an attribute (identical ones are reopened three at
# most: only differing attributes multiply). <a> is left out: the tree builder keeps one.
_FORMATTING_WITH_ATTRIBUTE = re.compile(
    rf"<(?:[bius]|em|tt|big|code|font|nobr|small|strike|strong)(?=[{WS}/>])"
    rf"[{WS}/]++[^{WS}/>]", re.IGNORECASE | re.ASCII)


def _many_formatting_tags(text: str) -> bool:
    return len(_FORMATTING_WITH_ATTRIBUTE.findall(text)) > _MAX_FORMATTING_WITH_ATTRIBUTES


# A tag never spans a "<" here (lexbor escapes it inside attribute values when serializing):
# without that, a document of "<a<a<a…" made every match attempt scan to its end.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^<>]*?(/?)>")

#: Attributes and separators read in one tag before the rest of it is turned into text.
MAX_TAG_TOKENS = 256
_TAG_TOKEN = rf"(?:[{WS}/]++|{ATTRIBUTE})"
_NAME_END = rf"(?=[{WS}/>]|\Z)"
# Elements whose content is text up to their end tag. Each is its own alternative: a capture
# group (for a back-reference) inside the possessive repetition below makes CPython 3.11's
# re raise SystemError ("the span of capturing group is wrong") on some pages. Their names
# are matched ignoring ASCII case only ("(?ai:"), as the tokenizer does: with Unicode case
# folding "<\u017fcript>" would pass for a script.
_RAW_TEXT_INITIALS = "".join(sorted({name[0] for name in (*RAW_TEXT_ELEMENTS, "plaintext")}))
# A tag of the common, plain shape: a name of letters, digits and "-", then at most 100
# attributes, each after whitespace, a name, then "=" and a value closed on the same terms
# (quoted and closed, or unquoted without quotes, "=", "<" or "`"). The tokenizer reads
# such a tag exactly so (it ends at the ">" here and has at most 201 tokens), and most
# tags have this shape, so the scan tries it first and tokenizes only the others.
_PLAIN_TAG = (rf"/?[A-Za-z][A-Za-z0-9-]*+"
              rf"(?:[{WS}]++[A-Za-z_:@][^{WS}/>=\"'<]*+"
              rf"(?:=(?:\"[^\"]*+\"|'[^']*+'|[^{WS}>\"'=<`]++))?){{0,100}}+[{WS}/]*+>")
# What the scan passes over whole: text, comments, bogus comments and doctypes, a raw-text
# element with its content, a tag with fewer than MAX_TAG_TOKENS tokens, a lone "<". Comment and
# raw-text bodies are passed over in runs up to the next "-" or "<" (a lazy ".*?" there tried
# the end marker at every character: half the scan's time on pages heavy with inline script).
# After a "<", the raw-text elements are tried only when the next letter can begin one.
_PASSED = (
    r"(?>[^<]++"
    r"|<(?:"
    r"!--(?:-?>|[^-]*+(?:-(?!-!?>)[^-]*+)*+(?:--!?>)?)"
    r"|(?:!|\?|/(?![A-Za-z]))[^>]*+>?"
    rf"|(?=[{_RAW_TEXT_INITIALS}{_RAW_TEXT_INITIALS.upper()}])(?:"
    + "|".join(rf"(?ai:{name}){_NAME_END}{_TAG_TOKEN}{{0,{MAX_TAG_TOKENS - 1}}}+"
               rf"(?:>[^<]*+(?:<(?!/(?ai:{name}){_NAME_END})[^<]*+)*+"
               rf"(?:</(?ai:{name}){_NAME_END})?|\Z)"
               for name in RAW_TEXT_ELEMENTS)
    + rf"|(?ai:plaintext){_NAME_END}.*"
    r")"
    rf"|{_PLAIN_TAG}"
    rf"|/?[A-Za-z][^{WS}/>]*+{_TAG_TOKEN}{{0,{MAX_TAG_TOKENS - 1}}}+(?:>|\Z)"
    r"|(?![A-Za-z!?/])"
    r"))"
)
_LONG_TAG = re.compile(
    rf"(?:{_PASSED})*+(?P<cut></?[A-Za-z][^{WS}/>]*+{_TAG_TOKEN}{{{MAX_TAG_TOKENS}}})",
    re.DOTALL,
)


_TAG_REST = re.compile(rf"{_TAG_TOKEN}*+")


def _cut_long_tags(markup: str) -> str:
    """Drop the tokens of every tag after its first :data:`MAX_TAG_TOKENS` (up to its ``>``):
    attributes a browser would keep but never show as text. Pages without such a tag come
    back unchanged."""
    pieces: list[str] = []
    pos = 0
    while (match := _LONG_TAG.match(markup, pos)) is not None:
        pieces.append(markup[pos : match.end("cut")])
        pos = _TAG_REST.match(markup, match.end("cut")).end()  # type: ignore[union-attr]
    if not pieces:
        return markup
    pieces.append(markup[pos:])
    return "".join(pieces)


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
        collect_ids=False,  # no lookups by id here: the table of ids is never used
    )


def _too_deep(parser: etree.HTMLParser) -> bool:
    return any("depth" in entry.message.lower() for entry in parser.error_log)


_NOSCRIPT_OPEN = re.compile(r"<noscript", re.IGNORECASE)
_NOSCRIPT_CLOSE = re.compile(r"</noscript", re.IGNORECASE)


def _close_raw_text_in_noscript(text: str) -> str:
    """End, before its ``</noscript>``, a raw-text element left open inside a ``<noscript>``.

    A browser runs scripts, so it reads a ``<noscript>`` as text up to ``</noscript>``: a
    tracking pixel written ``<noscript><iframe src=... /></noscript>`` ends there. Read as
    markup (scripting off, as here), the ``<iframe>`` is not closed by ``/>`` and its raw text
    runs to the end of the document, swallowing the page. One pass over the noscript spans,
    each lowercased and searched once for each raw-text element: linear. Run only on pages
    where lexbor's tree shows the swallowing (_lexbor): the scan costs about 0.1 ms."""
    opener = _NOSCRIPT_OPEN.search(text)
    pieces: list[str] = []
    pos = 0
    while opener is not None:
        closer = _NOSCRIPT_CLOSE.search(text, opener.end())
        if closer is None:
            break
        end = closer.start()
        span = text[opener.end() : end].lower()
        closers = ""
        for name in RAW_TEXT_ELEMENTS:
            opened = span.rfind(f"<{name}")
            if opened >= 0 and span.find(f"</{name}", opened) < 0:
                closers += f"</{name}>"
        if closers:
            pieces.append(text[pos:end])
            pieces.append(closers)
            pos = end
        opener = _NOSCRIPT_OPEN.search(text, closer.end())
    if not pieces:
        return text
    pieces.append(text[pos:])
    return "".join(pieces)


_RAW_TEXT_SET = frozenset(RAW_TEXT_ELEMENTS)
# The raw-text elements inside a <noscript> (each found once, however deep the noscripts nest:
# a check of every noscript's subtree made nested noscripts quadratic).
_RAW_TEXT_IN_NOSCRIPT = ", ".join(f"noscript {name}" for name in RAW_TEXT_ELEMENTS)


def _swallows(tree: LexborHTMLParser) -> bool:
    """A raw-text element inside a ``<noscript>`` ran past its ``</noscript>``."""
    return any("</noscript" in (node.text(deep=True) or "").lower()
               for node in tree.css(_RAW_TEXT_IN_NOSCRIPT))


#: Options a single-choice ``<select>`` may have before it is parsed as a multiple-choice one.
MAX_SINGLE_CHOICE_OPTIONS = 2_000
_OPTION_TAG = re.compile(r"<option(?=[\t\n\f\r />])", re.IGNORECASE | re.ASCII)
_SELECT_TAG = re.compile(r"<select(?=[\t\n\f\r />])", re.IGNORECASE | re.ASCII)


def _multiple_choice(text: str) -> str:
    """``text`` with a ``multiple`` attribute in every ``<select>`` start tag, when the page has
    more than :data:`MAX_SINGLE_CHOICE_OPTIONS` options. lexbor, as the HTML standard says,
    runs a single-choice list's selectedness algorithm over all its options whenever one is
    inserted: quadratic (a hostile page of 160,000 ``<option selected>`` took minutes). A
    multiple-choice list builds the same tree without it; what the extractor reads differs
    only in ``<selectedcontent>``, the copy of the chosen option a single-choice list shows
    (inside its button, which cleaning removes), in the attribute itself, never read, and in
    a title or other raw text that spells ``<select`` (the rewrite does not tell them
    apart: it gains the word)."""
    if len(_OPTION_TAG.findall(text)) <= MAX_SINGLE_CHOICE_OPTIONS:
        return text
    return _SELECT_TAG.sub("<select multiple", text)


def _lexbor(text: str) -> tuple[LexborHTMLParser, bool]:
    """lexbor's tree of ``text``, scripts and styles emptied; and whether a raw-text element
    left open in a ``<noscript>`` swallowed what follows it (_close_raw_text_in_noscript).
    The noscript elements are found in the same query as the scripts; the raw-text elements
    inside them are read (before the scripts are emptied) only when there are some."""
    tree = LexborHTMLParser(text)
    noscript = False
    emptied: list[LexborNode] = []
    for node in tree.css("script, style, noscript"):
        if node.tag == "noscript":
            noscript = True
        elif node.tag == "style" or "ld+json" not in (node.attributes.get("type") or "").lower():
            emptied.append(node)
    swallowed = noscript and _swallows(tree)
    for node in emptied:
        # never text: emptied here, so libxml2 need not read it again (the element stays,
        # as a sign the page had something: a page of scripts is not empty)
        while (child := node.child) is not None:
            child.decompose()
    return tree, swallowed


def parse_html5(text: str, tags: int | None = None) -> etree._Element | None:
    """The document's tree as a browser builds it, as an lxml ``<html>`` element. ``tags``:
    how many "<" the text has, or more, when the caller has counted them."""
    text = _cut_long_tags(text)  # (it never adds a "<")
    if tags is None:
        tags = text.count("<")
    if tags > _SCAN_ABOVE_TAGS:
        text = bound_nesting(_multiple_choice(text), MAX_DEPTH)
    elif tags > _FORMATTING_SCAN_ABOVE_TAGS and _many_formatting_tags(text):
        text = bound_nesting(text, MAX_DEPTH)
    tree, swallowed = _lexbor(text)
    if swallowed:  # rare: parsed again, with the raw-text elements closed in place
        tree, _ = _lexbor(_close_raw_text_in_noscript(text))
    data = (tree.html or "").encode("utf-8", "replace")
    # lexbor's tree (several times the page's size) and its serialisation are freed before
    # libxml2 builds its own tree: held to the end, they were a third of a capture's peak
    # memory on a 3 MiB page
    del tree
    parser = _lxml_parser()
    root = etree.fromstring(data, parser=parser)
    if _too_deep(parser):
        # (what "replace" changed, lone surrogates, flattening never looks at)
        flat = _flatten(data.decode("utf-8"), MAX_DEPTH)
        del data
        root = etree.fromstring(flat.encode("utf-8", "replace"), _lxml_parser())
    return root
