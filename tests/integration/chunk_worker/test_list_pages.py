"""URL lists split once into pages by the list-count Job (chunk_worker.list_count, called directly
here): real HTTP lists, pages on a real file:// output and on Azurite, chunks reading their slices
from the pages without one request to the list, and finalize removing them."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from chunk_worker.contract import (
    ChunkSpec, FinalizeSpec, ListCountRequest, ListCounts, UrlList, list_pages_root, manifest_name, source_pages,
)
from chunk_worker.finalize import finalize
from chunk_worker.list_count import count_lists
from chunk_worker.list_pages import page_name
from chunk_worker.settings import WorkerSettings
from chunk_worker.sources import RejectedLine, resolve_items
from chunk_worker.storage import open_storage

UID = "0f6e2c1a-uid"
ROOT = list_pages_root(UID)


def settings(tmp_path: Path) -> WorkerSettings:
    return WorkerSettings(allow_networks=[ipaddress.ip_network("127.0.0.1/32")], tmp_dir=str(tmp_path),
                          list_deadline_seconds=30.0)


def txt_list(image_server, n: int) -> bytes:
    """n indexed lines: image URLs, with a comment, a blank and two unusable lines among them."""
    lines = [b"# pets"]
    for i in range(n):
        lines.append(b"caf\xe9" if i == 3 else b"\0" if i == 8 else image_server.url(f"/img/{i}.jpg").encode())
        if i == 5:
            lines.append(b"")
    return b"\n".join(lines)


def csv_list(image_server, n: int) -> bytes:
    rows = [b"url,label"] + [f"{image_server.url(f'/img/{i}.png')},{'dog' if i % 2 else ''}".encode()
                             for i in range(n)]
    return b"\r\n".join(rows)


def request(lists: dict[int, UrlList], output: str, page_size: int, limits: dict[int, int] | None = None):
    return ListCountRequest(lists=lists, limits=limits or {}, output=output, pages=ROOT, page_size=page_size)


def chunk(slices: list[dict]) -> ChunkSpec:
    return ChunkSpec.model_validate({"job": "default/pets", "chunk": 0, "sources": slices})


def paged(url: str, fmt: str, position: int, start: int, count: int, page_size: int, label: str = "cat") -> dict:
    return {"label": label, "urlList": {"url": url, "format": fmt}, "start": start, "count": count,
            "pages": source_pages(ROOT, position), "pageSize": page_size}


def pages_on_disk(out: Path) -> dict[str, bytes]:
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted((out / ROOT).rglob("*")) if path.is_file()}


def test_the_list_job_writes_pages_that_chunks_read_without_requesting_the_list(image_server, list_server, fetcher,
                                                                               tmp_path):
    txt = list_server.serve("/pages/pets.txt", txt_list(image_server, 11))
    csv = list_server.serve("/pages/pets.csv", csv_list(image_server, 6))
    streamed = {(fmt, start, count): list(resolve_items(chunk([{"label": "cat", "urlList": {"url": url, "format": fmt},
                                                                "start": start, "count": count}]), fetcher))
                for url, fmt, total in ((txt, "txt", 11), (csv, "csv", 6))
                for start in range(total) for count in range(1, min(4, total - start) + 1)}
    assert any(isinstance(item, RejectedLine) for items in streamed.values() for item in items)
    before = dict(list_server.requests)
    out = tmp_path / "out"

    answer = count_lists(request({0: UrlList(url=txt), 2: UrlList(url=csv, format="csv", label_column="label")},
                                 out.as_uri(), page_size=4), settings(tmp_path))

    assert answer == ListCounts(counts={0: 11, 2: 6})
    assert list_server.requests["/pages/pets.txt"] == before["/pages/pets.txt"] + 1
    assert sorted(pages_on_disk(out)) == [page_name(source_pages(ROOT, 0), p) for p in range(3)] + \
        [page_name(source_pages(ROOT, 2), p) for p in range(2)]
    assert [len(page.splitlines()) for page in pages_on_disk(out).values()] == [4, 4, 3, 4, 2]
    del list_server.bodies["/pages/pets.txt"], list_server.bodies["/pages/pets.csv"]  # a list request would fail now
    requests = dict(list_server.requests)
    storage = open_storage(out.as_uri())
    with contextlib.closing(storage):
        for (fmt, start, count), expected in streamed.items():
            url, position = (txt, 0) if fmt == "txt" else (csv, 2)
            spec = chunk([paged(url, fmt, position, start, count, page_size=4)])
            got = list(resolve_items(spec, fetcher, storage=storage))
            if fmt == "csv":  # the csv list's own labels, the source's where a row has none
                assert [item.label for item in got] == ["dog" if (start + k) % 2 else "cat" for k in range(count)]
                expected = [item.model_copy(update={"label": "dog" if (start + k) % 2 else "cat"})
                            for k, item in enumerate(expected)]
            assert got == expected, (fmt, start, count)
            assert [type(item) for item in got] == [type(item) for item in expected]
    assert dict(list_server.requests) == requests


def test_a_list_with_a_count_is_read_only_that_far(image_server, list_server, tmp_path):
    url = list_server.serve("/pages/counted.txt", txt_list(image_server, 30))
    out = tmp_path / "out"
    answer = count_lists(request({1: UrlList(url=url)}, out.as_uri(), page_size=5, limits={1: 7}), settings(tmp_path))
    assert answer == ListCounts(counts={1: 7})
    assert sorted(pages_on_disk(out)) == [page_name(source_pages(ROOT, 1), p) for p in range(2)]


def test_a_retried_list_job_writes_identical_pages(image_server, list_server, tmp_path):
    url = list_server.serve("/pages/retried.txt", txt_list(image_server, 13))
    out = tmp_path / "out"
    first = count_lists(request({0: UrlList(url=url)}, out.as_uri(), page_size=5), settings(tmp_path))
    written = pages_on_disk(out)
    again = count_lists(request({0: UrlList(url=url)}, out.as_uri(), page_size=5), settings(tmp_path))
    other = tmp_path / "other"
    elsewhere = count_lists(request({0: UrlList(url=url)}, other.as_uri(), page_size=5), settings(tmp_path))
    assert first == again == elsewhere == ListCounts(counts={0: 13}) and len(written) == 3
    assert pages_on_disk(out) == written == pages_on_disk(other)


def test_an_unreadable_list_answers_the_error_naming_the_source(list_server, tmp_path):
    answer = count_lists(request({3: UrlList(url=list_server.serve("/pages/gone.txt", b"x").replace(
        "gone", "missing"))}, (tmp_path / "out").as_uri(), page_size=5), settings(tmp_path))
    assert not answer.permanent and answer.error.startswith("spec.sources[3].urlList.url:")


def test_an_output_that_cannot_be_written_is_an_answer_not_a_crash(image_server, list_server, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    url = list_server.serve("/pages/blocked.txt", txt_list(image_server, 3))
    answer = count_lists(request({0: UrlList(url=url)}, (blocker / "out").as_uri(), page_size=5), settings(tmp_path))
    assert not answer.permanent and answer.counts == {} and answer.error.startswith("output file://")


def test_pages_on_azurite_are_written_read_and_removed(image_server, list_server, fetcher, azure_container,
                                                      tmp_path):
    url = list_server.serve("/pages/azure.txt", txt_list(image_server, 9))
    output = f"azure://{azure_container}/jobs/pets"
    assert count_lists(request({0: UrlList(url=url)}, output, page_size=4), settings(tmp_path)) == \
        ListCounts(counts={0: 9})
    local = tmp_path / "local"
    count_lists(request({0: UrlList(url=url)}, local.as_uri(), page_size=4), settings(tmp_path))
    with BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"]) as service:
        container = service.get_container_client(azure_container)
        blobs = {name.removeprefix("jobs/pets/"): container.download_blob(name).readall()
                 for name in container.list_blob_names(name_starts_with="jobs/pets/")}
    assert blobs == pages_on_disk(local)
    requests = list_server.requests["/pages/azure.txt"]
    storage = open_storage(output)
    with contextlib.closing(storage):
        got = list(resolve_items(chunk([paged(url, "txt", 0, 2, 4, page_size=4)]), fetcher, storage=storage))
        assert [item.url for item in got] == [image_server.url("/img/2.jpg"), f"{url}#L5",
                                              image_server.url("/img/4.jpg"), image_server.url("/img/5.jpg")]
        assert list(storage.list()) == []  # never listed: nothing a dataset reader would see
        assert storage.delete_tree(ROOT) == 3
        assert storage.delete_tree(ROOT) == 0
    assert list_server.requests["/pages/azure.txt"] == requests


def test_finalize_removes_the_jobs_pages_and_a_rerun_finds_none(image_server, list_server, tmp_path):
    url = list_server.serve("/pages/final.txt", txt_list(image_server, 6))
    out = tmp_path / "out"
    count_lists(request({0: UrlList(url=url)}, out.as_uri(), page_size=4), settings(tmp_path))
    other_job = list_pages_root("another-uid")
    (out / other_job).mkdir(parents=True)
    (out / other_job / "page-000000.jsonl").write_bytes(b"")
    storage = open_storage(out.as_uri())
    with contextlib.closing(storage):
        storage.put_manifest(manifest_name(0), b"")
        spec = FinalizeSpec(job="default/pets", list_pages=ROOT)
        summary = finalize(storage, spec, out.as_uri(), str(tmp_path))
        assert not (out / ROOT).exists() and (out / other_job / "page-000000.jsonl").exists()
        assert not any(".pixcrawler" in name for name in summary.outputs)
        for name in ("index.jsonl", "README.md", "report.html"):
            assert ".pixcrawler" not in (out / name).read_text() and "page-0" not in (out / name).read_text()
        again = finalize(storage, spec, out.as_uri(), str(tmp_path))
    assert again.outputs == summary.outputs and not (out / ROOT).exists()


def run_worker(spec: dict, out: Path) -> subprocess.CompletedProcess:
    path = out.parent / "chunk.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return subprocess.run([sys.executable, "-m", "chunk_worker", "run", "--spec", str(path), "--output", out.as_uri(),
                           "--allow-network", "127.0.0.1/32", "--progress", "none", "--log-format", "text"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_a_chunk_whose_page_is_missing_fails_to_be_retried_naming_the_page(tmp_path):
    spec = {"job": "default/pets", "chunk": 0, "sources": [paged("https://lists.example/a.txt", "txt", 0, 3, 4, 4)]}
    result = run_worker(spec, tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert page_name(source_pages(ROOT, 0), 0) in result.stderr


def test_a_worker_run_from_pages_writes_the_manifest_a_streamed_run_writes(image_server, list_server, tmp_path):
    body = txt_list(image_server, 10)
    url = list_server.serve("/pages/run.txt", body)
    streamed_out, paged_out = tmp_path / "streamed" / "out", tmp_path / "paged" / "out"
    slice_ = {"label": "cat", "urlList": {"url": url}, "start": 2, "count": 7}
    validation = {"minWidth": 32, "minHeight": 32, "dedup": "exact"}
    assert run_worker({"job": "default/pets", "chunk": 0, "sources": [slice_], "validation": validation},
                      streamed_out).returncode == 0
    count_lists(request({0: UrlList(url=url)}, paged_out.as_uri(), page_size=5), settings(tmp_path))
    del list_server.bodies["/pages/run.txt"]
    requests = list_server.requests["/pages/run.txt"]
    result = run_worker({"job": "default/pets", "chunk": 0, "validation": validation,
                         "sources": [{**slice_, "pages": source_pages(ROOT, 0), "pageSize": 5}]}, paged_out)
    assert result.returncode == 0, result.stderr
    assert list_server.requests["/pages/run.txt"] == requests
    manifest = [json.loads(line) for line in (paged_out / manifest_name(0)).read_text().splitlines()]
    assert manifest == [json.loads(line) for line in (streamed_out / manifest_name(0)).read_text().splitlines()]
    assert [line["reason"] for line in manifest if line["status"] == "rejected"] == ["bad_list_line"] * 2
