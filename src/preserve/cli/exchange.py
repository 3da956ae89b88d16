"""Handing captures over: ``export`` (WACZ, BagIt), ``check-export`` and ``report``; and
taking them in: ``import`` (WARC and WACZ files other tools wrote)."""

from __future__ import annotations

from pathlib import Path

import click

from preserve.cli.app import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    OutputPath,
    command,
    current,
    errors_to_exit,
    fail,
    finish,
    json_option,
    open_any,
    open_archive,
    read_key_option,
    say,
    warn,
)

#: The WACZ signing key file (see preserve.exchange.signing.KEY_ENV).
WACZ_KEY_ENV = "PRESERVE_WACZ_KEY"


def _key_text(value: str | None) -> str | None:
    """A key given as text or as the path of a file holding it (bounded, UTF-8)."""
    if value and Path(value).is_file():
        return read_key_option(value)
    return value


@command("export")
@click.argument("capture_ids", nargs=-1)
@click.option("--all", "all_captures", is_flag=True, help="Export every capture of the archive.")
@click.option("--from", "from_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Read capture ids from a file (one per line, # comments).")
@click.option("--wacz", type=OutputPath(dir_okay=False, path_type=Path),
              help="Write a WACZ 1.1.1 file here.")
@click.option("--bagit", type=OutputPath(file_okay=False, path_type=Path),
              help="Write a BagIt 1.0 bag (a new directory) here.")
@click.option("--sign", is_flag=True, help="WACZ: sign the package (ECDSA, WACZ signing spec).")
@click.option("--wacz-key", type=OutputPath(dir_okay=False, path_type=Path),
              envvar=WACZ_KEY_ENV,
              help="WACZ: the ECDSA signing key (created if missing; default "
                   "<config>/keys/<archive key name>.wacz.pem).")
@click.option("--title", help="WACZ: the package title.")
@click.option("--source-organization", envvar="PRESERVE_SOURCE_ORGANIZATION",
              help="BagIt: Source-Organization for bag-info.txt.")
@click.option("--contact-name", envvar="PRESERVE_CONTACT_NAME",
              help="BagIt: Contact-Name for bag-info.txt.")
@click.option("--contact-email", envvar="PRESERVE_CONTACT_EMAIL",
              help="BagIt: Contact-Email for bag-info.txt.")
@json_option
@click.pass_context
def export(ctx: click.Context, capture_ids: tuple[str, ...], all_captures: bool,
           from_file: Path | None, wacz: Path | None, bagit: Path | None, sign: bool,
           wacz_key: Path | None, title: str | None,
           source_organization: str | None, contact_name: str | None,
           contact_email: str | None, as_json: bool) -> None:
    """Export captures as a WACZ file or a BagIt bag, with manifests, text and proofs.

    CAPTURE_IDS may be any unique part of an id. The archive (a directory or an s3:// root)
    is only read; the output is written under a temporary name and appears only when
    complete; an existing output is never replaced. With --sign, the global --tsa URL (or
    $PRESERVE_TSA) stamps the signature (RFC 3161).

    \b
    Examples:
      preserve export 20261121T1707 --wacz case-42.wacz --sign
      preserve export --from ids.txt --bagit case-42/ --source-organization "Example NGO"
      preserve export --all --wacz everything.wacz
    """
    from preserve import exchange
    from preserve.exchange import signing

    if (wacz is None) == (bagit is None):
        fail("give exactly one of --wacz FILE or --bagit DIR", EXIT_USAGE, kind="UsageError")
    # a key given on the command line (not through $PRESERVE_WACZ_KEY) is a request to sign
    key_given = ctx.get_parameter_source("wacz_key") is click.core.ParameterSource.COMMANDLINE
    if bagit is not None and (sign or key_given):
        fail("--sign and --wacz-key apply to --wacz only", EXIT_USAGE, kind="UsageError")
    if key_given and not sign:
        fail("--wacz-key is the key to sign with: add --sign", EXIT_USAGE, kind="UsageError")
    ids = list(capture_ids)
    with errors_to_exit():
        if from_file is not None:
            ids += exchange.read_id_file(from_file)
        if all_captures == bool(ids):
            fail("name the captures (IDs or --from FILE) or give --all, not both or neither",
                 EXIT_USAGE, kind="UsageError")
        archive = open_any(ctx)
        if wacz is not None:
            source = exchange.source_for(archive)
            signer = (signing.load_or_create(wacz_key, archive.root, key_name=source.key_name())
                      if sign else None)
            result = exchange.export_wacz(archive, ids, wacz, all_captures=all_captures,
                                          signer=signer,
                                          tsa_url=ctx.find_root().obj.get("tsa") if sign else None,
                                          title=title)
        else:
            assert bagit is not None
            info = exchange.BagInfo.gather(source_organization=source_organization,
                                           contact_name=contact_name,
                                           contact_email=contact_email)
            result = exchange.export_bagit(archive, ids, bagit, all_captures=all_captures,
                                           info=info)
    for warning in result.warnings:
        warn(f"warning: {warning}")
    if not as_json:
        kind = "partial export" if result.partial else "export"
        say(f"wrote {result.path} ({result.format}, {kind}): {len(result.captures)} "
            f"capture(s), {result.files} files, {result.bytes:,} bytes, "
            f"{result.seconds:.1f} s")
        if result.signature:
            verb = "created" if result.signature["key_created"] else "used"
            say(f"signed with {result.signature['key_path']} ({verb}); public key "
                f"{result.signature['public_key']}")
            if result.signature["timestamped"]:
                say("signature timestamped (RFC 3161)")
    finish(result.to_json())


