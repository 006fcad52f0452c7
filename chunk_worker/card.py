"""The dataset card (README.md with Hugging Face YAML front matter), rendered from counts. Pure.

Everything here is a function of the counts and the finalize spec, never of the clock, so a re-run
over the same manifests renders the same bytes. YAML is emitted by hand with JSON-quoted scalars (a
JSON string is a valid YAML double-quoted scalar), which keeps pyyaml out of the worker image.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from chunk_worker import licenses
from chunk_worker.contract import ATTRIBUTION_NAME, SPLITS, FinalizeSpec, OutputFormat

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
"""The Hub's size_categories buckets (huggingface_hub DatasetCardData)."""

_HUB_VERSIONS = {
    "by": ("2.0", "2.5", "3.0", "4.0"),
    "by-sa": ("3.0", "4.0"),
    "by-nc": ("2.0", "3.0", "4.0"),
    "by-nd": ("4.0",),
    "by-nc-nd": ("3.0", "4.0"),
    "by-nc-sa": ("2.0", "3.0", "4.0"),
}
"""Creative Commons licences the Hub has an identifier for (hub-docs, repositories-licenses)."""

METADATA_ALL = "metadata.jsonl"
"""imagefolder's default metadata name: every accepted image, with a `split` column."""


def split_metadata_name(split: str) -> str:
    """Per-split metadata for the card's configs. The name must not look like a split to datasets'
    default patterns (a split keyword between separators such as `-._`), or `load_dataset("imagefolder",
    data_dir=...)` would take these files for its splits; `split=<name>` keeps `=` before the keyword."""
    return f"metadata-split={split}.jsonl"


@dataclass
class DatasetCounts:
    """What the card reports; bounded by labels x splits, reasons and licences, never by images."""

    samples: Counter = field(default_factory=Counter)  # (label, split) -> accepted images
    reasons: Counter = field(default_factory=Counter)  # reason (or status without one) -> items not accepted
    statuses: Counter = field(default_factory=Counter)  # ok | rejected | failed | duplicate -> items
    licences: Counter = field(default_factory=Counter)  # (licence id or None, licence URL or None) -> images
    attributed: int = 0  # images listed in ATTRIBUTION.md
    chunks: list[int] = field(default_factory=list)  # chunk indices whose manifest was read
    missing_chunks: list[int] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(self.samples.values())

    def split_totals(self) -> dict[str, int]:
        totals = Counter()
        for (_, split), count in self.samples.items():
            totals[split] += count
        return {split: totals[split] for split in SPLITS if totals[split]}


def size_category(count: int) -> str:
    for bound, name in SIZE_CATEGORIES:
        if count < bound:
            return name
    return "n>1B"


def hub_license(licence: str | None, url: str | None) -> str | None:
    """The Hub's identifier for a normalised licence id, or None when the Hub has none (pdm, a CC
    licence without a known version, an unlisted version). The version comes from the licence URL."""
    if licence == "cc0":
        return "cc0-1.0"
    if licence not in _HUB_VERSIONS or not url:
        return None
    parsed = licenses.parse(url)
    if parsed is None or parsed.id != licence or parsed.version not in _HUB_VERSIONS[licence]:
        return None
    return f"cc-{licence}-{parsed.version}"


def license_front_matter(licences: Counter) -> dict[str, object]:
    """The Hub's ids when it lists every licence present (one id, or a list for a mix); else `other`,
    named after the mix, with the attribution file as its link (the Hub's convention for a licence it
    does not list: an image without a stated licence, pdm, a CC licence of unknown version)."""
    ids = {hub_license(licence, url) for licence, url in licences}
    if not licences:
        return {"license": "unknown"}
    if None not in ids:
        return {"license": ids.pop() if len(ids) == 1 else sorted(ids)}
    names = sorted({licence or "unknown" for licence, _ in licences})
    return {"license": "other", "license_name": "mixed-" + "-".join(names) if len(names) > 1 else names[0],
            "license_link": ATTRIBUTION_NAME}


def data_files(fmt: OutputFormat, splits: list[str]) -> list[dict[str, object]]:
    """The `configs` entry's data_files for the layout each format writes."""
    if fmt == "parquet":
        return [{"split": split, "path": f"data/{split}-*.parquet"} for split in splits]
    if fmt == "webdataset":
        return [{"split": "train", "path": "shards/*.tar"}]  # shards mix splits: each sample's json names its own
    return [{"split": split, "path": [split_metadata_name(split), "images/*/*"]} for split in splits]


