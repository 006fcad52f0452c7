"""Openverse's OAuth2 client-credentials mode through the stand-in answering the documented token."""

from __future__ import annotations

import providerserver
import pytest
from providerserver import Reply

from chunk_worker.errors import SpecError
from chunk_worker.providers.openverse import OpenverseProvider
from tests.integration.chunk_worker.providers.conftest import fixture

TOKEN = "/v1/auth_tokens/token/"
IMAGES = "/v1/images/"
CREDENTIALS = {"search_openverse_client_id": "my-client", "search_openverse_client_secret": "s3cr3t-value"}


@pytest.fixture
def openverse(provider_server):
    provider_server.route(TOKEN, lambda request: fixture("openverse", "token"))
    provider_server.route(IMAGES, lambda request: fixture("openverse", "images-page1"))
    return provider_server


def test_client_credentials_buy_one_bearer_token_for_every_page(context_for, openverse):
    provider = OpenverseProvider(context_for(**CREDENTIALS), openverse.base_url)
    list(provider.search("bark", 0, 1))
    list(provider.search("tree", 0, 1))
    (token,) = openverse.requests(TOKEN)
    assert (token.method, token.form) == ("POST", {"grant_type": "client_credentials", "client_id": "my-client",
                                                   "client_secret": "s3cr3t-value"})
    pages = openverse.requests(IMAGES)
    assert {page.headers["authorization"] for page in pages} == {"Bearer DLBYIcfnKfolaXKcmMC8RIDCavc2hW"}
    assert {page.params["page_size"] for page in pages} == {"50"}


def test_without_credentials_the_search_is_anonymous(context_for, openverse):
    list(OpenverseProvider(context_for(), openverse.base_url).search("bark", 0, 1))
    assert openverse.requests(TOKEN) == []
    assert "authorization" not in openverse.requests(IMAGES)[0].headers


def test_an_untrusted_endpoint_gets_no_credentials_and_searches_anonymously(context_for, openverse):
    list(OpenverseProvider(context_for(**CREDENTIALS, search_key_endpoints=[]), openverse.base_url).search("b", 0, 1))
    assert openverse.requests(TOKEN) == [] and "authorization" not in openverse.requests(IMAGES)[0].headers


def test_refused_client_credentials_name_the_setting_and_hide_the_secret(context_for, provider_server):
    provider_server.route(TOKEN, lambda request: Reply(fixture("openverse", "invalid-client").document, 401))
    with pytest.raises(SpecError, match="PIXCRAWLER_SEARCH_OPENVERSE_CLIENT_ID") as raised:
        list(OpenverseProvider(context_for(**CREDENTIALS), provider_server.base_url).search("b", 0, 1))
    assert "s3cr3t-value" not in str(raised.value)


def test_an_expired_token_is_replaced_once(context_for, openverse):
    refused = {"count": 0}

    def images(request):
        if request.headers.get("authorization") == "Bearer DLBYIcfnKfolaXKcmMC8RIDCavc2hW" and not refused["count"]:
            refused["count"] += 1
            return Reply({"detail": "The access token has expired."}, 401,
                         {"WWW-Authenticate": 'Bearer realm="api",error="invalid_token"'})
        return fixture("openverse", "images-page1")

    openverse.route(IMAGES, images)
    items = list(OpenverseProvider(context_for(**CREDENTIALS), openverse.base_url).search("bark", 0, 1))
    assert len(items) == 1 and len(openverse.requests(TOKEN)) == 2 and len(openverse.requests(IMAGES)) == 2


def test_a_token_refused_twice_is_a_credentials_error(context_for, openverse):
    openverse.route(IMAGES, lambda request: Reply({"detail": "Invalid token."}, 401))
    with pytest.raises(SpecError, match="PIXCRAWLER_SEARCH_OPENVERSE_CLIENT_ID"):
        list(OpenverseProvider(context_for(**CREDENTIALS), openverse.base_url).search("bark", 0, 1))
    assert len(openverse.requests(IMAGES)) == 2


def test_credentials_never_follow_a_redirect_to_another_origin(context_for, openverse):
    elsewhere = providerserver.ProviderServer().start()
    try:
        elsewhere.route(TOKEN, lambda request: fixture("openverse", "token"))
        elsewhere.route(IMAGES, lambda request: fixture("openverse", "images-page1"))
        openverse.route(TOKEN, lambda request: Reply(None, 307, {"Location": elsewhere.url(TOKEN)}))
        openverse.route(IMAGES, lambda request: Reply(None, 302, {"Location": elsewhere.url(IMAGES)}))
        provider = OpenverseProvider(context_for(**CREDENTIALS), openverse.base_url)
        list(provider.search("bark", 0, 1))
        (token,) = elsewhere.requests(TOKEN)
        assert token.method == "GET" and token.form == {}  # the client secret stayed behind
        assert "authorization" not in elsewhere.requests(IMAGES)[0].headers
        assert openverse.requests(TOKEN)[0].form["client_secret"] == "s3cr3t-value"  # its own origin had it
    finally:
        elsewhere.stop()
