"""Several queries as one stream: turns, each URL once, slices that tile (no I/O)."""

from __future__ import annotations

from itertools import islice

import pytest
from pydantic import ValidationError

from chunk_worker.contract import Item, Search
from chunk_worker.search import merged


def stream(*names: str):
    return iter([Item(url=f"https://example.org/{name}.jpg") for name in names])


def urls(items) -> list[str]:
    return [item.url.rsplit("/", 1)[1].removesuffix(".jpg") for item in items]


def test_queries_take_turns_and_an_image_comes_once():
    assert urls(merged([stream("a", "b", "c"), stream("b", "x", "a", "y")])) == ["a", "b", "c", "x", "y"]


def test_an_exhausted_query_leaves_the_others_going():
    assert urls(merged([stream("a"), stream("x", "y", "z"), stream()])) == ["a", "x", "y", "z"]


def test_slices_of_the_merged_stream_tile_it():
    def whole():
        return merged([stream(*"abcdefg"), stream(*"aXbYcZ"), stream(*"QRa")])

    everything = urls(whole())
    pieces = [urls(islice(whole(), start, start + 3)) for start in range(0, 15, 3)]
    assert sum(pieces, []) == everything
    assert len(everything) == len(set(everything))


def test_a_query_is_drawn_from_only_when_its_turn_comes():
    drawn = []

    def counted():
        for name in "abcdef":
            drawn.append(name)
            yield Item(url=f"https://example.org/{name}.jpg")

    list(islice(merged([counted(), stream(*"xyz")]), 3))
    assert drawn == ["a", "b"]


def test_query_and_queries_make_one_ordered_list_without_repeats():
    assert Search(query="cat", queries=["kitten", "cat", "tabby"]).all_queries == ["cat", "kitten", "tabby"]
    assert Search(queries=["kitten"]).all_queries == ["kitten"]


def test_a_search_needs_a_query():
    with pytest.raises(ValidationError, match="query or queries"):
        Search(queries=[])