@command("check-export")
@click.argument("package", type=click.Path(exists=True, path_type=Path))
@click.option("--trusted-key", metavar="VERIFIER_KEY",
              help="The archive's log key as obtained elsewhere (text or a file path): every "
                   "capture must then carry a proof that verifies with it.")
@click.option("--wacz-public-key", metavar="KEY",
              help="WACZ: the signer's public key as obtained elsewhere (base64, or a file).")
@click.option("--tsa-roots", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="PEM file of trusted TSA roots for RFC 3161 timestamps.")
@json_option
def check_export(package: Path, trusted_key: str | None, wacz_public_key: str | None,
                 tsa_roots: Path | None, as_json: bool) -> None:
    """Check an exported WACZ file or bag offline; exit 0 when it holds, 1 when not.

    A WACZ holds only if what replay tools show is what was proved: no WARC file or other
    member but those of its proven captures, and an index and pages that are exactly what
    preserve derives from them. A WACZ that preserve did not write does not hold.

    \b
    Examples:
      preserve check-export case-42.wacz --trusted-key archive-key.pub
      preserve check-export case-42/
    """
    from preserve import exchange

    with errors_to_exit():
        result = exchange.check_package(package, trusted_key=_key_text(trusted_key),
                                        wacz_public_key=_key_text(wacz_public_key),
                                        tsa_roots=tsa_roots)
    if not as_json:
        for problem in result.problems:
            say(f"FAIL {problem}")
        for note in result.notes:
            say(f"note {note}")
        state = "holds" if result.ok else "does NOT hold"
        partial = ", partial export" if result.partial else ""
        say(f"{result.kind} {package} {state}: {len(result.captures)} capture(s)"
            f"{partial}, {len(result.problems)} problem(s)")
    finish(result.to_json(), EXIT_OK if result.ok else EXIT_FINDINGS)


@command("report")
@click.argument("capture_id")
@click.option("-o", "--out", type=OutputPath(dir_okay=False, path_type=Path),
              required=True,
              help="Where to write the report: .html, or .pdf (printed with Chromium).")
@click.option("--trusted-key", metavar="VERIFIER_KEY",
              help="The archive's log key as obtained elsewhere (text or a file path).")
@click.option("--tsa-roots", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="PEM file of trusted TSA roots to verify the checkpoint's timestamp.")
@click.option("--chromium", metavar="PATH", help="The Chromium or Chrome to print PDF with.")
@json_option
@click.pass_context
def report(ctx: click.Context, capture_id: str, out: Path, trusted_key: str | None,
           tsa_roots: Path | None, chromium: str | None, as_json: bool) -> None:
    """Write a report of one capture for people: self-contained HTML, or PDF.

    It shows the screenshot (browser captures), URLs, redirects, time, peer, TLS
    certificate, software, operator, clean text, file hashes, the log proof, the RFC 3161
    status and the commands to check it all without trusting preserve.

    \b
    Examples:
      preserve report 20261121T1707 -o report.html
      preserve report 20261121T1707 -o report.pdf --trusted-key archive-key.pub
    """
    from preserve import exchange

    with errors_to_exit():
        result = exchange.write_report(open_any(ctx), capture_id, out,
                                       trusted_key=_key_text(trusted_key),
                                       tsa_roots=tsa_roots, chromium=chromium)
    if not as_json:
        say(f"wrote {result.path} ({result.format}) for capture {result.capture_id}")
    finish(result.to_json())


