"""Credentials out of what the worker writes down: a URL's `user:pass@` never reaches a manifest or a log.

Pure string handling, so a URL too malformed to parse is still redacted rather than written as is.
"""

from __future__ import annotations

import re

_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*:)?//([^/?#]*)")


def redact_url(url: str) -> str:
    """`url` without the userinfo of its authority (RFC 3986: everything up to the last `@` before
    the path, query or fragment). The username goes too: it is often the token itself."""
    match = _AUTHORITY.match(url)
    if match is None or "@" not in match.group(2):
        return url
    host = match.group(2).rsplit("@", 1)[1]
    return f"{match.group(1) or ''}//{host}{url[match.end():]}"
