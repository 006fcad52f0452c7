"""Planning: a DatasetJob spec becomes a `JobPlan` (stored once per job) and numbered chunks.

A queued chunk is only an entry in the queue; its spec is derived from the plan when it is
admitted, so a 20,000-chunk job costs one plan document plus 20,000 small queue entries.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from chunk_worker.contract import (
    ChunkSpec,
    FinalizeSpec,
    Item,
    ListCountRequest,
    OutputFormat,
    Respect,
    Search,
    SourceSlice,
    Split,
    Transform,
    UrlList,
    Validation,
    list_pages_root,
    source_pages,
)
from chunk_worker.provider_catalog import required_credentials
from dataset_operator import priority

Tier = Literal["new-user", "enterprise", "free"]


class InvalidSpec(ValueError):
    """The DatasetJob passed the CRD schema but cannot be run (e.g. a bad URL scheme)."""


class PlannedSource(BaseModel):
    label: str = ""
    urls: list[str] | None = None
    url_list: UrlList | None = None
    search: Search | None = None
    size: int = Field(ge=0, description="Items this source contributes after the maxImages cap.")


class JobPlan(BaseModel):
    job: str  # <namespace>/<name>
    uid: str
    tier: Tier
    chunk_size: int
    sources: list[PlannedSource]
    validation: Validation
    output: str
    max_attempts: int
    format: OutputFormat = "files"
    transform: Transform = Field(default_factory=Transform)
    split: Split = Field(default_factory=Split)
    classes: list[str] = Field(default_factory=list)
    respect: Respect = Field(default_factory=Respect)
    list_counts: dict[int, int] = Field(default_factory=dict)  # what the list-count Job found, by source
    list_pages: str | None = None  # where under the output it wrote the URL lists as pages (unset: none)

    @property
    def total_items(self) -> int:
        return sum(source.size for source in self.sources)

    @property
    def chunk_count(self) -> int:
        return chunks_of(self.total_items, self.chunk_size)


def chunks_of(items: int, chunk_size: int) -> int:
    return math.ceil(items / chunk_size)


class _SourceSize(BaseModel):
    size: int


class OutlineFields(BaseModel):
    """The few fields of a stored plan a status pass reads for every job, parsed from the plan's JSON
    without the rest: pydantic skips the sources' URLs, the validation and the transform (7.5 against
    36 µs for a one-list plan, which adds up to most of a first status pass at 10,000 jobs)."""

    chunk_size: int
    sources: list[_SourceSize]
    output: str
    format: OutputFormat = "files"

    @property
    def chunk_count(self) -> int:
        return chunks_of(sum(source.size for source in self.sources), self.chunk_size)


DEFAULT_MAX_ATTEMPTS = 3  # the CRD's default for spec.retries.maxAttempts, for specs written before it


def max_attempts(spec: dict[str, Any]) -> int:
    return (spec.get("retries") or {}).get("maxAttempts", DEFAULT_MAX_ATTEMPTS)


def _check_http_url(url: str, where: str) -> None:
    if not (url.startswith("http://") or url.startswith("https://")):
        raise InvalidSpec(f"{where}: {url!r} is not an http:// or https:// URL")


def lists_to_count(spec: dict[str, Any]) -> dict[int, UrlList]:
    """The URL lists the list-count Job reads (and writes as pages) before planning, by source
    position: every one, with a `count` or without."""
    return {position: UrlList.model_validate({k: v for k, v in source["urlList"].items() if k != "count"})
            for position, source in enumerate(spec.get("sources", []))
            if "urlList" in source and str(source["urlList"].get("url", "")).startswith(("http://", "https://"))}


def list_limits(spec: dict[str, Any]) -> dict[int, int]:
    """How far each URL list is read at most: its `count`, and no source takes more than maxImages."""
    limits = {}
    for position, source in enumerate(spec.get("sources", [])):
        bounds = [bound for bound in ((source.get("urlList") or {}).get("count"), spec.get("maxImages"))
                  if bound is not None]
        if "urlList" in source and bounds:
            limits[position] = int(min(bounds))
    return limits


def list_request(spec: dict[str, Any], uid: str, output: str) -> ListCountRequest:
    """What the list-count Job is asked: every URL list, read up to its limit and written as pages of
    chunkSize items under the job's output."""
    return ListCountRequest(lists=lists_to_count(spec), limits=list_limits(spec), output=output,
                            pages=list_pages_root(uid), page_size=spec.get("chunkSize", 500))


