"""Which copy of a duplicate pair a chunk keeps: the lower item position, whatever order the downloads
finish in, so a re-run or a retry stores the same dataset. The worker CLI against the image server,
whose /slow/ route answers after a per-item delay."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import imageserver
import pytest

from chunk_worker.contract import ChunkField, Keys, Validation
from chunk_worker.dedup import NEAR_DISTANCE, hamming
from chunk_worker.validate import validate
from tests.fixtures.worker_cli import ALLOW, manifest, run_worker, write_spec

PICTURES = range(8, 128, 20)
SLOW = 0.8
HOLDUP = 10.0


@pytest.fixture(scope="module", autouse=True)
def pictures_have_near_copies():
    rules = Validation(min_width=32, min_height=32)
    for n in PICTURES:
        original, near = imageserver.make_image(n), imageserver.make_near_duplicate(n)
        assert hamming(validate(original, rules).phash, validate(near, rules).phash) <= NEAR_DISTANCE, n


def pair_items(image_server, delays: dict[int, float]) -> list[dict]:
    """Each picture twice in a row: its original (from /slow/, after `delays[n]` s) and its near copy,
    the original first for every other picture."""
    items = []
    for index, n in enumerate(PICTURES):
        original = {"url": image_server.url(f"/slow/{n}.jpg?delay={delays[n]}")}
        near = {"url": image_server.url(f"/near/{n}.jpg")}
        items += [original, near] if index % 2 == 0 else [near, original]
    return items


def run_pairs(image_server, tmp_path: Path, out: Path, delays: dict[int, float]) -> list[dict]:
    spec = write_spec(tmp_path, pair_items(image_server, delays))
    result = run_worker("--spec", str(spec), "--output", out.as_uri(), *ALLOW)
    assert result.returncode == 0, result.stderr
    return manifest(out)


def test_the_lower_position_of_each_pair_is_kept_even_when_its_download_ends_last(image_server, tmp_path):
    lines = run_pairs(image_server, tmp_path, tmp_path / "out", {n: SLOW for n in PICTURES})
    assert [(line["status"], line.get("reason")) for line in lines] == [
        ("ok", None), ("duplicate", "near_duplicate")] * len(PICTURES)


def test_rerunning_a_chunk_with_other_download_timings_keeps_the_same_images(image_server, tmp_path):
    rng = random.Random(14)
    first = {n: rng.choice((0.0, SLOW)) for n in PICTURES}
    second = {n: SLOW - delay for n, delay in first.items()}  # every slow download now fast and the other way
    out = tmp_path / "out"
    runs = [run_pairs(image_server, tmp_path, out, delays) for delays in (first, second)]
    kept = [{(position, line["sha256"]) for position, line in enumerate(lines) if line["status"] == "ok"}
            for lines in runs]
    assert kept[0] == kept[1]
    assert len(list((out / "images").rglob("*.jpg"))) == len(kept[0])


def test_a_retry_through_redis_with_other_download_timings_keeps_the_first_attempts_images(image_server, redis_url,
                                                                                        redis_client, tmp_path):
    """In-cluster mode: the claims live in Redis, and attempt 2 finds attempt 1's as its own."""
    keys, out = Keys("pc:"), tmp_path / "out"
    kept = []
    for attempt, delays in enumerate(({n: SLOW for n in PICTURES}, {n: 0.0 for n in PICTURES}), start=1):
        spec = write_spec(tmp_path, pair_items(image_server, delays), job_uid="uid-order", attempt=attempt,
                          output=out.as_uri()).read_text()
        redis_client.hset(keys.chunk("uid-order-00000"), ChunkField.SPEC, spec)
        result = run_worker("--chunk-id", "uid-order-00000", "--redis-url", redis_url, *ALLOW)
        assert result.returncode == 0, result.stderr
        kept.append([line["status"] for line in manifest(out)])
    assert kept[0] == kept[1] == ["ok", "duplicate"] * len(PICTURES)


def test_a_slow_item_holds_up_no_thread_while_the_claims_behind_it_wait(image_server, tmp_path):
    """Four threads, the first item slow: the 40 after it are all downloaded while it is still on its way."""
    slow = "/slow/399.jpg"
    fast = [f"/img/{n}.png" for n in range(400, 440)]
    items = [{"url": image_server.url(f"{slow}?delay={HOLDUP}")}] + [{"url": image_server.url(path)} for path in fast]
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "chunk_worker", "run", "--spec", str(write_spec(tmp_path, items)),
                                "--output", out.as_uri(), *ALLOW, "--threads", "4", "--progress", "none"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        while True:
            slow_done = image_server.completed(slow)  # read first: fast_done is then no earlier
            fast_done = sum(image_server.completed(path) for path in fast)
            if slow_done or fast_done == len(fast) or process.poll() is not None:
                break
            time.sleep(0.02)
    finally:
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert (fast_done, slow_done) == (len(fast), 0)
    assert [line["status"] for line in manifest(out)] == ["ok"] * len(items)
