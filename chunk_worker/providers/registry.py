"""The providers by name, to search with. What each one needs (keys) is data in provider_catalog.py,
which the operator reads without importing these modules."""

from __future__ import annotations

from typing import Protocol

from chunk_worker.errors import SpecError
from chunk_worker.provider_catalog import PROVIDER_NAMES
from chunk_worker.providers.flickr import FlickrProvider
from chunk_worker.providers.inaturalist import INaturalistProvider
from chunk_worker.providers.met import MetProvider
from chunk_worker.providers.openverse import OpenverseProvider
from chunk_worker.providers.protocol import SearchContext, SearchProvider
from chunk_worker.providers.smithsonian import SmithsonianProvider
from chunk_worker.providers.wikimedia import WikimediaProvider


class ProviderClass(Protocol):
    name: str

    def __call__(self, context: SearchContext, endpoint: str | None = None) -> SearchProvider: ...


PROVIDERS: dict[str, ProviderClass] = {
    cls.name: cls for cls in (OpenverseProvider, WikimediaProvider, INaturalistProvider, MetProvider,
                              SmithsonianProvider, FlickrProvider)
}
assert tuple(PROVIDERS) == PROVIDER_NAMES, "provider_catalog.py and the provider modules disagree"


def get_provider(name: str, context: SearchContext, endpoint: str | None = None) -> SearchProvider:
    try:
        cls = PROVIDERS[name.lower()]
    except KeyError:
        raise SpecError(f"unknown search provider {name!r}; known providers: {', '.join(sorted(PROVIDERS))}") from None
    return cls(context, endpoint)
