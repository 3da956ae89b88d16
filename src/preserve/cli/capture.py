"""``preserve capture``: capture URLs (one, a list, or a file of them) into the archive."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from preserve import errors
from preserve.cli.app import (
    EXIT_CAPTURE_FAILED,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    errors_to_exit,
    fail,
    main,
    null_context,
    open_archive,
    print_json,
    progress_bar,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from preserve.archive import CaptureResult

# --- capture ---------------------------------------------------------------------------------


def _read_url_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        fail(f"cannot read URL list {path}: {exc.strerror}", EXIT_USAGE)
    except UnicodeDecodeError:
        fail(f"URL list {path} is not UTF-8 text", EXIT_USAGE)
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _capture_line(result: CaptureResult) -> str:
    text = f"blake3:{result.text_blake3}" if result.text_blake3 else f"(no text: {result.reason})"
    title = result.title or "(untitled)"
    status = "" if result.http_status < 400 else f"  [HTTP {result.http_status}]"
    return f"{result.capture_id}  {text}  {title}{status}"


@main.command()
@click.argument("urls", nargs=-1)
@click.option(
    "--from",
    "url_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read URLs from a file, one per line ('#' starts a comment).",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Total seconds one capture may take (all redirects and reads).")
@click.option("--connect-timeout", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True, help="Seconds to establish a connection.")
@click.option("--max-size", type=click.IntRange(min=1), default=512 * 2**20, show_default=True,
              help="Largest response body accepted, in bytes.")
@click.option("--max-redirects", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--user-agent", help="User-Agent header (default names preserve and its version).")
@click.option("--operator", help="Who runs the capture (default: $PRESERVE_OPERATOR or login).")
@click.option("--insecure", is_flag=True,
              help="Capture even if the TLS certificate does not verify (recorded as such).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Trust these CA certificates (PEM) instead of the system store.")
@click.option("--block-private", is_flag=True,
              help="Refuse private, loopback and link-local addresses (checked on every hop).")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Captures run at once (never more than one per host).")
@click.option("--per-host-delay", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds between the end of one capture and the start of the next on the "
                   "same host (like wget --wait; set it when capturing many pages of one site).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def capture(
    ctx: click.Context,
    urls: Sequence[str],
    url_file: Path | None,
    timeout: float,
    connect_timeout: float,
    max_size: int,
    max_redirects: int,
    user_agent: str | None,
    operator: str | None,
    insecure: bool,
    ca_bundle: Path | None,
    block_private: bool,
    concurrency: int,
    per_host_delay: float,
    as_json: bool,
) -> None:
    """Capture URLS into the archive: WARC + clean text + manifest for each."""
    from preserve.archive import CaptureOptions  # noqa: PLC0415 - start-up time
    from preserve.batch import capture_many  # noqa: PLC0415
    from preserve.capture.fetch import FetchOptions  # noqa: PLC0415

    targets = list(urls) + (_read_url_file(url_file) if url_file else [])
    if not targets:
        raise click.UsageError("give at least one URL, or --from FILE")
    fetch_options = FetchOptions(
        timeout=timeout,
        connect_timeout=min(connect_timeout, timeout),
        max_body_size=max_size,
        max_redirects=max_redirects,
        verify_tls=not insecure,
        ca_bundle=ca_bundle,
        allow_private=not block_private,
    )
    if user_agent:
        fetch_options = dataclasses.replace(fetch_options, user_agent=user_agent)
    options = CaptureOptions(fetch=fetch_options, operator=operator)
    results: dict[int, dict[str, Any]] = {}  # by position in the input, printed in input order
    failures: list[errors.PreserveError] = []
    http_errors = 0
    positions: dict[str, list[int]] = {}
    for index, url in enumerate(targets):
        positions.setdefault(url, []).append(index)
    with errors_to_exit():
        archive = open_archive(ctx)
        progress = progress_bar(len(targets) > 1 and not as_json)
        task = progress.add_task("capturing", total=len(targets)) if progress else None
        with progress if progress else null_context():
            # completion order; one signed checkpoint when the batch ends (if the key is here)
            for url, outcome in capture_many(archive, targets, options, concurrency=concurrency,
                                             per_host_delay=per_host_delay):
                index = positions[url].pop(0)
                if isinstance(outcome, errors.CaptureError):
                    failures.append(outcome)
                    results[index] = {"url": url, "error": type(outcome).__name__,
                                      "message": str(outcome)}
                    stderr.print(f"preserve: capture failed: {outcome}", markup=False)
                elif isinstance(outcome, errors.PreserveError):
                    raise outcome  # the archive cannot be written: stop the batch (exit 3)
                else:
                    http_errors += outcome.http_status >= 400
                    results[index] = outcome.to_json()
                    if not as_json:
                        stdout.print(_capture_line(outcome), markup=False)
                if progress and task is not None:
                    progress.advance(task)
    if as_json:
        print_json({"captures": [results[i] for i in sorted(results)],
                     "failed": len(failures), "http_errors": http_errors})
    if failures:
        only_bad_urls = all(isinstance(f, errors.InvalidURLError) for f in failures)
        sys.exit(EXIT_USAGE if only_bad_urls and len(failures) == len(targets)
                 else EXIT_CAPTURE_FAILED)
    sys.exit(EXIT_FINDINGS if http_errors else EXIT_OK)


