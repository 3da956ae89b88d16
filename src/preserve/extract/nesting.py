"""Bound how deep the HTML tree builder will nest elements, before it runs.

lexbor, like every tree builder that follows the HTML standard, looks down its stack of open
elements for most tags (is a ``<p>`` in scope? where does this end tag match?), so its time
grows with the number of tags times the nesting depth. A hostile page can nest without end:
elements whose end tag is optional but which only close in their own context (``<rt>``
outside ``<ruby>``, ``<li>`` under a ``<div>``), or end tags that match nothing and are
ignored (``<header>x</code>`` a hundred thousand times); counting tags without their names
misses both. :func:`bound_nesting` replays the tree builder's opening and closing of elements
by name, built to over-estimate the depth rather than under-estimate it, and drops
the start tags (and their end tags) of elements it finds nested deeper than the cap; text is
never dropped.

It also bounds the list of active formatting elements. A formatting element (``<b>``,
``<font>``, ...) closed by something else than its own end tag stays in that list, and the
tree builder opens it again before the next text: ``<p><b class=N>x</p>`` repeated makes each
paragraph hold every earlier ``<b>``, nested (80 KB of it took lexbor 3.2 GB). The
standard keeps at most three identical ones; differing attributes defeat that. A formatting
start tag past :data:`MAX_FORMATTING` entries is dropped like a too-deep one.

What it models: void elements; raw-text elements and comments (no tags inside); implied end
tags (``<p>`` closed by the blocks that close it, ``<li>``, ``<dt>``/``<dd>``, ``<option>``,
the ruby annotations inside ``<ruby>``, table cells, rows and sections inside ``<table>``,
ignored outside one); end tags matched by name within the scope the standard gives them, or
ignored; the formatting elements reopened before text. What it does not: the adoption agency
(a misnested formatting end tag is taken as ignored), foster parenting, the insertion modes
of lists, frames and templates (``<select>`` is taken as a scope boundary). Where it keeps an
element open that the tree builder closed, it may later close more than the tree builder
does; a search over 3,600 random repeated tag patterns found what is left nested at most 28
levels past the cap, but for one pattern (SVG, MathML and an HTML ``<mi>`` mixed), left at
the full depth (see docs/extraction.md). It is run only on pages with many tags (html5.py):
it takes a step in Python per tag, about 1 us.
"""

from __future__ import annotations

import re

from .tokenizer import ATTRIBUTE, RAW_TEXT_ELEMENTS, WS

__all__ = ["MAX_FORMATTING", "bound_nesting"]

# A comment (as the tokenizer ends it: "<!-->" and "<!--->" are whole comments, "--!>" ends
# one, an unclosed one runs to the end of the page), or a tag: "/" for an end tag, the name
# (up to white space, "/" or ">", as the tokenizer reads it: "<div@x>" is not a div), "/"
# when self-closing ("/" right before the ">").
_TOKEN = re.compile(
    r"<!--(?:-?>|(?:[^-]|-(?!-!?>))*+(?:--!?>|\Z))"
    rf"|<(/?)([A-Za-z][^{WS}/>]*+)(?:[{WS}]++|/(?!>)|{ATTRIBUTE})*+(/?)(?:>|\Z)"
)
# The end of a raw-text element's text (its end tag, in any ASCII case).
_RAW_TEXT_END = {name: re.compile(rf"</(?ai:{name})[{WS}/>]") for name in RAW_TEXT_ELEMENTS}

_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen",
                   "link", "meta", "param", "source", "track", "wbr", "frame", "basefont",
                   "bgsound", "image", "isindex"})
# Elements whose content is text up to their own end tag (no tags inside).
_RAW_TEXT = frozenset(RAW_TEXT_ELEMENTS)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# The standard's "special" elements: an end tag that is not theirs stops at them.
_SPECIAL = frozenset({
    "address", "applet", "area", "article", "aside", "base", "basefont", "bgsound",
    "blockquote", "body", "br", "button", "caption", "center", "col", "colgroup", "dd",
    "details", "dir", "div", "dl", "dt", "embed", "fieldset", "figcaption", "figure", "footer",
    "form", "frame", "frameset", "head", "header", "hgroup", "hr", "html", "iframe", "img",
    "input", "keygen", "li", "link", "listing", "main", "marquee", "menu", "meta", "nav",
    "noembed", "noframes", "noscript", "object", "ol", "p", "param", "plaintext", "pre",
    "script", "search", "section", "select", "source", "style", "summary", "table", "tbody",
    "td", "template", "textarea", "tfoot", "th", "thead", "title", "tr", "track", "ul", "wbr",
    "xmp", "mi", "mo", "mn", "ms", "mtext", "annotation-xml", "foreignobject", "desc",
    *_HEADINGS,
})
# Where a search for an element "in scope" stops (the standard's default scope, plus
# <button> for "button scope", which only <p> uses).
_SCOPE = frozenset({"applet", "caption", "html", "table", "td", "th", "marquee", "object",
                    "template", "mi", "mo", "mn", "ms", "mtext", "annotation-xml",
                    "foreignobject", "desc", "title",
                    # not a boundary in the standard's default scope; taken as one (what a
                    # list's insertion mode lets through is not modelled)
                    "select"})
