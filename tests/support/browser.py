"""A real browser for the report tests: headless Chromium (Debian's package) on an HTML file, offline.

:func:`render` opens ``file://<path>`` twice with a fresh temporary profile each time: once with ``--dump-dom``
(the DOM after load) and once with ``--screenshot`` (a PNG of the fixed-size window). Every network request the
page attempts is recorded: Chromium's only route out is ``--proxy-server`` pointing at :class:`RequestLog`, a tiny
HTTP proxy on 127.0.0.1 that writes down each request line (``GET http://host/path`` or ``CONNECT host:443``) and
answers 403; ``--proxy-bypass-list=<-loopback>`` sends even loopback through it and ``--host-resolver-rules``
resolves every other name to nothing, so a request that somehow skipped the proxy fails instead of leaving.
Chromium's own background traffic is switched off where a flag does it (sync, metrics, network time, ...); what
no flag stops (Chromium 156 still asks update.googleapis.com for an on-demand component and opens
accounts.google.com) is told apart by host (:data:`BROWSER_HOSTS`) and kept in :attr:`Rendered.background`, so
:attr:`Rendered.requests` holds what the page asked for.

Screenshots are kept for a person to look at after the tests, in ``test-outputs/screenshots/`` at the repository
root (git-ignored) or the directory ``KFP_TABULAR_SCREENSHOTS`` names.

Requires ``chromium`` (``make browser`` installs Debian's package); :func:`find_chromium` returns None without it.
"""

from __future__ import annotations

import collections
import dataclasses
import html.parser
import os
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WINDOW = (1280, 1600)
TIMEOUT_S = 180
# Chromium's own traffic off: what reaches the proxy is what the page asked for.
QUIET_FLAGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--metrics-recording-only",
    "--no-pings",
    "--password-store=basic",
    "--use-mock-keychain",
)


#: Hosts only Chromium itself contacts (component updater, sign-in, time): never a page's request.
BROWSER_HOSTS = frozenset(
    {
        "update.googleapis.com",
        "accounts.google.com",
        "clients2.google.com",
        "clients2.googleusercontent.com",
        "redirector.gvt1.com",
        "edgedl.me.gvt1.com",
        "dl.google.com",
        "optimizationguide-pa.googleapis.com",
        "safebrowsing.googleapis.com",
    }
)
#: Debian's ``chromium`` is a shell wrapper that adds API keys and extension flags; this is the browser itself.
DEBIAN_BINARY = "/usr/lib/chromium/chromium"


def find_chromium() -> str | None:
    """Return the Chromium executable, or None when missing.

    ``$CHROMIUM`` when set; else, when ``chromium`` is on PATH, Debian's binary behind the wrapper (so no flags
    of the wrapper's, such as ``--enable-remote-extensions``, apply) or that ``chromium`` itself.
    """
    override = os.environ.get("CHROMIUM")
    if override:
        return shutil.which(override)
    found = shutil.which("chromium")
    if found and os.access(DEBIAN_BINARY, os.X_OK):
        return DEBIAN_BINARY
    return found


def request_host(line: str) -> str:
    """Return the host a proxy request line is for: ``CONNECT host:443 ...`` or ``GET http://host/path ...``."""
    parts = line.split()
    target = parts[1] if len(parts) > 1 else ""
    if "://" in target:
        return (urllib.parse.urlsplit(target).hostname or "").lower()
    return target.rsplit(":", 1)[0].strip("[]").lower()


def screenshot_dir() -> Path:
    """Return (and create) the directory screenshots are kept in for a person to look at."""
    override = os.environ.get("KFP_TABULAR_SCREENSHOTS")
    path = Path(override) if override else REPO / "test-outputs" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _ProxyHandler(socketserver.StreamRequestHandler):
    timeout = 10  # seconds a silent connection is kept

    def handle(self) -> None:
        try:
            line = self.rfile.readline(65537).decode("latin-1").strip()
        except OSError:
            return
        while True:  # the headers, so the browser is not reset mid-send
            header = self.rfile.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
        if line:
            self.server.log.append(line)  # type: ignore[attr-defined]
        body = b"blocked by the test's request log\n"
        self.wfile.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True  # server_close() waits for every handler: the log is complete once the proxy is closed


class RequestLog:
    """A logging HTTP proxy on 127.0.0.1 that refuses everything (403) and keeps each request line.

    Use as a context manager; :attr:`requests` is the list of request lines seen (complete after the block).
    """

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _ProxyHandler)
        self._server.log = []  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="request-log", daemon=True)

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return self._server.server_address[1]

    @property
    def requests(self) -> list[str]:
        """The request lines received, in order."""
        return list(self._server.log)  # type: ignore[attr-defined]

    def __enter__(self) -> RequestLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclasses.dataclass(frozen=True)
