"""Pure HTTP decisions: Retry-After, backoff, query encoding and body codings."""

import random
from email.utils import formatdate

import pytest

from chunk_worker.httprules import backoff_delay, body_codings, parse_retry_after, with_query


def test_retry_after_in_seconds():
    assert parse_retry_after("7") == 7.0


def test_retry_after_as_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)


def test_retry_after_date_in_the_past_means_now():
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e9x"])
def test_unreadable_retry_after_is_ignored(value):
    assert parse_retry_after(value) is None


def test_backoff_uses_retry_after_when_given():
    assert backoff_delay(1, 4.0, random.Random(1)) == 4.0


def test_backoff_grows_with_attempts_and_is_jittered():
    rng = random.Random(7)
    first = [backoff_delay(1, None, rng) for _ in range(20)]
    third = [backoff_delay(3, None, rng) for _ in range(20)]
    assert max(first) <= 0.25 < min(third) * 2
    assert len(set(first)) > 1


def test_backoff_is_capped():
    assert backoff_delay(30, None, random.Random(1), cap=8.0) <= 8.0


def test_query_parameters_are_encoded_and_appended():
    url = with_query("https://api.example.org/v1/images/?mature=false", {"q": "red fox", "page": 2, "skip": None})
    assert url == "https://api.example.org/v1/images/?mature=false&q=red+fox&page=2"


def test_a_list_parameter_repeats_its_key():
    assert with_query("http://example.org/s", {"tag": ["a", "b&c"]}) == "http://example.org/s?tag=a&tag=b%26c"


def test_no_parameters_leave_the_url_alone():
    assert with_query("http://example.org/s?x=1#top", None) == "http://example.org/s?x=1#top"


@pytest.mark.parametrize(("headers", "codings"), [
    ({}, []),
    ({"Content-Encoding": "identity"}, []),
    ({"Content-Encoding": " Identity , "}, []),
    ({"Content-Encoding": "GZIP"}, ["gzip"]),
    ({"Content-Encoding": "gzip, br"}, ["gzip", "br"]),
    ({"Transfer-Encoding": "chunked"}, []),
    ({"Transfer-Encoding": "gzip, chunked"}, ["gzip"]),
])
def test_body_codings_names_every_coding_but_identity(headers, codings):
    assert body_codings(headers) == codings