@command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--url", "urls", multiple=True, metavar="URL",
              help="Also import the response whose WARC-Target-URI is exactly URL, whatever it "
                   "holds (not only HTML pages); repeatable.")
@click.option("--operator", help="Who is importing (default: $PRESERVE_OPERATOR or the login "
                                 "name); recorded in the manifest.")
@json_option
@click.pass_context
def import_(ctx: click.Context, files: tuple[Path, ...], urls: tuple[str, ...],
            operator: str | None, as_json: bool) -> None:
    """Import WARC files (gzip or plain) and WACZ files that other tools wrote.

    Every record is checked first (block and payload digests, truncated records and gzip
    members, record ids used twice, a WACZ's datapackage.json hashes); a file that fails is
    not imported at all.
    Each HTML page response (HTTP 2xx), and each response named with --url, becomes a
    capture: the WARC file is stored once, byte for byte, and each page gets a manifest
    naming its records, clean text, and provenance that says it is an import (the source
    file, its warcinfo, the original WARC-Date, and when preserve received it). The log
    records an 'import' entry: preserve vouches for when it received the bytes, not for what
    the file claims. Importing the same file again adds nothing (already-imported).

    Exit status: 0 every file imported or already imported; 1 a file failed its own
    integrity checks; 2 a file is not a WARC or WACZ file, holds no page, or is beyond
    preserve's bounds; 3 the archive cannot be used (this stops the command). With several
    files the worst counts (3, then 1, then 2); each file is all or nothing, and the other
    files go on.

    \b
    Examples:
      preserve import crawl.warc.gz
      preserve import site.wacz --url https://example.org/data.json --json
    """
    from preserve import errors
    from preserve.cli.app import EXIT_CANNOT_RUN, exit_status_for
    from preserve.cli.capture import capture_line
    from preserve.importing import ImportOptions, import_file

    options = ImportOptions(urls=urls, operator=operator)
    results: list[dict[str, object]] = []
    statuses: set[int] = set()
    imported = 0
    with errors_to_exit():
        archive = open_archive(ctx, must_exist=False)
        for path in files:
            try:
                result = import_file(archive, path, options)
            except errors.ImportInputError as exc:
                status = exit_status_for(exc)
                statuses.add(status)
                warn(f"error: {path}: not imported: {exc}")
                results.append({"source": str(path), "status": "failed",
                                "error": {"type": type(exc).__name__, "message": str(exc)},
                                "exit_status": status})
                continue
            except errors.PreserveError as exc:
                statuses.add(exit_status_for(exc))
                warn(f"error: {path}: not imported: {exc}")
                results.append({"source": str(path), "status": "failed",
                                "error": {"type": type(exc).__name__, "message": str(exc)},
                                "exit_status": exit_status_for(exc)})
                if exit_status_for(exc) == EXIT_CANNOT_RUN:
                    current().warnings.append(f"stopped: {exc}")
                    break
                continue
            if as_json:  # every capture's entry: not held without --json
                results.append(result.to_json())
            imported += len(result.captures)
            for url in result.urls_not_found:
                warn(f"warning: {path}: no response for --url {url}")
            if result.not_signed:
                warn(f"note: {result.not_signed}")
            if as_json:
                continue
            if result.status == "already-imported":
                say(f"{path}: already imported as {_ids(result.already)}")
                continue
            say(f"{path}: imported {len(result.captures)} page(s) of {result.records} records "
                f"into {', '.join(result.stored)}"
                + (f" ({len(result.already)} imported before)" if result.already else ""))
            for capture in result.captures:
                say("  " + capture_line(capture))
    status = next((s for s in (EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_USAGE) if s in statuses),
                  EXIT_OK)
    finish({"files": results, "imported": imported,
            "failed": sum(1 for r in results if r.get("status") == "failed")}, status)


def _ids(capture_ids: list[str], shown: int = 10) -> str:
    """Capture ids for a line of text: the first ``shown`` of them, and how many more."""
    more = len(capture_ids) - shown
    return ", ".join(capture_ids[:shown]) + (f" and {more} more" if more > 0 else "")