_BUTTON_SCOPE = _SCOPE | {"button"}
# The MathML and SVG elements among the boundaries above: boundaries only as such.
_MATHML_SVG_STOPS = frozenset({"mi", "mo", "mn", "ms", "mtext", "annotation-xml",
                               "foreignobject", "desc"})
# Start tags that close an open <p> first.
_CLOSES_P = frozenset({
    "address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div",
    "dl", "fieldset", "figcaption", "figure", "footer", "header", "hgroup", "main", "menu",
    "nav", "ol", "p", "search", "section", "summary", "ul", "pre", "listing", "form", "li",
    "dd", "dt", "plaintext", "table", "xmp", *_HEADINGS,
})
_FORMATTING = frozenset({"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small",
                         "strike", "strong", "tt", "u"})
# Start tags that close an open element of their own kind ("li" closes "li"), looking down
# the stack until an element in the second set (None: any special element but address, div
# and p, as for list items).
_SIBLINGS: dict[str, tuple[frozenset[str], frozenset[str] | None]] = {
    "li": (frozenset({"li"}), None),
    "dt": (frozenset({"dt", "dd"}), None),
    "dd": (frozenset({"dt", "dd"}), None),
    "a": (frozenset({"a"}), _SPECIAL),
    "nobr": (frozenset({"nobr"}), _SPECIAL),
    "button": (frozenset({"button"}), _SCOPE),
}
# Table parts: close an open part of their own level (up to the table); ignored outside one.
_TABLE_PARTS: dict[str, frozenset[str]] = {
    "td": frozenset({"td", "th"}),
    "th": frozenset({"td", "th"}),
    "tr": frozenset({"tr", "td", "th"}),
    "tbody": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup"}),
    "thead": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup"}),
    "tfoot": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup"}),
    "caption": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup"}),
    "colgroup": frozenset({"tbody", "thead", "tfoot", "tr", "td", "th", "caption", "colgroup"}),
}
_RUBY_PARTS = frozenset({"rb", "rt", "rtc", "rp"})
_NOT_TRACKED = frozenset({"html", "head", "body"})  # merged into the document's own
_FOREIGN = frozenset({"svg", "math"})
#: Entries of the list of active formatting elements (since its last marker) kept; a formatting
#: start tag past them is dropped. The standard's own bound is three identical entries.
MAX_FORMATTING = 16
# Elements that put a marker in the list of active formatting elements (entries before it
# are not reopened inside them; closing them clears the list back to the marker).
_MARKERS = frozenset({"td", "th", "caption", "applet", "object", "marquee", "template"})
# Start tags that end foreign content (svg, math) when its current element is foreign.
_BREAKOUT = frozenset({
    "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em",
    "embed", "head", "hr", "i", "img", "li", "listing", "menu", "meta", "nobr", "ol", "p",
    "pre", "ruby", "s", "small", "span", "strong", "strike", "sub", "sup", "table", "tt",
    "u", "ul", "var", *_HEADINGS,
})  # (and <font> with a color, face or size attribute: left out, as never ending it)
# Foreign elements whose content is HTML again (integration points), by namespace.
_INTEGRATION = {"math": frozenset({"mi", "mo", "mn", "ms", "mtext", "annotation-xml"}),
                "svg": frozenset({"foreignobject", "desc", "title"})}
_P = frozenset({"p"})
_TABLE = frozenset({"table"})
_LIST_ITEM_SCOPE = _SCOPE | {"ol", "ul"}
# Start tags before which the active formatting elements are not reopened (blocks, table
# parts, raw text; the others are, or are taken to be: an over-estimate at worst).
_NO_RECONSTRUCT = frozenset({*_CLOSES_P, *_TABLE_PARTS, *_NOT_TRACKED, "table", "template",
                             "frameset", "noscript", *_RAW_TEXT, "plaintext", "iframe"})
