"""The providers by name, and what each needs: the operator reads `required_credentials` to refuse a
DatasetJob whose provider has no key configured, before any chunk runs."""

from __future__ import annotations

from typing import Protocol

from chunk_worker.errors import SpecError
from chunk_worker.providers.flickr import FlickrProvider
from chunk_worker.providers.inaturalist import INaturalistProvider
from chunk_worker.providers.met import MetProvider
from chunk_worker.providers.openverse import OpenverseProvider
from chunk_worker.providers.protocol import Credential, SearchContext, SearchProvider
from chunk_worker.providers.smithsonian import SmithsonianProvider
from chunk_worker.providers.wikimedia import WikimediaProvider


class ProviderClass(Protocol):
    name: str
    credentials: tuple[Credential, ...]
    needs_key: bool

    def __call__(self, context: SearchContext, endpoint: str | None = None) -> SearchProvider: ...


PROVIDERS: dict[str, ProviderClass] = {
    cls.name: cls for cls in (OpenverseProvider, WikimediaProvider, INaturalistProvider, MetProvider,
                              SmithsonianProvider, FlickrProvider)
}


def required_credentials(name: str) -> tuple[Credential, ...]:
    """The keys without which the provider cannot search at all (Openverse's are optional)."""
    cls = PROVIDERS[name]
    return cls.credentials if cls.needs_key else ()


def credential_keys() -> dict[str, Credential]:
    """Every key a provider may use, by its name in the search credentials Secret."""
    return {credential.secret_key: credential for cls in PROVIDERS.values() for credential in cls.credentials}


def get_provider(name: str, context: SearchContext, endpoint: str | None = None) -> SearchProvider:
    try:
        cls = PROVIDERS[name.lower()]
    except KeyError:
        raise SpecError(f"unknown search provider {name!r}; known providers: {', '.join(sorted(PROVIDERS))}") from None
    return cls(context, endpoint)
