"""The dataset card as pure functions of counts and the finalize spec."""

from __future__ import annotations

import fnmatch
from collections import Counter

import pytest
import yaml

from chunk_worker import card
from chunk_worker.card import DatasetCounts
from chunk_worker.contract import FinalizeSpec, Resize, Transform

BY4 = "https://creativecommons.org/licenses/by/4.0/"


def counts(**samples: int) -> DatasetCounts:
    """`cat_train=3` means three accepted cats in train."""
    result = DatasetCounts()
    for name, count in samples.items():
        label, split = name.rsplit("_", 1)
        result.samples[(label, split)] = count
    return result


def meta(text: str) -> dict:
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.mark.parametrize(("count", "category"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"),
                                                 (99_999, "10K<n<100K"), (1_000_000, "1M<n<10M")])
def test_size_category_follows_the_hub_buckets(count, category):
    assert card.size_category(count) == category


@pytest.mark.parametrize(("licence", "url", "hub"), [
    ("cc0", None, "cc0-1.0"),
    ("by", BY4, "cc-by-4.0"),
    ("by-sa", "https://creativecommons.org/licenses/by-sa/3.0/de/", "cc-by-sa-3.0"),
    ("by", None, None),  # no version: the Hub id would guess one
    ("by-nd", "https://creativecommons.org/licenses/by-nd/2.0/", None),  # a version the Hub does not list
    ("pdm", None, None),
    ("by", "https://creativecommons.org/licenses/by-sa/4.0/", None),  # the URL contradicts the id
])
def test_hub_license_ids_need_a_listed_version(licence, url, hub):
    assert card.hub_license(licence, url) == hub


def test_one_listed_licence_is_named_by_its_hub_id():
    assert card.license_front_matter(Counter({("by", BY4): 5})) == {"license": "cc-by-4.0"}


def test_a_mix_of_listed_licences_is_a_list_of_hub_ids():
    mix = card.license_front_matter(Counter({("by", BY4): 5, ("cc0", None): 2}))
    assert mix == {"license": ["cc-by-4.0", "cc0-1.0"]}


def test_a_mix_with_an_unlisted_licence_is_other_named_after_the_mix_and_linked_to_the_attribution():
    mix = card.license_front_matter(Counter({("by", BY4): 5, ("cc0", None): 2, (None, None): 1}))
    assert mix == {"license": "other", "license_name": "mixed-by-cc0-unknown", "license_link": "ATTRIBUTION.md"}


def test_an_unlisted_single_licence_is_other_under_its_own_name():
    assert card.license_front_matter(Counter({("pdm", None): 3}))["license_name"] == "pdm"


@pytest.mark.parametrize(("fmt", "paths"), [
    ("parquet", ["data/train-*.parquet", "data/test-*.parquet"]),
    ("webdataset", ["shards/*.tar"]),
    ("files", [["metadata-split=train.jsonl", "images/*/*"], ["metadata-split=test.jsonl", "images/*/*"]]),
])
def test_configs_point_at_each_formats_files_for_the_splits_with_images(fmt, paths):
    rendered = meta(card.render(FinalizeSpec(), fmt, counts(cat_train=2, cat_test=1), "/data"))
    assert [entry["path"] for entry in rendered["configs"][0]["data_files"]] == paths


def test_split_metadata_names_do_not_look_like_splits_to_datasets_default_patterns():
    from datasets.data_files import DEFAULT_PATTERNS_SPLIT_IN_FILENAME

    names = [card.split_metadata_name(split) for split in ("train", "validation", "test")]
    patterns = [pattern for split in DEFAULT_PATTERNS_SPLIT_IN_FILENAME.values() for pattern in split]
    assert not [name for name in names for pattern in patterns if fnmatch.fnmatch(name, pattern.removeprefix("**/"))]


def test_the_front_matter_is_yaml_that_round_trips_awkward_strings():
    value = {"a": ["x: y", "#z", "é \"q\""], "b": {"c": [{"d": 1, "e": ["f"]}]}, "g": None, "h": True}
    assert yaml.safe_load(card.to_yaml(value)) == value


def test_the_counts_table_has_a_row_per_label_and_a_column_per_split_with_totals():
    table = card.counts_table(counts(cat_train=3, dog_train=1, dog_validation=2))
    assert table.splitlines() == ["| label | train | validation | total |", "|---|---|---|---|",
                                  "| cat | 3 | 0 | 3 |", "| dog | 1 | 2 | 3 |", "| **total** | 4 | 2 | 6 |"]


def test_reasons_are_listed_most_frequent_first():
    result = counts(cat_train=1)
    result.reasons.update({"too_small": 2, "http_404": 5, "duplicate": 2})
    assert [row.split("`")[1] for row in card.reasons_table(result).splitlines()[2:]] == [
        "http_404", "duplicate", "too_small"]


def test_missing_chunks_make_the_card_say_it_is_incomplete():
    result = counts(cat_train=1)
    result.missing_chunks = [3, 7]
    assert "manifests of 2 chunk(s) are missing: 3, 7" in card.render(FinalizeSpec(), "files", result, "/d")


def test_a_pipe_in_a_label_or_source_cannot_break_a_table():
    result = counts(**{"a|b_train": 1})
    text = card.render(FinalizeSpec(sources=["x | y"]), "files", result, "/d")
    assert "| a\\|b | 1 | 1 |" in text and "- x \\| y" in text


def test_snippets_batch_only_when_the_transform_makes_every_image_one_size():
    fixed = FinalizeSpec(transform=Transform(resize=Resize(mode="center_crop", size=64)))
    assert "batch_size=32" in card.snippets("webdataset", "/d", counts(cat_train=1), fixed)
    assert "batch_size=None" in card.snippets("webdataset", "/d", counts(cat_train=1), FinalizeSpec())


def test_files_and_parquet_cards_say_webdataset_needs_the_webdataset_format():
    for fmt in ("files", "parquet"):
        text = card.snippets(fmt, "/d", counts(cat_train=1), FinalizeSpec())
        assert "wds.WebDataset" not in text and "output.format: webdataset" in text


def test_the_same_counts_render_the_same_bytes():
    first = card.render(FinalizeSpec(job="a/b"), "parquet", counts(cat_train=2, dog_test=1), "/d")
    assert card.render(FinalizeSpec(job="a/b"), "parquet", counts(dog_test=1, cat_train=2), "/d") == first
