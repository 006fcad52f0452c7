"""Openverse (https://api.openverse.org): keyless, or with OAuth2 client credentials for higher
limits. Anonymous: 20 results a page, 20 requests a minute and 200 a day; a registered application:
up to 500 a page (we ask 50), 100 requests a minute and 10,000 a day."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from chunk_worker import licenses
from chunk_worker.contract import Item
from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.fetch import SourceHTTPError
from chunk_worker.pacing import Rate
from chunk_worker.providers.client import ApiClient, rate_for
from chunk_worker.provider_catalog import OPENVERSE_CLIENT_ID as CLIENT_ID
from chunk_worker.provider_catalog import OPENVERSE_CLIENT_SECRET as CLIENT_SECRET
from chunk_worker.providers.protocol import Page, SearchContext, item, may_send_credentials, page_through, text

log = logging.getLogger(__name__)

OPENVERSE_LICENSES = frozenset(licenses.LICENSES)
"""The codes Openverse's `license` parameter takes: our vocabulary is Openverse's."""



def license_filter(allowed: frozenset[str] | None) -> str | None:
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
    license_id, license_url = licenses.resolve(
        text(result.get("license")), text(result.get("license_url")), text(result.get("license_version")))
    return item(url=text(result.get("url")), license=license_id, license_url=license_url,
                creator=text(result.get("creator")), attribution=text(result.get("attribution")),
                landing_url=text(result.get("foreign_landing_url")), caption=text(result.get("title")))


def page_of(document: object, page: int) -> Page:
    """A /v1/images/ answer: `results`, and `page_count` saying whether another page follows."""
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise SourceUnavailable(f"openverse page {page}: no results list in the answer")
    page_count = document.get("page_count")
    results = [openverse_item(result) for result in document["results"]]
    if None in results:
        log.warning("openverse results without a usable url skipped", extra={"page": page})
    return Page(results, not isinstance(page_count, int) or page < page_count)


class OpenverseProvider:
    name = "openverse"
    DEFAULT_ENDPOINT = "https://api.openverse.org"
    ANONYMOUS = Rate(20 / 60)
    AUTHENTICATED = Rate(100 / 60)
    PAGE_SIZE = 20
    AUTHENTICATED_PAGE_SIZE = 50

    def __init__(self, context: SearchContext, endpoint: str | None = None) -> None:
        self.context = context
        self.endpoint = (endpoint or self.DEFAULT_ENDPOINT).rstrip("/")
        client_id, secret = context.credential(CLIENT_ID), context.credential(CLIENT_SECRET)
        trusted = may_send_credentials(self.endpoint, self.DEFAULT_ENDPOINT, context.settings.search_key_endpoints)
        self._credentials = (client_id, secret) if client_id and secret and trusted else None
        if client_id and secret and not trusted:
            log.warning("openverse endpoint %s is not trusted with the client credentials: searching anonymously",
                        self.endpoint)
        mode = "authenticated" if self._credentials else "anonymous"
        rate = rate_for(context, self.name, self.AUTHENTICATED if self._credentials else self.ANONYMOUS)
        bucket = f"{self.name}:{mode}:{self.endpoint}"
        self.api = ApiClient(context, bucket, rate, secrets=self._credentials or ())
        self.auth = ApiClient(context, bucket, rate, key_setting=CLIENT_ID.setting, secrets=self._credentials or ())
        self.page_size = self.AUTHENTICATED_PAGE_SIZE if self._credentials else self.PAGE_SIZE
        self._token: str | None = None

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        license_param = license_filter(allowed)
        return page_through(lambda page: self._page(query, page, license_param), start, count, self.page_size)

    def _page(self, query: str, page: int, license_param: str | None) -> Page:
        params = {"q": query, "page": page, "page_size": self.page_size, "license": license_param}
        for fresh_token in (False, True):
            headers = {"Authorization": f"Bearer {self._access_token()}"} if self._credentials else None
            try:
                return page_of(self.api.get(f"{self.endpoint}/v1/images/", params, headers=headers), page)
            except SourceHTTPError as exc:
                if exc.status == 400 and page > 1:  # past the last page
                    return Page([], False)
                if exc.status == 401 and self._credentials and not fresh_token:  # the token expired
                    self._token = None
                    continue
                if exc.status == 401 and self._credentials:
                    raise SpecError(f"openverse refuses the token for {CLIENT_ID.env}") from None
                raise
        raise AssertionError("unreachable: the second try returns or raises")

    def _access_token(self) -> str:
        """One token per chunk (they last hours; a chunk, minutes), from POST /v1/auth_tokens/token/."""
        if self._token is None:
            assert self._credentials is not None
            client_id, secret = self._credentials
            document = self.auth.get(f"{self.endpoint}/v1/auth_tokens/token/", form={
                "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
            token = document.get("access_token") if isinstance(document, dict) else None
            if not isinstance(token, str) or not token:
                raise SpecError("openverse gave no access_token for PIXCRAWLER_SEARCH_OPENVERSE_CLIENT_ID")
            self._token = token
        return self._token
