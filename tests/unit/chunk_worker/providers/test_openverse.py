"""Openverse results as items, and the licence filter sent for an allow-list (no I/O)."""

from __future__ import annotations

import pytest

from chunk_worker.contract import Item
from chunk_worker.licenses import LICENSES
from chunk_worker.providers.openverse import license_filter as openverse_license_filter, openverse_item

# The API documentation's example search result (api/api/examples/image_responses.py), trimmed of
# fields the worker does not read.
DOCUMENTED_RESULT = {
    "id": "4bc43a04-ef46-4544-a0c1-63c63f56e276",
    "title": "Tree Bark Photo",
    "foreign_landing_url": "https://stocksnap.io/photo/XNVBVXO3B7",
    "url": "https://cdn.stocksnap.io/img-thumbs/960w/XNVBVXO3B7.jpg",
    "creator": "Tim Sullivan",
    "creator_url": "https://www.secretagencygroup.com",
    "license": "cc0",
    "license_version": "1.0",
    "license_url": "https://creativecommons.org/publicdomain/zero/1.0/",
    "provider": "stocksnap",
    "source": "stocksnap",
    "attribution": '"Tree Bark Photo" by Tim Sullivan is marked with CC0 1.0. To view the terms, visit '
                   "https://creativecommons.org/publicdomain/zero/1.0/.",
    "height": 4016,
    "width": 6016,
}
DOCUMENTED_RELATED = {
    "title": "exam tactics",
    "creator": "Sean MacEntee",
    "url": "https://live.staticflickr.com/4065/4459771899_07595dc42e.jpg",
    "license": "by",
    "license_version": "2.0",
    "license_url": "https://creativecommons.org/licenses/by/2.0/",
    "foreign_landing_url": "https://www.flickr.com/photos/18090920@N07/4459771899",
}


def test_documented_result_becomes_an_item_with_licence_and_credit():
    assert openverse_item(DOCUMENTED_RESULT) == Item(
        url=DOCUMENTED_RESULT["url"], license="cc0", license_url=DOCUMENTED_RESULT["license_url"],
        creator="Tim Sullivan", attribution=DOCUMENTED_RESULT["attribution"],
        landing_url="https://stocksnap.io/photo/XNVBVXO3B7", caption="Tree Bark Photo")


def test_a_result_without_attribution_keeps_its_licence():
    item = openverse_item(DOCUMENTED_RELATED)
    assert (item.license, item.license_url, item.attribution) == ("by", DOCUMENTED_RELATED["license_url"], None)


def test_licence_code_is_read_case_insensitively():
    assert openverse_item({**DOCUMENTED_RELATED, "license": "BY-SA", "license_url": None}).license == "by-sa"


def test_missing_licence_url_is_the_canonical_deed_for_the_version():
    item = openverse_item({**DOCUMENTED_RELATED, "license": "by-nc-sa", "license_version": "3.0", "license_url": None})
    assert item.license_url == "https://creativecommons.org/licenses/by-nc-sa/3.0/"


def test_unknown_licence_code_gives_no_licence():
    assert openverse_item({**DOCUMENTED_RELATED, "license": "gpl", "license_url": None}).license is None


@pytest.mark.parametrize("field", ["creator", "title", "attribution", "foreign_landing_url"])
@pytest.mark.parametrize("value", [None, "", "   ", 42])
def test_empty_or_non_text_credit_fields_are_absent(field, value):
    item = openverse_item({**DOCUMENTED_RESULT, field: value})
    attribute = {"title": "caption", "foreign_landing_url": "landing_url"}.get(field, field)
    assert getattr(item, attribute) is None


@pytest.mark.parametrize("result", [
    {**DOCUMENTED_RESULT, "url": None}, {**DOCUMENTED_RESULT, "url": ""}, {**DOCUMENTED_RESULT, "url": ["x"]},
    {**DOCUMENTED_RESULT, "url": "https://example.org/" + "a" * 9000}, "not an object", None,
])
def test_a_result_without_a_usable_url_gives_no_item(result):
    assert openverse_item(result) is None


def test_item_has_no_label_until_its_source_gives_one():
    assert openverse_item(DOCUMENTED_RESULT).label == ""


def test_no_allow_list_sends_no_licence_filter():
    assert openverse_license_filter(None) is None


def test_an_empty_allow_list_sends_no_licence_filter():
    assert openverse_license_filter(frozenset()) is None  # Openverse has no code for "none"


def test_allow_list_becomes_a_sorted_comma_separated_filter():
    assert openverse_license_filter(frozenset({"by-sa", "cc0", "pdm"})) == "by-sa,cc0,pdm"


def test_every_licence_id_is_a_code_openverse_documents():
    import imageserver  # its stand-in answers 400 to any code the API's constants do not list

    assert set(openverse_license_filter(frozenset(LICENSES)).split(",")) == set(imageserver.OPENVERSE_LICENSES)


def test_ids_openverse_does_not_know_are_left_out_of_the_filter():
    assert openverse_license_filter(frozenset({"by", "something-else"})) == "by"


def test_a_code_and_a_licence_url_that_disagree_give_no_licence():
    assert openverse_item({**DOCUMENTED_RELATED, "license": "by-sa"}).license is None  # its URL is BY 2.0
