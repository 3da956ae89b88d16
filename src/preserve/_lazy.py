"""Deferred imports: a module stand-in that imports the real module on first attribute use.

Start-up time is most of a single ``preserve`` command, and the heavy libraries (httpcore,
lxml, warcio, cryptography, rich) are needed only by some commands and only some way in.
``integrity = lazy_module("preserve.integrity")`` keeps call sites unchanged
(``integrity.has_log(...)``); annotate with a ``TYPE_CHECKING`` import of the real module.

:func:`deferred_imports` does the same for the modules another library imports at once and
uses only later (httpcore's anyio, certifi and ssl: :mod:`preserve.capture._httpcore`): while
the library is imported, ``import ssl`` binds a stand-in, which the library keeps and which
imports the real module when it is first used.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from importlib.machinery import PathFinder
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


class DeferredModule(types.ModuleType):
    """A module stand-in placed in ``sys.modules`` by :func:`deferred_imports`: the first
    attribute read imports the real module (by then out of ``sys.modules``) and is answered
    from it, as is every later one."""

    def __getattr__(self, attribute: str) -> Any:
        if sys.modules.get(self.__name__) is self:  # read while the importer is imported
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


@contextlib.contextmanager
def deferred_imports(*names: str) -> Iterator[None]:
    """While the block runs, ``import NAME`` of each of ``names`` binds a
    :class:`DeferredModule`; removed from ``sys.modules`` after it, so a later ``import
    NAME`` anywhere gives the real module. A module not installed gets no stand-in (the
    importer sees the ImportError it expects), nor does one imported already. Whatever reads
    an attribute of a stand-in during the block gets the real module then: slower, not
    wrong."""
    placed = [name for name in names
              if name not in sys.modules and PathFinder.find_spec(name) is not None]
    for name in placed:
        sys.modules[name] = DeferredModule(name)
    try:
        yield
    finally:
        for name in placed:
            if isinstance(sys.modules.get(name), DeferredModule):
                del sys.modules[name]


__all__ = ["DeferredModule", "deferred_imports", "lazy_module"]
