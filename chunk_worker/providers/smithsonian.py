"""Smithsonian Open Access (https://api.si.edu/openaccess/api/v1.0/search) with an api.data.gov key
(1,000 requests an hour per key). Only media whose `usage.access` is "CC0" become items."""

from __future__ import annotations

from collections.abc import Iterator

from chunk_worker import licenses
from chunk_worker.contract import Item
from chunk_worker.errors import SourceUnavailable
from chunk_worker.pacing import Rate
from chunk_worker.providers.client import ApiClient, rate_for
from chunk_worker.provider_catalog import SMITHSONIAN_API_KEY as API_KEY
from chunk_worker.providers.protocol import Page, SearchContext, item, page_through, required_key, text



def search_params(query: str, start: int, rows: int, api_key: str) -> dict[str, object]:
    """Records with images only (`online_visual_material:true`), in relevance order."""
    return {"q": f"({query}) AND online_visual_material:true", "start": start, "rows": rows, "sort": "relevancy",
            "api_key": api_key}


def _get(value: object, *path: str) -> object:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def row_item(row: object) -> Item | None:
    """One search row: its first CC0 image (online_media), the record's name of its maker, title and
    record page. None when no image of the record is CC0."""
    content = _get(row, "content")
    media = _get(content, "descriptiveNonRepeating", "online_media", "media")
    if not isinstance(media, list):
        return None
    usable = [entry for entry in media if isinstance(entry, dict) and entry.get("type") == "Images"
              and _get(entry, "usage", "access") == "CC0" and text(entry.get("content"))]
    if not usable:
        return None
    license_id, license_url = licenses.public_domain(True)
    names = _get(content, "freetext", "name")
    named = [text(name.get("content")) for name in names if isinstance(name, dict)] if isinstance(names, list) else []
    creator = next((name for name in named if name), None)
    title = text(_get(row, "title")) or text(_get(content, "descriptiveNonRepeating", "title", "content"))
    return item(url=text(usable[0]["content"]), license=license_id, license_url=license_url, creator=creator,
                landing_url=text(_get(content, "descriptiveNonRepeating", "record_link")), caption=title)


def page_of(document: object, start: int, rows: int) -> Page:
    response = _get(document, "response")
    if not isinstance(_get(response, "rows"), list):
        raise SourceUnavailable(f"smithsonian rows from {start}: no rows list in the answer")
    total = _get(response, "rowCount")
    return Page([row_item(row) for row in response["rows"]], isinstance(total, int) and start + rows < total)


class SmithsonianProvider:
    name = "smithsonian"
    DEFAULT_ENDPOINT = "https://api.si.edu"
    RATE = Rate(1000 / 3600)
    PAGE_SIZE = 100

    def __init__(self, context: SearchContext, endpoint: str | None = None) -> None:
        self.endpoint = (endpoint or self.DEFAULT_ENDPOINT).rstrip("/")
        self.api_key = required_key(context, self.name, API_KEY, self.endpoint, self.DEFAULT_ENDPOINT)
        self.api = ApiClient(context, f"{self.name}:{self.endpoint}", rate_for(context, self.name, self.RATE),
                             key_setting=API_KEY.setting, secrets=(self.api_key,))

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        if allowed is not None and "cc0" not in allowed:
            return iter(())  # only CC0 media are taken
        return page_through(lambda page: self._page(query, page * self.PAGE_SIZE), start, count, self.PAGE_SIZE,
                            first=0)

    def _page(self, query: str, start: int) -> Page:
        document = self.api.get(f"{self.endpoint}/openaccess/api/v1.0/search",
                                search_params(query, start, self.PAGE_SIZE, self.api_key))
        return page_of(document, start, self.PAGE_SIZE)
