"""httpx, imported without its command-line module.

``httpx/__init__`` imports ``httpx._main`` (click, rich, pygments: ~40 ms of start-up) only to
offer ``httpx.main``, which preserve never calls. A ``None`` entry in ``sys.modules`` makes
that one import fail, and httpx then binds a stub ``main``; the entry is removed right after,
so a later ``import httpx._main`` anywhere in the process works as usual.
"""

from __future__ import annotations

import sys

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx
    finally:
        if "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
            del sys.modules["httpx._main"]
else:
    import httpx

__all__ = ["httpx"]
