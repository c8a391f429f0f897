"""AddressLimiter: per-address connection counting shared by the gateway's listeners."""

from __future__ import annotations

import pytest

from adapters._limits import AddressLimiter, peer_address


def test_admits_up_to_the_limit_per_address_then_refuses() -> None:
    limiter = AddressLimiter(3)
    assert [limiter.admit("192.0.2.1") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.held("192.0.2.1") == 3  # refusals are not counted in


def test_other_addresses_are_counted_apart() -> None:
    limiter = AddressLimiter(2)
    assert limiter.admit("192.0.2.1") and limiter.admit("192.0.2.1")
    assert not limiter.admit("192.0.2.1")
    assert limiter.admit("192.0.2.2")
    assert limiter.addresses == {"192.0.2.1": 2, "192.0.2.2": 1}
    assert len(limiter) == 2


def test_release_frees_a_slot_and_forgets_idle_addresses() -> None:
    limiter = AddressLimiter(1)
    assert limiter.admit("192.0.2.1")
    assert not limiter.admit("192.0.2.1")
    limiter.release("192.0.2.1")
    assert limiter.held("192.0.2.1") == 0
    assert len(limiter) == 0  # no entry kept for an address without connections
    assert limiter.admit("192.0.2.1")


def test_release_of_an_unknown_address_is_ignored() -> None:
    limiter = AddressLimiter(1)
    limiter.release("198.51.100.9")
    assert len(limiter) == 0
    assert limiter.admit("198.51.100.9")


def test_many_admits_and_releases_balance_out() -> None:
    limiter = AddressLimiter(5)
    admitted = [limiter.admit(f"10.0.0.{i % 3}") for i in range(30)]
    assert admitted.count(True) == 15  # 5 per address, 3 addresses
    for address, held in limiter.addresses.items():
        for _ in range(held):
            limiter.release(address)
    assert len(limiter) == 0


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        AddressLimiter(limit)


@pytest.mark.parametrize(
    ("peername", "address"),
    [
        (("127.0.0.2", 40000), "127.0.0.2"),
        (("::1", 40000, 0, 0), "::1"),
        (("::ffff:192.0.2.7", 40000, 0, 0), "192.0.2.7"),  # dual-stack listener
        (("fe80::1%eth0", 40000, 0, 2), "fe80::1"),
        (("2001:DB8::1", 1, 0, 0), "2001:db8::1"),  # one spelling per address
        (None, "None"),
        ("/run/gw.sock", "/run/gw.sock"),
    ],
)
def test_peer_address(peername: object, address: str) -> None:
    assert peer_address(peername) == address
