"""The per-chunk cache of each origin's files, given the files directly (no network: the fetching
itself is tested against a real server in tests/integration/chunk_worker/test_sitefiles.py)."""

from chunk_worker.contract import Respect
from chunk_worker.sitefiles import SiteFile, SiteFiles, OriginCache

FILES = {
    "http://a.test:80/robots.txt": SiteFile(200, b"User-agent: *\nDisallow: /private/\n"),
    "http://a.test:80/.well-known/tdmrep.json": SiteFile(200, b'[{"location": "/tdm/", "tdm-reservation": 1}]'),
}


def served(asked: list[str]):
    def fetch(url: str, cap: int) -> SiteFile:
        asked.append(url)
        return FILES.get(url, SiteFile(404))
    return fetch


def test_each_origin_s_files_are_asked_for_once():
    asked: list[str] = []
    sites = SiteFiles(served(asked), Respect(), "pixcrawler")
    assert sites.before_request("http://a.test/private/1.jpg").reason == "robots_txt_disallowed"
    assert sites.before_request("http://a.test/tdm/2.jpg") is None
    assert sites.after_headers("http://a.test/tdm/2.jpg", {}).reason == "tdm_reserved"
    assert sites.before_request("http://b.test/private/1.jpg") is None  # b.test has no robots.txt
    assert sorted(asked) == ["http://a.test:80/.well-known/tdmrep.json", "http://a.test:80/robots.txt",
                             "http://b.test:80/.well-known/tdmrep.json", "http://b.test:80/robots.txt"]


def test_signals_not_respected_fetch_nothing():
    asked: list[str] = []
    sites = SiteFiles(served(asked), Respect(robots_txt=False, tdm_rep=False), "pixcrawler")
    assert sites.before_request("http://a.test/private/1.jpg") is None
    assert sites.after_headers("http://a.test/tdm/1.jpg", {"X-Robots-Tag": "noai"}).reason == "opt_out"
    assert asked == []


def test_the_least_recently_asked_origin_is_dropped_past_the_capacity():
    loads: list[str] = []
    cache = OriginCache(lambda origin: loads.append(origin) or origin.upper(), capacity=2)
    assert [cache.get(o) for o in ("a", "b", "a", "c", "a", "b")] == ["A", "B", "A", "C", "A", "B"]
    assert loads == ["a", "b", "c", "b"]  # b was dropped when c came, a was asked again just before
