"""Hostile responses: what a compression bomb, a silent host and a 100,000-item feed cost a run.

Each scenario is one `newsmon ingest` (a real process, a fresh warehouse) against sites served
on loopback, next to a reference run of the same healthy feed alone, measured in the same
invocation:

- bomb: a feed and an article page sent as ``Content-Encoding: gzip, gzip``, 2 GiB of zeros
  compressed twice (a few KB on the wire);
- silent: a feed whose links point at a host that accepts connections and never answers;
- huge: a feed of ``--items`` entries (100,000 by default) linking to pages of the site.

For each it prints the peak memory of the largest newsmon process (the flow's or a worker's),
the delay from the healthy feed's poll (answered 0.3 s after it arrives, so that the other
feed's pages are out first) to the first request for one of its pages, the page
requests the run made, its time, and the size of the run's ``runs.errors``; and each as a ratio
to the reference run.

    .venv/bin/python bench/hostile.py [--items 100000] [--silent-pages 6] [--python PY]

``--python`` names the interpreter whose newsmon is measured (another checkout's venv, to
compare a version before a change with the one after it, side by side).
"""

from __future__ import annotations

import argparse
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HEALTHY_PAGES = 10
HEALTHY_FEED_DELAY = 0.3
SENTENCE = ("The ministry said on Tuesday that talks with its neighbours would continue next "
            "month after a week in which officials met twice and agreed on a joint statement.")

# The child runs newsmon and reports the peak resident memory of the largest process in its
# tree (Linux: RUSAGE_CHILDREN is the largest reaped descendant, workers included).
_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code, file=sys.stderr)\n"
)


def article(n: int) -> bytes:
    words = SENTENCE.split()
    text = " ".join(words[(n + i) % len(words)] for i in range(400))
    return (f"<html><head><title>Story {n}</title></head><body><article><h1>Story {n}</h1>"
            + "".join(f"<p>{text[i:i + 400]}</p>" for i in range(0, len(text), 400))
            + "</article></body></html>").encode()


def rss(title: str, links: list[str]) -> bytes:
    """A feed of bare items, a link each (100,000 of them make a feed of about 6 MB)."""
    items = "".join(f"<item><link>{link}</link></item>" for link in links)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
            f"{items}</channel></rss>").encode()


def double_gzip_bomb(gib: int) -> bytes:
    """``gib`` GiB of zeros gzipped, a MiB at a time, then gzipped again."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    megabyte = bytes(1024 * 1024)
    inner = b"".join(compressor.compress(megabyte) for _ in range(gib * 1024))
    return gzip.compress(inner + compressor.flush(), compresslevel=9)


class Site(ThreadingHTTPServer):
    """Documents by path, each with its extra headers; every request's arrival time noted."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.documents: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.arrivals: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def first(self, prefix: str) -> float | None:
        return min((t for t, path in self.arrivals if path.startswith(prefix)), default=None)

    def count(self, prefix: str) -> int:
        return sum(1 for _, path in self.arrivals if path.startswith(prefix))


class _Handler(BaseHTTPRequestHandler):
    server: Site
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.arrivals.append((time.monotonic(), self.path))
        document = self.server.documents.get(self.path)
        if self.path == "/healthy.xml":
            time.sleep(HEALTHY_FEED_DELAY)  # so the other feed's pages are always out first
        if document is None:
            self.send_error(404)
            return
        body, content_type, headers = document
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class SilentHost:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return

    def url(self, path: str) -> str:
        return f"http://localhost:{self.listener.getsockname()[1]}{path}"


@dataclass
class Figures:
    seconds: float
    peak_mib: float
    healthy_delay: float | None
    page_requests: int
    errors_bytes: int


