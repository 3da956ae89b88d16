"""``preserve capture``: capture URLs (arguments, a file of them, or standard input).

A batch never stops at a failed URL: each failure is reported with its URL and the batch goes
on; the exit status says whether any failed (4), any kept an HTTP error or an unfollowed
redirect (1), or all went well (0). Only a failure of the archive itself (it cannot be
written, it is locked, its log does not extend your known head) stops the batch, since every
later capture would fail the same way.

The mode: ``--browser`` renders each page in Chromium (every resource recorded, plus a
screenshot, PDF and the rendered DOM) and exits 3 when no browser is installed; ``--http``
keeps one HTTP response and its redirects; neither means the browser when playwright and a
Chromium are found, else HTTP with a one-line note on stderr.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from preserve.cli.app import (
    EXIT_CANNOT_RUN,
    EXIT_CAPTURE_FAILED,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    SIZE,
    SecondsType,
    command,
    current,
    errors_to_exit,
    fail,
    finish,
    json_option,
    null_context,
    open_any,
    progress_bar,
    remote_root,
    say,
    warn,
)
from preserve.cli.scale import dask_option

if TYPE_CHECKING:
    from preserve.archive import CaptureResult
    from preserve.capture.browser import BrowserOptions

#: Largest URL list read from a file or standard input.
MAX_URL_LIST = 64 * 2**20


def read_url_list(source: str) -> list[str]:
    """URLs from a file (or ``-``: standard input), one per line; blank lines and ``#``
    comments skipped, a UTF-8 byte-order mark ignored."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_URL_LIST + 1)
        else:
            from preserve.errors import StorageError
            from preserve.safe_io import read_regular

            data = read_regular(Path(source), MAX_URL_LIST, what="URL list", error=StorageError)
    except OSError as exc:
        fail(f"cannot read URL list {source}: {exc.strerror or exc}", EXIT_USAGE)
    except Exception as exc:  # StorageError: not a regular file, too large
        fail(f"cannot read URL list {source}: {exc}", EXIT_USAGE)
    if len(data) > MAX_URL_LIST:
        fail(f"URL list {source} is larger than {MAX_URL_LIST} bytes", EXIT_USAGE)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        fail(f"URL list {source} is not UTF-8 text", EXIT_USAGE)
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def capture_line(result: CaptureResult) -> str:
    text = f"blake3:{result.text_blake3}" if result.text_blake3 else f"(no text: {result.reason})"
    title = " ".join((result.title or "(untitled)").split())[:200]
    status = "" if result.http_status < 400 else f"  [HTTP {result.http_status}]"
    if result.status == "redirect-not-followed":
        status += "  [redirect not followed]"
    mode = f"  [browser, {result.resources} resources]" if result.mode == "browser" else ""
    return f"{result.capture_id}  {text}  {title}{status}{mode}"


def _browser_options(force_browser: bool, force_http: bool, browser_path: Path | None,
                     user_agent: str | None, max_resources: int,
                     settle: float) -> BrowserOptions | None:
    """The browser to capture with, or None for HTTP (see the module docstring)."""
    from preserve.capture.browser_setup import browser_problem

    if force_browser and force_http:
        fail("--browser and --http exclude each other", EXIT_USAGE, kind="UsageError")
    if force_http:
        return None
    problem = browser_problem(browser_path)
    if problem is not None:
        if force_browser:
            fail(problem, EXIT_CANNOT_RUN, kind="BrowserUnavailableError")
        warn(f"note: {problem}. Capturing over HTTP only (--http silences this note).")
        return None
    from preserve.capture.browser import BrowserOptions

    # the CLI's capture workers are its own: their Playwright driver is kept between captures
    return BrowserOptions(executable=browser_path, user_agent=user_agent,
                          max_exchanges=max_resources, settle=settle, keep_driver=True)


@command()
@click.argument("urls", nargs=-1)
@click.option(
    "--from",
    "url_file",
    metavar="FILE",
    help="Read URLs from FILE, one per line ('#' starts a comment); '-' reads standard input.",
)
@click.option("--timeout", type=SecondsType(0.1), default=60.0, show_default=True,
              help="Total seconds one capture may take (all redirects and reads; with a browser "
                   "also loading, settling and the snapshot).")
@click.option("--connect-timeout", type=SecondsType(0.1), default=10.0,
              show_default=True, help="Seconds to establish a connection.")
@click.option("--max-size", type=SIZE, default="512Mi", show_default=True,
              help="Largest response body accepted (bytes, or 50M, 2G, 512Mi …; browser: per "
                   "resource, kept cut short beyond it).")
@click.option("--max-redirects", type=click.IntRange(min=0, max=100), default=10,
              show_default=True)
@click.option("--user-agent", help="User-Agent header (default names preserve and its version; "
                                   "a browser presents its own).")
@click.option("--operator", help="Who runs the capture (default: $PRESERVE_OPERATOR or login).")
@click.option("--insecure", is_flag=True,
              help="Capture even if the TLS certificate does not verify (recorded as such).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Trust these CA certificates (PEM) instead of the system store.")
@click.option("--block-private", is_flag=True,
              help="Refuse private, loopback and link-local addresses (checked on every hop and, "
                   "with a browser, every request of the page).")
@click.option("--concurrency", type=click.IntRange(min=1, max=256), default=1,
              show_default=True, help="Captures run at once (never more than one per host).")
@click.option("--per-host-delay", type=SecondsType(allow_zero=True), default=0.0,
              show_default=True,
              help="Seconds between the end of one capture and the start of the next on the "
                   "same host (like wget --wait; set it when capturing many pages of one site).")
