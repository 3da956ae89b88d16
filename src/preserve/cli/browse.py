"""Reading the archive: ``list``, ``show``, ``history`` and ``diff``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

from preserve.cli.app import (
    errors_to_exit,
    main,
    open_archive,
    print_json,
    stdout,
)

# --- list / show -----------------------------------------------------------------------------


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the captures in the archive, oldest first."""
    with errors_to_exit():
        entries = list(open_archive(ctx).captures())
    if as_json:
        print_json({"captures": [entry.to_json() for entry in entries]})
        return
    for entry in entries:
        text = (entry.text_blake3 or "-")[:12]
        click.echo(f"{entry.capture_id}  {entry.http_status}  {text:<12}  {entry.requested_url}"
                   f"  {entry.title or ''}")
    stdout.print(f"{len(entries)} capture(s)", markup=False)


@main.command()
@click.argument("capture_id")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_context
def show(ctx: click.Context, capture_id: str, as_json: bool) -> None:
    """Show one capture's provenance (CAPTURE_ID may be a unique prefix)."""
    with errors_to_exit():
        archive = open_archive(ctx)
        manifest = archive.manifest(capture_id)
    document = manifest.to_dict()
    if as_json:
        print_json(document)
        return
    for line in _describe(document):
        stdout.print(line, markup=False)


def _describe(m: dict[str, Any]) -> Iterator[str]:
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
    yield f"peer      {conn['remote_ip']} port {conn['remote_port']}"
    tls = conn.get("tls")
    if tls:
        yield f"tls       {tls['version']} {tls['cipher']} verified={tls['verified']}"
        cert = tls.get("certificate")
        if cert:
            yield f"cert      sha256 {cert['sha256_fingerprint']}"
            yield f"          subject {cert['subject']}"
            yield f"          issuer  {cert['issuer']}"
            yield f"          valid   {cert['not_before']} .. {cert['not_after']}"
    yield f"title     {extraction.get('title') or ''}"
    if extraction.get("byline"):
        yield f"byline    {extraction['byline']}"
    text = m.get("text")
    yield (f"text      blake3:{text['blake3']} ({text['size']} bytes)  {text['path']}" if text
           else f"text      none: {extraction.get('reason')}")
    warc = m["warc"]
    yield f"warc      {warc['path']} ({warc['size']} bytes, {len(warc['records'])} records)"
    yield f"          sha256 {warc['sha256']}"
    yield f"          blake3 {warc['blake3']}"
    extractor = m["extractor"]
    yield f"extractor {extractor['name']} {extractor['version']}"
    yield f"software  preserve {m['software'].get('preserve')} on {m['software'].get('python')}"
    yield f"operator  {m['operator']} at {m['host']}"


# --- captures over time --------------------------------------------------------------------------


@main.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def history(ctx: click.Context, url: str, as_json: bool) -> None:
    """List every capture of URL (requested or final), oldest first."""
    with errors_to_exit():
        from preserve import compare  # noqa: PLC0415 - start-up time

        entries = compare.history(open_archive(ctx), url)
    if as_json:
        print_json({"url": url, "captures": [entry.to_json() for entry in entries]})
        return
    for entry in entries:
        text = (entry.text_blake3 or "-")[:12]
        click.echo(f"{entry.capture_id}  {entry.started}  {entry.http_status}  {text}")
    click.echo(f"{len(entries)} capture(s) of {url}")


@main.command()
@click.argument("old_id")
@click.argument("new_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def diff(ctx: click.Context, old_id: str, new_id: str, as_json: bool) -> None:
    """Show how the clean text changed from capture OLD_ID to NEW_ID."""
    with errors_to_exit():
        from preserve import compare  # noqa: PLC0415 - start-up time

        result = compare.diff(open_archive(ctx), old_id, new_id)
    if as_json:
        print_json(result.to_json())
        return
    click.echo(result.unified_diff, nl=False)
    click.echo(result.summary)


