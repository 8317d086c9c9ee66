"""Each running sandbox's own block of loopback addresses, so that sandboxes running at the
same time on one machine (two users, two test processes) never bind the same address.

A sandbox claims a slot S for its lifetime and takes its addresses from 127.S.0.0/16:
pods from 127.S.0.2 to 127.S.127.255, Services from 127.S.128.2, HTTPRoutes from
127.S.192.2 (Linux routes all of 127.0.0.0/8 to lo). Slots are 64 to 254: never 127.0.x.x
(127.0.0.1, systemd-resolved's 127.0.0.53, the hostname's 127.0.1.1) and never the
fixed 127.10, 127.20 and 127.30 ranges of sandboxes from before slots.

The claim is an abstract Unix socket named after the slot, bound for as long as the
claim is held: the kernel refuses a second bind of the name and frees it when the
process dies, even by SIGKILL. Abstract names live in the network namespace, exactly
where the loopback addresses do, and are seen by every user, as the addresses are.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import TracebackType

SLOTS = range(64, 255)
CLAIM_NAMESPACE = "driftline-sandbox"
# Each sub-range's first two addresses (its .0.0 and .0.1) stay unused, as a network's
# own and its gateway's addresses would.
FIRST_INDEX_OFFSET = 2


class NoFreeSlot(RuntimeError):
    """Every slot is claimed by a running sandbox."""


@dataclass(frozen=True)
class SubRange:
    """A part of a slot's /16: third octets from `first_octet`, `octets` of them."""

    first_octet: int
    octets: int

    @property
    def capacity(self) -> int:
        return self.octets * 256 - FIRST_INDEX_OFFSET


PODS = SubRange(first_octet=0, octets=128)
SERVICES = SubRange(first_octet=128, octets=64)
ROUTES = SubRange(first_octet=192, octets=64)


def block_address(slot: int, part: SubRange, index: int) -> str:
    """The index-th address of a slot's sub-range."""
    if not 0 <= index < part.capacity:
        raise ValueError(f"address index {index} is out of range (at most {part.capacity})")
    number = index + FIRST_INDEX_OFFSET
    return f"127.{slot}.{part.first_octet + number // 256}.{number % 256}"


@dataclass(frozen=True)
class AddressBlock:
    """One sandbox's addresses: 127.<slot>.0.0/16."""

    slot: int

    @property
    def network(self) -> str:
        return f"127.{self.slot}.0.0/16"

    def pod(self, index: int) -> str:
        return block_address(self.slot, PODS, index)

    def service(self, index: int) -> str:
        return block_address(self.slot, SERVICES, index)

    def route(self, index: int) -> str:
        return block_address(self.slot, ROUTES, index)


def choose_slot(taken: Collection[int], slots: Sequence[int] = SLOTS) -> int:
    """The first slot not taken."""
    for slot in slots:
        if slot not in taken:
            return slot
    raise NoFreeSlot(f"all {len(slots)} sandbox address slots are in use")


def claim_name(namespace: str, slot: int) -> str:
    return f"\0{namespace}/slot/{slot}"  # the leading NUL makes the name abstract


class SlotClaim:
    """A slot held until `release()` or this process's death."""

    def __init__(self, slot: int, holder: socket.socket) -> None:
        self.slot = slot
        self.addresses = AddressBlock(slot)
        self._holder = holder

    def release(self) -> None:
        self._holder.close()

    def __enter__(self) -> SlotClaim:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def claim_slot(slots: Sequence[int] = SLOTS, *, namespace: str = CLAIM_NAMESPACE) -> SlotClaim:
    """Claim the first slot no live process holds; NoFreeSlot when none is left."""
    taken: set[int] = set()
    while True:
        slot = choose_slot(taken, slots)
        # not inherited by the processes the sandbox starts (Python's sockets never are):
        # the claim ends with the sandbox itself
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            holder.bind(claim_name(namespace, slot))
        except OSError as error:
            holder.close()
            if error.errno != errno.EADDRINUSE:
                raise
            taken.add(slot)
            continue
        return SlotClaim(slot, holder)
