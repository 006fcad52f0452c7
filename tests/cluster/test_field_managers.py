"""Who wrote what, as `kubectl get --show-managed-fields` tells it: every write of the operator, kopf's
and the status writer's alike, is attributed to one field manager named after it, so a DatasetJob
carries one managedFields entry per part it writes (and not one per client library), and nothing of
kopf's bookkeeping."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import image_urls, inline_job, phase

pytestmark = pytest.mark.cluster


def test_the_operators_writes_carry_one_field_manager_named_after_it(operator, image_server):
    operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="0")
    operator.apply(inline_job("attributed", image_urls(image_server.base_url, 7000, 4), 2))
    body = operator.wait_for("attributed", lambda b: phase(b) == "Queued" and "queuePosition" in b["status"],
                             timeout=120, what="the status writer's first write")
    entries = body["metadata"]["managedFields"]
    status_managers = [entry["manager"] for entry in entries if entry.get("subresource") == "status"]
    creators = [entry["manager"] for entry in entries if "f:spec" in entry["fieldsV1"]]  # the test's client
    others = [entry["manager"] for entry in entries if not entry.get("subresource") and "f:spec" not in entry["fieldsV1"]]
    assert status_managers == ["pixcrawler-operator"]
    assert others == ["pixcrawler-operator"]
    assert creators and "pixcrawler-operator" not in creators


def test_a_planned_job_carries_no_annotation_of_kopf(operator, image_server):
    """Planning runs beside kopf, so kopf keeps no handler progress or diff base in the object."""
    operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="0")
    operator.apply(inline_job("unannotated", image_urls(image_server.base_url, 7100, 4), 2))
    body = operator.wait_for("unannotated", lambda b: phase(b) == "Queued" and "queuePosition" in b["status"],
                             timeout=120, what="the status writer's first write")
    assert body["metadata"]["finalizers"] == ["pixcrawler.io/cleanup"]
    assert [key for key in body["metadata"].get("annotations") or {} if key.startswith("kopf.")] == []
