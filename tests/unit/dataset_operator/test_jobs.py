"""The Kubernetes Job of one chunk: a deterministic valid name and a safe, bounded shape."""

import re

import pytest

from dataset_operator import jobs
from dataset_operator.settings import OperatorSettings

UID = "5b2c7d1e-0000-4000-8000-000000000001"

# Kubernetes label values: at most 63 characters, alphanumeric at both ends.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
LONG = "a-very-long-dataset-name-that-keeps-going-and-going-well-past-sixty-three-characters"


def build(dataset: str = "cats", **overrides) -> dict:
    values = dict(dataset=dataset, namespace="team", uid="0f1e2d3c-0000-4000-8000-000000000001", tier="free",
                  chunk_id="0f1e2d3c-0000-4000-8000-000000000001-00007", index=7, attempt=2,
                  settings=OperatorSettings())
    return jobs.build_job(**(values | overrides))


def test_short_job_names_are_readable():
    assert jobs.job_name("cats", "0f1e2d3c-aaaa", 7, 2) == "cats-0f1e2-00007-a2"


@pytest.mark.parametrize("dataset", ["cats", LONG, LONG + "-b", "x" * 253, "dots.and-dashes." * 10])
def test_job_names_fit_63_characters_and_are_valid(dataset):
    for index, attempt in [(0, 1), (99999, 10), (1_048_575, 3)]:
        name = jobs.job_name(dataset, UID, index, attempt)
        assert len(name) <= 63 and DNS_LABEL.match(name), name


def test_job_names_are_deterministic_and_distinct_for_distinct_long_names():
    assert jobs.job_name(LONG, UID, 3, 1) == jobs.job_name(LONG, UID, 3, 1)
    names = {jobs.job_name(LONG + suffix, UID, 3, 1) for suffix in ("-a", "-b", "-c", "")}
    assert len(names) == 4
    assert jobs.job_name(LONG, UID, 3, 1) != jobs.job_name(LONG, UID, 3, 2) != jobs.job_name(LONG, UID, 4, 2)


@pytest.mark.parametrize("dataset", ["cats", LONG, "x" * 62 + "-y", "d." * 40])
def test_labels_are_valid_label_values_for_any_dataset_name(dataset):
    labels = build(dataset)["metadata"]["labels"]
    assert all(len(value) <= 63 and LABEL_VALUE.match(value) for value in labels.values()), labels


def test_exit_code_2_fails_the_job_and_disruptions_are_ignored():
    spec = build()["spec"]
    rules = spec["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In", "values": [2]}} in rules
    assert any(r["action"] == "Ignore" and r["onPodConditions"][0]["type"] == "DisruptionTarget" for r in rules)
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # required by podFailurePolicy


