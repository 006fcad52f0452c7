"""`helm lint --strict`, values.schema.json, and every value set rendered by `helm template` and accepted
by the real API server's server-side dry run in a namespace enforcing Pod Security "restricted"."""

from __future__ import annotations

import pytest

from tests.chart.chart import CHART, VALUE_SETS, find, helm, render


def test_helm_lint_strict_passes():
    for name, values in VALUE_SETS.items():
        args = [f"--set-json={key}={value}" for key, value in _flat(values)]
        result = helm("lint", "--strict", str(CHART), *args, check=False)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def _flat(values: dict, prefix: str = ""):
    import json

    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", json.dumps(value)


@pytest.mark.parametrize("values, message", [
    ({"scheduling": {"maxConcurrentChunks": -1}}, "/scheduling/maxConcurrentChunks"),
    ({"redis": {"mode": "external"}}, "/redis/external/url"),
    ({"redis": {"mode": "cluster"}}, "/redis/mode"),
    ({"storage": {"azure": {"auth": "workloadIdentity"}}}, "/storage/azure/clientId"),
    ({"worker": {"allowNetworks": ["not-a-cidr"]}}, "/worker/allowNetworks/0"),
    ({"worker": {"userAgentToken": "bot/1.0"}}, "/worker/userAgentToken"),
    ({"operator": {"replicaCount": 3}}, "replicaCount"),
    ({"search": {"credentialKeys": ["flikr-api-key"]}}, "/search/credentialKeys/0"),
])
def test_bad_values_fail_with_the_path_of_the_bad_value(values, message, tmp_path):
    file = tmp_path / "bad.yaml"
    import yaml

    file.write_text(yaml.safe_dump(values))
    result = helm("template", "pxc", str(CHART), "-f", str(file), check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_operator_rbac_grants_no_secrets_no_rbac_and_no_wildcards(tmp_path):
    for name, values in VALUE_SETS.items():
        _, docs = render(values, tmp_path, release=name)
        rules = [rule for doc in docs if doc["kind"] in ("Role", "ClusterRole") for rule in doc["rules"]]
        assert rules
        for rule in rules:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], (name, rule)
            assert "secrets" not in rule["resources"], (name, rule)
            assert "rbac.authorization.k8s.io" not in rule["apiGroups"], (name, rule)
        cluster_wide = [r for d in docs if d["kind"] == "ClusterRole" for r in d["rules"]]
        for rule in cluster_wide:
            if name != "monitoring":  # "*": DatasetJobs in every namespace
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, (name, rule)


def test_worker_network_policy_blocks_metadata_and_private_addresses(tmp_path):
    _, docs = render({}, tmp_path)
    policy = find(docs, "NetworkPolicy", "-worker")
    public = [peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule.get("to", [])
              if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"]
    assert len(public) == 1
    assert {"10.0.0.0/8", "169.254.0.0/16", "168.63.129.16/32", "172.16.0.0/12", "192.168.0.0/16",
            "100.64.0.0/10", "127.0.0.0/8"} <= set(public[0]["except"])


def test_workload_identity_labels_and_annotates_the_pods_and_accounts(tmp_path):
    _, docs = render(VALUE_SETS["workload-identity"], tmp_path)
    operator = find(docs, "Deployment", "pixcrawler-operator")
    assert operator["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert len(accounts) == 2
    for account in accounts:
        assert account["metadata"]["annotations"]["azure.workload.identity/client-id"]
    secret = find(docs, "Secret", "-env")
    assert secret["stringData"] == {"AZURE_STORAGE_ACCOUNT_URL": "https://pixdata.blob.core.windows.net"}


def test_external_redis_password_comes_from_the_secret(tmp_path):
    _, docs = render(VALUE_SETS["external-tls-redis"], tmp_path)
    env = {e["name"]: e for e in find(docs, "Deployment", "pixcrawler-operator")["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert env["PIXCRAWLER_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-access-key",
                                                                             "key": "primary"}
    assert env["PIXCRAWLER_REDIS_URL"]["value"] == "rediss://pixcrawler.redis.cache.windows.net:6380/0"
    assert env["PIXCRAWLER_WORKER_REDIS_PASSWORD_SECRET"]["value"] == "redis-access-key/primary"
    assert not [d for d in docs if d["metadata"]["name"].endswith("-redis")]


def test_the_workers_product_token_reaches_the_operator(tmp_path):
    _, docs = render({"worker": {"userAgentToken": "examplebot"}}, tmp_path)
    env = {e["name"]: e for e in find(docs, "Deployment", "pixcrawler-operator")["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert env["PIXCRAWLER_WORKER_USER_AGENT_TOKEN"]["value"] == "examplebot"


def test_search_credentials_are_named_to_the_operator_never_given(tmp_path):
    values = {"search": {"credentialsSecret": "pixcrawler-search",
                         "credentialKeys": ["flickr-api-key", "smithsonian-api-key"], "rates": {"met": 10}}}
    _, docs = render(values, tmp_path)
    env = {e["name"]: e.get("value") for e in find(docs, "Deployment", "pixcrawler-operator")["spec"]["template"][
        "spec"]["containers"][0]["env"]}
    assert env["PIXCRAWLER_SEARCH_CREDENTIALS_SECRET"] == "pixcrawler-search"
    assert env["PIXCRAWLER_SEARCH_CREDENTIAL_KEYS"] == "flickr-api-key,smithsonian-api-key"
    assert env["PIXCRAWLER_SEARCH_RATES"] == "met=10"
    assert "PIXCRAWLER_SEARCH_FLICKR_API_KEY" not in env  # the operator never holds a provider key


@pytest.mark.cluster
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_server_side_dry_run_accepts_the_rendered_manifests(value_set, cluster, chart_namespace, monitoring_crds,
                                                             tmp_path):
    manifest, docs = render(VALUE_SETS[value_set], tmp_path, release=f"dry-{value_set}"[:20],
                            namespace=chart_namespace)
    assert len(docs) > 10
    result = cluster.kubectl("apply", "--dry-run=server", "-n", chart_namespace, "-f", str(manifest), check=False)
    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr
    assert result.stdout.count("(server dry run)") == len(docs)
