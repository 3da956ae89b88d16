"""Browser capture: load a page in headless Chromium (driven by Playwright) and record it.

:func:`capture_page` starts, for one capture,

* an ephemeral interception CA (:mod:`.ca`) and a recording proxy on 127.0.0.1 (:mod:`.proxy`)
  that sends every request upstream through preserve's own recording transport;
* a watchdog process (:data:`_REAPER`) that kills the browser's process group when this
  process goes away for any reason, SIGKILL included, so no Chromium outlives preserve;
* the system Chromium through Playwright's ``executable_path`` (never a downloaded browser;
  with ``keep_driver`` the Playwright driver process is kept per thread between captures,
  the browser never is),
  headless, with a fresh profile, the proxy as its only way out (loopback included, QUIC and
  non-proxied WebRTC off), background networking, sync, component updates, crash reporting
  and service workers off, trusting the interception CA's keys only (by SPKI hash).

The page is loaded, the network allowed to go quiet (bounded), the page scrolled through to
trigger lazy loading, the network allowed to go quiet again; then a full-page screenshot, a
PDF print and the rendered DOM are taken, and everything stops. All of it runs inside the
capture's total deadline (``FetchOptions.timeout``), with a reserve kept for the snapshot and
teardown. Popups are blocked (or closed), dialogs dismissed, downloads refused; nothing is
clicked or typed. Console messages and failed requests are kept, bounded in number and size.

If nothing usable arrived (the main document itself failed), the upstream error is raised as
the same :mod:`preserve.errors` class an HTTP capture would raise; otherwise whatever arrived
is returned as a :class:`~preserve.capture.page.PageCapture`, with notes saying what was cut
short (renderer crash, deadline, exchange cap). This module does not write WARC files or
manifests and does not extract text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from preserve.capture.browser_setup import (
    CHROMIUM_CANDIDATES,
    CHROMIUM_ENV,
    INSTALL_HINT,
    browser_problem,
    find_chromium,
    playwright_installed,
)
from preserve.capture.ca import InterceptionCA
from preserve.capture.exchange import FetchResult
from preserve.capture.fetch import REDIRECT_STATUSES, FetchOptions, parse_url, utc_timestamp
from preserve.capture.page import (
    DOM_URI_PREFIX,
    PDF_URI_PREFIX,
    SCREENSHOT_URI_PREFIX,
    Artifact,
    BrowserFacts,
    FailedRequest,
    PageCapture,
    ProxiedExchange,
    new_record_id,
)
from preserve.capture.proxy import TOKEN_HEADER, RecordingProxy
from preserve.capture.transport import Deadline, IPAddress, is_blocked_address
from preserve.errors import BrowserUnavailableError, CaptureError, CaptureTimeoutError
from preserve.hashing import hash_bytes

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

#: Switches that keep the browser from talking to anything but the page, through the proxy.
QUIET_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    # (the switch this Chromium honours: with only the one above, a page's STUN requests
    # left as UDP to any host and port, outside the recorder)
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--proxy-bypass-list=<-loopback>",
)
#: Seconds past the total deadline after which a still-busy browser is killed.
KILL_GRACE = 3.0
#: Marker switch (ignored by Chromium) naming the capture's spool directory, so the watchdog
#: finds its browser. Chromium's crash handlers (their own process groups) are found by the
#: same path: their crash database is put there (``BREAKPAD_DUMP_LOCATION``), which also keeps
#: crash dumps out of the user's profile.
MARKER_SWITCH = "--preserve-capture="

_SCROLL_JS = """() => {
  const el = document.scrollingElement || document.documentElement;
  window.scrollBy(0, window.innerHeight);
  return [window.scrollY + window.innerHeight, el ? el.scrollHeight : 0];
}"""
#: The rendered DOM as Playwright's ``page.content()`` serialises it, or only its length when
#: it is over the cap (``%d``): run in an isolated world, where the page's own scripts cannot
#: replace the serialiser.
_DOM_JS = """(() => {
  let text = '';
  if (document.doctype) text = new XMLSerializer().serializeToString(document.doctype);
  if (document.documentElement) text += document.documentElement.outerHTML;
  return text.length > %d ? text.length : text;
})()"""
#: The URL the main document was loaded from (its navigation entry, which the history API
#: does not change), run in an isolated world.
_LOADED_JS = """(() => {
  const entry = performance.getEntriesByType('navigation')[0];
  return entry ? entry.name : null;
})()"""
_HEIGHT_JS = """() => Math.max(
  document.documentElement ? document.documentElement.scrollHeight : 0,
  document.body ? document.body.scrollHeight : 0)"""


@dataclass(frozen=True)
class BrowserOptions:
    """How a browser capture loads and snapshots the page (limits come from FetchOptions)."""

    #: Chromium binary; default: ``$PRESERVE_CHROMIUM``, then :data:`CHROMIUM_CANDIDATES`.
    executable: Path | None = None
    viewport: tuple[int, int] = (1280, 800)
    #: User-Agent to present instead of the browser's own (None: the browser's).
    user_agent: str | None = None
    #: Most seconds each wait for the network to go quiet may take.
    settle: float = 10.0
    #: Seconds without any request in flight that count as quiet.
    quiet: float = 0.5
    scroll_steps: int = 40
    scroll_pause: float = 0.15
    #: Most request/response pairs recorded; requests past it are refused and counted.
    max_exchanges: int = 2000
    #: Most bytes of response and request bodies one capture spools, all resources together
    #: (each response is also capped by FetchOptions.max_body_size); past it, responses are
    #: kept cut short (``WARC-Truncated: length``) and request bodies are refused.
    max_total_size: int = 2 * 2**30
    max_console: int = 200
    max_failed: int = 200
    max_message: int = 2000
    screenshot: bool = True
    pdf: bool = True
    #: Full-page screenshots are cut to this height (CSS pixels).
    max_screenshot_height: int = 16384
    #: Longest rendered DOM kept (characters as the page serialises them); a longer one is
    #: not taken out of the browser at all (it cost preserve about 4.5 bytes of memory a
    #: character, and went to disk outside every cap), and the notes say so.
    max_dom_chars: int = 64 * 2**20
    #: Seconds of the total deadline kept for the snapshot and teardown (at most a quarter).
    reserve: float = 10.0
    #: Keep the calling thread's Playwright driver running for its next capture (saves about
    #: a second a capture; the browser is launched fresh either way). The CLI sets it; leave it
    #: off in a thread that also uses Playwright's sync API itself.
    keep_driver: bool = False


# --- the watchdog ----------------------------------------------------------------------------

#: Run as ``python -I -S -c _REAPER MARKER``: SIGKILLs every process whose command line carries
#: MARKER (the capture's spool path), the process groups of those processes (Chromium's
#: children share the browser's) and the groups of pids written on stdin that carry it, when
#: stdin ends (this process ended, in any way: SIGKILL included) and whenever a line ``kill``
#: arrives (the capture's deadline passed with the browser still busy). Without /proc it
#: kills the written pids' groups.
_REAPER = r"""
import os, signal, sys, time
marker = sys.argv[1].encode()
pids = set()
def scan():
    found = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                line = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        found[int(name)] = (marker in line, int(fields[2]), fields[0])
    return found
