import pytest

from newsmon.urls import normalize_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM:443/a/b?utm_source=x&id=3#frag", "https://example.com/a/b?id=3"),
        ("http://example.com:80/a?b=2&a=1", "http://example.com/a?a=1&b=2"),
        ("https://example.com/a?fbclid=1&gclid=2&utm_campaign=c", "https://example.com/a"),
        ("https://example.com", "https://example.com/"),
    ],
)
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected
