"""Bad DatasetJobs: the API server refuses what the schema can express, naming the field; what only
the operator can judge (an unknown search provider) ends in phase Failed, reason InvalidSpec."""

from __future__ import annotations

import copy
import json
import time

import pytest
from kubernetes import client

from tests.cluster.conftest import GROUP, PLURAL, VERSION, phase

pytestmark = pytest.mark.cluster

VALID = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "DatasetJob",
    "metadata": {"name": "valid"},
    "spec": {
        "tier": "free",
        "sources": [{"label": "cat", "urls": ["http://127.0.0.1:9/a.jpg", "http://127.0.0.1:9/b.jpg"]}],
        "maxImages": 10,
        "chunkSize": 5,
    },
}


def with_spec(**changes: object) -> dict:
    manifest = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            manifest["spec"].pop(key, None)
        else:
            manifest["spec"][key] = value
    return manifest


def rejection(admin, namespace: str, manifest: dict) -> str:
    """The API server's message for a create it refuses (the test fails if it accepts)."""
    custom = client.CustomObjectsApi(admin)
    with pytest.raises(client.ApiException) as refused:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    assert refused.value.status == 422, refused.value.body
    return json.loads(refused.value.body)["message"]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"sources": None}, "spec.sources", "Required value"),
        ({"sources": []}, "spec.sources", "at least 1"),
        ({"maxImages": 0}, "spec.maxImages", "greater than or equal to 1"),
        ({"chunkSize": 0}, "spec.chunkSize", "greater than or equal to 1"),
        ({"chunkSize": 20000}, "spec.chunkSize", "less than or equal to 10000"),
        ({"tier": "gold"}, "spec.tier", "Unsupported value"),
        ({"sources": [{"label": "x", "urls": ["http://127.0.0.1:9/a.jpg"], "search": {"query": "cat"}}]},
         "spec.sources[0]", "exactly one of urls, urlList or search"),
    ],
    ids=["no-sources-field", "empty-sources", "maxImages-0", "chunkSize-0", "chunkSize-20000", "tier-gold",
         "urls-and-search"],
)
def test_the_api_server_rejects_an_invalid_manifest_naming_the_field(crd, admin, namespace, changes, field, words):
    message = rejection(admin, namespace, with_spec(**changes))
    assert field in message, message
    assert words in message, message


def test_sources_are_immutable_but_suspend_may_change(crd, admin, namespace):
    custom = client.CustomObjectsApi(admin)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, copy.deepcopy(VALID))
    changed = {"spec": {"sources": [{"label": "dog", "urls": ["http://127.0.0.1:9/c.jpg"]}]}}
    with pytest.raises(client.ApiException) as refused:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "valid", changed)
    assert refused.value.status == 422
    message = json.loads(refused.value.body)["message"]
    assert "spec" in message and "sources is immutable" in message, message
    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "valid",
                                                    {"spec": {"suspend": True}})
    assert patched["spec"]["suspend"] is True
    assert patched["spec"]["sources"] == VALID["spec"]["sources"]


def test_an_unknown_search_provider_fails_once_as_invalid_spec(operator):
    manifest = with_spec(sources=[{"label": "cat", "search": {"provider": "nosuchengine", "query": "cat"}}])
    manifest["metadata"]["name"] = "unknown-provider"
    operator.start()
    operator.apply(manifest)
    failed = operator.wait_for("unknown-provider", lambda b: phase(b) == "Failed", timeout=60, what="Failed")
    status = failed["status"]
    assert status["reason"] == "InvalidSpec"
    assert "spec.sources[0].search.provider" in status["message"] and "nosuchengine" in status["message"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Failed"] == "True"
    # Never a retry loop: the object stops changing and no chunk Job is ever created.
    version = failed["metadata"]["resourceVersion"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert operator.get("unknown-provider")["metadata"]["resourceVersion"] == version
        assert operator.chunk_jobs() == []
        time.sleep(0.5)
