"""Which pages, and which items of each, a slice of a paged URL list needs: pure arithmetic."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chunk_worker.contract import FinalizeSpec, Item, SourceSlice, UrlList, list_pages_root, source_pages
from chunk_worker.errors import ListPagesUnavailable
from chunk_worker.list_pages import PageRead, _page_items, page_name, pages_for
from chunk_worker.list_records import RejectedLine, parse_record, record


def test_a_slice_within_one_page_reads_that_page_only():
    assert pages_for(0, 500, 500) == [PageRead(0, 0, 500)]
    assert pages_for(1000, 500, 500) == [PageRead(2, 0, 500)]
    assert pages_for(3, 4, 10) == [PageRead(0, 3, 4)]


def test_a_slice_across_a_page_boundary_reads_the_end_of_one_and_the_start_of_the_next():
    assert pages_for(497, 500, 500) == [PageRead(0, 497, 3), PageRead(1, 0, 497)]
    assert pages_for(9, 2, 10) == [PageRead(0, 9, 1), PageRead(1, 0, 1)]


@pytest.mark.parametrize("page_size", [1, 3, 7, 64])
def test_slices_no_longer_than_a_page_touch_at_most_two_and_cover_each_item_once(page_size):
    for start in range(0, 3 * page_size + 2):
        for count in range(1, page_size + 1):
            reads = pages_for(start, count, page_size)
            covered = [read.page * page_size + read.skip + n for read in reads for n in range(read.take)]
            assert covered == list(range(start, start + count))
            assert len(reads) <= 2 and all(read.skip + read.take <= page_size for read in reads)


def test_an_empty_slice_reads_nothing_and_a_bad_one_is_refused():
    assert pages_for(7, 0, 5) == []
    with pytest.raises(ValueError):
        pages_for(-1, 3, 5)
    with pytest.raises(ValueError):
        pages_for(0, 3, 0)


def test_page_names_sort_in_page_order_under_their_source():
    prefix = source_pages(list_pages_root("uid-1"), 3)
    assert page_name(prefix, 0) == ".pixcrawler/lists/uid-1/source-3/page-000000.jsonl"
    assert sorted(page_name(prefix, p) for p in (10, 2, 100)) == [page_name(prefix, p) for p in (2, 10, 100)]


def test_records_keep_items_and_rejected_lines_apart():
    item = Item(url="https://img.example/1.jpg", label="cat", license="by")
    bad = RejectedLine(url="https://l.example/a.txt#L3", label="", line=3, problem="not UTF-8")
    assert parse_record(record(item)) == item and type(parse_record(record(item))) is Item
    assert parse_record(record(bad)) == bad and isinstance(parse_record(record(bad)), RejectedLine)
    with pytest.raises(ValueError):
        parse_record(b'X{"url": "https://img.example/1.jpg"}\n')


def lines(count: int) -> list[bytes]:
    return [record(Item(url=f"https://img.example/{n}.jpg")) for n in range(count)]


def test_a_page_read_skips_then_takes():
    got = list(_page_items(lines(5), "p", PageRead(0, 2, 2)))
    assert [item.url for item in got] == ["https://img.example/2.jpg", "https://img.example/3.jpg"]


def test_a_short_page_names_itself_and_what_the_slice_needed():
    with pytest.raises(ListPagesUnavailable, match=r"page-x holds 3 items; this slice needs 4"):
        list(_page_items(lines(3), "page-x", PageRead(0, 1, 3)))


def test_a_damaged_page_line_names_the_page_and_line():
    damaged = lines(2) + [b"I{not json\n"]
    with pytest.raises(ListPagesUnavailable, match=r"page-x line 3 is unreadable"):
        list(_page_items(damaged, "page-x", PageRead(0, 0, 3)))


def test_pages_belong_to_a_url_list_slice_with_a_page_size():
    url_list = UrlList(url="https://l.example/a.txt")
    SourceSlice(url_list=url_list, count=3, pages="p", page_size=500)
    with pytest.raises(ValidationError):
        SourceSlice(url_list=url_list, count=3, pages="p")
    with pytest.raises(ValidationError):
        SourceSlice(search={"query": "cat"}, count=3, pages="p", page_size=500)


@pytest.mark.parametrize("where", ["images", "", ".pixcrawler", ".pixcrawler/lists", ".pixcrawler/lists/../x",
                                   ".pixcrawler/lists/a/b"])
def test_finalize_deletes_nothing_but_a_jobs_list_pages(where):
    assert FinalizeSpec(list_pages=".pixcrawler/lists/uid-1").list_pages == ".pixcrawler/lists/uid-1"
    with pytest.raises(ValidationError):
        FinalizeSpec(list_pages=where)
