"""Pieces of the HTML tokenizer's grammar as regular expressions, shared by the scans that
read a page's tags before it is parsed (html5.py, nesting.py). Builds no pattern itself."""

from __future__ import annotations

#: The characters the tokenizer takes as white space.
WS = r"\t\n\f\r "
#: One attribute as the tokenizer reads it: a name (whose first character may be "=" or a
#: quote), then, after optional white space, "=" and a quoted or unquoted value. A quoted
#: value may hold "<" and ">": a tag is read by its attributes, not up to the next ">".
ATTRIBUTE = (rf"[^{WS}/>][^{WS}/>=]*+"
             rf"(?:[{WS}]*+=[{WS}]*+(?:\"[^\"]*+\"?|'[^']*+'?|[^{WS}>]*+))?")
#: Elements whose content is text up to their end tag (no tags inside), in HTML content.
RAW_TEXT_ELEMENTS = ("script", "style", "xmp", "iframe", "noembed", "noframes", "title",
                     "textarea")
