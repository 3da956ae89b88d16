"""The command line's object-store and Dask paths: ``--root s3://bucket/prefix`` and
``--dask tcp://scheduler:8786`` (see docs/scaling.md).

The commands keep their options, output and exit statuses; these helpers only choose where
the work runs: :class:`~preserve.remote.RemoteArchive` for an ``s3://`` root, the jobs of
:mod:`preserve.distributed` with ``--dask``. Nothing here imports fsspec or Dask unless one
of them is asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import click

from preserve.cli.app import EXIT_CANNOT_RUN, EXIT_FINDINGS, EXIT_OK, fail, finish, say, warn

if TYPE_CHECKING:
    from preserve.archive import Archive, CaptureOptions, CaptureResult
    from preserve.errors import PreserveError
    from preserve.remote.archive import RemoteArchive

DASK_HELP = ("Run on the Dask scheduler at ADDRESS (tcp://host:8786), or 'local' for a "
             "LocalCluster of this machine's cores; needs preserve[scale].")


def dask_option(command: Any) -> Any:
    return click.option("--dask", "dask_address", metavar="ADDRESS", envvar="PRESERVE_DASK",
                        help=DASK_HELP)(command)


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    from preserve.distributed import connect

    client = connect(None if address == "local" else address)
    try:
        yield client
    finally:
        client.close()


def captures(archive: Archive | RemoteArchive, targets: Iterable[str],
             options: CaptureOptions, dask_address: str | None) -> Iterator[
                 tuple[str, CaptureResult | PreserveError]]:
    """``(url, result or error)`` for each URL, in input order (Dask or, for a remote root
    without Dask, one after the other)."""
    from preserve import errors

    if dask_address is not None:
        from preserve.distributed import capture_many_dask

        with dask_client(dask_address) as client:
            yield from capture_many_dask(archive, targets, options, client)
        return
    remote: RemoteArchive = archive  # type: ignore[assignment]
    committed = 0
    for url in targets:
        try:
            result = remote.capture(url, options, checkpoint=False)
            committed += 1
            yield url, result
        except errors.PreserveError as exc:
            yield url, exc
    if committed:
        with contextlib.suppress(errors.PreserveError):
            remote.checkpoint(whole_archive=False)


def remote_init(archive: RemoteArchive, key_name: str | None) -> None:
    verifier = archive.init(key_name=key_name)
    say(f"verifier key {verifier}")
    finish({"verifier_key": verifier, "root": archive.url})


def remote_checkpoint(archive: RemoteArchive) -> None:
    signed = archive.checkpoint()
    if signed is None:
        fail("the archive's signing key is not available (see --key, 'preserve init')",
             EXIT_CANNOT_RUN, kind="SigningKeyError")
    say(str(signed.path))
    finish({"path": str(signed.path), "size": signed.size, "proved_from": signed.base,
            "proved_leaves": signed.proved_leaves})


def remote_repair(archive: RemoteArchive, dry_run: bool) -> None:
    actions = archive.repair(dry_run=dry_run)
    refused = [a for a in actions if a.startswith("not signed: ")]
    kept = [a for a in actions if a.startswith("kept ")]
    for action in actions:
        if action in refused:
            warn(f"repair: {action}")
        else:
            say(("would " if dry_run and action not in kept else "") + action)
    say(f"{len(actions) - len(refused) - len(kept)} actions")
    finish({"actions": actions, "dry_run": dry_run}, EXIT_FINDINGS if refused else EXIT_OK)


__all__ = ["captures", "dask_client", "dask_option", "remote_checkpoint", "remote_init",
           "remote_repair"]
