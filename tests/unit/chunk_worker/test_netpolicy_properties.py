"""Properties of the address policy over generated addresses: a non-public IPv4 address is refused
however it is written (plain, IPv4-mapped or -compatible IPv6, 6to4, NAT64, Teredo, numeric host
shorthands in a URL), and public addresses pass. The ranges below are the test's own reading of
the IANA special-purpose registries, not the module's."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunk_worker.netpolicy import BlockedAddress, NetworkPolicy

PROPERTIES = settings(max_examples=200, deadline=None, derandomize=True, database=None)
POLICY = NetworkPolicy()

NOT_PUBLIC_V4 = [ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "240.0.0.0/4", "168.63.129.16/32")]
UNCLEAR_V4 = [ipaddress.ip_network(net) for net in ("192.0.0.0/24", "192.88.99.0/24", "192.31.196.0/24",
                                                     "192.52.193.0/24", "192.175.48.0/24")]
"""Special-purpose, but global in the registry: neither side of the property claims them."""
NOT_PUBLIC_V6 = [ipaddress.ip_network(net) for net in (
    "::1/128", "::/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "2001:db8::/32", "100::/64")]
GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
SPECIAL_IN_GLOBAL_UNICAST = [ipaddress.ip_network(net)
                             for net in ("2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20")]


def addresses_in(network: ipaddress.IPv4Network | ipaddress.IPv6Network):
    cls = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
    first = int(network.network_address)
    return st.integers(first, first + network.num_addresses - 1).map(cls)


PRIVATE_V4 = st.sampled_from(NOT_PUBLIC_V4).flatmap(addresses_in)
PUBLIC_V4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address).filter(
    lambda ip: not any(ip in net for net in NOT_PUBLIC_V4 + UNCLEAR_V4))
PUBLIC_V6 = addresses_in(GLOBAL_UNICAST).filter(lambda ip: not any(ip in net for net in SPECIAL_IN_GLOBAL_UNICAST))
BITS_16 = st.integers(0, 2**16 - 1)
BITS_80 = st.integers(0, 2**80 - 1)


def v6(value: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(value)


def mapped(ip: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return v6(0xFFFF << 32 | int(ip))


def compatible(ip: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return v6(int(ip))


def sixtofour(ip: ipaddress.IPv4Address, rest: int) -> ipaddress.IPv6Address:
    return v6(0x2002 << 112 | int(ip) << 80 | rest)


def nat64(ip: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return v6(int(ipaddress.IPv6Address("64:ff9b::")) | int(ip))


def teredo(client: ipaddress.IPv4Address, server: ipaddress.IPv4Address, flags: int,
           port: int) -> ipaddress.IPv6Address:
    """RFC 4380: 2001:0000:<server>:<flags>:<port ^ 0xffff>:<client ^ 0xffffffff>."""
    return v6(0x20010000 << 96 | int(server) << 64 | flags << 48 | (port ^ 0xFFFF) << 32 | (int(client) ^ 0xFFFFFFFF))


@PROPERTIES
@given(PRIVATE_V4)
def test_a_non_public_ipv4_address_is_refused(ip):
    assert not POLICY.allowed(ip)


@PROPERTIES
@given(PRIVATE_V4, BITS_80, PUBLIC_V4, BITS_16, BITS_16)
def test_every_ipv6_form_of_a_non_public_ipv4_address_is_refused(ip, rest, server, flags, port):
    for form in (mapped(ip), compatible(ip), sixtofour(ip, rest), nat64(ip), teredo(ip, server, flags, port)):
        assert not POLICY.allowed(form), form


@PROPERTIES
@given(st.sampled_from(NOT_PUBLIC_V6).flatmap(addresses_in), st.sampled_from(["", "%eth0", "%1"]))
def test_a_non_public_ipv6_address_is_refused_with_or_without_a_zone(ip, zone):
    assert not POLICY.allowed(f"{ip}{zone}")


@PROPERTIES
@given(PUBLIC_V4)
def test_a_public_ipv4_address_passes_plain_and_mapped(ip):
    assert POLICY.allowed(ip) and POLICY.allowed(mapped(ip))


@PROPERTIES
@given(PUBLIC_V4, BITS_80)
def test_the_6to4_form_of_a_public_ipv4_address_passes(ip, rest):
    assert POLICY.allowed(sixtofour(ip, rest))


@PROPERTIES
@given(PUBLIC_V6)
def test_a_public_ipv6_address_passes(ip):
    assert POLICY.allowed(ip)


def spellings(ip: ipaddress.IPv4Address) -> list[str]:
    """Hosts a resolver reads as `ip`: dotted, one decimal, hex and octal numbers, mixed dotted
    forms, and IPv6 literals."""
    a, b, c, d = ip.packed
    value = int(ip)
    return [str(ip), str(value), hex(value), f"0{value:o}", f"0x{a:x}.{b}.{c}.{d}", f"0{a:o}.{b}.{c}.0x{d:x}",
            f"{a}.{b << 16 | c << 8 | d}", f"{a}.{b}.{c << 8 | d}", f"[{mapped(ip)}]", f"[::ffff:{ip}]"]


@PROPERTIES
@given(PRIVATE_V4, st.sampled_from(["http", "https", "HTTP"]), st.sampled_from(["", ":80", ":8443"]))
def test_a_url_naming_a_non_public_ipv4_address_in_any_spelling_is_refused(ip, scheme, port):
    for host in spellings(ip):
        with pytest.raises(BlockedAddress):
            POLICY.check_url(f"{scheme}://{host}{port}/a.jpg")
