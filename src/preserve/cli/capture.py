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

import codecs
import collections
import contextlib
import dataclasses
import io
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

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
    finish_streamed,
    json_item,
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
    from preserve.errors import PreserveError

#: Largest URL list file read (standard input is not bounded: it is read as it comes).
MAX_URL_LIST = 2**30
#: Characters of a URL list line kept: a longer line is cut there and the rest skipped. What
#: is kept is still longer than any URL can be (65,536 characters), so it is reported as an
#: invalid URL like any other line, and memory stays bounded whatever the file holds.
MAX_URL_LINE = 65_536 + 1


def url_lines(source: str) -> Iterator[str]:
    """URLs from a file (or ``-``: standard input), one per line (LF, CRLF or CR), read one
    line at a time; blank lines and ``#`` comments skipped, a UTF-8 byte-order mark ignored.
    A file that is not UTF-8 ends the command (exit 2)."""
    with _open_url_list(source) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline=None)
        try:
            while line := _read_line(text, source):
                if len(line) >= MAX_URL_LINE and not line.endswith("\n"):
                    _skip_line(text, source)
                    line = line.strip()  # cut, yet too long to parse as a URL
                    parts = [line] if not line.startswith("#") else []
                else:
                    parts = [part.strip() for part in line.splitlines()]
                yield from (part for part in parts if part and not part.startswith("#"))
        finally:
            text.detach()  # the stream is the caller's (standard input stays open)


