"""Keyword search providers: a query becomes a stream of items (image URL, licence and credit),
paged through the provider's API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from pydantic import ValidationError

from chunk_worker import licenses
from chunk_worker.contract import Item
from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.fetch import Fetcher, SourceHTTPError

log = logging.getLogger(__name__)


class SearchProvider(Protocol):
    name: str

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        """Results [start, start+count) as unlabelled items, fewer if the provider runs out.

        `allowed` (normalised licence ids) lets a provider that can filter by licence do so, so
        results the allow-list would refuse are never listed; every chunk of a source passes the
        same list, so the slices still tile one result stream."""
        ...


OPENVERSE_LICENSES = frozenset(licenses.LICENSES)
"""The codes Openverse's `license` parameter takes: our vocabulary is Openverse's."""


def openverse_license_filter(allowed: frozenset[str] | None) -> str | None:
    """The `license` parameter for an allow-list: its ids Openverse knows, comma-separated (the API
    answers 400 to a code it does not know). None sends no filter: no list, or nothing to name
    (an empty list refuses every item anyway)."""
    if not allowed:
        return None
    return ",".join(sorted(allowed & OPENVERSE_LICENSES)) or None


def openverse_item(result: object) -> Item | None:
    """One Openverse result as an item: the image `url`, the licence from `license` and
    `license_version` (Openverse's codes are our ids), `license_url`, `creator`, the ready-made
    `attribution`, `foreign_landing_url` and `title`. None without a usable image URL."""
    if not isinstance(result, dict):
        return None
    url = _text(result.get("url"))
    if url is None:
        return None
    license_id, license_url = licenses.resolve(
        _text(result.get("license")), _text(result.get("license_url")), _text(result.get("license_version")))
    try:
        return Item(url=url, license=license_id, license_url=license_url, creator=_text(result.get("creator")),
                    attribution=_text(result.get("attribution")), landing_url=_text(result.get("foreign_landing_url")),
                    caption=_text(result.get("title")))
    except ValidationError:
        return None


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


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

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        page, skip = divmod(start, self.PAGE_SIZE)
        page += 1
        remaining = count
        license_filter = openverse_license_filter(allowed)
        while remaining > 0:
            document = self._page(query, page, license_filter)
            if document is None:
                return
            results = document.get("results")
            if not isinstance(results, list):
                raise SourceUnavailable(f"openverse page {page}: no results list in the answer")
            for result in results[skip:]:
                item = openverse_item(result)
                if item is None:
                    log.warning("openverse result without a usable url skipped", extra={"page": page})
                    continue
                yield item
                remaining -= 1
                if remaining == 0:
                    return
            skip = 0
            page_count = document.get("page_count")
            if not results or (isinstance(page_count, int) and page >= page_count):
                return
            page += 1

    def _page(self, query: str, page: int, license_filter: str | None = None) -> dict | None:
        """One page of results; None past the last page (Openverse answers 400 there)."""
        wait = self._last_request + self.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        params = {"q": query, "page": page, "page_size": self.PAGE_SIZE, "license": license_filter}
        try:
            document = self.fetcher.get_json(f"{self.endpoint}/v1/images/", params)
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
