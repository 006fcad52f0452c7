"""Resolving a chunk's items: inline items and slices of URL lists streamed from the image server."""

from __future__ import annotations

import pytest

from chunk_worker.contract import ChunkSpec, Item, Validation
from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.sources import RejectedLine, resolve_items


def spec_with(*sources: dict, items: list[dict] | None = None) -> ChunkSpec:
    return ChunkSpec.model_validate({"job": "default/test", "chunk": 0, "items": items or [], "sources": list(sources)})


def img(server, n: int) -> str:
    return server.url(f"/img/{n}.jpg")


METADATA_COLUMNS = {"license": "licence", "licenseUrl": "licence_url", "creator": "author", "attribution": "credit",
                    "landingUrl": "page", "caption": "title"}
LICENCES = [  # what the image server's list rows (n % 4) state, normalised
    ("by-sa", "https://creativecommons.org/licenses/by-sa/4.0/"),  # "CC BY-SA 4.0": the deed derived
    ("cc0", "https://creativecommons.org/publicdomain/zero/1.0/"),  # the URL column alone
    ("by", "https://creativecommons.org/licenses/by/2.0/"),  # "cc-by" and its URL
    (None, None),  # "all rights reserved"
]


def meta_list(server, fmt: str, n: int, **overrides) -> dict:
    return {"url": server.url(f"/list.{fmt}?n={n}&meta=1"), "format": fmt, "metadataColumns": METADATA_COLUMNS,
            **overrides}


def credit_of(item: Item) -> tuple:
    return (item.license, item.license_url, item.creator, item.attribution, item.landing_url, item.caption)


def expected_credit(server, n: int) -> tuple:
    row = server.list_credit(n)
    return (*LICENCES[n % 4], row["author"] or None, row["credit"] or None, row["page"], row["title"] or None)


def test_inline_items_come_first_then_slices(fetcher, image_server):
    spec = spec_with(
        {"label": "dog", "urlList": {"url": image_server.url("/list.txt?n=10")}, "start": 2, "count": 2},
        items=[{"url": "https://example.org/a.jpg", "label": "cat"}],
    )
    assert list(resolve_items(spec, fetcher)) == [
        Item(url="https://example.org/a.jpg", label="cat"),
        Item(url=img(image_server, 2), label="dog"),
        Item(url=img(image_server, 3), label="dog"),
    ]


def test_txt_list_skips_blanks_and_comments(fetcher, image_server):
    spec = spec_with({"urlList": {"url": image_server.url("/list.txt?n=12&noise=1")}, "start": 0, "count": 12})
    assert [item.url for item in resolve_items(spec, fetcher)] == [img(image_server, n) for n in range(12)]


def test_csv_list_uses_the_column_and_label_column(fetcher, image_server):
    source = {"url": image_server.url("/list.csv?n=6"), "format": "csv", "column": "url", "labelColumn": "label"}
    spec = spec_with({"label": "fallback", "urlList": source, "start": 1, "count": 3})
    assert list(resolve_items(spec, fetcher)) == [Item(url=img(image_server, n), label=f"label-{n % 3}") for n in (1, 2, 3)]


def test_csv_without_a_label_column_uses_the_source_label(fetcher, image_server):
    spec = spec_with({"label": "bird", "urlList": {"url": image_server.url("/list.csv?n=3"), "format": "csv"}, "count": 3})
    assert {item.label for item in resolve_items(spec, fetcher)} == {"bird"}


def test_csv_list_without_the_named_column_is_a_spec_error(fetcher, image_server):
    source = {"url": image_server.url("/list.csv?n=3"), "format": "csv", "column": "image"}
    with pytest.raises(SpecError, match="image"):
        list(resolve_items(spec_with({"urlList": source, "count": 3}), fetcher))


def noisy_outcome(server, fmt: str, url: str, rows: range) -> list[str]:
    """What /list.<fmt>?n=12&noise=1 gives for `rows` and the bad line the server puts just before
    row 5: that line is named by its line number in the list."""
    lines = server.list_lines(fmt, 0, 12, noise=True)
    bad_line = next(n for n, line in enumerate(lines, 1) if "/img/5.jpg" in line) - 1
    return [img(server, n) for n in rows if n < 5] + [f"{url}#L{bad_line}"] + [img(server, n) for n in rows if n >= 5]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_malformed_line_is_a_rejected_item_that_takes_an_index(fetcher, image_server, fmt):
    source = {"url": image_server.url(f"/list.{fmt}?n=12&noise=1"), "format": fmt}
    spec = spec_with({"urlList": source, "start": 4, "count": 6})
    items = list(resolve_items(spec, fetcher))
    assert [item.url for item in items] == noisy_outcome(image_server, fmt, source["url"], range(3, 8))
    assert [isinstance(item, RejectedLine) for item in items] == [False, False, True, False, False, False]


def test_jsonl_list_reads_labels(fetcher, image_server):
    source = {"url": image_server.url("/list.jsonl?n=4"), "format": "jsonl", "labelColumn": "label"}
    items = list(resolve_items(spec_with({"urlList": source, "count": 4}), fetcher))
    assert [item.label for item in items] == ["label-0", "label-1", "label-2", "label-0"]


def test_a_slice_past_the_end_of_a_list_is_short(fetcher, image_server):
    spec = spec_with({"urlList": {"url": image_server.url("/list.txt?n=5")}, "start": 3, "count": 10})
    assert [item.url for item in resolve_items(spec, fetcher)] == [img(image_server, 3), img(image_server, 4)]


