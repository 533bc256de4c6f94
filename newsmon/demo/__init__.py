"""The demo outlet: the seed documents and a few articles the project wrote, as web pages and
RSS feeds, so `newsmon demo` can run the whole cycle over real HTTP with no network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from importlib import resources
from pathlib import Path

from newsmon.localsite import Document

SEED_OUTLET = "Seed Archive"


def _page(title: str, author: str, outlet: str, published: datetime,
          paragraphs: list[str]) -> bytes:
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} | {escape(outlet)}</title>
<meta name="author" content="{escape(author)}">
<meta property="og:site_name" content="{escape(outlet)}">
<meta property="article:published_time" content="{published.isoformat()}">
</head><body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
<article><h1>{escape(title)}</h1><p class="byline">By {escape(author)}</p>
{body}
</article><footer>{escape(outlet)}: a demo outlet served by newsmon on this machine.</footer>
</body></html>""".encode()


def _feed(outlet: str, items: list[tuple[str, str, datetime]]) -> bytes:
    entries = "".join(
        f"<item><title>{escape(title)}</title><link>{escape(path)}</link><guid>{escape(path)}"
        f"</guid><pubDate>{format_datetime(when, usegmt=True)}</pubDate></item>"
        for title, path, when in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(outlet)}</title><link>/</link>{entries}</channel></rss>").encode()


def _slug(outlet: str) -> str:
    return outlet.lower().replace(" ", "-")


def demo_site(seeds_dir: Path, now: datetime | None = None) -> dict[str, Document]:
    """Pages and feeds, keyed by path. Articles are dated over the past two weeks, so the
    digest has a week to report and a week before it to compare with."""
    now = now or datetime.now(UTC)
    written = json.loads(resources.files(__name__).joinpath("articles.json").read_text("utf-8"))
    stories: list[tuple[str, str, str, str, list[str]]] = [
        (a["outlet"], a["slug"], a["title"], a["author"], a["paragraphs"]) for a in written
    ]
    # The seed documents, under the titles their labels give (their text opens with page
    # furniture such as "Skip to content").
    for line in (seeds_dir / "labels.jsonl").read_text(encoding="utf-8").splitlines():
        seed = json.loads(line) if line.strip() else {}
        if "text_file" not in seed:
            continue
        text = (seeds_dir / seed["text_file"]).read_text(encoding="utf-8")
        paragraphs = [p.strip() for p in text.splitlines() if p.strip()]
        stories.append((SEED_OUTLET, Path(seed["text_file"]).stem, seed["title"],
                        seed.get("source") or "Seed author", paragraphs))

    documents: dict[str, Document] = {}
    feeds: dict[str, list[tuple[str, str, datetime]]] = {}
    for n, (outlet, slug, title, author, paragraphs) in enumerate(stories):
        published = now - timedelta(days=1 + (n * 5) % 13, hours=n)
        path = f"/{_slug(outlet)}/{slug}.html"
        documents[path] = (_page(title, author, outlet, published, paragraphs),
                           "text/html; charset=utf-8")
        feeds.setdefault(outlet, []).append((title, path, published))
    for outlet, items in feeds.items():
        documents[f"/{_slug(outlet)}/rss.xml"] = (_feed(outlet, items), "application/rss+xml")
    return documents


def feed_paths(documents: dict[str, Document]) -> list[str]:
    return sorted(path for path in documents if path.endswith("/rss.xml"))
