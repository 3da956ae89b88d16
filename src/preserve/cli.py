"""The ``preserve`` command line: parse options, call :class:`preserve.Archive`, print, exit.

No archive logic lives here. Human output goes to stdout (errors and progress to stderr);
``--json`` prints exactly one JSON object on stdout. Exit statuses are documented in
``docs/cli.md`` and in :data:`EXIT_STATUSES`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from preserve import compare, errors, integrity, log
from preserve._version import __version__
from preserve.archive import Archive, CaptureOptions, CaptureResult
from preserve.audit import repair as repair_mod
from preserve.audit.findings import Report
from preserve.batch import capture_many
from preserve.capture.fetch import FetchOptions

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

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)

T = TypeVar("T")


def _fail(message: str, status: int) -> NoReturn:
    stderr.print(f"preserve: error: {message}", markup=False)
    sys.exit(status)


def _exit_status_for(exc: errors.PreserveError) -> int:
    if isinstance(exc, errors.InvalidURLError):
        return EXIT_USAGE
    if isinstance(exc, errors.CaptureError):
        return EXIT_CAPTURE_FAILED
    return EXIT_CANNOT_RUN


@contextmanager
def _errors_to_exit() -> Iterator[None]:
    """Turn a library error into one line on stderr and its exit status."""
    try:
        yield
    except errors.PreserveError as exc:
        _fail(str(exc), _exit_status_for(exc))
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_CANNOT_RUN)


def _print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True))


def _archive(ctx: click.Context) -> Archive:
    return Archive(ctx.obj["root"], key=ctx.obj["key"], tsa_url=ctx.obj["tsa"])


def _progress(enabled: bool) -> Progress | None:
    if not enabled or not stderr.is_terminal:
        return None
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


# --- capture ---------------------------------------------------------------------------------


def _read_url_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        _fail(f"cannot read URL list {path}: {exc.strerror}", EXIT_USAGE)
    except UnicodeDecodeError:
        _fail(f"URL list {path} is not UTF-8 text", EXIT_USAGE)
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
    with _errors_to_exit():
        archive = _archive(ctx)
        progress = _progress(len(targets) > 1 and not as_json)
        task = progress.add_task("capturing", total=len(targets)) if progress else None
        with progress if progress else _null():
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
        _print_json({"captures": [results[i] for i in sorted(results)],
                     "failed": len(failures), "http_errors": http_errors})
    if failures:
        only_bad_urls = all(isinstance(f, errors.InvalidURLError) for f in failures)
        sys.exit(EXIT_USAGE if only_bad_urls and len(failures) == len(targets)
                 else EXIT_CAPTURE_FAILED)
    sys.exit(EXIT_FINDINGS if http_errors else EXIT_OK)


@contextmanager
def _null() -> Iterator[None]:
    yield


# --- verify ----------------------------------------------------------------------------------


@main.command()
@click.option("--deep", is_flag=True,
              help="Also re-read every WARC record and re-extract the text.")
@click.option("--checkpoint", "checkpoints", multiple=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A signed checkpoint kept outside the archive; the log must extend it.")
@click.option("--trusted-key", metavar="VERIFIER_KEY",
              help="The archive's public key as kept elsewhere (text or a file path).")
@click.option("--tsa-roots", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="PEM file of trusted TSA root certificates for checkpoint timestamps.")
@click.option("--no-record", is_flag=True, help="Do not append this audit to the log.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def verify(ctx: click.Context, deep: bool, checkpoints: tuple[Path, ...],
           trusted_key: str | None, tsa_roots: Path | None, no_record: bool,
           as_json: bool) -> None:
    """Audit the whole archive; exit 0 when intact, 1 on integrity findings."""
    if trusted_key and Path(trusted_key).is_file():
        trusted_key = Path(trusted_key).read_text(encoding="utf-8").strip()
    with _errors_to_exit():
        archive = _archive(ctx)
        progress = _progress(not as_json)
        report = _with_progress(progress, "verifying", lambda cb: archive.verify(
            deep=deep, progress=cb, checkpoints=checkpoints, trusted_key=trusted_key,
            tsa_roots=tsa_roots, record=not no_record))
    if as_json:
        _print_json({**report.to_json(), "recorded": archive.last_audit_recorded})
    else:
        for finding in report.findings:
            where = f"  {finding.path}" if finding.path else ""
            stdout.print(f"{finding.code.code} {finding.severity.value:<7} "
                         f"{finding.message}{where}", markup=False)
        stdout.print(_summary(report), markup=False)
        if not no_record and not archive.last_audit_recorded:
            stderr.print("preserve: note: audit not recorded (read-only archive or no log)",
                         markup=False)
    sys.exit(report.exit_status)


@main.command()
@click.option("--dry-run", is_flag=True, help="Show what would be done; change nothing.")
@click.option("--log-unlogged", is_flag=True,
              help="Also append manifests missing from the integrity log when no interrupted "
                   "capture explains them (only if you know they are genuine).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def repair(ctx: click.Context, dry_run: bool, log_unlogged: bool, as_json: bool) -> None:
    """Clear debris of interrupted captures (never committed data); exit 1 if some remains."""
    with _errors_to_exit():
        report = repair_mod.repair(ctx.obj["root"], dry_run=dry_run, log_unlogged=log_unlogged,
                                   key=ctx.obj["key"])
    if as_json:
        _print_json(report.to_json())
    else:
        verb = "would be " if dry_run else ""
        for action in report.actions:
            where = f" -> {action.destination}" if action.destination else ""
            stdout.print(f"{verb}{action.kind}  {action.path}{where}  ({action.reason})",
                         markup=False)
        for kept in report.kept:
            stdout.print(f"kept  {kept.path}  ({kept.reason})", markup=False)
        for problem in report.problems:
            stderr.print(f"preserve: repair: {problem}", markup=False)
        stdout.print(f"{len(report.actions)} actions, {len(report.kept)} kept, "
                     f"{len(report.problems)} problems", markup=False)
    sys.exit(EXIT_OK if report.ok else EXIT_FINDINGS)


def _summary(report: Report) -> str:
    stats = report.to_json()["stats"]
    state = "intact" if report.ok else "NOT INTACT"
    records = f"{stats['records_checked']} records, " if report.deep else ""
    return (f"{state}: {stats['manifests_checked']} manifests, "
            f"{stats['warc_files_checked']} WARC files, {records}"
            f"{stats['text_objects_checked']} text objects, "
            f"{len(report.errors)} errors, {len(report.warnings)} warnings")


def _with_progress(
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


# --- list / show -----------------------------------------------------------------------------


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the captures in the archive, oldest first."""
    with _errors_to_exit():
        entries = list(_archive(ctx).captures())
    if as_json:
        _print_json({"captures": [entry.to_json() for entry in entries]})
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
    with _errors_to_exit():
        archive = _archive(ctx)
        manifest = archive.manifest(capture_id)
    document = manifest.to_dict()
    if as_json:
        _print_json(document)
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
    with _errors_to_exit():
        entries = compare.history(_archive(ctx), url)
    if as_json:
        _print_json({"url": url, "captures": [entry.to_json() for entry in entries]})
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
    with _errors_to_exit():
        result = compare.diff(_archive(ctx), old_id, new_id)
    if as_json:
        _print_json(result.to_json())
        return
    click.echo(result.unified_diff, nl=False)
    click.echo(result.summary)


