"""The page rendered from known counts: every user-given string is text, every count shown is the count."""

from collections import Counter
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

from chunk_worker.card import DatasetCounts
from chunk_worker.contract import ChunkRun, FinalizeSpec, ManifestLine, RefusedSample
from chunk_worker.report import page
from chunk_worker.report.collect import ReportData

HOSTILE = '<script>alert("x")</script>'
URI = "data:image/jpeg;base64,AAAA"


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter = Counter()
        self.attributes: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.attributes += [(tag, name, value) for name, value in attrs]


def line(n: int, label: str, **extra) -> ManifestLine:
    fields = dict(url=f"http://x/{n}.jpg?a=1&b=\"2\"", label=label, status="ok", key=f"{n:09d}",
                  blob=f"images/{n:02d}/{n}.jpg", sha256=f"{n:064x}", phash="0" * 16, width=100, height=80,
                  bytes=5000, format="JPEG", split="train", license=HOSTILE, caption=HOSTILE)
    return ManifestLine(**{**fields, **extra})


def rendered(lines: list[ManifestLine], runs: list[ChunkRun] = (), job: str = "default/pets") -> str:
    counts, data = DatasetCounts(), ReportData()
    for item in lines:
        counts.statuses[item.status] += 1
        if item.status == "ok":
            counts.samples[(item.label, item.split or "train")] += 1
            counts.licences[(item.license, item.license_url)] += 1
        else:
            counts.reasons[item.reason] += 1
        data.add_line(item)
    for run in runs:
        data.add_run(run)
    counts.chunks = [0]
    thumbnails = {page.thumbnail_key(item.model_dump()): URI for item in lines if item.status == "ok"}
    return page.render(FinalizeSpec(job=job, sources=[HOSTILE]), "files", counts, data, "file:///data/out", "/data/out",
                       thumbnails)


def test_hostile_labels_urls_and_licences_never_become_markup():
    html = rendered([line(1, HOSTILE)], job=HOSTILE)
    parsed = Elements()
    parsed.feed(html)
    assert parsed.tags["script"] == 0
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert ("a", "href", 'http://x/1.jpg?a=1&b="2"') in parsed.attributes  # the URL survives as an attribute value
    assert not [name for _, name, _ in parsed.attributes if name.startswith("on")]


def test_the_page_allows_no_network_at_all():
    html = rendered([line(1, "cat")])
    assert "default-src 'none'; img-src data:" in html
    assert "http://" not in html.split("<body>")[0]  # nothing loaded from anywhere: the links are in the body


def test_each_group_shows_its_full_count_and_at_most_48_thumbnails():
    html = rendered([line(n, "cat") for n in range(60)] + [line(100 + n, "dog") for n in range(3)])
    parsed = Elements()
    parsed.feed(html)
    assert [value for _, name, value in parsed.attributes if name == "data-total"] == ["60", "3"]
    assert parsed.tags["img"] == 48 + 3


def test_a_duplicate_example_sits_beside_the_image_it_duplicates():
    kept = line(1, "cat")
    duplicate = RefusedSample(url="http://x/dup.jpg", label="cat", reason="duplicate", sha256=kept.sha256,
                              thumbnail="data:image/jpeg;base64,BBBB")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    run = ChunkRun(chunk=0, started_at=start, finished_at=start + timedelta(seconds=3), seconds=3,
                   refused=[duplicate])
    counts, data = DatasetCounts(), ReportData()
    for item in (kept, ManifestLine(url="http://x/dup.jpg", label="cat", status="duplicate", reason="duplicate",
                                    sha256=kept.sha256)):
        data.add_line(item)
    data.add_run(run)
    data.find_originals([kept.model_dump()])
    counts.reasons["duplicate"] = 1
    thumbnails = {page.thumbnail_key(kept.model_dump()): URI}
    html = page.render(FinalizeSpec(), "files", counts, data, "file:///d", "/d", thumbnails)
    figure = html.split('<figure class="pair refused-example">', 1)[1].split("</figure>", 1)[0]
    assert "base64,BBBB" in figure and URI in figure and "the same bytes as kept 000000001" in figure


def test_only_http_urls_become_links():
    html = rendered([line(1, "cat", url="javascript:alert(1)"), line(2, "cat", url="https://example.org/2.jpg")])
    parsed = Elements()
    parsed.feed(html)
    assert [value for tag, name, value in parsed.attributes if tag == "a" and name == "href"] == [
        "https://example.org/2.jpg"]
    assert "javascript:alert(1)" in html  # still shown, as the hover's text
