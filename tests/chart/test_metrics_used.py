"""Every metric a dashboard panel or alert uses is in the operator's real /metrics output, with the labels
the expression selects and groups by (a panel on a metric nobody exports stays empty forever)."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from tests.chart.chart import CHART, find, render
from tests.chart.conftest import wait_for_phase
from tests.cluster.conftest import image_urls, inline_job
from tests.chart.promql import exposition, grouping_labels, metric_names, selected_labels

MONITORING = {"metrics": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}}


def expressions(tmp_path) -> dict[str, str]:
    """Where each expression comes from -> the expression (dashboard panels and alert rules)."""
    _, docs = render(MONITORING, tmp_path)
    found = {}
    board = json.loads(find(docs, "ConfigMap", "-dashboard")["data"]["pixcrawler-operator.json"])
    for panel in board["panels"]:
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for group in find(docs, "PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = rule["expr"]
    return found


def test_the_dashboard_file_is_the_one_the_chart_ships(tmp_path):
    _, docs = render(MONITORING, tmp_path)
    shipped = find(docs, "ConfigMap", "-dashboard")["data"]["pixcrawler-operator.json"]
    assert json.loads(shipped) == json.loads((CHART / "dashboards" / "pixcrawler-operator.json").read_text())


@pytest.fixture
def leader_metrics(release, completed, image_server) -> str:
    """The current leader's /metrics after it has admitted and finished a job of its own (failover tests
    may have handed the lead to a replica that has admitted nothing yet)."""
    name = "metrics-probe"
    client.CustomObjectsApi(release.api).create_namespaced_custom_object(
        "pixcrawler.io", "v1alpha1", release.namespace, "datasetjobs",
        inline_job(name, image_urls(image_server.base_url, 22000, 4), 2))
    leader = release.operators.leader()
    wait_for_phase(release.api, release.namespace, name, ("Succeeded", "Failed"), 180, release.operators)
    assert release.operators.leader() == leader, "the lead moved while the probe job ran"
    return release.operators.metrics()


@pytest.mark.cluster
def test_every_metric_used_is_exported_with_its_labels(leader_metrics, tmp_path):
    exported = exposition(leader_metrics)
    missing = []
    for where, expr in expressions(tmp_path).items():
        for name in metric_names(expr):
            if name not in exported:
                missing.append(f"{where}: {name} has no sample")
                continue
            for label in selected_labels(expr)[name] | grouping_labels(expr):
                if label not in exported[name]:
                    missing.append(f"{where}: {name} has no label {label!r}")
    assert not missing, "\n".join(missing)