def leftover_pages(spec: dict[str, Any], status: dict[str, Any], uid: str, namespace: str, name: str,
                   default_storage: str) -> tuple[str, str] | None:
    """(output, pages) a deleted job's list pages may be left under (finalize never ran, or the list
    Job was stopped mid-way), or None when the job read no URL list or its output cannot be named."""
    if not lists_to_count(spec):
        return None
    location = (status.get("output") or {}).get("location")
    if not location:
        try:
            location = output_url(default_storage, namespace, name, spec.get("output") or {})
        except InvalidSpec:
            return None
    return location, list_pages_root(uid)


def recorded_counts(status: dict[str, Any], spec: dict[str, Any], uid: str,
                    planned: bool) -> tuple[dict[int, int], str | None] | None:
    """The counts the status kept from the first planning, and where the lists' pages are (a re-plan
    after Redis lost its data must give the same chunks, whatever the remote lists say now), if it
    holds every one wanted. A job planned before lists were paged (no `listPages`) kept the counts
    of its lists without a `count` only, and is planned again as then: from those, with no pages."""
    wanted = lists_to_count(spec)
    kept = {int(position): int(count) for position, count in (status.get("listCounts") or {}).items()}
    if status.get("listPages") == list_pages_root(uid) and set(wanted) <= set(kept):
        return kept, list_pages_root(uid)
    if planned and "listPages" not in status:
        unpaged = {position for position in wanted if spec["sources"][position]["urlList"].get("count") is None}
        if unpaged <= set(kept):
            return kept, None
    return None


def source_sizes(spec: dict[str, Any], counted: dict[int, int]) -> list[int]:
    """Items per source before the cap: inline lists by length, searches by limit, URL lists by
    `counted[i]` (the list-count Job read the list once, up to its `count`), else by their `count`."""
    sizes = []
    for position, source in enumerate(spec["sources"]):
        if "urls" in source:
            sizes.append(len(source["urls"]))
        elif "search" in source:
            sizes.append(int(source["search"].get("limit", 100)))
        elif position in counted:
            sizes.append(counted[position])
        else:
            sizes.append(int(source["urlList"]["count"]))
    return sizes


def capped(sizes: list[int], max_images: int | None) -> list[int]:
    """Sources are taken in order until maxImages is reached."""
    if max_images is None:
        return list(sizes)
    left = max_images
    result = []
    for size in sizes:
        take = min(size, left)
        result.append(take)
        left -= take
    return result


