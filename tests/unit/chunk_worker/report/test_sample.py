"""The report's sample: bounded, the lowest ranks, whatever order the items come in."""

import random

import pytest

from chunk_worker.report.sample import Lowest, share, url_rank


def test_keeps_the_lowest_ranks_whatever_the_order_offered():
    ranks = [f"{n:06d}" for n in range(5_000)]
    shuffled = ranks[:]
    random.Random(7).shuffle(shuffled)
    chosen = Lowest[str](48)
    for rank in shuffled:
        chosen.offer(rank, f"item {rank}")
    assert chosen.chosen() == [f"item {rank}" for rank in ranks[:48]]
    assert chosen.seen == 5_000


def test_never_holds_more_than_twice_its_size():
    chosen = Lowest[int](10)
    for n in range(10_000, 0, -1):  # every item lower than the last: the worst order
        chosen.offer(n, n)
        assert len(chosen._entries) < 20
    assert chosen.chosen() == list(range(1, 11))


def test_a_rank_past_the_cut_off_is_refused_without_being_stored():
    chosen = Lowest[int](2)
    for rank in (1, 2, 3, 4):
        chosen.offer(rank, rank)
    assert chosen.chosen() == [1, 2]
    assert not chosen.would_keep(5) and chosen.would_keep(0)


def test_fewer_items_than_the_size_are_all_kept_in_rank_order():
    chosen = Lowest[str](48)
    for rank in ("c", "a", "b"):
        chosen.offer(rank, rank.upper())
    assert chosen.chosen() == ["A", "B", "C"]
    assert chosen.chosen(limit=2) == ["A", "B"]


def test_a_sample_needs_room():
    with pytest.raises(ValueError, match="at least one"):
        Lowest(0)


def test_url_rank_is_stable_and_spreads():
    assert url_rank("http://a/1.jpg") == url_rank("http://a/1.jpg") != url_rank("http://a/2.jpg")


@pytest.mark.parametrize(("groups", "expected"), [(0, 48), (3, 48), (100, 15), (5_000, 1)])
def test_many_groups_share_the_total(groups, expected):
    assert share(groups, 48, 1_500) == expected


def test_shrinking_keeps_the_lowest_and_refuses_what_no_longer_fits():
    chosen = Lowest[int](48)
    for n in range(100, 0, -1):
        chosen.offer(n, n)
    chosen.shrink(3)
    chosen.offer(50, 50)
    chosen.offer(0, 0)
    assert chosen.chosen() == [0, 1, 2]
