"""The public API: what ``import preserve`` offers, kept sorted and consistent."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import preserve
from preserve import errors, findings
from preserve.log import audit

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_importable() -> None:
    assert preserve.__all__ == sorted(preserve.__all__)
    for name in preserve.__all__:
        assert hasattr(preserve, name), name


def test_version_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert preserve.__version__ == project["version"]


def test_every_error_is_a_preserve_error_and_exported() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, preserve.PreserveError)
        assert name in preserve.__all__, name


def test_log_codes_are_in_the_catalogue() -> None:
    for code, title in audit.CODES.items():
        assert findings.Code.from_code(code).title == title


def test_outside_libraries_are_imported_in_one_module_each() -> None:
    owners = {
        "warcio": {"warc.py"},
        "httpx": {"fetch.py", "_transport.py"},
        "click": {"cli.py"},
        "rich": {"cli.py"},
    }
    for path in (ROOT / "src" / "preserve").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in owners:
                    assert path.name in owners[top], f"{path.name} imports {top}"
