"""``preserve verify`` and ``preserve repair``: audit the archive and clear debris."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from preserve.cli.app import (
    EXIT_FINDINGS,
    EXIT_OK,
    errors_to_exit,
    main,
    open_archive,
    print_json,
    progress_bar,
    stderr,
    stdout,
    with_progress,
)

if TYPE_CHECKING:
    from preserve.audit.findings import Report

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
    with errors_to_exit():
        archive = open_archive(ctx)
        progress = progress_bar(not as_json)
        report = with_progress(progress, "verifying", lambda cb: archive.verify(
            deep=deep, progress=cb, checkpoints=checkpoints, trusted_key=trusted_key,
            tsa_roots=tsa_roots, record=not no_record))
    if as_json:
        print_json({**report.to_json(), "recorded": archive.last_audit_recorded})
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
    from preserve.audit import repair as repair_mod  # noqa: PLC0415 - start-up time

    with errors_to_exit():
        report = repair_mod.repair(ctx.obj["root"], dry_run=dry_run, log_unlogged=log_unlogged,
                                   key=ctx.obj["key"])
    if as_json:
        print_json(report.to_json())
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


