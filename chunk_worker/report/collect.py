"""What the report gathers during finalize's one pass over the manifests, bounded whatever the
dataset's size: fixed-bin distributions, PER_GROUP samples per label and split, the chunks' run
records (timings, refused thumbnails), and afterwards the images near-duplicates shadowed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chunk_worker.contract import ChunkRun, ManifestLine, RefusedSample
from chunk_worker.dedup import NEAR_DISTANCE, hamming
from chunk_worker.report.distributions import Histogram, bytes_histogram, pixel_histogram
from chunk_worker.report.sample import Lowest, share, url_rank

PER_GROUP = 48
"""Thumbnails per label and split on the contact sheets."""
MAX_SHEET_THUMBNAILS = 1_500
"""All contact sheets together at most (with many groups each shows fewer, down to one; past 1,500
groups the rest show their count alone): about 3-7 MB of thumbnails."""
REFUSED_PER_REASON = 8
"""Refused examples per reason, chosen from the chunks' own samples."""
PICKED_FIELDS = ("key", "blob", "url", "label", "split", "sha256", "phash", "width", "height", "format",
                 "license", "license_url", "creator", "caption")


@dataclass
class ChunkTiming:
    chunk: int
    attempt: int
    started: float  # POSIX seconds
    finished: float
    seconds: float


@dataclass
class Refused:
    sample: RefusedSample
    original: dict[str, Any] | None = None  # the kept image it duplicates, once found
    distance: int | None = None


@dataclass
class ReportData:
    widths: Histogram = field(default_factory=pixel_histogram)
    heights: Histogram = field(default_factory=pixel_histogram)
    sizes: Histogram = field(default_factory=bytes_histogram)
    groups: dict[tuple[str, str], Lowest[dict[str, Any]]] = field(default_factory=dict)
    timings: list[ChunkTiming] = field(default_factory=list)  # one per chunk with a run record
    refused: dict[str, Lowest[Refused]] = field(default_factory=dict)

    def add_line(self, line: ManifestLine) -> None:
        if line.status != "ok":
            return
        if line.width is not None and line.height is not None:
            self.widths.add(line.width)
            self.heights.add(line.height)
        if line.bytes is not None:
            self.sizes.add(line.bytes)
        group = (line.label, line.split or "train")
        chosen = self.groups.get(group)
        if chosen is None:
            chosen = self._new_group(group)
        rank = (line.sha256 or url_rank(line.url), line.key or "")
        chosen.offer_made(rank, lambda: {name: getattr(line, name) for name in PICKED_FIELDS})

    def _new_group(self, group: tuple[str, str]) -> Lowest[dict[str, Any]]:
        """Every group's sample shrinks as groups are found (ImageNet's 1,000 labels x 3 splits get one
        image each), so the samples held stay about MAX_SHEET_THUMBNAILS, however many labels."""
        size = share(len(self.groups) + 1, PER_GROUP, MAX_SHEET_THUMBNAILS)
        if self.groups and size < next(iter(self.groups.values())).size:
            for chosen in self.groups.values():
                chosen.shrink(size)
        self.groups[group] = Lowest(size)
        return self.groups[group]

    def add_run(self, run: ChunkRun) -> None:
        self.timings.append(ChunkTiming(run.chunk, run.attempt, run.started_at.timestamp(),
                                        run.finished_at.timestamp(), run.seconds))
        for sample in run.refused:
            chosen = self.refused.get(sample.reason)
            if chosen is None:
                chosen = self.refused[sample.reason] = Lowest(REFUSED_PER_REASON)
            chosen.offer(url_rank(sample.url), Refused(sample))

    def sheets(self) -> list[tuple[str, str, int, list[dict[str, Any]]]]:
        """(label, split, images in the group, the group's thumbnails' records), by label then split;
        past MAX_SHEET_THUMBNAILS in all, the remaining groups show their count alone."""
        left = MAX_SHEET_THUMBNAILS
        sheets = []
        for (label, split), chosen in sorted(self.groups.items(), key=lambda entry: _group_order(entry[0])):
            records = chosen.chosen(left)
            left -= len(records)
            sheets.append((label, split, chosen.seen, records))
        return sheets

    def refused_examples(self) -> dict[str, list[Refused]]:
        return {reason: chosen.chosen() for reason, chosen in sorted(self.refused.items())}

    def find_originals(self, records: Iterable[dict[str, Any]]) -> None:
        """A second pass over the index: each example duplicate gets the kept image it duplicates, the
        same rule dedup applied (the same sha256; for a near duplicate the closest pHash within
        NEAR_DISTANCE, the lower key on a tie)."""
        examples = [example for chosen in self.refused.values() for example in chosen.chosen()
                    if example.sample.reason in ("duplicate", "near_duplicate") and example.sample.sha256]
        if not examples:
            return
        for record in records:
            for example in examples:
                distance = _distance(example.sample, record)
                if distance is None:
                    continue
                if example.distance is None or (distance, record["key"] or "") < (example.distance,
                                                                                    example.original["key"] or ""):
                    example.original = {name: record.get(name) for name in PICKED_FIELDS}
                    example.distance = distance


def _distance(sample: RefusedSample, record: dict[str, Any]) -> int | None:
    if record.get("sha256") == sample.sha256:
        return 0
    if sample.reason != "near_duplicate" or not sample.phash or not record.get("phash"):
        return None
    try:
        distance = hamming(int(sample.phash, 16), int(record["phash"], 16))
    except ValueError:
        return None
    return distance if distance <= NEAR_DISTANCE else None


_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


def _group_order(group: tuple[str, str]) -> tuple[str, int]:
    return group[0], _SPLIT_ORDER.get(group[1], 3)
