"""Deferred imports: a module stand-in that imports the real module on first attribute use.

Start-up time is most of a single ``preserve`` command, and the heavy libraries (httpx,
lxml, warcio, cryptography, rich) are needed only by some commands and only some way in.
``integrity = lazy_module("preserve.integrity")`` keeps call sites unchanged
(``integrity.has_log(...)``); annotate with a ``TYPE_CHECKING`` import of the real module.
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        # import_module is thread-safe and, once loaded, a dict lookup in sys.modules
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it when an attribute is first read."""
    return _LazyModule(name)


__all__ = ["lazy_module"]
