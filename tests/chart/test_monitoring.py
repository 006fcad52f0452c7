"""A real Prometheus (Debian's package) scrapes the installed chart's operator pods, found through the
metrics Service's endpoints as the chart's ServiceMonitor finds them, while DatasetJobs drive the system through the states the
dashboard shows; every dashboard query and alert expression is then evaluated by Prometheus itself,
and the chunk-failure alert is seen firing. The chart's own rules are loaded (rendered with short
`for:` durations, so the test need not wait 15 minutes)."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from kubernetes import client

from localservices import Prometheus
from tests.chart.chart import CHART, find, promtool, render, rules_file
from tests.chart.conftest import wait_for_phase
from tests.cluster.conftest import image_urls, inline_job, wait_for
from tests.fixtures.services import running

pytestmark = pytest.mark.cluster

RATE_INTERVAL = "30s"  # Grafana's $__rate_interval for this test's 1 s scrape interval and short run
MONITORING = {"metrics": {"prometheusRule": {"enabled": True, "failureFor": "5s", "podTroubleFor": "5s"},
                          "dashboard": {"enabled": True}}}

# Which state of the run makes each panel show a value above zero.
PANEL_STATES = {
    "Queue depth by tier": "the suspended job's chunks wait in the queue",
    "Running chunks vs quota": "chunks of the mixed job run; the quota and node slots are always set",
    "Admission wait (p50 / p95) by tier": "chunks are admitted during the run",
    "Images per second by status": "the mixed job's chunks settle with stored images",
    "Why chunks wait (reasons)": "the suspended job's chunks wait",
    "Images not uploaded, by status": "the mixed job has a duplicate, a page that is not an image and a 404",
    "Chunks finished by result": "chunks succeed and fail",
    "Admission attempts by result": "the scheduler admits chunks",
    "DatasetJobs by phase": "the jobs exist",
    "Scheduler cycle p95": "the leader's scheduler cycles every second",
    "Leader": "one replica leads",
    "Images not stored, by reason": "not_an_image, http_4xx and duplicate items in the mixed job",
    "Failed chunk attempts, by reason": "the failing job's chunks exit 2 (WorkerFailed)",
}


@dataclass
class Run:
    start: float
    end: float


def dashboard_targets(docs: list[dict]) -> dict[str, str]:
    """"<panel title> <refId>" -> its expression, from the ConfigMap the chart ships."""
    board = json.loads(find(docs, "ConfigMap", "-dashboard")["data"]["pixcrawler-operator.json"])
    return {f"{panel['title']} {target['refId']}": target["expr"]
            for panel in board["panels"] for target in panel["targets"]}


def for_prometheus(expr: str, namespace: str) -> str:
    return expr.replace("$namespace", namespace).replace("$__rate_interval", RATE_INTERVAL)


@pytest.fixture(scope="module")
def rendered(release, tmp_path_factory) -> tuple[list[dict], Path]:
    tmp = tmp_path_factory.mktemp("monitoring")
    _, docs = render(MONITORING, tmp, release=release.name, namespace=release.namespace)
    rules = rules_file(docs, tmp)
    checked = promtool("check", "rules", str(rules), cwd=tmp)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return docs, rules


class EndpointTargets:
    """Debian's Prometheus is built without Kubernetes service discovery, so a thread does its part:
    every second it writes the metrics Service's EndpointSlice addresses (port `http-metrics`, the
    port the chart's ServiceMonitor names) into a file_sd file, with the labels the Prometheus
    Operator gives a ServiceMonitor's targets (namespace, pod, service, job)."""

    def __init__(self, api: client.ApiClient, namespace: str, service: str, path: Path) -> None:
        self.discovery = client.DiscoveryV1Api(api)
        self.namespace, self.service, self.path = namespace, service, path
        self.stop = threading.Event()
        self.write()
        self.thread = threading.Thread(target=self.loop, name="endpoint-targets", daemon=True)
        self.thread.start()

    def write(self) -> None:
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={self.service}").items
        groups = []
        for item in slices:
            ports = [p.port for p in item.ports or [] if p.name == "http-metrics"]
            for endpoint in item.endpoints or []:
                if not ports or not (endpoint.conditions and endpoint.conditions.ready):
                    continue
                pod = endpoint.target_ref.name if endpoint.target_ref else ""
                groups.append({"targets": [f"{address}:{ports[0]}" for address in endpoint.addresses],
                               "labels": {"namespace": self.namespace, "pod": pod, "service": self.service,
                                          "job": self.service}})
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(groups))
        partial.rename(self.path)

    def loop(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self.write()
            except client.ApiException:
                continue  # the next second tries again

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def prometheus(cluster, release, rendered, tmp_path_factory) -> Iterator[Prometheus]:
    """Scrapes the release's operator pods every second and evaluates the chart's rules."""
    _, rules = rendered
    workdir = tmp_path_factory.mktemp("prometheus")
    targets = EndpointTargets(release.api, release.namespace, f"{release.fullname}-metrics", workdir / "targets.json")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "pixcrawler-operator",
                            "file_sd_configs": [{"files": [str(targets.path)], "refresh_interval": "1s"}]}],
    }
    try:
        with running(Prometheus(config, workdir), 60) as server:
            replicas = len(release.operators.pods())
            wait_for(lambda: len([t for t in server.api("targets")["activeTargets"] if t["health"] == "up"])
                     == replicas, timeout=60, what=f"{replicas} operator targets up")
            yield server
    finally:
        targets.close()


