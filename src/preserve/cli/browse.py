"""Reading the archive: ``list``, ``show``, ``history`` and ``diff``."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click

from preserve.cli.app import (
    EXIT_FINDINGS,
    EXIT_OK,
    ROWS_CHUNK,
    command,
    current,
    errors_to_exit,
    finish,
    finish_rows,
    json_option,
    json_row_layout,
    open_any,
    say,
    say_blocks,
    terminal_safe,
    warn,
)

if TYPE_CHECKING:
    from preserve.archive import Archive, CaptureSummary
    from preserve.remote.archive import RemoteArchive, RemoteCapture


def _clean(text: object, limit: int = 200) -> str:
    """A value from the page or server, as one short line on a terminal."""
    return " ".join(str(text).split())[:limit]


def _clean_all(values: list[Any], limit: int) -> list[str]:
    """:func:`_clean` of each value, with a few C-level checks instead of a split and a join
    for the values it would not change (printable, no double, leading or trailing space)."""
    return [v[:limit] if type(v) is str and v.isprintable() and "  " not in v
            and v[:1] != " " and v[-1:] != " " else _clean(v, limit) for v in values]


@command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the captures in the archive, oldest first.

    Without a usable catalog (read-only media) the manifests are read, each held to its
    log leaf: one that is not the leaf's is listed as unverified (its id only), warned of,
    and the exit status is 1.

    \b
    Example:
      preserve --root /data/evidence list --json
    """
    from preserve.storage.catalog import SUMMARY_FIELDS

    with errors_to_exit():
        archive = open_any(ctx)
        if not isinstance(archive, _local_archive()):
            _remote_list(cast("RemoteArchive", archive).captures(), as_json)
        unverified: list[CaptureSummary] = []
        if not as_json:
            chunks = archive.capture_row_chunks(ROWS_CHUNK, unverified=unverified)
            first, status = _first_chunk(chunks, unverified)
            say_blocks(_summary_blocks(_marked(itertools.chain(first, chunks), unverified)))
            finish({}, status)
        # under --json the catalog renders the rows' text itself where it can
        layout = json_row_layout(SUMMARY_FIELDS)
        rows = archive.capture_row_chunks(ROWS_CHUNK, layout, unverified=unverified)
        first_rows, status = _first_chunk(rows, unverified)
        finish_rows({}, "captures", SUMMARY_FIELDS, itertools.chain(first_rows, rows), status)


def _first_chunk(chunks: Iterator[list[Any]], unverified: list[CaptureSummary],
                 ) -> tuple[list[list[Any]], int]:
    """The first chunk of ``list`` (reading it reads every manifest when there is no usable
    catalog, and fills ``unverified``), and the exit status once they are warned of."""
    first = next(chunks, None)
    return ([] if first is None else [first]), _warn_unverified(unverified)


def _marked(chunks: Iterable[list[Any]], unverified: Sequence[Any]) -> Iterator[list[Any]]:
    """``chunks`` with the URL of each unverified capture's row replaced by a mark."""
    ids = {entry.capture_id for entry in unverified}
    for chunk in chunks:
        yield [(*row[:1], UNVERIFIED_MARK, *row[2:]) if row[0] in ids else row
               for row in chunk] if ids else chunk


def _remote_list(entries: list[RemoteCapture], as_json: bool) -> NoReturn:
    """``list`` of an object-store archive: an unverified capture (its manifest is not the
    one its log leaf records) is marked, warned of, and makes the exit status 1."""
    from preserve.storage.catalog import SUMMARY_FIELDS

    status = _warn_unverified(entries)
    rows = [tuple(getattr(entry, f) for f in SUMMARY_FIELDS) for entry in entries]
    if not as_json:
        unverified = [entry for entry in entries if entry.problem is not None]
        say_blocks(_summary_blocks(_marked([rows], unverified)))
        finish({}, status)
    finish_rows({}, "captures", SUMMARY_FIELDS, [rows], status)


#: What ``list`` shows for the URL of an unverified capture.
UNVERIFIED_MARK = "[unverified: run preserve verify]"


def _warn_unverified(entries: Iterable[Any]) -> int:
    """Warn of each capture whose manifest is not the one its log leaf records (its
    ``problem``); the exit status (1 if there is one)."""
    problems = [p for p in (getattr(e, "problem", None) for e in entries) if p is not None]
    for problem in problems:
        warn(f"warning: {problem}")
        current().warnings.append(problem)
    return EXIT_FINDINGS if problems else EXIT_OK


def _summary_blocks(chunks: Iterable[Sequence[Sequence[Any]]]) -> Iterator[str]:
    # plain strings, cleaned and joined a chunk at a time: at 100,000 captures an object or
    # an echo per row costs more than the whole rest of the command
    count = 0
    for chunk in chunks:
        if not chunk:
            continue
        urls = _clean_all([r[1] for r in chunk], 2000)
        titles = _clean_all([r[6] or "" for r in chunk], 200)
        yield "\n".join([f"{r[0]}  {r[4]}  {str(r[7] or '-')[:12]:<12}  {url}  {title}"
                         for r, url, title in zip(chunk, urls, titles, strict=True)])
        count += len(chunk)
    yield f"{count} capture(s)"


