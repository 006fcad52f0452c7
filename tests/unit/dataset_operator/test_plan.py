"""Planning a DatasetJob into chunks: semantic checks, the maxImages cap, exact slicing across sources."""

import pytest

from dataset_operator import priority
from dataset_operator.plan import (
    InvalidSpec, OutlineFields, capped, chunk_spec, finalize_spec, leftover_pages, list_limits, list_request,
    lists_to_count, make_plan, output_url, recorded_counts,
)

PROVIDERS = {"openverse", "wikimedia"}
STORAGE = "azure://datasets"


def plan_of(spec: dict, counted: dict[int, int] | None = None):
    return make_plan("team", "cats", "uid-1", spec, STORAGE, PROVIDERS, counted)


def inline(label: str, count: int) -> dict:
    return {"label": label, "urls": [f"https://img.example/{label}/{i}.jpg" for i in range(count)]}


def url_list(label: str, count: int) -> dict:
    return {"label": label, "urlList": {"url": f"https://lists.example/{label}.txt", "count": count}}


def search(label: str, limit: int) -> dict:
    return {"label": label, "search": {"provider": "openverse", "query": label, "limit": limit}}


def flatten(spec) -> list[tuple[str, int]]:
    """(label, position within its source) of every item a chunk covers, in order."""
    covered = [(item.label, int(item.url.rsplit("/", 1)[1].split(".")[0])) for item in spec.items]
    for part in spec.sources:
        covered += [(part.label, part.start + offset) for offset in range(part.count)]
    return covered


