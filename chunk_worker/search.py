"""Keyword search providers: a query becomes a stream of image URLs, paged through the provider's API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.fetch import Fetcher, SourceHTTPError

log = logging.getLogger(__name__)


class SearchProvider(Protocol):
    name: str

    def search(self, query: str, start: int, count: int) -> Iterator[str]:
        """Image URLs of results [start, start+count), fewer if the provider runs out."""
        ...


class OpenverseProvider:
    """Openverse (https://api.openverse.org), keyless: anonymous clients get 20 results a page and
    about one request a second, so pages are paced when talking to the public API."""

    name = "openverse"
    DEFAULT_ENDPOINT = "https://api.openverse.org"
    PAGE_SIZE = 20

    def __init__(self, fetcher: Fetcher, endpoint: str | None = None, min_interval: float | None = None) -> None:
        self.fetcher = fetcher
        self.endpoint = (endpoint or self.DEFAULT_ENDPOINT).rstrip("/")
        self.min_interval = (1.0 if endpoint is None else 0.0) if min_interval is None else min_interval
        self._last_request = 0.0

    def search(self, query: str, start: int, count: int) -> Iterator[str]:
        page, skip = divmod(start, self.PAGE_SIZE)
        page += 1
        remaining = count
        while remaining > 0:
            document = self._page(query, page)
            if document is None:
                return
            results = document.get("results")
            if not isinstance(results, list):
                raise SourceUnavailable(f"openverse page {page}: no results list in the answer")
            for result in results[skip:]:
                url = result.get("url") if isinstance(result, dict) else None
                if not isinstance(url, str) or not url:
                    log.warning("openverse result without a url skipped", extra={"page": page})
                    continue
                yield url
                remaining -= 1
                if remaining == 0:
                    return
            skip = 0
            page_count = document.get("page_count")
            if not results or (isinstance(page_count, int) and page >= page_count):
                return
            page += 1

    def _page(self, query: str, page: int) -> dict | None:
        """One page of results; None past the last page (Openverse answers 400 there)."""
        wait = self._last_request + self.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            document = self.fetcher.get_json(
                f"{self.endpoint}/v1/images/", {"q": query, "page": page, "page_size": self.PAGE_SIZE}
            )
        except SourceHTTPError as exc:
            if exc.status == 400 and page > 1:
                return None
            raise
        finally:
            self._last_request = time.monotonic()
        if not isinstance(document, dict):
            raise SourceUnavailable(f"openverse page {page}: the answer is not a JSON object")
        return document


PROVIDERS: dict[str, Callable[[Fetcher, str | None], SearchProvider]] = {
    OpenverseProvider.name: OpenverseProvider,
}


def get_provider(name: str, fetcher: Fetcher, endpoint: str | None = None) -> SearchProvider:
    try:
        factory = PROVIDERS[name.lower()]
    except KeyError:
        raise SpecError(f"unknown search provider {name!r}; known providers: {', '.join(sorted(PROVIDERS))}") from None
    return factory(fetcher, endpoint)
