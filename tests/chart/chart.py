"""The chart under test: helm and kubectl from the control-plane cache, rendering and value sets."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from localcluster import binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "pixcrawler-operator"
CRD_FILE = ROOT / "crds" / "datasetjobs.pixcrawler.io.yaml"

# The value sets the issue names; each must render and be accepted by the API server.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external-tls-redis": {
        "redis": {"mode": "external",
                  "external": {"url": "rediss://pixcrawler.redis.cache.windows.net:6380/0",
                               "passwordSecret": {"name": "redis-access-key", "key": "primary"},
                               "egressCIDRs": ["20.50.0.0/16"]}},
        "storage": {"azure": {"existingSecret": "pixcrawler-storage"}},
    },
    "workload-identity": {
        "storage": {"default": "azure://datasets",
                    "azure": {"auth": "workloadIdentity", "accountUrl": "https://pixdata.blob.core.windows.net",
                              "clientId": "00000000-0000-0000-0000-000000000001"}},
    },
    "monitoring": {
        "operator": {"watchNamespace": "*"},
        "redis": {"bundled": {"persistence": {"enabled": True}}},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                    "dashboard": {"enabled": True}},
    },
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary("helm")), *args], capture_output=True, text=True, check=check, timeout=120)


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """promtool from the Debian package hack/install-prometheus.sh unpacked."""
    from localservices import prometheus_binary

    return subprocess.run([str(prometheus_binary("promtool")), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def render(values: dict[str, Any], tmp: Path, release: str = "pxc", namespace: str = "default",
           chart: Path = CHART) -> tuple[Path, list[dict[str, Any]]]:
    """`helm template` with `values`; returns the manifest file and its parsed documents."""
    values_file = tmp / f"values-{release}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = helm("template", release, str(chart), "--namespace", namespace, "-f", str(values_file), check=False)
    assert result.returncode == 0, result.stderr
    manifest = tmp / f"manifest-{release}.yaml"
    manifest.write_text(result.stdout)
    return manifest, [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def rules_file(docs: list[dict[str, Any]], tmp: Path) -> Path:
    """The rendered PrometheusRule's groups as a rules file Prometheus and promtool load."""
    rules = tmp / "rules.yaml"
    rules.write_text(yaml.safe_dump(find(docs, "PrometheusRule")["spec"]))
    return rules


def find(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in matches]}"
    return matches[0]