# Start tags with a rule of their own in _start (or _dropped_tags); the others just open.
_RULED_OTHERWISE = frozenset({*_NOT_TRACKED, *_TABLE_PARTS, *_SIBLINGS, *_HEADINGS, "option",
                              "optgroup", *_RUBY_PARTS, *_FORMATTING, *_MARKERS, *_FOREIGN,
                              *_RAW_TEXT, "plaintext"})
_RULED = _RULED_OTHERWISE | _CLOSES_P
# Start tags whose only rule is to close an open <p> first.
_ONLY_CLOSES_P = _CLOSES_P - _RULED_OTHERWISE
#: How far down the stack a tag looks for what it closes; past that it is taken as matching
#: nothing, so a page cannot make each tag search a stack of thousands (at 1,024, a page of
#: 64,000 tags made 96,000 searches take 10 s; at 128, about 1 s).
_REACH = 128


class _Entry:
    """An element of the list of active formatting elements: its name, its start tag (for
    the standard's "identical" test) and whether an element made from it is open."""

    __slots__ = ("name", "on_stack", "tag")

    def __init__(self, name: str, tag: str) -> None:
        self.name = name
        self.tag = tag
        self.on_stack = True


class _Stack:
    """The open elements as the replay sees them: each kept (counted in ``depth``) or dropped
    (nested past the cap: its tags are removed from the page), each foreign (SVG or MathML
    content) or not, each made from an entry of the list of active formatting elements or
    not; and that list (``None`` for a marker)."""

    __slots__ = ("active", "cap", "current", "depth", "entries", "foreign", "kept", "names",
                 "off", "open")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.names: list[str] = []
        self.kept: list[bool] = []
        self.foreign: list[str | None] = []  # "svg" or "math" for foreign content
        self.entries: list[_Entry | None] = []
        self.depth = 0
        self.open: dict[str, int] = {}
        self.active: list[_Entry | None] = []
        self.off = 0  # entries of the list whose element is not open: reopened before text
        # The indices of the kept elements: the last is the tree builder's current element
        # (the dropped ones above it do not exist for it, and decide nothing about context).
        self.current: list[int] = []

    def in_foreign(self) -> bool:
        """Whether a start tag or text is read as SVG or MathML content: the current element
        is foreign and not an integration point (whose content is HTML)."""
        if not self.current:
            return False
        at = self.current[-1]
        namespace = self.foreign[at]
        return namespace is not None and self.names[at] not in _INTEGRATION[namespace]

    def ends_foreign(self) -> bool:
        """Whether an end tag is read as foreign content (integration points included)."""
        return bool(self.current) and self.foreign[self.current[-1]] is not None

    def push(self, name: str, keep: bool = True, entry: _Entry | None = None,
             real: bool = False) -> bool:
        """Open ``name``; False if it is dropped (nested past the cap, or not ``keep``), unless
        it is ``real`` (made by the tree builder, not by a tag of the page: never dropped)."""
        keep = real or (keep and self.depth < self.cap)
        # (an <svg> or <math> dropped: its content is read as its parent's is)
        foreign: str | None
        if keep and name in _FOREIGN:
            foreign = name
        elif self.in_foreign():
            foreign = self.foreign[self.current[-1]]
        else:
            foreign = None
        if keep:
            self.current.append(len(self.names))
        self.names.append(name)
        self.kept.append(keep)
        self.foreign.append(foreign)
        self.entries.append(entry)
        self.depth += keep
        self.open[name] = self.open.get(name, 0) + 1
        if name in _MARKERS:
            self.active.append(None)
        return keep

    def pop_to(self, index: int) -> bool:
        """Close the element at ``index`` and every one above it; whether it was kept."""
        kept = self.kept[index]
        for name, was_kept, entry in zip(self.names[index:], self.kept[index:],
                                         self.entries[index:], strict=True):
            self.depth -= was_kept
            self.open[name] -= 1
            if entry is not None and entry.on_stack:
                entry.on_stack = False
                self.off += entry in self.active
            if name in _MARKERS and None in self.active:  # back to (and without) its marker
                while (dropped := self.active.pop()) is not None:
                    self.off -= not dropped.on_stack
        del self.names[index:]
        del self.kept[index:]
        del self.foreign[index:]
        del self.entries[index:]
        while self.current and self.current[-1] >= index:
            self.current.pop()
        return kept

    def reconstruct(self) -> None:
        """Open again the active formatting elements that are not open (the standard does
        so before most start tags and before text): they exist whatever the cap, so they
        count in ``depth`` even past it."""
        start = len(self.active)
        while start > 0 and (entry := self.active[start - 1]) is not None:
            start -= 1
        for entry in self.active[start:]:
            if entry is not None and not entry.on_stack:
                self.push(entry.name, entry=entry, real=True)
                entry.on_stack = True
        self.off = 0

    def find(self, targets: frozenset[str], stop: frozenset[str] | None) -> int | None:
        """The index of the nearest open element in ``targets``, looking down the stack no
        further than an element in ``stop`` (None: special elements but address, div, p)."""
        if not any(self.open.get(name) for name in targets):
            return None
        names, foreign = self.names, self.foreign
        for index in range(len(names) - 1, max(-1, len(names) - 1 - _REACH), -1):
            name = names[index]
            if name in targets:
                return index
            if name in _MATHML_SVG_STOPS and foreign[index] is None:
                continue  # (an HTML element of that name is no boundary)
            if stop is None:
                if name in _SPECIAL and name not in ("address", "div", "p"):
                    return None
            elif name in stop:
                return None
        return None

    def leave_foreign(self) -> None:
        """Close the foreign elements at the top of the stack (an HTML tag ends them) down to
        an HTML element or an integration point."""
        index = len(self.foreign)
        while index > 0 and (namespace := self.foreign[index - 1]) is not None \
                and self.names[index - 1] not in _INTEGRATION[namespace]:
            index -= 1
        if index < len(self.names):
            self.pop_to(index)

    def add_formatting(self, name: str, tag: str) -> _Entry | None:
        """A new entry of the active list for this formatting element (the standard's
        bound: at most three identical ones, the earliest dropped from the list); None if
        the list (since its last marker) already holds MAX_FORMATTING entries."""
        start = len(self.active)
        while start > 0 and self.active[start - 1] is not None:
            start -= 1
        same = [at for at in range(start, len(self.active))
                if (entry := self.active[at]) is not None and entry.tag == tag]
        if len(same) >= 3:
            self._remove(same[0])
        elif len(self.active) - start >= MAX_FORMATTING:
            return None
        entry = _Entry(name, tag)
        self.active.append(entry)
        return entry

    def remove_formatting(self, name: str) -> None:
        """Remove the last active formatting element named ``name`` (since the marker)."""
        for at in range(len(self.active) - 1, -1, -1):
            entry = self.active[at]
            if entry is None:
                return
            if entry.name == name:
                self._remove(at)
                return

    def _remove(self, at: int) -> None:
        entry = self.active.pop(at)
        if entry is not None and not entry.on_stack:
            self.off -= 1