def _read_line(text: io.TextIOWrapper, source: str, limit: int = MAX_URL_LINE) -> str:
    try:
        return text.readline(limit)
    except UnicodeDecodeError:
        fail(f"URL list {source} is not UTF-8 text", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot read URL list {source}: {exc.strerror or exc}", EXIT_USAGE)


def _skip_line(text: io.TextIOWrapper, source: str) -> None:
    """Read to the end of the current line, keeping nothing."""
    while (part := _read_line(text, source, 1 << 16)) and not part.endswith("\n"):
        pass


def _open_url_list(source: str) -> contextlib.AbstractContextManager[BinaryIO]:
    """Standard input (left open), or the regular file ``source`` if it is not larger than
    :data:`MAX_URL_LIST`; else the command ends (exit 2)."""
    if source == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    from preserve.errors import StorageError
    from preserve.safe_io import open_binary

    try:
        stream = open_binary(Path(source), error=StorageError)
        size = os.fstat(stream.fileno()).st_size
    except OSError as exc:
        fail(f"cannot read URL list {source}: {exc.strerror or exc}", EXIT_USAGE)
    except StorageError as exc:  # not a regular file
        fail(f"cannot read URL list {source}: {exc}", EXIT_USAGE)
    if size > MAX_URL_LIST:
        stream.close()
        fail(f"URL list {source} is larger than {MAX_URL_LIST} bytes", EXIT_USAGE)
    return stream


def check_url_list(source: str) -> int:
    """Read the URL list file ``source`` once, fast: refuse it (exit 2) unless it is UTF-8;
    return about how many URLs it holds (its lines, for progress)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    last = ""
    with _open_url_list(source) as stream:
        while True:
            try:
                block = stream.read(1 << 20)
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError:
                fail(f"URL list {source} is not UTF-8 text", EXIT_USAGE)
            except OSError as exc:
                fail(f"cannot read URL list {source}: {exc.strerror or exc}", EXIT_USAGE)
            if not block:
                return lines + bool(last and last not in "\r\n")
            lines += text.count("\n") + text.count("\r") - text.count("\r\n")
            last = text[-1:] or last


class Targets:
    """The URLs of a batch (arguments, then the ``--from`` list) in input order, read lazily;
    knows the input position of each URL handed out and not reported yet."""

    def __init__(self, urls: Sequence[str], url_file: str | None) -> None:
        #: about how many URLs there are, for progress (a file is checked and its lines
        #: counted first); None for standard input, which cannot be read twice
        self.estimate: int | None = len(urls)
        if url_file is not None:
            self.estimate = None if url_file == "-" else len(urls) + check_url_list(url_file)
        self.read = 0
        self._source = itertools.chain(urls, url_lines(url_file) if url_file else ())
        self._peeked = list(itertools.islice(self._source, 1))
        self._positions: dict[str, collections.deque[int]] = {}

    def __bool__(self) -> bool:
        return bool(self._peeked) or self.read > 0

    def __iter__(self) -> Iterator[str]:
        for url in itertools.chain(self._peeked, self._source):
            self._peeked = []
            self._positions.setdefault(url, collections.deque()).append(self.read)
            self.read += 1
            yield url

    def position(self, url: str) -> int:
        """The input position of ``url`` (the earliest handed out and not reported yet)."""
        waiting = self._positions[url]
        index = waiting.popleft()
        if not waiting:
            del self._positions[url]
        return index

    def count(self) -> int:
        """How many URLs there are: those handed out, and any left (read now, not parsed)."""
        return self.read + len(self._peeked) + sum(1 for _url in self._source)


def capture_line(result: CaptureResult) -> str:
    text = f"blake3:{result.text_blake3}" if result.text_blake3 else f"(no text: {result.reason})"
    title = " ".join((result.title or "(untitled)").split())[:200]
    status = "" if result.http_status < 400 else f"  [HTTP {result.http_status}]"
    if result.status == "redirect-not-followed":
        status += "  [redirect not followed]"
    mode = f"  [browser, {result.resources} resources]" if result.mode == "browser" else ""
    return f"{result.capture_id}  {text}  {title}{status}{mode}"


def _browser_options(force_browser: bool, force_http: bool, browser_path: Path | None,
                     user_agent: str | None, max_resources: int, max_total: int,
                     settle: float) -> BrowserOptions | None:
    """The browser to capture with, or None for HTTP (see the module docstring)."""
    if force_browser and force_http:
        fail("--browser and --http exclude each other", EXIT_USAGE, kind="UsageError")
    if force_http:
        return None
    from preserve.capture.browser_setup import browser_problem

    problem = browser_problem(browser_path)
    if problem is not None:
        if force_browser:
            fail(problem, EXIT_CANNOT_RUN, kind="BrowserUnavailableError")
        warn(f"note: {problem}. Capturing over HTTP only (--http silences this note).")
        return None
    from preserve.capture.browser import BrowserOptions

    # the CLI's capture workers are its own: their Playwright driver is kept between captures
    return BrowserOptions(executable=browser_path, user_agent=user_agent,
                          max_exchanges=max_resources, max_total_size=max_total,
                          settle=settle, keep_driver=True)


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
              help="Largest response body accepted (bytes, or 50M, 2G, 512Mi …; counts the "
                   "bodies of every redirect hop together; browser: per resource, kept cut "
                   "short beyond it).")
@click.option("--max-redirects", type=click.IntRange(min=0, max=100), default=10,
              show_default=True,
              help="Most redirects followed. A longer chain, a loop, or a next hop that "
                   "fails (dead host, refused address, time limit) is kept as far as it "
                   "arrived: status redirect-not-followed, exit 1.")
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
@click.option("--max-total", type=SIZE, default="2Gi", show_default=True,
              help="Browser: most bytes of all the page's resources together (and its request "
                   "bodies); later responses are kept cut short, and the notes say so.")
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
    max_total: int,
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

    targets = Targets(urls, url_file)
    if not targets:
        fail("give at least one URL, or --from FILE", EXIT_USAGE, kind="UsageError")
    browser = _browser_options(force_browser, force_http, browser_path, user_agent,
                               max_resources, max_total, settle)
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
    #: --json: results spooled in input order (else none is kept)
    results = _InputOrder()
    tally = _Tally()
    unsigned: str | None = None
    stopped: errors.PreserveError | None = None
    with errors_to_exit():
        archive = open_any(ctx, must_exist=False)
        new_archive = not archive.is_archive()
        if new_archive and remote_root(ctx) is not None:
            archive.init()
        progress = progress_bar((targets.estimate or 2) > 1 and not as_json)
        task = progress.add_task("capturing", total=targets.estimate) if progress else None
        with progress if progress else null_context():
            runs = capture_many(archive, targets, options, concurrency=concurrency,
                                per_host_delay=per_host_delay, note=warn) \
                if isinstance(archive, Archive) and dask_address is None \
                else scale.captures(archive, targets, options, dask_address)
            for url, outcome in runs:
                index = targets.position(url)
                tally.add(outcome)
                if isinstance(outcome, errors.PreserveError):
                    if as_json:
                        results.add(index, {"url": url, "error": type(outcome).__name__,
                                            "message": str(outcome)})
                    warn(f"error: capture of {url} failed: {outcome}")
                    if archive_failure(outcome):
                        stopped = outcome
                        break
                else:
                    if as_json:
                        results.add(index, outcome.to_json())
                    unsigned = unsigned or outcome.not_signed
                    if not as_json:
                        say(capture_line(outcome))
                    for note in outcome.notes:
                        warn(f"{outcome.capture_id}: {note}")
                if progress and task is not None:
                    progress.advance(task)
    if new_archive and tally.done > tally.failed:
        warn("note: this archive has no signing key, so nothing it holds is signed; run "
             "'preserve init' to give it one")
    elif unsigned:
        warn(f"note: {unsigned}")
    requested = targets.count()
    _summarise(requested, tally.done, tally.failed, tally.kept)
    if stopped is not None:
        current().warnings.append(f"batch stopped: {stopped}")
    status = _exit_status(tally, stopped, requested)
    finish_streamed({"requested": requested, "failed": tally.failed, "http_errors": tally.kept,
                     "not_attempted": requested - tally.done}, "captures", results.parts(),
                    results.items, status)


class _InputOrder:
    """``--json`` results of a batch in input order, their JSON text spooled to a temporary
    file as soon as every earlier one is in (captures finish out of order): only those that
    finished ahead of an earlier one are held, never the whole batch's."""

    def __init__(self) -> None:
        self._ahead: dict[int, dict[str, Any]] = {}
        self._next = 0
        self._spool: IO[str] | None = None
        self._count = 0

    def add(self, index: int, item: dict[str, Any]) -> None:
        self._ahead[index] = item
        while self._next in self._ahead:
            self._write(self._ahead.pop(self._next))
            self._next += 1

    def _write(self, item: dict[str, Any]) -> None:
        if self._spool is None:
            # unlinked at once; read back and closed by parts()
            self._spool = tempfile.TemporaryFile(  # noqa: SIM115
                "w+", encoding="utf-8", prefix="preserve-")
        self._spool.write((",\n" if self._count else "") + json_item(item))
        self._count += 1

    def parts(self) -> Iterator[str]:
        """The list's JSON text at depth 2, in parts (results never reported, after a batch
        that stopped early, leave gaps: the later ones follow in order)."""
        for index in sorted(self._ahead):
            self._write(self._ahead.pop(index))
        if self._spool is None:
            yield "[]"
            return
        self._spool.seek(0)
        yield "[\n"
        while block := self._spool.read(1 << 20):
            yield block
        yield "\n    ]"
        self._spool.close()

    def items(self) -> list[Any]:
        """Every result, read back (for :func:`finish_streamed`)."""
        found = json.loads("".join(self.parts()))
        assert isinstance(found, list)
        return found


@dataclasses.dataclass
class _Tally:
    """What a batch's outcomes add up to (all the exit status and summary need)."""

    done: int = 0
    failed: int = 0
    bad_urls: int = 0  # failures that are invalid URLs
    kept: int = 0  # captures that kept an HTTP error or an unfollowed redirect

    def add(self, outcome: CaptureResult | PreserveError) -> None:
        from preserve import errors

        self.done += 1
        if isinstance(outcome, errors.PreserveError):
            self.failed += 1
            self.bad_urls += isinstance(outcome, errors.InvalidURLError)
        else:
            self.kept += outcome.http_status >= 400 or outcome.status == "redirect-not-followed"


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


def _exit_status(tally: _Tally, stopped: Exception | None, requested: int) -> int:
    from preserve import errors
    from preserve.cli.app import exit_status_for

    if isinstance(stopped, errors.PreserveError):
        return exit_status_for(stopped)
    if tally.failed:
        only_bad_urls = tally.bad_urls == tally.failed == requested
        return EXIT_USAGE if only_bad_urls else EXIT_CAPTURE_FAILED
    return EXIT_FINDINGS if tally.kept else EXIT_OK
