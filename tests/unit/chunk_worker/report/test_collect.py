"""What finalize's pass collects for the report: bounded however many labels, and each example
duplicate matched to the image it duplicates."""

from datetime import datetime, timezone

from chunk_worker.contract import ChunkRun, ManifestLine, RefusedSample
from chunk_worker.report.collect import MAX_SHEET_THUMBNAILS, PER_GROUP, ReportData

URI = "data:image/jpeg;base64,AAAA"


def accepted(n: int, label: str, split: str) -> ManifestLine:
    return ManifestLine(url=f"http://x/{n}.jpg", label=label, split=split, status="ok", key=f"{n:09d}",
                        sha256=f"{n * 7919 % 1_000_003:064x}", width=640, height=480, bytes=50_000)


def test_an_imagenet_sized_label_set_holds_about_the_sheet_budget_and_counts_every_image():
    data = ReportData()
    n = 0
    for _ in range(10):
        for label in range(1_000):
            for split in ("train", "validation", "test"):
                data.add_line(accepted(n, f"label-{label}", split))
                n += 1
    held = sum(len(chosen._entries) for chosen in data.groups.values())
    assert held <= 2 * max(MAX_SHEET_THUMBNAILS, len(data.groups))
    sheets = data.sheets()
    assert len(sheets) == 3_000 and all(total == 10 for _, _, total, _ in sheets)
    assert sum(len(records) for _, _, _, records in sheets) == MAX_SHEET_THUMBNAILS


def test_a_few_labels_get_a_full_sheet_each_of_their_lowest_hashes():
    data = ReportData()
    lines = [accepted(n, "cat", "train") for n in range(200)]
    for line in lines:
        data.add_line(line)
    ((label, split, total, records),) = data.sheets()
    assert (label, split, total) == ("cat", "train", 200)
    assert [record["sha256"] for record in records] == sorted(line.sha256 for line in lines)[:PER_GROUP]


def test_the_distributions_count_accepted_images_only():
    data = ReportData()
    data.add_line(accepted(1, "cat", "train"))
    data.add_line(ManifestLine(url="http://x/s.jpg", status="rejected", reason="too_small", width=10, height=10))
    assert data.widths.total == data.heights.total == data.sizes.total == 1


def test_a_near_duplicate_finds_the_closest_kept_image_within_the_dedup_distance():
    data = ReportData()
    near = RefusedSample(url="http://x/n.jpg", reason="near_duplicate", sha256="f" * 64, phash="000000000000000f",
                         thumbnail=URI)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    data.add_run(ChunkRun(chunk=0, started_at=start, finished_at=start, seconds=0, refused=[near]))
    far, close, closer = ({"key": key, "sha256": key * 64, "phash": phash, "url": key}
                          for key, phash in (("a", "00000000000000ff"), ("b", "0000000000000007"),
                                             ("c", "0000000000000001")))
    data.find_originals([far, close, closer])
    example = data.refused_examples()["near_duplicate"][0]
    assert (example.original["key"], example.distance) == ("b", 1)
