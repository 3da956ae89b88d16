#!/usr/bin/env python3
"""A local HTTP/1.1 server for the benchmarks, run in its own process on 127.0.0.1.

Paths it serves:

* ``/page/<n>.html``: a generated article page (nav, headline, byline, paragraphs, a reader
  comment section, footer), deterministic for ``n``, sizes spread from ~4 KiB to ~250 KiB;
* ``/small/<n>.html``: the same kind of page, 3-9 KiB (for the 10,000-capture archive);
* ``/near/<bytes>/<n>.html``: the same kind of page grown paragraph by paragraph to about
  ``bytes`` (``/near/30000/<n>.html``: 29.9-31.3 KB for n < 300), for runs where every page
  should cost about the same;
* ``/stream/<bytes>.bin``: ``application/octet-stream`` of exactly that many bytes;
* ``/stream/<bytes>.html``: ``text/html`` of exactly that many bytes (one long article).

Streams are generated on the fly from a 1 MiB block built at start-up, so a 200 MB body never
sits in the server's memory. The binary block is random bytes (incompressible, like a video);
the HTML block is whole ``<p>`` paragraphs of random words. Every response has a
``Content-Length``; connections are kept alive as a real server would.

Use :class:`LocalServer` (a context manager that starts the subprocess and knows its base
URL), or run ``python _local_server.py [--port N] [--hosts 127.0.0.1,127.0.0.2]``: it prints
``PORT <n>`` and serves until killed. Loopback only (several 127.x.y.z addresses, one port,
to stand for several hosts: Linux routes all of 127/8 to ``lo``); nothing here is part of
preserve.

The bottom of the module holds the few helpers every benchmark script shares: run a command
and get its wall time and peak RSS (:func:`run_measured`, via ``wait4``), describe the machine
(:func:`machine_info`), print a table and write JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

_WORD_TEXT = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will more said about what up out them into than then its only other new some time "
    "could these two may first any like now my such make over our even most after also did "
    "many before must through back years where much your way well down should because each "
    "just those people how too little state good very world still own see men work long "
    "government council minister report evidence witness village police court statement "
    "journalist archive record hearing testimony river election border office document "
    "investigation human rights violation protest military hospital school market district "
    "naïve café résumé Zürich São Paulo Łódź"
)
WORDS = tuple(_WORD_TEXT.split())
BLOCK = 1 << 20
CHUNK = 1 << 16


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 24))]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return "<p>" + " ".join(_sentence(rng) for _ in range(rng.randint(2, 6))) + "</p>\n"


def _nav(rng: random.Random) -> str:
    links = "".join(
        f'<li><a href="/section/{rng.randint(1, 40)}">{rng.choice(WORDS).title()}</a></li>'
        for _ in range(rng.randint(8, 20))
    )
    return f'<nav class="site-nav"><ul>{links}</ul></nav>\n'


def render_page(n: int, *, small: bool = False, near: int = 0) -> bytes:
    """The page ``n``: deterministic, realistic structure, size set by ``n`` (or, with
    ``near``, paragraphs added until the page is about ``near`` bytes)."""
    rng = random.Random(n * 7919 + (1 if small else 0) + (2 if near else 0))
    if near:
        paragraphs = 0
        comments = 3
    elif small:
        paragraphs = rng.randint(3, 10)
        comments = rng.randint(0, 2)
    else:
        # log-uniform spread: most pages are tens of KiB, some a few hundred
        paragraphs = int(4 * 2 ** rng.uniform(0, 7.2))
        comments = rng.randint(0, 25)
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))).title()
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{title} | Local News</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta property="og:title" content="{title}">',
        '<link rel="stylesheet" href="/static/site.css"><script src="/static/app.js"></script>',
        "</head><body>\n<header><div class=\"logo\">Local News</div>",
        _nav(rng),
        "</header>\n<main><article>\n",
        f"<h1>{title}</h1>\n",
        f'<p class="byline">By <span class="author">{rng.choice(WORDS).title()} '
        f'{rng.choice(WORDS).title()}</span> <time datetime="2026-0{rng.randint(1, 9)}-1'
        f'{rng.randint(0, 9)}">2026</time></p>\n',
    ]
    parts += [_paragraph(rng) for _ in range(paragraphs)]
    if near:
        size = sum(len(part.encode("utf-8")) for part in parts) + 1500  # the rest, roughly
        while size < near:
            paragraph = _paragraph(rng)
            parts.append(paragraph)
            size += len(paragraph.encode("utf-8"))
    parts.append("</article>\n<aside class=\"related\"><h2>Related</h2>")
    parts.append(_nav(rng))
    parts.append("</aside>\n<section id=\"comments\" class=\"comments\"><h2>Comments</h2>\n")
    for i in range(comments):
        parts.append(
            f'<div class="comment" id="c{i}"><span class="comment-author">'
            f"{rng.choice(WORDS)}{rng.randint(1, 99)}</span><p>{_sentence(rng)}</p></div>\n"
        )
    parts.append("</section></main>\n<footer><p>© 2026 Local News. All rights reserved.</p>")
    parts.append(_nav(rng))
    parts.append("</footer></body></html>\n")
    return "".join(parts).encode("utf-8")


@lru_cache(maxsize=4096)
def cached_page(n: int, small: bool, near: int = 0) -> bytes:
    return render_page(n, small=small, near=near)


def _binary_block() -> bytes:
    return random.Random(1).randbytes(BLOCK)


def _html_block() -> bytes:
    rng = random.Random(2)
    out = bytearray()
    while True:
        paragraph = _paragraph(rng).encode("utf-8")
        if len(out) + len(paragraph) > BLOCK:
            break
        out += paragraph
    out += b" " * (BLOCK - len(out) - 1) + b"\n"  # whitespace between paragraphs
    return bytes(out)


HTML_HEAD = (
    b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>A very long page</title>"
    b"</head><body><article><h1>A very long page</h1>\n"
)
HTML_TAIL = b"</article></body></html>\n"
BLOCKS = {"bin": _binary_block(), "html": _html_block()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bench-server/1"
    disable_nagle_algorithm = True  # else head and body writes meet delayed ACKs (40 ms)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _head(self, content_type: str, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        match = re.fullmatch(r"/(page|small)/(\d+)\.html", path)
        if match:
            body = cached_page(int(match.group(2)), match.group(1) == "small")
            self._head("text/html; charset=utf-8", len(body))
            self.wfile.write(body)
            return
        match = re.fullmatch(r"/near/(\d{1,9})/(\d+)\.html", path)
        if match:
            body = cached_page(int(match.group(2)), False, int(match.group(1)))
            self._head("text/html; charset=utf-8", len(body))
            self.wfile.write(body)
            return
        match = re.fullmatch(r"/stream/(\d+)\.(bin|html)", path)
        if match:
            self._stream(int(match.group(1)), match.group(2))
            return
        body = b"not found\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, size: int, kind: str) -> None:
        block = BLOCKS[kind]
        if kind == "html":
            head, tail = HTML_HEAD, HTML_TAIL
            content_type = "text/html; charset=utf-8"
        else:
            head, tail = b"", b""
            content_type = "application/octet-stream"
        size = max(size, len(head) + len(tail))
        self._head(content_type, size)
        self.wfile.write(head)
        left = size - len(head) - len(tail)
        view = memoryview(block)
        position = 0
        while left > 0:
            n = min(CHUNK, left, BLOCK - position)
            self.wfile.write(view[position : position + n])
            left -= n
            position = (position + n) % BLOCK
        self.wfile.write(tail)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def serve(port: int, hosts: Sequence[str] = ("127.0.0.1",)) -> None:
    """Serve on every address of ``hosts``, all on one port (the first one's, if 0)."""
    first = Server((hosts[0], port), Handler)
    port = first.server_address[1]
    others = [Server((host, port), Handler) for host in hosts[1:]]
    for server in others:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {port}", flush=True)
    first.serve_forever()


class LocalServer:
    """Start the server in a subprocess; ``base`` is its ``http://127.0.0.1:PORT``
    (``bases`` one such URL per address of ``hosts``)."""

    def __init__(self, hosts: Sequence[str] = ("127.0.0.1",)) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.hosts = tuple(hosts)
        self.base = ""
        self.bases: list[str] = []

    def __enter__(self) -> LocalServer:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", "0",
             "--hosts", ",".join(self.hosts)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.process.kill()
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        port = int(line.split()[1])
        self.bases = [f"http://{host}:{port}" for host in self.hosts]
        self.base = self.bases[0]
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (from /proc)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def page_urls(self, count: int, *, small: bool = False, start: int = 0) -> list[str]:
        kind = "small" if small else "page"
        return [f"{self.base}/{kind}/{n}.html" for n in range(start, start + count)]

    def near_urls(self, count: int, size: int, *, spread: bool = False) -> list[str]:
        """URLs of ``count`` pages of about ``size`` bytes; with ``spread``, page ``n``
        is asked of host ``n mod len(hosts)`` (same pages, several hosts)."""
        bases = self.bases if spread else [self.base]
        return [f"{bases[n % len(bases)]}/near/{size}/{n}.html" for n in range(count)]

    def stream_url(self, size: int, kind: str = "bin") -> str:
        return f"{self.base}/stream/{size}.{kind}"


def page_bytes(count: int, *, small: bool = False, start: int = 0, near: int = 0) -> int:
    """Total body bytes of the pages ``start .. start+count-1`` (computed, not fetched)."""
    return sum(len(cached_page(n, small, near)) for n in range(start, start + count))


# --- helpers shared by the benchmark scripts --------------------------------------------------

VENV_BIN = Path(sys.executable).parent
PRESERVE = str(VENV_BIN / "preserve")
WARCIO = str(VENV_BIN / "warcio")


@dataclass(frozen=True)
class Measured:
    """One command run: wall seconds, peak resident set (MiB), exit status, output, and the
    user + system CPU seconds of the command and the descendants it waited for."""

    seconds: float
    max_rss_mib: float
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0


#: Runs its arguments as a command and writes the command's wall seconds and ``wait4``
#: rusage to the file named by $BENCH_MEASURE_OUT. The command is forked from this small
#: interpreter, not from the harness: on Linux a process's peak RSS (``ru_maxrss``) starts
#: from the memory of the process it was forked (or vforked) from and survives exec, so a
#: command started by a harness that has grown (e.g. by reading a large output) would report
#: the harness's peak as its own. (The launcher's own ~7 MiB is the floor of what it reports.)
_MEASURE = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as exc:
        os.write(2, f"{sys.argv[1]}: {exc}\\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(os.environ["BENCH_MEASURE_OUT"], "w") as out:
    out.write(f"{seconds} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd`` to completion; its own wall time, peak RSS and CPU come from ``wait4`` in
    a small launcher process (see ``_MEASURE``), not from the harness."""
    with open(os.devnull, "rb") as stdin:
        out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f".bench-{os.getpid()}-out"
        err_path = out_path.with_suffix(".err")
        figures = out_path.with_suffix(".measure")
        child_env = dict(os.environ if env is None else env, BENCH_MEASURE_OUT=str(figures))
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.run([sys.executable, "-S", "-c", _MEASURE, *cmd], stdin=stdin,
                                     stdout=out, stderr=err, env=child_env, check=False)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    seconds, max_rss_kib, cpu = (float(x) for x in figures.read_text().split())
    for path in (out_path, err_path, figures):
        path.unlink()
    return Measured(seconds, max_rss_kib / 1024, process.returncode, stdout, stderr, cpu)


def tool_version(cmd: Sequence[str]) -> str:
    try:
        result = subprocess.run(list(cmd), check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def traced(work: Callable[[], Any], *, sites: int, frames: int) -> tuple[Any, dict[str, Any]]:
    """Run ``work()`` under tracemalloc (12 frames), sampling the traced heap every few ms;
    return its result and the peak traced, the peak sampled and the ``sites`` allocation
    sites (tracebacks, their last ``frames`` frames) that held most at the sampled peak."""
    import time  # noqa: PLC0415 - only the tracing child needs these
    import tracemalloc  # noqa: PLC0415

    mib = 2**20
    tracemalloc.start(12)
    state: dict[str, Any] = {"peak": 0, "snapshot": None, "stop": False}

    def sample() -> None:
        while not state["stop"]:
            current, _ = tracemalloc.get_traced_memory()
            if current > state["peak"] * 1.05 + mib:
                state["peak"] = current
                state["snapshot"] = tracemalloc.take_snapshot()
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = work()
    finally:
        state["stop"] = True
        sampler.join()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    top = []
    snapshot = state["snapshot"]
    if snapshot is not None:
        for stat in snapshot.statistics("traceback")[:sites]:
            shown = [f"{f.filename.split('/site-packages/')[-1].split('/src/')[-1]}:{f.lineno}"
                     for f in stat.traceback if "tracemalloc" not in f.filename][-frames:]
            top.append({"mib": stat.size / mib, "count": stat.count, "frames": shown})
    return result, {"peak_traced_mib": peak / mib, "sampled_peak_mib": state["peak"] / mib,
                    "top": top}


def machine_info() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "loadavg_1_5_15min": os.getloadavg(),  # others' work on the machine skews figures
        "python": platform.python_version(),
        "preserve": tool_version([PRESERVE, "--version"]),
        "warcio": tool_version([WARCIO, "--version"]),
        "wget": tool_version(["wget", "--version"]),
        "sha256sum": tool_version(["sha256sum", "--version"]),
        "b3sum": tool_version(["b3sum", "--version"]) if shutil.which("b3sum") else "absent",
    }


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table on stdout (pastes straight into docs/benchmarks.md)."""
    cells = [[_cell(v) for v in row] for row in rows]
    print(f"\n### {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|")
    for row in cells:
        print("| " + " | ".join(row) + " |")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 \
            else f"{value:.1f}"
    return str(value)


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"\nwrote {path}")


def compile_preserve() -> None:
    """Write the ``.pyc`` files of the ``preserve`` package the commands run (see the
    README: without them, every changed module is compiled again at each start), and warn
    when ``PYTHONDONTWRITEBYTECODE`` would keep a ``--before`` tree from writing its own."""
    import compileall  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("preserve")
    for location in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(location, quiet=1)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set: compile a --before tree first "
              "(python -m compileall -q SRC), or its commands compile every module they "
              "import at each start", file=sys.stderr)


def run_benchmark(
    name: str,
    workdir: Path | None,
    keep: bool,
    bench: Callable[[Path], dict[str, Any]],
    report: Callable[[dict[str, Any]], None],
    json_path: Path | None,
) -> int:
    """Run ``bench`` in a fresh work directory, print its report, write JSON, clean up.
    The commands it runs keep their keys and known heads in that directory too
    (``PRESERVE_CONFIG_HOME``, unless set already), not in the user's configuration: each
    benchmark archive left a head there, which every later group commit reads."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)  # --workdir may name a new directory
    compile_preserve()
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=workdir))
    os.environ.setdefault("PRESERVE_CONFIG_HOME", str(work / "config"))
    try:
        data = bench(work)
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(data)
    write_json(json_path, {"machine": machine_info(), **data})
    return 0


def dir_bytes(top: Path, suffixes: tuple[str, ...] = ()) -> tuple[int, int]:
    """(files, bytes) of regular files below ``top`` (only those ending with ``suffixes``)."""
    files = total = 0
    for dirpath, _, names in os.walk(top):
        for name in names:
            if suffixes and not name.endswith(suffixes):
                continue
            files += 1
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return files, total


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark HTTP server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hosts", default="127.0.0.1",
                        help="comma-separated loopback addresses to listen on (one port)")
    args = parser.parse_args()
    serve(args.port, args.hosts.split(","))


if __name__ == "__main__":
    main()
