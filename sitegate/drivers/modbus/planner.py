"""Turns the registers of one profile into the fewest read requests the device allows."""

from __future__ import annotations

from dataclasses import dataclass, field

from sitegate.drivers.modbus.profile import Profile, Register


@dataclass
class Block:
    function: str  # "holding" or "input"
    start: int
    count: int
    registers: list[Register] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.count


def _crosses_hole(start: int, end: int, holes: list[tuple[int, int]]) -> bool:
    return any(h0 < end and start < h1 for h0, h1 in holes)


def plan(profile: Profile, registers: list[Register] | None = None) -> list[Block]:
    """Coalesce registers into blocks: a block grows over a gap of at most ``max_gap`` unused
    registers, never past ``max_registers``, never across a declared hole."""
    limits = profile.limits
    wanted = registers if registers is not None else profile.registers
    blocks: list[Block] = []
    for function in ("holding", "input"):
        regs = sorted(
            (r for r in wanted if profile.function_of(r) == function), key=lambda r: r.address
        )
        current: Block | None = None
        for r in regs:
            r_end = r.address + r.width
            if current is not None:
                gap = r.address - current.end
                new_count = r_end - current.start
                if (
                    gap <= limits.max_gap
                    and new_count <= limits.max_registers
                    and not _crosses_hole(current.end, r.address, profile.holes)
                ):
                    current.count = new_count
                    current.registers.append(r)
                    continue
            current = Block(function, r.address, r.width, [r])
            blocks.append(current)
    return blocks