@pytest.fixture(scope="module")
def run(release, prometheus, image_server) -> Iterator[Run]:
    """One suspended job (chunks that wait), one mixed job (stored, duplicate, not an image, 404) and one
    whose chunks fail for good (a search at a private endpoint: exit 2), run to their ends."""
    custom = client.CustomObjectsApi(release.api)
    base = image_server.base_url

    def apply(body: dict) -> None:
        custom.create_namespaced_custom_object("pixcrawler.io", "v1alpha1", release.namespace, "datasetjobs", body)

    start = time.time()
    apply(inline_job("monitored-waiting", image_urls(base, 23000, 4), 2, suspend=True))
    mixed = image_urls(base, 23100, 6, route="slow", query="delay=0.5") + [
        f"{base}/img/23100.jpg", f"{base}/page.html", f"{base}/404"]
    apply(inline_job("monitored-mixed", mixed, 3))
    failing = inline_job("monitored-failing", [], 1)
    failing["spec"]["sources"] = [{"label": "x", "search": {"provider": "openverse", "query": "x", "limit": 1,
                                                            "endpoint": f"http://10.0.0.{i}"}} for i in (1, 2)]
    apply(failing)
    for name in ("monitored-mixed", "monitored-failing"):
        wait_for_phase(release.api, release.namespace, name, ("Succeeded", "Failed"), 240, release.operators)
    time.sleep(5)  # a few more scrapes after the last change
    yield Run(start, time.time())
    for name in ("monitored-waiting", "monitored-mixed", "monitored-failing"):
        try:
            custom.delete_namespaced_custom_object("pixcrawler.io", "v1alpha1", release.namespace, "datasetjobs", name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def test_every_dashboard_panel_has_a_state_it_shows(rendered):
    docs, _ = rendered
    titles = {key.rsplit(" ", 1)[0] for key in dashboard_targets(docs)}
    assert titles == set(PANEL_STATES)


def test_every_expression_parses(rendered, prometheus, release):
    docs, rules = rendered
    expressions = list(dashboard_targets(docs).values())
    expressions += [rule["expr"] for group in yaml.safe_load(rules.read_text())["groups"] for rule in group["rules"]]
    for expr in expressions:
        prometheus.query(for_prometheus(expr, release.namespace))
    with pytest.raises(ValueError, match="bad_data"):
        prometheus.query(for_prometheus(expressions[-1].replace("sum(", "summ("), release.namespace))


@pytest.mark.parametrize("panel", sorted(PANEL_STATES))
def test_each_panel_shows_the_run(panel, rendered, prometheus, run, release):
    docs, _ = rendered
    for key, expr in dashboard_targets(docs).items():
        if key.rsplit(" ", 1)[0] != panel:
            continue
        series = prometheus.query_range(for_prometheus(expr, release.namespace), run.start, run.end + 35)
        values = [float(v) for s in series for _, v in s["values"]]
        assert any(math.isfinite(v) and v > 0 for v in values), (
            f"{key}: nothing above zero while {PANEL_STATES[panel]}; {len(series)} series: {expr}")


def test_the_namespace_variable_lists_the_release(prometheus, release, run):
    values = prometheus.api("label/namespace/values", **{"match[]": "pixcrawler_leader"})
    assert release.namespace in values


def test_failing_chunks_fire_the_failure_alert(prometheus, run, release):
    def firing() -> list[dict]:
        return [a for a in prometheus.api("alerts")["alerts"]
                if a["labels"]["alertname"] == "PixcrawlerChunkFailureRateHigh" and a["state"] == "firing"]

    alert = wait_for(firing, timeout=90, what="PixcrawlerChunkFailureRateHigh firing")[0]
    assert alert["labels"]["severity"] == "warning"
    assert f"finished chunks in {release.namespace} failed" in alert["annotations"]["description"]
    others = {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"}
    assert "PixcrawlerNoLeader" not in others


def test_the_failed_attempts_carry_the_reason_the_pod_gave(prometheus, run, release):
    result = prometheus.query(f'sum by (reason) (pixcrawler_chunk_attempts_failed_total'
                              f'{{namespace="{release.namespace}"}}) > 0', at=run.end)
    assert {r["metric"]["reason"] for r in result} == {"WorkerFailed"}


def test_the_dashboard_file_is_the_one_the_chart_ships(rendered):
    docs, _ = rendered
    shipped = find(docs, "ConfigMap", "-dashboard")["data"]["pixcrawler-operator.json"]
    assert json.loads(shipped) == json.loads((CHART / "dashboards" / "pixcrawler-operator.json").read_text())


def test_images_not_stored_carry_their_reasons(prometheus, run, release):
    result = prometheus.query(f'sum by (reason) (pixcrawler_images_not_stored_total'
                              f'{{namespace="{release.namespace}"}}) > 0', at=run.end)
    assert {"not_an_image", "http_4xx", "duplicate"} <= {r["metric"]["reason"] for r in result}