def reap():
    for attempt in range(20):
        table = scan()
        if table is None:
            for pid in pids:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            return
        groups = {pgid for pid, (ours, pgid, _) in table.items() if ours}
        groups |= {pid for pid in pids if pid in table and table[pid][0]}
        victims = [pid for pid, (ours, pgid, state) in table.items()
                   if (ours or pgid in groups) and state != b"Z" and pid != os.getpid()]
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)
for line in sys.stdin:
    if line.strip().isdigit():
        pids.add(int(line))
    elif line.strip() == "kill":
        reap()
reap()
"""


class _Reaper:
    """The watchdog process of one capture (see :data:`_REAPER`)."""

    def __init__(self, marker: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _REAPER, marker],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
        self._lock = threading.Lock()

    def _say(self, line: str) -> None:
        stdin = self._process.stdin
        with self._lock:
            if stdin is not None and not stdin.closed:
                with contextlib.suppress(OSError, ValueError):
                    stdin.write(f"{line}\n".encode())
                    stdin.flush()

    def watch(self, pid: int) -> None:
        self._say(str(pid))

    def kill_now(self) -> None:
        """Kill the browser now (it outlived the capture's deadline)."""
        self._say("kill")

    def finish(self, timeout: float = 5.0) -> None:
        """Let the watchdog kill whatever is left of the browser, and wait for it."""
        with self._lock:
            if self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


# --- Playwright drivers ------------------------------------------------------------------------

#: With ``keep_driver``: each thread's Playwright driver (a node process), started by its first
#: browser capture and kept for the thread's later ones: starting it costs about a second, and
#: every capture still gets a freshly launched browser with a fresh profile. A driver belongs
#: to its thread (the sync API is bound to it); drivers of threads that have ended are
#: terminated when another driver starts (where /proc shows which process is whose), all of
#: them at exit at the latest.
_DRIVERS: dict[threading.Thread, tuple[Any, set[int]]] = {}
_DRIVERS_LOCK = threading.Lock()


def _driver_pids() -> set[int]:
    """This process's child processes that are Playwright drivers (Linux; else empty)."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
                if int(stat[stat.rfind(b")") + 2:].split()[1]) != os.getpid():
                    continue
                if b"run-driver" in Path(f"/proc/{name}/cmdline").read_bytes():
                    found.add(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _driver() -> tuple[Any, bool]:
    """This thread's Playwright driver and whether it was already running."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    current = threading.current_thread()
    with _DRIVERS_LOCK:
        known = _DRIVERS.get(current)
        if known is not None:
            return known[0], True
        for thread, (_, pids) in list(_DRIVERS.items()):
            if not thread.is_alive():
                del _DRIVERS[thread]
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGTERM)
        before = _driver_pids()
        with _driver_stderr():
            playwright = sync_playwright().start()
        _DRIVERS[current] = (playwright, _driver_pids() - before)
        return playwright, False


