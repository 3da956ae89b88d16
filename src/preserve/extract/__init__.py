"""Boilerplate removal: HTML (bytes or text) -> clean article text, metadata and comments.

``extract(html, url=None, *, charset=None) -> Extraction`` is pure and deterministic and never
raises. Reader comments are returned apart (``Extraction.comments``), never inside ``text``.
See docs/extraction.md for the method and its limits.
"""

from __future__ import annotations

from .core import (
    EXTRACTOR_NAME,
    EXTRACTOR_SETTINGS,
    EXTRACTOR_VERSION,
    PreserveExtractor,
    extract,
)
from .model import METHODS, PAGE_TYPES, Comment, Extraction, Extractor

__all__ = [
    "EXTRACTOR_NAME",
    "EXTRACTOR_SETTINGS",
    "EXTRACTOR_VERSION",
    "METHODS",
    "PAGE_TYPES",
    "Comment",
    "Extraction",
    "Extractor",
    "PreserveExtractor",
    "extract",
]
