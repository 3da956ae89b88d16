"""The integrity log: ``init``, ``keygen``, ``checkpoint``, ``log``, ``prove``, ``check-proof``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from preserve.cli.app import (
    EXIT_CANNOT_RUN,
    EXIT_FINDINGS,
    EXIT_OK,
    errors_to_exit,
    fail,
    main,
    open_archive,
    print_json,
)

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
    with errors_to_exit():
        info = open_archive(ctx).init(key_name=key_name)
    if as_json:
        print_json({"private_key": str(info.private_path), "verifier_key": info.verifier_key,
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
    from preserve import log  # noqa: PLC0415 - start-up time

    with errors_to_exit():
        path, verifier = log.generate_key(name, out)
    click.echo(f"private key {path}")
    click.echo(f"verifier key {verifier.to_text()}")


@main.command()
@click.pass_context
def checkpoint(ctx: click.Context) -> None:
    """Sign a checkpoint of the integrity log now (needs the archive's key)."""
    with errors_to_exit():
        path = open_archive(ctx).checkpoint()
    if path is None:
        fail("the archive's signing key is not available (see --key, 'preserve init')",
              EXIT_CANNOT_RUN)
    click.echo(str(path))


@main.command("log")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def log_(ctx: click.Context, as_json: bool) -> None:
    """Show the integrity log: every capture and every audit, in commit order."""
    from preserve import integrity  # noqa: PLC0415 - start-up time

    with errors_to_exit():
        rows = list(integrity.history(ctx.obj["root"]))
    if as_json:
        print_json({"entries": rows})
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
    from preserve import log  # noqa: PLC0415 - start-up time

    with errors_to_exit():
        archive = open_archive(ctx)
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
    from preserve import log  # noqa: PLC0415 - start-up time

    if trusted_key and Path(trusted_key).is_file():
        trusted_key = Path(trusted_key).read_text(encoding="utf-8").strip()
    try:
        document = json.loads(bundle.read_bytes())
    except (OSError, ValueError) as exc:
        fail(f"cannot read proof bundle {bundle}: {exc}", EXIT_FINDINGS)
    problems = log.check_proof(document, trusted_key)
    if as_json:
        print_json({"ok": not problems, "problems": problems})
    else:
        for problem in problems:
            click.echo(f"FAIL {problem}")
        if not problems:
            click.echo("proof holds: the manifest is in the signed log")
    sys.exit(EXIT_FINDINGS if problems else EXIT_OK)