#: When the driver dies mid-call (a page made it run out of memory), Playwright's pending
#: coroutines are collected unawaited and Python warns of each on stderr: the capture notes the
#: lost connection itself.
warnings.filterwarnings(
    "ignore", category=RuntimeWarning,
    message=r"coroutine '(Page|BrowserContext|Browser|Frame|JSHandle|ElementHandle|CDPSession)"
            r"\.\w+' was never awaited")


@contextlib.contextmanager
def _driver_stderr() -> Iterator[None]:
    """Start Playwright's driver with its standard error in a scratch file, not preserve's: a
    page can make the driver run out of memory, and its fatal-error trace (eighteen lines of
    V8's) then reached preserve's stderr, where only preserve's own lines belong (the capture
    notes the lost connection). Playwright passes ``sys.stderr``'s descriptor to the driver
    through one private function; where it has none, the driver inherits stderr as before."""
    try:
        from playwright._impl import transport  # noqa: PLC0415
    except ImportError:  # pragma: no cover - another Playwright layout
        yield
        return
    original = getattr(transport, "_get_stderr_fileno", None)
    if original is None:  # pragma: no cover - another Playwright layout
        yield
        return
    # the driver keeps its own descriptor of the (unlinked) file once started
    with tempfile.TemporaryFile(prefix="preserve-playwright-driver-") as scratch:
        transport._get_stderr_fileno = scratch.fileno
        try:
            yield
        finally:
            transport._get_stderr_fileno = original


def _forget_driver() -> None:
    """Stop and drop this thread's driver (after it failed)."""
    with _DRIVERS_LOCK:
        known = _DRIVERS.pop(threading.current_thread(), None)
    if known is not None:
        with contextlib.suppress(Exception):  # it may be dead already
            known[0].stop()


# --- the capture -----------------------------------------------------------------------------


@dataclass
class _Session:
    """Mutable state of one capture while the page is live."""

    options: BrowserOptions
    deadline: Deadline
    began: float  # monotonic start of the capture
    page_end: float  # monotonic time at which loading stops and the snapshot begins
    console: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    console_dropped: int = 0
    failed: list[FailedRequest] = dataclasses.field(default_factory=list)
    resource_types: dict[str, str] = dataclasses.field(default_factory=dict)
    popups: list[Page] = dataclasses.field(default_factory=list)
    popups_closed: int = 0
    crashed: bool = False
    killed: bool = False  # by preserve, at the deadline: the renderer did not crash
    notes: list[str] = dataclasses.field(default_factory=list)
    timings: dict[str, int] = dataclasses.field(default_factory=dict)

    def clip(self, text: str) -> str:
        limit = self.options.max_message
        return text if len(text) <= limit else text[:limit] + "…"

    def on_console(self, message: Any) -> None:
        try:
            if len(self.console) >= self.options.max_console:
                self.console_dropped += 1
                return
            location = message.location or {}
            self.console.append({
                "type": message.type, "text": self.clip(message.text),
                "url": location.get("url") or None, "line": location.get("lineNumber"),
                "time": utc_timestamp(),
            })
        finally:
            _release(message)

    def on_page_error(self, error: Any) -> None:
        if len(self.console) >= self.options.max_console:
            self.console_dropped += 1
            return
        self.console.append({"type": "pageerror", "text": self.clip(str(error)), "url": None,
                             "line": None, "time": utc_timestamp()})

    def on_request(self, request: Any) -> None:
        self.resource_types.setdefault(request.url, request.resource_type)

    def on_request_failed(self, request: Any) -> None:
        if len(self.failed) >= self.options.max_failed:
            return
        self.failed.append(FailedRequest(
            url=self.clip(request.url), method=request.method, source="browser",
            error="requestfailed", message=self.clip(request.failure or "failed"),
            time=utc_timestamp()))

    def on_page(self, page: Page) -> None:
        self.popups.append(page)

    def on_crash(self, _page: Any) -> None:
        self.crashed = True

    def left(self) -> float:
        """Seconds left for loading the page (before the snapshot reserve)."""
        return min(self.page_end - time.monotonic(), self.deadline.remaining())