def _local_archive() -> type[Archive]:
    from preserve.archive import Archive

    return Archive


@command()
@click.argument("capture_id")
@json_option
@click.pass_context
def show(ctx: click.Context, capture_id: str, as_json: bool) -> None:
    """Show one capture's provenance (CAPTURE_ID may be any unique part of its id).

    The manifest is held to the log leaf that logged it: one changed after it was logged,
    or never logged, is refused (exit 1; preserve verify says more), never shown as the
    capture. An archive without a log is shown with a warning that nothing proves it.

    \b
    Example:
      preserve show abcdefghij
    """
    with errors_to_exit():
        archive = open_any(ctx)
        manifest = archive.manifest(capture_id)
    if isinstance(archive, _local_archive()) and not archive.has_log():
        unproved = "the archive has no integrity log: nothing shows this manifest is the one " \
                   "committed (run preserve verify)"
        warn(f"warning: {unproved}")
        current().warnings.append(unproved)
    document = manifest.to_dict()
    if not as_json:
        for line in _describe(document, manifest.rendered_url):
            say(line)
    finish(document)


def _describe(m: dict[str, Any], rendered: str | None = None) -> Iterator[str]:
    """The lines of ``show`` for manifest ``m``; ``rendered``: its
    :attr:`~preserve.storage.manifest.Manifest.rendered_url`."""
    extraction = m.get("extraction") or {}
    yield f"capture   {m['capture_id']}  ({m['status']})"
    yield f"url       {m['requested_url']}"
    if m["final_url"] != m["requested_url"]:
        yield f"final     {m['final_url']}"
    yield f"time      {m['started']} .. {m['ended']}"
    http = m["http"]
    yield f"http      {http['status']} {http['reason']}  {http.get('content_type') or ''}"
    for hop in m["redirects"][:-1]:
        yield f"redirect  {hop['status']} {hop['url']} -> {hop['location']}"
    conn = m["connection"]
    claimed = "  (claimed by the imported file)" if m.get("import") else ""
    yield f"peer      {conn['remote_ip'] or '(not stated)'} port {conn['remote_port']}{claimed}"
    tls = conn.get("tls")
    if tls:
        yield f"tls       {tls['version']} {tls['cipher']} verified={tls['verified']}"
        cert = tls.get("certificate")
        if cert:
            yield f"cert      sha256 {cert['sha256_fingerprint']}"
            yield f"          subject {cert['subject']}"
            yield f"          issuer  {cert['issuer']}"
            yield f"          valid   {cert['not_before']} .. {cert['not_after']}"
    yield f"title     {_clean(extraction.get('title') or '')}"
    if extraction.get("byline"):
        yield f"byline    {_clean(extraction['byline'])}"
    text = m.get("text")
    yield (f"text      blake3:{text['blake3']} ({text['size']} bytes)  {text['path']}" if text
           else f"text      none: {extraction.get('reason')}")
    warc = m["warc"]
    yield f"warc      {warc['path']} ({warc['size']} bytes, {len(warc['records'])} records)"
    yield f"          sha256 {warc['sha256']}"
    yield f"          blake3 {warc['blake3']}"
    source = extraction.get("source")
    if source:
        yield f"text from {source['kind']} record {source['record']}"
    if extraction.get("method") or extraction.get("page_type"):
        yield (f"page      {_clean(extraction.get('page_type') or '?')} page, text by the "
               f"'{_clean(extraction.get('method') or 'none')}' step")
    yield from _describe_browser(m, rendered)
    yield from _describe_import(m)
    extractor = m["extractor"]
    yield f"extractor {extractor['name']} {extractor['version']}"
    yield f"software  preserve {m['software'].get('preserve')} on {m['software'].get('python')}"
    yield f"operator  {_clean(m['operator'])} at {_clean(m['host'])}"
    browser = m.get("browser")
    shown = set(browser.get("notes") or []) if isinstance(browser, dict) else set()
    for note in m.get("notes") or []:
        if note not in shown:  # a browser capture's notes are listed with its requests
            yield f"note      {_clean(note, 500)}"
    for cut in m.get("truncated") or []:
        yield (f"truncated {cut['field']}: {cut['length']} characters, kept the first part "
               f"(sha256 of the whole {cut['sha256']})")


def _describe_import(m: dict[str, Any]) -> Iterator[str]:
    """Where an imported page came from: what preserve received, and what the file claims."""
    imported = m.get("import")
    if not imported:
        return
    source = imported["source"]
    inside = f" (inside {source['kind'].upper()} member {source['member']})" \
        if source["member"] else ""
    yield f"import    from {_clean(source['name'])}{inside}, {source['size']} bytes"
    yield f"          sha256 {source['sha256']}"
    yield f"          blake3 {source['blake3']}"
    yield f"received  {imported['received']} (what preserve vouches for)"
    yield (f"claimed   WARC-Date {_clean(imported['original_date'])}; framing "
           f"{imported['framing']}")
    info = imported.get("warcinfo")
    if info:
        yield (f"warcinfo  software {_clean(info['software'] or '-')}, operator "
               f"{_clean(info['operator'] or '-')} (record {info['record']})")


