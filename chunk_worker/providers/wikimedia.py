"""Wikimedia Commons through the MediaWiki Action API: `generator=search` over the File namespace
with `prop=imageinfo` (`url|extmetadata`), keyless. The API etiquette asks for serial requests, a
User-Agent naming the client and a contact, and `maxlag=5` (back off while the databases lag);
the cluster-wide bucket at one request a second keeps the cluster's requests one after another."""

from __future__ import annotations

import html.parser
from collections.abc import Iterator
from urllib.parse import unquote

import urllib3

from chunk_worker import USER_AGENT, licenses
from chunk_worker.contract import Item
from chunk_worker.errors import SourceUnavailable
from chunk_worker.pacing import Rate
from chunk_worker.providers.client import ApiClient, RetryLater, rate_for
from chunk_worker.providers.protocol import Page, SearchContext, item, page_through, text

HEADERS = {"User-Agent": f"{USER_AGENT} urllib3/{urllib3.__version__}"}
MAXLAG = 5
MAXLAG_RETRY_SECONDS = 5.0
"""What MediaWiki's Retry-After says for maxlag; its error body carries no header we could read."""
EXTMETADATA = ("LicenseShortName", "LicenseUrl", "License", "Artist", "Credit", "AttributionRequired", "ObjectName")


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain(value: object) -> str | None:
    """extmetadata values are HTML (an artist is often a link to a user page): the text, entities
    decoded, whitespace collapsed."""
    if not isinstance(value, str):
        return None
    parser = _Text()
    parser.feed(value)
    parser.close()
    return " ".join("".join(parser.parts).split()) or None


def search_params(query: str, offset: int, limit: int) -> dict[str, object]:
    return {"action": "query", "format": "json", "formatversion": 2, "generator": "search",
            "gsrsearch": f"{query} filetype:bitmap", "gsrnamespace": 6, "gsrlimit": limit, "gsroffset": offset,
            "prop": "imageinfo", "iiprop": "url|extmetadata", "iiextmetadatafilter": "|".join(EXTMETADATA),
            "maxlag": MAXLAG}


def check(document: object) -> None:
    """MediaWiki reports its errors in the body: maxlag asks for a pause, the rest are failures."""
    if not isinstance(document, dict) or "error" not in document:
        return
    error = document["error"] if isinstance(document["error"], dict) else {}
    if error.get("code") == "maxlag":
        raise RetryLater(MAXLAG_RETRY_SECONDS, f"maxlag: {error.get('info', 'replication lag')}")
    raise SourceUnavailable(f"wikimedia: API error {error.get('code')!r}: {error.get('info')}")


def commons_item(page: object) -> Item | None:
    """One File page: the original's URL, licence from LicenseShortName and LicenseUrl, the artist and
    credit as text, an attribution line when AttributionRequired says so, the description page."""
    if not isinstance(page, dict) or not isinstance(page.get("imageinfo"), list) or not page["imageinfo"]:
        return None
    info = page["imageinfo"][0]
    if not isinstance(info, dict):
        return None
    meta = info.get("extmetadata") if isinstance(info.get("extmetadata"), dict) else {}

    def field(name: str) -> str | None:
        entry = meta.get(name)
        return plain(entry.get("value")) if isinstance(entry, dict) else None

    short_name = field("LicenseShortName") or field("License")
    license_id, license_url = licenses.resolve(short_name, field("LicenseUrl"))
    creator = field("Artist")
    title = field("ObjectName") or _file_title(page.get("title"))
    required = (field("AttributionRequired") or "").lower() != "false"
    attribution = None
    if required and (creator or field("Credit")):
        credit = creator or field("Credit")
        terms = ", ".join(part for part in (short_name, license_url) if part)
        attribution = f"{title + ' by ' if title else ''}{credit}{', ' + terms if terms else ''}, via Wikimedia Commons"
    return item(url=text(info.get("url")), license=license_id, license_url=license_url, creator=creator,
                attribution=attribution, landing_url=text(info.get("descriptionurl")), caption=title)


def _file_title(value: object) -> str | None:
    name = text(value)
    if not name:
        return None
    name = unquote(name).removeprefix("File:")
    return name.rsplit(".", 1)[0].replace("_", " ") or None


def page_of(document: object) -> Page:
    """A query answer: the pages in search order (`index`; the generator hands them over unordered),
    and `continue` while more follow. No `query` at all: no (more) results."""
    if not isinstance(document, dict):
        raise SourceUnavailable("wikimedia: the answer is not a JSON object")
    query = document.get("query") if isinstance(document.get("query"), dict) else {}
    pages = query.get("pages") or []
    if isinstance(pages, dict):  # formatversion=1 answers: pages keyed by id
        pages = list(pages.values())
    ordered = sorted((page for page in pages if isinstance(page, dict)),
                     key=lambda page: page.get("index") if isinstance(page.get("index"), int) else 1 << 30)
    return Page([commons_item(page) for page in ordered], "continue" in document)


class WikimediaProvider:
    name = "wikimedia"
    DEFAULT_ENDPOINT = "https://commons.wikimedia.org"
    RATE = Rate(1.0)
    PAGE_SIZE = 50
    MAX_OFFSET = 10_000
    """CirrusSearch serves no result past the 10,000th."""

    def __init__(self, context: SearchContext, endpoint: str | None = None) -> None:
        self.endpoint = (endpoint or self.DEFAULT_ENDPOINT).rstrip("/")
        self.api = ApiClient(context, f"{self.name}:{self.endpoint}", rate_for(context, self.name, self.RATE),
                             check=check)

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        return page_through(lambda page: self._page(query, page), start, count, self.PAGE_SIZE, first=0)

    def _page(self, query: str, page: int) -> Page:
        if page * self.PAGE_SIZE >= self.MAX_OFFSET:
            return Page([], False)
        document = self.api.get(f"{self.endpoint}/w/api.php", search_params(query, page * self.PAGE_SIZE,
                                                                             self.PAGE_SIZE), headers=HEADERS)
        return page_of(document)
