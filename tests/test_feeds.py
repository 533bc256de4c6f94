"""Feed parsing: the formats and encodings newsmon must read, and what counts as a failed poll."""

from datetime import UTC, datetime

from newsmon.feeds import parse_feed

HEADERS = {"Content-Type": "application/xml"}

RSS20 = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Outlet</title><link>https://outlet.example/</link>
<item><title>Talks &amp; summits</title><link>/news/1?utm_source=rss&amp;utm_medium=feed</link>
<guid isPermaLink="false">outlet-1</guid><description>&lt;p&gt;First &lt;b&gt;para&lt;/b&gt;.&lt;/p&gt;</description>
<pubDate>Mon, 16 Nov 2026 10:30:00 GMT</pubDate><author>kim@outlet.example (Kim)</author></item>
<item><title>No guid</title><link>https://outlet.example/news/2#comments</link></item>
<item><title>Not a web link</title><link>mailto:desk@outlet.example</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://atom.example/section/">
<title>Atom outlet</title><link href="https://atom.example/"/>
<entry><id>tag:atom.example,2026:1</id><title type="html">Relative &lt;em&gt;link&lt;/em&gt;</title>
<link href="stories/one"/><updated>2026-11-17T08:00:00Z</updated>
<content type="html">&lt;p&gt;Full content of the story, longer than the summary.&lt;/p&gt;</content>
<summary>Short.</summary></entry>
</feed>"""

RSS10 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<channel rdf:about="https://rdf.example/"><title>RDF outlet</title><link>https://rdf.example/</link></channel>
<item rdf:about="https://rdf.example/a"><title>RSS one</title><link>https://rdf.example/a</link>
<description>Plain text</description></item>
</rdf:RDF>"""


def test_rss20_entries_resolve_links_and_strip_markup():
    feed = parse_feed(RSS20, HEADERS, "https://outlet.example/feed.xml")
    assert feed.error is None
    assert feed.title == "Outlet"
    first, second = feed.entries
    assert first.entry_key == "outlet-1"
    assert first.url == "https://outlet.example/news/1?utm_source=rss&utm_medium=feed"
    assert first.normalized_url == "https://outlet.example/news/1"
    assert first.title == "Talks & summits"
    assert first.summary == "First para."
    assert first.published_at == datetime(2026, 11, 16, 10, 30, tzinfo=UTC)
    # Without a GUID an entry is known by its normalised link (fragment dropped).
    assert second.entry_key == "https://outlet.example/news/2"
    assert feed.warning == "1 entries without an http(s) link were skipped"


def test_atom_xml_base_and_content_preferred_over_summary():
    feed = parse_feed(ATOM, HEADERS, "https://atom.example/feed")
    (entry,) = feed.entries
    assert entry.url == "https://atom.example/section/stories/one"
    assert entry.title == "Relative link"
    assert entry.summary == "Full content of the story, longer than the summary."
    assert entry.published_at == datetime(2026, 11, 17, 8, 0, tzinfo=UTC)


def test_rss10():
    feed = parse_feed(RSS10, HEADERS, "https://rdf.example/rss")
    assert [(e.entry_key, e.title) for e in feed.entries] == [("https://rdf.example/a", "RSS one")]


def test_declared_and_undeclared_encodings():
    title = "Pyongyang’s envoy – Séoul"
    declared = (
        '<?xml version="1.0" encoding="windows-1252"?><rss version="2.0"><channel><title>x</title>'
        f"<item><title>{title}</title><link>https://e.example/1</link></item></channel></rss>"
    ).encode("windows-1252")
    assert parse_feed(declared, HEADERS, "https://e.example/f").entries[0].title == title
    undeclared = (
        '<rss version="2.0"><channel><title>x</title>'
        f"<item><title>{title}</title><link>https://e.example/1</link></item></channel></rss>"
    ).encode()
    assert parse_feed(undeclared, {}, "https://e.example/f").entries[0].title == title
    # The charset in the HTTP header wins over a missing declaration.
    latin = declared.replace(b' encoding="windows-1252"', b"")
    headers = {"Content-Type": "application/rss+xml; charset=windows-1252"}
    assert parse_feed(latin, headers, "https://e.example/f").entries[0].title == title


def test_ill_formed_feed_still_yields_entries_with_a_warning():
    broken = (b'<rss version="2.0"><channel><title>x</title><item><title>A &nbsp; B</title>'
              b"<link>https://e.example/1</link></item>")
    feed = parse_feed(broken, HEADERS, "https://e.example/f")
    assert feed.error is None
    assert [e.url for e in feed.entries] == ["https://e.example/1"]
    assert feed.warning.startswith("ill-formed feed, read anyway:")


def test_empty_and_non_feed_responses_are_errors():
    assert parse_feed(b"", HEADERS, "https://e.example/f").error == (
        "empty response: the server sent no feed")
    page = parse_feed(b"<html><body><p>Hello</p></body></html>", {}, "https://e.example/f")
    assert page.error.startswith("not an RSS or Atom feed")
    assert page.entries == ()


def test_edited_entry_changes_fingerprint():
    before = parse_feed(RSS20, HEADERS, "https://outlet.example/feed.xml").entries[0]
    edited = RSS20.replace(b"Talks &amp; summits", b"Talks &amp; summits (updated)")
    after = parse_feed(edited, HEADERS, "https://outlet.example/feed.xml").entries[0]
    assert before.entry_key == after.entry_key
    assert before.fingerprint != after.fingerprint
