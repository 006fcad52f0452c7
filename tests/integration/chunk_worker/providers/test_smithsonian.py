"""Smithsonian Open Access through the stand-in answering the documented search rows."""

from __future__ import annotations

import pytest
from providerserver import Reply

from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.providers.smithsonian import SmithsonianProvider
from tests.integration.chunk_worker.providers.conftest import fixture, small_pages, scripted

PATH = "/openaccess/api/v1.0/search"
KEY = "si-test-key-123"


@pytest.fixture
def si(provider_server):
    provider_server.route(PATH, lambda request: fixture(
        "smithsonian", {"0": "search-page1", "2": "search-page2"}[request.params["start"]]))
    return provider_server


def provider(context, server):
    return small_pages(SmithsonianProvider, context, server)


def test_cc0_media_become_items_and_others_take_their_place(context_for, si):
    items = list(provider(context_for(search_smithsonian_api_key=KEY), si).search("sunflower", 0, 10))
    assert [(item.url, item.license, item.creator, item.caption) for item in items] == [
        ("https://ids.si.edu/ids/deliveryService?id=NMNH-01234567", "cc0", "Agnes Chase", "Helianthus annuus L."),
        ("https://ids.si.edu/ids/deliveryService?id=NASM-A19700102000-NASM2018-10016", "cc0", None,
         "Sunflower seed packet")]
    first, second = si.requests(PATH)
    assert (first.params["start"], second.params["start"], first.params["api_key"]) == ("0", "2", KEY)
    assert first.params["q"] == "(sunflower) AND online_visual_material:true"


def test_without_a_key_the_provider_names_the_setting(context_for, si):
    with pytest.raises(SpecError, match="PIXCRAWLER_SEARCH_SMITHSONIAN_API_KEY"):
        provider(context_for(), si)


def test_an_untrusted_endpoint_never_receives_the_key(context_for, si):
    with pytest.raises(SpecError, match="not trusted"):
        provider(context_for(search_smithsonian_api_key=KEY, search_key_endpoints=[]), si)
    assert si.requests() == []


def test_a_refused_key_is_permanent_and_the_message_hides_it(context_for, provider_server):
    provider_server.route(PATH, lambda request: Reply(fixture("smithsonian", "invalid-key").document, 403))
    with pytest.raises(SpecError, match="PIXCRAWLER_SEARCH_SMITHSONIAN_API_KEY") as raised:
        list(provider(context_for(search_smithsonian_api_key=KEY), provider_server).search("x", 0, 2))
    assert KEY not in str(raised.value)


def test_over_rate_limit_waits_for_retry_after_then_asks_again(context_for, provider_server, monkeypatch):
    provider_server.route(PATH, scripted(
        Reply(fixture("smithsonian", "over-rate-limit").document, 429, {"Retry-After": "1"}),
        fixture("smithsonian", "search-page2")))
    context = context_for(search_smithsonian_api_key=KEY)
    holds = []
    real_hold = context.pacer.hold
    monkeypatch.setattr(context.pacer, "hold", lambda *args: (holds.append(args[2]), real_hold(*args)))
    items = list(provider(context, provider_server).search("x", 2, 2))
    assert len(items) == 1 and len(provider_server.requests(PATH)) == 2
    assert holds == [1.0]


def test_a_retry_after_past_the_deadline_fails_at_once_without_the_key(context_for, provider_server):
    provider_server.route(PATH, lambda request: Reply(fixture("smithsonian", "over-rate-limit").document, 429,
                                                      {"Retry-After": "3600"}))
    with pytest.raises(SourceUnavailable, match="asks to wait 3600 s") as raised:
        list(provider(context_for(search_smithsonian_api_key=KEY), provider_server).search("x", 0, 2))
    assert KEY not in str(raised.value) and len(provider_server.requests(PATH)) == 1
