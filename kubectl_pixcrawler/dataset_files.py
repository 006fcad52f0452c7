"""What `kubectl pixcrawler download` fetches of a finished dataset and what it checks in each file.
Pure: the index rows come in, the list of files with the image hashes each must hold goes out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chunk_worker.card import METADATA_ALL, split_metadata_name
from chunk_worker.contract import ATTRIBUTION_NAME, CARD_NAME, EXTENSIONS, INDEX_JSONL, INDEX_PARQUET, REPORT_NAME, SPLITS

Layout = str  # "files" | "webdataset" | "parquet", as status.output.format names it


class NotDownloadable(Exception):
    """The job or the request cannot give a dataset to download; the message says why."""


@dataclass
class Wanted:
    """One object of the output, saved under the same relative path. `images` maps where an image sits
    in it ("" for the whole file, a tar member, or a Parquet row's key) to the sha256 of its bytes."""

    name: str
    images: dict[str, str] = field(default_factory=dict)
    kind: str = "file"  # "file", "tar" or "parquet": how the images are found in it
    optional: bool = False  # dataset-wide extras: absent in older datasets, never an error
    saved_as: str | None = None  # a local name other than `name`

    @property
    def local_name(self) -> str:
        return self.saved_as or self.name


def finished_output(body: dict[str, Any]) -> tuple[str, Layout]:
    """(location, layout) of a DatasetJob whose dataset is complete, else NotDownloadable saying why."""
    name = (body.get("metadata") or {}).get("name", "?")
    status = body.get("status") or {}
    phase = status.get("phase") or "Pending"
    output = status.get("output") or {}
    if phase != "Succeeded" or not output.get("index"):
        raise NotDownloadable(f"datasetjob {name} is {phase}: its dataset is complete once it has Succeeded")
    if not output.get("location") or not output.get("format"):
        raise NotDownloadable(f"datasetjob {name} has no status.output.location and format")
    return output["location"], output["format"]


def wanted_files(rows: Iterable[dict[str, Any]], layout: Layout, split: str | None = None) -> list[Wanted]:
    """Every object holding the dataset's images (of one split if asked), then the dataset-wide files.
    A row without `stored_sha256` (a dataset written before it existed) is fetched but not checked."""
    if split is not None and split not in SPLITS:
        raise NotDownloadable(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    if split is not None and layout == "webdataset":
        raise NotDownloadable("a webdataset's shards mix the splits (one shard per chunk): download it whole "
                              "and filter on each sample's json `split`")
    by_name: dict[str, Wanted] = {}
    for row in rows:
        if split is not None and row.get("split") != split:
            continue
        blob = row["blob"]
        if layout == "files":
            wanted = by_name.setdefault(blob, Wanted(blob))
            where = ""
        elif layout == "webdataset":
            wanted = by_name.setdefault(blob, Wanted(blob, kind="tar"))
            where = f"{row['key']}.{EXTENSIONS[row['format']]}"
        elif layout == "parquet":
            wanted = by_name.setdefault(blob, Wanted(blob, kind="parquet"))
            where = row["key"]
        else:
            raise NotDownloadable(f"unknown output format {layout!r}")
        if row.get("stored_sha256"):
            wanted.images[where] = row["stored_sha256"]
    files = sorted(by_name.values(), key=lambda wanted: wanted.name)
    if layout == "webdataset":
        files += [Wanted(shard.name.removesuffix(".tar") + ".parquet") for shard in list(files)]
    return files + dataset_wide_files(layout, split)


def dataset_wide_files(layout: Layout, split: str | None) -> list[Wanted]:
    """The index, attribution and report always; the card and (files) the imagefolder metadata for a
    whole download. A one-split copy gets that split's metadata as metadata.jsonl and no card: the
    card's configs name every split, which a loader would then look for."""
    extras = [Wanted(INDEX_JSONL), Wanted(INDEX_PARQUET), Wanted(ATTRIBUTION_NAME, optional=True),
              Wanted(REPORT_NAME, optional=True)]
    if split is None:
        extras.append(Wanted(CARD_NAME))
        if layout == "files":
            extras += [Wanted(METADATA_ALL)] + [Wanted(split_metadata_name(name), optional=True) for name in SPLITS]
    elif layout == "files":
        extras.append(Wanted(split_metadata_name(split), saved_as=METADATA_ALL))
    return extras


def loading_hint(directory: str, layout: Layout, split: str | None) -> str:
    """How to load what was saved, printed at the end of a download."""
    if split is None:
        return f'datasets.load_dataset("{directory}")'
    if layout == "parquet":
        return f'datasets.load_dataset("parquet", data_files="{directory}/data/{split}-*.parquet")'
    return f'datasets.load_dataset("imagefolder", data_dir="{directory}")  # the {split} split, loaded as one split'
