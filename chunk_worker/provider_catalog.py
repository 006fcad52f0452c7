"""What each search provider is, as data: its name, the keys it may use and whether it needs one.
The operator reads this (to refuse a job whose provider has no key, and to map keys into chunk Jobs)
without importing the providers themselves, which fetch: the operator process never does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class Credential(NamedTuple):
    """One key a provider may need: its name in the search credentials Secret and the worker setting
    (environment variable) the chunk Job maps it to."""

    secret_key: str
    setting: str

    @property
    def env(self) -> str:
        return f"PIXCRAWLER_{self.setting.upper()}"


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    credentials: tuple[Credential, ...] = ()
    needs_key: bool = False  # False: keyless, or its keys are optional (Openverse's raise its limits)


FLICKR_API_KEY = Credential("flickr-api-key", "search_flickr_api_key")
SMITHSONIAN_API_KEY = Credential("smithsonian-api-key", "search_smithsonian_api_key")
OPENVERSE_CLIENT_ID = Credential("openverse-client-id", "search_openverse_client_id")
OPENVERSE_CLIENT_SECRET = Credential("openverse-client-secret", "search_openverse_client_secret")

CATALOG: dict[str, ProviderEntry] = {entry.name: entry for entry in (
    ProviderEntry("openverse", (OPENVERSE_CLIENT_ID, OPENVERSE_CLIENT_SECRET)),
    ProviderEntry("wikimedia"),
    ProviderEntry("inaturalist"),
    ProviderEntry("met"),
    ProviderEntry("smithsonian", (SMITHSONIAN_API_KEY,), needs_key=True),
    ProviderEntry("flickr", (FLICKR_API_KEY,), needs_key=True),
)}
PROVIDER_NAMES = tuple(CATALOG)


def required_credentials(name: str) -> tuple[Credential, ...]:
    """The keys without which the provider cannot search at all (Openverse's are optional)."""
    entry = CATALOG[name]
    return entry.credentials if entry.needs_key else ()


def credential_keys() -> dict[str, Credential]:
    """Every key a provider may use, by its name in the search credentials Secret."""
    return {credential.secret_key: credential for entry in CATALOG.values() for credential in entry.credentials}
