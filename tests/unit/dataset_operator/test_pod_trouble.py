"""Naming why a chunk pod does not run or why it ended, from the API server's JSON of the Job, its
pods and its events (shapes as `kubectl get -o json` prints them)."""

import pytest

from dataset_operator.pod_trouble import Trouble, ended, gives_up, stuck, timestamp

CREATED = "2026-12-02T10:00:00Z"


def pod(waiting=None, terminated=None, conditions=(), limit="2Gi", name="dsj-abcde-00000-a1-x7k2p"):
    state = {"waiting": waiting} if waiting else {"terminated": terminated} if terminated else {"running": {}}
    statuses = [{"name": "worker", "state": state, "ready": False, "restartCount": 0}] if waiting or terminated else []
    return {
        "metadata": {"name": name, "creationTimestamp": CREATED},
        "spec": {"containers": [{"name": "worker", "image": "127.0.0.1:1/pixcrawler/worker:gone",
                                 "resources": {"limits": {"memory": limit}}}]},
        "status": {"phase": "Pending" if not terminated else "Failed", "conditions": list(conditions),
                   "containerStatuses": statuses},
    }


def failed_job(reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit"):
    return {"metadata": {"name": "dsj-abcde-00000-a1"},
            "status": {"conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": message}]}}


def test_image_pull_back_off_is_image_unavailable_naming_the_image():
    trouble = stuck([pod(waiting={"reason": "ImagePullBackOff",
                                  "message": 'Back-off pulling image "127.0.0.1:1/pixcrawler/worker:gone"'})], [], None)
    assert trouble.reason == "WorkerImageUnavailable"
    assert "'127.0.0.1:1/pixcrawler/worker:gone'" in trouble.message and "ImagePullBackOff" in trouble.message
    assert trouble.since == timestamp(CREATED)


def test_a_pod_creating_its_container_is_no_trouble():
    assert stuck([pod(waiting={"reason": "ContainerCreating"})], [], None) is None
    assert stuck([pod()], [], None) is None


def test_missing_secret_is_a_worker_that_cannot_start():
    trouble = stuck([pod(waiting={"reason": "CreateContainerConfigError",
                                  "message": 'secret "pixcrawler-storage" not found'})], [], None)
    assert trouble.reason == "WorkerCannotStart" and "pixcrawler-storage" in trouble.message


def test_unschedulable_pod_carries_the_schedulers_message_and_time():
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "lastTransitionTime": "2026-12-02T10:00:05Z",
                 "message": "0/1 nodes are available: 1 Insufficient memory."}
    trouble = stuck([pod(conditions=[condition])], [], None)
    assert trouble.reason == "Unschedulable" and "Insufficient memory" in trouble.message
    assert trouble.since == timestamp("2026-12-02T10:00:05Z")


def refusal(message, first="2026-12-02T10:00:01Z"):
    return {"reason": "FailedCreate", "type": "Warning", "message": message, "firstTimestamp": first,
            "lastTimestamp": "2026-12-02T10:03:00Z", "involvedObject": {"kind": "Job", "name": "dsj-abcde-00000-a1"}}


def test_job_refused_for_lack_of_its_service_account():
    message = ('Error creating: pods "dsj-abcde-00000-a1-" is forbidden: error looking up service account '
               'ns/pixcrawler-worker: serviceaccount "pixcrawler-worker" not found')
    trouble = stuck([], [refusal(message)], None)
    assert trouble.reason == "WorkerServiceAccountMissing" and 'serviceaccount "pixcrawler-worker"' in trouble.message
    assert trouble.since == timestamp("2026-12-02T10:00:01Z")


def test_job_refused_by_anything_else_names_the_refusal():
    message = 'Error creating: pods "p" is forbidden: exceeded quota: compute, requested: limits.memory=2Gi'
    trouble = stuck([], [refusal(message)], timestamp(CREATED))
    assert trouble.reason == "WorkerPodsNotCreated" and "exceeded quota" in trouble.message


def test_job_without_pods_or_refusals_is_no_trouble_yet():
    assert stuck([], [], timestamp(CREATED)) is None


def test_oom_killed_worker_names_its_memory_limit():
    trouble = ended(failed_job(), [pod(terminated={"reason": "OOMKilled", "exitCode": 137}, limit="64Mi")])
    assert trouble.reason == "WorkerOOMKilled"
    assert "memory limit of 64Mi" in trouble.message and "exit 137" in trouble.message


def test_worker_exit_carries_its_last_log_lines():
    trouble = ended(failed_job(), [pod(terminated={"reason": "Error", "exitCode": 1,
                                                   "message": '{"msg": "redis unreachable"}'})])
    assert trouble.reason == "WorkerFailed"
    assert "code 1" in trouble.message and "redis unreachable" in trouble.message


def test_deadline_without_pods_left_is_deadline_exceeded():
    trouble = ended(failed_job("DeadlineExceeded", "Job was active longer than specified deadline"), [])
    assert trouble.reason == "ChunkDeadlineExceeded"


def test_failed_job_whose_pods_are_gone_falls_back_to_its_condition():
    trouble = ended(failed_job(), [])
    assert trouble == Trouble("WorkerFailed", "BackoffLimitExceeded: Job has reached the specified backoff limit")


@pytest.mark.parametrize("elapsed, expected", [(119.0, False), (120.0, True)])
def test_stuck_job_is_given_up_after_its_grace(elapsed, expected):
    assert gives_up(Trouble("WorkerImageUnavailable", "m", since=1000.0), 1000.0 + elapsed, 120.0) is expected


def test_trouble_without_a_start_time_is_never_given_up():
    assert gives_up(Trouble("WorkerPodsNotCreated", "m", since=None), 1e12, 1.0) is False
