"""Which addresses and URLs the fetcher may reach: only the public Internet, unless an operator widens it.

Pure decisions, no I/O: the fetcher resolves names itself and asks `check_address` about every
address before it connects, so a DNS answer can never steer a request into the cluster, the node
or the cloud's metadata service.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from chunk_worker.contract import Reason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

EXTRA_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"; 0.x.y.z reaches the local host on Linux
        "100.64.0.0/10",  # carrier-grade NAT
        "168.63.129.16/32",  # Azure wire server (is_global says public)
        "169.254.0.0/16",  # link-local, incl. IMDS 169.254.169.254
        "224.0.0.0/4",  # multicast (is_global says public)
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/96",  # deprecated IPv4-compatible IPv6
        "fec0::/10",  # deprecated site-local (is_global says public)
        "ff00::/8",  # multicast
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)
"""Ranges the stdlib's `is_global` does not (or not on every Python) treat as non-public."""

SIXTOFOUR = ipaddress.ip_network("2002::/16")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
TEREDO = ipaddress.ip_network("2001::/32")

_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")


class PolicyError(Exception):
    """A URL or address the fetcher refuses; `reason` is the manifest reason."""

    reason: Reason = Reason.BAD_URL

    def __init__(self, message: str, reason: Reason | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class BlockedAddress(PolicyError):
    reason = Reason.BLOCKED_ADDRESS


class BlockedURL(PolicyError):
    """Not http(s) (`blocked_scheme`) or not a URL at all (`bad_url`)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a translation or tunnelling form of IPv6 leads to, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in SIXTOFOUR:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in TEREDO and ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public Internet, including what an IPv6 form of it embeds."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip if ip.scope_id is None else ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in NAT64_LOCAL:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public(embedded):
            return False
    if not ip.is_global or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return False
    return not any(ip.version == net.version and ip in net for net in EXTRA_BLOCKED)


def numeric_host(host: str) -> IPAddress | None:
    """The address a host written as a number stands for: dotted, IPv6, or the decimal/octal/hex
    shorthands (2130706433, 0x7f.1, 017700000001) that resolvers accept as IPv4."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


class NetworkPolicy:
    """Public addresses pass; so does anything inside an explicitly allowed network."""

    def __init__(self, allow: Iterable[IPNetwork | str] = ()) -> None:
        self.allow: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(net) for net in allow)

    def allowed(self, ip: IPAddress | str) -> bool:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id is not None:
            addr = ipaddress.IPv6Address(str(addr).split("%", 1)[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr.version == net.version and addr in net for net in self.allow):
            return True
        return is_public(addr)

    def check_address(self, ip: IPAddress | str) -> None:
        if not self.allowed(ip):
            raise BlockedAddress(f"address {ip} is not public and not in an allowed network")

    def check_url(self, url: str) -> None:
        """Scheme and shape of a URL, plus its host when the host is an address literal."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BlockedURL(f"malformed URL {url!r}: {exc}", Reason.BAD_URL) from None
        if parts.scheme.lower() not in ("http", "https"):
            raise BlockedURL(f"scheme {parts.scheme!r} is not http or https", Reason.BLOCKED_SCHEME)
        host = parts.hostname
        if not host or any(ch.isspace() for ch in url) or port == 0:
            raise BlockedURL(f"malformed URL {url!r}", Reason.BAD_URL)
        literal = numeric_host(host)
        if literal is not None:
            self.check_address(literal)