def _size(n: int) -> str:
    return f"{n} B" if n < 10_000 else f"{n / 1000:.0f} kB" if n < 10_000_000 else \
        f"{n / 1e6:.0f} MB"


def _describe_browser(m: dict[str, Any], rendered: str | None) -> Iterator[str]:
    """The browser, the screenshot/PDF/DOM objects and every resource of a browser capture."""
    browser = m.get("browser")
    if not browser:
        return
    viewport = browser["viewport"]
    yield (f"browser   {browser['product']} ({browser['executable']}), viewport "
           f"{viewport['width']}x{viewport['height']}")
    yield f"          user agent {browser['user_agent']}"
    if rendered is not None:  # the snapshot's address, when the page went elsewhere
        yield f"          rendered {rendered} (screenshot, PDF, DOM; not the final URL)"
    timings = browser["timings_ms"]
    yield "          timings " + ", ".join(f"{k} {v} ms" for k, v in timings.items())
    yield (f"          interception CA sha256 {browser['interception_ca']['sha256_fingerprint']}"
           f" (record {browser['interception_ca']['record']})")
    for artifact in m.get("artifacts") or []:
        yield (f"{artifact['kind']:<10} {artifact['media_type']}  {_size(artifact['size'])}  "
               f"sha256 {artifact['sha256']}")
        yield f"          blake3 {artifact['blake3']}  record {artifact['record']}"
    resources = browser["resources"]
    truncated = sum(1 for r in resources if r["truncated"])
    yield (f"resources {len(resources)} recorded over {len(browser['connections'])} "
           f"connection(s), {len(browser['failed'])} failed, {truncated} cut short"
           + (f", {browser['refused_over_cap']} refused over the cap of "
              f"{browser['max_exchanges']}" if browser["refused_over_cap"] else ""))
    for r in resources:
        cut = f"  [truncated: {r['truncated']}]" if r["truncated"] else ""
        kind = r["resource_type"] or "-"
        yield (f"  {r['status']} {r['method']:<4} {kind:<10} {_size(r['body_size']):>7}  "
               f"{r['url']}{cut}")
    for failed in browser["failed"]:
        yield f"  failed  {failed['method']} {failed['url']}: {failed['message']}"
    for note in browser["notes"]:
        yield f"note      {_clean(note, 500)}"


# --- captures over time --------------------------------------------------------------------------


@command()
@click.argument("url")
@json_option
@click.pass_context
def history(ctx: click.Context, url: str, as_json: bool) -> None:
    """List every capture of URL (requested or final), oldest first.

    URL matches however it, or a capture's URL, is spelled (the same in an imported file
    from another tool): scheme and host in any case, a host in Unicode or IDNA, the scheme's
    default port given or not, a bare host with or without its '/', percent-escapes in
    either case or of characters that need none, no fragment or credentials. 'www.', a
    trailing '/' after a path and the query's order still count.

    Without a usable catalog (read-only media) the manifests are read, each held to its
    log leaf: one that is not the leaf's is listed too, marked unverified (its URL cannot
    be told; nothing it says is shown), warned of, and the exit status is 1.

    \b
    Example:
      preserve history https://example.org/article
    """
    with errors_to_exit():
        entries = open_any(ctx).history(url)
    unverified = [e for e in entries if getattr(e, "problem", None) is not None]
    status = _warn_unverified(unverified)
    if not as_json:
        for entry in entries:
            text = (entry.text_blake3 or "-")[:12]
            mark = "  [unverified: may or may not be of this URL]" if entry in unverified \
                else ""
            say(f"{entry.capture_id}  {entry.started}  {entry.http_status}  {text}{mark}")
        say(f"{len(entries) - len(unverified)} capture(s) of {url}"
            + (f", {len(unverified)} unverified" if unverified else ""))
    finish({"url": url, "captures": [entry.to_json() for entry in entries]}, status)


@command()
@click.argument("old_id")
@click.argument("new_id")
@json_option
@click.pass_context
def diff(ctx: click.Context, old_id: str, new_id: str, as_json: bool) -> None:
    """Show how the clean text changed from capture OLD_ID to NEW_ID. Each side of the
    diff names the address its text was taken from (the rendered page's after a
    client-side navigation); the summary says whether the final payload changed too.

    \b
    Example:
      preserve diff 20261121T1633 20261201T0900
    """
    from preserve import compare

    with errors_to_exit():
        result = compare.diff(open_any(ctx), old_id, new_id)
    if not as_json:
        click.echo(terminal_safe(result.unified_diff), nl=False)
        say(result.summary)
    finish(result.to_json())
