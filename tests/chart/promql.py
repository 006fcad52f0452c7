"""What a PromQL expression asks of the operator: metric names and the labels it selects or groups by.
A regex reading, enough for the chart's own expressions (no full PromQL parser)."""

from __future__ import annotations

import re

METRIC = re.compile(r"\b(pixcrawler_[a-z0-9_]+)\s*(\{([^}]*)\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
# Labels Prometheus adds from the scrape target: never in the operator's own output.
TARGET_LABELS = frozenset({"namespace", "pod", "instance", "job", "service", "container", "endpoint"})


def metric_names(expr: str) -> set[str]:
    return {match.group(1) for match in METRIC.finditer(expr)}


def selected_labels(expr: str) -> dict[str, set[str]]:
    """Per metric, the label names its selectors match on (target labels left out)."""
    labels: dict[str, set[str]] = {}
    for match in METRIC.finditer(expr):
        names = {m.group(1) for m in MATCHER.finditer(match.group(3) or "")}
        labels.setdefault(match.group(1), set()).update(names - TARGET_LABELS)
    return labels


def grouping_labels(expr: str) -> set[str]:
    found = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    return found - TARGET_LABELS - {"le"}


def exposition(text: str) -> dict[str, set[str]]:
    """Sample names in a /metrics page and the label names each carries."""
    series: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        name = name.split()[0]
        labels = set(MATCHER.findall(rest.partition("}")[0])) if rest else set()
        series.setdefault(name, set()).update(label for label, _ in labels)
    return series
