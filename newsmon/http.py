"""newsmon's one HTTP client: every feed and page download goes through `Fetcher`.

Feeds and article links come from outside, so every URL is treated as hostile: only http(s),
no private or internal addresses (server-side request forgery), bounded size, bounded time.
httpx alone bounds each socket operation, not a whole response, and Prefect's task timeout
cannot interrupt blocking I/O, so the total deadline is enforced here. Network and HTTP
problems never raise: they come back as a `FetchResult` whose `error` says what went wrong
and whose `permanent` says whether asking again could help.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from newsmon.config import FetchSettings
from newsmon.credentials import SiteLogin, origin, redact_url

__all__ = [
    "FetchLimits",
    "FetchResult",
    "Fetcher",
    "RequestRecord",
    "private_address_kind",
]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Retry-After can ask for hours; a batch must not stall on one host for longer than this.
RETRY_AFTER_CAP_SECONDS = 30.0
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Timed-out attempts, which count towards giving up on their host for the run.
_TIMEOUT_KINDS = frozenset({"timeout", "deadline"})
# Asking again cannot change these outcomes; for http_status it depends on the code.
_PERMANENT_KINDS = frozenset(
    {"blocked", "scheme", "invalid_url", "not_html", "too_large", "redirects", "encoding"}
)
# The encodings newsmon asks for, each decoded here with a bound on its output (see
# _BoundedDecoder); the zlib window bits that read each one.
ACCEPT_ENCODING = "gzip, deflate"
_ZLIB_WBITS = {
    "gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS,
}
# Socket timeouts can fire a hair before the deadline they were clamped to.
_DEADLINE_SLACK_SECONDS = 0.05
# Formats whose files servers like to label .html or send without a Content-Type.
_BINARY_MAGIC = (b"%PDF-", b"PK\x03\x04", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"\x1f\x8b")
_TEXT_CONTROLS = frozenset({0x09, 0x0A, 0x0C, 0x0D, 0x1B})


@dataclass(frozen=True)
class FetchLimits:
    """Everything a `Fetcher` enforces; built from the config so tests can tighten it."""

    timeout_seconds: float
    deadline_seconds: float
    max_bytes: int
    max_redirects: int
    retries: int
    backoff_seconds: float
    user_agent: str
    allow_private_addresses: bool
    concurrency: int
    per_host_concurrency: int
    host_timeouts_per_run: int = 2

    @classmethod
    def from_settings(cls, settings: FetchSettings, max_bytes: int) -> FetchLimits:
        """Feeds and pages share every setting but the size cap, so the caller picks that."""
        return cls(
            timeout_seconds=settings.timeout_seconds,
            deadline_seconds=settings.deadline_seconds,
            max_bytes=max_bytes,
            max_redirects=settings.max_redirects,
            retries=settings.retries,
            backoff_seconds=settings.backoff_seconds,
            user_agent=settings.user_agent,
            allow_private_addresses=settings.allow_private_addresses,
            concurrency=settings.concurrency,
            per_host_concurrency=settings.per_host_concurrency,
            host_timeouts_per_run=settings.host_timeouts_per_run,
        )


@dataclass(frozen=True)
class RequestRecord:
    """One attempt at one URL (a retry or a redirect hop is a new record), for the fetch log.

    Attempts refused before any connection (scheme, blocked address, DNS) are recorded too, with
    no status, so the log shows every URL newsmon was asked to touch. `bytes` counts body bytes
    as they came over the wire (before decompression).
    """

    url: str
    requested_at: datetime
    status_code: int | None
    bytes: int
    duration_ms: float
    error: str | None


@dataclass(frozen=True)
class FetchResult:
    """The outcome of `Fetcher.get`.

    `final_url` is the last URL attempted (after redirects), whether or not it answered, so an
    error names the hop that failed. `headers` has lowercase keys. `content` is set only for a
    successful response and is already decoded from its Content-Encoding.
    """

    url: str
    final_url: str | None
    status_code: int | None
    headers: Mapping[str, str]
    content: bytes | None
    error: str | None
    error_kind: str | None
    permanent: bool
    requests: tuple[RequestRecord, ...]

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.content is not None
            and self.status_code is not None
            and 200 <= self.status_code < 300
        )

    @property
    def not_modified(self) -> bool:
        return self.status_code == 304 and self.error is None


def private_address_kind(ip: str) -> str | None:
    """Why an address must not be fetched from ("loopback", "private", ...), or None if public.

    IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) reach the IPv4 host, so they are judged as
    that host. Anything not globally routable is refused even if it fits no named category
    (carrier-grade NAT 100.64.0.0/10, for example).
    """
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, matches in checks if matches), None)


class _Refused(httpcore.ConnectError):
    """A host newsmon will not connect to.

    It subclasses httpcore's ConnectError so that, raised inside the connection pool, it
    travels out through httpx as the cause of an httpx.ConnectError with its reason intact.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def _resolve(host: str) -> list[str]:
    """All addresses of host, in resolver order and without repeats."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _public_addresses(host: str) -> list[str]:
    """Resolve host, refusing it if any address is internal.

    Any, not all: a name that also points inside lets an attacker pick which one is used.
    """
    try:
        addresses = _resolve(host)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _Refused(f"cannot resolve host {host!r}: {reason}", "dns") from None
    for address in addresses:
        kind = private_address_kind(address)
        if kind is not None:
            article = "an" if kind[0] in "aeiou" else "a"
            raise _Refused(
                f"refused: {address} is {article} {kind} address "
                "(set fetch.allow_private_addresses = true to allow)",
                "blocked",
            )
    return addresses


# The deadline of the get() running on this thread. httpx's sync client does its socket I/O on
# the calling thread, so the network stream below can read it without it being passed through.
_current = threading.local()


def _time_left(timeout: float | None, on_expiry: type[Exception]) -> float | None:
    """Shrink a per-operation timeout so that no socket call outlives the deadline."""
    deadline = getattr(_current, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise on_expiry("deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write stops at the caller's deadline.

    Without it a server that drips its response headers a byte at a time, each byte inside
    the read timeout, would hold a worker thread for as long as it liked.
    """

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _time_left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses it has just vetted itself.

    The check before each request resolves the name once and httpx would resolve it again to
    connect; a name whose DNS answer changes in between (DNS rebinding) would slip through.
    Connecting to the vetted address closes that gap. TLS still verifies the host name,
    because httpcore takes the SNI name from the URL, not from the address connected to.
    """

    def __init__(self, allow_private_addresses: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private_addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = [host] if self._allow_private else _public_addresses(host)
        failure: httpcore.ConnectError | None = None
        for address in addresses:  # a host without IPv6 connectivity fails on AAAA first
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    _time_left(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        assert failure is not None  # getaddrinfo never answers with an empty list
        raise failure


@functools.cache
def _build_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


_ssl_context_lock = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """The default TLS context. Loading the CA bundle takes about 50 ms, and every run makes two
    Fetchers (feeds, pages), so it is made once per process; a context is safe to share. The
    lock makes a Fetcher wait for one that ``prepare_ssl_context`` is still building."""
    with _ssl_context_lock:
        return _build_ssl_context()


def prepare_ssl_context() -> None:
    """Build the TLS context on a background thread, ready for the first Fetcher.

    OpenSSL loads the CA bundle without holding the interpreter lock, so begun early (the CLI
    does so before it imports Prefect) those 50 ms overlap with other work.
    """
    threading.Thread(target=_ssl_context, name="newsmon-tls-context", daemon=True).start()


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over `_GuardedBackend`.

    httpx has no public way to choose the network backend of its connection pool, so the pool
    is rebuilt with public httpcore arguments and put where HTTPTransport keeps it.
    """

    def __init__(self, limits: FetchLimits) -> None:
        ssl_context = _ssl_context()
        super().__init__(verify=ssl_context)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.concurrency,
            max_keepalive_connections=limits.concurrency,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(limits.allow_private_addresses),
        )