@contextlib.contextmanager
def _phase(session: _Session, name: str) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        session.timings[name] = session.timings.get(name, 0) + int(
            (time.monotonic() - began) * 1000)


def capture_page(
    url: str,
    spool_dir: Path,
    options: FetchOptions | None = None,
    browser_options: BrowserOptions | None = None,
    *,
    is_blocked: Callable[[IPAddress], bool] | None = None,
) -> PageCapture:
    """Load ``url`` in Chromium through the recording proxy; see the module docstring.

    Spool files (bodies, certificates, artifacts) are made in ``spool_dir``, which the caller
    owns and removes. Raises :class:`~preserve.errors.BrowserUnavailableError` when no
    browser can be started, a :class:`~preserve.errors.CaptureError` when the page itself
    could not be loaded (nothing usable arrived). ``is_blocked`` replaces the SSRF guard's
    address predicate (tests block 127.0.0.2 only).
    """
    options = options or FetchOptions()
    browser_options = browser_options or BrowserOptions()
    requested = str(parse_url(url))  # bad input is rejected before anything starts
    executable = find_chromium(browser_options.executable)
    problem = browser_problem(browser_options.executable)
    if problem is not None or executable is None:
        raise BrowserUnavailableError(problem or "no Chromium found")
    started = utc_timestamp()
    began = time.monotonic()
    deadline = Deadline(options.timeout, requested)
    reserve = min(browser_options.reserve, options.timeout / 4)
    session = _Session(browser_options, deadline, began=began,
                       page_end=began + options.timeout - reserve)
    ca_dir = spool_dir / "ca"
    ca_dir.mkdir(mode=0o700)
    ca = InterceptionCA(ca_dir, spool_dir.name)
    token = secrets.token_hex(16)
    proxy = RecordingProxy(spool_dir, options, ca, deadline,
                           max_exchanges=browser_options.max_exchanges,
                           max_failed=browser_options.max_failed, token=token,
                           is_blocked=is_blocked or is_blocked_address,
                           max_total_size=browser_options.max_total_size)
    host, port = proxy.start()
    marker = str(spool_dir.resolve())
    flags = (*QUIET_FLAGS, f"--proxy-server=http://{host}:{port}",
             f"--ignore-certificate-errors-spki-list={','.join(ca.spki_hashes)}",
             MARKER_SWITCH + marker)
    try:
        reaper = _Reaper(marker)
    except OSError:
        proxy.stop()
        raise
    # Playwright calls have no timeout of their own when a renderer hangs or dies mid-call:
    # past the deadline (and a grace for teardown) the browser is killed, which ends them.
    overdue = threading.Timer(deadline.remaining() + KILL_GRACE, _overdue, (reaper, session))
    overdue.daemon = True
    overdue.start()
    artifacts: list[Artifact] = []
    facts: BrowserFacts | None = None
    page_url = requested
    try:
        try:
            facts, page_url, artifacts = _drive(requested, executable, flags, spool_dir,
                                                session, proxy, reaper,
                                                {**dict(options.headers), TOKEN_HEADER: token})
        finally:
            session.notes.extend(proxy.stop())  # (already stopped unless launching failed)
        return _assemble(requested, page_url, proxy, session, facts, artifacts, ca, started)
    except BaseException:
        proxy.discard()
        for artifact in artifacts:
            artifact.path.unlink(missing_ok=True)
        raise
    finally:
        overdue.cancel()
        reaper.finish()


def _overdue(reaper: _Reaper, session: _Session) -> None:
    session.killed = True
    session.notes.append("the browser outlived the deadline and was killed")
    reaper.kill_now()


