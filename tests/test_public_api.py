"""The public API: what ``import preserve`` offers, kept sorted and consistent."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import preserve
from preserve import errors
from preserve.audit import findings
from preserve.cli import main
from preserve.cli.app import COMMAND_MODULES
from preserve.log import audit
from servers import TestServer, respond

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
    cli = ROOT / "src" / "preserve" / "cli"
    CLI = {f"cli/{p.name}" for p in cli.glob("*.py")}  # noqa: N806
    owners = {"warcio": {"warc/write.py", "warc/read.py", "warc/heads.py", "warc/foreign.py"},
              "httpx": set(),  # capture/urls.py is httpx's parser, without httpx
              "httpcore": {"capture/_httpcore.py"},
              "click": CLI, "rich": CLI,
              "playwright": {"capture/browser.py"}, "h11": {"capture/proxy.py"}}
    package = ROOT / "src" / "preserve"
    for path in package.rglob("*.py"):
        where = path.relative_to(package).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                if top in owners:
                    assert where in owners[top], f"{where} imports {top}"


def test_cli_doc_is_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_cli_doc.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_command_has_an_example_and_version_flags_work() -> None:
    for name, command in main.load_all().items():
        assert "Example" in (command.help or ""), f"preserve {name} --help has no example"
    for flag in ("-V", "--version"):
        result = CliRunner().invoke(main, [flag])
        assert result.exit_code == 0 and preserve.__version__ in result.output


def test_every_command_is_found_by_its_module() -> None:
    """Subcommand modules are imported on demand: the map from command to module is complete
    and right, and running one command imports only its own module."""
    commands = main.load_all()
    assert set(commands) == set(COMMAND_MODULES)
    for name, command in commands.items():
        module = command.callback.__module__ if command.callback else ""
        assert module == f"preserve.cli.{COMMAND_MODULES[name]}", name
    code = ("import sys; from preserve.cli import main\n"
            "try:\n    main(['capture', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('preserve.cli.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded = set(done.stdout.splitlines()[-1].split())
    assert loaded == {"preserve.cli.app", "preserve.cli.capture", "preserve.cli.scale"}, loaded


@pytest.mark.parametrize("module", ["preserve", "preserve.cli"])
def test_import_does_not_load_heavy_libraries(module: str) -> None:
    """Start-up time: importing the package or the CLI loads none of the heavy libraries
    (each command imports what it needs when it runs)."""
    heavy = ("httpx", "httpcore", "lxml", "warcio", "cryptography", "rich", "rfc3161_client",
             "charset_normalizer", "bs4")
    code = (f"import sys, {module}; "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "", f"import {module} loaded {result.stdout.strip()}"


def test_lazy_public_names_resolve() -> None:
    import preserve  # noqa: PLC0415

    for name in preserve.__all__:
        assert getattr(preserve, name) is not None, name
    assert callable(preserve.extract) and preserve.extract.__module__.startswith(
        "preserve.extract")
    from preserve import log  # noqa: PLC0415

    for name in log.__all__:
        assert getattr(log, name) is not None, name


def test_a_capture_connects_before_loading_what_it_needs_only_afterwards(
        http_server: TestServer, tmp_path: Path) -> None:
    """Start-up of ``preserve capture URL``: the WARC writer, the extractor, lxml and the
    browser driver are loaded after the request is on its way, not before (the first byte
    leaves sooner); so are httpx, ssl and what httpcore imports but an http:// capture does
    not use before its request. Checked when the capture connects and when it sends its
    first byte. The archive is initialised (a key, a log) as users' are."""
    http_server.routes["/a"] = respond(200, b"<html><title>t</title><p>text</p></html>",
                                       headers=[("Content-Type", "text/html")])
    root, key = tmp_path / "root", tmp_path / "k"
    assert CliRunner().invoke(main, ["--root", str(root), "--key", str(key), "init"]).exit_code == 0
    late = ("warcio", "lxml", "selectolax", "playwright", "preserve.warc.write",
            "preserve.extract.core", "preserve.storage.manifest",
            # httpx (preserve.capture.urls parses the URL, httpcore sends the request), what
            # httpcore imports but an http:// capture does not use before its request (see
            # preserve.capture._httpcore), httpx's own imports, the records made of the
            # response, the browser's set-up, the signing code
            "httpx", "anyio", "certifi", "ssl", "_ssl", "idna", "email", "http.cookiejar",
            "urllib.request", "preserve.capture.exchange", "preserve.capture.browser_setup",
            "cryptography", "preserve.log.keys", "filelock", "rich")
    code = (
        "import socket, sys\n"
        "seen = {}\n"
        "def spy(event, original):\n"
        "    def at(self, *args):\n"
        "        if event not in seen:\n"
        f"            seen[event] = [m for m in {late!r} if m in sys.modules]\n"
        "        return original(self, *args)\n"
        "    return at\n"
        "socket.socket.connect = spy('connect', socket.socket.connect)\n"
        "socket.socket.send = spy('first byte', socket.socket.send)\n"
        "socket.socket.sendall = spy('first byte', socket.socket.sendall)\n"
        "from preserve.cli import main\n"
        "try:\n"
        f"    main(['--root', {str(root)!r}, '--key', {str(key)!r}, 'capture', '--http',\n"
        f"          {http_server.url('/a')!r}])\n"
        "except SystemExit as exit:\n"
        "    print(exit.code, seen)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.stdout.strip().splitlines()[-1] == "0 {'connect': [], 'first byte': []}", \
        result.stdout + result.stderr


def test_httpcore_is_imported_without_anyio_certifi_and_ssl_which_still_work(
        http_server: TestServer, https_server: TestServer, ca_bundle: Path,
        tmp_path: Path) -> None:
    """``preserve.capture._httpcore`` defers three modules httpcore imports at once: the import
    loads none of them, a later ``import ssl`` gives the real module, and httpcore's own uses
    reach it: an https capture records its TLS facts, an async request (anyio) goes through,
    certifi's bundle is found. (In the test process they are all loaded already, so the
    other tests do not show this.)"""
    http_server.routes["/a"] = respond(200, b"async", headers=[("Content-Type", "text/plain")])
    https_server.routes["/s"] = respond(200, b"tls", headers=[("Content-Type", "text/plain")])
    code = (
        "import sys, pathlib\n"
        "from preserve.capture import fetch\n"
        "print(sorted(m for m in ('anyio', 'certifi', 'ssl', 'httpx') if m in sys.modules))\n"
        "import httpcore\n"
        "from httpcore import _ssl, _synchronization\n"
        "assert type(_ssl.ssl) is not type(sys) and type(_synchronization.anyio) is not type(sys)\n"
        "assert _ssl.default_ssl_context.__annotations__ == {'return': 'ssl.SSLContext'}\n"
        f"got = fetch.fetch({https_server.url('/s')!r}, pathlib.Path({str(tmp_path)!r}),\n"
        f"                  fetch.FetchOptions(ca_bundle=pathlib.Path({str(ca_bundle)!r})))\n"
        "tls = got.final.tls\n"
        "print(got.final.body_path.read_bytes().decode(), tls.version.startswith('TLS'),\n"
        "      tls.verified, tls.alpn, bool(tls.certificate.sha256_fingerprint))\n"
        "import anyio, asyncio, certifi, ssl\n"
        "assert type(ssl) is type(sys) and ssl.SSLSocket is _ssl.ssl.SSLSocket\n"
        "assert type(anyio) is type(sys) and anyio.Lock is _synchronization.anyio.Lock\n"
        "assert _ssl.certifi.where() == certifi.where()\n"
        "assert isinstance(httpcore.default_ssl_context(), ssl.SSLContext)\n"
        "import httpx\n"
        "async def get():\n"
        "    async with httpx.AsyncClient() as client:\n"
        f"        return (await client.get({http_server.url('/a')!r})).text\n"
        "print(asyncio.run(get()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.stdout.split() == ["[]", "tls", "True", "True", "http/1.1", "True", "async"], \
        result.stdout + result.stderr


@pytest.mark.parametrize("command", [["list", "--json"], ["history", "https://example.org/a"]])
def test_reading_the_catalog_loads_no_signing_code(command: list[str], tmp_path: Path) -> None:
    """``list`` and ``history`` read the catalog and the log's entries: they load neither
    keys, signatures, timestamps nor the manifest parser (start-up is most of their time)."""
    root, key = tmp_path / "root", tmp_path / "k"
    assert CliRunner().invoke(main, ["--root", str(root), "--key", str(key), "init"]).exit_code == 0
    late = ("cryptography", "rfc3161_client", "preserve.integrity", "preserve.log.keys",
            "preserve.storage.manifest", "httpx", "lxml", "warcio")
    code = ("import sys\nfrom preserve.cli import main\n"
            f"try:\n    main(['--root', {str(root)!r}, *{command!r}])\n"
            "except SystemExit as exit:\n"
            f"    print(exit.code, [m for m in {late!r} if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout + result.stderr