class Rendered:
    """What Chromium made of a page.

    Attributes:
        dom: The serialised DOM after load (``--dump-dom``).
        screenshot: The PNG of the window.
        requests: Every request line the page sent to the network (empty for a self-contained page).
        background: Request lines Chromium itself sent (to :data:`BROWSER_HOSTS`), kept for inspection.
    """

    dom: str
    screenshot: Path
    requests: list[str]
    background: list[str] = dataclasses.field(default_factory=list)

    def charts(self) -> collections.Counter[str]:
        """Count the ``<svg class="chart KIND">`` elements in the DOM by kind."""
        return chart_kinds(self.dom)

    def blank(self) -> bool:
        """Whether the screenshot shows (next to) nothing: see :func:`is_blank`."""
        return is_blank(self.screenshot)


def _flags(chromium: str, profile: Path, port: int, window: tuple[int, int] = WINDOW) -> list[str]:
    flags = [
        chromium,
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
        f"--proxy-server=http://127.0.0.1:{port}",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--virtual-time-budget=3000",
        *QUIET_FLAGS,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return flags


def _run(args: list[str], what: str) -> subprocess.CompletedProcess:
    """Run Chromium in its own process group, killing that group (only) on timeout."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tempfile.gettempdir(),
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise RuntimeError(f"chromium {what} took longer than {TIMEOUT_S}s; stderr tail:\n{err[-2000:]}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"chromium {what} exited {proc.returncode}; stderr tail:\n{err[-2000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def render(page: Path, screenshot: Path, chromium: str | None = None, window: tuple[int, int] = WINDOW) -> Rendered:
    """Open ``page`` in headless Chromium offline; return its DOM, a screenshot and the requests it attempted.

    Args:
        page: An HTML file on disk (opened as a ``file://`` URL).
        screenshot: Where to write the PNG (its folder is created).
        chromium: The executable (default: :func:`find_chromium`).
        window: The window (and screenshot) size in CSS pixels; a longer page is cut at its bottom edge.

    Raises:
        RuntimeError: Chromium is missing, failed, timed out or wrote no screenshot.
    """
    exe = chromium or find_chromium()
    if not exe:
        raise RuntimeError("chromium not found: run `make browser` (Debian's chromium package)")
    url = Path(page).resolve().as_uri()
    screenshot = Path(screenshot).resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    with RequestLog() as log:
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            dom = _run([*_flags(exe, Path(profile), log.port, window), "--dump-dom", url], "--dump-dom").stdout
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            _run([*_flags(exe, Path(profile), log.port, window), f"--screenshot={screenshot}", url], "--screenshot")
    if not screenshot.is_file():
        raise RuntimeError(f"chromium wrote no screenshot at {screenshot}")
    page_lines = [r for r in log.requests if request_host(r) not in BROWSER_HOSTS]
    own = [r for r in log.requests if request_host(r) in BROWSER_HOSTS]
    return Rendered(dom=dom, screenshot=screenshot, requests=page_lines, background=own)


class _TagCounter(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: collections.Counter[str] = collections.Counter()
        self.kinds: collections.Counter[str] = collections.Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        classes = (dict(attrs).get("class") or "").split()
        if tag == "svg" and "chart" in classes:
            others = [c for c in classes if c != "chart"]
            self.kinds[others[0] if others else ""] += 1


def _count(dom: str) -> _TagCounter:
    counter = _TagCounter()
    counter.feed(dom)
    counter.close()
    return counter


def chart_kinds(dom: str) -> collections.Counter[str]:
    """Count ``<svg class="chart KIND">`` elements in serialised HTML by KIND."""
    return _count(dom).kinds


def tag_counts(dom: str) -> collections.Counter[str]:
    """Count the elements of serialised HTML by tag name (``script``, ``img``, ``link``, ``svg``, ...)."""
    return _count(dom).tags


@dataclasses.dataclass(frozen=True)
class Ink:
    """How much a screenshot shows: ``colours`` distinct colours, ``share`` of pixels that are not near-white."""

    colours: int
    share: float


def ink(png: Path) -> Ink:
    """Measure a screenshot with Pillow (a pixel is ink when any channel is below 235)."""
    from PIL import Image

    with Image.open(png) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        distinct = len(colours) if colours is not None else 1 << 20
        dark = sum(n for n, (r, g, b) in colours or [] if min(r, g, b) < 235)
        total = rgb.width * rgb.height
    return Ink(colours=distinct, share=dark / total if total else 0.0)


def is_blank(png: Path, min_colours: int = 8, min_share: float = 0.002) -> bool:
    """Whether a screenshot is blank: fewer than ``min_colours`` colours or under ``min_share`` ink."""
    measured = ink(png)
    return measured.colours < min_colours or measured.share < min_share
