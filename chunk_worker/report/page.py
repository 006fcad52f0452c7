"""report.html rendered from what finalize counted and collected, with Jinja2's autoescape: every
label, URL, caption and licence is text, never markup. Pure: thumbnails come in as data: URIs."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from chunk_worker import card
from chunk_worker.card import DatasetCounts
from chunk_worker.contract import FinalizeSpec, OutputFormat
from chunk_worker.report import charts
from chunk_worker.report.collect import PER_GROUP, Refused, ReportData
from chunk_worker.report.distributions import short_bytes
from chunk_worker.report.refused import SHOWN_REASONS

TEMPLATE = "report.html.j2"
NOT_FETCHED = {"license_not_allowed", "label_not_in_classes", "blocked_address", "blocked_scheme", "bad_url",
               "opt_out", "bad_list_line"}
"""Reasons decided before any byte of the image was downloaded: there is nothing to show."""

Thumbnails = dict[tuple[str, str], str]
"""(blob, key) -> data: URI of the stored image's thumbnail."""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def thumbnail_key(record: dict[str, Any]) -> tuple[str, str]:
    return record.get("blob") or "", record.get("key") or record.get("sha256") or ""


def link(url: str | None) -> str | None:
    """An image's URL as a link only when it is http(s): a `javascript:` or `data:` URL in a hand-made
    manifest must not become something a click runs."""
    return url if url and urlsplit(url).scheme in ("http", "https") else None


def hover(record: dict[str, Any]) -> str:
    """What a thumbnail's title shows: where it came from and under which licence."""
    lines = [record.get("url") or "", f"licence: {record.get('license') or 'none stated'}"]
    if record.get("license_url"):
        lines.append(record["license_url"])
    if record.get("creator"):
        lines.append(f"by {record['creator']}")
    if record.get("caption"):
        lines.append(record["caption"])
    if record.get("width") and record.get("height"):
        lines.append(f"{record['width']}x{record['height']}")
    return "\n".join(lines)


def chart_list(counts: DatasetCounts, data: ReportData) -> list[Markup]:
    labels = {}
    for (label, _), count in counts.samples.items():
        labels[label or "(no label)"] = labels.get(label or "(no label)", 0) + count
    licences = {}
    for (licence, _), count in counts.licences.items():
        licences[licence or "none stated"] = licences.get(licence or "none stated", 0) + count
    first = min((timing.started for timing in data.timings), default=0.0)
    spans = [(f"{timing.chunk:05d}", timing.started - first, timing.finished - first)
             for timing in sorted(data.timings, key=lambda timing: (timing.started, timing.chunk))]
    made = [
        charts.column_chart("chart-dimensions", "Width and height (px)", data.widths.labels(),
                            [("width", data.widths.counts), ("height", data.heights.counts)]),
        charts.column_chart("chart-bytes", "Stored bytes per image", data.sizes.labels(short_bytes),
                            [("images", data.sizes.counts)]),
        charts.bar_chart("chart-labels", "Images per label", sorted(labels.items(), key=lambda e: (-e[1], e[0]))),
        charts.bar_chart("chart-licences", "Licence mix", sorted(licences.items(), key=lambda e: (-e[1], e[0]))),
        charts.timeline_chart("chart-chunks", "When each chunk ran (s from the first start)", spans),
    ]
    return [Markup(svg) for svg in made]  # built from escaped text by charts.py


def timing_summary(data: ReportData) -> dict[str, Any] | None:
    if not data.timings:
        return None
    first = min(timing.started for timing in data.timings)
    last = max(timing.finished for timing in data.timings)
    return {"span": last - first, "busy": sum(timing.seconds for timing in data.timings),
            "first": _utc(first), "last": _utc(last), "recorded": len(data.timings)}


def _utc(posix: float) -> str:
    return datetime.fromtimestamp(posix, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def reason_note(reason: str, examples: int) -> str:
    if reason in NOT_FETCHED:
        return "refused before any byte was downloaded: no image to show"
    if reason in SHOWN_REASONS:
        return "downloaded and decoded; examples below" if examples else \
            "downloaded and decoded; no example kept (the chunks recorded none)"
    return "no decodable image: nothing to show"


def example_view(example: Refused, thumbnails: Thumbnails) -> dict[str, Any]:
    sample = example.sample
    view: dict[str, Any] = {"url": link(sample.url), "uri": sample.thumbnail, "original": None,
                            "title": hover(sample.model_dump()),
                            "caption": f"{sample.label or '(no label)'}: {sample.url}"}
    if sample.width and sample.height:
        view["caption"] += f" ({sample.width}x{sample.height})"
    original = example.original
    if original is not None and thumbnail_key(original) in thumbnails:
        view["original"] = {"url": link(original["url"]), "uri": thumbnails[thumbnail_key(original)],
                            "title": hover(original)}
        same = original.get("sha256") == sample.sha256
        kind = "the same bytes as" if same else f"pHash distance {example.distance} from"
        view["caption"] += f"; {kind} kept {original['key']}"
    return view


def render(spec: FinalizeSpec, fmt: OutputFormat, counts: DatasetCounts, data: ReportData, output: str,
           location: str, thumbnails: Thumbnails) -> str:
    """`output` is where the dataset is stored (the header says so), `location` where the loading
    snippets read it from (the card's choice: a local copy's directory)."""
    sheets = []
    for label, split, total, records in data.sheets():
        thumbs = [{"url": link(record["url"]), "uri": thumbnails[thumbnail_key(record)], "title": hover(record),
                   "alt": f"{record['label'] or '(no label)'} {record['key'] or ''}".strip()}
                  for record in records if thumbnail_key(record) in thumbnails]
        sheets.append({"label": label, "split": split, "total": total, "thumbs": thumbs})
    examples = data.refused_examples()
    refused = [{"reason": reason, "count": count, "note": reason_note(reason, len(examples.get(reason, []))),
                "examples": [example_view(example, thumbnails) for example in examples.get(reason, [])]}
               for reason, count in sorted(counts.reasons.items(), key=lambda entry: (-entry[1], entry[0]))]
    snippets = [(library, "\n".join(lines)) for library, lines in card.snippet_blocks(fmt, location, counts, spec)]
    return environment().get_template(TEMPLATE).render(
        title=spec.job or "dataset", format=fmt, output=output, missing=counts.missing_chunks,
        accepted=counts.accepted, items=sum(counts.statuses.values()),
        statuses=[(status, counts.statuses[status]) for status in ("ok", "rejected", "failed", "duplicate")],
        chunks=len(counts.chunks), timing=timing_summary(data), charts=chart_list(counts, data),
        per_group=PER_GROUP, sheets=sheets, refused=refused, snippets=snippets,
        not_webdataset=None if fmt == "webdataset" else card.NOT_WEBDATASET,
        spec=json.dumps(json.loads(dataset_spec(spec).dump()), indent=2, ensure_ascii=False))


def dataset_spec(spec: FinalizeSpec) -> FinalizeSpec:
    """The spec as the report shows it: without the list pages, which are no part of the dataset and
    are gone once finalize is done."""
    return spec.model_copy(update={"list_pages": None})
