"""The Metropolitan Museum of Art Collection API (https://collectionapi.metmuseum.org), keyless, at most
80 requests a second. A search answers object ids only, so each result costs one more request for its
object; only public-domain objects (`isPublicDomain`, released as CC0) become items."""

from __future__ import annotations

from collections.abc import Iterator

from chunk_worker import licenses
from chunk_worker.contract import Item
from chunk_worker.errors import SourceUnavailable
from chunk_worker.fetch import SourceHTTPError
from chunk_worker.pacing import Rate
from chunk_worker.providers.client import ApiClient, rate_for
from chunk_worker.providers.protocol import SearchContext, item, text


def object_ids(document: object) -> list[int]:
    """A /search answer: `objectIDs` (null when nothing matched), in the API's order."""
    if not isinstance(document, dict) or "objectIDs" not in document:
        raise SourceUnavailable("met: the search answer has no objectIDs")
    ids = document["objectIDs"] or []
    if not isinstance(ids, list):
        raise SourceUnavailable("met: objectIDs is not a list")
    return [value for value in ids if isinstance(value, int)]


def object_item(document: object) -> Item | None:
    """An /objects/{id} answer: the primary image of a public-domain object, CC0, with the artist,
    title and the object's page; None for anything else (not public domain, no image)."""
    if not isinstance(document, dict) or document.get("isPublicDomain") is not True:
        return None
    license_id, license_url = licenses.public_domain(True)
    return item(url=text(document.get("primaryImage")), license=license_id, license_url=license_url,
                creator=text(document.get("artistDisplayName")), landing_url=text(document.get("objectURL")),
                caption=text(document.get("title")))


class MetProvider:
    name = "met"
    DEFAULT_ENDPOINT = "https://collectionapi.metmuseum.org"
    RATE = Rate(80.0)

    def __init__(self, context: SearchContext, endpoint: str | None = None) -> None:
        self.endpoint = (endpoint or self.DEFAULT_ENDPOINT).rstrip("/")
        self.api = ApiClient(context, f"{self.name}:{self.endpoint}", rate_for(context, self.name, self.RATE))

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        if allowed is not None and "cc0" not in allowed:
            return  # every image the Met releases is CC0
        document = self.api.get(f"{self.endpoint}/public/collection/v1/search", {"q": query, "hasImages": "true"})
        for object_id in object_ids(document)[start:start + count]:
            found = self._object(object_id)
            if found is not None:
                yield found

    def _object(self, object_id: int) -> Item | None:
        try:
            return object_item(self.api.get(f"{self.endpoint}/public/collection/v1/objects/{object_id}"))
        except SourceHTTPError as exc:
            if exc.status == 404:  # listed by the search, since withdrawn
                return None
            raise
