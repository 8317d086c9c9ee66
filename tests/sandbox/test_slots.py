"""Address slots: each sandbox's own block of loopback addresses (pure), and the claim
that keeps two live sandboxes off the same slot and frees it when its holder dies."""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
import uuid

import pytest

from driftline.sandbox.slots import (
    PODS,
    ROUTES,
    SERVICES,
    SLOTS,
    AddressBlock,
    NoFreeSlot,
    choose_slot,
    claim_slot,
)

COMMON_LOOPBACK = ["127.0.0.1", "127.0.0.53", "127.0.1.1"]
FIXED_RANGES_BEFORE_SLOTS = ["127.10.0.0/16", "127.20.0.0/16", "127.30.0.0/16"]


@pytest.fixture
def namespace() -> str:
    """Claims of the test's own: no live sandbox on this machine shares them."""
    return f"driftline-sandbox-test-{uuid.uuid4().hex}"


def every_address(block: AddressBlock) -> dict[str, list[str]]:
    return {
        "pods": [block.pod(i) for i in range(PODS.capacity)],
        "services": [block.service(i) for i in range(SERVICES.capacity)],
        "routes": [block.route(i) for i in range(ROUTES.capacity)],
    }


def test_a_blocks_addresses_run_from_the_second_of_each_part():
    block = AddressBlock(64)
    assert [block.pod(0), block.pod(1), block.pod(253), block.pod(254)] == [
        "127.64.0.2",
        "127.64.0.3",
        "127.64.0.255",
        "127.64.1.0",
    ]
    assert block.pod(PODS.capacity - 1) == "127.64.127.255"
    assert (block.service(0), block.service(SERVICES.capacity - 1)) == (
        "127.64.128.2",
        "127.64.191.255",
    )
    assert (block.route(0), block.route(ROUTES.capacity - 1)) == ("127.64.192.2", "127.64.255.255")
    assert block.network == "127.64.0.0/16"


@pytest.mark.parametrize("index", [-1, PODS.capacity])
def test_an_index_outside_a_part_is_refused(index: int):
    with pytest.raises(ValueError, match="out of range"):
        AddressBlock(64).pod(index)


def test_a_block_holds_thousands_of_pods():
    assert PODS.capacity > 30000 and SERVICES.capacity > 16000 and ROUTES.capacity > 16000


@pytest.mark.parametrize("slot", [SLOTS[0], 100, SLOTS[-1]])
def test_a_blocks_parts_are_distinct_and_inside_its_network(slot: int):
    block = AddressBlock(slot)
    parts = every_address(block)
    everything = [a for addresses in parts.values() for a in addresses]
    assert len(set(everything)) == len(everything)
    network = ipaddress.ip_network(block.network)
    assert all(ipaddress.ip_address(a) in network for a in everything)


def test_no_slot_touches_common_loopback_addresses_or_the_old_fixed_ranges():
    networks = [ipaddress.ip_network(AddressBlock(s).network) for s in SLOTS]
    assert all(n.subnet_of(ipaddress.ip_network("127.0.0.0/8")) for n in networks)
    for address in COMMON_LOOPBACK:
        assert not any(ipaddress.ip_address(address) in n for n in networks), address
    for old in map(ipaddress.ip_network, FIXED_RANGES_BEFORE_SLOTS):
        assert not any(n.overlaps(old) for n in networks), old
    # 127.255.255.255 is the broadcast address of 127.0.0.0/8
    assert ipaddress.ip_address("127.255.255.255") not in networks[-1]


def test_the_first_slot_not_taken_is_chosen():
    assert choose_slot(set()) == SLOTS[0]
    assert choose_slot({64, 65, 67}) == 66
    assert choose_slot({3}, slots=[3, 9, 4]) == 9


def test_no_slot_left_is_an_error():
    with pytest.raises(NoFreeSlot):
        choose_slot({1, 2}, slots=[1, 2])


def test_a_second_claimer_gets_another_slot_and_a_released_slot_is_free_again(namespace: str):
    with claim_slot(namespace=namespace) as first, claim_slot(namespace=namespace) as second:
        assert (first.slot, second.slot) == (SLOTS[0], SLOTS[1])
        assert second.addresses.pod(0) != first.addresses.pod(0)
        first.release()
        with claim_slot(namespace=namespace) as third:
            assert third.slot == first.slot


def test_when_every_slot_is_claimed_a_claim_fails(namespace: str):
    with claim_slot([80], namespace=namespace), pytest.raises(NoFreeSlot):
        claim_slot([80], namespace=namespace)


CLAIMER = """
import sys
from driftline.sandbox.slots import claim_slot
claim = claim_slot([int(sys.argv[1])], namespace=sys.argv[2])
print(claim.slot, flush=True)
sys.stdin.read()  # holds the claim until killed
"""


def test_a_slot_held_by_a_process_killed_with_sigkill_is_free_again(namespace: str):
    slot = 200
    holder = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(slot), namespace],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == str(slot)  # claimed: the line comes after
        with pytest.raises(NoFreeSlot):
            claim_slot([slot], namespace=namespace)
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
        with claim_slot([slot], namespace=namespace) as claim:  # no code of the holder ran
            assert claim.slot == slot
    finally:
        holder.kill()
        holder.wait(timeout=30)
