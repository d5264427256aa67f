"""The pure verdicts on redirect hops: hop count, address safety, rebinding."""

from __future__ import annotations

import pytest

from distdl.core import codes
from distdl.core.redirects import (
    GlobalAddresses,
    PublicNetworks,
    answer_refusal,
    came_from_public,
    hop_refusal,
)

GLOBAL = GlobalAddresses()
LOOPBACK_TEST = PublicNetworks.of(["127.0.1.0/28"])


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata service: link-local
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("not an ip", False),
    ],
)
def test_global_policy(ip: str, public: bool) -> None:
    assert GLOBAL.is_public(ip) is public


def test_networks_policy_declares_a_block_of_loopback_public() -> None:
    assert LOOPBACK_TEST.is_public("127.0.1.5")
    assert not LOOPBACK_TEST.is_public("127.0.1.16")
    assert not LOOPBACK_TEST.is_public("127.0.0.1")
    assert not LOOPBACK_TEST.is_public("garbage")


def test_unknown_peer_counts_as_public() -> None:
    assert came_from_public(None, GLOBAL)
    assert came_from_public("8.8.8.8", GLOBAL)
    assert not came_from_public("127.0.0.1", GLOBAL)


def refusal(hops: int, from_public: bool, targets: list[str] | None, limit: int = 5) -> int | None:
    verdict = hop_refusal(
        hops, limit, from_public=from_public, target_addresses=targets, policy=LOOPBACK_TEST
    )
    return None if verdict is None else verdict.code


def test_hop_count_allows_exactly_max_redirects() -> None:
    assert refusal(4, False, None) is None  # the fifth redirect is followed
    assert refusal(5, False, None) == codes.TOO_MANY_REDIRECTS
    assert refusal(0, False, None, limit=0) == codes.TOO_MANY_REDIRECTS
    verdict = hop_refusal(3, 3, from_public=False, target_addresses=None, policy=GLOBAL)
    assert verdict is not None and verdict.message == "more than 3 redirects"


def test_public_to_private_is_refused_and_names_the_address() -> None:
    verdict = hop_refusal(
        0, 5, from_public=True, target_addresses=["127.0.2.1"], policy=LOOPBACK_TEST
    )
    assert verdict is not None
    assert verdict.code == codes.UNSAFE_REDIRECT
    assert "127.0.2.1" in verdict.message


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    assert refusal(0, True, ["127.0.1.2", "127.0.0.1"]) == codes.UNSAFE_REDIRECT


@pytest.mark.parametrize(
    ("from_public", "targets"),
    [
        (True, ["127.0.1.2"]),  # public -> public
        (False, ["127.0.0.1"]),  # local -> local
        (False, ["127.0.1.2"]),  # local -> public
        (True, None),  # same server: not re-checked
        (True, []),  # unresolved: the connection will fail the same way (checked after)
    ],
)
def test_safe_hops_are_taken(from_public: bool, targets: list[str] | None) -> None:
    assert refusal(0, from_public, targets) is None


def test_hop_count_is_checked_before_safety() -> None:
    assert refusal(5, True, ["127.0.0.1"]) == codes.TOO_MANY_REDIRECTS


def test_an_answer_from_a_private_address_after_a_public_redirect_is_refused() -> None:
    refused = answer_refusal(True, "127.0.0.9", LOOPBACK_TEST)
    assert refused is not None and refused.code == codes.UNSAFE_REDIRECT
    assert answer_refusal(True, "127.0.1.3", LOOPBACK_TEST) is None
    assert answer_refusal(False, "127.0.0.9", LOOPBACK_TEST) is None
    assert answer_refusal(True, None, LOOPBACK_TEST) is None  # no answer, nothing to keep
