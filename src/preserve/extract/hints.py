"""Soft evidence from class and id names: words that usually mark boilerplate or content.

Generic English web-development vocabulary only (it is the vocabulary of HTML templates in
every language); never site names. This module only classifies names; callers weigh them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lxml import etree

__all__ = ["class_weight", "hint_string", "is_overlay", "is_unlikely"]

_UNLIKELY = re.compile(
    r"-ad-|ad-break|agegate|banner|breadcrumb|combx|comment|community|cookie|consent|disqus|"
    r"extra|footer|gdpr|header|legends|menu|related|remark|replies|rss|shoutbox|sidebar|"
    r"skyscraper|social|sponsor|supplemental|pagination|pager|popup|modal|newsletter|"
    r"subscribe|signup|sign-up|signin|sign-in|share|sharing|outbrain|taboola|recommend|"
    r"trending|popular|most-read|mostread|navbar|masthead|toolbar|promo|paywall|login"
)
# Overlays shown over the page on demand (cookie consent, sign-in, modal boxes): never the
# content, even on pages that name their content with other words of _UNLIKELY (a "footer"
# or "related" box holding the text). Not "newsletter": a newsletter's issue is content.
_OVERLAY = re.compile(
    r"agegate|cookie|consent|gdpr|modal|popup|login|signin|sign-in|signup|sign-up"
)
# The boxes a forum repeats around every post about its member, not what the post says: the
# signature (``signature``, ``message-signature``, ``postsignature``) and the member's card
# (``postprofile``, ``user-details``, ``userinfo``, ``member-stats``, ``message-user``: name,
# rank, join date, post count). Boilerplate even inside a box named like a post or content,
# so they outweigh the content words of _MAYBE and _POSITIVE. (Not ``author-info``: an
# article's or a testimonial's author box holds its quote as often as not.)
_POST_CHROME = re.compile(
    r"signature|(?:user|poster|member)[-_]?(?:info|details|extras?|profile|stats)|"
    r"postprofile|message-user(?![a-z])"
)
_MAYBE = re.compile(r"and|article|body|column|content|main|shadow|post|entry|story|text")
_POSITIVE = re.compile(
    r"article|body|content|entry|hentry|h-entry|main|page|post|text|blog|story|prose|"
    r"paragraph|rich-?text"
)
_NEGATIVE = re.compile(
    r"-ad-|hidden|\bhid\b|banner|combx|comment|com-|contact|foot|footnote|gdpr|masthead|"
    r"media|meta|outbrain|promo|related|scroll|share|shoutbox|sidebar|skyscraper|sponsor|"
    r"shopping|tags|tool|(^|\s)widget|widget(\s|$)|byline|author|dateline|caption|credit|breadcrumb|social|"
    r"newsletter|subscribe|recommend|teaser|nav|menu|cookie|popular|trending|\bads?\b|advert"
)


# A BEM element or modifier (``card__header``, ``item--footer``) named like a page's header or
# footer is a part of its component (a card's header holds its title), not page chrome: the
# block the name belongs to (``card``, ``item``) says what the box is.
_PART_CHROME = re.compile(r"(?:__|--)[a-z0-9-]*(?:header|footer)[a-z0-9-]*")


# Class tokens that name a taxonomy term of the content (WordPress-style ``tag-social``,
# ``category-comments``): they describe the topic, not the role of the element.
_TAXONOMY = re.compile(r"(^|\s)(tag|category|categories|topic|section|format)-\S*")
_TAXONOMY_WORDS = ("tag-", "categor", "topic-", "section-", "format-")


# Utility classes (Tailwind, Bootstrap...) describe looks, not roles: ``overflow-hidden``,
# ``overflow-x-scroll``, ``md:flex``, ``col-md-6``, ``text-center``, ``mt-16px``. They are
# dropped before the names are read, so that ``hidden`` or ``scroll`` inside them say nothing.
_UTILITY = re.compile(
    r"^(?:[a-z0-9-]+:)+\S*$|^!?-?(?:overflow|bg|font|flex|grid|border|rounded|shadow|"
    r"p[xytblrse]?|m[xytblrse]?|w|h|min-w|max-w|min-h|max-h|size|gap|space|items|justify|"
    r"self|place|z|opacity|leading|tracking|inset|order|basis|grow|shrink|object|aspect|"
    r"whitespace|break|align|float|clear|d|fs|fw|lh|col|row|cursor|select|transition|"
    r"duration|ease|delay|animate|decoration|divide|ring|outline|fill|stroke|scroll|snap|"
    r"touch|overscroll|line-clamp|position|display)-\S+$|"
    r"^text-(?:xs|sm|base|lg|\d?xl|left|center|right|justify|start|end|white|black|"
    r"[a-z]+-\d{2,3}|wrap|nowrap|balance|ellipsis|clip)$|"
    r"^(?:hidden|isolate|relative|absolute|fixed|sticky|static|truncate|invisible|visible|"
    r"block|inline|inline-block|inline-flex|flex|grid|contents|container|clearfix)$"
)


# The functions below are pure functions of the class and id strings; they are memoised on
# those strings (a page repeats the same few hundred names thousands of times).
_CACHE = 8192


@lru_cache(maxsize=_CACHE)
def _hints(cls: str, ident: str) -> str:
    tokens = cls.lower().split()
    roles = " ".join(
        _PART_CHROME.sub("", token) if "__" in token or "--" in token else token
        for token in tokens
        if not _UTILITY.match(token)
    )
    hints = f"{roles} {ident.lower()}".strip()
    if "-" in hints and any(word in hints for word in _TAXONOMY_WORDS):
        hints = _TAXONOMY.sub(" ", hints)
    return hints


def hint_string(element: etree._Element) -> str:
    """The element's class and id, lowercased, space-joined, without utility classes and
    taxonomy tokens."""
    cls = element.get("class")
    ident = element.get("id")
    if not (cls or ident):
        return ""
    return _hints(cls or "", ident or "")


@lru_cache(maxsize=_CACHE)
def _unlikely(hints: str) -> bool:
    if _POST_CHROME.search(hints):
        return True
    return bool(_UNLIKELY.search(hints)) and not _MAYBE.search(hints)


@lru_cache(maxsize=_CACHE)
def _overlay(hints: str) -> bool:
    return bool(_OVERLAY.search(hints)) and not _MAYBE.search(hints)


@lru_cache(maxsize=_CACHE)
def _weight(hints: str) -> int:
    if _POST_CHROME.search(hints):
        return -25
    weight = 0
    if _NEGATIVE.search(hints):
        weight -= 25
    if _POSITIVE.search(hints):
        weight += 25
    return weight


def is_unlikely(element: etree._Element) -> bool:
    """True if the names say 'navigation, comments, sidebar...' and nothing says 'content'."""
    hints = hint_string(element)
    return bool(hints) and _unlikely(hints)


def is_overlay(element: etree._Element) -> bool:
    """True if the names say 'cookie consent, sign-in, modal...' and nothing says
    'content': an overlay, never the page's text (even when the article scoring looks
    into boxes named unlikely)."""
    hints = hint_string(element)
    return bool(hints) and _overlay(hints)


def class_weight(element: etree._Element) -> int:
    """Readability-style weight: -25 for boilerplate names, +25 for content names."""
    hints = hint_string(element)
    return _weight(hints) if hints else 0
