"""Worker settings from the environment (prefix PIXCRAWLER_); command-line flags override them."""

from __future__ import annotations

import ipaddress

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chunk_worker import AGENT_TOKEN


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXCRAWLER_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "pc:"
    redis_password: str = Field("", description="Redis password, kept out of the URL (and so out of Job specs).")
    allow_networks: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = Field(
        default_factory=list,
        description="CIDRs the fetcher may reach although they are not public (tests, demos).",
    )
    fetch_threads: int = Field(32, ge=1, le=512, description="Concurrent downloads per chunk.")
    per_host_limit: int = Field(8, ge=1, le=512, description="Concurrent downloads per host.")
    pixel_slots: int | None = Field(
        None, ge=1, le=512, description="Items decoded, hashed and encoded at once (default: usable CPUs + 1).")
    item_deadline_seconds: float = Field(30.0, gt=0, description="Total time for one image, all retries included.")
    fetch_attempts: int = Field(3, ge=1, le=10, description="Tries per image on 429/5xx/connection errors.")
    max_redirects: int = Field(5, ge=0, le=20)
    user_agent_token: str = Field(
        AGENT_TOKEN, pattern=r"^[A-Za-z_-]+$", max_length=64,
        description="Product token: starts the User-Agent header; the robots.txt group read is the one naming it.")
    site_file_deadline_seconds: float = Field(
        10.0, gt=0, description="Total time for one robots.txt or tdmrep.json; the first image of its origin waits for it.")
    list_deadline_seconds: float = Field(300.0, gt=0, description="Total time to stream a URL list or search.")
    progress_interval_seconds: float = Field(1.0, gt=0, description="How often progress goes to Redis.")
    tmp_dir: str | None = Field(None, description="Parent of the per-chunk temp dir (default: the system's).")
    memory_budget_bytes: int | None = Field(
        None, ge=1, description="Bytes decodes may hold at once (default: derived from the cgroup memory limit).")
    search_flickr_api_key: str = Field("", description="Flickr API key (from the search credentials Secret).")
    search_smithsonian_api_key: str = Field("", description="api.data.gov key for Smithsonian Open Access.")
    search_openverse_client_id: str = Field("", description="Openverse OAuth2 client id (higher limits).")
    search_openverse_client_secret: str = Field("", description="Openverse OAuth2 client secret.")
    search_key_endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="API base URLs besides each provider's own that may receive its "
        "credentials (a mirror, a test server); an endpoint override not listed gets none.")
    search_rates: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, description="Requests per second per provider, cluster-wide, overriding the "
        "documented rates: provider=rate,provider2=rate.")

    @field_validator("allow_networks", "search_key_endpoints", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(",", " ").split() if part.strip()]
        return value

    @field_validator("search_rates", mode="before")
    @classmethod
    def _rates(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = [part.strip() for part in value.split(",") if part.strip()]
        if any("=" not in pair for pair in pairs):
            raise ValueError("search_rates: expected provider=requests per second, comma-separated")
        return {name.strip(): rate.strip() for name, rate in (pair.split("=", 1) for pair in pairs)}

    @field_validator("search_rates")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, rate in value.items() if not rate > 0]
        if bad:
            raise ValueError(f"search_rates: the rate of {', '.join(bad)} must be above 0")
        return value
