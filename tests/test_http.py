"""newsmon.http against real HTTP servers on 127.0.0.1: limits, retries, redirects, refusals."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from newsmon import http as newsmon_http
from newsmon.config import FetchSettings
from newsmon.http import Fetcher, FetchLimits, private_address_kind

LIMITS = FetchLimits(
    timeout_seconds=2,
    deadline_seconds=8,
    max_bytes=64 * 1024,
    max_redirects=5,
    retries=2,
    backoff_seconds=0.01,
    user_agent="newsmon-test/1.0",
    allow_private_addresses=True,  # the test servers are on loopback
    concurrency=8,
    per_host_concurrency=2,
)
PAGE = b"<!doctype html><html><body><p>Hello</p></body></html>"


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    """A threaded server, so a slow handler never holds up the next test's requests."""
    httpserver = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    httpserver.start()
    yield httpserver
    httpserver.clear()
    httpserver.stop()


@pytest.fixture
def httpserver(server: HTTPServer) -> Iterator[HTTPServer]:
    server.clear()
    yield server
    server.clear()


def hits(server: HTTPServer, path: str) -> int:
    """Requests the server answered for path; counting by path keeps a slow handler left over
    from an earlier test from being counted here."""
    return sum(1 for request, _ in server.log if request.path == path)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(LIMITS) as fetcher:
        yield fetcher


def test_limits_from_settings_take_the_size_cap_from_the_caller() -> None:
    settings = FetchSettings()
    limits = FetchLimits.from_settings(settings, settings.max_page_bytes)
    assert limits.max_bytes == settings.max_page_bytes
    assert limits.allow_private_addresses is False
    assert limits.per_host_concurrency == settings.per_host_concurrency