def _drive(
    url: str,
    executable: Path,
    flags: tuple[str, ...],
    spool_dir: Path,
    session: _Session,
    proxy: RecordingProxy,
    reaper: _Reaper,
    extra_headers: dict[str, str],
) -> tuple[BrowserFacts, str, list[Artifact]]:
    """Launch, load, settle, scroll, snapshot, close. Returns (facts, page URL, artifacts)."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

    options = session.options
    artifacts: list[Artifact] = []
    with _phase(session, "launch"):
        crash_dir = spool_dir / "crash"
        owned = not options.keep_driver
        for attempt in (0, 1):
            reused = False
            try:
                playwright, reused = _driver()
                browser = playwright.chromium.launch(
                    executable_path=str(executable), headless=True, args=list(flags),
                    env={**os.environ, "BREAKPAD_DUMP_LOCATION": str(crash_dir.resolve())},
                    ignore_default_args=["--disable-popup-blocking"],
                    timeout=max(1000.0, session.left() * 1000), handle_sigint=False,
                    handle_sigterm=False, handle_sighup=False,
                )
                break
            except (PlaywrightError, OSError) as exc:
                _forget_driver()  # a driver that failed once is not used again
                if reused and attempt == 0:
                    continue
                raise BrowserUnavailableError(
                    f"cannot start {executable}: {_first_line(exc)}") from exc
    try:
        facts = _browser_facts(browser, executable, options, flags, reaper)
        context = browser.new_context(
            viewport={"width": options.viewport[0], "height": options.viewport[1]},
            user_agent=options.user_agent, service_workers="block",
            accept_downloads=False, ignore_https_errors=False,
            extra_http_headers=extra_headers,
        )
        page_url = url
        try:
            page = _open_page(context, session)
            _load(page, url, session, proxy)
            with _phase(session, "snapshot"):
                artifacts, shown = _snapshot(page, url, spool_dir, session)
            page_url = shown or _page_url(page, url)
        finally:
            # stop recording before the browser goes: what is still in flight was cut by
            # the capture ending (truncated "time"), not by the browser leaving
            session.notes.extend(proxy.stop())
            with contextlib.suppress(PlaywrightError):
                context.close()
    finally:
        with contextlib.suppress(PlaywrightError):
            browser.close()
        if owned:
            _forget_driver()
    return facts, page_url, artifacts


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _browser_facts(browser: Browser, executable: Path, options: BrowserOptions,
                   ours: tuple[str, ...], reaper: _Reaper) -> BrowserFacts:
    """Product, version, user agent; the browser's whole command line where the OS shows it
    (Playwright adds switches of its own), else the switches preserve passed."""
    session = browser.new_browser_cdp_session()
    version = session.send("Browser.getVersion")
    flags: tuple[str, ...] = ours
    try:
        processes = session.send("SystemInfo.getProcessInfo").get("processInfo", [])
    except Exception:  # an experimental CDP domain; the /proc scan still finds the browser
        processes = []
    for process in processes:
        if process.get("type") == "browser" and isinstance(process.get("id"), int):
            reaper.watch(process["id"])
            flags = _command_line(process["id"]) or ours
    session.detach()
    return BrowserFacts(
        product=str(version.get("product", "")),
        version=browser.version,
        user_agent=options.user_agent or str(version.get("userAgent", "")),
        executable=str(executable),
        viewport=options.viewport,
        flags=flags,
    )


def _command_line(pid: int) -> tuple[str, ...]:
    """The browser's switches as the OS reports them (Linux), else nothing."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    parts = [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]
    return tuple(p for p in parts[1:] if p.startswith("-"))


def _open_page(context: BrowserContext, session: _Session) -> Page:
    context.on("request", session.on_request)
    context.on("requestfailed", session.on_request_failed)
    context.on("page", session.on_page)
    page = context.new_page()
    session.popups.clear()  # the page itself is not a popup
    page.on("console", session.on_console)
    page.on("pageerror", session.on_page_error)
    page.on("crash", session.on_crash)
    return page


def _pump(page: Page, seconds: float, session: _Session) -> None:
    """Let time pass while Playwright delivers events; close popups that opened."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

    seconds = max(0.0, min(seconds, session.deadline.remaining()))
    try:
        page.wait_for_timeout(seconds * 1000)
    except PlaywrightError:
        session.crashed = session.crashed or page.is_closed()
        time.sleep(seconds)
    while session.popups:
        popup = session.popups.pop()
        with contextlib.suppress(PlaywrightError):
            popup.close()
        session.popups_closed += 1


def _wait_quiet(page: Page, proxy: RecordingProxy, session: _Session, phase: str) -> None:
    until = time.monotonic() + min(session.options.settle, session.left())
    with _phase(session, phase):
        while not session.crashed:
            in_flight, last = proxy.activity()
            now = time.monotonic()
            if in_flight == 0 and now - last >= session.options.quiet:
                return
            if now >= until:
                session.notes.append(f"network not quiet after {phase} "
                                     f"({in_flight} request(s) in flight)")
                return
            _pump(page, min(0.1, until - now), session)


def _load(page: Page, url: str, session: _Session, proxy: RecordingProxy) -> None:
    """Navigate, settle, scroll through the page, settle again (all bounded)."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: PLC0415

    with _phase(session, "navigate"):
        try:  # until the response starts to arrive; then the document gets --settle to load
            page.goto(url, wait_until="commit", timeout=max(1000.0, session.left() * 1000))
        except PlaywrightTimeout:
            session.notes.append("no response to the page's request in time")
        except PlaywrightError as exc:
            session.notes.append(f"navigation: {_first_line(exc)}")
        for state in ("domcontentloaded", "load"):
            try:
                page.wait_for_load_state(state, timeout=max(1.0, min(
                    session.options.settle, session.left()) * 1000))
            except PlaywrightTimeout:
                session.notes.append(f"the document did not reach '{state}' in time")
                break
            except PlaywrightError:
                break
    if session.crashed or page.is_closed():
        return
    _wait_quiet(page, proxy, session, "settle")
    with _phase(session, "scroll"):
        _scroll(page, session)
    _wait_quiet(page, proxy, session, "settle_after_scroll")


