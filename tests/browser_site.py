"""A small web site for browser-capture tests and the browser benchmark, on 127.0.0.1.

``story_routes(frame_origin, ...)`` returns the route table of a news page whose look depends
on everything a browser capture must keep: a stylesheet reached through a redirect, a web font
and a background image named by that stylesheet, images (one lazy-loaded by an
IntersectionObserver far down the page), an article whose body is inserted by ``fetch()``
after the load event, a cross-origin iframe, a script that answers 404, an image slower than
any capture deadline, and a media file streamed by the page. :class:`KeepAliveServer` is a
test server that keeps connections open (the recorder reuses them). PNG helpers make the
images, read their size, and compare screenshots in a browser page (no imaging library).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from servers import ReceivedRequest, TestServer, redirect, respond, stall

Handler = Callable[[ReceivedRequest, socket.socket], None]

#: A sentence of the JS-inserted article that extraction must find.
STORY_SENTENCE = "The harbour master confirmed that seventeen fishing boats stayed in port"
STORY_PARAGRAPHS = [
    f"{STORY_SENTENCE} on Tuesday, after the storm warning was raised for the whole coast "
    "and the ferry company cancelled its evening crossings to the islands.",
    "Residents of the old quarter said the water reached the doorsteps of the market hall "
    "twice during the night, and volunteers moved sandbags along the quay until dawn.",
    "The council will publish its assessment of the damage to the sea wall next week; the "
    "repair of the northern breakwater, promised two years ago, has not yet started.",
    "Fishermen interviewed at the harbour asked for compensation for the lost days at sea "
    "and for a clear timetable for the works that were announced after the last storm.",
]
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Italic.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Italic.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


# --- PNG -----------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def make_png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """An RGB PNG whose pixel (x, y) is ``pixel(x, y)``."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows += bytes(pixel(x, y))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + _chunk(b"IEND", b""))


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


#: JavaScript run in a page: the fraction of pixels of two PNGs (data URLs) differing by more
#: than a tolerance in any colour channel; rows only one image has count as different.
PNG_DIFFERENCE_JS = """async ([a, b, tolerance]) => {
  const load = async url => {
    const bitmap = await createImageBitmap(await (await fetch(url)).blob());
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext('2d');
    context.drawImage(bitmap, 0, 0);
    return context.getImageData(0, 0, bitmap.width, bitmap.height);
  };
  const [x, y] = [await load(a), await load(b)];
  if (x.width !== y.width) return 1;
  const rows = Math.min(x.height, y.height);
  let differing = Math.abs(x.height - y.height) * x.width;
  for (let i = 0; i < rows * x.width * 4; i += 4) {
    if (Math.abs(x.data[i] - y.data[i]) > tolerance || Math.abs(x.data[i + 1] - y.data[i + 1])
        > tolerance || Math.abs(x.data[i + 2] - y.data[i + 2]) > tolerance) differing++;
  }
  return differing / (Math.max(x.height, y.height) * x.width);
}"""


# --- servers -------------------------------------------------------------------------------------


class KeepAliveServer(TestServer):
    """A :class:`TestServer` whose connections stay open for further requests."""

    __test__ = False

    def _serve(self, sock: socket.socket) -> None:
        conn = sock
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(sock, server_side=True)
            conn.settimeout(10)
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    buffer += piece
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers = tuple((n.strip(), v.strip()) for n, _, v in
                                (line.partition(":") for line in lines[1:] if line))
                request = ReceivedRequest(method, target, version, headers, head + b"\r\n\r\n")
                self.requests.append(request)
                body = self.routes.get(request.path)
                payload = body if isinstance(body, bytes) else b"not found"
                status = b"200 OK" if isinstance(body, bytes) else b"404 Not Found"
                conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
                             + payload)
        except OSError:
            return
        finally:
            conn.close()


# --- the story page ------------------------------------------------------------------------------

HTML = [("Content-Type", "text/html; charset=utf-8")]


def _font() -> bytes:
    for candidate in FONT_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path.read_bytes()
    return b"\0" * 1024  # no system font: the request is still made and recorded


