"""iNaturalist observation photos (https://api.inaturalist.org/v1/observations), keyless. The API asks
for about one request a second (at most 100 a minute, 10,000 a day) and serves at most 10,000
results per query (page x per_page); results are ordered by id so every chunk sees one order."""

from __future__ import annotations

from collections.abc import Iterator

from chunk_worker import licenses
from chunk_worker.contract import Item
from chunk_worker.errors import SourceUnavailable
from chunk_worker.pacing import Rate
from chunk_worker.providers.client import ApiClient, rate_for
from chunk_worker.providers.protocol import Page, SearchContext, item, page_through, text

PHOTO_SIZE = "large"
"""iNaturalist serves square, small, medium, large (1024 px) and original; the API lists `square`."""


def search_params(query: str, page: int, per_page: int, photo_license: str | None) -> dict[str, object]:
    return {"q": query, "photos": "true", "photo_license": photo_license, "page": page, "per_page": per_page,
            "order_by": "id", "order": "asc"}


def photo_url(url: str | None) -> str | None:
    """The API gives each photo's `square` thumbnail URL; the same path names the other sizes."""
    if url is None:
        return None
    head, sep, tail = url.rpartition("/square.")
    return f"{head}/{PHOTO_SIZE}.{tail}" if sep else url


def observation_item(observation: object, allowed: frozenset[str] | None = None) -> Item | None:
    """One observation as one item: its first photo whose licence is allowed (its first photo without
    a list), the photo's licence code, attribution, the observer, the taxon's name as caption."""
    if not isinstance(observation, dict) or not isinstance(observation.get("photos"), list):
        return None
    photos = [photo for photo in observation["photos"] if isinstance(photo, dict) and text(photo.get("url"))]
    if allowed is not None:
        photos = [photo for photo in photos if licenses.normalise(text(photo.get("license_code"))) in allowed]
    if not photos:
        return None
    photo = photos[0]
    license_id, license_url = licenses.resolve(text(photo.get("license_code")))
    user = observation.get("user") if isinstance(observation.get("user"), dict) else {}
    taxon = observation.get("taxon") if isinstance(observation.get("taxon"), dict) else {}
    return item(url=photo_url(text(photo.get("url"))), license=license_id, license_url=license_url,
                creator=text(user.get("name")) or text(user.get("login")), attribution=text(photo.get("attribution")),
                landing_url=text(observation.get("uri")),
                caption=text(taxon.get("preferred_common_name")) or text(taxon.get("name")))


def page_of(document: object, page: int, per_page: int, allowed: frozenset[str] | None) -> Page:
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise SourceUnavailable(f"inaturalist page {page}: no results list in the answer")
    total = document.get("total_results")
    more = isinstance(total, int) and page * per_page < min(total, INaturalistProvider.MAX_RESULTS)
    return Page([observation_item(result, allowed) for result in document["results"]], more)


class INaturalistProvider:
    name = "inaturalist"
    DEFAULT_ENDPOINT = "https://api.inaturalist.org"
    RATE = Rate(1.0)
    PAGE_SIZE = 200
    MAX_RESULTS = 10_000

    def __init__(self, context: SearchContext, endpoint: str | None = None) -> None:
        self.endpoint = (endpoint or self.DEFAULT_ENDPOINT).rstrip("/")
        self.api = ApiClient(context, f"{self.name}:{self.endpoint}", rate_for(context, self.name, self.RATE))

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        photo_license = licenses.inaturalist_filter(allowed)
        if photo_license == "":
            return iter(())  # no iNaturalist licence is allowed
        return page_through(lambda page: self._page(query, page, photo_license, allowed), start, count,
                            self.PAGE_SIZE)

    def _page(self, query: str, page: int, photo_license: str | None, allowed: frozenset[str] | None) -> Page:
        if (page - 1) * self.PAGE_SIZE >= self.MAX_RESULTS:
            return Page([], False)
        document = self.api.get(f"{self.endpoint}/v1/observations",
                                search_params(query, page, self.PAGE_SIZE, photo_license))
        return page_of(document, page, self.PAGE_SIZE, allowed)
