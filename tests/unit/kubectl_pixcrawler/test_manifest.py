"""The DatasetJob `kubectl pixcrawler create` writes, as a user would write it by hand."""

from kubectl_pixcrawler.manifest import datasetjob


def test_a_search_job_carries_only_what_was_asked():
    assert datasetjob("cats", label="cat", query="cats", limit=1000) == {
        "apiVersion": "pixcrawler.io/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "cats"},
        "spec": {"tier": "free", "sources": [{"label": "cat", "search": {"provider": "openverse", "query": "cats",
                                                                          "limit": 1000}}]}}


def test_format_licences_chunk_size_and_endpoint_go_where_the_schema_has_them():
    spec = datasetjob("birds", label="bird", query="bird", limit=50, tier="new-user", output_format="webdataset",
                      chunk_size=100, licenses=["cc0", "by"], endpoint="http://mirror.example/openverse")["spec"]
    assert spec["tier"] == "new-user" and spec["chunkSize"] == 100
    assert spec["output"] == {"format": "webdataset"}
    assert spec["validation"] == {"licenses": ["cc0", "by"]}
    assert spec["sources"][0]["search"]["endpoint"] == "http://mirror.example/openverse"


def test_more_queries_go_to_queries_beside_the_first():
    search = datasetjob("cats", label="cat", query="cats", queries=["kittens"], limit=10,
                        provider="wikimedia")["spec"]["sources"][0]["search"]
    assert search == {"provider": "wikimedia", "query": "cats", "queries": ["kittens"], "limit": 10}


def test_a_repeated_query_flag_writes_queries(capsys):
    import yaml

    from kubectl_pixcrawler.__main__ import main

    assert main(["create", "cats", "--label", "cat", "--query", "cats", "--query", "kittens", "--limit", "5",
                 "--dry-run", "client", "-o", "yaml"]) == 0
    search = yaml.safe_load(capsys.readouterr().out)["spec"]["sources"][0]["search"]
    assert (search["query"], search["queries"]) == ("cats", ["kittens"])
