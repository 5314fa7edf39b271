"""A URL a service sends a browser to: the gateway's sign-in redirect (a `Location`) and the
admin page's "Sign in again" link. One rule for both (a review as an attacker, stop 67)."""

from __future__ import annotations

from urllib.parse import urlsplit


def followable_url(url: str, what: str) -> str:
    """`url` when it is a local path or an http(s) URL with a host, in printable ASCII;
    otherwise ValueError naming `what` (e.g. "the sign-in URL") and the problem.

    - A space, a control or a non-ASCII character: not a `Location` a server sends, and a
      CR LF would start a header of its own.
    - Scheme-relative (`//host/x`, or `/\\host/x`, which browsers read alike): it sends the
      browser to that host, an open redirect, while it reads as a local path.
    - Anything else that is not a local path or an http(s) URL with a host: `javascript:` or
      `data:` would run in the origin of the page that follows it; `https:/x` has no host.
    """
    if any(not "!" <= char <= "~" for char in url):
        raise ValueError(
            f"{what} {url!r} has a space, a control or a non-ASCII character: "
            "percent-encode them in an absolute URL, or give a plain local path"
        )
    if url.startswith(("//", "/\\")):
        raise ValueError(
            f"{what} {url!r} is scheme-relative: it sends browsers to another host; "
            "give a local path (/signin) or an absolute https:// URL"
        )
    parts = urlsplit(url)
    if not url.startswith("/") and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ValueError(f"{what} {url!r} is neither a local path nor an http(s) URL with a host")
    return url
