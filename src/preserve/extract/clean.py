"""Remove from a parsed page what is never readable text, and what the browser hides.

Always removed: scripts, styles, embedded objects and media, form fields and the labels of
text-entry fields, ``<template>``, and
choice lists (``<select>``, ``<datalist>``: a browser shows one option of a list of
countries, not the list; a page swallowed by an unclosed ``<select>`` is not shown either).
Other controls (``<button>``, an open ``<dialog>``) are removed when small; one that holds
much of the page (an unclosed ``<button>`` swallows what follows it, in a browser too) is
unwrapped instead, keeping its text. Hidden elements (``hidden``, ``display:none``,
``visibility:hidden``, hiding classes, modal dialogs: overlays shown on demand) and
``<noscript>`` are removed unless the caller keeps them, and never when together they hold
most of the page's text (streaming frameworks park the rendered page in hidden nodes; some
forums serve their posts in ``<noscript>``); a modal dialog, or a hidden box named like chrome
(a sign-in form, a cookie banner: hints.is_unlikely), is removed all the same, and is not
counted in that share; so is what stays hidden once a page parked in large hidden nodes is
shown (small elements hidden by a class or a style beside or inside them: screen-reader
labels, collapsed boxes).
Does not judge what is boilerplate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from lxml import etree

from .dom import drop_keep_tail, visible_chars
from .hints import is_unlikely

__all__ = ["HIDDEN_KEEP_SHARE", "PARKED_PIECE_SHARE", "Cleaned", "clean"]

#: Hidden elements are kept when they hold at least this share of the page's text.
HIDDEN_KEEP_SHARE = 0.5
#: When they are kept, an element hidden by a class or a style holding less than this share
#: of the page's text is removed all the same: a page is parked in large hidden nodes (or in
#: ``hidden`` ones, which are kept whatever their size), while labels for screen readers and
#: boxes hidden until clicked stay hidden once it is shown.
PARKED_PIECE_SHARE = 0.02
#: A control holding at least this share of the page's text is unwrapped, not removed.
CONTROL_KEEP_SHARE = 0.2
CONTROL_KEEP_CHARS = 200

_JUNK_TAGS = (
    "script",
    "style",
    "template",
    "svg",
    "math",
    "iframe",
    "object",
    "embed",
    "canvas",
    "video",
    "audio",
    "map",
    "input",
    "textarea",
    "link",
    "meta",
    "frameset",
    "frame",
    "title",
    "base",
    "select",
    "datalist",
)
_CONTROL_TAGS = frozenset({"button", "option", "dialog"})

# Class names that mean "not shown": hidden helpers, screen-reader-only labels, hover cards.
_HIDDEN_CLASS = re.compile(
    r"(^|\s)(hidden|element-hidden|is-hidden|visually-?hidden|sr-only|screen-reader-text|"
    r"d-none|display-none|hide|invisible|tooltip|popover|hovercard)(\s|$)|"
    r"(-display-none|-is-hidden|--hidden)(\s|$)|"
    r"(tooltip|popover|hovercard|rollover)[\w-]*-(block|content|card|body|box|inner|popup)"
)
# A hiding helper named in camelCase after a prefix (``ipsHide``, ``isHidden``, ``jsHidden``):
# the same helper as ``hide`` or ``hidden``, with a framework's or a state's prefix.
_HIDDEN_CAMEL = re.compile(r"(?<=[a-z])(?<!show)(?<!no)(?:Hide|Hidden)(?:\s|$)")
# A responsive utility that shows the element at some screen width (``hidden md:block``,
# ``d-none d-lg-block``): shown on a desktop browser.
_SHOWN_AT_WIDTH = re.compile(
    r"(^|\s)([a-z0-9]+:(block|flex|grid|inline|inline-block|inline-flex|table|contents)|"
    r"d-[a-z]{2,3}-(block|flex|grid|inline|inline-block|inline-flex|table))(\s|$)"
)
# Responsive display utilities (Tailwind ``md:hidden``, Bootstrap ``d-lg-none``): the display
# at each minimum screen width. A page is read as a desktop browser shows it, DESKTOP_WIDTH
# pixels wide: the utilities of every breakpoint up to that width apply, the widest last.
DESKTOP_WIDTH = 1280
_DISPLAY = (r"(none|hidden|block|flex|grid|inline|inline-block|inline-flex|table|table-cell|"
            r"table-row|contents|flow-root|list-item)")
_TAILWIND_DISPLAY = re.compile(rf"^(?:(sm|md|lg|xl|2xl):)?{_DISPLAY}$")
_BOOTSTRAP_DISPLAY = re.compile(rf"^d-(?:(sm|md|lg|xl|xxl)-)?{_DISPLAY}$")
_TAILWIND_WIDTHS = {"sm": 640, "md": 768, "lg": 1024, "xl": 1280, "2xl": 1536}
_BOOTSTRAP_WIDTHS = {"sm": 576, "md": 768, "lg": 992, "xl": 1200, "xxl": 1400}
# Bootstrap 3: hidden at the large width, or visible only at smaller ones.
_BOOTSTRAP3_HIDDEN = re.compile(r"(^|\s)hidden-lg(\s|$)")
_BOOTSTRAP3_VISIBLE = re.compile(
    r"(^|\s)visible-(xs|sm|md|lg)(-block|-inline|-inline-block)?(?=\s|$)"
)


def _hidden_at_desktop(lowered: str) -> bool:
    """Whether responsive display utilities hide the element at DESKTOP_WIDTH while a
    smaller screen shows it (``block lg:hidden``, ``d-lg-none``, Bootstrap 3 ``visible-xs``):
    a copy of a section laid out for phones, or a phone's menu."""
    if ":" not in lowered and "d-" not in lowered and "-lg" not in lowered \
            and "visible-" not in lowered:
        return False
    settings: list[tuple[int, bool]] = []  # (min width, displayed)
    for token in lowered.split():
        match = _TAILWIND_DISPLAY.match(token)
        widths = _TAILWIND_WIDTHS
        if match is None or (match.group(1) is None and match.group(2) == "none"):
            match = _BOOTSTRAP_DISPLAY.match(token)
            widths = _BOOTSTRAP_WIDTHS
            if match is None or (match.group(2) == "hidden"):
                continue
        width = widths[match.group(1)] if match.group(1) else 0
        if width <= DESKTOP_WIDTH:
            settings.append((width, match.group(2) not in {"none", "hidden"}))
    if settings:
        settings.sort(key=lambda item: item[0])  # two at one width: the later one (a guess)
        width, displayed = settings[-1]
        if width > 0 and not displayed:
            return True
    if _BOOTSTRAP3_HIDDEN.search(lowered):
        return True
    visible = [match.group(2) for match in _BOOTSTRAP3_VISIBLE.finditer(lowered)]
    return bool(visible) and "lg" not in visible


