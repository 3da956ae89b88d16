"""Bulk capture, verify and re-extraction on a Dask distributed cluster.

Workers do the network, the extraction, the hashing and the WARC building; the process that
called (the *client*) is the one committer: it commits results in input order, one group at
a time, through the same commit protocol as a local capture (:func:`preserve.commit.commit_group`
for a directory root on a shared file system, :meth:`preserve.remote.RemoteArchive.commit` for
an ``s3://`` root), so the signed history has the same shape as a local run's.

A worker that dies mid-task loses nothing: Dask reruns the task elsewhere (a new capture id),
and what the dead worker left (a spool directory, a staging object) was never committed —
verify reports it as debris, repair removes it. Capture *failures* (DNS, timeouts) are
results, not task errors, so they are not retried.

Dask is imported only here (``pip install 'preserve[scale]'``); see docs/scaling.md.
"""

from preserve.distributed.jobs import (
    DaskCaptureResult,
    capture_many_dask,
    connect,
    reextract_many_dask,
    verify_dask,
)

__all__ = [
    "DaskCaptureResult",
    "capture_many_dask",
    "connect",
    "reextract_many_dask",
    "verify_dask",
]
