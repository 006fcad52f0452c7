"""The worker inside a real 1 GiB memory cgroup (the chart's smallest sensible pod) with its default
threads, against decompression bombs of every allowed format mixed with 200 valid images: it
finishes, keeps every valid image, refuses every bomb with its reason, and never nears the limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import imageserver
from bombs import BOMBS, bomb_bytes
from chunk_worker.contract import Reason, Validation

GiB = 1 << 30
LIMIT = 1 * GiB
VALID = 200
EXTENSIONS = ("jpg", "png", "webp", "gif")
SIZE = (640, 480)
MAX_BYTES = 5 * 1024 * 1024  # a crawl's usual cap (the demo's): every bomb is far smaller on the wire


@pytest.fixture(scope="module", autouse=True)
def generated_corpus() -> None:
    """Made before the worker asks (a bomb takes seconds), so no download waits on the generator."""
    for name in BOMBS:
        bomb_bytes(name)
    for n in range(VALID):
        imageserver.make_image(n, imageserver.FORMATS[EXTENSIONS[n % 4]], *SIZE)


def corpus(server) -> list[dict[str, str]]:
    """The valid images with a bomb every 25 items, so bombs arrive while valid images are in flight."""
    valid = [{"url": server.url(f"/img/{n}.{EXTENSIONS[n % 4]}?w={SIZE[0]}&h={SIZE[1]}"), "label": "valid"}
             for n in range(VALID)]
    bombs = [{"url": server.url(bomb.path), "label": "bomb"} for bomb in BOMBS.values()]
    items = []
    for n, item in enumerate(valid):
        items.append(item)
        if n % 25 == 12 and bombs:
            items.append(bombs.pop())
    return items + bombs


def expected_reasons(bomb) -> set[str]:
    """A frame above the pixel cap is refused from the header; one below it is too large to decode
    in this pod; an animation whose frames together pass the cap is refused by whichever check
    comes first: the memory its first frame needs, or the pixels of the frames after it."""
    cap = Validation().max_pixels
    if bomb.pixels > cap:
        return {Reason.TOO_MANY_PIXELS.value}
    if bomb.pixels * bomb.frames > cap:
        return {Reason.TOO_LARGE_TO_DECODE.value, Reason.TOO_MANY_PIXELS.value}
    return {Reason.TOO_LARGE_TO_DECODE.value}


def run_in(group, tmp_path: Path, server,
           env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    spec = {"job": "default/bombs", "chunk": 0, "items": corpus(server),
            "validation": {"minWidth": 32, "minHeight": 32, "maxBytes": MAX_BYTES, "dedup": "exact"},
            "transform": {"resize": {"mode": "keep_ratio", "size": 512, "onlyIfBigger": True},
                          "encode": {"format": "jpeg", "quality": 90}},
            "format": "webdataset"}
    spec_file = tmp_path / "chunk.json"
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / "out"
    process = group.popen(
        [sys.executable, "-m", "chunk_worker", "run", "--spec", str(spec_file), "--output", out.as_uri(),
         "--allow-network", "127.0.0.1/32", "--progress", "none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PIXCRAWLER_TMP_DIR": str(tmp_path), **(env or {}),
             "PIXCRAWLER_ITEM_DEADLINE_SECONDS": "300"})  # memory is tested here, not a loaded machine's speed
    stdout, stderr = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), out


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifests" / "chunk-00000.jsonl").read_text().splitlines()]


def test_bombs_and_valid_images_under_a_1_gib_limit(memory_cgroup, image_server, tmp_path):
    group = memory_cgroup(LIMIT)
    result, out = run_in(group, tmp_path, image_server)
    print(f"peak {group.peak / 2**20:.0f} MiB of {LIMIT / 2**20:.0f} MiB")
    assert group.oom_kills == 0
    assert result.returncode == 0, result.stderr[-3000:]
    lines = manifest(out)
    assert len(lines) == VALID + len(BOMBS)
    valid = [line for line in lines if line["label"] == "valid"]
    assert [line["status"] for line in valid] == ["ok"] * VALID
    refused = {line["url"].rsplit("/", 1)[1]: line for line in lines if line["label"] == "bomb"}
    assert sorted(refused) == sorted(BOMBS)
    for name, line in refused.items():
        assert (line["status"], line["reason"] in expected_reasons(BOMBS[name])) == ("rejected", True), line
    assert group.peak < LIMIT


def test_bombs_that_fit_one_at_a_time_wait_their_turn(memory_cgroup, image_server, tmp_path):
    """In a 2 GiB pod several bombs fit the budget alone but not together (decoded at once they
    would take ~2.8 GiB): they are decoded in turn and kept, and the pod stays below its limit."""
    group = memory_cgroup(2 * GiB)
    result, out = run_in(group, tmp_path, image_server)
    print(f"peak {group.peak / 2**20:.0f} MiB of {2 * GiB / 2**20:.0f} MiB")
    assert (group.oom_kills, result.returncode) == (0, 0), result.stderr[-3000:]
    lines = manifest(out)
    assert [line["status"] for line in lines if line["label"] == "valid"] == ["ok"] * VALID
    outcomes = {line["url"].rsplit("/", 1)[1]: line.get("reason", line["status"]) for line in lines
                if line["label"] == "bomb"}
    for name, outcome in outcomes.items():
        assert outcome in {"ok"} | expected_reasons(BOMBS[name]), (name, outcome)
    assert list(outcomes.values()).count("ok") >= 2
    assert group.peak < 2 * GiB


def test_without_the_budget_the_same_corpus_is_oom_killed(memory_cgroup, image_server, tmp_path):
    """The corpus is a real threat to this pod: a budget far above the limit lets bombs decode."""
    group = memory_cgroup(LIMIT)
    result, _ = run_in(group, tmp_path, image_server, env={"PIXCRAWLER_MEMORY_BUDGET_BYTES": str(64 * GiB)})
    print(f"peak {group.peak / 2**20:.0f} MiB of {LIMIT / 2**20:.0f} MiB, exit {result.returncode}")
    assert group.oom_kills >= 1
    assert result.returncode == -9
