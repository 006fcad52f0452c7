"""Opt-out decisions without I/O: X-Robots-Tag, robots.txt (through protego) and TDMRep."""

import json

import pytest

from chunk_worker.contract import OptOut, Respect
from chunk_worker.optouts import (Robots, TdmRepInvalid, TdmRule, origin_of, parse_tdmrep, response_refusal,
                                  robots_from_response, robots_refusal, robots_text, tdm_refusal, tdm_reservation,
                                  tdmrep_from_response, tdmrep_rule_for, x_robots_tag_refusal)

ROBOTS = """\
User-agent: *
Disallow: /private/
Allow: /private/shared/

User-agent: pixcrawler
Disallow: /no-ai/
Disallow: /no-ai/deeper/
Disallow: /*.gif$
"""


@pytest.mark.parametrize(
    "value",
    ["noai", "NoImageAI", "noindex, noai", "pixcrawler: noai", "otherbot: noimageai", "noarchive,noai"],
)
def test_x_robots_tag_noai_opts_out_and_records_the_header(value):
    refusal = x_robots_tag_refusal(value)
    assert refusal is not None and refusal.reason == "opt_out"
    assert refusal.record == OptOut(signal="x-robots-tag", value=value)


@pytest.mark.parametrize("value", [None, "", "noindex", "nofollow, noarchive", "unavailable_after: 25 Jun 2010", "noaix"])
def test_x_robots_tag_without_noai_does_not_opt_out(value):
    assert x_robots_tag_refusal(value) is None


def test_robots_txt_group_naming_the_token_decides_and_the_disallow_line_is_recorded():
    robots = Robots(text=ROBOTS)
    refusal = robots_refusal(robots, "http://site.test/no-ai/deeper/cat.jpg", "pixcrawler")
    assert refusal is not None and refusal.reason == "robots_txt_disallowed"
    assert refusal.record == OptOut(signal="robots.txt", value="Disallow: /no-ai/deeper/", agent="pixcrawler")


def test_robots_txt_allows_what_its_group_does_not_disallow():
    robots = Robots(text=ROBOTS)
    # The pixcrawler group replaces the * group for pixcrawler: /private/ is not in it.
    assert robots_refusal(robots, "http://site.test/private/cat.jpg", "pixcrawler") is None
    assert robots_refusal(robots, "http://site.test/cat.gif?x=1", "pixcrawler") is None
    assert robots_refusal(robots, "http://site.test/cat.gif", "pixcrawler").reason == "robots_txt_disallowed"


def test_another_token_reads_the_star_group_where_allow_beats_a_shorter_disallow():
    robots = Robots(text=ROBOTS)
    assert robots_refusal(robots, "http://site.test/private/cat.jpg", "otherbot").record.value == "Disallow: /private/"
    assert robots_refusal(robots, "http://site.test/private/shared/cat.jpg", "otherbot") is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_robots_txt_4xx_allows_everything(status):
    robots = robots_from_response(status, b"User-agent: *\nDisallow: /\n")
    assert robots_refusal(robots, "http://site.test/a.jpg", "pixcrawler") is None


@pytest.mark.parametrize(("status", "failure", "redirected", "said", "reason"), [
    (500, None, False, "http_500", "robots_txt_unreachable"), (503, None, False, "http_503", "robots_txt_unreachable"),
    (429, None, False, "http_429", "robots_txt_unreachable"),
    (None, "blocked_address", True, "blocked_address", "robots_txt_unreachable"),
    (None, "timeout", True, "timeout", "robots_txt_unreachable"),
    (None, "too_many_redirects", True, "too_many_redirects", "robots_txt_unreachable"),
    (200, "timeout", False, "http_200: timeout", "robots_txt_unreachable"),
    # The origin itself failing: the item's reason is what fetching the image would have given.
    (None, "timeout", False, "timeout", "timeout"),
    (None, "connection_error", False, "connection_error", "connection_error"),
    (None, "blocked_address", False, "blocked_address", "blocked_address"),
])
def test_robots_txt_unreachable_disallows_everything(status, failure, redirected, said, reason):
    robots = robots_from_response(status, None, failure=failure, redirected=redirected)
    refusal = robots_refusal(robots, "http://site.test/a.jpg", "pixcrawler")
    assert refusal.reason == reason
    assert refusal.record == OptOut(signal="robots.txt", value=f"unreachable ({said})", agent="pixcrawler")


def test_a_capped_robots_txt_loses_its_partial_last_line_only():
    body = b"User-agent: *\nDisallow: /a/\nDisallow: /b"  # cut inside the last line: "/b" could be "/bc/"
    text = robots_text(body, truncated=True)
    assert text == "User-agent: *\nDisallow: /a/"
    robots = robots_from_response(200, body, truncated=True)
    assert robots_refusal(robots, "http://site.test/a/x.jpg", "pixcrawler") is not None
    assert robots_refusal(robots, "http://site.test/b.jpg", "pixcrawler") is None


def test_a_refusal_is_attributed_to_the_longest_matching_disallow_pattern_protego_matches():
    robots = Robots(text="User-agent: *\nDisallow: /a\nDisallow: /a/*.jpg$\nDisallow: /a/b%20c/\n")
    assert robots_refusal(robots, "http://site.test/a/b%20c/x.png", "bot").record.value == "Disallow: /a/b%20c/"
    assert robots_refusal(robots, "http://site.test/a/x.jpg", "bot").record.value == "Disallow: /a/*.jpg$"
    assert robots_refusal(robots, "http://site.test/a/x.jpg?s=1", "bot").record.value == "Disallow: /a"