def parsed(model: type[BaseModel], value: Any, where: str) -> Any:
    """What the CRD schema let through but the contract refuses (an allow-list entry that names no
    licence, say) is an invalid spec naming the field, not an error retried forever."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join([where, *map(str, e['loc'])])}: {e['msg']}" for e in exc.errors())
        raise InvalidSpec(problems) from None


def job_classes(spec: dict[str, Any]) -> list[str]:
    """The class list the .cls index refers to: the spec's, else the sources' labels sorted. A source
    whose URL list brings its own labels (labelColumn) makes the set unknowable up front: then no
    class index is recorded (the CRD requires `classes` for the formats that need one)."""
    if spec.get("classes"):
        return list(spec["classes"])
    if any((source.get("urlList") or {}).get("labelColumn") for source in spec["sources"]):
        return []
    labels = sorted({source.get("label", "") for source in spec["sources"]})
    return [] if labels == [""] else labels


def describe_source(source: dict[str, Any]) -> str:
    """One line per source for the dataset card."""
    label = source.get("label") or "(no label)"
    if "urls" in source:
        return f"{label}: {len(source['urls'])} URLs given inline"
    if "urlList" in source:
        url_list = source["urlList"]
        return f"{label}: URL list {url_list['url']} ({url_list.get('format', 'txt')})"
    search = source["search"]
    queries = " + ".join(repr(query) for query in Search.model_validate(search).all_queries)
    return f"{label}: {search.get('provider', 'openverse')} search for {queries} (up to {search.get('limit', 100)})"


def output_url(default_storage: str, namespace: str, name: str, output: dict[str, Any]) -> str:
    """`azure://<container>/<prefix>` or `file:///<dir>/<container>/<prefix>`; the spec's container
    replaces the default's, the prefix defaults to <namespace>/<name>."""
    prefix = (output.get("prefix") or f"{namespace}/{name}").strip("/")
    if default_storage.startswith("azure://"):
        default_container, _, _ = default_storage.removeprefix("azure://").partition("/")
        container = output.get("container") or default_container
        if not container:
            raise InvalidSpec("output.container is unset and PIXCRAWLER_STORAGE names no container")
        return f"azure://{container}/{prefix}"
    if default_storage.startswith("file://"):
        base = default_storage.rstrip("/")
        container = output.get("container")
        return f"{base}/{container}/{prefix}" if container else f"{base}/{prefix}"
    raise InvalidSpec(f"PIXCRAWLER_STORAGE {default_storage!r} is neither azure:// nor file://")


def check_search_keys(search: dict[str, Any], where: str, configured_keys: set[str],
                      trusted_endpoints: list[str]) -> None:
    """A provider that cannot search without a key must have one configured, and a keyed search may
    point only at an endpoint the operator trusts with it: refused here, before any chunk runs."""
    provider = search.get("provider", "openverse")
    needed = required_credentials(provider)
    missing = [credential.secret_key for credential in needed if credential.secret_key not in configured_keys]
    if missing:
        keys = ", ".join(missing)
        raise InvalidSpec(
            f"{where}.provider: {provider} needs {keys}, which the operator does not have: set "
            f"PIXCRAWLER_SEARCH_CREDENTIALS_SECRET (chart: search.credentialsSecret) to a Secret holding {keys} "
            f"and list it in PIXCRAWLER_SEARCH_CREDENTIAL_KEYS (chart: search.credentialKeys)")
    endpoint = (search.get("endpoint") or "").rstrip("/")
    if needed and endpoint and endpoint not in {url.rstrip("/") for url in trusted_endpoints}:
        raise InvalidSpec(f"{where}.endpoint: {endpoint} would receive the operator's {provider} key; only "
                          "the provider's own API or an endpoint in PIXCRAWLER_SEARCH_KEY_ENDPOINTS may")


