"""A search source as one result stream: its queries' results merged, each image once, sliced.

One query is its provider's stream as it is. Several (`queries`) are taken in turn, one result of each
query then the next, skipping exhausted queries and any image URL already taken; the merge is a pure
function of the providers' streams, so every chunk computes the same stream and its slice
[start, start+count) tiles it. That costs a chunk of a multi-query source every query's results up
to its slice (a result can only be known new by what came before it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from chunk_worker.contract import Item, Search
from chunk_worker.providers.protocol import SearchContext
from chunk_worker.providers.registry import get_provider


def merged(streams: Iterable[Iterator[Item]]) -> Iterator[Item]:
    """Round-robin over the streams, each URL once (the first stream to list it keeps it), drawing
    from a stream only when its turn comes (pages stay lazy)."""
    active = list(streams)
    seen: set[str] = set()
    while active:
        still = []
        for stream in active:
            for found in stream:
                if found.url not in seen:
                    seen.add(found.url)
                    yield found
                    still.append(stream)
                    break
        active = still


def search_items(search: Search, start: int, count: int, context: SearchContext,
                 allowed: frozenset[str] | None = None) -> Iterator[Item]:
    """Items [start, start+count) of the search's stream, within its limit."""
    count = min(count, search.limit - start)
    if count <= 0:
        return iter(())
    provider = get_provider(search.provider, context, search.endpoint)
    queries = search.all_queries
    if len(queries) == 1:
        return provider.search(queries[0], start, count, allowed)
    streams = [provider.search(query, 0, search.limit, allowed) for query in queries]
    return islice(merged(streams), start, start + count)
