"""Pure decisions about one HTTP exchange: when to retry and how long to wait, which codings wrap a
body, how a query is added to a URL. No I/O, so each is tested on its own."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random, base: float = 0.25, cap: float = 8.0) -> float:
    """How long to wait before try `attempt + 1`: the server's Retry-After if it gave one, else
    exponential in the attempt with jitter so many workers do not retry in step."""
    if retry_after is not None:
        return max(0.0, retry_after)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return rng.uniform(ceiling / 2, ceiling)


def body_codings(headers: Mapping[str, str]) -> list[str]:
    """The codings a body is wrapped in besides identity (Content-Encoding, and Transfer-Encoding
    other than the chunked framing http.client undoes); any at all means the body is refused."""
    content = [c.strip().lower() for c in headers.get("Content-Encoding", "").split(",")]
    transfer = [c.strip().lower() for c in headers.get("Transfer-Encoding", "").split(",")]
    return [c for c in content if c not in ("", "identity")] + [c for c in transfer if c not in ("", "identity", "chunked")]


def with_query(url: str, params: Mapping[str, object] | None) -> str:
    """`url` with `params` added to its query as requests encoded them: None values dropped, a list
    or tuple repeats its key, everything else through str(). Raises ValueError on a malformed URL."""
    if not params:
        return url
    pairs = [
        (key, value)
        for key, values in params.items()
        for value in (values if isinstance(values, (list, tuple)) else [values])
        if value is not None
    ]
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(pairs)) if part)
    return urlunsplit(parts._replace(query=query))