def _closes_current(name: str, current: str) -> bool:
    """A heading closes a heading; an option or an option group closes an option."""
    return (name in _HEADINGS and current in _HEADINGS) or (
        name in ("option", "optgroup") and current == "option")


def _start(stack: _Stack, name: str, tag: str) -> bool | None:
    """Replay the start tag ``tag`` of element ``name``; whether it opened a kept element,
    False if dropped, None if it opens nothing (ignored, or raw text: see _dropped_tags)."""
    if name in _NOT_TRACKED:
        return None
    if stack.in_foreign():
        if name not in _BREAKOUT:
            return stack.push(name)  # (SVG or MathML: none of the HTML rules below apply)
        stack.leave_foreign()
    if name in _TABLE_PARTS:
        if not stack.open.get("table"):
            return None  # a parse error outside a table: ignored
        found = stack.find(_TABLE_PARTS[name], _TABLE)
        if found is not None:
            stack.pop_to(found)
        return stack.push(name)
    if name in _CLOSES_P and stack.open.get("p"):
        found = stack.find(_P, _BUTTON_SCOPE)
        if found is not None:
            stack.pop_to(found)
    if name in _SIBLINGS:
        targets, stop = _SIBLINGS[name]
        found = stack.find(targets, stop)
        if found is not None:
            stack.pop_to(found)
            if name in _FORMATTING:
                stack.remove_formatting(name)
    elif stack.names and _closes_current(name, stack.names[-1]):
        stack.pop_to(len(stack.names) - 1)
    elif name in _RUBY_PARTS and stack.open.get("ruby"):
        while stack.names and stack.names[-1] in _RUBY_PARTS and not (
                name in ("rt", "rp") and stack.names[-1] == "rtc"):
            stack.pop_to(len(stack.names) - 1)
    if name not in _NO_RECONSTRUCT and stack.off:
        stack.reconstruct()
    if name in _FORMATTING:
        entry = stack.add_formatting(name, tag)
        return stack.push(name, entry is not None, entry)
    return stack.push(name)


