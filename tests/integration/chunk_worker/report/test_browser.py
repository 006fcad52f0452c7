"""report.html from a real run: the worker CLI fetches from the local image server (two chunks, a
hostile label, small images, an exact and a near duplicate), `finalize` writes the report, and
Debian's chromium, driven by Playwright, opens it as a reader would, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from chunk_worker.contract import ChunkRun, run_name

ALLOW = ["--allow-network", "127.0.0.1/32"]
HOSTILE = "<script>alert(1)</script>"
CHROMIUM = "/usr/bin/chromium"
CHARTS = ["chart-dimensions", "chart-bytes", "chart-labels", "chart-licences", "chart-chunks"]


def chunk_items(server, chunk: int) -> list[dict]:
    base = chunk * 20
    items = [{"url": server.url(f"/img/{base + n}.jpg"), "label": "cat" if n % 2 else HOSTILE,
              "license": "by", "licenseUrl": "https://creativecommons.org/licenses/by/4.0/"} for n in range(1, 9)]
    items += [{"url": server.url(f"/img/{base + n}.png?w=16&h=16"), "label": "cat"} for n in range(10, 13)]
    items += [{"url": server.url(f"/dup/{base + 1}.jpg"), "label": "cat"},
              {"url": server.url(f"/near/{base + 2}.jpg"), "label": "cat"}]
    return items


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chunk_worker", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ})


@pytest.fixture(scope="module")
def report(image_server, tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("report")
    out = tmp / "out"
    for chunk in (0, 1):
        spec = tmp / f"chunk-{chunk}.json"
        spec.write_text(json.dumps({
            "job": "default/report", "chunk": chunk, "items": chunk_items(image_server, chunk),
            "validation": {"minWidth": 32, "minHeight": 32, "dedup": "near"}, "split": {"val": 0.3}}))
        worker = run("run", "--spec", str(spec), "--output", out.as_uri(), *ALLOW, "--progress", "none")
        assert worker.returncode == 0, worker.stderr
    finalized = run("finalize", "--output", out.as_uri(), "--spec-json", json.dumps({"job": "default/report"}),
                    "--log-format", "text")
    assert finalized.returncode == 0, finalized.stderr
    return out, json.loads(finalized.stdout)


def index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def test_each_chunk_records_when_it_ran_and_a_thumbnail_of_each_kind_it_refused(report):
    out, _ = report
    run_record = ChunkRun.model_validate_json((out / run_name(0)).read_text())
    assert run_record.finished_at >= run_record.started_at
    assert Counter(sample.reason for sample in run_record.refused) == {"too_small": 3, "duplicate": 1,
                                                                       "near_duplicate": 1}


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make system` (hack/install-system.sh installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root (CI) chromium will not start with its sandbox (tried: the launch fails). Playwright
        # already leaves the sandbox off unless chromium_sandbox=True; said here so it stays off.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def open_report(browser, out: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests, console = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.goto((out / "report.html").as_uri(), wait_until="load")
    return page, requests, console


def test_the_report_opens_offline_without_errors_and_its_counts_match_the_index(report, browser, tmp_path):
    out, summary = report
    page, requests, console = open_report(browser, out, 1280)
    records = index(out)
    assert [url for url in requests if not url.startswith("data:")] == [(out / "report.html").as_uri()]
    assert console == []
    assert int(page.text_content("#count-accepted")) == len(records) == summary["images"]
    statuses = {status: int(page.text_content(f"#count-{status}")) for status in ("ok", "rejected", "failed", "duplicate")}
    assert statuses == {"ok": len(records), "rejected": 6, "failed": 0, "duplicate": 4}
    assert statuses == {"failed": 0, **summary["statuses"]}
    groups = Counter((record["label"], record["split"]) for record in records)
    shown = {(section.get_attribute("data-label"), section.get_attribute("data-split")):
             (int(section.locator(".total").text_content()), section.locator("img.thumb").count())
             for section in page.locator("section.group").all()}
    assert shown == {group: (count, min(count, 48)) for group, count in groups.items()}
    links = page.locator("section.group a").all()
    assert sorted(link.get_attribute("href") for link in links) == sorted(record["url"] for record in records)
    assert all(link.get_attribute("title").startswith(link.get_attribute("href") + "\nlicence: by\n")
               for link in links)  # the hover: source URL, then licence
    assert all(page.locator(f"svg#{chart}").count() == 1 for chart in CHARTS)
    assert page.locator("svg#chart-chunks rect.bar").count() == 2  # one row per chunk
    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"report screenshot: {screenshot}")
    page.close()


def test_the_refused_table_matches_the_manifests_and_duplicates_sit_beside_the_image_kept(report, browser):
    out, summary = report
    page, _, _ = open_report(browser, out, 1280)
    table = {row.get_attribute("data-reason"): int(row.locator("td.n").text_content())
             for row in page.locator("#refused tbody tr").all()}
    assert table == summary["reasons"] == {"too_small": 6, "duplicate": 2, "near_duplicate": 2}
    pairs = page.locator("figure.refused-example:has(img.original-thumb)")
    assert pairs.count() == 4  # every example duplicate, exact or near, found its original
    assert page.locator("figure.refused-example img.refused-thumb").count() == 10
    page.close()


def test_a_hostile_label_is_shown_as_text_and_never_runs(report, browser):
    out, _ = report
    page, _, console = open_report(browser, out, 390)  # a phone's width
    assert page.locator("script").count() == 0
    headings = page.locator("section.group h3").all_text_contents()
    assert any(heading.startswith(HOSTILE) for heading in headings), headings
    assert console == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling on a phone
    page.close()
