"""Providers against the local provider stand-in, answering documented response documents."""

from __future__ import annotations

from collections.abc import Iterator

import providerserver
import pytest
from providerserver import Reply

from chunk_worker.providers.protocol import SearchContext
from tests.fixtures.imageserver import make_fetcher


@pytest.fixture
def context_for(provider_server) -> Iterator:
    """A search context whose fetcher has the given WorkerSettings overrides (keys, rates)."""
    fetchers = []

    def make(**settings: object) -> SearchContext:
        fetcher = make_fetcher(**{"search_key_endpoints": [provider_server.base_url], **settings})
        fetchers.append(fetcher)
        return SearchContext.start(fetcher)

    yield make
    for fetcher in fetchers:
        fetcher.close()


def fixture(provider: str, name: str) -> Reply:
    return Reply(providerserver.load(provider, name))


def scripted(*replies: Reply):
    """Answer with each reply in turn, then keep giving the last."""
    queue = list(replies)

    def answer(request):
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


def small_pages(cls, context: SearchContext, server, page_size: int = 2):
    """The provider at the stand-in, paging 2 results at a time so a few documented results span pages."""
    provider = cls(context, server.base_url)
    provider.PAGE_SIZE = page_size
    return provider
