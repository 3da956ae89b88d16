"""Find reader comments, turn each into a :class:`Comment`, and cut the comment area out of
the tree so that comment text can never reach the article body.

Comments are recognised by generic markup conventions (ids like ``comment-123``, a class
``comment``, schema.org ``Comment`` items, containers named ``comments``/``commentlist``),
never by site. On a page that declares a product, areas named like customer reviews are
comment areas too. Pages whose comments are loaded by JavaScript have none in the HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

from .blocks import render_blocks
from .dom import drop_keep_tail, short_text, text_of, visible_chars
from .hints import hint_string

__all__ = ["THREAD_SHARE", "cut_comments"]

#: Comment areas holding at least this share of the page's text are the page's content.
THREAD_SHARE = 0.5

_CONTAINER = re.compile(
    r"(^|[\s_-])comments?([\s_-]|$)|comment-?list|commentlist|comments?-?(area|section|"
    r"container|wrap|block|thread|list)|disqus_thread|(^|\s)respond(\s|$)|comment-respond|"
    r"comment-form|commentform"
)
# Customer reviews of a product: comments on the product page (not a business's testimonials
# on its service pages, which are its own content).
_REVIEWS = re.compile(
    r"(^|[\s_-])reviews([\s_-]|$)|(^|[\s_-])reviews?-?(list|section|container|wrap|block|area)"
)
_NOT_CONTAINER = re.compile(
    r"comments?-(count|link|number|num|icon|open|closed|status|bubble|enabled|disabled)|"
    r"no-?comments"
)
_ITEM_ID = re.compile(r"^(li-)?comment[-_]?\d+$|^div-comment-\d+$|^c\d+$")
_ITEM_CLASS = re.compile(r"(^|\s)(comment|comment-item|commentlist-item|comment_item)(\s|$)")
_AUTHOR = re.compile(
    r"(^|[\s_-])(fn|author|username|user-name|author-name|comment-author|commenter|nick)([\s_-]|$)"
)
_DATE = re.compile(r"date|time|published|timestamp")
_BODY = re.compile(
    r"comment-content|comment-text|comment-body-text|comment_text|comment-message|"
    r"(^|\s)(content|text|message|body)(\s|$)"
)
_AUTHOR_PROPS = frozenset({"author", "creator"})
_DATE_PROPS = frozenset({"datepublished", "commenttime", "datecreated", "datemodified"})
_TEXT_PROPS = frozenset({"text", "commenttext", "articlebody"})
_CHROME = re.compile(r"reply|respond|actions|vote|like|report|share|avatar|edit-link")
_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _is_item(element: etree._Element) -> bool:
    ident = (element.get("id") or "").lower()
    if _ITEM_ID.match(ident):
        return True
    if _ITEM_CLASS.search((element.get("class") or "").lower()):
        return True
    return "schema.org/comment" in (element.get("itemtype") or "").lower()


def _own_text_length(element: etree._Element, items: set[etree._Element]) -> int:
    """Text length of ``element`` without the text of nested comment items (iterative)."""
    total = 0
    stack = [element]
    while stack:
        node = stack.pop()
        total += len((node.text or "").strip())
        for child in node:
            if child not in items and isinstance(child.tag, str):
                stack.append(child)
            total += len((child.tail or "").strip())
    return total


def _own_elements(item: etree._Element, items: set[etree._Element]) -> Iterator[etree._Element]:
    """The elements below ``item``, in document order, but those in ``items`` and below them
    (other comments nested in this one): each element of a thread is visited for one comment
    only, however deep replies nest."""
    walker = etree.iterwalk(item, events=("start",))
    next(walker)  # the item itself
    for _, element in walker:
        if not isinstance(element.tag, str):
            continue
        if element in items:
            walker.skip_subtree()
            continue
        yield element


def _first_matching(
    item: etree._Element,
    pattern: re.Pattern[str],
    items: set[etree._Element],
    *,
    with_text: set[etree._Element] | None = None,
) -> etree._Element | None:
    """The first element below ``item`` (not in the comments nested in it) whose names match
    ``pattern`` and none of the chrome names; with ``with_text``, one of those (it holds
    text)."""
    for element in _own_elements(item, items):
        hints = hint_string(element)
        if hints and pattern.search(hints) and not _CHROME.search(hints):
            if with_text is not None and element not in with_text:
                continue
            return element
    return None


def _by_itemprop(
    item: etree._Element, names: frozenset[str], items: set[etree._Element]
) -> etree._Element | None:
    for element in _own_elements(item, items):
        if (element.get("itemprop") or "").lower() in names:
            return element
    return None


def _elements_with_text(areas: list[etree._Element]) -> set[etree._Element]:
    """The elements of ``areas`` whose text (``itertext``) holds more than white space, found
    in one walk: each text marks its element and the ancestors up to its area, each tail the
    parent and up (asked element by element, a comment nested a thousand deep read the text
    below it a thousand times)."""
    marked: set[etree._Element] = set()

    def mark(element: etree._Element | None, area: etree._Element) -> None:
        while element is not None and element not in marked:
            marked.add(element)
            if element is area:
                return
            element = element.getparent()

    for area in areas:
        for node in area.iter():
            text = node.text if isinstance(node.tag, str) else None
            if text and not text.isspace():
                mark(node, area)
            tail = node.tail
            if node is not area and tail and not tail.isspace():
                mark(node.getparent(), area)
    return marked


class _Reading:
    """What one page's comments are read with: which elements hold text, and the way down
    each chain of nested bodies or author boxes already found (:func:`_innermost`)."""

    __slots__ = ("innermost", "with_text")

    def __init__(self, areas: list[etree._Element]) -> None:
        self.with_text = _elements_with_text(areas)
        self.innermost: dict[tuple[etree._Element, re.Pattern[str]], etree._Element | None] = {}


def _innermost(found: etree._Element | None, pattern: re.Pattern[str],
               reading: _Reading) -> etree._Element | None:
    """The innermost element matching ``pattern`` from ``found`` down. Every element of the
    way shares the result, remembered in ``reading``: a thread's replies nested in one
    another each found their way down the same chain (quadratic in its depth)."""
    memo = reading.innermost
    path: list[etree._Element] = []
    result = found
    while found is not None:
        if (found, pattern) in memo:
            result = memo[(found, pattern)]
            break
        path.append(found)
        inner = _first_matching(found, pattern, set())
        if inner is None or inner not in reading.with_text:
            result = found
            break
        found = inner
    for element in path:
        memo[(element, pattern)] = result
    return result


def _author(item: etree._Element, items: set[etree._Element], reading: _Reading
            ) -> etree._Element | None:
    found = _by_itemprop(item, _AUTHOR_PROPS, items)
    if found is not None:
        name = _by_itemprop(found, frozenset({"name"}), set())
        return name if name is not None else found
    found = _first_matching(item, _AUTHOR, items, with_text=reading.with_text)
    return _innermost(found, _AUTHOR, reading)


#: Longer text is not a date or a name (read no further: it may hold a whole thread).
_LONGEST = 1_000


def _date(item: etree._Element, items: set[etree._Element], reading: _Reading
          ) -> tuple[etree._Element, str] | None:
    found = _by_itemprop(item, _DATE_PROPS, items)
    if found is not None:
        value = found.get("datetime") or found.get("content") or short_text(found, _LONGEST)
        if value:
            return found, value
    for element in _own_elements(item, items):
        if element.tag == "time" or element.get("datetime"):
            value = element.get("datetime") or short_text(element, _LONGEST)
            if value:
                return element, value
    found = _first_matching(item, _DATE, items, with_text=reading.with_text)
    if found is not None:
        text = short_text(found, 80)
        if text:
            return found, text
    return None


def _body(item: etree._Element, items: set[etree._Element], reading: _Reading
          ) -> etree._Element | None:
    found = _by_itemprop(item, _TEXT_PROPS, items)
    if found is not None:
        return found
    found = _first_matching(item, _BODY, items, with_text=reading.with_text)
    return _innermost(found, _BODY, reading)


def _comment(
    item: etree._Element, items: set[etree._Element], reading: _Reading
) -> tuple[str | None, str | None, str]:
    author_el = _author(item, items, reading)
    author = (short_text(author_el, 100) or None) if author_el is not None else None
    found_date = _date(item, items, reading)
    date = found_date[1] if found_date else None
    body_el = _body(item, items, reading)
    # The comments nested in this one are set aside while its text is read (empty stand-ins
    # of the same tag keep the blocks around them as they were): their text is theirs, and
    # reading it again for every enclosing comment made deep threads quadratic.
    stand_ins = _set_aside(_nested_items(item, items))
    try:
        skip: set[etree._Element] = set()
        if body_el is None:
            body_el = item
            for element in item.iterdescendants():
                hints = hint_string(element) if isinstance(element.tag, str) else ""
                if hints and (_CHROME.search(hints) or _AUTHOR.search(hints)
                              or _DATE.search(hints)):
                    skip.add(element)
            if author_el is not None:
                skip.add(author_el)
            if found_date is not None:
                skip.add(found_date[0])
        blocks = [
            block.text
            for block in render_blocks(body_el)
            if not _has_ancestor_in(block.owner, skip, body_el)
        ]
    finally:
        _put_back(stand_ins)
    return author, date, "\n\n".join(blocks)


def _nested_items(item: etree._Element, items: set[etree._Element]) -> list[etree._Element]:
    """The comments in ``items`` below ``item`` and below no other of them."""
    found: list[etree._Element] = []
    walker = etree.iterwalk(item, events=("start",))
    next(walker)  # the item itself
    for _, element in walker:
        if element in items:
            found.append(element)
            walker.skip_subtree()
    return found


def _set_aside(
    elements: list[etree._Element],
) -> list[tuple[etree._Element, etree._Element]]:
    """Replace each element by an empty one of its tag (its tail kept in place)."""
    swapped: list[tuple[etree._Element, etree._Element]] = []
    for element in elements:
        parent = element.getparent()
        if parent is None or not isinstance(element.tag, str):
            continue
        stand_in = etree.Element(element.tag)
        stand_in.tail = element.tail
        parent.replace(element, stand_in)
        swapped.append((element, stand_in))
    return swapped


def _put_back(swapped: list[tuple[etree._Element, etree._Element]]) -> None:
    for element, stand_in in swapped:
        parent = stand_in.getparent()
        if parent is not None:
            parent.replace(stand_in, element)


def _has_ancestor_in(
    element: etree._Element, group: set[etree._Element], stop: etree._Element
) -> bool:
    node: etree._Element | None = element
    while node is not None and node is not stop:
        if node in group:
            return True
        node = node.getparent()
    return False


def _containers(body: etree._Element, *, reviews: bool = False) -> list[etree._Element]:
    """The outermost elements named like a comment area (their insides are not searched);
    with ``reviews``, the outermost elements named like an area of customer reviews instead
    (outside comment areas)."""
    found: list[etree._Element] = []
    inside: set[etree._Element] = set()
    container = _REVIEWS if reviews else _CONTAINER
    for element in body.iterdescendants():
        if not isinstance(element.tag, str):
            continue
        cls = element.get("class")
        ident = element.get("id")
        if not (cls or ident):
            continue
        names = f"{cls or ''} {ident or ''}".lower()
        if reviews:
            if "review" not in names:
                continue
        elif not ("comment" in names or "respond" in names or "disqus" in names):
            continue
        if element in inside:
            continue
        hints = hint_string(element)
        if (
            hints
            and container.search(hints)
            and not _NOT_CONTAINER.search(hints)
            and element.find(".//h1") is None
            and not _contains_article_body(element)
        ):
            found.append(element)
            inside.update(element.iterdescendants())
    return found


def _contains_article_body(element: etree._Element) -> bool:
    return any("articlebody" in (node.get("itemprop") or "").lower() for node in element.iter())


def _fallback_items(area: etree._Element, with_text: set[etree._Element]
                    ) -> list[etree._Element]:
    """Comment items of an area whose markup names none: its children with text (through
    wrappers that have a single child). A reply form is not a comment."""
    node = area
    while True:
        children = [c for c in node if isinstance(c.tag, str) and c in with_text]
        if len(children) != 1 or len(children[0]) == 0:
            break
        node = children[0]
    return [child for child in children if not _is_form(child)]


def _link_density(element: etree._Element) -> float:
    total = visible_chars(element)
    links = sum(visible_chars(a) for a in element.iter("a"))
    return links / total if total else 0.0


def _is_form(element: etree._Element) -> bool:
    """A comment form (or its heading and labels): mostly text inside ``<form>``/labels."""
    if element.tag == "form":
        return True
    total = len(_clean(text_of(element)))
    in_forms = sum(len(_clean(text_of(f))) for f in element.iter("form", "label"))
    return in_forms * 2 >= total or (element.find(".//form") is not None and total < 300)


def _keep_post_headers(areas: list[etree._Element]) -> None:
    """In a thread left in place as content, each post's author and time stay with it: each
    becomes a plain paragraph (no names that look like a byline box, no link) so that
    pruning, which drops bylines, tiny boxes and link lines, keeps it."""
    items = [el for area in areas for el in area.iter() if _is_item(el)]
    item_set = set(items)
    headers: dict[etree._Element, None] = {}  # (ordered; membership in constant time)
    reading = _Reading(areas)
    for item in items:
        # (the item itself in the set of items changes nothing: the searches below look
        # only at its descendants, and stop climbing at it)
        found_date = _date(item, item_set, reading)
        for element in (_author(item, item_set, reading), found_date[0] if found_date else None):
            if element is not None and element is not item:
                headers[element] = None
    for element in headers:
        if any(other in headers for other in element.iterancestors()):
            continue
        etree.strip_tags(element, "a")
        element.tag = "p"
        for name in ("class", "id", "itemprop"):
            element.attrib.pop(name, "")
        for ancestor in element.iterancestors():
            if ancestor in item_set:
                break
            for name in ("class", "id"):
                ancestor.attrib.pop(name, "")
    for item in items:  # a post named "comment" is not a small boilerplate box either
        for name in ("class", "id"):
            item.attrib.pop(name, "")


def cut_comments(
    body: etree._Element, *, forum: bool = False, product: bool = False,
    page_size: int | None = None, article: bool = False,
) -> tuple[list[tuple[str | None, str | None, str]], bool]:
    """Remove the comment areas from ``body``; return (author, date, text) per comment, and
    whether the comments were left in place as the page's content: a thread (``forum``: the
    page says it is a discussion), or comment areas holding at least THREAD_SHARE of the
    page's text, unless the page declares itself an ``article`` (then they are its reader
    comments however many: a post with a long discussion under it). On a ``product`` page
    (one that declares a product), the areas of customer reviews are comment areas too,
    unless with the comments they hold THREAD_SHARE of the page's text (then they are left
    in place, not as a thread). ``page_size``: the body's ``visible_chars`` when the caller
    knows it."""
    containers = _containers(body)
    if not containers and not product:
        return [], False  # (most pages: the size of the page is not needed)
    if page_size is None:
        page_size = visible_chars(body)
    comment_size = sum(visible_chars(area) for area in containers)
    if containers and (forum or (comment_size >= THREAD_SHARE * page_size and not article)):
        _keep_post_headers(containers)
        return [], True
    if product and not forum:
        in_comments = set(containers)
        reviews = [
            area
            for area in _containers(body, reviews=True)
            if not any(a in in_comments for a in area.iterancestors())
        ]
        if comment_size + sum(map(visible_chars, reviews)) < THREAD_SHARE * page_size:
            containers += [area for area in reviews if area not in in_comments]
    if not containers:
        return [], False
    reading = _Reading(containers)
    raw_items = [el for area in containers for el in area.iter() if _is_item(el)]
    item_set = set(raw_items)
    # A comment's markup often nests wrappers that all look like items (li#li-comment-1 >
    # div#comment-1); the comment is the innermost one that has text of its own.
    # (an item in the set of items it is measured without changes nothing: only its
    # children are looked up; so one set serves every item, as below)
    items = [el for el in raw_items if _own_text_length(el, item_set) > 0]
    kept: list[etree._Element] = []
    for area in containers:
        if not any(item in item_set for item in area.iter()):
            if _link_density(area) > 0.5:
                continue  # a list of links to comments elsewhere: chrome
            items.extend(_fallback_items(area, reading.with_text))  # never cut text not kept
        kept.append(area)
    containers = kept
    all_items = set(items)
    comments = []
    for item in items:
        author, date, text = _comment(item, all_items, reading)
        if text:
            comments.append((author, date, text))
    for area in containers:
        drop_keep_tail(area)
    return comments, False