def test_retries_go_back_through_admission_not_the_job_controller():
    spec = build()["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 3600 and spec["ttlSecondsAfterFinished"] == 600


def test_job_is_owned_by_its_dataset_job():
    owner = build()["metadata"]["ownerReferences"][0]
    assert owner == {"apiVersion": "pixcrawler.io/v1alpha1", "kind": "DatasetJob", "name": "cats",
                     "uid": "0f1e2d3c-0000-4000-8000-000000000001", "controller": True, "blockOwnerDeletion": True}


def test_worker_runs_non_root_with_a_read_only_root_file_system_and_a_scratch_volume():
    pod = build()["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "scratch", "mountPath": "/scratch"} in container["volumeMounts"]
    assert {"name": "PIXCRAWLER_TMP_DIR", "value": "/scratch"} in container["env"]


def test_worker_requests_ephemeral_storage():
    resources = build()["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["ephemeral-storage"] == "300Mi"
    assert resources["limits"]["ephemeral-storage"] == "2Gi"


def test_worker_runs_its_chunk_and_is_labelled_for_selection():
    job = build(tier="new-user")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:3] == [
        "run", "--chunk-id", "0f1e2d3c-0000-4000-8000-000000000001-00007"]
    labels = job["metadata"]["labels"]
    assert (labels["app.kubernetes.io/managed-by"], labels["pixcrawler.io/tier"], labels["pixcrawler.io/chunk"]) == (
        "pixcrawler-operator", "new-user", "7")
    assert job["spec"]["template"]["metadata"]["labels"] == labels


def test_allowed_networks_reach_the_worker():
    settings = OperatorSettings(allow_networks=["127.0.0.0/8", "10.0.0.0/8"])
    env = build(settings=settings)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PIXCRAWLER_ALLOW_NETWORKS", "value": "127.0.0.0/8,10.0.0.0/8"} in env


def test_the_product_token_robots_txt_is_read_for_reaches_the_worker():
    env = build(settings=OperatorSettings(worker_user_agent_token="examplebot"))["spec"]["template"]["spec"]
    assert {"name": "PIXCRAWLER_USER_AGENT_TOKEN", "value": "examplebot"} in env["containers"][0]["env"]


def test_a_product_token_robots_txt_cannot_name_is_refused():
    with pytest.raises(ValueError, match="worker_user_agent_token"):
        OperatorSettings(worker_user_agent_token="bot/1.0")


def test_the_redis_password_reaches_workers_by_reference_only():
    settings = OperatorSettings(worker_redis_password_secret="redis-access-key/primary")
    job = jobs.build_job(dataset="cats", namespace="ns", uid=UID, tier="free", chunk_id=f"{UID}-00000",
                         index=0, attempt=1, settings=settings)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PIXCRAWLER_REDIS_PASSWORD"] == {
        "name": "PIXCRAWLER_REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "redis-access-key", "key": "primary"}}}


def test_worker_pod_labels_are_added_without_replacing_the_chunk_labels():
    settings = OperatorSettings(worker_pod_labels="azure.workload.identity/use=true")
    job = jobs.build_job(dataset="cats", namespace="ns", uid=UID, tier="free", chunk_id=f"{UID}-00000",
                         index=0, attempt=1, settings=settings)
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"
    assert labels[jobs.LABEL_CHUNK] == "0"


def finalize_job(**overrides) -> dict:
    values = dict(dataset="cats", namespace="team", uid=UID, tier="free", attempt=1,
                  spec_json='{"job":"team/cats"}', settings=OperatorSettings(worker_env_secret="storage"))
    return jobs.build_finalize_job(**(values | overrides))


def test_the_finalize_job_runs_finalize_with_its_spec_and_storage_but_no_redis():
    manifest = finalize_job()
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["finalize", "--spec-json", '{"job":"team/cats"}']
    assert container["envFrom"] == [{"secretRef": {"name": "storage"}}]
    assert not [e for e in container["env"] if e["name"].startswith("PIXCRAWLER_REDIS")]
    assert manifest["metadata"]["labels"][jobs.LABEL_ROLE] == jobs.ROLE_FINALIZE
    assert jobs.LABEL_CHUNK not in manifest["metadata"]["labels"]
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == UID


@pytest.mark.parametrize("dataset", ["cats", LONG, "x" * 253])
def test_finalize_job_names_are_valid_and_differ_per_attempt(dataset):
    names = {jobs.finalize_job_name(dataset, UID, attempt) for attempt in (1, 2, 10)}
    assert len(names) == 3 and all(len(n) <= 63 and DNS_LABEL.match(n) for n in names)


def test_the_list_count_job_counts_into_redis_and_runs_no_chunk():
    manifest = jobs.build_count_lists_job(dataset="cats", namespace="team", uid=UID, tier="free", attempt=2,
                                          spec_json='{"lists":{}}', settings=OperatorSettings())
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:5] == ["count-lists", "--job-uid", UID, "--spec-json", '{"lists":{}}']
    assert {e["name"] for e in container["env"]} >= {"PIXCRAWLER_REDIS_URL", "PIXCRAWLER_ALLOW_NETWORKS"}
    assert manifest["metadata"]["labels"][jobs.LABEL_ROLE] == jobs.ROLE_COUNT_LISTS
    assert jobs.chunk_of(manifest)[0] is None and manifest["metadata"]["name"] == jobs.count_lists_job_name("cats", UID, 2)


def test_the_list_count_job_gets_the_storage_credentials_it_writes_the_pages_with():
    settings = OperatorSettings(worker_env_secret="storage", worker_pod_labels="azure.workload.identity/use=true")
    manifest = jobs.build_count_lists_job(dataset="cats", namespace="team", uid=UID, tier="free", attempt=1,
                                          spec_json='{"lists":{}}', settings=settings)
    pod = manifest["spec"]["template"]
    assert pod["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "storage"}}]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["serviceAccountName"] == settings.worker_service_account


SEARCH_KEYS = dict(search_credentials_secret="pixcrawler-search",
                   search_credential_keys="flickr-api-key,openverse-client-id,openverse-client-secret")


def test_search_keys_reach_the_worker_by_reference_only():
    env = build(settings=OperatorSettings(**SEARCH_KEYS))["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if e["name"].startswith("PIXCRAWLER_SEARCH")}
    assert refs == {
        "PIXCRAWLER_SEARCH_FLICKR_API_KEY": {"name": "pixcrawler-search", "key": "flickr-api-key"},
        "PIXCRAWLER_SEARCH_OPENVERSE_CLIENT_ID": {"name": "pixcrawler-search", "key": "openverse-client-id"},
        "PIXCRAWLER_SEARCH_OPENVERSE_CLIENT_SECRET": {"name": "pixcrawler-search", "key": "openverse-client-secret"}}


def test_without_a_secret_no_search_key_is_referenced():
    settings = OperatorSettings(search_credential_keys="flickr-api-key")
    env = build(settings=settings)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not [e for e in env if e["name"].startswith("PIXCRAWLER_SEARCH")]


def test_trusted_endpoints_and_rates_are_passed_on_and_the_finalize_job_gets_no_search_key():
    settings = OperatorSettings(**SEARCH_KEYS, search_key_endpoints="http://10.0.0.5:8090/flickr",
                                search_rates="flickr=0.5")
    env = build(settings=settings)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PIXCRAWLER_SEARCH_KEY_ENDPOINTS", "value": "http://10.0.0.5:8090/flickr"} in env
    assert {"name": "PIXCRAWLER_SEARCH_RATES", "value": "flickr=0.5"} in env
    final = jobs.build_finalize_job(dataset="cats", namespace="ns", uid=UID, tier="free", attempt=1,
                                    spec_json="{}", settings=settings)
    assert not [e for e in final["spec"]["template"]["spec"]["containers"][0]["env"]
                if e["name"].startswith("PIXCRAWLER_SEARCH")]


def test_an_unknown_search_key_is_a_settings_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="flickr-api-key"):
        OperatorSettings(search_credential_keys="flikr-api-key")


@pytest.mark.parametrize("rates", ["flickr", "flickr=0", "flickr=fast"])
def test_search_rates_the_workers_could_not_read_stop_the_operator(rates):
    with pytest.raises(ValueError, match="search_rates"):
        OperatorSettings(search_rates=rates)