def configs(fmt: OutputFormat, splits: list[str]) -> list[dict[str, object]]:
    config: dict[str, object] = {"config_name": "default", "data_files": data_files(fmt, splits)}
    if fmt == "files":
        config["metadata_filenames"] = [split_metadata_name(split) for split in splits]
    return [config]


def card_splits(counts: DatasetCounts) -> list[str]:
    """The splits the configs name: those with images (train alone when there are none)."""
    return list(counts.split_totals()) or ["train"]


def front_matter(counts: DatasetCounts, fmt: OutputFormat) -> dict[str, object]:
    splits = card_splits(counts)
    return {**license_front_matter(counts.licences), "task_categories": ["image-classification"],
            "size_categories": [size_category(counts.accepted)], "configs": configs(fmt, splits)}


def to_yaml(value: object, indent: int = 0) -> str:
    """Block-style YAML of dicts, lists and scalars (the subset the front matter uses)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                inner = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {inner[indent + 2:]}")
            elif isinstance(item, list) and item:
                lines.append(f"{pad}-\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(value: object) -> str:
    if value == {} or value == []:
        return json.dumps(value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


def _cell(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def counts_table(counts: DatasetCounts) -> str:
    splits = list(counts.split_totals())
    if not splits:
        return "No image was accepted."
    labels = sorted({label for label, _ in counts.samples})
    lines = ["| label | " + " | ".join(splits) + " | total |", "|---" * (len(splits) + 2) + "|"]
    for label in labels:
        row = [counts.samples[(label, split)] for split in splits]
        lines.append(f"| {_cell(label or '(none)')} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = counts.split_totals()
    lines.append("| **total** | " + " | ".join(str(totals[split]) for split in splits) + f" | {counts.accepted} |")
    return "\n".join(lines)


def reasons_table(counts: DatasetCounts) -> str:
    if not counts.reasons:
        return "Every item was accepted."
    lines = ["| reason | items |", "|---|---|"]
    for reason, count in sorted(counts.reasons.items(), key=lambda entry: (-entry[1], entry[0])):
        lines.append(f"| `{_cell(reason)}` | {count} |")
    return "\n".join(lines)


def licences_table(counts: DatasetCounts) -> str:
    if not counts.licences:
        return "No image has a stated licence."
    lines = ["| licence | Hub id | licence URL | images |", "|---|---|---|---|"]
    for (licence, url), count in sorted(counts.licences.items(), key=lambda e: (-e[1], e[0][0] or "", e[0][1] or "")):
        lines.append(f"| {_cell(licence or 'none stated')} | {_cell(hub_license(licence, url) or '-')} "
                     f"| {_cell(url or '-')} | {count} |")
    return "\n".join(lines)


def _settings(spec: FinalizeSpec) -> list[str]:
    resize, encode = spec.transform.resize, spec.transform.encode
    if resize.mode == "none":
        resized = "none (images keep their size)"
    else:
        resized = f"`{resize.mode}` to {resize.size} px" + (", only if bigger" if resize.only_if_bigger else "")
    encoded = "kept as downloaded unless pixels change" if encode.format == "keep" else \
        f"{encode.format} (quality {encode.quality})"
    lines = [f"- Resize: {resized}", f"- Encoding: {encoded}",
             "- EXIF orientation applied whenever pixels are re-encoded",
             f"- De-duplication: {spec.dedup or 'not recorded'} (job-wide; with `near` only one image of a "
             "near-duplicate pair is kept, so no pair straddles two splits)",
             f"- Split: validation {spec.split.val:g}, test {spec.split.test:g}, the rest train "
             "(from each image's sha256, so a re-run gives the same split)"]
    if spec.licenses is not None:
        lines.append("- Licence allow-list: " + (", ".join(f"`{name}`" for name in spec.licenses) or "(empty)"))
    if spec.classes:
        lines.append("- Classes (index = position): " + ", ".join(f"{i} `{_cell(name)}`"
                                                                   for i, name in enumerate(spec.classes)))
    return lines


NOT_WEBDATASET = "this output is not in tar shards; build it with `output.format: webdataset`."
"""What the loading snippets say about webdataset for the formats without tar shards."""


def snippet_blocks(fmt: OutputFormat, location: str, counts: DatasetCounts, spec: FinalizeSpec
                   ) -> list[tuple[str, list[str]]]:
    """(library, lines): three lines per library, correct for the layout `fmt` writes; `location` is
    where the dataset is read from. The card and the HTML report show the same ones."""
    path = json.dumps(location)
    first = next(iter(counts.split_totals()), "train")
    fixed = spec.transform.resize.mode in ("center_crop", "border")  # every image the same size: batches stack
    batch = "batch_size=32" if fixed else "batch_size=None"
    hf = ["from datasets import load_dataset",
          f"dataset = load_dataset({path})  # the splits and files of this card's configs",
          f"print(dataset[{json.dumps(first)}][0])"]
    if fmt == "webdataset":
        target = '"cls"' if spec.classes else '"json"'
        pipeline = (f'wds.WebDataset(sorted(glob.glob({path} + "/shards/*.tar")), shardshuffle=False)'
                    f'.decode("pil").to_tuple("jpg;png;webp;gif", {target})')
        tensors = pipeline.replace('decode("pil")', 'decode("torchrgb")')
        blocks = [("webdataset", ["import glob, webdataset as wds", f"dataset = {pipeline}",
                                  "image, target = next(iter(dataset))"]),
                  ("Hugging Face datasets", hf),
                  ("PyTorch", ["import glob, torch, webdataset as wds",
                               f"dataset = {tensors}",
                               f"loader = torch.utils.data.DataLoader(dataset, {batch}, num_workers=2)"])]
    else:
        blocks = [("Hugging Face datasets", hf),
                  ("PyTorch", ["import torch", "from datasets import load_dataset",
                               f"loader = torch.utils.data.DataLoader(load_dataset({path}, split={json.dumps(first)})"
                               f'.with_format("torch"), {batch})'])]
    return blocks


def snippets(fmt: OutputFormat, location: str, counts: DatasetCounts, spec: FinalizeSpec) -> str:
    out = []
    for library, lines in snippet_blocks(fmt, location, counts, spec):
        out += [f"**{library}**", "", "```python", *lines, "```", ""]
    if fmt != "webdataset":
        out += [f"**webdataset**: {NOT_WEBDATASET}", ""]
    return "\n".join(out).rstrip("\n")


def _layout(fmt: OutputFormat) -> str:
    if fmt == "webdataset":
        return ("WebDataset tar shards `shards/<chunk>.tar` (members `<key>.<ext>`, `<key>.json`, `<key>.cls`, "
                "`<key>.txt`), each with a Parquet of its samples' metadata beside it. Splits are mixed inside "
                "the shards: each sample's `json` names its `split`.")
    if fmt == "parquet":
        return "Parquet files `data/<split>-<chunk>.parquet` with the Hugging Face image struct and metadata columns."
    return (f"Images under `images/<sha256[:2]>/<sha256>.<ext>`; `{METADATA_ALL}` lists every accepted image "
            "(`file_name`, `label`, `split`, ...), so `load_dataset(\"imagefolder\", data_dir=...)` loads it as one "
            f"`train` split with a `split` column, and `{split_metadata_name('<split>')}` hold each split for this "
            "card's configs (imagefolder reads a metadata file's `file_name` only below its own directory, so "
            "per-split files sit beside `images/` instead of in split directories).")


def render(spec: FinalizeSpec, fmt: OutputFormat, counts: DatasetCounts, location: str) -> str:
    name = spec.job or "dataset"
    body = [f"# {name}", "",
            f"{counts.accepted} images for image classification, built by pixcrawler-operator. {_layout(fmt)} "
            "`index.parquet` and `index.jsonl` hold every accepted image's metadata record.", ""]
    if counts.missing_chunks:
        body += [f"**Incomplete**: the manifests of {len(counts.missing_chunks)} chunk(s) are missing: "
                 + ", ".join(map(str, counts.missing_chunks)) + ".", ""]
    body += ["## Images per label and split", "", counts_table(counts), "",
             "## Items not in the dataset", "", reasons_table(counts), "",
             "## Sources", ""]
    body += [f"- {_cell(source)}" for source in spec.sources] or ["(not recorded)"]
    body += ["", "## Licences", "", licences_table(counts), "",
             f"{counts.attributed} image(s) whose licence requires attribution are credited in "
             f"[{ATTRIBUTION_NAME}]({ATTRIBUTION_NAME}).", "",
             "## Processing", "", *_settings(spec), "",
             "## Loading", "", snippets(fmt, location, counts, spec), ""]
    return "---\n" + to_yaml(front_matter(counts, fmt)) + "\n---\n\n" + "\n".join(body)
