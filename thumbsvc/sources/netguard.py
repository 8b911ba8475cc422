"""Classify IP addresses: may the HTTP loader connect to this one?

Pure functions over ``ipaddress`` values, no I/O. An address is acceptable when it
is globally routable unicast, or when it lies inside a network the operator opted
in to (``THUMBSVC_ALLOW_PRIVATE_NETWORKS``). Addresses that carry an IPv4 address
inside IPv6 (IPv4-mapped, 6to4, NAT64, Teredo) are judged by the IPv4 address
they lead to; deprecated embeddings that nothing routes (IPv4-compatible,
local-use NAT64) are refused outright.

The tables follow the IANA special-purpose address registries. They are written
out here rather than taken from ``ipaddress.is_global``, whose answers have
changed between Python patch releases.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_V4_SPECIAL: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(cidr), reason)
    for cidr, reason in (
        ("0.0.0.0/8", "unspecified"),  # "this network"; 0.0.0.0 reaches the local host on Linux
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "cgnat"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # cloud metadata lives at 169.254.169.254
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments (DS-Lite, NAT64 discovery, ...)
        ("192.0.2.0/24", "reserved"),  # documentation
        ("192.88.99.0/24", "reserved"),  # deprecated 6to4 relay anycast
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),  # benchmarking
        ("198.51.100.0/24", "reserved"),  # documentation
        ("203.0.113.0/24", "reserved"),  # documentation
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes the limited broadcast 255.255.255.255
    )
)

_V6_UNSPECIFIED = IPv6Address("::")
_V6_LOOPBACK = IPv6Address("::1")
_V6_MAPPED = IPv6Network("::ffff:0:0/96")
_V6_COMPATIBLE = IPv6Network("::/96")
_V6_NAT64 = IPv6Network("64:ff9b::/96")
_V6_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")
_V6_6TO4 = IPv6Network("2002::/16")
_V6_TEREDO = IPv6Network("2001::/32")
_V6_GLOBAL_UNICAST = IPv6Network("2000::/3")

_V6_SPECIAL: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(cidr), reason)
    for cidr, reason in (
        ("fe80::/10", "link-local"),
        ("fc00::/7", "private"),  # unique local addresses
        ("fec0::/10", "reserved"),  # deprecated site-local
        ("ff00::/8", "multicast"),
        ("100::/64", "reserved"),  # discard-only
        ("2001::/23", "reserved"),  # IETF protocol assignments: benchmarking, ORCHID, ...
        ("2001:db8::/32", "reserved"),  # documentation
        ("3fff::/20", "reserved"),  # documentation
    )
)


def classify(address: IPAddress) -> str | None:
    """Given an address, return why it is not globally routable, or None if it is.

    Reasons are short words: ``loopback``, ``private``, ``link-local``, ``cgnat``,
    ``multicast``, ``unspecified``, ``reserved``, or for IPv6 with an IPv4 inside,
    e.g. ``ipv4-mapped loopback``, ``6to4 private``, ``ipv4-compatible``.
    """
    if isinstance(address, IPv4Address):
        return _classify_v4(address)
    return _classify_v6(address)


def _classify_v4(address: IPv4Address) -> str | None:
    for network, reason in _V4_SPECIAL:
        if address in network:
            return reason
    return None


def _classify_v6(address: IPv6Address) -> str | None:
    if address == _V6_UNSPECIFIED:
        return "unspecified"
    if address == _V6_LOOPBACK:
        return "loopback"
    embedded = embedded_ipv4(address)
    if address in _V6_MAPPED:
        return _prefixed("ipv4-mapped", embedded)
    if address in _V6_COMPATIBLE:
        # Deprecated (RFC 4291); some stacks still send these over IPv4.
        return "ipv4-compatible"
    if address in _V6_NAT64:
        return _prefixed("nat64", embedded)
    if address in _V6_NAT64_LOCAL:
        return "nat64-local"
    if address in _V6_6TO4:
        return _prefixed("6to4", embedded)
    if address in _V6_TEREDO:
        teredo = address.teredo
        assert teredo is not None
        server, client = teredo
        return _prefixed("teredo", server) or _prefixed("teredo", client)
    for network, reason in _V6_SPECIAL:
        if address in network:
            return reason
    if address not in _V6_GLOBAL_UNICAST:
        return "reserved"
    return None


def _prefixed(kind: str, embedded: IPv4Address | None) -> str | None:
    assert embedded is not None
    reason = _classify_v4(embedded)
    return None if reason is None else f"{kind} {reason}"


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """Given an IPv6 address, return the IPv4 address it carries, if it is of a form that carries one.

    Teredo addresses carry two (server and client); this returns the client.
    """
    if address in _V6_MAPPED or address in _V6_COMPATIBLE or address in _V6_NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _V6_6TO4:
        return IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    if address in _V6_TEREDO:
        teredo = address.teredo
        assert teredo is not None
        return teredo[1]
    return None


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Given CIDR strings (``10.0.0.0/8``, ``fd00::/8``, ``127.0.0.2``), return networks; raise ValueError."""
    return tuple(ip_network(cidr.strip(), strict=False) for cidr in cidrs)


class AddressGuard:
    """Decide whether an address may be connected to, given the operator's opt-in networks."""

    def __init__(self, allowed_networks: Iterable[IPNetwork] = ()) -> None:
        self.allowed_networks = tuple(allowed_networks)

    def is_opted_in(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            # A mapped address reaches the same IPv4 host: honour an IPv4 opt-in for it.
            candidates.append(address.ipv4_mapped)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.allowed_networks
        )

    def refusal(self, address: IPAddress | str) -> str | None:
        """Given an address, return why connecting to it is refused, or None if it is allowed."""
        if isinstance(address, str):
            address = ip_address(address)
        if self.is_opted_in(address):
            return None
        return classify(address)
