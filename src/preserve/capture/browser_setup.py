"""Whether a browser capture can run here, found without importing the browser machinery
(``preserve capture`` asks before every capture; :mod:`preserve.capture.browser` re-exports
these names)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

#: Environment variable naming the Chromium (or Chrome) binary to use.
CHROMIUM_ENV = "PRESERVE_CHROMIUM"
#: Where a Chromium is looked for when none is named (first existing one wins).
CHROMIUM_CANDIDATES = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
    "/usr/bin/google-chrome-stable",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
INSTALL_HINT = (
    "install Chromium (Debian/Ubuntu: 'apt install chromium'; macOS: 'brew install --cask "
    f"chromium' or Google Chrome, then set {CHROMIUM_ENV} to its binary) and the Python package "
    "playwright ('pip install playwright'); preserve never downloads a browser"
)


# --- finding a browser -----------------------------------------------------------------------


def find_chromium(executable: str | os.PathLike[str] | None = None) -> Path | None:
    """The Chromium binary to use: ``executable``, else ``$PRESERVE_CHROMIUM``, else the first
    of the usual places or ``chromium``/``google-chrome`` on PATH; None if there is none."""
    named = executable or os.environ.get(CHROMIUM_ENV)
    if named:
        path = Path(named)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Path(candidate)
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def playwright_installed() -> bool:
    return importlib.util.find_spec("playwright") is not None


def browser_problem(executable: str | os.PathLike[str] | None = None) -> str | None:
    """Why a browser capture cannot run here (one line, naming what to install), or None."""
    missing = []
    if not playwright_installed():
        missing.append("the Python package playwright is not installed")
    if find_chromium(executable) is None:
        named = executable or os.environ.get(CHROMIUM_ENV)
        missing.append(f"no Chromium at {named}" if named else "no Chromium found")
    if not missing:
        return None
    return f"browser capture unavailable: {'; '.join(missing)}. To fix: {INSTALL_HINT}"


__all__ = [
    "CHROMIUM_CANDIDATES",
    "CHROMIUM_ENV",
    "INSTALL_HINT",
    "browser_problem",
    "find_chromium",
    "playwright_installed",
]