def _end(stack: _Stack, name: str) -> bool | None:
    """Replay an end tag; whether the element it closed was kept (None: it closed none)."""
    if name in _NOT_TRACKED:
        return None
    if stack.ends_foreign() and name in ("p", "br"):
        stack.leave_foreign()  # (these end the foreign content, then act as in HTML)
    if stack.ends_foreign():
        # an element of the foreign content (SVG, MathML) closes by name; else, taken as
        # ignored (the standard goes on with the HTML rules below it: over-estimated)
        index = len(stack.names) - 1
        while (index >= 0 and stack.foreign[index] is not None
               and len(stack.names) - index <= _REACH):
            if stack.names[index] == name:
                return stack.pop_to(index)
            index -= 1
        return None
    if name in _HEADINGS:  # (any heading's end tag closes the open heading)
        found = stack.find(_HEADINGS, _SCOPE)
        return None if found is None else stack.pop_to(found)
    if not stack.open.get(name):
        if name in _FORMATTING:
            stack.remove_formatting(name)  # (the standard: a parse error; out of the list)
        return None
    if name == "p":
        stop: frozenset[str] | None = _BUTTON_SCOPE
    elif name == "li":
        stop = _LIST_ITEM_SCOPE
    elif name in _SPECIAL or name in _FOREIGN:
        stop = _SCOPE
    else:  # ("any other end tag"; a formatting element's, when misnested, as ignored)
        stop = _SPECIAL
    found = stack.find(frozenset({name}), stop)
    if found is None:
        return None
    if name in _FORMATTING:
        stack.remove_formatting(name)
    return stack.pop_to(found)


def bound_nesting(markup: str, cap: int) -> str:
    """``markup`` without the tags of the elements the tree builder would nest deeper than
    ``cap`` (the same string when there are none)."""
    drop = _dropped_tags(markup, cap)
    if not drop:
        return markup
    pieces: list[str] = []
    pos = 0
    for start, end in drop:
        pieces.append(markup[pos:start])
        pos = end
    pieces.append(markup[pos:])
    return "".join(pieces)


def _dropped_tags(markup: str, cap: int) -> list[tuple[int, int]]:
    """The spans of the start and end tags :func:`bound_nesting` removes."""
    stack = _Stack(cap)
    names, kept, foreign, opened = stack.names, stack.kept, stack.foreign, stack.open
    drop: list[tuple[int, int]] = []
    pos = 0
    tokens = _TOKEN.finditer(markup)
    while (match := next(tokens, None)) is not None:
        if stack.off and match.start() > pos and not stack.in_foreign():
            stack.reconstruct()  # (before text, white space included)
        pos = match.end()
        closing, name, self_closing = match.groups()
        if name is None:
            continue  # a comment
        name = name.lower()
        if closing:
            if names and names[-1] == name and name not in _MARKERS and name not in _FORMATTING:
                # (most end tags: they close the current element)
                opened[name] -= 1
                foreign.pop()
                names.pop()
                stack.entries.pop()
                if kept.pop():
                    stack.depth -= 1
                    stack.current.pop()
                else:
                    drop.append(match.span())
            elif _end(stack, name) is False:
                drop.append(match.span())
            continue
        if name in _VOID:
            continue
        in_foreign = stack.in_foreign()
        if not in_foreign and stack.depth < cap and (
                (name not in _RULED and not stack.off)
                or (name in _ONLY_CLOSES_P and not opened.get("p"))):
            # (most start tags: an element with no rule of its own, at a kept depth)
            stack.current.append(len(names))
            names.append(name)
            kept.append(True)
            foreign.append(None)
            stack.entries.append(None)
            stack.depth += 1
            opened[name] = opened.get(name, 0) + 1
            continue
        if self_closing and in_foreign and name not in _BREAKOUT:
            continue
        if name in _RAW_TEXT and not in_foreign:
            # text up to its end tag (comments and tags in it are text); never dropped: no
            # element nests in it, and, dropped, its text would be read as markup
            end = _RAW_TEXT_END[name].search(markup, pos)
            if end is None:
                break  # the rest of the page is its text
            pos = end.end()
            tokens = _TOKEN.finditer(markup, pos)
            continue
        if name == "plaintext" and not in_foreign:
            break  # the rest of the page is text
        if _start(stack, name, match.group(0).lower()) is False:
            drop.append(match.span())
    return drop
