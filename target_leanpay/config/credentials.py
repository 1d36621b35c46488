"""api_url and api_key: what an HTTP request to Leanpay can carry, and what to mask.

Credentials written into a URL (`http://user:secret@host/`) would replace the key (requests
turns them into a Basic Authorization header) and be echoed by any message quoting the
URL: they are refused, and masked wherever the URL is shown. A key an HTTP header cannot
carry (beyond Latin-1, spaces, control characters) is refused without being quoted.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from target_leanpay.config.redaction import MASK

MIN_PASTED_KEY = 12
"""A name in an api_url this long (`https://<key>@host`) is masked as a secret."""


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authority(url: str) -> tuple[int, int]:
    """Where the `user:password@host:port` part of `url` starts and ends (with or
    without a scheme: `user:secret@example.com/v1` must not slip through either)."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    end = len(url)
    for separator in "/?#":
        found = url.find(separator, start)
        if found >= 0:
            end = min(end, found)
    return start, end


def url_credentials(url: str) -> list[str]:
    """What must be masked of the credentials written into `url` (`name:password@`).

    The whole of them, the password, and the name when it is long enough to be a pasted
    key rather than a word ("admin") whose masking would garble every message; raw and
    percent-decoded. [] when there are none.
    """
    start, end = _authority(url)
    userinfo = url[start:end].rpartition("@")[0]
    name, _, password = userinfo.partition(":")
    parts = [userinfo, password, name if len(name) >= MIN_PASTED_KEY else ""]
    return sorted({p for part in parts for p in (part, urllib.parse.unquote(part)) if p})


def masked_url(url: str) -> str:
    """`url` with any credentials before its host replaced by the mask."""
    start, end = _authority(url)
    authority = url[start:end]
    if "@" not in authority:
        return url
    return url[:start] + MASK + "@" + authority.rpartition("@")[2] + url[end:]


def url_problem(url: str) -> str | None:
    """Why `url` cannot be the API's base URL; credentials in it are masked."""
    shown = repr(masked_url(url))
    start, end = _authority(url)
    if "@" in url[start:end]:
        return (
            f"api_url {shown} holds credentials (the part before '@'); Leanpay reads the "
            "key only from api_key: remove them from the URL"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises for a port out of range
    except ValueError as bad:
        return f"api_url {shown} is not a valid URL ({bad})"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host and _is_local(host):
        return None
    return f"api_url {shown} must be https:// (plain http:// only for localhost / 127.0.0.1)"


def key_problem(api_key: str) -> str | None:
    """Why `api_key` cannot travel in an HTTP header; the key itself is never quoted."""
    for position, char in enumerate(api_key, start=1):
        if ord(char) > 0xFF:
            return (
                f"api_key holds a character an HTTP header cannot carry (U+{ord(char):04X}, "
                f"character {position} of {len(api_key)}; headers take Latin-1 only): "
                "copy the key again"
            )
        if not char.isprintable() or char.isspace():
            return (
                f"api_key contains spaces or control characters (character {position} of "
                f"{len(api_key)}), which an HTTP header cannot carry; copy the key again"
            )
    return None
