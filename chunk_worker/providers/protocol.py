"""What every provider is and gets: the `SearchProvider` interface, the `SearchContext` a chunk
hands it (fetcher, pacer, the search's deadline), the credentials it may need, and result paging."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from pydantic import ValidationError

from chunk_worker.contract import Item
from chunk_worker.errors import SpecError
from chunk_worker.fetch import Fetcher
from chunk_worker.pacing import LocalPacer, Pacer
from chunk_worker.provider_catalog import Credential
from chunk_worker.settings import WorkerSettings


class SearchProvider(Protocol):
    name: str

    def search(self, query: str, start: int, count: int, allowed: frozenset[str] | None = None) -> Iterator[Item]:
        """Results [start, start+count) as unlabelled items, fewer if the provider runs out or a
        result is unusable (every result the provider lists takes a position, usable or not, so the
        slices of a result stream tile it exactly).

        `allowed` (normalised licence ids) lets a provider that can filter by licence do so, so
        results the allow-list would refuse are never listed; every chunk of a source passes the
        same list, so the slices still tile one result stream. Where the API cannot filter, the
        worker's allow-list check refuses those items before any byte is fetched."""
        ...


@dataclass(frozen=True)
class SearchContext:
    """What a chunk gives its providers. `deadline` (monotonic) bounds the whole search, pacing waits
    included: PIXCRAWLER_LIST_DEADLINE_SECONDS from the moment the slice starts."""

    fetcher: Fetcher
    pacer: Pacer
    deadline: float

    @classmethod
    def start(cls, fetcher: Fetcher, pacer: Pacer | None = None) -> SearchContext:
        return cls(fetcher, pacer or LocalPacer(), time.monotonic() + fetcher.settings.list_deadline_seconds)

    @property
    def settings(self) -> WorkerSettings:
        return self.fetcher.settings

    def credential(self, credential: Credential) -> str:
        return str(getattr(self.settings, credential.setting) or "")


def may_send_credentials(endpoint: str, default: str, trusted: list[str]) -> bool:
    """A key goes to the provider's own API or to a base URL the operator listed, never to an endpoint
    a DatasetJob names: `endpoint` is user-given, the key is the operator's."""
    normalised = endpoint.rstrip("/")
    return normalised == default.rstrip("/") or normalised in {url.rstrip("/") for url in trusted}


def required_key(context: SearchContext, provider: str, credential: Credential, endpoint: str, default: str) -> str:
    """The key a provider cannot search without, checked before any request: it is set, and the
    endpoint may receive it."""
    key = context.credential(credential)
    if not key:
        raise SpecError(f"search provider {provider} needs a key: {credential.env} is unset "
                        f"(Secret key {credential.secret_key})")
    if not may_send_credentials(endpoint, default, context.settings.search_key_endpoints):
        raise SpecError(f"search endpoint {endpoint} is not trusted with the {provider} key "
                        "(PIXCRAWLER_SEARCH_KEY_ENDPOINTS)")
    return key


class Page(NamedTuple):
    results: list[Item | None]
    """One entry per result the provider listed, None for one without a usable image."""
    more: bool


def page_through(read: Callable[[int], Page], start: int, count: int, page_size: int, first: int = 1) -> Iterator[Item]:
    """Results [start, start+count) of a stream served in numbered pages of `page_size`, the first
    numbered `first`; pages are read lazily, from the one holding `start`."""
    page, skip = divmod(start, page_size)
    page += first
    remaining = count
    while remaining > 0:
        current = read(page)
        for result in current.results[skip:]:
            remaining -= 1
            if result is not None:
                yield result
            if remaining == 0:
                return
        if not current.more or not current.results:
            return
        skip = 0
        page += 1


def text(value: object) -> str | None:
    """A JSON string field as stripped text; None when absent, empty or not a string."""
    return value.strip() or None if isinstance(value, str) else None


def item(**fields: object) -> Item | None:
    """An Item, or None when the provider's fields make none (no URL, an overlong one)."""
    if not fields.get("url"):
        return None
    try:
        return Item(**fields)
    except ValidationError:
        return None