def _scroll(page: Page, session: _Session) -> None:
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

    try:
        for _ in range(session.options.scroll_steps):
            if session.crashed or session.left() <= 0:
                return
            position = page.evaluate(_SCROLL_JS)
            bottom, height = (_pixels(v) for v in position) \
                if isinstance(position, list) and len(position) == 2 else (None, None)
            if bottom is None or height is None:  # the page's scripts answer for its DOM
                session.notes.append("scrolling stopped: the page reports no usable scroll "
                                     "position")
                break
            _pump(page, session.options.scroll_pause, session)
            if bottom >= height:
                break
        page.evaluate("() => window.scrollTo(0, 0)")
    except PlaywrightError as exc:
        session.notes.append(f"scrolling stopped: {_first_line(exc)}")


def _release(message: Any) -> None:
    """Let go of a console message's arguments: Playwright keeps a handle on each (with a
    preview of its value) until the page closes, so a page logging big strings held them all
    in this process (ten of 100 MB took it past 2 GB)."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

    for handle in message.args:
        with contextlib.suppress(PlaywrightError):
            handle.dispose()


def _pixels(value: object) -> int | None:
    """A length in pixels the page reported, or None for what no page lays out: the page's
    own scripts may redefine ``scrollHeight`` or ``scrollY`` to give NaN, infinity, a string
    or an object."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value <= 1 << 40:
        return None
    return int(value)


def _save(spool_dir: Path, kind: str, data: bytes, media_type: str, prefix: str,
          page_url: str) -> Artifact:
    path = spool_dir / f"artifact-{kind}"
    path.write_bytes(data)
    digests = hash_bytes(data)
    return Artifact(kind=kind, path=path, media_type=media_type, size=digests.size,
                    sha256=digests.sha256, blake3=digests.blake3, record_id=new_record_id(),
                    target_uri=prefix + page_url)


def _page_url(page: Page, fallback: str) -> str:
    url = page.url
    return url if url.startswith(("http://", "https://")) else fallback


def _snapshot(page: Page, url: str, spool_dir: Path,
              session: _Session) -> tuple[list[Artifact], str | None]:
    """Screenshot, PDF, DOM: each best-effort within what is left of the deadline; and the
    URL of the document they are of (None when there is none to snapshot)."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

    artifacts: list[Artifact] = []
    if session.crashed or page.is_closed():
        why = "the browser was killed at the deadline" if session.killed else \
            "the renderer crashed"
        session.notes.append(f"{why}: no screenshot, PDF or rendered DOM")
        return artifacts, None
    if not page.url.startswith(("http://", "https://")):
        # a download (Content-Disposition: attachment) or an error page: what the tab shows
        # is not the document, and must not be bound to its URL
        shown = " ".join(page.url.split())[:200]
        session.notes.append(f"the tab shows {shown!r}, not the document (a download, or an "
                             "error page): no screenshot, PDF or rendered DOM; the text is "
                             "the response's")
        return artifacts, None
    target = _loaded_url(page, session)
    options = session.options

    def budget() -> float:
        return max(500.0, (session.deadline.remaining() - 0.5) * 1000)

    if options.screenshot:
        try:
            height = _pixels(page.evaluate(_HEIGHT_JS))
            clip = None
            if height is None or height > options.max_screenshot_height:
                clip = {"x": 0, "y": 0, "width": options.viewport[0],
                        "height": options.max_screenshot_height}
                of = "the page reports no usable height" if height is None else \
                    f"of {height} pixels"
                session.notes.append(f"screenshot cut to {options.max_screenshot_height} "
                                     f"pixels ({of})")
            png = page.screenshot(full_page=True, type="png", timeout=budget(),
                                  animations="disabled", caret="hide", clip=clip)  # type: ignore[arg-type]
            artifacts.append(_save(spool_dir, "screenshot", png, "image/png",
                                   SCREENSHOT_URI_PREFIX, target))
        except PlaywrightError as exc:
            session.notes.append(f"no screenshot: {_first_line(exc)}")
    if options.pdf and session.deadline.remaining() <= 1.0:
        session.notes.append("no PDF: the deadline was too close")
    elif options.pdf:
        try:
            page.set_default_timeout(budget())
            pdf = page.pdf(print_background=True)
            artifacts.append(_save(spool_dir, "pdf", pdf, "application/pdf", PDF_URI_PREFIX,
                                   target))
        except PlaywrightError as exc:
            session.notes.append(f"no PDF: {_first_line(exc)}")
    try:
        serialised = _rendered_dom(page, options.max_dom_chars, budget())
        if isinstance(serialised, int):
            session.notes.append(f"no rendered DOM: it is {serialised} characters, over the "
                                 f"cap of {options.max_dom_chars}")
        else:
            dom = serialised.encode("utf-8", "surrogatepass")
            artifacts.append(_save(spool_dir, "dom", dom, "text/html; charset=utf-8",
                                   DOM_URI_PREFIX, target))
    except PlaywrightError as exc:
        session.notes.append(f"no rendered DOM: {_first_line(exc)}")
    if session.crashed and not session.killed:
        session.notes.append("the renderer crashed during the snapshot")
    return artifacts, target


def _rendered_dom(page: Page, limit: int, timeout_ms: float) -> str | int:
    """The main frame's DOM serialised (as ``page.content()`` does), or its length in
    characters when over ``limit``: the check and the serialisation are one evaluation in an
    isolated world, so the page can neither grow it in between nor fake the serialiser."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

    value = _isolated(page, _DOM_JS % limit, timeout_ms)
    if not isinstance(value, str | int):
        raise PlaywrightError("serialising the DOM failed: no value")
    return value