# --- integrity log ---------------------------------------------------------------------------


@main.command()
@click.option("--key-name", help="Name of a new key (default: <host>/<archive directory>).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def init(ctx: click.Context, key_name: str | None, as_json: bool) -> None:
    """Create an archive with its integrity log and a signing key.

    The private key is written outside the archive (--key PATH, or the config dir); its
    public half goes to manifests/log/key.pub. With --key naming an existing key file, that
    key is used. Safe to run again: an existing key is kept.
    """
    with _errors_to_exit():
        info = _archive(ctx).init(key_name=key_name)
    if as_json:
        _print_json({"private_key": str(info.private_path), "verifier_key": info.verifier_key,
                     "created": info.created})
        return
    click.echo(f"{'created' if info.created else 'kept'} signing key {info.private_path}")
    click.echo(f"verifier key {info.verifier_key}")


@main.command()
@click.argument("name")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the private key (default: the config dir).")
def keygen(name: str, out: Path | None) -> None:
    """Make a new Ed25519 signing key NAME (for 'preserve --key FILE init')."""
    with _errors_to_exit():
        path, verifier = log.generate_key(name, out)
    click.echo(f"private key {path}")
    click.echo(f"verifier key {verifier.to_text()}")


@main.command()
@click.pass_context
def checkpoint(ctx: click.Context) -> None:
    """Sign a checkpoint of the integrity log now (needs the archive's key)."""
    with _errors_to_exit():
        path = _archive(ctx).checkpoint()
    if path is None:
        _fail("the archive's signing key is not available (see --key, 'preserve init')",
              EXIT_CANNOT_RUN)
    click.echo(str(path))


@main.command("log")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def log_(ctx: click.Context, as_json: bool) -> None:
    """Show the integrity log: every capture and every audit, in commit order."""
    with _errors_to_exit():
        rows = list(integrity.history(ctx.obj["root"]))
    if as_json:
        _print_json({"entries": rows})
        return
    for row in rows:
        click.echo(f"{row['index']:>6}  {row['committed']}  {row['summary']}")
    click.echo(f"{len(rows)} entries")


@main.command()
@click.argument("capture_id")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the proof bundle (JSON).")
@click.pass_context
def prove(ctx: click.Context, capture_id: str, out: Path) -> None:
    """Export CAPTURE_ID's proof bundle for a third party (verifiable offline)."""
    with _errors_to_exit():
        archive = _archive(ctx)
        full_id = archive.manifest(capture_id).capture_id
        bundle = log.make_proof(archive.root, full_id)
        out.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    click.echo(f"wrote proof of {full_id} to {out}")


@main.command("check-proof")
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--trusted-key", metavar="VERIFIER_KEY",
              help="The archive's public key as obtained elsewhere (text or a file path).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check_proof(bundle: Path, trusted_key: str | None, as_json: bool) -> None:
    """Check a proof bundle offline; exit 0 when it holds, 1 when it does not."""
    if trusted_key and Path(trusted_key).is_file():
        trusted_key = Path(trusted_key).read_text(encoding="utf-8").strip()
    try:
        document = json.loads(bundle.read_bytes())
    except (OSError, ValueError) as exc:
        _fail(f"cannot read proof bundle {bundle}: {exc}", EXIT_FINDINGS)
    problems = log.check_proof(document, trusted_key)
    if as_json:
        _print_json({"ok": not problems, "problems": problems})
    else:
        for problem in problems:
            click.echo(f"FAIL {problem}")
        if not problems:
            click.echo("proof holds: the manifest is in the signed log")
    sys.exit(EXIT_FINDINGS if problems else EXIT_OK)
