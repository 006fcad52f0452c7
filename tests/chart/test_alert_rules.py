"""The chart's alert rules, checked and unit-tested by promtool (Debian's Prometheus package): each
alert fires on the series it is meant for, only after its `for:`, with its labels and annotations."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.chart.chart import promtool, render, rules_file

HERE = Path(__file__).resolve().parent
RULES = {"metrics": {"prometheusRule": {"enabled": True}}}


def rendered_rules(tmp_path: Path) -> Path:
    _, docs = render(RULES, tmp_path, release="pxc", namespace="pixcrawler")
    return rules_file(docs, tmp_path)


def test_promtool_accepts_the_rendered_rules(tmp_path):
    checked = promtool("check", "rules", str(rendered_rules(tmp_path)), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout


def test_every_alert_passes_its_unit_tests(tmp_path):
    rendered_rules(tmp_path)
    shutil.copy(HERE / "alerts.test.yaml", tmp_path)
    tested = promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test(tmp_path):
    rules = yaml.safe_load(rendered_rules(tmp_path).read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((HERE / "alerts.test.yaml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == alerts


def test_a_unit_test_expecting_the_wrong_alert_fails(tmp_path):
    """The unit tests can fail: a description that says something else is caught."""
    rendered_rules(tmp_path)
    text = (HERE / "alerts.test.yaml").read_text().replace("Many chunks fail for good", "Some chunks fail")
    (tmp_path / "alerts.test.yaml").write_text(text)
    tested = promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert tested.returncode != 0 and "PixcrawlerChunkFailureRateHigh" in tested.stdout + tested.stderr
