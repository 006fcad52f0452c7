"""Opt-outs end to end through the fetcher, against a real local server serving robots.txt,
tdmrep.json and TDMRep headers (hostile ones too)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import imageserver
import pytest

from chunk_worker.contract import OptOut, Respect
from chunk_worker.fetch import Fetcher
from chunk_worker.netpolicy import NetworkPolicy
from chunk_worker.settings import WorkerSettings
from tests.fixtures.imageserver import LOOPBACK_ONLY, make_fetcher

ROBOTS = b"User-agent: *\nDisallow: /img/\nAllow: /img/2.jpg\n"
TDMREP = json.dumps([
    {"location": "/img/1.jpg$", "tdm-reservation": 1, "tdm-policy": "https://site.test/tdm-policy.json"},
    {"location": "/", "tdm-reservation": 0},
]).encode()


def fetcher_with(respect: Respect | None = None, **overrides: object) -> Fetcher:
    settings = WorkerSettings(**{"item_deadline_seconds": 10.0, **overrides})
    return Fetcher(NetworkPolicy(LOOPBACK_ONLY), settings, max_bytes=2 * 1024 * 1024, respect=respect)


def test_robots_txt_disallows_one_path_and_allows_another(site_server):
    server = site_server({"/robots.txt": ROBOTS})
    with make_fetcher() as fetcher:
        refused = fetcher.fetch(server.url("/img/1.jpg"))
        allowed = fetcher.fetch(server.url("/img/2.jpg"))
    assert (refused.ok, refused.reason) == (False, "robots_txt_disallowed")
    assert refused.opt_out == OptOut(signal="robots.txt", value="Disallow: /img/", agent="pixcrawler")
    assert server.hits("/img/1.jpg") == 0  # refused before any request for it
    assert allowed.ok and allowed.data == imageserver.make_image(2, "JPEG")
    assert server.hits("/robots.txt") == 1


def test_robots_txt_is_read_for_the_configured_product_token(site_server):
    server = site_server({"/robots.txt": b"User-agent: examplebot\nDisallow: /\n\nUser-agent: *\nDisallow:\n"})
    with make_fetcher(user_agent_token="examplebot") as fetcher:
        refused = fetcher.fetch(server.url("/img/1.jpg"))
    with make_fetcher() as fetcher:
        allowed = fetcher.fetch(server.url("/img/1.jpg"))
    assert refused.opt_out == OptOut(signal="robots.txt", value="Disallow: /", agent="examplebot")
    assert allowed.ok
    assert server.user_agents()[0].startswith("examplebot/")


def test_robots_txt_is_fetched_once_per_origin_however_many_items_ask_at_once(site_server):
    server = site_server({"/robots.txt": ROBOTS})
    with make_fetcher(fetch_threads=8) as fetcher, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: fetcher.fetch(server.url(f"/slow/{n}.jpg?delay=0.1")), range(8)))
    assert all(r.ok for r in results)
    assert server.hits("/robots.txt") == 1


def test_a_redirect_hop_is_checked_against_its_robots_txt_before_it_is_requested(site_server):
    server = site_server({"/robots.txt": ROBOTS})
    with make_fetcher() as fetcher:
        result = fetcher.fetch(server.url("/redirect-to?url=/img/1.jpg"))
    assert (result.reason, result.final_url) == ("robots_txt_disallowed", server.url("/img/1.jpg"))
    assert server.hits("/img/1.jpg") == 0


def test_a_robots_txt_server_error_disallows_the_origin(site_server):
    server = site_server({"/robots.txt": "/500"})
    with make_fetcher(fetch_attempts=1) as fetcher:
        result = fetcher.fetch(server.url("/img/1.jpg"))
    assert (result.ok, result.reason) == (False, "robots_txt_unreachable")
    assert result.opt_out == OptOut(signal="robots.txt", value="unreachable (http_500)", agent="pixcrawler")
    assert server.hits("/img/1.jpg") == 0


def test_a_missing_robots_txt_allows_everything(site_server):
    server = site_server({})
    with make_fetcher() as fetcher:
        assert fetcher.fetch(server.url("/img/1.jpg")).ok
    assert server.hits("/robots.txt") == 1


def test_a_huge_robots_txt_is_read_up_to_the_cap_and_the_rest_ignored(site_server):
    padding = b"# " + b"x" * (2 * 1024 * 1024) + b"\n"
    server = site_server({"/robots.txt": b"User-agent: *\nDisallow: /img/1.jpg\n" + padding + b"Disallow: /img/2.jpg\n"})
    with make_fetcher() as fetcher:
        first, second = fetcher.fetch(server.url("/img/1.jpg")), fetcher.fetch(server.url("/img/2.jpg"))
    assert first.reason == "robots_txt_disallowed"
    assert second.ok  # its rule lies past the first 500 KiB


def test_an_endless_robots_txt_costs_the_cap_not_the_stream(site_server):
    server = site_server({"/robots.txt": "/huge"})
    with make_fetcher() as fetcher:
        result = fetcher.fetch(server.url("/img/1.jpg"))
    assert result.ok  # 500 KiB of 0xff holds no rule
    assert server.bytes_sent("/robots.txt") < 64 * 1024 * 1024  # of the 1 GiB on offer


@pytest.mark.parametrize("route", ["/drip", "/drip-headers"])
def test_a_slow_robots_txt_is_cut_off_at_its_deadline_and_disallows(site_server, route):
    server = site_server({"/robots.txt": route})
    with make_fetcher(site_file_deadline_seconds=1.5) as fetcher:
        result = fetcher.fetch(server.url("/img/1.jpg"))
    assert not result.ok and result.opt_out.signal == "robots.txt" and "timeout" in result.opt_out.value
    assert server.hits("/img/1.jpg") == 0


def test_a_robots_txt_sent_encoded_though_identity_was_asked_disallows(site_server):
    server = site_server({"/robots.txt": "/encoded/gzip.png"})
    with make_fetcher() as fetcher:
        result = fetcher.fetch(server.url("/img/1.jpg"))
    assert (result.reason, result.opt_out.value) == ("robots_txt_unreachable", "unreachable (http_200: encoded_body)")


@pytest.mark.parametrize("route", ["/redirect-imds", "/redirect-loopback2"])
def test_a_robots_txt_redirecting_to_a_private_address_is_refused_and_disallows(site_server, route):
    server = site_server({"/robots.txt": route})
    with make_fetcher() as fetcher:
        result = fetcher.fetch(server.url("/img/1.jpg"))
    assert result.reason == "robots_txt_unreachable"
    assert result.opt_out.value == "unreachable (blocked_address)"


def test_a_tdm_reservation_header_refuses_the_image_and_records_its_policy(site_server):
    server = site_server({})
    with make_fetcher() as fetcher:
        reserved = fetcher.fetch(server.url("/tdm.jpg?reservation=1&policy=https://site.test/p.json"))
        free = fetcher.fetch(server.url("/tdm.jpg?reservation=0"))
    assert (reserved.ok, reserved.reason, reserved.data) == (False, "tdm_reserved", None)
    assert reserved.opt_out == OptOut(signal="tdm-reservation", value="1", policy="https://site.test/p.json")
    assert free.ok


def test_a_tdmrep_json_reservation_refuses_the_paths_it_names(site_server):
    server = site_server({"/.well-known/tdmrep.json": TDMREP})
    with make_fetcher() as fetcher:
        reserved, free = fetcher.fetch(server.url("/img/1.jpg")), fetcher.fetch(server.url("/img/2.jpg"))
        overridden = fetcher.fetch(server.url("/tdm.jpg?reservation=1"))
    assert reserved.reason == "tdm_reserved"
    assert reserved.opt_out == OptOut(signal="tdmrep.json", value="/img/1.jpg$: tdm-reservation 1",
                                      policy="https://site.test/tdm-policy.json")
    assert free.ok
    assert overridden.opt_out.signal == "tdm-reservation"  # the header supersedes the file's 0
    assert server.hits("/.well-known/tdmrep.json") == 1


@pytest.mark.parametrize("served", [b"{\"location\": \"/\", \"tdm-reservation\": 1}", b"[{\"location\": ", b"\xff\xfe",
                                    "/huge", "/drip"])
def test_an_invalid_or_hostile_tdmrep_json_is_ignored(site_server, served):
    server = site_server({"/.well-known/tdmrep.json": served})
    with make_fetcher(site_file_deadline_seconds=1.0) as fetcher:
        assert fetcher.fetch(server.url("/img/1.jpg")).ok


def test_signals_the_job_does_not_respect_are_never_fetched_or_applied(site_server):
    server = site_server({"/robots.txt": b"User-agent: *\nDisallow: /\n",
                          "/.well-known/tdmrep.json": b"[{\"location\": \"/\", \"tdm-reservation\": 1}]"})
    with fetcher_with(Respect(robots_txt=False, tdm_rep=False, x_robots_tag=False)) as fetcher:
        results = [fetcher.fetch(server.url(path)) for path in ("/img/1.jpg", "/optout.jpg", "/tdm.jpg?reservation=1")]
    assert all(r.ok for r in results)
    assert server.hits("/robots.txt") == server.hits("/.well-known/tdmrep.json") == 0