_DIALOG_ROLES = frozenset({"dialog", "alertdialog"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def _is_hidden(element: etree._Element, names: Sequence[str | bytes]) -> bool:
    """``names``: the element's attribute names (``element.keys()``)."""
    if element.tag == "dialog" and element.get("open") is None:
        return True
    if not names:  # most elements have none of these attributes
        return False
    if "hidden" in names:
        return True
    style = element.get("style") if "style" in names else None
    if style and ("none" in style or "hidden" in style) and _HIDDEN_STYLE.search(style):
        return True
    cls = element.get("class") if "class" in names else None
    return bool(cls) and _hidden_by_class(cls)


def _is_modal(element: etree._Element) -> bool:
    """A modal dialog (ARIA ``aria-modal="true"``, or ``role="dialog"``/``"alertdialog"`` not
    declared non-modal): an overlay shown over the page on demand (cookie preferences,
    sign-in, newsletter, quick view), never the page's content. A non-modal dialog role
    (``aria-modal="false"``: a drawer or a sheet) is not, unless its class names call it an
    overlay, a popup, a modal or a lightbox (popup plugins declare their overlays non-modal;
    since 2.9.0)."""
    modal = (element.get("aria-modal") or "").strip().lower()
    role = (element.get("role") or "").strip().lower()
    if role in _DIALOG_ROLES and modal == "false":
        return _named_overlay(element)  # non-modal: a drawer or a sheet, unless so named
    return modal == "true" or role in _DIALOG_ROLES


def _hidden_and_modal(body: etree._Element) -> tuple[list[etree._Element], list[etree._Element]]:
    """The hidden elements and the modal dialogs below ``body``, each in document order, in
    one walk (an XPath union of the ``aria-modal`` and ``role`` attributes cost as much, and
    libxml2 merges a union's node sets in quadratic time: 36 s for a page of 100,000)."""
    hidden: list[etree._Element] = []
    modals: list[etree._Element] = []
    for element in body.iter(etree.Element):
        if element is body:
            continue
        names = element.keys()
        if _is_hidden(element, names):
            hidden.append(element)
        if ("role" in names or "aria-modal" in names) and _is_modal(element):
            modals.append(element)
    return hidden, modals


# Names of boxes shown over the page on demand (``pum-overlay``, ``wt-overlay``, ``popup``).
_OVERLAY_NAME = re.compile(r"overlay|popup|modal|lightbox")


def _named_overlay(element: etree._Element) -> bool:
    """A dialog whose class names call it an overlay, a popup, a modal or a lightbox."""
    return bool(_OVERLAY_NAME.search((element.get("class") or "").lower()))


@lru_cache(maxsize=4096)
def _hidden_by_class(cls: str) -> bool:
    """A pure function of the class string, memoised (pages repeat their class names)."""
    lowered = cls.lower()
    if _hidden_at_desktop(lowered):
        return True
    return bool(_HIDDEN_CLASS.search(lowered) or _HIDDEN_CAMEL.search(cls)) and not (
        _SHOWN_AT_WIDTH.search(lowered)
    )


def _still_hidden(outer: list[etree._Element], sizes: dict[etree._Element, int],
                  every_hidden: list[etree._Element], modals: set[etree._Element],
                  page: int) -> list[etree._Element]:
    """On a page parked in hidden nodes (``outer``, the outermost hidden elements, with their
    ``sizes``; ``page``, the text of the page but hidden chrome), what stays hidden once the
    page is shown: beside the parked nodes, the elements hidden by a class or a style holding
    under PARKED_PIECE_SHARE of ``page``, and inside them the outermost hidden elements that
    are so, or modal, or named like chrome. Nothing, when the nodes that large hold under
    HIDDEN_KEEP_SHARE of ``page`` (a page parked in many small pieces). Linear: each parked
    node's subtree is walked once (they do not nest)."""
    floor = PARKED_PIECE_SHARE * page
    parked = [el for el in outer if sizes[el] >= floor]
    if sum(sizes[el] for el in parked) < HIDDEN_KEEP_SHARE * page:
        return []
    candidates = set(every_hidden)
    inner = _outermost([el for node in parked for el in node.iterdescendants()
                        if el in candidates])
    return [el for el in outer if sizes[el] < floor and _styled_hidden(el)] + [
        el for el in inner
        if el in modals or is_unlikely(el) or (_styled_hidden(el) and visible_chars(el) < floor)
    ]


def _styled_hidden(element: etree._Element) -> bool:
    """Hidden by a class or a style, not by the ``hidden`` attribute, which streaming
    frameworks also park small parts of a page in (a price, a stock notice)."""
    return element.get("hidden") is None


def _outermost(elements: list[etree._Element]) -> list[etree._Element]:
    """The elements none of whose ancestors is in ``elements``. Linear in the tree's size:
    the ancestors found to be outside every element of the list (``clear``) or inside one
    (``inside``) are remembered, so no ancestor chain is climbed twice (a page of 90,000
    hidden boxes 500 levels deep made it 45 million steps)."""
    chosen = set(elements)
    clear: set[etree._Element] = set()
    inside: set[etree._Element] = set()
    kept: list[etree._Element] = []
    for element in elements:
        path: list[etree._Element] = []
        covered = False
        for ancestor in element.iterancestors():
            if ancestor in clear:
                break
            if ancestor in chosen or ancestor in inside:
                covered = True
                break
            path.append(ancestor)
        (inside if covered else clear).update(path)
        if not covered:
            kept.append(element)
    return kept


# Controls a visitor types into: their labels ("Name", "E-mail (required)") say nothing
# without the field. Not check boxes, radio buttons and choices: their labels are the options
# (a product's sizes and colours).
_ENTRY_TYPES = frozenset({"", "text", "email", "tel", "password", "search", "number", "url",
                          "date", "datetime-local", "month", "week", "time"})


def _is_entry(control: etree._Element) -> bool:
    if control.tag == "textarea":
        return True
    return (control.get("type") or "").strip().lower() in _ENTRY_TYPES


def _drop_entry_labels(labels: list[etree._Element], entries: set[str]) -> None:
    """Remove the labels of text-entry fields (which are removed as form fields): a label
    naming such a field (its id in ``entries``) by ``for``, or holding one."""
    for label in labels:
        target = label.get("for")
        if (target is not None and target in entries) or any(
            _is_entry(control) for control in label.iter("input", "textarea")
        ):
            drop_keep_tail(label)


class Cleaned(NamedTuple):
    """What :func:`clean` measured."""

    #: Characters of text the hidden elements and ``<noscript>`` held (0 when they are kept):
    #: what a fallback that keeps them could add.
    withheld: int
    #: Non-whitespace characters of the body's text after cleaning (``visible_chars``).
    visible: int


def _drop_code_names(body: etree._Element) -> None:
    """Drop the class and id names inside ``<pre>`` and ``<code>``. Syntax highlighters name
    the parts of a program (``hljs-comment``, ``token comment``, ``c1``), not parts of the
    page: read as hints, they made the comments of code blocks look like reader comments
    and cut them out of the code (since 2.10.0)."""
    done: set[etree._Element] = set()  # inside a block already cleared: each element once
    for code in body.iter("pre", "code"):
        if code in done:
            continue  # (clearing nested blocks again made a page of them quadratic)
        for element in code.iterdescendants():
            done.add(element)
            attributes = element.attrib
            for name in ("class", "id"):
                if name in attributes:
                    del attributes[name]


def clean(root: etree._Element, body: etree._Element, *, keep_hidden: bool = False) -> Cleaned:
    """Remove junk, small controls and (unless ``keep_hidden``) hidden elements, in place."""
    head = root.find("head")
    if head is not None and head is not body:
        root.remove(head)
    # one walk for <noscript> and for the labels of text-entry fields (before the fields go)
    noscripts: list[etree._Element] = []
    labels: list[etree._Element] = []
    entries: set[str] = set()
    for element in body.iter("noscript", "label", "input", "textarea"):
        if element.tag == "noscript":
            noscripts.append(element)
        elif element.tag == "label":
            labels.append(element)
        elif _is_entry(element) and (ident := element.get("id")):
            entries.add(ident)
    if labels:
        _drop_entry_labels(labels, entries)
    etree.strip_elements(body, *_JUNK_TAGS, with_tail=False)
    if noscripts:
        # those still in the page (one inside a removed label or junk element is gone with
        # it), found again: climbing from each to the body was quadratic in their nesting
        noscripts = list(body.iter("noscript"))
    noscripts = _outermost(noscripts)
    if keep_hidden:
        etree.strip_tags(body, "noscript")  # its markup is read as part of the page
        withheld = 0
    else:
        withheld = sum(visible_chars(el) for el in noscripts)
        for element in noscripts:
            drop_keep_tail(element)
    total = visible_chars(body)
    # Counting non-whitespace characters is additive over the text's pieces, and removing a
    # subtree (its tail kept) removes exactly its text: the size after cleaning is counted
    # down, not measured again.
    visible = total
    every_hidden, modals = _hidden_and_modal(body)
    every_hidden = list(dict.fromkeys(every_hidden + modals))
    hidden = _outermost(every_hidden)
    modal_set = set(modals)
    if not keep_hidden:
        # Modal dialogs and hidden boxes named like chrome (a sign-in form, a cookie banner)
        # go first: a page parked until scripts run is not declared a modal overlay. The
        # rest is kept when it is most of what remains (a page parked in hidden nodes).
        chrome: list[etree._Element] = []
        rest: list[etree._Element] = []
        for el in hidden:
            (chrome if el in modal_set or is_unlikely(el) else rest).append(el)
        chrome_size = sum(visible_chars(el) for el in chrome)
        sizes = {el: visible_chars(el) for el in rest}
        rest_size = sum(sizes.values())
        if rest_size >= HIDDEN_KEEP_SHARE * (total - chrome_size):
            rest = _still_hidden(rest, sizes, every_hidden, modal_set, total - chrome_size)
            rest_size = sum(visible_chars(el) for el in rest)
        for el in chrome + rest:
            drop_keep_tail(el)
        withheld += chrome_size + rest_size
        visible -= chrome_size + rest_size
    controls = _outermost([el for el in body.iter(*_CONTROL_TAGS) if el.getparent() is not None])
    for control in controls:
        size = visible_chars(control)
        if size >= CONTROL_KEEP_CHARS and size >= CONTROL_KEEP_SHARE * total:
            control.tag = "div"  # it wraps part of the page: keep its text as a block
        else:
            drop_keep_tail(control)
            visible -= size
    _drop_code_names(body)
    return Cleaned(withheld, visible)