def make_plan(
    namespace: str,
    name: str,
    uid: str,
    spec: dict[str, Any],
    default_storage: str,
    known_providers: set[str],
    counted: dict[int, int] | None = None,
    configured_keys: set[str] | None = None,
    trusted_endpoints: list[str] | None = None,
    list_pages: str | None = None,
) -> JobPlan:
    """`counted`, `list_pages`: what the list-count Job found and where it wrote the lists' pages."""
    for position, source in enumerate(spec["sources"]):
        where = f"spec.sources[{position}]"
        for index, url in enumerate(source.get("urls", [])):
            _check_http_url(url, f"{where}.urls[{index}]")
        if "urlList" in source:
            _check_http_url(source["urlList"]["url"], f"{where}.urlList.url")
        if "search" in source:
            provider = source["search"].get("provider", "openverse")
            if provider not in known_providers:
                raise InvalidSpec(
                    f"{where}.search.provider: unknown provider {provider!r} (known: {', '.join(sorted(known_providers))})"
                )
            check_search_keys(source["search"], f"{where}.search", configured_keys or set(), trusted_endpoints or [])
    sizes = capped(source_sizes(spec, counted or {}), spec.get("maxImages"))
    sources = []
    for source, size in zip(spec["sources"], sizes):
        sources.append(
            PlannedSource(
                label=source.get("label", ""),
                urls=source.get("urls"),
                url_list=UrlList.model_validate(
                    {k: v for k, v in source["urlList"].items() if k != "count"}) if "urlList" in source else None,
                search=parsed(Search, source["search"], f"spec.sources[{len(sources)}].search")
                if "search" in source else None,
                size=size,
            )
        )
    plan = JobPlan(
        job=f"{namespace}/{name}",
        uid=uid,
        tier=spec.get("tier", "free"),
        chunk_size=spec.get("chunkSize", 500),
        sources=sources,
        validation=parsed(Validation, spec.get("validation", {}), "spec.validation"),
        output=output_url(default_storage, namespace, name, spec.get("output", {})),
        max_attempts=max_attempts(spec),
        format=spec.get("output", {}).get("format", "files"),
        transform=parsed(Transform, spec.get("transform", {}), "spec.transform"),
        split=parsed(Split, spec.get("split", {}), "spec.split"),
        classes=job_classes(spec),
        respect=parsed(Respect, spec.get("respect", {}), "spec.respect"),
        list_counts={position: count for position, count in (counted or {}).items()},
        list_pages=list_pages,
    )
    if plan.total_items == 0:
        raise InvalidSpec("the sources hold no items (empty URL list?)")
    if plan.chunk_count > priority.MAX_CHUNKS + 1:
        raise InvalidSpec(f"spec.chunkSize: {plan.total_items} items in chunks of {plan.chunk_size} make "
                          f"{plan.chunk_count} chunks, more than {priority.MAX_CHUNKS + 1}; raise chunkSize")
    return plan


def chunk_spec(plan: JobPlan, index: int, attempt: int = 1) -> ChunkSpec:
    """Chunk `index` covers items [index*chunkSize, (index+1)*chunkSize) numbered across sources in order."""
    if not 0 <= index < plan.chunk_count:
        raise IndexError(f"chunk {index} outside 0..{plan.chunk_count - 1}")
    begin = index * plan.chunk_size
    end = min(begin + plan.chunk_size, plan.total_items)
    items: list[Item] = []
    slices: list[SourceSlice] = []
    offset = 0
    for position, source in enumerate(plan.sources):
        lo, hi = max(begin, offset), min(end, offset + source.size)
        if lo < hi:
            start, count = lo - offset, hi - lo
            if source.urls is not None:
                items.extend(Item(url=url, label=source.label) for url in source.urls[start:start + count])
            else:
                paged = source.url_list is not None and plan.list_pages is not None
                slices.append(SourceSlice(label=source.label, url_list=source.url_list, search=source.search,
                                          start=start, count=count,
                                          pages=source_pages(plan.list_pages, position) if paged else None,
                                          page_size=plan.chunk_size if paged else None))
        offset += source.size
    return ChunkSpec(job=plan.job, job_uid=plan.uid, chunk=index, attempt=attempt, items=items, sources=slices,
                     validation=plan.validation, output=plan.output, format=plan.format, transform=plan.transform,
                     split=plan.split, classes=plan.classes, respect=plan.respect)


def finalize_spec(plan: JobPlan, sources: list[dict[str, Any]]) -> FinalizeSpec:
    return FinalizeSpec(job=plan.job, output=plan.output, format=plan.format, chunks=plan.chunk_count,
                        classes=plan.classes, split=plan.split, transform=plan.transform,
                        licenses=plan.validation.licenses, dedup=plan.validation.dedup,
                        sources=[describe_source(source) for source in sources], list_pages=plan.list_pages)
