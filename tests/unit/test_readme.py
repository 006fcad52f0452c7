"""The README's settings tables are the user's reference: every setting the code reads is there."""

import re
from pathlib import Path

import pytest

from chunk_worker.settings import WorkerSettings
from dataset_operator.settings import OperatorSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
DOCUMENTED = set(re.findall(r"`(PIXCRAWLER_[A-Z_]+)`", README))


@pytest.mark.parametrize("settings", [WorkerSettings, OperatorSettings], ids=["worker", "operator"])
def test_every_setting_is_in_the_readme(settings):
    missing = {f"PIXCRAWLER_{name.upper()}" for name in settings.model_fields} - DOCUMENTED
    assert not missing, f"settings missing from README.md: {sorted(missing)}"


def test_the_readme_names_no_setting_the_code_lacks():
    known = {f"PIXCRAWLER_{name.upper()}" for cls in (WorkerSettings, OperatorSettings) for name in cls.model_fields}
    assert DOCUMENTED - known - {"PIXCRAWLER_CACHE"} == set()


def test_every_manifest_reason_is_in_the_readme():
    from chunk_worker.contract import Reason

    missing = {reason.value for reason in Reason} - set(re.findall(r"`([a-z_]+)`", README))
    assert not missing, f"reasons missing from README.md: {sorted(missing)}"


def test_every_status_reason_the_operator_sets_is_in_the_readme():
    from dataset_operator import status

    from dataset_operator import pod_trouble

    reasons = (status.SUSPENDED, status.BACKOFF, status.INVALID_SPEC, status.FINALIZING, status.FINALIZE_FAILED,
               status.CHUNKS_FAILED, *pod_trouble.STUCK_REASONS, *pod_trouble.ENDED_REASONS)
    for reason in reasons:
        assert f"`{reason}`" in README, reason


def _default(settings, name):
    field = settings.model_fields[name]
    return field.default_factory() if field.default_factory else field.default


def _cell_matches(cell: str, default) -> bool:
    """A settings table's default cell against the code's default: `literal`, empty, N MiB/GiB, or prose
    for a default computed at run time (the code's default is then None or empty)."""
    if cell.startswith("`") and cell.endswith("`"):
        literal = cell.strip("`")
        if isinstance(default, list):
            return literal == " ".join(default)
        if isinstance(default, float):
            return float(literal) == default
        return literal == str(default)
    if cell == "empty":
        return not default
    sized = re.fullmatch(r"(\d+) (MiB|GiB)", cell)
    if sized:
        return int(sized.group(1)) * {"MiB": 1 << 20, "GiB": 1 << 30}[sized.group(2)] == default
    return cell == "as above" or not default


def test_every_default_in_the_settings_tables_is_the_codes():
    rows = re.findall(r"^\| `(PIXCRAWLER_[A-Z_]+)` \| ([^|]*) \|", README, re.M)
    assert len(rows) > 50
    wrong = []
    for variable, cell in rows:
        name = variable.removeprefix("PIXCRAWLER_").lower()
        for settings in (WorkerSettings, OperatorSettings):
            if name in settings.model_fields and not _cell_matches(cell.strip(), _default(settings, name)):
                wrong.append(f"{variable}: README says {cell.strip()}, the code {_default(settings, name)!r}")
    assert not wrong, "\n".join(wrong)


def test_every_metric_the_operator_exports_is_in_the_readme():
    from dataset_operator import metrics

    documented = set(re.findall(r"`([a-z_]+)(?:\{[^}]*\})?`", README))
    short = {metric.name.removeprefix("pixcrawler_") for metric in metrics.REGISTRY.collect()}
    missing = {name for name in short if name not in documented and f"{name}_total" not in documented}
    assert not missing, f"metrics missing from README.md: {sorted(missing)}"