def _isolated(page: Page, expression: str, timeout_ms: float) -> object:
    """``expression`` evaluated in an isolated world of the main frame (the page's scripts
    cannot redefine what it calls); PlaywrightError if it throws."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

    cdp = page.context.new_cdp_session(page)
    try:
        frame = cdp.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
        world = cdp.send("Page.createIsolatedWorld",
                         {"frameId": frame, "worldName": "preserve-snapshot"})
        answer = cdp.send("Runtime.evaluate", {
            "expression": expression, "contextId": world["executionContextId"],
            "returnByValue": True, "timeout": timeout_ms})
    finally:
        with contextlib.suppress(PlaywrightError):
            cdp.detach()
    if "exceptionDetails" in answer:
        detail = answer.get("exceptionDetails", {}).get("text", "an exception")
        raise PlaywrightError(f"evaluating in the page failed: {detail}")
    return answer.get("result", {}).get("value")


def _loaded_url(page: Page, session: _Session) -> str:
    """The URL of the document the tab holds, as it was loaded: ``page.url`` follows the
    history API (``history.replaceState`` shows any address of the same origin without a
    request for it), the navigation entry does not. A changed address is noted."""
    from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

    shown = page.url
    try:
        loaded = _isolated(page, _LOADED_JS, 2000)
    except PlaywrightError:
        return shown
    if not isinstance(loaded, str) or not loaded.startswith(("http://", "https://")):
        return shown
    if loaded.split("#", 1)[0] != shown.split("#", 1)[0]:
        session.notes.append(f"the page set its address to {session.clip(shown)} with the "
                             "history API, without loading it: the snapshots are bound to "
                             f"{session.clip(loaded)}, the document loaded")
        return loaded
    return shown


# --- putting the result together -------------------------------------------------------------


def _url_key(url: str) -> tuple[str, bytes, int | None, bytes] | str:
    """What a URL the browser requested and a Location value share however each escapes its
    path (Chromium sends ``/a|b`` as ``/a%7Cb``): its parts, the target percent-decoded."""
    try:
        parsed = parse_url(url)
    except CaptureError:
        return url
    return (parsed.scheme, parsed.raw_host.lower(), parsed.port,
            unquote_to_bytes(parsed.raw_path))


def _navigation(requested: str, exchanges: list[ProxiedExchange]) -> list[ProxiedExchange]:
    """The main document's hops: the request for ``requested`` and the redirects from it."""
    hops: list[ProxiedExchange] = []
    wanted = requested
    after = 0
    seen: set[object] = set()
    while _url_key(wanted) not in seen:
        key = _url_key(wanted)
        seen.add(key)
        hop = next((p for p in exchanges if p.sequence > after and p.exchange.method == "GET"
                    and _url_key(p.exchange.url) == key), None)
        if hop is None and not hops:  # the browser spelled the URL its own way: its first
            hop = next((p for p in exchanges if p.sequence == 1), None)  # request is the page
        if hop is None:
            break
        hops.append(hop)
        after = hop.sequence
        location = hop.exchange.location
        if hop.exchange.status not in REDIRECT_STATUSES or location is None:
            break
        wanted = location
    return hops


