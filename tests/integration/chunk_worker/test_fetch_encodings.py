"""Bodies are taken as they came over the wire: no content coding is ever undone, and a lying
Content-Length never yields a wrong body as a good one (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import io
import json

import imageserver
import pytest
import urllib3

from chunk_worker.errors import SpecError
from chunk_worker.contract import Validation
from chunk_worker.validate import Rejected, validate
from tests.fixtures.worker_cli import ALLOW, manifest, run_worker, write_spec

ENCODED = [coding for coding in imageserver.CODINGS if coding != "identity"]
PNG = imageserver.make_image(1, "PNG")


@pytest.mark.parametrize("coding", ENCODED)
def test_a_body_in_any_coding_is_refused_with_its_reason(fetcher, image_server, coding):
    result = fetcher.fetch(image_server.url(f"/encoded/{coding}.png"))
    assert (result.ok, result.data, result.reason) == (False, None, "encoded_body")


def test_an_identity_coding_is_accepted_as_is(fetcher, image_server):
    result = fetcher.fetch(image_server.url("/encoded/identity.png"))
    assert result.ok and result.data == PNG


@pytest.mark.parametrize(("coding", "header"), [("gzip", "gzip"), ("deflate", "deflate"), ("br", "br"),
                                              ("zstd", "zstd"), ("gzip-gzip", "gzip, gzip")])
def test_urllib3_would_inflate_each_refused_body_into_the_image(coding, header):
    """The fixture's bodies are real codings urllib3 can undo (br and zstd too): refusing them is the point."""
    body = imageserver.encode_body(imageserver.encode_body(PNG, "gzip"), "gzip") if coding == "gzip-gzip" \
        else imageserver.encode_body(PNG, coding)
    response = urllib3.HTTPResponse(io.BytesIO(body), headers={"Content-Encoding": header}, decode_content=True)
    assert body != PNG and response.data == PNG


def test_a_list_in_a_coding_is_refused_as_a_spec_problem(fetcher, image_server):
    with pytest.raises(SpecError, match="encoded_body"):
        list(fetcher.open_lines(image_server.url("/encoded/gzip.png")))


def test_a_json_answer_in_a_coding_is_refused_as_a_spec_problem(fetcher, image_server):
    with pytest.raises(SpecError, match="gzip, gzip-encoded"):
        fetcher.get_json(image_server.url("/encoded/gzip-gzip.png"))


def test_a_content_length_longer_than_the_body_is_a_failed_download(fetcher, image_server):
    result = fetcher.fetch(image_server.url("/length/longer.png"))
    assert (result.ok, result.data, result.reason) == (False, None, "connection_error")


def test_a_content_length_shorter_than_the_body_gives_only_the_declared_bytes(fetcher, image_server):
    """HTTP cannot tell the rest from garbage on the connection: the declared prefix is what we got,
    and validation (which decodes fully) is what refuses it."""
    result = fetcher.fetch(image_server.url("/length/shorter.png"))
    assert result.data == PNG[:len(PNG) // 2]
    with pytest.raises(Rejected) as refused:
        validate(result.data, Validation())
    assert refused.value.reason == "truncated"


def test_the_rest_of_a_short_declared_body_never_reaches_the_next_fetch(fetcher, image_server):
    fetcher.fetch(image_server.url("/length/shorter.png"))
    for n in range(3):
        assert fetcher.fetch(image_server.url(f"/img/{n + 2}.png")).data == imageserver.make_image(n + 2, "PNG")


def test_no_coding_or_lying_length_is_ever_stored_as_ok(image_server, tmp_path):
    paths = [f"/encoded/{coding}.png" for coding in ENCODED] + ["/length/longer.png", "/length/shorter.png"]
    items = [{"url": image_server.url(path)} for path in paths] + [{"url": image_server.url("/img/7.png")}]
    out = tmp_path / "out"
    result = run_worker("--spec", str(write_spec(tmp_path, items)), "--output", out.as_uri(), *ALLOW)
    assert result.returncode == 0, result.stderr
    lines = manifest(out)
    outcomes = [(line["status"], line["reason"]) for line in lines[:-1]]
    assert outcomes == [("rejected", "encoded_body")] * len(ENCODED) + [("failed", "connection_error"),
                                                                         ("rejected", "truncated")]
    assert lines[-1]["status"] == "ok"
    stored = [path for path in out.rglob("*") if path.is_file() and "manifests" not in path.parts]
    assert [path.name for path in stored] == [lines[-1]["blob"].rsplit("/", 1)[-1]]
    assert json.loads(result.stdout)["counts"]["uploaded"] == 1


def test_a_url_list_in_a_coding_ends_the_chunk_as_unusable_naming_why(image_server, tmp_path):
    spec = write_spec(tmp_path, [], sources=[{"url_list": {"url": image_server.url("/encoded/gzip.png")}, "count": 5}])
    result = run_worker("--spec", str(spec), "--output", (tmp_path / "out").as_uri(), *ALLOW)
    assert result.returncode == 2
    assert "gzip-encoded (encoded_body)" in result.stderr