def test_ok_response(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request(
        "/page", headers={"User-Agent": "newsmon-test/1.0"}
    ).respond_with_data(PAGE, content_type="text/html; charset=utf-8", headers={"ETag": '"v1"'})
    result = fetcher.get(httpserver.url_for("/page"), html_only=True)
    assert result.ok, result.error
    assert result.content == PAGE
    assert result.final_url == httpserver.url_for("/page")
    assert result.headers["etag"] == '"v1"'
    assert result.error is None and result.error_kind is None and not result.permanent
    [record] = result.requests
    assert record.status_code == 200 and record.bytes == len(PAGE) and record.error is None
    assert record.requested_at.tzinfo is not None


def test_gzip_body_is_decoded(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/gz").respond_with_data(
        gzip.compress(PAGE), content_type="text/html", headers={"Content-Encoding": "gzip"}
    )
    result = fetcher.get(httpserver.url_for("/gz"))
    assert result.ok and result.content == PAGE


def test_not_modified_with_if_none_match(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/feed", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304
    )
    result = fetcher.get(httpserver.url_for("/feed"), headers={"If-None-Match": '"v1"'})
    assert result.not_modified
    assert result.content is None and result.error is None and not result.ok


def test_404_is_permanent_and_not_retried(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/gone").respond_with_data("nope", status=404)
    result = fetcher.get(httpserver.url_for("/gone"))
    assert result.error == "HTTP 404 Not Found"
    assert result.error_kind == "http_status" and result.permanent and not result.ok
    assert result.status_code == 404
    assert hits(httpserver, "/gone") == 1 and len(result.requests) == 1


def test_500_then_200_is_retried(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_oneshot_request("/flaky").respond_with_data("oops", status=500)
    httpserver.expect_request("/flaky").respond_with_data(PAGE, content_type="text/html")
    result = fetcher.get(httpserver.url_for("/flaky"))
    assert result.ok and result.content == PAGE
    assert hits(httpserver, "/flaky") == 2
    assert [r.status_code for r in result.requests] == [500, 200]
    assert result.requests[0].error == "HTTP 500 Internal Server Error"


def test_persistent_503_gives_up_after_retries(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/down").respond_with_data("busy", status=503)
    result = fetcher.get(httpserver.url_for("/down"))
    assert result.error_kind == "http_status" and not result.permanent
    assert hits(httpserver, "/down") == LIMITS.retries + 1 == len(result.requests)


def test_429_honours_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/limited").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "0"}
    )
    httpserver.expect_request("/limited").respond_with_data(PAGE, content_type="text/html")
    # A backoff this long would show in the elapsed time if Retry-After: 0 were ignored.
    with Fetcher(replace(LIMITS, backoff_seconds=5)) as fetcher:
        started = time.monotonic()
        result = fetcher.get(httpserver.url_for("/limited"))
    assert result.ok
    assert time.monotonic() - started < 3
    assert hits(httpserver, "/limited") == 2


def test_redirect_is_followed(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data(PAGE, content_type="text/html")
    result = fetcher.get(httpserver.url_for("/old"))
    assert result.ok and result.content == PAGE
    assert result.url == httpserver.url_for("/old")
    assert result.final_url == httpserver.url_for("/new")
    assert [r.status_code for r in result.requests] == [301, 200]


def test_redirect_loop(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    result = fetcher.get(httpserver.url_for("/a"))
    assert result.error == "redirect loop"
    assert result.error_kind == "redirects" and result.permanent
    assert hits(httpserver, "/a") == hits(httpserver, "/b") == 1


def test_too_many_redirects(httpserver: HTTPServer) -> None:
    for hop in range(5):
        httpserver.expect_request(f"/r{hop}").respond_with_data(
            "", status=307, headers={"Location": f"/r{hop + 1}"}
        )
    with Fetcher(replace(LIMITS, max_redirects=2)) as fetcher:
        result = fetcher.get(httpserver.url_for("/r0"))
    assert result.error == "too many redirects (3 > 2)"
    assert result.error_kind == "redirects" and result.permanent
    assert [hits(httpserver, f"/r{hop}") for hop in range(5)] == [1, 1, 1, 0, 0]


def test_oversize_content_length(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 2000, content_type="text/html")
    with Fetcher(replace(LIMITS, max_bytes=1000)) as fetcher:
        result = fetcher.get(httpserver.url_for("/big"))
    assert result.error_kind == "too_large" and result.permanent and result.content is None
    assert result.error == "response exceeds 1000 bytes cap (Content-Length 2000)"


def test_oversize_chunked_body(httpserver: HTTPServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"y" * 100

    httpserver.expect_request("/stream").respond_with_response(
        Response(chunks(), content_type="text/html")
    )
    with Fetcher(replace(LIMITS, max_bytes=1000)) as fetcher:
        result = fetcher.get(httpserver.url_for("/stream"))
    assert "content-length" not in result.headers
    assert result.error == "response exceeds 1000 bytes cap"
    assert result.error_kind == "too_large"


def test_gzip_bomb_is_capped_on_decoded_size(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    bomb = gzip.compress(b"\0" * (4 * 1024 * 1024))
    assert len(bomb) < LIMITS.max_bytes
    httpserver.expect_request("/bomb").respond_with_data(
        bomb, content_type="text/html", headers={"Content-Encoding": "gzip"}
    )
    result = fetcher.get(httpserver.url_for("/bomb"))
    assert result.error == "response exceeds 64 KiB cap"


def test_slow_drip_body_is_cut_at_the_deadline(httpserver: HTTPServer) -> None:
    stop = threading.Event()

    def drip() -> Iterator[bytes]:
        for _ in range(100):  # 30 s if nobody stops it
            yield b"x"
            if stop.wait(0.3):
                return

    httpserver.expect_request("/drip").respond_with_response(
        Response(drip(), content_type="text/html")
    )
    limits = replace(LIMITS, timeout_seconds=1, deadline_seconds=2)
    try:
        with Fetcher(limits) as fetcher:
            started = time.monotonic()
            result = fetcher.get(httpserver.url_for("/drip"))
            elapsed = time.monotonic() - started
    finally:
        stop.set()
    assert result.error_kind == "deadline", result.error
    assert result.error == "deadline of 2 s exceeded"
    assert elapsed < 10
    assert not result.permanent and len(result.requests) == 1


@pytest.fixture
def header_drip_url() -> Iterator[str]:
    """A raw server that starts a response and then sends one header byte every 0.2 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.wait(0.2):
                try:
                    conn.sendall(b"a")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    listener.close()
    thread.join(timeout=5)


def test_slow_drip_headers_are_cut_at_the_deadline(header_drip_url: str) -> None:
    limits = replace(LIMITS, timeout_seconds=1, deadline_seconds=1.5, retries=0)
    with Fetcher(limits) as fetcher:
        started = time.monotonic()
        result = fetcher.get(header_drip_url)
        elapsed = time.monotonic() - started
    assert result.error_kind == "deadline", result.error
    assert elapsed < 10


def test_read_timeout(httpserver: HTTPServer) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5)
        return Response(PAGE, content_type="text/html")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    try:
        with Fetcher(replace(LIMITS, timeout_seconds=0.5, retries=0)) as fetcher:
            result = fetcher.get(httpserver.url_for("/slow"))
    finally:
        release.set()
    assert result.error == "timed out after 0.5 s"
    assert result.error_kind == "timeout" and not result.permanent


def test_connection_refused_is_retried() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with Fetcher(LIMITS) as fetcher:
        result = fetcher.get(f"http://127.0.0.1:{port}/")
    assert result.error_kind == "connection" and not result.permanent
    assert result.error is not None and result.error.startswith("connection failed:")
    assert len(result.requests) == LIMITS.retries + 1


def test_binary_file_named_html_is_not_html(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/file.html").respond_with_data(
        b"\x00\x01binary", content_type="application/octet-stream"
    )
    result = fetcher.get(httpserver.url_for("/file.html"), html_only=True)
    assert result.error == "not HTML (content-type application/octet-stream)"
    assert result.error_kind == "not_html" and result.permanent


def _without_content_type(body: bytes) -> Response:
    response = Response(body)
    del response.headers["Content-Type"]
    return response


def test_missing_content_type_is_sniffed(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/blob.html").respond_with_response(
        _without_content_type(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    )
    httpserver.expect_request("/plain.html").respond_with_response(_without_content_type(PAGE))
    blob = fetcher.get(httpserver.url_for("/blob.html"), html_only=True)
    assert "content-type" not in blob.headers
    assert blob.error_kind == "not_html"
    page = fetcher.get(httpserver.url_for("/plain.html"), html_only=True)
    assert page.ok and page.content == PAGE


def test_loopback_refused_unless_allowed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data(PAGE, content_type="text/html")
    with Fetcher(replace(LIMITS, allow_private_addresses=False)) as fetcher:
        result = fetcher.get(httpserver.url_for("/"))
    assert result.error == (
        "refused: 127.0.0.1 is a loopback address "
        "(set fetch.allow_private_addresses = true to allow)"
    )
    assert result.error_kind == "blocked" and result.permanent
    assert hits(httpserver, "/") == 0
    assert len(result.requests) == 1 and result.requests[0].status_code is None


def test_address_changed_after_the_check_is_refused_at_connect(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name looks public when checked, then points at loopback."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    monkeypatch.setattr(newsmon_http, "_resolve", lambda host: next(answers))
    httpserver.expect_request("/").respond_with_data(PAGE, content_type="text/html")
    with Fetcher(replace(LIMITS, allow_private_addresses=False, retries=0)) as fetcher:
        result = fetcher.get(httpserver.url_for("/"))
    assert result.error_kind == "blocked", result.error
    assert hits(httpserver, "/") == 0


def test_redirect_hop_to_internal_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hop is checked. httpx's MockTransport stands in for a public site, so nothing
    but the fake resolver below is asked about news.example."""
    monkeypatch.setattr(
        newsmon_http,
        "_resolve",
        lambda host: ["93.184.216.34"] if host == "news.example" else [host],
    )
    seen: list[str] = []

    def site(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    limits = replace(LIMITS, allow_private_addresses=False)
    with Fetcher(limits, transport=httpx.MockTransport(site)) as fetcher:
        result = fetcher.get("http://news.example/story")
    assert seen == ["http://news.example/story"]
    assert result.error_kind == "blocked" and result.permanent
    assert result.error is not None and "169.254.169.254 is a link-local address" in result.error
    assert result.final_url == "http://169.254.169.254/latest/"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.20", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_private_address_kind(address: str, kind: str | None) -> None:
    assert private_address_kind(address) == kind


def test_other_schemes_refused(fetcher: Fetcher) -> None:
    result = fetcher.get("ftp://example.com/file.html")
    assert result.error == "scheme 'ftp' not allowed"
    assert result.error_kind == "scheme" and result.permanent
    relative = fetcher.get("/just/a/path")
    assert relative.error_kind == "invalid_url" and relative.permanent


def test_get_many_keeps_order_and_per_host_limit(httpserver: HTTPServer) -> None:
    lock = threading.Lock()
    in_flight = 0
    most = 0

    def counted(request: Request) -> Response:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.15)
        with lock:
            in_flight -= 1
        return Response(request.path.encode(), content_type="text/html")

    for n in range(8):
        httpserver.expect_request(f"/n{n}").respond_with_handler(counted)
    urls = [httpserver.url_for(f"/n{n}") for n in range(8)]
    with Fetcher(LIMITS) as fetcher:
        results = fetcher.get_many([(url, None) for url in urls])
    assert [r.content for r in results] == [f"/n{n}".encode() for n in range(8)]
    assert most == LIMITS.per_host_concurrency



def _compressed_zeros(mib: int, wbits: int) -> bytes:
    """``mib`` MiB of zeros compressed a MiB at a time, so the test itself never holds them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    megabyte = bytes(1024 * 1024)
    return b"".join(compressor.compress(megabyte) for _ in range(mib)) + compressor.flush()


GZIP_WBITS, ZLIB_WBITS = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS


def _fetch_measuring_peak(fetcher: Fetcher, url: str) -> tuple[newsmon_http.FetchResult, float]:
    """The result and the most memory (MiB) Python allocated meanwhile: zlib's output buffers
    are bytes objects, so tracemalloc sees a decoder that expands a read without bound."""
    tracemalloc.start()
    try:
        result = fetcher.get(url)
        return result, tracemalloc.get_traced_memory()[1] / (1024 * 1024)
    finally:
        tracemalloc.stop()


def test_stacked_encodings_are_refused_before_anything_is_decoded(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    # 256 MiB of zeros gzipped twice is 3 KiB: decoded a network read at a time, as httpx does,
    # one read expands to 256 MiB.
    bomb = gzip.compress(_compressed_zeros(256, GZIP_WBITS), compresslevel=9)
    assert len(bomb) < 4096
    httpserver.expect_request("/stacked").respond_with_data(
        bomb, content_type="text/html", headers={"Content-Encoding": "gzip, gzip"}
    )
    result, peak_mib = _fetch_measuring_peak(fetcher, httpserver.url_for("/stacked"))
    assert not result.ok
    assert result.error == "Content-Encoding 'gzip, gzip' refused: more than one encoding"
    assert result.permanent
    assert peak_mib < 16


@pytest.mark.parametrize("encoding, wbits", [("gzip", GZIP_WBITS), ("deflate", ZLIB_WBITS)])
def test_a_single_encoding_is_capped_while_it_is_decoded(
    httpserver: HTTPServer, fetcher: Fetcher, encoding: str, wbits: int
) -> None:
    # 48 MiB in 48 KiB, under the cap on the wire: one network read expands to all of it.
    body = _compressed_zeros(48, wbits)
    assert len(body) < LIMITS.max_bytes
    httpserver.expect_request(f"/one-{encoding}").respond_with_data(
        body, content_type="text/html", headers={"Content-Encoding": encoding}
    )
    result, peak_mib = _fetch_measuring_peak(fetcher, httpserver.url_for(f"/one-{encoding}"))
    assert result.error == "response exceeds 64 KiB cap"
    assert result.permanent
    assert peak_mib < 16


def test_deflate_without_zlib_header_is_decoded(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = compressor.compress(PAGE) + compressor.flush()
    httpserver.expect_request("/raw-deflate").respond_with_data(
        raw_deflate, content_type="text/html", headers={"Content-Encoding": "deflate"}
    )
    result = fetcher.get(httpserver.url_for("/raw-deflate"))
    assert result.ok, result.error
    assert result.content == PAGE


def test_a_corrupt_gzip_body_is_a_clear_error(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/corrupt").respond_with_data(
        b"\x1f\x8b not really gzip", content_type="text/html",
        headers={"Content-Encoding": "gzip"},
    )
    result = fetcher.get(httpserver.url_for("/corrupt"))
    assert result.error is not None
    assert result.error.startswith("cannot decode gzip body:")
    assert result.permanent


def test_an_encoding_newsmon_did_not_ask_for_is_refused(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    httpserver.expect_request("/br", headers={"Accept-Encoding": "gzip, deflate"}).respond_with_data(
        b"\x0b\x02\x80hello\x03", content_type="text/html", headers={"Content-Encoding": "br"}
    )
    result = fetcher.get(httpserver.url_for("/br"))
    assert result.error == "Content-Encoding 'br' not supported (asked for gzip or deflate)"
    assert result.permanent
