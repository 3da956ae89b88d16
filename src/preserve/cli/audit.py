"""``preserve verify``, ``repair``, ``adopt`` and ``reset-head``: audit the archive, clear
debris of interrupted captures, vouch for a capture explicitly, forget a known head."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from preserve.cli.app import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    SecondsType,
    command,
    errors_to_exit,
    fail,
    finish,
    json_option,
    open_any,
    open_archive,
    progress_bar,
    read_key_option,
    remote_root,
    say,
    warn,
    with_progress,
)
from preserve.cli.scale import dask_option

if TYPE_CHECKING:
    from preserve.audit.findings import Finding, Report

ANCHOR_AGE_ENV = "PRESERVE_ANCHOR_MAX_AGE"
DEFAULT_ANCHOR_DAYS = 30.0


@command()
@click.option("--deep", is_flag=True,
              help="Also re-read every WARC record and re-extract the text.")
@click.option("--checkpoint", "checkpoints", multiple=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A signed checkpoint kept outside the archive (an anchor): the log must "
                   "extend it, or verify fails. Repeat for several.")
@click.option("--trusted-key", metavar="KEY",
              help="The archive's public key as kept elsewhere (key text or a file holding "
                   "it): key.pub must be it, or verify fails.")
@click.option("--tsa-roots", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="PEM file of trusted TSA root certificates for checkpoint timestamps.")
@click.option("--anchor-max-age", metavar="DAYS", type=SecondsType(allow_zero=True, unit="days",
                                                  maximum=36_500),
              envvar=ANCHOR_AGE_ENV, default=DEFAULT_ANCHOR_DAYS, show_default=True,
              help="Warn (W307) unless an off-site checkpoint at most this many days old was "
                   "given; 0 turns the warning off.")
@click.option("--no-record", is_flag=True, help="Do not append this audit to the log.")
@click.option("--commit-wait", metavar="SECONDS",
              type=SecondsType(allow_zero=True, maximum=24 * 3600),
              help="s3:// roots: how long, in all, to wait for commits other processes have "
                   "in progress before reporting what they may explain (default: the "
                   "lease's lifetime, 120).")
@dask_option
@json_option
@click.pass_context
def verify(ctx: click.Context, deep: bool, checkpoints: tuple[Path, ...],
           trusted_key: str | None, tsa_roots: Path | None, anchor_max_age: float,
           no_record: bool, commit_wait: float | None, dask_address: str | None,
           as_json: bool) -> None:
    """Audit the whole archive; exit 0 when intact, 1 on integrity findings.

    Every file is re-hashed and compared with its manifest, every manifest with its log
    leaf; the log must extend its own signed checkpoints, every --checkpoint given, and the
    head you last verified (kept outside the archive). The audit is recorded in the log; only
    an audit without errors is followed by a signed checkpoint. What it keeps of every
    capture goes to temporary files in $TMPDIR (a few hundred bytes a capture; removed when
    it ends), so its memory does not grow with the archive.

    \b
    Examples:
      preserve verify
      preserve verify --deep --checkpoint /media/usb/checkpoint.txt --trusted-key key.pub
    """
    key_text = read_key_option(trusted_key)
    max_age = timedelta(days=anchor_max_age) if anchor_max_age > 0 else None
    from preserve.integrity import AuditRecord

    with errors_to_exit():
        if commit_wait is not None and remote_root(ctx) is None:
            fail("--commit-wait is for s3:// roots (a local verify takes the archive lock "
                 "instead)", EXIT_USAGE, kind="UsageError")
        archive = open_any(ctx)
        options: dict[str, Any] = {"checkpoints": checkpoints, "trusted_key": key_text,
                                   "tsa_roots": tsa_roots,
                   "record": not no_record, "anchor_max_age": max_age}
        if commit_wait is not None:
            options["commit_wait"] = commit_wait
        if dask_address is not None:
            from preserve.cli.scale import dask_client
            from preserve.distributed import verify_dask

            with dask_client(dask_address) as client:
                report = verify_dask(archive, client, deep=deep, **options)
        else:
            progress = progress_bar(not as_json)
            report = with_progress(progress, "verifying", lambda cb: archive.verify(
                deep=deep, progress=cb, **options))
    audit = archive.last_audit or AuditRecord()
    if not as_json:
        for finding in report.findings:
            say(finding_line(finding))
        say(summary(report))
        if not no_record and not audit.recorded:
            why = audit.not_recorded or "read-only archive or no log"
            warn(f"note: audit not recorded ({why})")
        elif audit.not_signed:
            warn(f"note: audit recorded as {audit.outcome}; {audit.not_signed}")
    finish({**report.to_json(), "recorded": audit.recorded, "outcome": audit.outcome,
            "signed": audit.signed is not None, "not_signed": audit.not_signed,
            "not_recorded": audit.not_recorded},
           report.exit_status)


def finding_line(finding: Finding) -> str:
    """One finding as verify prints it: code, severity, message, path."""
    where = f"  {finding.path}" if finding.path else ""
    return (f"{finding.code.code} {finding.severity.value:<7} "
            f"{' '.join(finding.message.split())}{where}")


def summary(report: Report) -> str:
    stats = report.to_json()["stats"]
    state = "intact" if report.ok else "NOT INTACT"
    records = f"{stats['records_checked']} records, " if report.deep else ""
    return (f"{state}: {stats['manifests_checked']} manifests, "
            f"{stats['warc_files_checked']} WARC files, {records}"
            f"{stats['text_objects_checked']} text objects, "
            f"{len(report.errors)} errors, {len(report.warnings)} warnings")


@command()
@click.option("--dry-run", is_flag=True, help="Show what would be done; change nothing.")
@json_option
@click.pass_context
def repair(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Clear debris of interrupted captures (never committed data); exit 1 if some remains.

    A committed manifest missing from the log is logged only when a commit record signed by
    the archive key names it; anything else is reported and kept (see 'preserve adopt').
    A checkpoint is signed last, and only if verify's check of the whole archive then finds
    no error; otherwise the errors are listed, nothing is signed, and the exit status is 1.

    \b
    Example:
      preserve repair --dry-run && preserve repair
    """
    from preserve.audit import repair as repair_mod

    with errors_to_exit():
        if remote_root(ctx) is not None:
            from preserve.cli.scale import remote_repair
            from preserve.remote.archive import RemoteArchive

            remote = open_any(ctx)
            assert isinstance(remote, RemoteArchive)
            remote_repair(remote, dry_run)
        archive = open_archive(ctx)
        report = repair_mod.repair(archive.root, dry_run=dry_run, key=archive.key_path,
                                   heads=archive.heads)
    if not as_json:
        verb = "would be " if dry_run else ""
        for action in report.actions:
            where = f" -> {action.destination}" if action.destination else ""
            say(f"{verb}{action.kind}  {action.path}{where}  ({action.reason})")
        for kept in report.kept:
            say(f"kept  {kept.path}  ({kept.reason})")
        for finding in report.remaining:  # what the final check found: nothing was signed
            say(finding_line(finding))
        for problem in report.problems:
            warn(f"repair: {problem}")
        say(f"{len(report.actions)} actions, {len(report.kept)} kept, "
            f"{len(report.problems)} problems")
    finish(report.to_json(), EXIT_OK if report.ok else EXIT_FINDINGS)


