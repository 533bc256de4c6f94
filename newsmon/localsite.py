"""A static site served on loopback, with ETag and Last-Modified like a well-behaved outlet.

`newsmon demo` serves its demo outlet with it, and bench/ingest.py its synthetic outlets, so
both exercise the real HTTP path, conditional GET included, without the internet.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Document = tuple[bytes, str]  # (body, content type)


class _Handler(BaseHTTPRequestHandler):
    server: SiteServer
    # Keep-alive, as news sites serve: a client reads many pages over one connection.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the body then waits for the
    # client's delayed ACK of the headers, 40 ms per response on Linux, which production servers
    # do not make their clients wait.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        document = self.server.documents.get(path)
        with self.server.count_lock:
            self.server.requests += 1
        if document is None:
            self.send_error(404)
            return
        body, content_type = document
        etag = self.server.etags[path]
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.server.last_modified)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the demo's and the benchmark's output is about newsmon, not the site."""


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, documents: Mapping[str, Document]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.documents = dict(documents)
        # Hashed once here, not per request: the benchmark's site counts against the pipeline's
        # CPU on the same cores.
        self.etags = {
            path: f'"{hashlib.sha1(body).hexdigest()}"' for path, (body, _) in documents.items()
        }
        self.last_modified = formatdate(usegmt=True)
        self.requests = 0
        self.count_lock = threading.Lock()

    def url(self, path: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{path}"


@contextmanager
def serving(documents: Mapping[str, Document]) -> Iterator[SiteServer]:
    """The site, served from a background thread for the duration of the block."""
    server = SiteServer(documents)
    thread = threading.Thread(target=server.serve_forever, name="newsmon-site", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