def test_a_robots_txt_that_is_not_utf8_or_not_rules_allows_everything():
    robots = robots_from_response(200, b"\xff\xfe<html>\x00 no rules here")
    assert robots_refusal(robots, "http://site.test/a.jpg", "pixcrawler") is None


@pytest.mark.parametrize(("value", "expected"), [
    ("1", 1), (" 0 ", 0), (1, 1), (0, 0), ("2", None), ("yes", None), (True, None), (None, None), ("", None),
])
def test_tdm_reservation_values_other_than_0_and_1_are_unset(value, expected):
    assert tdm_reservation(value) == expected


TDMREP = [
    {"location": "/directory-a/", "tdm-reservation": 1},
    {"location": "/directory-b/images/*.jpg", "tdm-reservation": 0},
    {"location": "/directory-b/", "tdm-reservation": 1, "tdm-policy": "https://site.test/policies/policy.json"},
    {"location": "/odd/", "tdm-reservation": "maybe"},
    {"location": "/", "tdm-reservation": 1},
]


def test_tdmrep_first_matching_rule_applies():
    rules = parse_tdmrep(json.dumps(TDMREP).encode())
    assert tdmrep_rule_for(rules, "http://site.test/directory-b/images/cat.jpg").reservation == 0
    assert tdmrep_rule_for(rules, "http://site.test/directory-b/images/cat.png").location == "/directory-b/"
    assert tdmrep_rule_for(rules, "http://site.test/elsewhere.jpg").location == "/"


def test_tdmrep_reservation_refuses_and_records_the_rule_and_its_policy():
    rules = parse_tdmrep(json.dumps(TDMREP).encode())
    refusal = tdm_refusal({}, tdmrep_rule_for(rules, "http://site.test/directory-b/page.html"))
    assert refusal.reason == "tdm_reserved"
    assert refusal.record == OptOut(signal="tdmrep.json", value="/directory-b/: tdm-reservation 1",
                                    policy="https://site.test/policies/policy.json")


def test_a_tdmrep_rule_with_a_bad_value_is_unset_and_still_shadows_later_rules():
    rules = parse_tdmrep(json.dumps(TDMREP).encode())
    rule = tdmrep_rule_for(rules, "http://site.test/odd/cat.jpg")
    assert rule.location == "/odd/" and rule.reservation is None
    assert tdm_refusal({}, rule) is None


def test_tdm_reservation_header_supersedes_the_file():
    reserved_by_file = TdmRule("/", 1)
    assert tdm_refusal({"tdm-reservation": "0"}, reserved_by_file) is None
    refusal = tdm_refusal({"tdm-reservation": "1", "tdm-policy": "https://site.test/p.json"}, TdmRule("/", 0))
    assert refusal.record == OptOut(signal="tdm-reservation", value="1", policy="https://site.test/p.json")


def test_recorded_site_texts_are_bounded_and_policy_credentials_dropped():
    refusal = tdm_refusal({"tdm-reservation": "1", "tdm-policy": "https://user:secret@site.test/p.json"}, None)
    assert refusal.record.policy == "https://site.test/p.json"
    huge = x_robots_tag_refusal("noai, " + "x" * 60_000)
    assert len(huge.record.value) == 512 + len("...") and huge.record.value.startswith("noai, x")


def test_a_bad_tdm_reservation_header_falls_back_to_the_file():
    assert tdm_refusal({"tdm-reservation": "2"}, TdmRule("/", 1)).record.signal == "tdmrep.json"
    assert tdm_refusal({"tdm-reservation": "2"}, None) is None


@pytest.mark.parametrize(("body", "problem"), [
    (b"{\"location\": \"/\", \"tdm-reservation\": 1}", "array"),
    (b"[{\"location\": \"/\", ", "JSON"),
    (b"\xff\xfe[]", "UTF-8"),
    (b"", "JSON"),
])
def test_an_invalid_tdmrep_json_is_refused_with_what_is_wrong(body, problem):
    with pytest.raises(TdmRepInvalid, match=problem):
        parse_tdmrep(body)


def test_tdmrep_entries_without_a_usable_location_are_left_out():
    body = json.dumps([1, "x", {"tdm-reservation": 1}, {"location": 5, "tdm-reservation": 1},
                       {"location": "/a\nDisallow: /", "tdm-reservation": 1}, {"location": "/b/", "tdm-reservation": 1}])
    assert parse_tdmrep(body.encode()) == [TdmRule("/b/", 1)]


@pytest.mark.parametrize(("status", "failure"), [(404, None), (500, None), (None, "timeout"), (200, "encoded_body")])
def test_no_tdmrep_file_means_the_origin_does_not_implement_tdmrep(status, failure):
    assert tdmrep_from_response(status, b'[{"location": "/", "tdm-reservation": 1}]', failure) == []


def test_response_refusal_checks_only_what_the_job_respects():
    headers = {"X-Robots-Tag": "noai", "tdm-reservation": "1"}
    assert response_refusal(headers, Respect(), None).record.signal == "x-robots-tag"
    assert response_refusal(headers, Respect(x_robots_tag=False), None).record.signal == "tdm-reservation"
    assert response_refusal(headers, Respect(x_robots_tag=False, tdm_rep=False), None) is None


@pytest.mark.parametrize(("url", "origin"), [
    ("http://Site.Test/a/b.jpg?x", "http://site.test:80"),
    ("https://site.test:8443/a", "https://site.test:8443"),
    ("https://user:pw@site.test/a", "https://site.test:443"),
    ("http://[::1]:8080/a", "http://[::1]:8080"),
])
def test_origin_is_scheme_host_and_port(url, origin):
    assert origin_of(url) == origin
