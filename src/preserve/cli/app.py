"""What every command shares: the ``main`` group and its global options, exit statuses,
consoles, error-to-exit translation, JSON output and progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click

from preserve import errors
from preserve._version import __version__

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from preserve.archive import Archive

EXIT_OK = 0
EXIT_FINDINGS = 1  # verify: integrity findings; capture: captured, but the server answered 4xx/5xx
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3
EXIT_CAPTURE_FAILED = 4

EXIT_STATUSES = {
    EXIT_OK: "success",
    EXIT_FINDINGS: "verify found integrity problems / capture kept an HTTP error answer",
    EXIT_USAGE: "usage error (bad option, invalid URL)",
    EXIT_CANNOT_RUN: "could not run (archive root unusable, locked, unreadable)",
    EXIT_CAPTURE_FAILED: "at least one capture failed; nothing was committed for it",
}



class _LazyConsole:
    """A rich Console made on first use: commands that print nothing never import rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console  # noqa: PLC0415 - start-up time

            self._console = Console(**self._options)
        return getattr(self._console, name)


stderr = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))
stdout = cast("Console", _LazyConsole(highlight=False, soft_wrap=True))

T = TypeVar("T")


def fail(message: str, status: int) -> NoReturn:
    stderr.print(f"preserve: error: {message}", markup=False)
    sys.exit(status)


def exit_status_for(exc: errors.PreserveError) -> int:
    if isinstance(exc, errors.InvalidURLError):
        return EXIT_USAGE
    if isinstance(exc, errors.CaptureError):
        return EXIT_CAPTURE_FAILED
    return EXIT_CANNOT_RUN


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn a library error into one line on stderr and its exit status."""
    try:
        yield
    except errors.PreserveError as exc:
        fail(str(exc), exit_status_for(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_CANNOT_RUN)


def print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True))


def open_archive(ctx: click.Context) -> Archive:
    from preserve.archive import Archive  # noqa: PLC0415 - start-up time

    return Archive(ctx.obj["root"], key=ctx.obj["key"], tsa_url=ctx.obj["tsa"])


def progress_bar(enabled: bool) -> Progress | None:
    if not enabled or not stderr.is_terminal:
        return None
    from rich.progress import (  # noqa: PLC0415 - start-up time
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
        console=stderr,
        transient=True,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
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
@click.option("--tsa", metavar="URL", envvar="PRESERVE_TSA",
              help="RFC 3161 timestamp authority to stamp every new checkpoint.")
@click.version_option(__version__, prog_name="preserve")
@click.pass_context
def main(ctx: click.Context, root: Path, key: Path | None, tsa: str | None) -> None:
    """Capture web pages into WARC with provenance, keep their clean text, verify it all."""
    ctx.ensure_object(dict)
    ctx.obj.update(root=root, key=key, tsa=tsa)



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