def test_only_the_head_of_a_huge_list_is_transferred(fetcher, image_server):
    path = "/list.txt"
    before_sent, before_done = image_server.bytes_sent(path), image_server.completed(path)
    spec = spec_with({"urlList": {"url": image_server.url(f"{path}?n=100000&start=500000")}, "start": 10, "count": 5})
    items = list(resolve_items(spec, fetcher))
    assert [item.url for item in items] == [img(image_server, n) for n in range(500010, 500015)]
    whole = sum(len(line) + 1 for line in image_server.list_lines("txt", 500000, 100000))
    assert image_server.completed(path) == before_done  # the server saw the client hang up
    assert image_server.bytes_sent(path) - before_sent < whole // 4


def test_an_unreachable_list_is_retryable(fetcher, image_server):
    spec = spec_with({"urlList": {"url": image_server.url("/404")}, "count": 1})
    with pytest.raises(SourceUnavailable):
        list(resolve_items(spec, fetcher))


def test_a_list_on_a_blocked_address_is_a_spec_error_naming_it(fetcher):
    url = "http://169.254.169.254/latest/list.txt"
    with pytest.raises(SpecError, match="169.254.169.254"):
        list(resolve_items(spec_with({"urlList": {"url": url}, "count": 1}), fetcher))


def test_a_list_behind_a_redirect_to_a_blocked_address_is_a_spec_error(fetcher, image_server):
    spec = spec_with({"urlList": {"url": image_server.url("/redirect-imds")}, "count": 1})
    with pytest.raises(SpecError):
        list(resolve_items(spec, fetcher))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_metadata_columns_become_the_items_licence_and_credit(fetcher, image_server, fmt):
    spec = spec_with({"label": "cat", "urlList": meta_list(image_server, fmt, 8), "start": 1, "count": 6})
    items = list(resolve_items(spec, fetcher))
    assert [item.url for item in items] == [img(image_server, n) for n in range(1, 7)]
    assert [credit_of(item) for item in items] == [expected_credit(image_server, n) for n in range(1, 7)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_licence_url_in_the_licence_column_is_read_and_kept(fetcher, image_server, fmt):
    source = meta_list(image_server, fmt, 4, metadataColumns={"license": "licence_url"})
    items = list(resolve_items(spec_with({"urlList": source, "count": 4}), fetcher))
    assert [(item.license, item.license_url) for item in items] == [
        (None, None), ("cc0", "https://creativecommons.org/publicdomain/zero/1.0/"),
        ("by", "https://creativecommons.org/licenses/by/2.0/"), (None, None)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_unmapped_columns_are_not_read(fetcher, image_server, fmt):
    source = meta_list(image_server, fmt, 4, metadataColumns={"creator": "author"})
    items = list(resolve_items(spec_with({"urlList": source, "count": 4}), fetcher))
    assert [credit_of(item) for item in items] == [
        (None, None, image_server.list_credit(n)["author"] or None, None, None, None) for n in range(4)]


def test_a_list_without_metadata_columns_gives_items_without_credit(fetcher, image_server):
    source = {"url": image_server.url("/list.csv?n=4&meta=1"), "format": "csv"}
    items = list(resolve_items(spec_with({"urlList": source, "count": 4}), fetcher))
    assert {credit_of(item) for item in items} == {(None,) * 6}


def test_a_txt_list_has_no_metadata(fetcher, image_server):
    source = {"url": image_server.url("/list.txt?n=3"), "metadataColumns": METADATA_COLUMNS}
    items = list(resolve_items(spec_with({"urlList": source, "count": 3}), fetcher))
    assert [item.url for item in items] == [img(image_server, n) for n in range(3)]
    assert {credit_of(item) for item in items} == {(None,) * 6}


def test_a_csv_list_without_a_mapped_column_is_a_spec_error_naming_it(fetcher, image_server):
    source = meta_list(image_server, "csv", 3, metadataColumns={"license": "licence", "creator": "photographer"})
    with pytest.raises(SpecError, match="creator='photographer'"):
        list(resolve_items(spec_with({"urlList": source, "count": 3}), fetcher))


def test_a_jsonl_record_without_a_mapped_field_has_that_field_empty(fetcher, image_server):
    source = meta_list(image_server, "jsonl", 2, metadataColumns={"creator": "photographer", "caption": "title"})
    items = list(resolve_items(spec_with({"urlList": source, "count": 2}), fetcher))
    assert [(item.creator, item.caption) for item in items] == [(None, "A cat, asleep"), (None, "Tree bark")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_metadata_columns_do_not_change_which_lines_are_rejected(fetcher, image_server, fmt):
    source = meta_list(image_server, fmt, 12)
    source["url"] += "&noise=1"
    items = list(resolve_items(spec_with({"urlList": source, "start": 4, "count": 6}), fetcher))
    assert [credit_of(item) for item in items] == [
        *(expected_credit(image_server, n) for n in (3, 4)), (None,) * 6,
        *(expected_credit(image_server, n) for n in (5, 6, 7))]


def test_an_allow_list_naming_no_licence_is_a_spec_error_before_any_item(fetcher):
    """The spec model refuses such a list; a spec built in code without validation is caught here."""
    spec = ChunkSpec.model_validate({"job": "default/test", "chunk": 0,
                                     "items": [{"url": "https://example.org/a.jpg"}]})
    spec.validation = Validation.model_construct(licenses=["cc0", "cc-bye"])
    items = resolve_items(spec, fetcher)
    with pytest.raises(SpecError, match="cc-bye"):
        next(items)
