"""A news site the tests write themselves: article pages and feeds, served over real HTTP by
pytest-httpserver, with ETag/Last-Modified, gzip and the misbehaviours newsmon must survive."""

from __future__ import annotations

import gzip
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

WORDS = ["summit", "talks", "envoy", "sanctions", "missile", "negotiation", "delegation", "ceasefire", "treaty", "minister", "parliament", "election", "economy", "trade", "border", "alliance", "security", "nuclear", "inspection", "agreement", "statement", "official", "analyst", "region", "policy", "reform", "budget", "market", "energy", "climate", "court", "protest", "harbour", "railway", "province", "council", "veteran", "archive", "festival", "harvest"]


def article_text(seed: int, paragraphs: int = 6) -> list[str]:
    """Distinct, sentence-shaped paragraphs: each seed gives a different story."""
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(3, 5)):
            words = rng.choices(WORDS, k=rng.randint(10, 18))
            sentences.append(" ".join(words).capitalize() + ".")
        out.append(" ".join(sentences))
    return out


def article_page(title: str, paragraphs: list[str], *, author: str = "Jo Writer",
                 site: str = "Test Outlet", published: str = "2026-11-16") -> bytes:
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} | {escape(site)}</title>
<meta name="author" content="{escape(author)}">
<meta property="og:site_name" content="{escape(site)}">
<meta property="og:title" content="{escape(title)}">
<meta property="article:published_time" content="{published}T09:00:00Z">
<meta name="description" content="{escape(paragraphs[0][:120])}">
</head><body>
<nav><a href="/">Home</a> <a href="/world">World</a> <a href="/subscribe">Subscribe</a></nav>
<article><h1>{escape(title)}</h1><p class="byline">By {escape(author)}</p>
{body}
</article>
<footer><p>Copyright Test Outlet. All rights reserved.</p></footer>
</body></html>""".encode()


@dataclass
class Item:
    title: str
    link: str
    guid: str | None = None
    summary: str = ""
    published: str = "Mon, 16 Nov 2026 10:30:00 GMT"


def rss20(title: str, items: list[Item]) -> bytes:
    parts = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
             f"<title>{escape(title)}</title><link>http://site.test/</link>"]
    for item in items:
        guid = f"<guid isPermaLink=\"false\">{escape(item.guid)}</guid>" if item.guid else ""
        parts.append(f"<item><title>{escape(item.title)}</title><link>{escape(item.link)}</link>"
                     f"{guid}<description>{escape(item.summary)}</description>"
                     f"<pubDate>{item.published}</pubDate></item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def atom(title: str, items: list[Item], base: str) -> bytes:
    parts = [f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
             f'xml:base="{escape(base)}"><title>{escape(title)}</title>']
    for item in items:
        parts.append(f"<entry><id>{escape(item.guid or item.link)}</id>"
                     f"<title>{escape(item.title)}</title><link href=\"{escape(item.link)}\"/>"
                     f"<updated>2026-11-17T08:00:00Z</updated>"
                     f"<summary>{escape(item.summary)}</summary></entry>")
    parts.append("</feed>")
    return "".join(parts).encode()


def rss10(title: str, items: list[Item]) -> bytes:
    parts = ['<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-'
             'ns#" xmlns="http://purl.org/rss/1.0/"><channel rdf:about="http://site.test/">'
             f"<title>{escape(title)}</title><link>http://site.test/</link></channel>"]
    for item in items:
        parts.append(f'<item rdf:about="{escape(item.link)}"><title>{escape(item.title)}</title>'
                     f"<link>{escape(item.link)}</link>"
                     f"<description>{escape(item.summary)}</description></item>")
    parts.append("</rdf:RDF>")
    return "".join(parts).encode()


Handler = Callable[[Request], Response]


@dataclass
class Site:
    """Paths to handlers; static documents get ETag and Last-Modified, and answer 304."""

    server: HTTPServer
    routes: dict[str, Handler] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import re

        self.server.expect_request(re.compile(".*")).respond_with_handler(self._dispatch)

    def _dispatch(self, request: Request) -> Response:
        handler = self.routes.get(request.path)
        if handler is None:
            return Response("not found", status=404)
        return handler(request)

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def document(self, path: str, body: bytes, content_type: str, *, gzipped: bool = False,
                 delay: float = 0.0) -> None:
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        modified = format_datetime(datetime(2026, 11, 16, 12, 0, tzinfo=UTC), usegmt=True)

        def handler(request: Request) -> Response:
            if delay:
                time.sleep(delay)
            if request.headers.get("If-None-Match") == etag:
                return Response(status=304, headers={"ETag": etag})
            data, headers = body, {"ETag": etag, "Last-Modified": modified}
            if gzipped:
                data, headers["Content-Encoding"] = gzip.compress(body), "gzip"
            return Response(data, content_type=content_type, headers=headers)

        self.routes[path] = handler

    def feed(self, path: str, body: bytes, **options) -> None:
        self.document(path, body, "application/rss+xml; charset=utf-8", **options)

    def page(self, path: str, body: bytes, **options) -> None:
        self.document(path, body, "text/html; charset=utf-8", **options)

    def requests(self, prefix: str = "") -> list[Request]:
        return [request for request, _ in self.server.log if request.path.startswith(prefix)]

    def clear_log(self) -> None:
        self.server.log.clear()
