"""M-Bus bus client: the gateway's ``BusClient`` for one wired M-Bus (serial or TCP).

A read is SND_NKE (resets the meter's telegram sequence), then REQ_UD2 with the frame
count bit toggled for each further telegram while the meter says more records follow.
A request that stays unanswered is repeated with the same FCB, so the meter repeats its
last telegram instead of skipping one. Meters addressed by secondary address are first
selected (SND_UD, CI 0x52) and then talked to at address 253.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from sitegate.drivers.base import DeviceError, LinkSettings, MeterRef, NoResponse, ReadResult
from sitegate.drivers.mbus import frames as fr
from sitegate.drivers.mbus.decode import DecodeError, Telegram, decode_telegram
from sitegate.drivers.mbus.link import Garbled, MbusLink, Timing
from sitegate.drivers.mbus.profile import load_profile
from sitegate.drivers.mbus.readings import event, to_result

log = structlog.get_logger(__name__)

MAX_TELEGRAMS = 16  # a meter announcing more than this is looping; stop there


class MbusBusClient:
    def __init__(self, link: LinkSettings, timing: Timing | None = None) -> None:
        self.settings = link
        self.link = MbusLink(link, timing)
        self.retries = max(0, link.retries)

    async def connect(self) -> None:
        await self.link.open()

    async def close(self) -> None:
        await self.link.close()

    # -- single exchanges ----------------------------------------------------------------

    async def _exchange(self, request: bytes, what: str) -> fr.Frame | None:
        """Send with retries; the first reply, None after silence throughout. Garbled
        after all retries raises DeviceError (a collision or a wiring problem, not silence)."""
        garbled: Garbled | None = None
        for _ in range(self.retries + 1):
            try:
                reply = await self.link.transact(request)
            except Garbled as exc:
                garbled = exc
                continue
            if reply is not None:
                return reply
        if garbled is not None:
            raise DeviceError(f"{what}: garbled reply ({garbled}); raw "
                              f"{garbled.raw.hex().upper()}", kind="garbled")
        return None

    async def _ack(self, request: bytes, what: str) -> bool:
        """Send a request answered by E5; True when acknowledged."""
        reply = await self._exchange(request, what)
        if reply is None:
            return False
        if reply.kind != "ack":
            raise DeviceError(f"{what}: expected an acknowledgement, got a {reply.kind} frame",
                              kind="garbled")
        return True

    async def snd_nke(self, address: int) -> bool:
        return await self._ack(fr.snd_nke(address), f"SND_NKE to {address}")

    async def select(self, secondary: str) -> str:
        """Select by secondary address (F = wildcard digit): 'none', 'one' or 'collision'."""
        request = fr.select_secondary(secondary)
        for _ in range(self.retries + 1):
            try:
                reply = await self.link.transact(request)
            except Garbled:
                return "collision"
            if reply is None:
                continue
            return "one" if reply.kind == "ack" else "collision"
        return "none"

    async def request_data(self, address: int, fcb: bool) -> bytes:
        """One REQ_UD2; the raw RSP_UD frame. NoResponse / DeviceError after retries."""
        reply = await self._exchange(fr.req_ud2(address, fcb), f"address {address}")
        if reply is None:
            raise NoResponse(f"address {address}: no reply to REQ_UD2")
        if reply.kind != "long":
            raise DeviceError(f"address {address}: REQ_UD2 answered by a {reply.kind} frame",
                              kind="garbled")
        return reply.raw

    async def read_frames(self, address: int) -> list[bytes]:
        """All telegrams of one meter: SND_NKE, then REQ_UD2 while more records follow.
        A selected meter (address 253) gets no SND_NKE: that would end the selection."""
        if address != fr.ADDR_NETWORK and not await self.snd_nke(address):
            raise NoResponse(f"address {address}: no acknowledgement of SND_NKE")
        out: list[bytes] = []
        fcb = True  # after SND_NKE the first REQ_UD2 carries FCB=1
        while len(out) < MAX_TELEGRAMS:
            raw = await self.request_data(address, fcb)
            if out and raw[4:-2] == out[0][4:-2]:
                break  # the meter went round to its first telegram again
            out.append(raw)
            try:
                if not decode_telegram(raw).more_follow:
                    break
            except DecodeError:
                break
            fcb = not fcb
        return out

    async def address_of(self, meter: MeterRef) -> int:
        if meter.secondary:
            state = await self.select(fr.normalize_secondary(meter.secondary))
            if state == "none":
                raise NoResponse(f"{meter.meter_id}: no meter answers to secondary address "
                                 f"{meter.secondary}")
            if state == "collision":
                raise DeviceError(f"{meter.meter_id}: several meters answer to secondary "
                                  f"address {meter.secondary}", kind="collision")
            return fr.ADDR_NETWORK
        if meter.address is None:
            raise ValueError(f"meter {meter.meter_id} has neither address nor secondary")
        return meter.address

    async def read_telegrams(self, meter: MeterRef) -> list[bytes]:
        return await self.read_frames(await self.address_of(meter))

    # -- BusClient ---------------------------------------------------------------------

    async def read(self, meter: MeterRef, scheduled: datetime) -> ReadResult:
        profile = load_profile(meter.profile)
        requests_before = self.link.requests
        raws = await self.read_telegrams(meter)
        read_at = datetime.now(UTC)
        telegrams: list[Telegram] = []
        events = []
        for raw in raws:
            try:
                telegrams.append(decode_telegram(raw))
            except DecodeError as exc:
                # Kept raw in the events stream for later analysis; the read goes on.
                log.warning("mbus_undecodable", meter_id=meter.meter_id, error=str(exc),
                            raw=raw.hex())
                events.append(event(meter.meter_id, "mbus_undecodable_frame", "warning",
                                    f"{exc.kind}: {exc}", raw.hex().upper()))
        result = to_result(meter.meter_id, telegrams, profile, scheduled, read_at)
        result.events[:0] = events
        result.requests = self.link.requests - requests_before
        return result

    async def set_address(self, secondary: str | None, new_address: int,
                          address: int | None = None) -> None:
        """Give the meter with this secondary address (or at this primary ``address``) a
        new primary address."""
        if secondary is None:
            if address is None:
                raise ValueError("give the meter's secondary or its primary address")
            if not await self._ack(fr.set_primary_address(address, new_address),
                                   "set primary address"):
                raise NoResponse(f"address {address}: no acknowledgement of the new address")
            return
        state = await self.select(fr.normalize_secondary(secondary))
        if state != "one":
            raise NoResponse(f"selecting {secondary}: {state}") if state == "none" else \
                DeviceError(f"several meters match {secondary}", kind="collision")
        if not await self._ack(fr.set_primary_address(fr.ADDR_NETWORK, new_address),
                               "set primary address"):
            raise NoResponse(f"{secondary}: no acknowledgement of the new address")