@command()
@click.argument("capture_ids", nargs=-1, required=True)
@click.option("--reason", required=True,
              help="Why you vouch for these captures (recorded in the log).")
@click.option("--operator", help="Who adopts them (default: $PRESERVE_OPERATOR or login).")
@json_option
@click.pass_context
def adopt(ctx: click.Context, capture_ids: tuple[str, ...], reason: str,
          operator: str | None, as_json: bool) -> None:
    """Vouch for captures preserve did not commit itself (planted, imported by hand, or made
    without the key): each must verify clean; it is logged as ADOPTED, visibly different from
    a capture, with your reason, and the log is signed. Needs the signing key.

    \b
    Example:
      preserve adopt 20261121T163324Z-abcdefghij --reason "captured on the field laptop"
    """
    with errors_to_exit():
        adopted = open_archive(ctx).adopt(capture_ids, reason=reason, operator=operator)
    if not as_json:
        for capture_id in adopted:
            say(f"adopted {capture_id}")
    finish({"adopted": adopted, "reason": reason})


@command("reset-head")
@click.option("--yes", is_flag=True, help="Really forget it.")
@json_option
@click.pass_context
def reset_head(ctx: click.Context, yes: bool, as_json: bool) -> None:
    """Forget the tree head you last verified or signed for this archive (kept outside it).

    Verify and capture refuse a log that does not extend that head (a rollback). After you
    restored an older copy on purpose, reset it; the next verify remembers the log as it is.

    \b
    Example:
      preserve --root /restored/archive reset-head --yes
    """
    if not yes:
        fail("this forgets what protects you against a rolled-back archive; add --yes",
             EXIT_USAGE, kind="UsageError")
    with errors_to_exit():
        head = open_archive(ctx).reset_head()
    result: dict[str, Any] = {"forgotten": None}
    if head is None:
        if not as_json:
            say("no known head for this archive")
    else:
        result["forgotten"] = {"identity": head.identity, "size": head.size,
                               "root": head.root.hex(), "updated": head.updated}
        if not as_json:
            say(f"forgot {head.identity}: size {head.size}, last seen {head.updated}")
    finish(result)


__all__ = ["ANCHOR_AGE_ENV", "adopt", "finding_line", "repair", "reset_head", "summary",
           "verify"]