@click.option("--browser", "force_browser", is_flag=True,
              help="Capture each page as Chromium renders it: every resource it loads, a "
                   "screenshot, a PDF and the rendered DOM (exit 3 if no browser is installed). "
                   "Default: the browser when playwright and a Chromium are found, else HTTP.")
@click.option("--http", "force_http", is_flag=True,
              help="Capture one HTTP response (and its redirects) only, without a browser.")
@click.option("--browser-path", type=click.Path(dir_okay=False, path_type=Path),
              help="The Chromium or Chrome binary (default: $PRESERVE_CHROMIUM, then "
                   "/usr/bin/chromium and the usual places).")
@click.option("--max-resources", type=click.IntRange(min=1, max=5000), default=2000,
              show_default=True,
              help="Browser: most requests of one page recorded; later ones are refused and "
                   "counted.")
@click.option("--settle", type=SecondsType(allow_zero=True), default=10.0, show_default=True,
              help="Browser: most seconds to wait for the network to go quiet, after loading "
                   "and after scrolling (all within --timeout).")
@dask_option
@json_option
@click.pass_context
def capture(
    ctx: click.Context,
    urls: Sequence[str],
    url_file: str | None,
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
    force_browser: bool,
    force_http: bool,
    browser_path: Path | None,
    max_resources: int,
    settle: float,
    dask_address: str | None,
    as_json: bool,
) -> None:
    """Capture URLS into the archive: WARC + clean text + manifest for each.

    \b
    Examples:
      preserve capture https://example.org/article
      preserve capture --from urls.txt --concurrency 4 --per-host-delay 1
      some-command | preserve capture --from - --json
      preserve capture --browser https://example.org/live-story
      preserve --root s3://bucket/evidence capture --from urls.txt --dask tcp://sched:8786
    """
    from preserve import errors
    from preserve.archive import Archive, CaptureOptions
    from preserve.batch import archive_failure, capture_many
    from preserve.capture.fetch import FetchOptions
    from preserve.cli import scale

    targets = list(urls) + (read_url_list(url_file) if url_file else [])
    if not targets:
        fail("give at least one URL, or --from FILE", EXIT_USAGE, kind="UsageError")
    browser = _browser_options(force_browser, force_http, browser_path, user_agent,
                               max_resources, settle)
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
    options = CaptureOptions(fetch=fetch_options, operator=operator, browser=browser)
    results: dict[int, dict[str, Any]] = {}  # by position in the input, printed in input order
    failures: list[Exception] = []
    kept_errors = 0
    unsigned: str | None = None
    positions: dict[str, list[int]] = {}
    for index, url in enumerate(targets):
        positions.setdefault(url, []).append(index)
    stopped: errors.PreserveError | None = None
    with errors_to_exit():
        archive = open_any(ctx, must_exist=False)
        new_archive = not archive.is_archive()
        if new_archive and remote_root(ctx) is not None:
            archive.init()
        progress = progress_bar(len(targets) > 1 and not as_json)
        task = progress.add_task("capturing", total=len(targets)) if progress else None
        with progress if progress else null_context():
            runs = capture_many(archive, targets, options, concurrency=concurrency,
                                per_host_delay=per_host_delay, note=warn) \
                if isinstance(archive, Archive) and dask_address is None \
                else scale.captures(archive, targets, options, dask_address)
            for url, outcome in runs:
                index = positions[url].pop(0)
                if isinstance(outcome, errors.PreserveError):
                    results[index] = {"url": url, "error": type(outcome).__name__,
                                      "message": str(outcome)}
                    failures.append(outcome)
                    warn(f"error: capture of {url} failed: {outcome}")
                    if archive_failure(outcome):
                        stopped = outcome
                        break
                else:
                    kept_errors += outcome.http_status >= 400 or \
                        outcome.status == "redirect-not-followed"
                    results[index] = outcome.to_json()
                    unsigned = unsigned or outcome.not_signed
                    if not as_json:
                        say(capture_line(outcome))
                    for note in outcome.notes:
                        warn(f"{outcome.capture_id}: {note}")
                if progress and task is not None:
                    progress.advance(task)
    if new_archive and len(results) > len(failures):
        warn("note: this archive has no signing key, so nothing it holds is signed; run "
             "'preserve init' to give it one")
    elif unsigned:
        warn(f"note: {unsigned}")
    _summarise(len(targets), len(results), len(failures), kept_errors)
    if stopped is not None:
        current().warnings.append(f"batch stopped: {stopped}")
    status = _exit_status(failures, kept_errors, stopped, len(targets))
    finish({"captures": [results[i] for i in sorted(results)], "requested": len(targets),
            "failed": len(failures), "http_errors": kept_errors,
            "not_attempted": len(targets) - len(results)}, status)


def _summarise(requested: int, done: int, failed: int, kept: int) -> None:
    if requested > 1:
        parts = [f"{done - failed} of {requested} captured"]
        if failed:
            parts.append(f"{failed} failed")
        if kept:
            parts.append(f"{kept} kept an HTTP error or an unfollowed redirect")
        if requested > done:
            parts.append(f"{requested - done} not attempted (the batch stopped)")
        warn(", ".join(parts))


def _exit_status(failures: Sequence[Exception], kept: int, stopped: Exception | None,
                 requested: int) -> int:
    from preserve import errors
    from preserve.cli.app import exit_status_for

    if isinstance(stopped, errors.PreserveError):
        return exit_status_for(stopped)
    if failures:
        bad_urls = all(isinstance(f, errors.InvalidURLError) for f in failures)
        return EXIT_USAGE if bad_urls and len(failures) == requested else EXIT_CAPTURE_FAILED
    return EXIT_FINDINGS if kept else EXIT_OK