def test_chunks_slice_across_sources_exactly_for_many_sizes():
    """No item lost or repeated over all chunks, whatever the source sizes and chunk size."""
    for sizes in ([1], [7], [3, 0, 5], [10, 1, 4], [500, 3, 250]):
        for chunk_size in (1, 2, 3, 5, 7, 100, 1000):
            makers = [inline, url_list, search]
            sources = [makers[i % 3](f"s{i}", size) for i, size in enumerate(sizes) if size]
            plan = plan_of({"sources": sources, "chunkSize": chunk_size})
            covered = [pair for index in range(plan.chunk_count) for pair in flatten(chunk_spec(plan, index))]
            expected = [(f"s{i}", n) for i, size in enumerate(sizes) for n in range(size)]
            assert covered == expected, (sizes, chunk_size)
            assert plan.chunk_count == -(-sum(sizes) // chunk_size)


def test_every_chunk_but_the_last_holds_exactly_chunk_size_items():
    plan = plan_of({"sources": [inline("a", 3), url_list("b", 8), search("c", 4)], "chunkSize": 4})
    assert [len(flatten(chunk_spec(plan, i))) for i in range(plan.chunk_count)] == [4, 4, 4, 3]


def test_max_images_caps_across_sources_in_order():
    assert capped([5, 10, 3], 12) == [5, 7, 0]
    plan = plan_of({"sources": [inline("a", 5), url_list("b", 10), search("c", 3)], "maxImages": 12,
                    "chunkSize": 100})
    assert [source.size for source in plan.sources] == [5, 7, 0]
    only = chunk_spec(plan, 0)
    assert len(only.items) == 5 and [(s.label, s.start, s.count) for s in only.sources] == [("b", 0, 7)]


def test_unset_max_images_takes_every_item():
    assert capped([5, 10], None) == [5, 10]


def test_url_list_without_count_uses_the_counted_length():
    plan = plan_of({"sources": [{"label": "x", "urlList": {"url": "https://lists.example/x.txt"}}]}, counted={0: 42})
    assert plan.total_items == 42


def test_chunk_carries_job_attempt_validation_and_output():
    plan = plan_of({"sources": [inline("a", 3)], "chunkSize": 2, "validation": {"minWidth": 32, "dedup": "exact"}})
    spec = chunk_spec(plan, 1, attempt=3)
    assert (spec.job, spec.job_uid, spec.chunk, spec.attempt) == ("team/cats", "uid-1", 1, 3)
    assert (spec.validation.min_width, spec.validation.dedup) == (32, "exact")
    assert spec.output == "azure://datasets/team/cats"


def test_the_outline_read_from_a_stored_plan_has_its_chunk_count_output_and_format():
    plan = plan_of({"chunkSize": 7, "output": {"format": "webdataset"},
                    "sources": [inline("cat", 5), url_list("dog", 30), search("fox", 12)]})
    outline = OutlineFields.model_validate_json(plan.model_dump_json())
    assert (outline.chunk_count, outline.output, outline.format) == (plan.chunk_count, plan.output, "webdataset")
    assert outline.chunk_count == 7  # ceil(47 / 7)


def test_chunk_index_past_the_last_chunk_is_refused():
    plan = plan_of({"sources": [inline("a", 3)], "chunkSize": 2})
    with pytest.raises(IndexError):
        chunk_spec(plan, 2)


def test_bad_inline_url_scheme_is_invalid_spec_naming_the_field():
    sources = [inline("a", 2), {"label": "b", "urls": ["https://ok.example/1.jpg", "ftp://files.example/2.jpg"]}]
    with pytest.raises(InvalidSpec, match=r"spec\.sources\[1\]\.urls\[1\].*ftp://files\.example/2\.jpg"):
        plan_of({"sources": sources})


def test_bad_url_list_scheme_is_invalid_spec_naming_the_field():
    with pytest.raises(InvalidSpec, match=r"spec\.sources\[0\]\.urlList\.url"):
        plan_of({"sources": [{"urlList": {"url": "file:///etc/passwd", "count": 3}}]})


def test_unknown_provider_is_invalid_spec_listing_known_ones():
    spec = {"sources": [{"search": {"provider": "altavista", "query": "cat", "limit": 5}}]}
    with pytest.raises(InvalidSpec, match=r"spec\.sources\[0\]\.search\.provider.*altavista.*openverse, wikimedia"):
        plan_of(spec)


def test_sources_without_items_are_invalid_spec():
    with pytest.raises(InvalidSpec, match="no items"):
        plan_of({"sources": [{"urlList": {"url": "https://lists.example/empty.txt"}}]}, counted={0: 0})


def test_more_chunks_than_the_queue_can_order_is_invalid_spec_naming_chunk_size():
    too_many = priority.MAX_CHUNKS + 2
    with pytest.raises(InvalidSpec, match=r"spec\.chunkSize"):
        plan_of({"sources": [url_list("a", too_many)], "chunkSize": 1})


def test_output_defaults_to_namespace_and_name_under_the_default_container():
    assert output_url("azure://datasets", "team", "cats", {}) == "azure://datasets/team/cats"
    custom = {"container": "mine", "prefix": "/x/y/"}
    assert output_url("azure://datasets", "team", "cats", custom) == "azure://mine/x/y"
    assert output_url("file:///data/", "team", "cats", {}) == "file:///data/team/cats"


def test_output_without_any_container_is_invalid_spec():
    with pytest.raises(InvalidSpec, match="output.container"):
        output_url("azure://", "team", "cats", {})


def test_classes_default_to_the_sorted_source_labels():
    plan = plan_of({"sources": [inline("dog", 2), inline("cat", 2), url_list("dog", 3)]})
    assert plan.classes == ["cat", "dog"]


def test_spec_classes_keep_the_users_order():
    plan = plan_of({"sources": [inline("dog", 2), inline("cat", 2)], "classes": ["dog", "cat", "bird"]})
    assert plan.classes == ["dog", "cat", "bird"]


def test_a_label_column_without_classes_records_no_class_index():
    source = {"label": "x", "urlList": {"url": "https://lists.example/l.csv", "format": "csv",
                                        "labelColumn": "kind", "count": 5}}
    assert plan_of({"sources": [source]}).classes == []


def test_chunks_carry_the_format_transform_split_classes_and_licences():
    spec = {"sources": [inline("cat", 3)], "output": {"format": "webdataset"},
            "transform": {"resize": {"mode": "center_crop", "size": 256}, "encode": {"format": "jpeg"}},
            "split": {"val": 0.1, "test": 0.2}, "validation": {"licenses": ["cc0", "by"]}}
    chunk = chunk_spec(plan_of(spec), 0)
    assert chunk.format == "webdataset"
    assert (chunk.transform.resize.mode, chunk.transform.resize.size, chunk.transform.encode.format) == (
        "center_crop", 256, "jpeg")
    assert (chunk.split.val, chunk.split.test) == (0.1, 0.2)
    assert chunk.classes == ["cat"]
    assert chunk.validation.licenses == ["by", "cc0"]


def test_the_finalize_spec_describes_the_job_for_its_card():
    from dataset_operator.plan import finalize_spec

    spec = {"sources": [inline("cat", 3), search("bird", 40)], "output": {"format": "parquet"}, "chunkSize": 2}
    final = finalize_spec(plan_of(spec), spec["sources"])
    assert (final.job, final.format, final.chunks, final.classes) == ("team/cats", "parquet", 22, ["bird", "cat"])
    assert final.sources == ["cat: 3 URLs given inline", "bird: openverse search for 'bird' (up to 40)"]


def test_licence_allow_lists_are_stored_as_ids():
    plan = plan_of({"sources": [inline("cat", 1)], "validation": {"licenses": ["CC BY-SA 4.0", "cc0", "by"]}})
    assert plan.validation.licenses == ["by", "by-sa", "cc0"]


def test_an_allow_list_entry_that_names_no_licence_is_an_invalid_spec():
    with pytest.raises(InvalidSpec, match="spec.validation.licenses.*no-such-licence"):
        plan_of({"sources": [inline("cat", 1)], "validation": {"licenses": ["cc0", "no-such-licence"]}})


def test_chunks_carry_the_opt_outs_the_job_respects():
    chunk = chunk_spec(plan_of({"sources": [inline("cat", 2)], "respect": {"robotsTxt": False}}), 0)
    assert (chunk.respect.robots_txt, chunk.respect.tdm_rep, chunk.respect.x_robots_tag) == (False, True, True)
    assert chunk_spec(plan_of({"sources": [inline("cat", 2)]}), 0).respect.robots_txt is True


def test_an_unusable_respect_is_an_invalid_spec_naming_the_field():
    with pytest.raises(InvalidSpec, match=r"spec\.respect\.robotsTxt"):
        plan_of({"sources": [inline("cat", 2)], "respect": {"robotsTxt": "sometimes"}})
    with pytest.raises(InvalidSpec, match=r"spec\.respect\.llmsTxt"):
        plan_of({"sources": [inline("cat", 2)], "respect": {"llmsTxt": True}})


def test_the_crd_offers_each_respect_flag_of_the_contract_with_its_default():
    import pathlib

    import yaml

    from chunk_worker.contract import Respect

    crd = yaml.safe_load((pathlib.Path(__file__).parents[3] / "crds" / "datasetjobs.pixcrawler.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["respect"]
    offered = {name: prop["default"] for name, prop in schema["properties"].items()}
    assert offered == Respect().model_dump(by_alias=True)


def test_every_http_url_list_is_read_for_its_pages_with_a_count_or_without():
    spec = {"sources": [{"urls": ["https://a.example/1.jpg"]},
                        {"urlList": {"url": "https://lists.example/a.txt", "count": 9}},
                        {"urlList": {"url": "https://lists.example/b.csv", "format": "csv"}},
                        {"urlList": {"url": "ftp://lists.example/c.txt"}}]}
    wanted = lists_to_count(spec)
    assert list(wanted) == [1, 2] and wanted[2].url == "https://lists.example/b.csv" and wanted[2].format == "csv"


def test_a_list_is_read_up_to_its_count_and_never_past_max_images():
    spec = {"sources": [{"urlList": {"url": "https://l.example/a", "count": 9}},
                        {"urlList": {"url": "https://l.example/b"}}, inline("c", 2)]}
    assert list_limits(spec) == {0: 9}
    assert list_limits({**spec, "maxImages": 5}) == {0: 5, 1: 5}
    assert list_limits({**spec, "maxImages": 50}) == {0: 9, 1: 50}


def test_the_list_request_writes_pages_of_chunk_size_under_the_jobs_output():
    spec = {"sources": [inline("c", 2), {"urlList": {"url": "https://l.example/a", "count": 9}}], "chunkSize": 4}
    request = list_request(spec, "uid-1", "azure://datasets/team/cats")
    assert (request.output, request.pages, request.page_size) == ("azure://datasets/team/cats",
                                                                  ".pixcrawler/lists/uid-1", 4)
    assert list(request.lists) == [1] and request.limits == {1: 9}


def test_counts_kept_in_the_status_are_reused_only_when_complete_and_paged_for_this_job():
    spec = {"sources": [{"urlList": {"url": "https://l.example/a"}}, {"urlList": {"url": "https://l.example/b",
                                                                                   "count": 3}}]}
    pages = ".pixcrawler/lists/uid-1"
    paged = {"listCounts": {"0": 5, "1": 3}, "listPages": pages}
    assert recorded_counts(paged, spec, "uid-1", planned=True) == ({0: 5, 1: 3}, pages)
    assert recorded_counts({**paged, "listCounts": {"0": 5}}, spec, "uid-1", planned=True) is None
    assert recorded_counts(paged, spec, "uid-2", planned=True) is None
    assert recorded_counts({}, spec, "uid-1", planned=False) is None
    assert recorded_counts({"listCounts": {"0": 5, "1": 3}}, spec, "uid-1", planned=False) is None


def test_a_job_planned_before_pages_is_planned_again_as_then_without_pages():
    spec = {"sources": [{"urlList": {"url": "https://l.example/a"}}, {"urlList": {"url": "https://l.example/b",
                                                                                   "count": 3}}]}
    assert recorded_counts({"listCounts": {"0": 5}}, spec, "uid-1", planned=True) == ({0: 5}, None)
    assert recorded_counts({}, spec, "uid-1", planned=True) is None  # its list without a count was never kept
    assert recorded_counts({}, {"sources": [spec["sources"][1]]}, "uid-1", planned=True) == ({}, None)
    plan = plan_of({"sources": spec["sources"], "chunkSize": 4}, counted={0: 5})
    assert [source.size for source in plan.sources] == [5, 3]
    assert all(part.pages is None for part in chunk_spec(plan, 0).sources)


def test_a_list_shorter_than_its_count_plans_what_was_read():
    plan = plan_of({"sources": [url_list("b", 10)], "chunkSize": 4}, counted={0: 6})
    assert plan.total_items == 6 and plan.chunk_count == 2


def paged_plan(spec: dict, counted: dict[int, int]):
    return make_plan("team", "cats", "uid-1", spec, STORAGE, PROVIDERS, counted, list_pages=".pixcrawler/lists/uid-1")


def test_paged_url_list_slices_name_their_sources_pages_and_the_page_size():
    spec = {"sources": [inline("a", 3), {"label": "b", "urlList": {"url": "https://l.example/b.txt"}},
                        search("c", 4)], "chunkSize": 4}
    plan = paged_plan(spec, {1: 6})
    slices = [part for index in range(plan.chunk_count) for part in chunk_spec(plan, index).sources]
    lists = [(s.pages, s.page_size, s.start, s.count) for s in slices if s.url_list is not None]
    assert lists == [(".pixcrawler/lists/uid-1/source-1", 4, 0, 1), (".pixcrawler/lists/uid-1/source-1", 4, 1, 4),
                     (".pixcrawler/lists/uid-1/source-1", 4, 5, 1)]
    assert all(s.pages is None for s in slices if s.search is not None)
    assert all(s.url_list.url == "https://l.example/b.txt" for s in slices if s.url_list is not None)


def test_a_plan_without_pages_gives_plain_list_slices():
    plan = plan_of({"sources": [url_list("b", 5)], "chunkSize": 4})
    assert [part.pages for part in chunk_spec(plan, 0).sources] == [None]


def test_finalize_removes_the_pages_of_a_paged_plan_only():
    spec = {"sources": [url_list("b", 5)]}
    assert finalize_spec(paged_plan(spec, {0: 5}), spec["sources"]).list_pages == ".pixcrawler/lists/uid-1"
    assert finalize_spec(plan_of(spec), spec["sources"]).list_pages is None


def keyed_search(provider: str, **extra) -> dict:
    return {"sources": [{"label": "cat", "search": {"provider": provider, "query": "cat", "limit": 10, **extra}}]}


ALL_PROVIDERS = {"openverse", "wikimedia", "inaturalist", "met", "smithsonian", "flickr"}


@pytest.mark.parametrize(("provider", "key"), [("flickr", "flickr-api-key"), ("smithsonian", "smithsonian-api-key")])
def test_a_provider_without_its_key_is_an_invalid_spec_naming_the_setting(provider, key):
    with pytest.raises(InvalidSpec, match=f"{key}.*PIXCRAWLER_SEARCH_CREDENTIALS_SECRET.*search.credentialsSecret"):
        make_plan("team", "cats", "uid-1", keyed_search(provider), STORAGE, ALL_PROVIDERS, configured_keys=set())


def test_a_provider_with_its_key_configured_is_planned():
    plan = make_plan("team", "cats", "uid-1", keyed_search("flickr"), STORAGE, ALL_PROVIDERS,
                     configured_keys={"flickr-api-key"})
    assert plan.total_items == 10


@pytest.mark.parametrize("provider", ["openverse", "wikimedia", "inaturalist", "met"])
def test_keyless_providers_need_no_key(provider):
    assert make_plan("team", "cats", "uid-1", keyed_search(provider), STORAGE, ALL_PROVIDERS).total_items == 10


def test_a_keyed_search_at_an_endpoint_the_operator_does_not_trust_is_refused():
    spec = keyed_search("flickr", endpoint="https://evil.example")
    with pytest.raises(InvalidSpec, match="evil.example would receive the operator's flickr key"):
        make_plan("team", "cats", "uid-1", spec, STORAGE, ALL_PROVIDERS, configured_keys={"flickr-api-key"})
    trusted = make_plan("team", "cats", "uid-1", spec, STORAGE, ALL_PROVIDERS, configured_keys={"flickr-api-key"},
                        trusted_endpoints=["https://evil.example/"])
    assert trusted.sources[0].search.endpoint == "https://evil.example"


def test_queries_reach_the_chunks_beside_query():
    spec = {"sources": [{"label": "cat", "search": {"query": "cat", "queries": ["kitten"], "limit": 4}}],
            "chunkSize": 2}
    plan = make_plan("team", "cats", "uid-1", spec, STORAGE, ALL_PROVIDERS)
    slices = [chunk_spec(plan, index).sources[0] for index in range(plan.chunk_count)]
    assert [(s.start, s.count, s.search.all_queries) for s in slices] == [(0, 2, ["cat", "kitten"]),
                                                                         (2, 2, ["cat", "kitten"])]


def test_a_search_without_any_query_is_an_invalid_spec():
    with pytest.raises(InvalidSpec, match="query or queries"):
        make_plan("team", "cats", "uid-1", {"sources": [{"search": {"queries": []}}]}, STORAGE, ALL_PROVIDERS)


def test_a_deleted_job_that_read_url_lists_leaves_its_pages_to_remove():
    spec = {"sources": [{"urlList": {"url": "https://l.example/a"}}]}
    located = {"output": {"location": "azure://kept/team/cats"}}
    assert leftover_pages(spec, located, "uid-1", "team", "cats", STORAGE) == ("azure://kept/team/cats",
                                                                                ".pixcrawler/lists/uid-1")
    assert leftover_pages(spec, {}, "uid-1", "team", "cats", STORAGE) == ("azure://datasets/team/cats",
                                                                           ".pixcrawler/lists/uid-1")
    assert leftover_pages({"sources": [inline("a", 2)]}, located, "uid-1", "team", "cats", STORAGE) is None
    assert leftover_pages(spec, {}, "uid-1", "team", "cats", "s3://nowhere") is None
