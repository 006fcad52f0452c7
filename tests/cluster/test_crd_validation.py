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
        ({"sources": [{"label": "x", "search": {"provider": "wikimedia", "limit": 5}}]},
         "spec.sources[0].search", "a search needs query or queries"),
        ({"sources": [{"label": "x", "search": {"queries": ["cat", ""]}}]},
         "spec.sources[0].search.queries[1]", "should be at least 1"),
        ({"transform": {"resize": {"mode": "keep_ratio", "size": 8}}}, "spec.transform.resize.size",
         "greater than or equal to 16"),
        ({"transform": {"resize": {"mode": "keep_ratio", "size": 9000}}}, "spec.transform.resize.size",
         "less than or equal to 8192"),
        ({"transform": {"resize": {"mode": "stretch"}}}, "spec.transform.resize.mode", "Unsupported value"),
        ({"transform": {"encode": {"format": "jpeg", "quality": 0}}}, "spec.transform.encode.quality",
         "greater than or equal to 1"),
        ({"transform": {"encode": {"format": "jpeg", "quality": 101}}}, "spec.transform.encode.quality",
         "less than or equal to 100"),
        ({"split": {"val": 0.5, "test": 0.5}}, "spec.split", "split.val + split.test must be below 1"),
        ({"split": {"val": 1}}, "spec.split.val", "less than 1"),
        ({"output": {"format": "tfrecord"}}, "spec.output.format", "Unsupported value"),
        ({"output": {"format": "webdataset"}, "sources": [{"label": "x", "urlList": {
            "url": "http://127.0.0.1:9/l.csv", "format": "csv", "labelColumn": "kind"}}]},
         "spec", "classes must list every label"),
        ({"respect": {"robotsTxt": "sometimes"}}, "spec.respect.robotsTxt", "must be of type boolean"),
    ],
    ids=["no-sources-field", "empty-sources", "maxImages-0", "chunkSize-0", "chunkSize-20000", "tier-gold",
         "urls-and-search", "search-without-query", "empty-query", "resize-size-8", "resize-size-9000", "resize-mode-stretch", "quality-0", "quality-101",
         "split-sums-to-1", "split-val-1", "format-tfrecord", "label-column-without-classes", "respect-not-boolean"],
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


def test_transform_split_and_classes_are_immutable_after_creation(crd, admin, namespace):
    custom = client.CustomObjectsApi(admin)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, with_spec(
        transform={"resize": {"mode": "keep_ratio", "size": 256}}, split={"val": 0.1}, classes=["cat"]))
    for change, words in [({"transform": {"resize": {"mode": "keep_ratio", "size": 512}}}, "transform is immutable"),
                          ({"split": {"val": 0.2}}, "split is immutable"),
                          ({"classes": ["cat", "dog"]}, "classes is immutable"),
                          ({"respect": {"robotsTxt": False}}, "respect is immutable")]:
        with pytest.raises(client.ApiException) as refused:
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "valid", {"spec": change})
        assert words in json.loads(refused.value.body)["message"]


def test_new_fields_default_to_todays_behaviour(crd, admin, namespace):
    custom = client.CustomObjectsApi(admin)
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, copy.deepcopy(VALID))
    spec = created["spec"]
    assert spec["output"]["format"] == "files"
    assert spec["transform"] == {"resize": {"mode": "none", "size": 512, "onlyIfBigger": False},
                                 "encode": {"format": "keep", "quality": 90}}
    assert spec["split"] == {"val": 0, "test": 0}
    assert spec["respect"] == {"robotsTxt": True, "tdmRep": True, "xRobotsTag": True}


def test_an_unknown_licence_in_the_allow_list_fails_once_as_invalid_spec(operator):
    manifest = with_spec(validation={"licenses": ["cc0", "cc-by-sa", "no-such-licence"]})
    manifest["metadata"]["name"] = "unknown-licence"
    operator.start()
    operator.apply(manifest)
    failed = operator.wait_for("unknown-licence", lambda b: phase(b) == "Failed", timeout=60, what="Failed")
    assert failed["status"]["reason"] == "InvalidSpec"
    assert "spec.validation.licenses" in failed["status"]["message"]
    assert "no-such-licence" in failed["status"]["message"]


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
