#!/usr/bin/env python3
"""Start-up time: ``preserve --help``, ``preserve capture --help`` and the time from starting
``preserve capture --http URL`` to its first byte on the network, next to ``warcio --help``,
``wget --version`` and wget's own time to first byte.

Usage:
    python benchmarks/bench_startup.py [--rounds 15] [--before PRESERVE] [--workdir DIR]
                                       [--keep] [--json OUT]

Every command runs ``--rounds`` times, the commands interleaved round by round (so a burst
of load from other work on the machine hits all of them alike); the table gives the median
and the fastest run, and each median as a ratio to ``warcio --help``'s.

Time to first byte: the harness listens on 127.0.0.1 itself, starts the capture process and
notes when the first byte of the HTTP request arrives (the clock starts just before the
process is spawned); it then answers with a small HTML page, and the whole command's wall
time is given too. The archive is initialised with a signing key (as users' are), so the
whole capture includes the integrity log and a signed checkpoint. Also reported: how many
modules ``import preserve`` and ``import preserve.cli`` load. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_server import PRESERVE, WARCIO, print_table, run_benchmark

PAGE = (b"<!doctype html><html><head><title>Start-up</title></head><body><article>"
        + b"<p>A paragraph of text long enough to be kept by the extractor, twice over.</p>" * 5
        + b"</article></body></html>")


class FirstByteServer:
    """A one-connection-at-a-time HTTP server that records when each request's first
    byte arrives (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.first_bytes: list[float] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                self.first_bytes.append(time.perf_counter())
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        break
                    data += more
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                             b"Content-Length: " + str(len(PAGE)).encode() +
                             b"\r\nConnection: close\r\n\r\n" + PAGE)

    def close(self) -> None:
        self.sock.close()


def timed(cmd: list[str], server: FirstByteServer | None = None) -> tuple[float, float | None]:
    """(wall seconds, seconds to the first request byte or None)."""
    before = len(server.first_bytes) if server else 0
    started = time.perf_counter()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    first = None
    if server is not None and len(server.first_bytes) > before:
        first = server.first_bytes[before] - started
    return wall, first


def module_count(statement: str) -> int:
    out = subprocess.run([sys.executable, "-c", f"{statement}; import sys; "
                          "print(len(sys.modules))"], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root, key = work / "archive", work / "archive.key"
    subprocess.run([PRESERVE, "--root", str(root), "--key", str(key), "init"], check=True,
                   capture_output=True)
    server = FirstByteServer()
    url = f"http://127.0.0.1:{server.port}/page.html"
    # --http: the one-request capture the start-up target is about (with a Chromium
    # installed, plain `capture URL` starts a browser, whose start-up dominates)
    capture = [PRESERVE, "--root", str(root), "--key", str(key), "capture", "--http", url]
    wget = ["wget", "-q", "-O", os.devnull, url]
    commands: dict[str, tuple[list[str], bool]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], False),
        "warcio --help": ([WARCIO, "--help"], False),
        "wget --version": (["wget", "--version"], False),
        "preserve --version": ([PRESERVE, "--version"], False),
        "preserve --help": ([PRESERVE, "--help"], False),
        "preserve capture --help": ([PRESERVE, "capture", "--help"], False),
        "preserve capture --http URL": (capture, True),
        "wget URL": (wget, True),
    }
    if args.before:
        old_capture = [args.before, *capture[1:]]
        commands.update({
            "preserve --help (before)": ([args.before, "--help"], False),
            "preserve capture --help (before)": ([args.before, "capture", "--help"], False),
            "preserve capture --http URL (before)": (old_capture, True),
        })
    if not shutil.which("wget"):
        commands = {k: v for k, v in commands.items() if not k.startswith("wget")}
    walls: dict[str, list[float]] = {name: [] for name in commands}
    firsts: dict[str, list[float]] = {name: [] for name in commands}
    for cmd, net in commands.values():  # one warm-up each (page cache, .pyc)
        timed(cmd, server if net else None)
    for _ in range(args.rounds):
        for name, (cmd, net) in commands.items():
            wall, first = timed(cmd, server if net else None)
            walls[name].append(wall)
            if first is not None:
                firsts[name].append(first)
    server.close()
    results = {}
    for name in commands:
        results[name] = {
            "median_ms": statistics.median(walls[name]) * 1000,
            "min_ms": min(walls[name]) * 1000,
            "first_byte_median_ms": statistics.median(firsts[name]) * 1000
            if firsts[name] else None,
            "first_byte_min_ms": min(firsts[name]) * 1000 if firsts[name] else None,
        }
    return {
        "rounds": args.rounds,
        "loadavg": os.getloadavg(),
        "commands": results,
        "modules": {
            "python -c pass": module_count("pass"),
            "import preserve": module_count("import preserve"),
            "import preserve.cli": module_count("import preserve.cli"),
        },
    }


def report(data: dict[str, Any]) -> None:
    base = data["commands"]["warcio --help"]["median_ms"]
    rows = []
    for name, r in data["commands"].items():
        rows.append([name, r["median_ms"], r["min_ms"], f"{r['median_ms'] / base:.2f}",
                     "" if r["first_byte_median_ms"] is None else r["first_byte_median_ms"],
                     "" if r["first_byte_min_ms"] is None else r["first_byte_min_ms"],
                     "" if r["first_byte_median_ms"] is None
                     else f"{r['first_byte_median_ms'] / base:.2f}"])
    load = ", ".join(f"{v:.2f}" for v in data["loadavg"])
    print_table(f"Start-up, {data['rounds']} interleaved rounds (load average after: {load})",
                ["command", "median ms", "min ms", "ratio to warcio --help", "first byte median ms",
                 "first byte min ms", "first byte ratio to warcio --help"], rows)
    print("\nmodules loaded: " + ", ".join(f"`{k}` {v}" for k, v in data["modules"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", metavar="PRESERVE",
                        help="another preserve executable (e.g. an older version) to time "
                             "alongside, interleaved")
    parser.add_argument("--workdir", type=Path, help="where the archive goes (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the archive")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    return run_benchmark("startup", args.workdir, args.keep, lambda work: bench(args, work),
                         report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
