"""The peak resident memory of a command, for the tests that hold memory bounded.

A child's ``ru_maxrss`` from ``wait4`` is no use when the child is started by pytest: on
Linux a process's peak RSS starts from the memory of the process it was forked (or vforked)
from and survives ``exec``, so every child of a pytest process of 140 MiB reports at least
140 MiB, and a test comparing two such peaks compares nothing. :func:`peak_rss` therefore
starts the command from a small launcher interpreter (its ~10 MiB is the floor of what is
reported), as the benchmarks do. :func:`processes` lists the processes of this machine with
their ``/proc/<pid>/stat`` fields (Linux), for the tests that look for processes left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: argv: the file to write the peak (KiB) to, then the command. Exits with the command's status.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


@dataclass(frozen=True)
class Measured:
    """What the command printed, its exit status and its own peak RSS in KiB."""

    peak_kib: int
    returncode: int
    stdout: str
    stderr: str


def peak_rss(args: list[str], *, env: dict[str, str] | None = None,
             timeout: float = 600) -> Measured:
    """Run ``args`` (stdout and stderr captured as text) and measure its peak RSS."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "peak"
        done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(out), *args],
                              env=env if env is not None else dict(os.environ),
                              capture_output=True, text=True, timeout=timeout, check=False)
        peak = int(out.read_text()) if out.exists() else 0
    return Measured(peak, done.returncode, done.stdout, done.stderr)


def processes() -> Iterator[tuple[int, list[bytes]]]:
    """``(pid, fields)`` of every process, ``fields`` those of ``/proc/<pid>/stat`` after the
    command name: state, parent pid, process group, ... (Linux; none elsewhere)."""
    if not os.path.isdir("/proc"):
        return
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            yield int(name), stat[stat.rfind(b")") + 2:].split()
