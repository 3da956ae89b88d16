"""Deferred work at start-up: preserve._lazy.deferred_imports (a library imported in its block
binds stand-ins for the named modules, which import the real module when first used; nothing
else sees them), and the CLI's output patterns, compiled on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preserve._lazy import DeferredModule, deferred_imports

NAMES = ("deferred_leaf", "deferred_user", "deferred_eager", "deferred_other")


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Path]:
    """A leaf module that counts its imports, a library that imports it and uses it only in
    a function, and one that reads it as it is imported."""
    (tmp_path / "deferred_leaf.py").write_text(
        "import builtins\n"
        "builtins.deferred_leaf_imports = getattr(builtins, 'deferred_leaf_imports', 0) + 1\n"
        "VALUE = 42\n")
    (tmp_path / "deferred_user.py").write_text(
        "import deferred_leaf\n"
        "def use():\n"
        "    return deferred_leaf.VALUE\n")
    (tmp_path / "deferred_eager.py").write_text(
        "import deferred_leaf\n"
        "AT_ONCE = deferred_leaf.VALUE\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in NAMES:
            sys.modules.pop(name, None)
        import builtins  # noqa: PLC0415

        vars(builtins).pop("deferred_leaf_imports", None)


def imports() -> int:
    import builtins  # noqa: PLC0415

    return int(getattr(builtins, "deferred_leaf_imports", 0))


@pytest.mark.usefixtures("modules")
def test_the_module_is_imported_when_first_used_and_only_then() -> None:
    with deferred_imports("deferred_leaf"):
        user = importlib.import_module("deferred_user")
    assert "deferred_leaf" not in sys.modules and imports() == 0
    assert isinstance(user.deferred_leaf, DeferredModule)
    assert user.use() == 42  # the real module, imported now, once
    assert imports() == 1
    real = importlib.import_module("deferred_leaf")
    assert type(real) is type(sys) and real.VALUE == 42 and imports() == 1
    real.VALUE = 7  # the stand-in answers from the module as it is now
    assert user.use() == 7


@pytest.mark.usefixtures("modules")
def test_a_module_read_while_the_library_is_imported_is_imported_then() -> None:
    with deferred_imports("deferred_leaf"):
        eager = importlib.import_module("deferred_eager")
        assert type(sys.modules["deferred_leaf"]) is type(sys)  # the real one, already
    assert eager.AT_ONCE == 42 and imports() == 1
    assert type(sys.modules["deferred_leaf"]) is type(sys)


@pytest.mark.usefixtures("modules")
def test_no_stand_in_for_a_module_imported_already_or_not_installed() -> None:
    real = importlib.import_module("deferred_leaf")
    with deferred_imports("deferred_leaf", "deferred_not_installed"):
        user = importlib.import_module("deferred_user")
        assert sys.modules["deferred_leaf"] is real
        with pytest.raises(ImportError):
            importlib.import_module("deferred_not_installed")
    assert user.deferred_leaf is real and imports() == 1
    assert "deferred_not_installed" not in sys.modules


# --- what the CLI compiles on first use ----------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F)) | st.text())
def test_terminal_safe_shows_what_the_pattern_shows(text: str) -> None:
    """terminal_safe skips its pattern for printable ASCII (compiled on first use, not at
    start-up): the same text comes out as the pattern gives."""
    import re  # noqa: PLC0415

    from preserve.cli import app  # noqa: PLC0415

    assert app.terminal_safe(text) == re.compile(app._NOT_FOR_TERMINALS).sub(app._shown, text)
    assert app.json_safe(text) == (re.compile(app._LONE_SURROGATE).sub(app._escaped, text)
                                   if any("\ud800" <= c <= "\udfff" for c in text) else text)
