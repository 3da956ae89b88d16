"""httpcore, imported without loading anyio, certifi and ssl before they are used.

``httpcore/__init__`` imports ``anyio`` (its async locks and backend), ``certifi`` (for
``default_ssl_context``) and ``ssl`` at once: with ssl's C module and OpenSSL's libssl, about
8 % of the instructions ``preserve capture URL`` ran before its first byte went out (46 of
569 million). A capture is synchronous, and an http:// one uses none of them before its
request is sent; an https:// one makes its own SSL context, importing ssl and certifi then.

So while httpcore is imported, ``sys.modules`` holds for each of them a stand-in, which
httpcore binds in place of the module and which imports the real module when an attribute of
it is first read (``ssl.MemoryBIO()``, ``anyio.Lock()``, ``certifi.where()``: httpcore's code
reaches the real objects through it). The stand-ins are removed from ``sys.modules`` right
after, so ``import ssl`` anywhere in the process later gives the real module as usual (only
httpcore holds a stand-in, and it only reads attributes of it). A module that is not
installed gets no stand-in (httpcore then sees the ImportError it expects), nor does one that
is imported already (:func:`preserve._lazy.deferred_imports`).

httpcore reads one attribute of ssl as it is imported: ``httpcore/_ssl.py``, unlike
httpcore's other modules, lacks ``from __future__ import annotations``, and so evaluates its
``-> ssl.SSLContext`` annotation when the function is defined. That module is compiled here
with postponed evaluation of annotations (PEP 563, what the future import does): the same
code, with the annotation kept as a string. Whatever else reads a stand-in's attribute while
httpcore is imported (a later httpcore) gets the real module at that moment: slower, never
wrong.
"""

from __future__ import annotations
import __future__

import sys
import types
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader

from preserve._lazy import deferred_imports

#: What httpcore imports at once and a capture uses only later (or, over http://, never).
DEFERRED = ("anyio", "certifi", "ssl")
#: httpcore's modules compiled with postponed evaluation of annotations (see above).
POSTPONED = frozenset({"httpcore._ssl"})


class _PostponedAnnotationsLoader(SourceFileLoader):
    """Compiles the module's source as if it began with ``from __future__ import
    annotations`` (from the source each time: no bytecode cache is read or written)."""

    def get_code(self, fullname: str) -> types.CodeType:
        source = self.get_data(self.path)
        code: types.CodeType = compile(source, self.path, "exec", dont_inherit=True,
                                       flags=__future__.annotations.compiler_flag)
        return code


class _PostponedAnnotationsFinder:
    """Finds the modules of :data:`POSTPONED` as the path finder does, loaded by
    :class:`_PostponedAnnotationsLoader` when they are plain source files."""

    @staticmethod
    def find_spec(name: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> ModuleSpec | None:
        if name not in POSTPONED:
            return None
        spec = PathFinder.find_spec(name, path)
        if spec is None or not isinstance(spec.loader, SourceFileLoader):
            return None
        spec.loader = _PostponedAnnotationsLoader(name, spec.loader.path)
        spec.cached = None
        return spec


if "httpcore" not in sys.modules:
    _finder = _PostponedAnnotationsFinder()
    sys.meta_path.insert(0, _finder)
    try:
        with deferred_imports(*DEFERRED):
            import httpcore
    finally:
        sys.meta_path.remove(_finder)
else:
    import httpcore

__all__ = ["httpcore"]
