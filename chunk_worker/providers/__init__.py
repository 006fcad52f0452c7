"""Keyword search providers, one module each: a query becomes a stream of items (image URL, licence
and credit) paged through the provider's API, paced cluster-wide (chunk_worker.pacing)."""
