"""The address policy: what a worker may reach, decided without any I/O."""

import ipaddress

import pytest

from chunk_worker.contract import Reason
from chunk_worker.netpolicy import BlockedAddress, BlockedURL, NetworkPolicy, numeric_host

BLOCKED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # IMDS
    "169.254.1.1",
    "168.63.129.16",  # Azure wire server
    "100.64.0.1",  # CGNAT
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.10",  # documentation
    "198.51.100.1",
    "203.0.113.7",
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",  # site-local
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.1.2.3",
    "::127.0.0.1",  # IPv4-compatible
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked(address):
    with pytest.raises(BlockedAddress) as caught:
        NetworkPolicy().check_address(address)
    assert caught.value.reason is Reason.BLOCKED_ADDRESS


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    NetworkPolicy().check_address(address)


def test_an_allowed_network_opens_exactly_that_network():
    policy = NetworkPolicy([ipaddress.ip_network("127.0.0.1/32")])
    policy.check_address("127.0.0.1")
    with pytest.raises(BlockedAddress):
        policy.check_address("127.0.0.2")


def test_an_allowed_ipv4_network_covers_its_mapped_ipv6_form():
    NetworkPolicy(["10.0.0.0/8"]).check_address("::ffff:10.1.2.3")


def test_allowing_a_network_does_not_open_metadata_service():
    policy = NetworkPolicy(["10.0.0.0/8"])
    with pytest.raises(BlockedAddress):
        policy.check_address("169.254.169.254")


@pytest.mark.parametrize("url", ["ftp://example.org/a.jpg", "file:///etc/passwd", "gopher://x/", "data:image/png;base64,AA"])
def test_non_http_schemes_are_refused(url):
    with pytest.raises(BlockedURL) as caught:
        NetworkPolicy().check_url(url)
    assert caught.value.reason is Reason.BLOCKED_SCHEME


@pytest.mark.parametrize("url", ["http://", "http://[::1", "http://example.org:99999/", "https:///a.jpg", "http://exa mple.org/"])
def test_malformed_urls_are_bad_urls(url):
    with pytest.raises(BlockedURL) as caught:
        NetworkPolicy().check_url(url)
    assert caught.value.reason is Reason.BAD_URL


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",  # decimal
        "http://0x7f.1/",  # hex + short form
        "http://017700000001/",  # octal
        "http://0x7f000001/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://[::ffff:7f00:1]/",
        "https://169.254.169.254/latest/meta-data",
    ],
)
def test_address_literals_in_urls_are_checked_before_any_lookup(url):
    with pytest.raises(BlockedAddress):
        NetworkPolicy().check_url(url)


def test_public_http_and_https_urls_pass():
    policy = NetworkPolicy()
    policy.check_url("https://example.org/cat.jpg?x=1")
    policy.check_url("HTTP://8.8.8.8:8080/a.png")


@pytest.mark.parametrize(
    ("host", "expected"),
    [("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("example.org", None), ("cafe", None)],
)
def test_numeric_host_reads_ipv4_shorthands_like_a_resolver(host, expected):
    result = numeric_host(host)
    assert (str(result) if result else None) == expected
