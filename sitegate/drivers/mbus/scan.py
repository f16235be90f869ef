"""Finding the meters on a bus.

Primary scan: SND_NKE to each address; an acknowledgement (or a garbled answer: two meters
sharing the address) means someone is there. Secondary search: select with a wildcard
mask; no answer prunes the branch, one clean acknowledgement is exactly one meter (read
its identity), a collision splits the first wildcard id digit into 0-9 and goes deeper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sitegate.drivers.base import DeviceError, NoResponse
from sitegate.drivers.mbus import frames as fr
from sitegate.drivers.mbus.client import MbusBusClient
from sitegate.drivers.mbus.decode import DecodeError, decode_telegram


@dataclass(frozen=True, slots=True)
class Found:
    primary: int | None
    secondary: str | None
    manufacturer: str = ""
    medium: str = ""
    note: str = ""  # e.g. "collision: several meters share this primary address"
    medium_code: int | None = None  # EN 13757-3 device type: profiles claim meters by it

    def to_dict(self) -> dict[str, object]:
        return {"primary": self.primary, "secondary": self.secondary,
                "manufacturer": self.manufacturer, "medium": self.medium,
                "medium_code": self.medium_code, "note": self.note}


class _Found(list[Found]):
    """The meters found so far; each is also handed to ``on_found`` as it is found."""

    def __init__(self, on_found: Callable[[Found], None] | None) -> None:
        super().__init__()
        self.on_found = on_found

    def append(self, f: Found) -> None:
        super().append(f)
        if self.on_found:
            self.on_found(f)


async def primary_scan(client: MbusBusClient, addresses: range = range(0, fr.MAX_PRIMARY + 1),
                       identify: bool = True,
                       progress: Callable[[int], None] | None = None,
                       found: Callable[[Found], None] | None = None) -> list[Found]:
    out = _Found(found)
    for a in addresses:
        if progress:
            progress(a)
        try:
            present = await client.snd_nke(a)
        except DeviceError:
            out.append(Found(a, None, note="collision: several meters answer at this "
                                           "primary address"))
            continue
        if not present:
            continue
        out.append(await _identify(client, a) if identify else Found(a, None))
    return list(out)


async def _identify(client: MbusBusClient, address: int) -> Found:
    try:
        raw = await client.request_data(address, fcb=True)
        t = decode_telegram(raw)
    except (NoResponse, DeviceError, DecodeError) as exc:
        return Found(address if address != fr.ADDR_NETWORK else None, None,
                     note=f"present, identity unreadable: {exc}")
    ident = t.identity
    primary = t.address if address == fr.ADDR_NETWORK else address
    if ident is None:
        return Found(primary, None, note=f"CI 0x{t.ci:02X} telegram carries no identity")
    return Found(primary, ident.secondary, ident.manufacturer, ident.medium,
                 medium_code=ident.medium_code)


async def secondary_search(client: MbusBusClient, mask: str = "FFFFFFFFFFFFFFFF",
                           progress: Callable[[str], None] | None = None,
                           found: Callable[[Found], None] | None = None) -> list[Found]:
    """Every meter matching ``mask`` (16 hex digits, F = any), even when several answer
    to one selection. Uses the digit-by-digit tree search over the 8 id digits."""
    out = _Found(found)
    await client.snd_nke(fr.ADDR_NETWORK)  # end any earlier selection
    await _probe(client, fr.normalize_secondary(mask), out, progress)
    await client.snd_nke(fr.ADDR_NETWORK)
    return list(out)


async def _probe(client: MbusBusClient, mask: str, found: list[Found],
                 progress: Callable[[str], None] | None) -> None:
    if progress:
        progress(mask)
    state = await client.select(mask)
    if state == "none":
        return
    if state == "one":
        found.append(await _identify(client, fr.ADDR_NETWORK))
        return
    pos = mask.find("F", 0, 8)
    if pos < 0:
        # The id is complete and still several answer: tell them apart by the rest.
        pos = mask.find("F", 8)
        if pos < 0:
            found.append(Found(None, mask, note="collision: several meters share this "
                                                "complete secondary address"))
            return
        digits = "0123456789ABCDE"  # hex fields; a literal F reads as the wildcard
    else:
        digits = "0123456789"  # BCD id digits
    for d in digits:
        await _probe(client, mask[:pos] + d + mask[pos + 1:], found, progress)
