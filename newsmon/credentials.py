"""Logins written into URLs (``https://user:password@host/feed.xml``, the usual way to read a
private feed): hidden wherever a URL is shown, logged or stored, and kept for the requests that
need them.

Only the standard library, so that reading a config stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def redact_url(url: str) -> str:
    """url with its password (or a user-only token) shown as ``***``. The user name stays, so
    that two logins to one site can be told apart."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    redacted = f"{user}:***" if colon else "***"
    return urlunsplit((parts.scheme, f"{redacted}@{host}", parts.path, parts.query, parts.fragment))


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of url, the site a login belongs to; None if url has no host."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname, port


@dataclass(frozen=True)
class SiteLogin:
    """A user and password for every request to one site (scheme, host and port)."""

    site: tuple[str, str, int]
    user: str
    password: str = field(repr=False)

    @classmethod
    def from_url(cls, url: str) -> SiteLogin | None:
        """The login written into url, if it has one with a password."""
        parts = urlsplit(url)
        site = origin(url)
        if site is None or parts.password is None or parts.password == "***":
            return None
        return cls(site, unquote(parts.username or ""), unquote(parts.password))