def run_ingest(python: str, site: Site, feeds: list[str], folder: Path, env: dict) -> Figures:
    folder.mkdir(parents=True)
    config = folder / "newsmon.toml"
    config.write_text(
        '[warehouse]\npath = "newsmon.duckdb"\n[fetch]\nallow_private_addresses = true\n'
        + "".join(f'[[feeds]]\nurl = "{site.url(feed)}"\n' for feed in feeds),
        encoding="utf-8",
    )
    with site.lock:
        site.arrivals.clear()
    started = time.monotonic()
    finished = subprocess.run(
        [python, "-c", _MEASURE, python, "-m", "newsmon", "--config", str(config), "ingest"],
        capture_output=True, text=True, env=env, cwd=folder, check=False,
    )
    seconds = time.monotonic() - started
    peak_kib, code = finished.stderr.strip().splitlines()[-1].split()
    if code not in ("0", "1"):
        raise SystemExit(f"newsmon ingest exited {code}:\n{finished.stderr[-3000:]}")
    poll, page = site.first("/healthy.xml"), site.first("/h/")
    errors = subprocess.run(
        [python, "-c", "import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True)"
         ".execute('SELECT max(length(errors::VARCHAR)) FROM runs').fetchone()[0] or 0)",
         str(folder / "newsmon.duckdb")],
        capture_output=True, text=True, check=True,
    ).stdout
    return Figures(seconds, int(peak_kib) / 1024,
                   None if poll is None or page is None else page - poll,
                   site.count("/h/") + site.count("/bomb.html") + site.count("/x/"),
                   int(errors))


def show(name: str, figures: Figures, reference: Figures) -> None:
    delay = "-" if figures.healthy_delay is None else f"{figures.healthy_delay:6.2f} s"
    reference_delay = reference.healthy_delay or 0.0
    delay_ratio = (f"{figures.healthy_delay / reference_delay:6.1f}x"
                   if figures.healthy_delay is not None and reference_delay > 0 else "-")
    print(f"{name:<10} {figures.seconds:7.1f} s ({figures.seconds / reference.seconds:5.1f}x)  "
          f"peak {figures.peak_mib:7.0f} MiB ({figures.peak_mib / reference.peak_mib:5.2f}x)  "
          f"healthy delay {delay} ({delay_ratio})  page requests {figures.page_requests:7d}  "
          f"runs.errors {figures.errors_bytes:9d} bytes", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--silent-pages", type=int, default=6)
    parser.add_argument("--bomb-gib", type=int, default=2)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()

    site, silent = Site(), SilentHost()
    threading.Thread(target=site.serve_forever, daemon=True).start()
    bomb = double_gzip_bomb(args.bomb_gib)
    html, feed_type = "text/html; charset=utf-8", "application/rss+xml"
    stacked = {"Content-Encoding": "gzip, gzip"}
    site.documents.update({f"/h/{n}.html": (article(n), html, {}) for n in range(HEALTHY_PAGES)})
    site.documents.update({
        "/healthy.xml": (rss("Healthy", [site.url(f"/h/{n}.html")
                                         for n in range(HEALTHY_PAGES)]), feed_type, {}),
        "/bomb.html": (bomb, html, stacked),
        "/bomb-feed.xml": (bomb, feed_type, stacked),
        "/bomb-page.xml": (rss("Bomb page", [site.url("/bomb.html")]), feed_type, {}),
        "/silent.xml": (rss("Silent", [silent.url(f"/{n}.html")
                                       for n in range(args.silent_pages)]), feed_type, {}),
        "/huge.xml": (rss("Huge", [site.url(f"/x/{n}") for n in range(args.items)]),
                      feed_type, {}),
    })
    print(f"newsmon: {args.python}\nbomb: {len(bomb)} bytes on the wire for {args.bomb_gib} GiB; "
          f"huge feed: {args.items} items, {len(site.documents['/huge.xml'][0])} bytes; "
          f"silent host: {args.silent_pages} pages", flush=True)
    with tempfile.TemporaryDirectory(prefix="newsmon-hostile-") as scratch:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("PREFECT_API")}
        env |= {"PREFECT_HOME": str(Path(scratch) / "prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        # A first run migrates Prefect's new database (many seconds): not part of any figure.
        run_ingest(args.python, site, ["/healthy.xml"], Path(scratch) / "warm-up", env)
        reference = run_ingest(args.python, site, ["/healthy.xml"], Path(scratch) / "ref", env)
        show("reference", reference, reference)
        scenarios = {
            "bomb": ["/bomb-feed.xml", "/bomb-page.xml", "/healthy.xml"],
            "silent": ["/silent.xml", "/healthy.xml"],
            "huge": ["/huge.xml", "/healthy.xml"],
        }
        for name, feeds in scenarios.items():
            show(name, run_ingest(args.python, site, feeds, Path(scratch) / name, env), reference)


if __name__ == "__main__":
    main()
