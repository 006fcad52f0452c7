"""Credentials in a URL never reach what the worker writes down."""

import pytest

from chunk_worker.redaction import redact_url


@pytest.mark.parametrize(("url", "redacted"), [
    ("https://user:secret@example.org/a.jpg", "https://example.org/a.jpg"),
    ("https://token@example.org:8443/a.jpg?x=1", "https://example.org:8443/a.jpg?x=1"),
    ("http://a:b@c@example.org/", "http://example.org/"),  # an unescaped @ in the password
    ("HTTP://u:p@[::1]:80/x", "HTTP://[::1]:80/x"),
    ("http://u:p@[::1/x", "http://[::1/x"),  # too malformed to parse, still redacted
    ("//u:p@example.org/x", "//example.org/x"),
])
def test_userinfo_is_removed(url, redacted):
    assert redact_url(url) == redacted


@pytest.mark.parametrize("url", [
    "https://example.org/a.jpg",
    "https://medium.com/@someone/photo.jpg",  # an @ in the path is not userinfo
    "https://example.org/a.jpg?mail=a@b.org#c@d",
    "not a url at all",
])
def test_urls_without_userinfo_are_unchanged(url):
    assert redact_url(url) == url
