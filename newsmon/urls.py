"""URL normalisation: the form under which newsmon recognises an article it has seen before."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import courlan


# courlan takes about 20 us a URL, and storing a batch asks for each page's final URL more than
# once (to look up stored articles, to match, to make the row): remembered, the repeats are free.
@lru_cache(maxsize=4096)
def normalize_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, no tracking parameters.

    courlan knows the tracking parameters (utm_*, fbclid, gclid, ...) and sorts the rest, so two
    links to one story that differ only in how they were shared compare equal. A URL courlan
    cannot parse is returned without its fragment, so it still matches itself.
    """
    try:
        normalized = courlan.normalize_url(url, strict=False)
    except ValueError:
        normalized = url.strip()
    parts = urlsplit(normalized)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
