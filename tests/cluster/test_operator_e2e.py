"""A DatasetJob from examples/ goes all the way: chunks, Jobs, workers, resized WebDataset shards in Azurite,
the finalize Job's index and card, Complete."""

from __future__ import annotations

import json

import pytest
import yaml
from azure.storage.blob import BlobServiceClient

from tests.cluster.conftest import example, phase

pytestmark = pytest.mark.cluster


def test_example_datasetjob_completes_with_exact_counts(operator, image_server, azurite, cluster, tmp_path):
    manifest = tmp_path / "cats-vs-dogs.yaml"
    manifest.write_text(yaml.safe_dump(example("cats-vs-dogs.yaml", image_server.base_url)))
    operator.start()
    cluster.kubectl("apply", "-n", operator.namespace, "-f", str(manifest))
    done = operator.wait_for("cats-vs-dogs", lambda b: phase(b) == "Succeeded", timeout=240, what="Succeeded")
    wait = cluster.kubectl("wait", "-n", operator.namespace, "--for=condition=Complete", "--timeout=30s",
                           "dsj/cats-vs-dogs", check=False)
    assert wait.returncode == 0, wait.stderr
    status = done["status"]
    assert status["chunks"] == {"total": 6, "queued": 0, "running": 0, "succeeded": 6, "failed": 0}
    # 60 cats (/img/1-60), 60 dogs (/img/101-160), 20 birds from search (/img/0-19: 1-19 repeat cats)
    assert status["images"]["requested"] == 140
    assert status["images"]["uploaded"] == 121
    assert status["images"]["duplicates"] == 19
    assert status["progress"] == "6/6"
    assert status["output"]["format"] == "webdataset"
    container, _, prefix = status["output"]["location"].removeprefix("azure://").partition("/")
    assert status["output"]["card"] == f"{status['output']['location']}/README.md"
    assert status["output"]["report"] == f"{status['output']['location']}/report.html"
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    names = {b.name.removeprefix(f"{prefix}/") for b in blobs.list_blobs(name_starts_with=f"{prefix}/")}
    assert {f"shards/{i:05d}.tar" for i in range(6)} <= names
    assert {f"shards/{i:05d}.parquet" for i in range(6)} <= names
    assert {"report.html", *(f"manifests/chunk-{i:05d}.run.json" for i in range(6))} <= names
    assert not [name for name in names if name.startswith("images/")]
    assert {"README.md", "index.parquet", "index.jsonl", "ATTRIBUTION.md"} <= names
    rows = [json.loads(line) for line in blobs.download_blob(f"{prefix}/index.jsonl").readall().decode().splitlines()]
    assert len(rows) == 121
    assert {row["label"] for row in rows} == {"cat", "dog", "bird"}
    assert {row["split"] for row in rows} == {"train", "validation", "test"}
    assert {(row["width"], row["height"]) for row in rows} == {(256, 192)}  # 320x240 with the smaller side to 192
    card = blobs.download_blob(f"{prefix}/README.md").readall().decode()
    front = yaml.safe_load(card.split("---")[1])
    assert front["configs"][0]["data_files"]
