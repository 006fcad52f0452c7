"""The provider stand-in's documented routes point every result at a distinct local image."""

import dataclasses

import providerserver


def test_documented_routes_number_images_across_documents():
    server = providerserver.ProviderServer().start()
    try:
        providerserver.documented_routes(server, lambda n: f"http://images.test/img/{n}.jpg")
        first = providerserver.Request(0.0, "GET", "/wikimedia/w/api.php", {"gsroffset": "0"}, {}, {})
        second = dataclasses.replace(first, params={"gsroffset": "50"})
        documents = [server.answer(first).document, server.answer(second).document]
    finally:
        server.stop()
    urls = [page["imageinfo"][0]["url"] for doc in documents for page in doc["query"]["pages"] if "imageinfo" in page]
    assert all(url.startswith("http://images.test/img/") for url in urls)
    assert len(set(urls)) == len(urls) == 3
