"""Parsing URL lists: one bad line costs one rejected item naming its line, never the list."""

from __future__ import annotations

from itertools import islice

import pytest
from pydantic import ValidationError

from chunk_worker.contract import Item, SourceSlice, UrlList
from chunk_worker.errors import SpecError
from chunk_worker.listlines import MAX_LINE
from chunk_worker.sources import RejectedLine, list_items

LIST = "https://lists.example.org/images"


def parse(body: bytes, fmt: str = "txt", **fields) -> list[Item]:
    return list(list_items([body], UrlList(url=f"{LIST}.{fmt}", format=fmt, **fields), "cat"))


def outcome(items: list[Item]) -> list[str]:
    """Each indexed line as the manifest will name it: the image URL, or the list line rejected."""
    return [f"rejected {item.url}" if isinstance(item, RejectedLine) else item.url for item in items]


def url(n: int) -> str:
    return f"https://img.example.org/{n}.jpg"


def jsonl(n: int) -> str:
    return f'{{"url": "{url(n)}"}}'


def test_a_jsonl_line_nested_too_deep_is_one_rejected_line():
    deep = "[" * 30_000 + "]" * 30_000
    items = parse("\n".join([jsonl(1), deep, jsonl(2)]).encode(), "jsonl")
    assert outcome(items) == [url(1), f"rejected {LIST}.jsonl#L2", url(2)]
    assert items[1].problem == "JSON nested too deep"


def test_a_csv_with_cr_only_line_endings_reads_every_row():
    body = "\r".join(["url,label", f"{url(1)},a", f"{url(2)},b", ""]).encode()
    items = parse(body, "csv", label_column="label")
    assert [(item.url, item.label) for item in items] == [(url(1), "a"), (url(2), "b")]


def test_a_bare_cr_inside_a_csv_field_ends_that_line_and_the_rest_is_read():
    body = f'url,caption\n{url(1)},"two\rlines"\n{url(2)},fine\n'.encode()
    assert outcome(parse(body, "csv")) == [f"rejected {LIST}.csv#L2", f"rejected {LIST}.csv#L3", url(2)]


@pytest.mark.parametrize(("bad", "problem"), [
    (b"https://img.example.org/\0.jpg", "contains a NUL byte"),
    (b"https://img.example.org/\xe9t\xe9.jpg", "not UTF-8 (byte 25)"),
    (b"https://img.example.org/" + b"x" * MAX_LINE, f"longer than {MAX_LINE} bytes"),
])
@pytest.mark.parametrize("fmt", ["txt", "jsonl"])
def test_an_unreadable_line_is_rejected_naming_its_line_and_problem(fmt, bad, problem):
    good = (url(1) if fmt == "txt" else jsonl(1)).encode()
    items = parse(b"\n".join([good, bad, good]), fmt)
    assert outcome(items) == [url(1), f"rejected {LIST}.{fmt}#L2", url(1)]
    assert (items[1].line, items[1].problem) == (2, problem)


def test_a_csv_row_with_the_wrong_field_count_is_rejected():
    body = f"url,label\n{url(1)}\n{url(2)},b,extra\n{url(3)},c\n".encode()
    items = parse(body, "csv")
    assert outcome(items) == [f"rejected {LIST}.csv#L2", f"rejected {LIST}.csv#L3", url(3)]
    assert [item.problem for item in items[:2]] == ["1 fields, the header has 2", "3 fields, the header has 2"]


@pytest.mark.parametrize(("fmt", "line", "problem"), [
    ("jsonl", '{"url": 7}', "no URL in 'url'"),
    ("jsonl", '["not", "an", "object"]', "not a JSON object"),
    ("jsonl", "{broken", "not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ("txt", "https://img.example.org/" + "x" * 8200, "unusable record: String should have at most 8192 characters"),
])
def test_a_record_without_a_usable_url_is_rejected(fmt, line, problem):
    [item] = parse(line.encode(), fmt)
    assert isinstance(item, RejectedLine) and item.problem == problem


def test_a_csv_header_without_the_column_is_a_spec_error():
    with pytest.raises(SpecError, match="no column 'url'"):
        parse(f"image,label\n{url(1)},a\n".encode(), "csv")


def test_a_csv_header_that_is_not_utf8_is_a_spec_error_naming_the_line():
    with pytest.raises(SpecError, match=r"header \(line 2\) is not UTF-8"):
        parse(b"\n\xffurl\n", "csv")


def test_a_rejected_line_takes_an_index_and_blanks_comments_and_the_header_do_not():
    body = f"# list\n{url(0)}\n\n".encode() + b"not\xffutf8" + f"\n  \n{url(1)}\n{url(2)}\n".encode()
    slice_ = list(islice(list_items([body], UrlList(url=f"{LIST}.txt"), "cat"), 1, 3))
    assert outcome(slice_) == [f"rejected {LIST}.txt#L4", url(1)]


def test_a_rejected_line_names_the_list_without_its_credentials_or_fragment():
    source = UrlList(url="https://reader:s3cret@lists.example.org/a.jsonl#top", format="jsonl")
    [item] = list_items([b"{broken"], source, "cat")
    assert (item.url, item.label) == ("https://lists.example.org/a.jsonl#L1", "cat")


def test_a_slice_asks_for_at_most_the_largest_chunk():
    with pytest.raises(ValidationError, match="less than or equal to 10000"):
        SourceSlice(url_list=UrlList(url=f"{LIST}.txt"), count=10_001)
