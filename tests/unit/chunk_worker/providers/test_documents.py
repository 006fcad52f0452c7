"""Each provider's documented answers read into items, and its request parameters (no I/O)."""

from __future__ import annotations

import providerserver
import pytest

from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.providers import flickr, inaturalist, met, smithsonian, wikimedia
from chunk_worker.providers.client import RetryLater
from chunk_worker.providers.protocol import Page, may_send_credentials, page_through


def load(provider: str, name: str):
    return providerserver.load(provider, name)


@pytest.mark.parametrize(("html", "plain"), [
    ('<a href="//commons.wikimedia.org/wiki/User:X" title="User:X">X</a>', "X"),
    ("Bernard &amp; <b>Ann</b>\n  Smith", "Bernard & Ann Smith"),
    ("<script>alert(1)</script>", "alert(1)"),
    ("", None), (None, None), (42, None), ("<br/>", None),
])
def test_extmetadata_html_becomes_plain_text(html, plain):
    assert wikimedia.plain(html) == plain


def test_commons_pages_are_ordered_by_search_index_and_continue_means_more():
    page = wikimedia.page_of(load("wikimedia", "search-page1"))
    assert page.more and [item.license for item in page.results] == ["pdm", "by-sa"]
    last = wikimedia.page_of(load("wikimedia", "search-page2"))
    assert not last.more and last.results[1] is None  # the missing file keeps its position


def test_maxlag_asks_for_a_pause_and_other_errors_fail():
    with pytest.raises(RetryLater):
        wikimedia.check(load("wikimedia", "maxlag"))
    with pytest.raises(SourceUnavailable, match="badvalue"):
        wikimedia.check({"error": {"code": "badvalue", "info": "Unrecognized value"}})
    wikimedia.check(load("wikimedia", "empty"))


def test_a_licence_name_and_url_that_disagree_give_no_licence():
    page = load("wikimedia", "search-page1")["query"]["pages"][0]
    page["imageinfo"][0]["extmetadata"]["LicenseUrl"]["value"] = "https://creativecommons.org/licenses/by-nc/4.0/"
    assert wikimedia.commons_item(page).license is None


def test_inaturalist_square_urls_name_the_large_size():
    assert inaturalist.photo_url("https://x.example/photos/1/square.jpeg") == "https://x.example/photos/1/large.jpeg"
    assert inaturalist.photo_url("https://x.example/photos/1/other.jpeg") == "https://x.example/photos/1/other.jpeg"


def test_inaturalist_observation_without_an_allowed_photo_is_no_item():
    observation = load("inaturalist", "observations-page1")["results"][1]
    assert inaturalist.observation_item(observation, frozenset({"cc0"})) is None
    assert inaturalist.observation_item(observation, frozenset({"by-nc"})).license == "by-nc"


def test_met_takes_only_public_domain_objects_with_an_image():
    assert met.object_item(load("met", "object-45734")).license == "cc0"
    assert met.object_item(load("met", "object-437133")) is None
    assert met.object_item({**load("met", "object-45734"), "primaryImage": ""}) is None
    assert met.object_ids(load("met", "search-empty")) == []
    with pytest.raises(SourceUnavailable):
        met.object_ids({"message": "oops"})


def test_smithsonian_takes_cc0_images_only():
    rows = load("smithsonian", "search-page1")["response"]["rows"]
    assert smithsonian.row_item(rows[0]).license == "cc0"
    assert smithsonian.row_item(rows[1]) is None  # "Usage conditions apply"
    assert smithsonian.page_of(load("smithsonian", "search-page1"), 0, 2).more
    assert not smithsonian.page_of(load("smithsonian", "search-page2"), 2, 2).more


def test_flickr_ids_map_to_licences_with_their_versions():
    photos = load("flickr", "search-page1")["photos"]["photo"]
    assert [(item.license, item.license_url) for item in map(flickr.photo_item, photos)] == [
        ("by", "https://creativecommons.org/licenses/by/2.0/"), ("cc0", "https://creativecommons.org/publicdomain/zero/1.0/")]
    assert flickr.page_of(load("flickr", "search-page1"), 1).more  # "pages" counts as a number
    assert not flickr.page_of(load("flickr", "empty"), 1).more


def test_flickr_stat_fail_is_a_key_error_for_code_100_and_retryable_otherwise():
    with pytest.raises(SpecError, match="PIXCRAWLER_SEARCH_FLICKR_API_KEY"):
        flickr.check(load("flickr", "invalid-key"))
    with pytest.raises(SourceUnavailable, match="105"):
        flickr.check({"stat": "fail", "code": 105, "message": "Service currently unavailable"})


def test_credentials_go_to_the_providers_own_api_or_a_listed_one_only():
    assert may_send_credentials("https://api.flickr.com/", "https://api.flickr.com", [])
    assert may_send_credentials("http://10.0.0.5:8090/flickr", "https://api.flickr.com", ["http://10.0.0.5:8090/flickr/"])
    assert not may_send_credentials("https://api.flickr.com.evil.example", "https://api.flickr.com", [])


def test_paging_counts_unusable_results_as_positions_so_slices_tile():
    pages = {1: Page(["a", None, "c"], True), 2: Page(["d", "e", None], True), 3: Page(["g"], False)}

    def read(number):
        return pages[number]

    slices = [list(page_through(read, start, 2, 3)) for start in range(0, 8, 2)]
    assert slices == [["a"], ["c", "d"], ["e"], ["g"]]
