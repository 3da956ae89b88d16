"""What every command shares: the ``main`` group and its global options, exit statuses, the
``--json`` envelope, error-to-exit translation, consoles and progress bars.

Every failure becomes one line on stderr (``preserve: error: …``) and a documented exit
status; under ``--json`` the same error is also printed on stdout as the envelope's ``error``
object. Nothing is ever reported as a traceback: a bug becomes ``preserve: internal error``
and exit status 5 (``PRESERVE_DEBUG=1`` shows the traceback). Heavy modules are imported
inside the commands that need them, so ``preserve --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import json
import logging
import math
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar, cast

import click

from preserve._lazy import lazy_module
from preserve._version import __version__

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from preserve.archive import Archive
    from preserve.errors import PreserveError
    from preserve.remote.archive import RemoteArchive
    from preserve.storage import catalog as _catalog
    from preserve.storage.catalog import JsonRowLayout
else:
    _catalog = lazy_module("preserve.storage.catalog")

EXIT_OK = 0
EXIT_FINDINGS = 1  # integrity findings; a capture kept an HTTP error / unfollowed redirect
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3
EXIT_CAPTURE_FAILED = 4
EXIT_INTERNAL = 5

EXIT_STATUSES = {
    EXIT_OK: "success (verify: intact; warnings may be printed)",
    EXIT_FINDINGS: "integrity findings (verify, check-proof, check-export, a signature refused "
                   "as unproved "
                   "or, by repair and checkpoint, over an archive verify finds errors in, an "
                   "imported file failing its own digests, a manifest that is not the one "
                   "its log leaf records, met by show, diff, prove or report, or by list "
                   "and history on an s3:// root or without a usable catalog); a capture "
                   "kept an HTTP 4xx/5xx answer or a redirect it did not follow",
    EXIT_USAGE: "usage error: bad option or argument (an empty output path, a WACZ signing "
                "key that is not ECDSA P-256/P-384/P-521), invalid URL or unsupported scheme, "
                "a file to import that is not a WARC or WACZ file or beyond preserve's "
                "bounds, a command not supported on an object-store (s3://) root yet",
    EXIT_CANNOT_RUN: "could not run: no archive at the root, archive unusable, locked, "
                     "unreadable or unwritable, key missing, an unknown or ambiguous capture "
                     "id; an export of a damaged capture; the output cannot be written "
                     "(a full disk)",
    EXIT_CAPTURE_FAILED: "at least one capture failed (DNS, refused, timeout, TLS, too large, "
                         "…); nothing was committed for it",
    EXIT_INTERNAL: "internal error: a bug in preserve (please report it)",
    130: "interrupted (Ctrl-C), and 143 terminated (SIGTERM): what was in flight was "
         "finished or undone, temporary files removed; preserve repair clears what a kill left",
}

T = TypeVar("T")
JSON_ENVELOPE = "preserve/cli/1"


class _Consoles:
    """stdout/stderr rich consoles, made on first use (rich is slow to import)."""

    _out: Console | None = None
    _err: Console | None = None

    @property
    def out(self) -> Console:
        if self._out is None:
            from rich.console import Console

            self._out = Console(highlight=False, soft_wrap=True)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._err


consoles = _Consoles()


#: Characters a terminal would act on rather than show (C0 and C1 controls but newline and
#: tab, DEL: escape sequences, backspace, carriage return) or that make text read other than
#: it is (bidirectional controls, line and paragraph separators, the zero-width U+200B, U+2060
#: and U+FEFF: a byte-order mark inside a URL), and lone surrogates (a file name that is not
#: UTF-8, which Python holds as U+DC80-U+DCFF: no UTF-8 output can carry it).
_NOT_FOR_TERMINALS = (
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2060\u2066-\u2069\ufeff\ud800-\udfff]")
_LONE_SURROGATE = "[\ud800-\udfff]"


@functools.cache
def _pattern(expression: str) -> re.Pattern[str]:
    """``re.compile(expression)``, made on first use: compiling :data:`_NOT_FOR_TERMINALS`
    (its ranges beyond Latin-1) was 1.5 % of what a capture did before its first byte."""
    return re.compile(expression)


def _shown(match: re.Match[str]) -> str:
    return f"⟨U+{ord(match.group()):04X}⟩"


def terminal_safe(text: str) -> str:
    """``text`` (which may hold what a page, server or file said) as a terminal shows it
    literally: the characters of :data:`_NOT_FOR_TERMINALS` become ``⟨U+001B⟩``."""
    if text.isascii() and text.isprintable():  # no control character: nothing to show
        return text
    return _pattern(_NOT_FOR_TERMINALS).sub(_shown, text)


def json_safe(text: str) -> str:
    """JSON text with each lone surrogate written as its ``\\u`` escape (JSON allows it; the
    rest stays unescaped): the output is UTF-8 whatever stdout's error handler, and
    ``json.loads`` gives the very string back (``os.fsencode`` the file name's bytes)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")  # a third of the time a search takes, and fails only on one
    except UnicodeEncodeError:
        return _pattern(_LONE_SURROGATE).sub(_escaped, text)
    return text


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _one_output_line(text: str) -> str:
    """``text`` with any newline shown as ``⟨U+000A⟩`` (a file name can hold one): a value
    never starts a line of output of its own, so it cannot pass for one preserve printed."""
    return text.replace("\n", "⟨U+000A⟩") if "\n" in text else text


def say(text: str) -> None:
    """One line of human output on stdout (never interpreted as markup or by the terminal)."""
    click.echo(terminal_safe(_one_output_line(text)))


def warn(text: str) -> None:
    """One line on stderr, prefixed ``preserve: ``."""
    click.echo(f"preserve: {_one_line(text)}", err=True)


#: Longest message line: a 50 MB URL read from --from is not echoed whole (twice) on stderr.
MAX_MESSAGE_CHARS = 4096


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    if len(line) > MAX_MESSAGE_CHARS:
        line = f"{line[:MAX_MESSAGE_CHARS]}… ({len(line):,} characters)"
    return terminal_safe(line) or "(no detail)"


# --- the --json envelope -----------------------------------------------------------------------


@dataclass
class Run:
    """State of the command being run: its name and whether ``--json`` was asked for."""

    command: str = "preserve"
    as_json: bool = False
    warnings: list[str] = field(default_factory=list)


def current() -> Run:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Run()
    root_ctx = ctx.find_root()
    run = root_ctx.meta.get("preserve.run")
    if not isinstance(run, Run):
        run = Run()
        root_ctx.meta["preserve.run"] = run
    return run


def envelope(command: str, status: int, result: Any = None,
             error: dict[str, Any] | None = None, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The one JSON object every ``--json`` command prints (see docs/cli.md)."""
    return {"format": JSON_ENVELOPE, "preserve": __version__, "command": command,
            "ok": status == EXIT_OK, "exit_status": status, "result": result, "error": error,
            "warnings": list(warnings)}


def print_json(payload: Any) -> None:
    click.echo(json_safe(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)))


def finish(result: Any, status: int = EXIT_OK) -> NoReturn:
    """End a command: under ``--json`` print the envelope with ``result``; exit ``status``."""
    run = current()
    if run.as_json:
        print_json(envelope(run.command, status, result, None, run.warnings))
    sys.exit(status)


def finish_rows(result: dict[str, Any], key: str, fields: Sequence[str],
                chunks: Iterable[Sequence[Sequence[Any] | str]],
                status: int = EXIT_OK) -> NoReturn:
    """:func:`finish` with ``result[key]`` the list of ``dict(zip(fields, row))`` for the
    rows of ``chunks``, printed byte for byte as :func:`finish` prints it, but each row
    filled into one template (``json.dumps`` with ``indent`` runs in pure Python, seconds for
    100,000 rows) and written a chunk at a time (neither rows nor output are held whole).
    No :func:`json_safe` pass over the rows: they are the catalog's, and SQLite text read by
    Python never holds a lone surrogate."""
    def whole() -> list[Any]:
        return [json.loads(row) if isinstance(row, str) else dict(zip(fields, row, strict=True))
                for chunk in chunks for row in chunk]

    finish_streamed(result, key, json_rows(fields, chunks), whole, status)


def finish_streamed(result: dict[str, Any], key: str, parts: Iterable[str],
                    whole: Callable[[], list[Any]], status: int = EXIT_OK) -> NoReturn:
    """:func:`finish` with ``result[key]`` a list given as ``parts``: texts whose
    concatenation is that list as :func:`finish` prints it at depth 2 (from ``[`` to ``]``,
    made JSON-safe by the caller), written as they come. ``whole()`` gives the list itself,
    for the case (never met: a JSON string cannot hold a raw newline) where the envelope's
    text does not show where the list goes."""
    run = current()
    if not run.as_json:
        sys.exit(status)
    text = json.dumps(envelope(run.command, status, {**result, key: []}, None, run.warnings),
                      indent=2, ensure_ascii=False, sort_keys=True)
    marker = f"\n    {json.encoder.encode_basestring(key)}: []"
    at = text.find(marker)
    if at < 0 or text.count(marker) != 1:
        finish({**result, key: whole()}, status)
    click.echo(json_safe(text[:at + len(marker) - 2]), nl=False)
    for part in parts:
        # color=True: no ANSI-stripping pass over JSON, which escapes every control byte
        click.echo(part, nl=False, color=True)
    click.echo(json_safe(text[at + len(marker):]))
    sys.exit(status)


def json_item(value: Any) -> str:
    """``value`` as :func:`finish` prints an item of a list at depth 2 (its lines indented
    by six spaces), JSON-safe; joined by ``",\\n"`` between ``"[\\n"`` and ``"\\n    ]"``."""
    dumped = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return json_safe("      " + dumped.replace("\n", "\n      "))


#: Rows read, formatted and written at a time by ``list``.
ROWS_CHUNK = 4096


def json_row_layout(fields: Sequence[str]) -> JsonRowLayout:
    """How :func:`json_rows` prints a row of ``fields``: the keys sorted, each on its own
    line at depth 4 (what ``json.dumps(indent=2, sort_keys=True)`` prints at depth 3)."""
    encode = json.encoder.encode_basestring  # the C one, as dumps uses
    parts = tuple((("      {\n" if at == 0 else ",\n") + f"        {encode(name)}: ", name)
                  for at, name in enumerate(sorted(fields)))
    return _catalog.JsonRowLayout(parts, "\n      }", encode)


def json_rows(fields: Sequence[str],
              chunks: Iterable[Sequence[Sequence[Any] | str]]) -> Iterator[str]:
    """The rows of ``chunks`` as ``json.dumps`` prints a list of such dicts at depth 3 with
    ``indent=2, ensure_ascii=False, sort_keys=True`` (scalar values: str, int, None, …), in
    parts (one a chunk) whose concatenation is that text. A row given as a string is its
    text already (rendered by the catalog to :func:`json_row_layout`)."""
    layout = json_row_layout(fields)
    encode = layout.quote
    order = [fields.index(name) for _, name in layout.parts]
    # one %-template (faster than str.format), filled with the columns in the keys' order
    template = "".join(literal.replace("%", "%%") + "%s" for literal, _ in layout.parts) + \
        layout.end.replace("%", "%%")

    def render(rows: Sequence[Sequence[Any]]) -> list[str]:
        columns = list(zip(*rows, strict=True))
        encoded: list[list[str]] = []
        for column in map(columns.__getitem__, order):
            kinds = set(map(type, column))
            if kinds <= {str}:
                encoded.append(list(map(encode, column)))  # one C call per value, no frame
            elif kinds <= {str, type(None)}:
                encoded.append([encode(v) if v is not None else "null" for v in column])
            elif kinds <= {int}:
                encoded.append(list(map(int.__repr__, column)))
            else:
                encoded.append([_json_value(v) for v in column])
        return list(map(template.__mod__, zip(*encoded, strict=True)))

    opening = "[\n"
    for chunk in chunks:
        if not chunk:
            continue
        rows = [row for row in chunk if not isinstance(row, str)]
        if not rows:  # every row rendered by the catalog
            texts = cast("Sequence[str]", chunk)
        elif len(rows) == len(chunk):
            texts = render(rows)
        else:  # rows of a tampered catalog among rows the catalog rendered
            rendered = iter(render(rows))
            texts = [row if isinstance(row, str) else next(rendered) for row in chunk]
        yield opening + ",\n".join(texts)
        opening = ",\n"
    yield "[]" if opening == "[\n" else "\n    ]"


def say_blocks(blocks: Iterable[str]) -> None:
    """Human output given a block of lines at a time (``list``: one block a chunk of rows),
    each block made terminal-safe and written with one call."""
    for block in blocks:
        # color=True: no ANSI-stripping pass, terminal_safe left no escape character
        click.echo(terminal_safe(block), color=True)


def _json_value(value: Any) -> str:
    """One value of a derived index as JSON; a value JSON cannot hold (a tampered catalog can
    hand back bytes or NaN) is shown as its repr, as the text output shows it, never a crash."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(repr(value), ensure_ascii=False)


def fail(message: str, status: int, *, kind: str = "Error", hint: str | None = None) -> NoReturn:
    """End a command with one error line on stderr (and the envelope's error under --json)."""
    run = current()
    line = _one_line(message)
    click.echo(f"preserve: error: {line}", err=True)
    if hint:
        click.echo(f"preserve: hint: {_one_line(hint)}", err=True)
    if run.as_json:
        with contextlib.suppress(OSError):  # the output itself failed: the line above says so
            print_json(envelope(run.command, status, None,
                                {"type": kind, "message": line, "hint": hint}, run.warnings))
    sys.exit(status)


def exit_status_for(exc: PreserveError) -> int:
    from preserve import errors

    if isinstance(exc, errors.InvalidURLError | errors.UnsupportedKeyError):
        return EXIT_USAGE
    if isinstance(exc, errors.ImportIntegrityError):  # the input fails its own checks
        return EXIT_FINDINGS
    if isinstance(exc, errors.ImportInputError):  # not a WARC/WACZ file, or unreadable
        return EXIT_USAGE
    if isinstance(exc, errors.CaptureError):
        return EXIT_CAPTURE_FAILED
    if isinstance(exc, errors.NotProvedError | errors.ProofError
                  | errors.UnverifiedManifestError):
        return EXIT_FINDINGS
    return EXIT_CANNOT_RUN


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn a library error into one line on stderr and its exit status."""
    from preserve import errors

    try:
        yield
    except errors.PreserveError as exc:
        fail(str(exc), exit_status_for(exc), kind=type(exc).__name__, hint=_hint(exc))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", EXIT_CANNOT_RUN, kind="OSError")


def _hint(exc: PreserveError) -> str | None:
    from preserve import errors

    if isinstance(exc, errors.NotProvedError):
        return "run preserve verify to see why; nothing was signed"
    if isinstance(exc, errors.LockTimeoutError):
        return "another preserve process is committing; try again when it is done"
    return None


# --- options shared by every command ------------------------------------------------------------


def _set_global(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.ensure_object(dict)
            ctx.find_root().ensure_object(dict)[name] = value
        return value
    return store


def _tsa(value: str | None) -> str | None:
    """A ``--tsa`` URL, checked before anything runs (a usage error otherwise)."""
    if value is None:
        return None
    from preserve.log.timestamp import TimestampError, check_tsa_url

    try:
        return check_tsa_url(value)
    except TimestampError as exc:
        raise click.BadParameter(str(exc), param_hint="--tsa") from exc


def global_options(command: Callable[..., T]) -> Callable[..., T]:
    """Accept ``--root``, ``--key`` and ``--tsa`` after the subcommand too (as before it)."""
    options = [
        click.option("--root", type=click.Path(path_type=Path),
                     expose_value=False, callback=_set_global("root"), is_eager=True,
                     help="Archive root (also accepted before the command)."),
        click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
                     expose_value=False, callback=_set_global("key"), is_eager=True,
                     help="Private signing key file (also accepted before the command)."),
        click.option("--tsa", metavar="URL", expose_value=False,
                     callback=lambda c, p, v: _set_global("tsa")(c, p, _tsa(v)),
                     is_eager=True, help="RFC 3161 timestamp authority for new checkpoints."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class OutputPath(click.Path):
    """A file or directory to write: :class:`click.Path` that refuses an empty value (which
    ``pathlib`` would read as ``.``, the current directory) as a usage error."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str | bytes) and not value.strip():
            self.fail("an empty path names no file", param, ctx)
        return super().convert(value, param, ctx)


def json_option(command: Callable[..., T]) -> Callable[..., T]:
    """``--json``: print one envelope object on stdout (result or error)."""
    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            current().as_json = True
        return value

    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=remember,
                        help="Print one JSON object (the envelope of docs/cli.md).")(command)


def command(name: str | None = None, **kwargs: Any) -> Callable[[Callable[..., Any]],
                                                                 click.Command]:
    """Register a subcommand of ``main`` with the global options and run bookkeeping."""
    def decorate(function: Callable[..., Any]) -> click.Command:
        @functools.wraps(function)
        def wrapper(*args: Any, **kw: Any) -> Any:
            current().command = click.get_current_context().info_name or function.__name__
            return function(*args, **kw)

        return main.command(name, **kwargs)(global_options(wrapper))
    return decorate


class SizeType(click.ParamType):  # type: ignore[type-arg]  # generic in click >= 8.2
    """A byte count: ``50000000``, ``50M``, ``2G``, ``512K``, ``1.5G`` (powers of 1024 with
    ``Ki``/``Mi``/``Gi``, of 1000 with ``K``/``M``/``G``/``kB``/``MB``/``GB``)."""

    name = "size"
    _UNITS: ClassVar[dict[str, int]] = {
              "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9,
              "gb": 10**9, "t": 10**12, "tb": 10**12, "ki": 1024, "kib": 1024, "mi": 2**20,
              "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40}
    _PATTERN: ClassVar[re.Pattern[str]] = re.compile(
        r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = self._PATTERN.match(str(value))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in self._UNITS:
            self.fail(f"{value!r} is not a size (examples: 50000000, 50M, 2G, 512Ki)", param, ctx)
        size = int(float(match.group(1)) * self._UNITS[unit])
        if size < 1:
            self.fail(f"{value!r} is not a positive size", param, ctx)
        return size


#: Longest time an option takes (about 11.6 days): larger finite values overflow the clocks
#: and timers they reach (threading waits, socket timeouts, the browser driver's 32-bit
#: millisecond timers, date arithmetic).
MAX_SECONDS = 1_000_000


class SecondsType(click.ParamType):  # type: ignore[type-arg]
    """A finite, positive number of seconds (or another ``unit``) up to ``maximum``; ``nan``
    and ``inf`` are refused, so a limit can never be switched off by accident."""

    name = "seconds"

    def __init__(self, minimum: float = 0.0, *, allow_zero: bool = False,
                 unit: str = "seconds", maximum: float = MAX_SECONDS) -> None:
        self.minimum = minimum
        self.allow_zero = allow_zero
        self.unit = unit
        self.maximum = maximum
        self.name = unit

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of {self.unit}", param, ctx)
        if not math.isfinite(number) or number < self.minimum or number > self.maximum \
                or (number == 0 and not self.allow_zero):
            self.fail(f"{value!r} must be a finite number of {self.unit} "
                      f"{'>= 0' if self.allow_zero else f'> {self.minimum:g}'} and at most "
                      f"{self.maximum:,.0f}", param, ctx)
        return number


SIZE = SizeType()


# --- the group -----------------------------------------------------------------------------------


#: Exit statuses of a command stopped by Ctrl-C (SIGINT) or by SIGTERM, as shells report them.
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Terminated:
    """Whether SIGTERM stopped the command; :meth:`restore` puts the handler back that was
    there before (``main`` is also called in-process, by tests and embedding programs)."""

    def __init__(self) -> None:
        self.seen = False
        self.previous: Any = None
        self.installed = False

    def __bool__(self) -> bool:
        return self.seen

    def restore(self) -> None:
        if self.installed:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, self.previous)
            self.installed = False


def _terminate_as_interrupt() -> _Terminated:
    """SIGTERM (a service manager stopping preserve, ``kill``) is handled as Ctrl-C is: the
    work in flight is undone or finished and temporary files removed (an export's ``.part``
    files stayed behind), then exit 143. Only in the main thread (else: nothing changes)."""
    terminated = _Terminated()

    def handler(_signum: int, _frame: object) -> None:
        terminated.seen = True
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread: signals are not ours here
        terminated.previous = signal.signal(signal.SIGTERM, handler)
        terminated.installed = True
    return terminated


def _quiet_libraries() -> None:
    """Keep libraries' log records and Python warnings off stderr, which carries only
    preserve's own one-line messages: warcio, for one, logs a WARC-Target-URI it rewrites
    verbatim, escape sequences included. ``PRESERVE_DEBUG=1`` lets them through."""
    if os.environ.get("PRESERVE_DEBUG"):
        return
    logging.captureWarnings(True)
    root = logging.getLogger()
    if not any(type(h) is logging.NullHandler for h in root.handlers):
        root.addHandler(logging.NullHandler())  # then logging's last-resort printer is unused


#: The module of :mod:`preserve.cli` that defines each subcommand: only the one being run is
#: imported (a capture's request leaves sooner), all of them when the commands are listed.
COMMAND_MODULES = {
    "capture": "capture",
    "verify": "audit", "repair": "audit", "adopt": "audit", "reset-head": "audit",
    "list": "browse", "show": "browse", "history": "browse", "diff": "browse",
    "export": "exchange", "check-export": "exchange", "report": "exchange",
    "import": "exchange",
    "init": "integrity", "keygen": "integrity", "checkpoint": "integrity", "log": "integrity",
    "prove": "integrity", "check-proof": "integrity",
}


class PreserveGroup(click.Group):
    """The ``preserve`` group: turns every failure into one line and an exit status, and
    imports each subcommand's module when it is first needed (:data:`COMMAND_MODULES`)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"preserve.cli.{module}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_all()
        return super().list_commands(ctx)

    def load_all(self) -> MutableMapping[str, click.Command]:
        """Import every subcommand's module; returns :attr:`commands`, now complete."""
        for module in sorted(set(COMMAND_MODULES.values())):
            importlib.import_module(f"preserve.cli.{module}")
        return self.commands

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        argv = list(args) if args is not None else sys.argv[1:]
        as_json = "--json" in argv
        _quiet_libraries()
        terminated = _terminate_as_interrupt()
        try:
            return super().main(argv, prog_name or "preserve", complete_var,
                                standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            message = _one_line(exc.format_message())
            click.echo(f"preserve: error: {message}", err=True)
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                click.echo(f"preserve: hint: see '{exc.ctx.command_path} --help'", err=True)
            if as_json:
                print_json(envelope(_command_of(argv), EXIT_USAGE, None,
                                    {"type": "UsageError", "message": message, "hint": None}))
            sys.exit(EXIT_USAGE)
        except (click.Abort, KeyboardInterrupt):
            click.echo("preserve: terminated" if terminated else "preserve: interrupted",
                       err=True)
            sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
        except SystemExit:
            raise
        except OSError as exc:
            if exc.errno not in _ENVIRONMENT_ERRNOS:
                _internal_error(exc, argv, as_json)
            # the machine, not preserve: a full disk or a dead device under the output
            click.echo(f"preserve: error: {_one_line(exc.strerror or str(exc))}", err=True)
            sys.exit(EXIT_CANNOT_RUN)
        except Exception as exc:  # a bug: one line, a distinct status, never a traceback
            if not _object_store_failure(exc):
                _internal_error(exc, argv, as_json)
            # an s3:// endpoint unreachable or failing (botocore, aiohttp): the machine's
            # surroundings, not preserve
            click.echo(f"preserve: error: the object store failed: {_one_line(str(exc))}",
                       err=True)
            sys.exit(EXIT_CANNOT_RUN)
        finally:
            terminated.restore()


def _object_store_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the S3 client's own error (an endpoint down, a read timeout, a
    stream cut): exit 3, like an unreadable archive (told by module, not to import them)."""
    return type(exc).__module__.split(".", 1)[0] in ("botocore", "aiobotocore", "aiohttp")


#: OSErrors that are the machine's state, not a bug of preserve (a full disk or a dead device
#: under the output, say ``> /dev/full``): one line and exit 3, not "internal error".
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def _internal_error(exc: BaseException, argv: Sequence[str], as_json: bool) -> NoReturn:
    """A bug: one line, a distinct status, never a traceback (unless PRESERVE_DEBUG)."""
    if os.environ.get("PRESERVE_DEBUG"):
        traceback.print_exc()
    message = f"internal error: {type(exc).__name__}: {_one_line(str(exc))[:500]}"
    click.echo(f"preserve: {message} (please report it; PRESERVE_DEBUG=1 shows "
               "where)", err=True)
    if as_json:
        print_json(envelope(_command_of(argv), EXIT_INTERNAL, None,
                            {"type": "InternalError", "message": message, "hint": None}))
    sys.exit(EXIT_INTERNAL)


def _command_of(argv: Sequence[str]) -> str:
    for arg in argv:
        if not arg.startswith("-") and arg in COMMAND_MODULES:
            return arg
    return "preserve"


EPILOG = ("Exit statuses: " + "; ".join(f"{k} {v}" for k, v in EXIT_STATUSES.items())
          + ". Documentation: docs/cli.md.")


@click.group(cls=PreserveGroup, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    envvar="PRESERVE_ROOT",
    default=Path("."),
    show_default="current directory, or $PRESERVE_ROOT",
    help="Archive root: holds archive/ and manifests/.",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="PRESERVE_KEY",
    help="The archive's private signing key (default: the config dir, see 'preserve init').",
)
@click.option("--tsa", metavar="URL", envvar="PRESERVE_TSA", callback=lambda c, p, v: _tsa(v),
              help="RFC 3161 timestamp authority to stamp every new checkpoint.")
@click.version_option(__version__, "-V", "--version", prog_name="preserve")
@click.pass_context
def main(ctx: click.Context, root: Path, key: Path | None, tsa: str | None) -> None:
    """Capture web pages into WARC with provenance, keep their clean text, verify it all.

    \b
    Example:
      preserve capture https://example.org/article
      preserve verify --checkpoint offsite-checkpoint.txt
    """
    ctx.ensure_object(dict)
    ctx.obj.update(root=root, key=key, tsa=tsa)


#: The commands that work on an ``s3://`` root; the others exit 2 (docs/scaling.md).
REMOTE_COMMANDS = ("init", "capture", "verify", "repair", "checkpoint", "list", "show",
                   "history", "diff", "log", "prove", "export", "report")


def remote_root(ctx: click.Context) -> str | None:
    """The ``s3://bucket/prefix`` given as ``--root`` (or $PRESERVE_ROOT), else None. (A path
    option collapses ``//``. Any root starting ``s3:``, in any case, is taken for a store, so
    that a mistyped one is refused, not made a local directory named ``s3:``; such a
    directory is reached as ``./s3:…``.)"""
    text = str(ctx.find_root().obj["root"])
    if text[:3].lower() != "s3:":
        return None
    return "s3://" + text[3:].lstrip("/")


def open_any(ctx: click.Context, *, must_exist: bool = True) -> Archive | RemoteArchive:
    """The archive at the root: a directory, or an object store (``s3://``, see
    docs/scaling.md); exit 3 when there is none and ``must_exist``."""
    url = remote_root(ctx)
    if url is None:
        return open_archive(ctx, must_exist=must_exist)
    from preserve.remote.archive import RemoteArchive

    obj = ctx.find_root().obj
    archive = RemoteArchive(url, key=obj.get("key"), tsa_url=obj.get("tsa"))
    if must_exist and not archive.is_archive():
        fail(f"{url} holds no preserve archive (no manifests/log/head.json)", EXIT_CANNOT_RUN,
             kind="ArchiveError", hint="create one with 'preserve --root URL init'")
    return archive


def open_archive(ctx: click.Context, *, must_exist: bool = True) -> Archive:
    """The archive at the root (exit 3 with a hint when there is none and ``must_exist``)."""
    from preserve.archive import Archive

    obj = ctx.find_root().obj
    if remote_root(ctx) is not None:
        fail(f"'{current().command}' is not supported on an object-store root yet; on s3:// "
             f"roots use {', '.join(REMOTE_COMMANDS)} (docs/scaling.md)", EXIT_USAGE,
             kind="UsageError")
    where = Path(obj["root"])
    if where.exists() and not where.is_dir():
        fail(f"{where} is not a directory, so not an archive root", EXIT_CANNOT_RUN,
             kind="ArchiveError", hint="give the archive's directory with --root DIR")
    archive = Archive(where, key=obj.get("key"), tsa_url=obj.get("tsa"))
    if must_exist and not archive.is_archive():
        what = "does not exist" if not where.exists() else "is not a preserve archive"
        fail(f"{where} {what} (no archive/ or manifests/ in it)", EXIT_CANNOT_RUN,
             kind="ArchiveError",
             hint="give the archive with --root DIR or $PRESERVE_ROOT, or create one with "
                  "'preserve init' or a first 'preserve capture'")
    return archive


def progress_bar(enabled: bool) -> Progress | None:
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=consoles.err,
        transient=True,
    )


@contextmanager
def null_context() -> Iterator[None]:
    yield


def with_progress(
    progress: Progress | None,
    label: str,
    run: Callable[[Callable[[int, int], None] | None], T],
) -> T:
    if progress is None:
        return run(None)
    with progress:
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return run(advance)


def read_key_option(value: str | None) -> str | None:
    """A ``--trusted-key`` given as key text or as the path of a file holding it."""
    if value is None:
        return None
    path = Path(value)
    if "+" not in value or path.is_file():
        from preserve.errors import SigningKeyError
        from preserve.safe_io import read_text

        try:
            return read_text(path, 4096, what="trusted key file", error=SigningKeyError).strip()
        except SigningKeyError as exc:
            fail(str(exc), EXIT_USAGE, kind="SigningKeyError")
    return value
