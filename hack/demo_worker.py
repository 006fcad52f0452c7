"""`make demo-worker`: build a real dataset from the sample image server on loopback, no cloud account.

It serves generated images (good ones, duplicates, near-duplicates and hostile ones) on 127.0.0.1,
runs one chunk through `python -m chunk_worker run`, and prints what landed where and why the
rest was refused. Output: ./out/demo-worker (images/, manifests/).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from imageserver import ImageServer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "demo-worker"

HOSTILE = [
    "/bomb.png", "/truncated.jpg", "/small.jpg", "/page.html", "/huge", "/404", "/500",
    "/redirect-imds", "/redirect-loopback2", "/redirect-loop", "/optout.jpg", "/wrong-type.jpg",
    "/encoded/gzip.png", "/encoded/gzip-gzip.png", "/bomb/webp-lossless.webp",
]
LISTED = "/list.jsonl?noise=1&start=300&n=10"
"""A URL list whose every fifth line is not JSON: each such line is one bad_list_line item."""
LISTED_LINES = 12
MEMORY_BUDGET = 512 * 1024 * 1024
"""The worker's decode budget here, as a pod limit would set it: /bomb/webp-lossless.webp, 9400 x 9400
pixels (below maxPixels) in a few dozen bytes, needs more than all of it to decode (too_large_to_decode)."""
CREDENTIALS, CREDENTIALS_PATH = "demo-user:s3cret-token", "/img/140.jpg"
"""A URL carrying user:pass@: fetched like any other, but the secret is never written down."""


def demo_items(server: ImageServer) -> list[dict[str, str]]:
    items = []
    for n in range(1, 121):
        ext = ("jpg", "png", "webp", "gif")[n % 4]
        items.append({"url": server.url(f"/img/{n}.{ext}"), "label": "cat" if n % 2 else "dog"})
    items += [{"url": server.url(f"/dup/{n}.jpg"), "label": "dup"} for n in range(4, 124, 20)]
    items += [{"url": server.url(f"/near/{n}.jpg"), "label": "near"} for n in range(8, 128, 20)]
    items += [{"url": server.url(path), "label": "hostile"} for path in HOSTILE]
    items.append({"url": "http://169.254.169.254/latest/meta-data/", "label": "hostile"})
    items.append({"url": "file:///etc/passwd", "label": "hostile"})
    items.append({"url": server.url(CREDENTIALS_PATH).replace("//", f"//{CREDENTIALS}@", 1), "label": "hostile"})
    return items


def demo_sources(server: ImageServer) -> list[dict[str, object]]:
    return [{"label": "listed", "urlList": {"url": server.url(LISTED), "format": "jsonl"}, "count": LISTED_LINES}]


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    with ImageServer(count=200) as server, tempfile.TemporaryDirectory() as tmp:
        spec = {"job": "default/demo", "chunk": 0, "items": demo_items(server), "sources": demo_sources(server),
                "validation": {"minWidth": 64, "minHeight": 64, "maxBytes": 5 * 1024 * 1024, "dedup": "near"}}
        spec_file = Path(tmp) / "chunk.json"
        spec_file.write_text(json.dumps(spec))
        print(f"sample image server on {server.base_url}; {len(spec['items'])} items and a {LISTED_LINES}-line "
              f"URL list -> {OUT}; decode budget {MEMORY_BUDGET >> 20} MiB", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "chunk_worker", "run", "--spec", str(spec_file), "--output", OUT.as_uri(),
             "--allow-network", "127.0.0.1/32", "--log-format", "text"],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PIXCRAWLER_MEMORY_BUDGET_BYTES": str(MEMORY_BUDGET)},
        )
    if result.returncode != 0:
        print(f"worker exited {result.returncode}", file=sys.stderr)
        return result.returncode
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    lines = [json.loads(line) for line in (OUT / summary["manifest"]).read_text().splitlines()]
    by_status = Counter(line["status"] for line in lines)
    by_reason = Counter(line["reason"] for line in lines if line.get("reason"))
    stored = sum(1 for _ in (OUT / "images").rglob("*.*"))
    print(f"\n{stored} images stored under {OUT / 'images'} in {summary['seconds']} s "
          f"({summary['imagesPerSecond']} items/s)")
    print("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
    print("refused:   " + ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items())))
    print("hostile items, as the manifest records them:")
    for line in lines:
        if line["label"] == "hostile" or line.get("reason") == "bad_list_line":
            print(f"  {line['status']:9} {line.get('reason') or '-':19} {line['url']}")
    leaks = (OUT / summary["manifest"]).read_text().count(CREDENTIALS.split(":")[1])
    print(f"credentials: the item asked for as {CREDENTIALS}@...{CREDENTIALS_PATH} is recorded "
          + ("without them" if not leaks else f"WITH THEM ({leaks} mentions of the secret in the manifest)"))
    print(f"worker peak RSS: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >> 10} MiB")
    print(f"manifest:  {OUT / summary['manifest']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
