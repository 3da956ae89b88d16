"""Boilerplate removal: HTML (bytes or text) -> clean article text, metadata and comments.

``extract(html, url=None, *, charset=None, time_limit=30.0) -> Extraction`` is pure and
deterministic and never raises; only an extraction stopped at its time limit (a page built to
be slow, see :mod:`preserve.extract.budget`) depends on the machine, and says so
(:func:`was_stopped`). Reader comments are returned apart (``Extraction.comments``), never
inside ``text``.
See docs/extraction.md for the method and its limits.
"""

from __future__ import annotations

from .core import (
    EXTRACTOR_NAME,
    EXTRACTOR_SETTINGS,
    EXTRACTOR_VERSION,
    REASON_STOPPED,
    TIME_LIMIT_SECONDS,
    PreserveExtractor,
    extract,
    was_stopped,
)
from .model import METHODS, PAGE_TYPES, Comment, Extraction, Extractor

__all__ = [
    "EXTRACTOR_NAME",
    "EXTRACTOR_SETTINGS",
    "EXTRACTOR_VERSION",
    "METHODS",
    "PAGE_TYPES",
    "REASON_STOPPED",
    "TIME_LIMIT_SECONDS",
    "Comment",
    "Extraction",
    "Extractor",
    "PreserveExtractor",
    "extract",
    "was_stopped",
]
