"""The node runner's pure decisions: exit codes, $(VAR) expansion, emptyDir paths, the status it writes."""

from pathlib import Path

from localcluster.noderunner import exit_code, expand, rebase, terminated_status


def test_process_killed_by_a_signal_exits_128_plus_the_signal():
    assert exit_code(-15) == 143


def test_normal_exit_code_is_kept():
    assert exit_code(3) == 3


def test_defined_variable_reference_is_expanded():
    assert expand("$(DIR)/out", {"DIR": "/data"}) == "/data/out"


def test_undefined_variable_reference_is_kept_as_written():
    assert expand("$(MISSING)/out", {}) == "$(MISSING)/out"


def test_path_under_an_empty_dir_mount_points_at_the_pod_directory():
    assert rebase("/scratch/chunk-1", {"/scratch": Path("/tmp/pod/volumes/scratch")}) == "/tmp/pod/volumes/scratch/chunk-1"


def test_path_sharing_only_a_prefix_with_the_mount_is_not_rewritten():
    assert rebase("/scratchpad", {"/scratch": Path("/tmp/pod/volumes/scratch")}) == "/scratchpad"


def test_non_zero_exit_is_a_failed_pod_with_the_exit_code_where_pod_failure_policy_reads_it():
    status = terminated_status("main", 2, "2030-01-01T00:00:00Z")
    assert status["phase"] == "Failed"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
