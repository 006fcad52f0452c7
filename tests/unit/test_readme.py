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
