"""A DatasetJob mixing two search providers runs end to end on the local cluster: Wikimedia Commons
(keyless) and Smithsonian Open Access (a key from a Secret, by secretKeyRef), both answered by the
provider stand-in on the node host in their documented formats, images from the image server; the
index carries each image's licence and credit."""

from __future__ import annotations

import json

import providerserver
import pytest
from azure.storage.blob import BlobServiceClient
from kubernetes import client

from tests.cluster.conftest import phase

pytestmark = pytest.mark.cluster

KEY_SECRET = "pixcrawler-search"
KEY = "si-cluster-test-key"


@pytest.fixture
def provider_server(cluster, image_server):
    server = providerserver.ProviderServer(host=cluster.node_host).start()
    providerserver.documented_routes(server, lambda n: image_server.url(f"/img/{n}.jpg"))
    yield server
    server.stop()


def test_two_providers_fill_one_dataset_with_licences_in_the_index(operator, provider_server, azurite, admin):
    client.CoreV1Api(admin).create_namespaced_secret(operator.namespace, {
        "metadata": {"name": KEY_SECRET}, "stringData": {"smithsonian-api-key": KEY}})
    smithsonian = provider_server.url("/smithsonian")
    operator.start(PIXCRAWLER_SEARCH_CREDENTIALS_SECRET=KEY_SECRET,
                   PIXCRAWLER_SEARCH_CREDENTIAL_KEYS="smithsonian-api-key",
                   PIXCRAWLER_SEARCH_KEY_ENDPOINTS=smithsonian,
                   PIXCRAWLER_SEARCH_RATES="wikimedia=20,smithsonian=20")
    operator.apply({
        "apiVersion": "pixcrawler.io/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "two-providers"},
        "spec": {"tier": "free", "chunkSize": 2, "output": {"format": "files"},
                 "sources": [
                     {"label": "sunflower", "search": {"provider": "wikimedia", "query": "sunflower", "limit": 4,
                                                       "endpoint": provider_server.url("/wikimedia")}},
                     {"label": "specimen", "search": {"provider": "smithsonian", "queries": ["helianthus"],
                                                      "limit": 2, "endpoint": smithsonian}}]}})
    done = operator.wait_for("two-providers", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=240,
                             what="Succeeded")
    assert phase(done) == "Succeeded", done["status"]

    for job in operator.chunk_jobs():  # the key reached the pods by reference only
        env = job.spec.template.spec.containers[0].env
        assert not [e for e in env if e.value and KEY in e.value]
        assert any(e.name == "PIXCRAWLER_SEARCH_SMITHSONIAN_API_KEY" and e.value_from.secret_key_ref.key
                   == "smithsonian-api-key" for e in env)
    assert {request.params["api_key"] for request in provider_server.requests(
        "/smithsonian/openaccess/api/v1.0/search")} == {KEY}

    container, _, prefix = done["status"]["output"]["location"].removeprefix("azure://").partition("/")
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    rows = [json.loads(line) for line in blobs.download_blob(f"{prefix}/index.jsonl").readall().decode().splitlines()]
    found = sorted((row["label"], row["license"], row.get("creator"), row.get("landing_url")) for row in rows)
    assert found == sorted([
        ("sunflower", "pdm", "Bernard & Ann Smith", "https://commons.wikimedia.org/wiki/File:Helianthus_annuus_0001.JPG"),
        ("sunflower", "by-sa", "Fir0002", "https://commons.wikimedia.org/wiki/File:Sunflower_sky_backdrop.jpg"),
        ("sunflower", "cc0", "Jane Doe", "https://commons.wikimedia.org/wiki/File:Sunflower_field.jpg"),
        ("specimen", "cc0", "Agnes Chase", "http://n2t.net/ark:/65665/3a3b9c7e8-1f2e-4b9a-9c0e-0f6f3f0c2e11"),
    ])
    by_sa = next(row for row in rows if row["license"] == "by-sa")
    assert by_sa["license_url"] == "https://creativecommons.org/licenses/by-sa/3.0"
    assert "via Wikimedia Commons" in by_sa["attribution"]


def test_a_keyed_provider_without_its_key_fails_as_invalid_spec(operator):
    operator.start()
    operator.apply({
        "apiVersion": "pixcrawler.io/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "no-flickr-key"},
        "spec": {"sources": [{"label": "cat", "search": {"provider": "flickr", "query": "cat", "limit": 5}}]}})
    failed = operator.wait_for("no-flickr-key", lambda b: phase(b) == "Failed", timeout=60, what="Failed")
    assert failed["status"]["reason"] == "InvalidSpec"
    assert "flickr-api-key" in failed["status"]["message"]
    assert "PIXCRAWLER_SEARCH_CREDENTIALS_SECRET" in failed["status"]["message"]
    assert operator.chunk_jobs() == []