def stream_media(total: int, block: int = 1 << 16) -> Handler:
    """``total`` bytes of media, sent as fast as the client reads them (a random block
    repeated: as incompressible as real video to gzip's 32 KiB window)."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: "
            + str(total).encode() + b"\r\nConnection: close\r\n\r\n")
    chunk = os.urandom(block)

    def handler(request: ReceivedRequest, conn: socket.socket) -> None:
        conn.sendall(head)
        sent = 0
        while sent < total:
            piece = chunk[: min(block, total - sent)]
            conn.sendall(piece)
            sent += len(piece)

    return handler


def story_routes(frame_origin: str, *, media_size: int = 3 * 2**20,
                 slow_seconds: float | None = 60.0) -> dict[str, Handler]:
    """The routes of the story site (``/story`` is the page); the iframe is loaded from
    ``frame_origin`` (another origin of the same server). ``slow_seconds=None`` leaves the slow
    image out (it answers 404 at once), for timing the rest."""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Storm keeps the fleet in port</title>
<link rel="stylesheet" href="/style.css"></head>
<body>
<header class="banner"><img src="/img/logo.png" width="120" height="40" alt="Harbour Herald">
<h1>Storm keeps the fleet in port</h1></header>
<p class="byline">By Ana Costa</p>
<article id="story"><p class="loading">Loading the story…</p></article>
<script src="/missing.js"></script>
<iframe src="{frame_origin}/frame.html" width="320" height="120" title="weather"></iframe>
<div class="spacer"></div>
<img class="lazy" data-src="/img/lazy.png" width="200" height="100" alt="the quay">
<footer>Harbour Herald, all rights reserved</footer>
<script src="/app.js"></script>
</body></html>
"""
    app = """
window.addEventListener('load', () => {
  fetch('/api/story.json').then(r => r.json()).then(story => {
    document.getElementById('story').innerHTML =
      story.paragraphs.map(p => '<p>' + p + '</p>').join('');
  });
  new Image().src = '/slow.png';
  fetch('/media/clip.mp4').then(async r => {
    const reader = r.body.getReader();
    while (!(await reader.read()).done) {}
  });
});
const io = new IntersectionObserver(entries => entries.forEach(entry => {
  if (!entry.isIntersecting) return;
  entry.target.src = entry.target.dataset.src;
  io.unobserve(entry.target);
}));
document.querySelectorAll('img.lazy').forEach(img => io.observe(img));
"""
    css = """@font-face { font-family: Story; src: url(/fonts/story.ttf) format("truetype"); }
body { font-family: Story, serif; margin: 0; color: #1d1d1d;
       background: #f4f1ea url(/img/bg.png) repeat-x; }
.banner { background: #123a5a; color: #fff; padding: 12px 24px; }
.banner h1 { margin: 8px 0 0; font-size: 34px; }
article p, .byline { font-size: 19px; line-height: 1.5; max-width: 38em; margin: 12px 24px; }
iframe { border: 3px solid #c33; margin: 12px 24px; }
.spacer { height: 2200px; }
footer { background: #333; color: #eee; padding: 16px 24px; }
"""
    frame = (b"<!doctype html><html><body style='margin:0;background:#fde'>"
             b"<p style='font:16px sans-serif'>Wind: 9 Beaufort</p>"
             b"<img src='/img/frame.png' width='60' height='30' alt='wind'></body></html>")
    story = json.dumps({"paragraphs": STORY_PARAGRAPHS}).encode()
    routes = {
        "/story": respond(200, page.encode(), headers=HTML),
        "/style.css": redirect("/css/site.css", status=302),
        "/css/site.css": respond(200, css.encode(), headers=[("Content-Type", "text/css")]),
        "/fonts/story.ttf": respond(200, _font(), headers=[("Content-Type", "font/ttf")]),
        "/img/bg.png": respond(200, make_png(48, 300, lambda x, y: (
            200 - y // 3, 220 - y // 4, 255 - y // 5)), headers=[("Content-Type", "image/png")]),
        "/img/logo.png": respond(200, make_png(120, 40, lambda x, y: (
            250, 200 if (x // 10 + y // 10) % 2 else 60, 40)),
            headers=[("Content-Type", "image/png")]),
        "/img/lazy.png": respond(200, make_png(200, 100, lambda x, y: (
            30, 120 + (x * y) % 100, 60)), headers=[("Content-Type", "image/png")]),
        "/img/frame.png": respond(200, make_png(60, 30, lambda x, y: (90, 40, 160)),
                                  headers=[("Content-Type", "image/png")]),
        "/frame.html": respond(200, frame, headers=HTML),
        "/api/story.json": respond(200, story, headers=[("Content-Type", "application/json")],
                                   chunked=True, chunk_size=97),
        "/app.js": respond(200, app.encode(), headers=[("Content-Type", "text/javascript")]),
        "/media/clip.mp4": stream_media(media_size),
    }
    if slow_seconds is not None:
        routes["/slow.png"] = stall(slow_seconds)
    return routes


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


__all__ = [
    "PNG_DIFFERENCE_JS",
    "STORY_PARAGRAPHS",
    "STORY_SENTENCE",
    "KeepAliveServer",
    "make_png",
    "png_size",
    "story_routes",
    "wait_until",
]
