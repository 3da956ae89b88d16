"""The integrity log: ``init``, ``keygen``, ``checkpoint``, ``log``, ``prove``, ``check-proof``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from preserve.cli.app import (
    EXIT_CANNOT_RUN,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    OutputPath,
    command,
    errors_to_exit,
    fail,
    finish,
    json_option,
    open_any,
    open_archive,
    read_key_option,
    remote_root,
    say,
)

#: Largest proof bundle read (one manifest, one leaf, a proof of log2(n) hashes, a note).
MAX_BUNDLE = 32 * 2**20


@command()
@click.option("--key-name", help="Name of a new key (default: <host>/<archive directory>-<id>).")
@json_option
@click.pass_context
def init(ctx: click.Context, key_name: str | None, as_json: bool) -> None:
    """Create an archive with its integrity log and a signing key.

    The private key is written outside the archive (--key PATH, or the config dir); its
    public half goes to manifests/log/key.pub. With --key naming an existing key file, that
    key is used. Safe to run again: an existing key is kept. A log that already holds
    captures but was never signed is checked and signed as adopted at initialisation.

    \b
    Example:
      preserve --root /data/evidence init
    """
    with errors_to_exit():
        if remote_root(ctx) is not None:
            from preserve.cli.scale import remote_init
            from preserve.remote.archive import RemoteArchive

            remote = open_any(ctx, must_exist=False)
            assert isinstance(remote, RemoteArchive)
            remote_init(remote, key_name)
        info = open_archive(ctx, must_exist=False).init(key_name=key_name)
    if not as_json:
        say(f"{'created' if info.created else 'kept'} signing key {info.private_path}")
        say(f"verifier key {info.verifier_key}")
        say("keep a copy of the verifier key, and of a checkpoint now and then, outside the "
            "archive: verify --trusted-key and --checkpoint check against them")
    finish({"private_key": str(info.private_path), "verifier_key": info.verifier_key,
            "created": info.created})


@command()
@click.argument("name")
@click.option("-o", "--out", type=OutputPath(dir_okay=False, path_type=Path),
              help="Where to write the private key (default: the config dir).")
@json_option
def keygen(name: str, out: Path | None, as_json: bool) -> None:
    """Make a new Ed25519 signing key NAME (for 'preserve --key FILE init').

    \b
    Example:
      preserve keygen newsroom.example/evidence -o ~/keys/evidence.key
    """
    from preserve import log

    with errors_to_exit():
        path, verifier = log.generate_key(name, out)
    if not as_json:
        say(f"private key {path}")
        say(f"verifier key {verifier.to_text()}")
    finish({"private_key": str(path), "verifier_key": verifier.to_text()})


@command()
@json_option
@click.pass_context
def checkpoint(ctx: click.Context, as_json: bool) -> None:
    """Audit the whole archive, prove the integrity log and sign a checkpoint of it now
    (needs the archive's key).

    Nothing is signed unless verify's check of the whole archive (every file re-hashed,
    the log audited) finds no error, the log extends every head known to be good, and
    every new manifest leaf is backed by its manifest and a signed commit record; then it
    exits 1 with the reason.

    \b
    Example:
      preserve checkpoint && cp manifests/log/checkpoint /media/usb/checkpoint.txt
    """
    with errors_to_exit():
        signed = open_any(ctx).checkpoint()
    if signed is None:
        fail("the archive's signing key is not available (see --key, 'preserve init')",
             EXIT_CANNOT_RUN, kind="SigningKeyError")
    if not as_json:
        say(str(signed.path))
    finish({"path": str(signed.path), "size": signed.size, "proved_from": signed.base,
            "proved_leaves": signed.proved_leaves})


@command("log")
@json_option
@click.pass_context
def log_(ctx: click.Context, as_json: bool) -> None:
    """Show the integrity log: every capture, import, adoption and audit, in commit order.
    Each audit says whether the key holder signed it or it is an unsigned claim.

    \b
    Example:
      preserve log --json
    """
    from preserve import integrity
    from preserve.archive import Archive

    with errors_to_exit():
        archive = open_any(ctx)
        rows = list(integrity.history(archive.root) if isinstance(archive, Archive)
                    else archive.history_rows())
    if not as_json:
        for row in rows:
            say(f"{row['index']:>6}  {row['committed']}  {row['summary']}")
        say(f"{len(rows)} entries")
    finish({"entries": rows})


@command()
@click.argument("capture_id")
@click.option("-o", "--out", type=OutputPath(dir_okay=False, path_type=Path),
              required=True,
              help="Where to write the proof bundle (JSON).")
@json_option
@click.pass_context
def prove(ctx: click.Context, capture_id: str, out: Path, as_json: bool) -> None:
    """Export CAPTURE_ID's proof bundle for a third party (verifiable offline).

    \b
    Example:
      preserve prove abcdefghij -o proof.json && preserve check-proof proof.json
    """
    from preserve import log
    from preserve.archive import Archive
    from preserve.errors import StorageError
    from preserve.safe_io import write_atomic

    with errors_to_exit():
        archive = open_any(ctx)
        full_id = archive.manifest(capture_id).capture_id
        bundle = log.make_proof(archive.root, full_id) if isinstance(archive, Archive) \
            else archive.make_proof(full_id)
        try:  # never replaced: another capture's proof, or the user's file (as export does)
            write_atomic(out, (json.dumps(bundle, indent=2, sort_keys=True) + "\n").encode(),
                         exclusive=True)
        except FileExistsError as exc:
            raise StorageError(f"{out} already exists; not replacing it") from exc
    if not as_json:
        say(f"wrote proof of {full_id} to {out}")
    finish({"capture_id": full_id, "path": str(out)})


@command("check-proof")
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--trusted-key", metavar="KEY",
              help="The archive's public key as obtained elsewhere (key text or a file).")
@json_option
def check_proof(bundle: Path, trusted_key: str | None, as_json: bool) -> None:
    """Check a proof bundle offline; exit 0 when it holds, 1 when it does not.

    \b
    Example:
      preserve check-proof proof.json --trusted-key archive-key.pub
    """
    from preserve import log
    from preserve.errors import ProofError
    from preserve.safe_io import loads_strict, read_regular

    key_text = read_key_option(trusted_key)
    try:
        document = loads_strict(read_regular(bundle, MAX_BUNDLE, what="proof bundle",
                                             error=ProofError),
                                max_bytes=MAX_BUNDLE, max_depth=16, what="proof bundle",
                                error=ProofError)
    except ProofError as exc:
        fail(f"cannot read proof bundle: {exc}", EXIT_USAGE, kind="ProofError")
    problems = log.check_proof(document, key_text)
    if not as_json:
        for problem in problems:
            say(f"FAIL {problem}")
        if not problems:
            say("proof holds: the manifest is in the signed log")
    finish({"holds": not problems, "problems": problems},
           EXIT_FINDINGS if problems else EXIT_OK)
