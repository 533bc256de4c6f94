"""Imported by the forkserver that forks the extraction workers (``newsmon.extract``), never by
the flow's process: importing it imports trafilatura and feedparser, then extracts one sample
page, parses one sample feed and builds the stoplist of trafilatura's last fallback.

Both libraries build state on first use: trafilatura reads the public-suffix list the first time
it must look a domain up there (60 to 90 ms here) and compiles patterns on its first page,
feedparser on its first feed. The sample page does not reach trafilatura's last fallback, justext,
whose first use merges the stoplists of every language it knows into one set of about 150,000
words: 0.1 s of CPU and 40 MB of fresh memory (10,000 page faults), which on the benchmark's
site each worker met within its first few dozen pages. Done here once, that state is in the
forkserver's memory, which every worker, recycled ones too, inherits when it is forked; otherwise
each new worker pays for it on its first pages, and at the start of a run both workers pay at
once.
"""

import contextlib

from newsmon.extract import SAMPLE_PAGE, SAMPLE_PAGE_URL, extract_page
from newsmon.feeds import parse_feed

_SAMPLE_FEED = (
    b"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Outlet</title>"
    b"<link>https://www.example.com/</link><item><title>Sample story</title>"
    b"<link>https://www.example.com/world/sample-story</link><guid>sample-story</guid>"
    b"<pubDate>Fri, 02 Jan 2026 09:00:00 GMT</pubDate><description>&lt;p&gt;A sample "
    b"story.&lt;/p&gt;</description></item></channel></rss>"
)


def _build_justext_stoplist() -> None:
    # Both cache what they build: trafilatura the merged list, justext the set made from it.
    # Imported here, as they are trafilatura's internals: should they move in a later release,
    # only this step is lost, not the whole preload.
    from justext.core import define_stoplist
    from trafilatura.external import jt_stoplist_init

    define_stoplist(jt_stoplist_init())


# Only an ImportError is survived by the forkserver's preload; anything else would take it down
# and every page with it, while a fault here would show up on the first page that meets it.
with contextlib.suppress(Exception):
    extract_page(SAMPLE_PAGE, SAMPLE_PAGE_URL, len(SAMPLE_PAGE))
with contextlib.suppress(Exception):
    parse_feed(_SAMPLE_FEED, {"content-type": "application/rss+xml"}, "https://www.example.com/rss")
with contextlib.suppress(Exception):
    _build_justext_stoplist()
