"""`kubectl pixcrawler` run through the real kubectl (plugin discovery on PATH) against the local
cluster: what `create --dry-run=client` writes passes the API server's validation, a created search
job runs to its end and `watch` exits 0 on it, and 1 on a job that fails; a finished job's report and
dataset come down from Azurite, every image checked, and a second download resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from localcluster import binary
from tests.cluster.conftest import phase

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent  # the venv's bin, where the package installed kubectl-pixcrawler


def kubectl(cluster, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "KUBECONFIG": str(cluster.kubeconfig),
           **(env or {})}
    return subprocess.run([str(binary("kubectl")), *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


def test_kubectl_finds_the_plugin(cluster):
    listed = kubectl(cluster, "plugin", "list")
    assert "kubectl-pixcrawler" in listed.stdout, listed.stdout + listed.stderr


def test_a_client_dry_run_passes_the_api_servers_validation(cluster, crd, namespace):
    written = kubectl(cluster, "pixcrawler", "-n", namespace, "create", "cats", "--label", "cat", "--query", "cats",
                      "--limit", "1000", "--format", "webdataset", "--license", "cc0", "--dry-run=client", "-o", "yaml")
    assert written.returncode == 0, written.stderr
    checked = kubectl(cluster, "create", "-n", namespace, "--dry-run=server", "-o", "yaml", "-f", "-",
                      stdin=written.stdout)
    assert checked.returncode == 0, checked.stderr
    spec = yaml.safe_load(checked.stdout)["spec"]
    assert spec["sources"] == [{"label": "cat", "search": {"provider": "openverse", "query": "cats", "limit": 1000}}]
    assert spec["output"]["format"] == "webdataset" and spec["chunkSize"] == 500  # the schema's default


def test_an_invalid_job_is_refused_with_the_servers_message(cluster, crd, namespace):
    refused = kubectl(cluster, "pixcrawler", "-n", namespace, "create", "cats", "--label", "cat", "--query", "cats",
                      "--limit", "0")
    assert refused.returncode == 1
    assert "limit" in refused.stderr and refused.stderr.startswith("error:")


def test_watch_of_a_missing_job_says_so(cluster, crd, namespace):
    missing = kubectl(cluster, "pixcrawler", "-n", namespace, "watch", "nothing-here")
    assert missing.returncode == 3 and "not found" in missing.stderr


def test_a_created_search_job_is_watched_to_success(cluster, operator, image_server):
    operator.start()
    created = kubectl(cluster, "pixcrawler", "-n", operator.namespace, "create", "cats", "--label", "cat", "--query",
                      "cats", "--limit", "6", "--chunk-size", "3", "--endpoint", image_server.url("/openverse"))
    assert created.returncode == 0 and "datasetjob.pixcrawler.io/cats created" in created.stdout, created.stderr
    watched = kubectl(cluster, "pixcrawler", "-n", operator.namespace, "watch", "cats", "--interval", "0.5",
                      "--timeout", "240")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert watched.stdout.splitlines()[-1].startswith("Succeeded | chunks 2/2 | images 6 stored")
    assert phase(operator.get("cats")) == "Succeeded"


def test_watch_exits_1_when_the_job_fails(cluster, operator):
    operator.start()
    job = {"apiVersion": "pixcrawler.io/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "blocked"},
           "spec": {"sources": [{"label": "x", "search": {"provider": "openverse", "query": "x", "limit": 2,
                                                          "endpoint": "http://10.0.0.1"}}],
                    "chunkSize": 2}}  # a private address: the worker refuses it before connecting (exit 2)
    operator.apply(job)
    watched = kubectl(cluster, "pixcrawler", "-n", operator.namespace, "watch", "blocked", "--interval", "0.5",
                      "--timeout", "240")
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert watched.stdout.splitlines()[-1].startswith("Failed | chunks 1/1")


def test_a_finished_jobs_report_and_dataset_come_down_checked_and_resumable(cluster, operator, image_server,
                                                                              azurite, tmp_path):
    operator.start()
    create = kubectl(cluster, "pixcrawler", "-n", operator.namespace, "create", "dogs", "--label", "dog", "--query",
                     "dogs", "--limit", "6", "--chunk-size", "3", "--format", "webdataset", "--endpoint",
                     image_server.url("/openverse"))
    assert create.returncode == 0, create.stderr
    assert kubectl(cluster, "pixcrawler", "-n", operator.namespace, "watch", "dogs", "--timeout", "240").returncode == 0
    storage = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    report = kubectl(cluster, "pixcrawler", "-n", operator.namespace, "report", "dogs", env=storage, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert Path(report.stdout.strip()) == tmp_path / "dogs-report.html"
    assert (tmp_path / "dogs-report.html").read_text().lstrip().lower().startswith("<!doctype html")
    copy = tmp_path / "dogs"
    first = kubectl(cluster, "pixcrawler", "-n", operator.namespace, "download", "dogs", str(copy), env=storage)
    assert first.returncode == 0, first.stderr
    assert "6 images verified" in first.stdout
    shard = sorted((copy / "shards").glob("*.tar"))[0]
    shard.rename(shard.with_name(shard.name + ".part"))
    (copy / "index.jsonl").unlink()
    again = kubectl(cluster, "pixcrawler", "-n", operator.namespace, "download", "dogs", str(copy), env=storage)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{copy}: 2 files fetched") and "6 images verified" in again.stdout