class _TooLarge(Exception):
    pass


def _has_zlib_header(data: bytes) -> bool:
    """RFC 1950: method 8 in the low nibble, and the two header bytes a multiple of 31."""
    return len(data) >= 2 and data[0] & 0x0F == zlib.DEFLATED and (data[0] << 8 | data[1]) % 31 == 0


class _BoundedDecoder:
    """Undoes one Content-Encoding, never producing more than ``limit`` bytes in all.

    httpx decodes a whole network read at once, so a few KiB compressed twice can become
    gigabytes before any cap counts them, and nothing can interrupt it. zlib's ``max_length``
    stops each step at the bytes still allowed instead. A body with no encoding passes through.
    """

    def __init__(self, encoding: str | None, limit: int) -> None:
        self._encoding = encoding
        self._left = limit
        self._zlib = zlib.decompressobj(_ZLIB_WBITS[encoding]) if encoding else None
        self._started = False

    def decode(self, data: bytes) -> bytes:
        """The decoded bytes of the next raw chunk; raises _TooLarge past the limit and
        zlib.error for a body that is not what its encoding says."""
        if self._zlib is None:
            return self._count(data)
        if not self._started and self._encoding == "deflate":
            # Servers send "deflate" both with zlib's header (as the RFC says) and without.
            self._started = True
            if not _has_zlib_header(data):
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._count(self._zlib.decompress(data, self._left + 1))

    def flush(self) -> bytes:
        return self._count(self._zlib.flush()) if self._zlib is not None else b""

    def _count(self, decoded: bytes) -> bytes:
        self._left -= len(decoded)
        if self._left < 0:
            raise _TooLarge
        return decoded


