"""IP classification, as pure functions: nothing here opens a socket."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thumbsvc.sources.netguard import AddressGuard, classify, embedded_ipv4, parse_networks

FORBIDDEN = [
    # IPv4 special-purpose blocks
    ("0.0.0.0", "unspecified"),  # connects to the local host on Linux
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("100.64.0.1", "cgnat"),
    ("100.127.255.254", "cgnat"),
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("169.254.169.254", "link-local"),  # cloud metadata (AWS, GCP, Azure, OpenStack)
    ("169.254.170.2", "link-local"),  # ECS task metadata
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.170", "reserved"),  # NAT64 discovery
    ("192.0.2.1", "reserved"),
    ("192.88.99.1", "reserved"),
    ("192.168.1.1", "private"),
    ("198.18.0.1", "reserved"),
    ("198.51.100.7", "reserved"),
    ("203.0.113.9", "reserved"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fd00:ec2::254", "private"),  # AWS metadata over IPv6
    ("fc00::1", "private"),
    ("fec0::1", "reserved"),
    ("ff02::1", "multicast"),
    ("ff05::2", "multicast"),
    ("100::1", "reserved"),
    ("2001:db8::1", "reserved"),
    ("2001:2::1", "reserved"),  # benchmarking
    ("3fff::1", "reserved"),
    ("4000::1", "reserved"),  # outside global unicast 2000::/3
    ("::2:1", "ipv4-compatible"),
    # IPv4 inside IPv6
    ("::ffff:127.0.0.1", "ipv4-mapped loopback"),
    ("::ffff:169.254.169.254", "ipv4-mapped link-local"),
    ("::ffff:10.1.2.3", "ipv4-mapped private"),
    ("::ffff:0.0.0.0", "ipv4-mapped unspecified"),
    ("::127.0.0.1", "ipv4-compatible"),
    ("::8.8.8.8", "ipv4-compatible"),  # deprecated form: refused even with a public IPv4
    ("64:ff9b::127.0.0.1", "nat64 loopback"),
    ("64:ff9b::a9fe:a9fe", "nat64 link-local"),
    ("64:ff9b::10.0.0.1", "nat64 private"),
    ("64:ff9b:1::1", "nat64-local"),
    ("64:ff9b:1::8.8.8.8", "nat64-local"),
    ("2002:7f00:1::1", "6to4 loopback"),
    ("2002:a9fe:a9fe::", "6to4 link-local"),
    ("2002:c0a8:101::1", "6to4 private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo reserved"),  # RFC 4380 example: client 192.0.2.45
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "teredo loopback"),  # client 127.0.0.1
    ("2001:0:7f00:1::", "teredo loopback"),  # server 127.0.0.1
]

ALLOWED = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.215.14",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.1",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # the same host as 8.8.8.8
    "64:ff9b::8.8.8.8",  # DNS64 in an IPv6-only cluster
    "2002:808:808::1",  # 6to4 of a public address
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo: public server, public client 8.8.8.8
]


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN)
def test_forbidden_addresses(address: str, reason: str) -> None:
    assert classify(ip_address(address)) == reason
    assert AddressGuard().refusal(address) == reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses(address: str) -> None:
    assert classify(ip_address(address)) is None
    assert AddressGuard().refusal(address) is None


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::1.2.3.4", "1.2.3.4"),
        ("64:ff9b::1.2.3.4", "1.2.3.4"),
        ("2002:102:304::", "1.2.3.4"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
        ("2606:4700::1", None),
    ],
)
def test_embedded_ipv4(address: str, embedded: str | None) -> None:
    result = embedded_ipv4(IPv6Address(address))
    assert result == (IPv4Address(embedded) if embedded else None)


@pytest.mark.parametrize(
    ("cidrs", "address", "refusal"),
    [
        (["127.0.0.0/8"], "127.0.0.1", None),
        (["127.0.0.0/8"], "::ffff:127.0.0.2", None),  # the mapped form reaches the same host
        (["127.0.0.0/8"], "::1", "loopback"),  # an IPv4 opt-in does not open IPv6 loopback
        (["127.0.0.2/32"], "127.0.0.1", "loopback"),
        (["127.0.0.2"], "127.0.0.2", None),
        (["10.0.0.0/8"], "10.20.30.40", None),
        (["10.0.0.0/8"], "172.16.0.1", "private"),
        (["10.0.0.0/8"], "169.254.169.254", "link-local"),
        (["fd00::/8"], "fd12::1", None),
        (["fd00::/8"], "10.0.0.1", "private"),
        (["10.0.0.0/8", "fd00::/8"], "fd00::1", None),
        ([], "8.8.8.8", None),
    ],
)
def test_opt_in_networks(cidrs: list[str], address: str, refusal: str | None) -> None:
    assert AddressGuard(parse_networks(cidrs)).refusal(address) == refusal


def test_parse_networks_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/33"])
    with pytest.raises(ValueError):
        parse_networks(["intranet"])


@given(st.ip_addresses(v=4))
def test_mapped_and_nat64_forms_judged_like_the_ipv4(address: IPv4Address) -> None:
    """Property: wrapping an IPv4 address in IPv6 never changes whether it is allowed."""
    plain = classify(address)
    mapped = classify(IPv6Address(f"::ffff:{address}"))
    nat64 = classify(IPv6Address(f"64:ff9b::{address}"))
    sixtofour = classify(IPv6Address((0x2002 << 112) | (int(address) << 80) | 1))
    for wrapped in (mapped, nat64, sixtofour):
        assert (wrapped is None) == (plain is None)


@given(st.ip_addresses())
def test_never_more_permissive_than_python(address: IPv4Address | IPv6Address) -> None:
    """Property: whatever Python's own tables call loopback, private, link-local or multicast is refused."""
    if address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified:
        assert classify(address) is not None
    if isinstance(address, IPv4Address) and address.is_private:
        assert classify(address) is not None
