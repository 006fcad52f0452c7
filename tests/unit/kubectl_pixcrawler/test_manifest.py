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