def _content_encoding(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(the one encoding to undo or None, or an error saying why the body cannot be read)."""
    listed = headers.get("content-encoding", "")
    codings = [c for c in (part.strip().lower() for part in listed.split(","))
               if c not in ("", "identity")]
    if len(codings) > 1:
        return None, f"Content-Encoding {listed!r} refused: more than one encoding"
    if codings and codings[0] not in _ZLIB_WBITS:
        return None, f"Content-Encoding {listed!r} not supported (asked for gzip or deflate)"
    return (codings[0] if codings else None), None


@dataclass(frozen=True)
class _Outcome:
    """What one attempt at one URL produced: a response, a redirect to follow, or a failure."""

    status_code: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    location: str | None = None
    error: str | None = None
    kind: str | None = None
    retry_after: float | None = None
    wire_bytes: int = 0

    @property
    def retryable(self) -> bool:
        if self.kind in ("timeout", "connection"):
            return True
        status = self.status_code or 0
        return self.kind == "http_status" and (status in (408, 429) or status >= 500)


def _seconds(value: float) -> str:
    return f"{value:g}"


def _size(value: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if value % scale == 0:
            return f"{value // scale} {unit}"
    return f"{value} bytes"


def _reason(status: int, response: httpx.Response) -> str:
    """The standard phrase rather than the server's spelling of it, so that logs group."""
    return httpx.codes.get_reason_phrase(status) or response.reason_phrase


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _looks_binary(content: bytes) -> bool:
    """Whether a body sent without a Content-Type is clearly not markup."""
    sample = content[:1024]
    if sample.startswith(_BINARY_MAGIC) or b"\x00" in sample:
        return True
    controls = sum(1 for byte in sample if byte < 0x20 and byte not in _TEXT_CONTROLS)
    return controls > len(sample) // 10


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The numeric Retry-After, capped; the rare HTTP-date form falls back on backoff."""
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return min(value, RETRY_AFTER_CAP_SECONDS)


def _host_key(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__


class RequestSlots:
    """How many requests may be open at once, in all and per host, and which hosts are given up.

    One is shared by the fetchers of a run (feeds and pages have different size caps, so each
    has its own `Fetcher`), so that together they keep to a few requests per host. A host whose
    requests have timed out ``give_up_after`` times is skipped for the rest of the run: one that
    accepts connections and never answers would otherwise hold its slots for a deadline a page.
    """

    def __init__(self, concurrency: int, per_host_concurrency: int, give_up_after: int) -> None:
        self._overall = threading.BoundedSemaphore(concurrency)
        self._per_host_concurrency = per_host_concurrency
        self._give_up_after = give_up_after
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._timeouts: dict[str, int] = {}
        self._hosts_lock = threading.Lock()

    @classmethod
    def from_limits(cls, limits: FetchLimits) -> RequestSlots:
        return cls(limits.concurrency, limits.per_host_concurrency, limits.host_timeouts_per_run)

    @contextmanager
    def hold(self, url: str) -> Iterator[None]:
        """Wait for a slot for url's host, then for one overall, and hold both meanwhile."""
        key = _host_key(url)
        with self._hosts_lock:
            host = self._hosts.get(key)
            if host is None:
                host = threading.BoundedSemaphore(self._per_host_concurrency)
                self._hosts[key] = host
        with host, self._overall:
            yield

    def note_timeout(self, url: str) -> None:
        key = _host_key(url)
        with self._hosts_lock:
            self._timeouts[key] = self._timeouts.get(key, 0) + 1

    def given_up(self, url: str) -> str | None:
        """Why url's host is skipped for the rest of the run, or None if it is not."""
        key = _host_key(url)
        timeouts = self._timeouts.get(key, 0)
        if timeouts < self._give_up_after:
            return None
        return (f"host {key} skipped for the rest of this run: {self._give_up_after} requests "
                "to it timed out")


class Fetcher:
    """Thread-safe downloader that owns one httpx.Client; use it as a context manager.

    Pass `transport` to put something other than the network under it (httpx.MockTransport);
    the address check before each request still applies, the connect-time check and the
    socket-level deadline belong to the default transport. Fetchers given the same `slots`
    stay within its limits together. `logins` are sent with every request to their site (the
    private feed and its pages) and to no other; a login written into a URL is used for that
    request, and every URL the fetcher reports back has its password hidden.
    """

    def __init__(
        self,
        limits: FetchLimits,
        *,
        transport: httpx.BaseTransport | None = None,
        slots: RequestSlots | None = None,
        logins: Iterable[SiteLogin] = (),
    ) -> None:
        self._limits = limits
        # First login per site wins: several feeds of one site normally share one.
        self._logins: dict[tuple[str, str, int], httpx.BasicAuth] = {}
        for login in logins:
            self._logins.setdefault(login.site, httpx.BasicAuth(login.user, login.password))
        self._client = httpx.Client(
            transport=transport or _GuardedTransport(limits),
            # Only what _BoundedDecoder can undo within the size cap.
            headers={"User-Agent": limits.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=limits.timeout_seconds,
            follow_redirects=False,  # every hop must pass the scheme and address checks
            # No environment proxies (the address check must see the addresses connected to)
            # and no ~/.netrc credentials sent to whatever host a feed names.
            trust_env=False,
        )
        # Shared by every get(), so concurrent get_many() calls are polite together too.
        self._slots = slots or RequestSlots.from_limits(limits)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, html_only: bool = False
    ) -> FetchResult:
        """Download url, following redirects, within the limits; never raises for network trouble.

        `headers` are sent as given (conditional GET validators, typically) and may replace
        the User-Agent. With `html_only`, anything that is not an HTML page is refused, so
        article links to PDFs or images never reach the extractor. Waiting for a free slot
        (per host and overall) does not count against the deadline.
        """
        with self._slots.hold(url):
            return self._get(url, dict(headers or {}), html_only)

    def get_many(
        self,
        requests: Sequence[tuple[str, Mapping[str, str] | None]],
        *,
        html_only: bool = False,
    ) -> list[FetchResult]:
        """`get` for each (url, headers) pair, concurrently, results in the same order."""
        results = dict(self.iter_many(requests, html_only=html_only))
        return [results[index] for index in range(len(requests))]

    def iter_many(
        self,
        requests: Sequence[tuple[str, Mapping[str, str] | None]],
        *,
        html_only: bool = False,
    ) -> Iterator[tuple[int, FetchResult]]:
        """`get` for each (url, headers) pair, concurrently; yields (index, result) as each
        download finishes, so that the caller can start on a page while the rest download.

        Work is started host by host in turn, so that a batch holding many links to one outlet
        does not fill every thread with requests that then wait for that host's slots.
        """
        if not requests:
            return
        by_host: dict[str, list[int]] = {}
        for index, (url, _) in enumerate(requests):
            by_host.setdefault(_host_key(url), []).append(index)
        order = [
            index
            for round_ in itertools.zip_longest(*by_host.values())
            for index in round_
            if index is not None
        ]
        # More threads than the hosts' slots only wait on them, and contend for the GIL meanwhile.
        usable = sum(min(len(indexes), self._limits.per_host_concurrency)
                     for indexes in by_host.values())
        workers = min(self._limits.concurrency, usable)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="newsmon-fetch") as pool:
            futures = {
                pool.submit(
                    self.get, requests[index][0], headers=requests[index][1], html_only=html_only
                ): index
                for index in order
            }
            for future in as_completed(futures):
                yield futures[future], future.result()

    def _get(self, url: str, headers: dict[str, str], html_only: bool) -> FetchResult:
        deadline = time.monotonic() + self._limits.deadline_seconds
        records: list[RequestRecord] = []
        current = url
        seen: set[str] = set()
        for redirects in itertools.count(1):
            outcome = self._follow_retries(current, headers, deadline, html_only, records)
            if outcome.location is None:
                break
            seen.add(str(httpx.URL(current)))  # normalised, as the joined targets are
            try:
                target = str(httpx.URL(current).join(outcome.location))
            except httpx.InvalidURL:
                outcome = replace(
                    outcome, error=f"invalid redirect to {outcome.location!r}", kind="redirects"
                )
                break
            if target in seen:
                outcome = replace(outcome, error="redirect loop", kind="redirects")
                break
            if redirects > self._limits.max_redirects:
                outcome = replace(
                    outcome,
                    error=f"too many redirects ({redirects} > {self._limits.max_redirects})",
                    kind="redirects",
                )
                break
            seen.add(target)
            current = target
        permanent = outcome.kind in _PERMANENT_KINDS or (
            outcome.kind == "http_status" and not outcome.retryable
        )
        return FetchResult(
            url=redact_url(url),
            final_url=redact_url(current),
            status_code=outcome.status_code,
            headers=outcome.headers,
            content=outcome.content if outcome.error is None else None,
            error=outcome.error,
            error_kind=outcome.kind,
            permanent=permanent,
            requests=tuple(records),
        )

    def _follow_retries(
        self,
        url: str,
        headers: Mapping[str, str],
        deadline: float,
        html_only: bool,
        records: list[RequestRecord],
    ) -> _Outcome:
        """Attempt url until it answers, retrying only what a second try can fix.

        A wait that would end past the deadline is not started: the last error is more useful
        than "deadline exceeded". Nor is a retry to a host given up on for the run; a host
        already given up on is not asked at all (``host_skipped``).
        """
        skipped = self._slots.given_up(url)
        if skipped is not None:
            return _Outcome(error=skipped, kind="host_skipped")
        attempt = 0
        while True:
            requested_at = datetime.now(UTC)
            started = time.monotonic()
            outcome = self._attempt(url, headers, deadline, html_only)
            if outcome.kind in _TIMEOUT_KINDS:
                self._slots.note_timeout(url)
            records.append(
                RequestRecord(
                    url=redact_url(url),
                    requested_at=requested_at,
                    status_code=outcome.status_code,
                    bytes=outcome.wire_bytes,
                    duration_ms=(time.monotonic() - started) * 1000,
                    error=outcome.error,
                )
            )
            given_up = self._slots.given_up(url) is not None
            if not outcome.retryable or attempt >= self._limits.retries or given_up:
                return outcome
            delay = outcome.retry_after
            if delay is None:
                delay = self._limits.backoff_seconds * 2**attempt
            if time.monotonic() + delay >= deadline:
                return outcome
            time.sleep(delay)
            attempt += 1

    def _refusal(self, url: str) -> _Outcome | None:
        """Why url must not be requested at all, checked before every attempt and every hop."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            return _Outcome(error=f"invalid URL: {exc}", kind="invalid_url")
        if not parsed.scheme:
            return _Outcome(error=f"invalid URL {url!r}: not absolute", kind="invalid_url")
        if parsed.scheme not in ("http", "https"):
            return _Outcome(error=f"scheme {parsed.scheme!r} not allowed", kind="scheme")
        if not parsed.raw_host:
            return _Outcome(error=f"invalid URL {url!r}: no host", kind="invalid_url")
        if self._limits.allow_private_addresses:
            return None
        try:
            _public_addresses(parsed.raw_host.decode("ascii"))
        except _Refused as exc:
            return _Outcome(error=str(exc), kind=exc.kind)
        return None

    def _attempt(
        self, url: str, headers: Mapping[str, str], deadline: float, html_only: bool
    ) -> _Outcome:
        refusal = self._refusal(url)
        if refusal is not None:
            return refusal
        left = deadline - time.monotonic()
        if left <= 0:
            return self._deadline_exceeded()
        target, auth = self._login_for(url)
        response: httpx.Response | None = None
        _current.deadline = deadline
        try:
            with self._client.stream(
                "GET", target, headers=headers, auth=auth,
                timeout=min(self._limits.timeout_seconds, left),
            ) as response:
                outcome = self._read(response, deadline, html_only)
                return replace(outcome, wire_bytes=response.num_bytes_downloaded)
        except httpx.RequestError as exc:
            outcome = self._failure(exc, deadline)
            if response is not None:
                outcome = replace(
                    outcome,
                    status_code=response.status_code,
                    wire_bytes=response.num_bytes_downloaded,
                )
            return outcome
        finally:
            _current.deadline = None

    def _login_for(self, url: str) -> tuple[httpx.URL, httpx.Auth | None]:
        """The URL to request, without any login written into it, and the login to send.

        A stored URL has its password as ``***``, so the site's login comes from the config; a
        URL with a real password (given to the fetcher directly) brings its own.
        """
        parsed = httpx.URL(url)
        auth: httpx.Auth | None = self._logins.get(origin(url) or ("", "", 0))
        if not parsed.userinfo:
            return parsed, auth
        if auth is None and parsed.password and parsed.password != "***":
            auth = httpx.BasicAuth(parsed.username, parsed.password)
        return parsed.copy_with(userinfo=b""), auth

    def _read(self, response: httpx.Response, deadline: float, html_only: bool) -> _Outcome:
        """Turn a response into an outcome, reading the body only when it is wanted."""
        status = response.status_code
        headers = dict(response.headers.items())
        if status in _REDIRECT_STATUSES and "location" in headers:
            return _Outcome(status, headers, location=headers["location"])
        if status == 304:
            return _Outcome(status, headers)
        if not 200 <= status < 300:
            return _Outcome(
                status,
                headers,
                error=f"HTTP {status} {_reason(status, response)}".rstrip(),
                kind="http_status",
                retry_after=_retry_after(headers),
            )
        cap = self._limits.max_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            return _Outcome(
                status,
                headers,
                error=f"response exceeds {_size(cap)} cap (Content-Length {declared})",
                kind="too_large",
            )
        media_type = _media_type(headers)
        if html_only and media_type and media_type not in HTML_TYPES:
            return _Outcome(
                status, headers, error=f"not HTML (content-type {media_type})", kind="not_html"
            )
        encoding, refusal = _content_encoding(headers)
        if refusal is not None:
            return _Outcome(status, headers, error=refusal, kind="encoding")
        # The cap counts decoded bytes and is enforced while decoding, so no compressed
        # response, however small, expands past it.
        decoder = _BoundedDecoder(encoding, cap)
        chunks: list[bytes] = []
        try:
            for raw in response.iter_raw():
                chunks.append(decoder.decode(raw))
                if time.monotonic() > deadline:
                    return replace(self._deadline_exceeded(), status_code=status, headers=headers)
            chunks.append(decoder.flush())
        except _TooLarge:
            return _Outcome(
                status, headers, error=f"response exceeds {_size(cap)} cap", kind="too_large"
            )
        except zlib.error as exc:
            return _Outcome(
                status, headers, error=f"cannot decode {encoding} body: {exc}", kind="encoding"
            )
        content = b"".join(chunks)
        if html_only and not media_type and _looks_binary(content):
            return _Outcome(
                status,
                headers,
                error="not HTML (no content-type, body looks binary)",
                kind="not_html",
            )
        return _Outcome(status, headers, content=content)

    def _failure(self, exc: httpx.RequestError, deadline: float) -> _Outcome:
        """Name a transport failure by its cause, so that the log says what actually happened."""
        for cause in _causes(exc):
            if isinstance(cause, _Refused):
                return _Outcome(error=str(cause), kind=cause.kind)
            if isinstance(cause, socket.gaierror):
                return _Outcome(error=f"cannot resolve host: {cause.strerror}", kind="dns")
        if isinstance(exc, httpx.TimeoutException):
            if time.monotonic() >= deadline - _DEADLINE_SLACK_SECONDS:
                return self._deadline_exceeded()
            phase = " connecting" if isinstance(exc, httpx.ConnectTimeout) else ""
            timeout = _seconds(self._limits.timeout_seconds)
            return _Outcome(error=f"timed out after {timeout} s{phase}", kind="timeout")
        if isinstance(exc, httpx.ConnectError):
            return _Outcome(error=f"connection failed: {exc}", kind="connection")
        return _Outcome(error=f"{type(exc).__name__}: {exc}", kind="connection")

    def _deadline_exceeded(self) -> _Outcome:
        deadline = _seconds(self._limits.deadline_seconds)
        return _Outcome(error=f"deadline of {deadline} s exceeded", kind="deadline")
