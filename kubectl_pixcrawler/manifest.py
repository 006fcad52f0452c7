"""The DatasetJob `kubectl pixcrawler create` writes: the same object a user would write by hand. Pure."""

from __future__ import annotations

from typing import Any

GROUP, VERSION, PLURAL, KIND = "pixcrawler.io", "v1alpha1", "datasetjobs", "DatasetJob"


def datasetjob(name: str, *, label: str, query: str, limit: int, provider: str = "openverse",
               tier: str = "free", output_format: str | None = None, chunk_size: int | None = None,
               licenses: list[str] | None = None, endpoint: str | None = None,
               namespace: str | None = None, queries: list[str] | None = None) -> dict[str, Any]:
    """Only what was asked is written: the API server fills in the schema's defaults."""
    search: dict[str, Any] = {"provider": provider, "query": query, "limit": limit}
    if queries:
        search["queries"] = list(queries)
    if endpoint:
        search["endpoint"] = endpoint
    spec: dict[str, Any] = {"tier": tier, "sources": [{"label": label, "search": search}]}
    if chunk_size is not None:
        spec["chunkSize"] = chunk_size
    if output_format is not None:
        spec["output"] = {"format": output_format}
    if licenses:
        spec["validation"] = {"licenses": list(licenses)}
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}
