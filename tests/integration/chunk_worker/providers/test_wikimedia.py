"""Wikimedia Commons through the stand-in answering MediaWiki's documented imageinfo/extmetadata pages."""

from __future__ import annotations

import pytest
from providerserver import Reply

from chunk_worker import USER_AGENT
from chunk_worker.errors import SourceUnavailable
from chunk_worker.providers.wikimedia import WikimediaProvider
from tests.integration.chunk_worker.providers.conftest import fixture, small_pages, scripted

API = "/w/api.php"


@pytest.fixture
def commons(provider_server):
    def by_offset(request):
        name = {"0": "search-page1", "2": "search-page2"}.get(request.params["gsroffset"], "empty")
        return fixture("wikimedia", name)

    provider_server.route(API, by_offset)
    return provider_server


def provider(context, server):
    return small_pages(WikimediaProvider, context, server)


def test_results_come_in_search_order_across_pages_with_licence_and_credit(context_for, commons):
    items = list(provider(context_for(), commons).search("sunflower", 0, 10))
    assert [item.url.rsplit("/", 1)[1] for item in items] == [
        "Helianthus_annuus_0001.JPG", "Sunflower_sky_backdrop.jpg", "Sunflower_field.jpg"]  # by `index`
    pd, by_sa, cc0 = items
    assert (by_sa.license, by_sa.license_url) == ("by-sa", "https://creativecommons.org/licenses/by-sa/3.0")
    assert by_sa.creator == "Fir0002"  # the artist's HTML link, as text
    assert by_sa.attribution == ("Sunflower sky backdrop by Fir0002, CC BY-SA 3.0, "
                                 "https://creativecommons.org/licenses/by-sa/3.0, via Wikimedia Commons")
    assert by_sa.landing_url == "https://commons.wikimedia.org/wiki/File:Sunflower_sky_backdrop.jpg"
    assert (pd.license, pd.creator, pd.attribution) == ("pdm", "Bernard & Ann Smith", None)  # not required
    assert (cc0.license, cc0.caption) == ("cc0", "Sunflower field")
    # the file listed without imageinfo took its place in the stream and ended it: 2 pages, no third
    assert [request.params["gsroffset"] for request in commons.requests(API)] == ["0", "2"]


def test_requests_search_the_file_namespace_with_imageinfo_maxlag_and_a_descriptive_agent(context_for, commons):
    list(provider(context_for(), commons).search("sunflower", 0, 1))
    (request,) = commons.requests(API)
    assert request.params | {"gsroffset": "-"} == {
        "action": "query", "format": "json", "formatversion": "2", "generator": "search",
        "gsrsearch": "sunflower filetype:bitmap", "gsrnamespace": "6", "gsrlimit": "2", "gsroffset": "-",
        "prop": "imageinfo", "iiprop": "url|extmetadata",
        "iiextmetadatafilter": "LicenseShortName|LicenseUrl|License|Artist|Credit|AttributionRequired|ObjectName",
        "maxlag": "5"}
    assert request.headers["user-agent"].startswith(USER_AGENT) and "urllib3/" in request.headers["user-agent"]


def test_a_slice_starts_at_its_offset(context_for, commons):
    items = list(provider(context_for(), commons).search("sunflower", 2, 5))
    assert [item.license for item in items] == ["cc0"]
    assert [request.params["gsroffset"] for request in commons.requests(API)] == ["2"]


def test_no_results_is_an_empty_stream(context_for, provider_server):
    provider_server.route(API, lambda request: fixture("wikimedia", "empty"))
    assert list(provider(context_for(), provider_server).search("nothing", 0, 10)) == []


def test_maxlag_holds_the_bucket_and_asks_again(context_for, provider_server, monkeypatch):
    monkeypatch.setattr("chunk_worker.providers.wikimedia.MAXLAG_RETRY_SECONDS", 0.2)
    provider_server.route(API, scripted(fixture("wikimedia", "maxlag"), fixture("wikimedia", "search-page1")))
    context = context_for()
    holds = []
    monkeypatch.setattr(context.pacer, "hold", lambda bucket, rate, seconds: holds.append(seconds))
    items = list(provider(context, provider_server).search("sunflower", 0, 2))
    assert len(items) == 2 and len(provider_server.requests(API)) == 2
    assert holds == [0.2]  # every worker's next request waits what maxlag asks


def test_an_api_error_is_retryable_and_names_the_code(context_for, provider_server):
    provider_server.route(API, lambda request: Reply({"error": {"code": "internal_api_error_DBQueryError",
                                                                "info": "Database query error."}}))
    with pytest.raises(SourceUnavailable, match="internal_api_error_DBQueryError"):
        list(provider(context_for(), provider_server).search("sunflower", 0, 2))


def test_a_label_with_several_queries_gathers_both_without_repeats(context_for, provider_server):
    from chunk_worker.contract import Search
    from chunk_worker.search import search_items

    documents = {"sunflower filetype:bitmap": "search-page1", "helianthus filetype:bitmap": "search-page2"}
    provider_server.route(API, lambda request: fixture("wikimedia", documents[request.params["gsrsearch"]])
                          if request.params["gsroffset"] == "0" else fixture("wikimedia", "empty"))
    search = Search(provider="wikimedia", queries=["sunflower", "helianthus", "sunflower"],
                    endpoint=provider_server.base_url)
    first = list(search_items(search, 0, 2, context_for()))
    rest = list(search_items(search, 2, 10, context_for()))
    assert [item.url.rsplit("/", 1)[1] for item in first + rest] == [
        "Helianthus_annuus_0001.JPG", "Sunflower_field.jpg", "Sunflower_sky_backdrop.jpg"]


def test_no_request_goes_past_the_last_offset_search_serves(context_for, commons):
    assert list(provider(context_for(), commons).search("sunflower", 10_000, 10)) == []
    assert commons.requests(API) == []
