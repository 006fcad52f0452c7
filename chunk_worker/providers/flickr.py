"""Flickr (`flickr.photos.search`, https://www.flickr.com/services/api/) with an API key: 3,600
requests an hour per key, at most the first 4,000 results of a search. The licence filter is pushed
down as Flickr's numeric licence ids; `extras` brings each photo's licence, owner name and URLs."""

from __future__ import annotations

from collections.abc import Iterator

from chunk_worker import licenses
from chunk_worker.contract import Item
from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.pacing import Rate
from chunk_worker.providers.client import ApiClient, rate_for
from chunk_worker.provider_catalog import FLICKR_API_KEY as API_KEY
from chunk_worker.providers.protocol import Page, SearchContext, item, page_through, required_key, text

EXTRAS = "license,owner_name,url_l,url_c,url_o"
SIZES = ("url_l", "url_c", "url_o")
"""1024 px, 800 px, then the original: the largest that is not the (possibly huge) original first."""
INVALID_KEY = 100


def search_params(query: str, page: int, per_page: int, api_key: str, license_param: str | None) -> dict[str, object]:
    return {"method": "flickr.photos.search", "api_key": api_key, "text": query, "license": license_param,
            "extras": EXTRAS, "sort": "relevance", "content_types": 0, "media": "photos", "safe_search": 1,
            "per_page": per_page, "page": page, "format": "json", "nojsoncallback": 1}


def check(document: object) -> None:
    """Flickr answers 200 with `"stat": "fail"` and a code: 100 is a bad key (fix the setting)."""
    if isinstance(document, dict) and document.get("stat") == "fail":
        if document.get("code") == INVALID_KEY:
            raise SpecError(f"flickr refused the key in {API_KEY.env}: {document.get('message')}")
        raise SourceUnavailable(f"flickr error {document.get('code')}: {document.get('message')}")


def photo_item(photo: object) -> Item | None:
    if not isinstance(photo, dict):
        return None
    url = next((text(photo.get(size)) for size in SIZES if text(photo.get(size))), None)
    if url is None and all(text(str(photo.get(key) or "")) for key in ("server", "id", "secret")):
        url = f"https://live.staticflickr.com/{photo['server']}/{photo['id']}_{photo['secret']}_b.jpg"
    license_id, license_url = licenses.from_flickr(photo.get("license"))
    owner, photo_id = text(photo.get("owner")), text(str(photo.get("id") or ""))
    return item(url=url, license=license_id, license_url=license_url, creator=text(photo.get("ownername")),
                landing_url=f"https://www.flickr.com/photos/{owner}/{photo_id}" if owner and photo_id else None,
                caption=text(photo.get("title")))


def page_of(document: object, page: int) -> Page:
    photos = document.get("photos") if isinstance(document, dict) else None
    if not isinstance(photos, dict) or not isinstance(photos.get("photo"), list):
        raise SourceUnavailable(f"flickr page {page}: no photos in the answer")
    try:
        pages = int(photos.get("pages") or 0)  # Flickr sends some counts as strings
    except (TypeError, ValueError):
        pages = 0
    return Page([photo_item(photo) for photo in photos["photo"]], page < pages)


class FlickrProvider:
    name = "flickr"
    DEFAULT_ENDPOINT = "https://api.flickr.com"
    RATE = Rate(1.0)
    PAGE_SIZE = 100
    MAX_RESULTS = 4000

    def __init__(self, context: SearchContext, endpoint: str | None = None) -> None:
        self.endpoint = (endpoint or self.DEFAULT_ENDPOINT).rstrip("/")
        self.api_key = required_key(context, self.name, API_KEY, self.endpoint, self.DEFAULT_ENDPOINT)
        self.api = ApiClient(context, f"{self.name}:{self.endpoint}", rate_for(context, self.name, self.RATE),
                             key_setting=API_KEY.setting, secrets=(self.api_key,), check=check)

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        license_param = licenses.flickr_filter(allowed)
        if license_param == "":
            return iter(())  # no Flickr licence is allowed
        count = min(count, self.MAX_RESULTS - start)
        return page_through(lambda page: self._page(query, page, license_param), start, count, self.PAGE_SIZE)

    def _page(self, query: str, page: int, license_param: str | None) -> Page:
        document = self.api.get(f"{self.endpoint}/services/rest/",
                                search_params(query, page, self.PAGE_SIZE, self.api_key, license_param))
        return page_of(document, page)