def _assemble(
    requested: str,
    page_url: str,
    proxy: RecordingProxy,
    session: _Session,
    facts: BrowserFacts | None,
    artifacts: list[Artifact],
    ca: InterceptionCA,
    started: str,
) -> PageCapture:
    if proxy.storage_failure is not None:
        raise proxy.storage_failure
    recorded = [dataclasses.replace(p, resource_type=session.resource_types.get(p.exchange.url))
                for p in proxy.exchanges]
    hops = _navigation(requested, recorded)
    ended = utc_timestamp()
    if not hops:
        errors = proxy.errors_by_url
        key = _url_key(requested)
        error = next((e for u, e in errors.items() if _url_key(u) == key),
                     next(iter(errors.values()), None))
        if error is not None:
            raise type(error)(str(error)) from error
        detail = "; ".join(session.notes) or "no response arrived"
        if session.deadline.remaining() <= 0:
            raise CaptureTimeoutError(f"capture of {requested} exceeded its total time limit "
                                      f"of {session.deadline.total:g} s ({detail})")
        raise CaptureError(f"the browser did not load {requested}: {detail}")
    assert facts is not None  # a hop means the browser ran
    notes = list(session.notes)
    if proxy.preflights_answered:
        notes.append(f"{proxy.preflights_answered} CORS preflight(s) caused only by the "
                     "recorder's own request header answered by the recorder, not sent")
    if proxy.ragged:
        notes.append(f"the TLS connection of {len(proxy.ragged)} response(s) ended without "
                     "close_notify, and its end ended the body: what was kept may be cut short "
                     f"(e.g. {session.clip(proxy.ragged[0])})")
    if proxy.requests_cut:
        notes.append(f"{proxy.requests_cut} request body(ies) cut short: the server answered "
                     "before taking the whole body (the request records hold what was sent)")
    if proxy.refused_foreign:
        notes.append(f"{proxy.refused_foreign} request(s) of the browser itself (not the page) "
                     f"refused, not sent: {', '.join(proxy.foreign)}")
    if proxy.cut_by_total:
        notes.append(f"total size cap of {proxy.max_total_size} bytes reached: "
                     f"{proxy.cut_by_total} response(s) cut short or request bodies refused")
    if proxy.refused_over_heads:
        notes.append(f"response heads reached {proxy.max_heads_total} bytes: "
                     f"{proxy.refused_over_heads} request(s) refused")
    if proxy.refused_over_cap:
        notes.append(f"exchange cap of {proxy.max_exchanges} reached: {proxy.refused_over_cap} "
                     "request(s) refused")
    if session.popups_closed:
        notes.append(f"{session.popups_closed} popup(s) closed")
    if session.console_dropped:
        notes.append(f"{session.console_dropped} console message(s) beyond the limit not kept")
    if proxy.failed_dropped:
        notes.append(f"{proxy.failed_dropped} failed request(s) beyond the limit not listed")
    truncated = [p for p in hops if p.truncated]
    if truncated:
        notes.append(f"the main document is incomplete ({truncated[-1].truncated})")
    timings = dict(session.timings)
    timings["total"] = int((time.monotonic() - session.began) * 1000)
    main = FetchResult(
        requested_url=requested,
        exchanges=tuple(p.exchange for p in hops),
        started=started,
        ended=ended,
        redirects_followed=len(hops) - 1,
        notes=tuple(notes),
    )
    failed = tuple(proxy.failed) + tuple(session.failed)
    return PageCapture(
        requested_url=requested,
        page_url=page_url,
        main=main,
        exchanges=tuple(recorded),
        connections=tuple(proxy.connections),
        failed=failed,
        console=tuple(session.console),
        artifacts=tuple(artifacts),
        browser=dataclasses.replace(facts, timings_ms=timings),
        ca_certificate_der=ca.certificate_der,
        ca_fingerprint=ca.fingerprint,
        max_exchanges=proxy.max_exchanges,
        refused_over_cap=proxy.refused_over_cap,
        notes=tuple(notes),
        started=started,
        ended=ended,
    )


__all__ = [
    "CHROMIUM_CANDIDATES",
    "CHROMIUM_ENV",
    "INSTALL_HINT",
    "QUIET_FLAGS",
    "BrowserOptions",
    "browser_problem",
    "capture_page",
    "find_chromium",
    "playwright_installed",
]
