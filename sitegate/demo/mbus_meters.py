"""The demo's M-Bus heat and water meters: real recorded telegrams whose main register the
demo sets, so that the live meters go on from the simulated history (``heat_water``).

Each meter answers with a recording of its model (the M-Bus emulator); the demo writes its
register (heat energy, volume) into the recorded record, in the record's own coding
(32-bit binary or 8-digit BCD) and resolution, so the gateway decodes exactly the value
the history ended with. Three of the recordings report errors in their status byte, as
those meters did when recorded: the gateway says so as it reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from sitegate.drivers.mbus.decode import decode_telegram
from sitegate.drivers.mbus.emulator import EmulatedMeter, with_address


@dataclass(frozen=True)
class MbusMeter:
    address: int  # primary address on the demo's M-Bus
    profile: str  # the gateway's profile
    meter_id: str
    label: str  # the billing point's name in the gateway's site file
    apartment: str  # the billing model's billing point
    medium: str  # "heat" | "water"
    recordings: tuple[str, ...]  # the emulator's recorded telegrams
    record: str  # the register's record header (DIF VIF, hex) in the first telegram
    quantity: str  # what the gateway sends for that register ...
    unit: str  # ... in this unit
    step: Decimal  # one count of the register, in kWh or m³
    start: Decimal  # the register at the start of the simulated history, kWh or m³
    per_day: Decimal  # simulated use per day, kWh or m³ (fixed: the statement is exact)
    ident: str | None = None  # a second meter of one model needs its own id

    @property
    def factor(self) -> Decimal:
        """The gateway's value per kWh or m³ (the generic profile sends Wh)."""
        return Decimal(1000) if self.unit == "Wh" else Decimal(1)


KWH, LITRE10, LITRE = Decimal(1), Decimal("0.01"), Decimal("0.001")

# Heat 24, 32 and 40 kWh a day (3 : 4 : 5), water 200, 300 and 100 litres (2 : 3 : 1).
METERS = [
    MbusMeter(1, "kamstrup_multical_601", "heat-apt-1", "Apartment 1", "apt-1", "heat",
              ("kamstrup_multical_601",), "0406", "heat_energy", "kWh", KWH,
              Decimal(37351), Decimal(24)),
    MbusMeter(2, "landis_gyr_ultraheat_t230", "heat-apt-2", "Apartment 2", "apt-2", "heat",
              ("landis_gyr_ultraheat_t230",), "0C06", "heat_energy", "kWh", KWH,
              Decimal(1520), Decimal(32)),
    MbusMeter(3, "itron_cyble_water", "water-apt-1", "Apartment 1", "apt-1", "water",
              ("itron_cyble_m-bus_v1.4_water",), "0414", "volume", "m3", LITRE10,
              Decimal("123.49"), Decimal("0.20")),
    MbusMeter(4, "siemens_wfh21", "water-apt-2", "Apartment 2", "apt-2", "water",
              ("siemens_water",), "0C13", "volume", "m3", LITRE,
              Decimal("48.101"), Decimal("0.30")),
    MbusMeter(5, "mbus_generic", "heat-apt-3", "Apartment 3", "apt-3", "heat",
              ("svm_f22_telegram1", "svm_f22_telegram2"), "0406", "energy", "Wh", KWH,
              Decimal(28014), Decimal(40)),
    MbusMeter(6, "itron_cyble_water", "water-apt-3", "Apartment 3", "apt-3", "water",
              ("itron_cyble_m-bus_v1.4_water",), "0414", "volume", "m3", LITRE10,
              Decimal("61.30"), Decimal("0.10"), ident="10000006"),
]


def on_register(meter: MbusMeter, value: Decimal) -> Decimal:
    """``value`` (kWh or m³) as the register shows it: whole counts, rounded down."""
    return (value / meter.step).to_integral_value(rounding=ROUND_FLOOR) * meter.step


class DemoMeter:
    """An emulated meter whose register the demo sets."""

    def __init__(self, meter: MbusMeter) -> None:
        self.meter = meter
        self.emulated = EmulatedMeter.from_recording(meter.address, *meter.recordings,
                                                     ident=meter.ident)
        self._at, self._size, self._bcd = _locate(self.emulated.telegrams[0], meter.record)

    def set(self, value: Decimal) -> None:
        """The register now reads ``value`` (kWh or m³; finer than a count is dropped)."""
        counts = int(on_register(self.meter, value) / self.meter.step)
        if self._bcd:
            digits = f"{counts:0{self._size * 2}d}"
            if len(digits) > self._size * 2:
                raise ValueError(f"{self.meter.meter_id}: {value} does not fit the register")
            data = bytes.fromhex(digits)[::-1]  # BCD, least significant byte first
        else:
            data = counts.to_bytes(self._size, "little")
        t = self.emulated.telegrams[0]
        patched = t[:self._at] + data + t[self._at + self._size:]
        # the checksum made again (the emulator sets the primary address the same way)
        self.emulated.telegrams[0] = with_address(patched, patched[5])

    def value(self) -> Decimal:
        """The register as the gateway decodes it, kWh or m³."""
        for r in decode_telegram(self.emulated.telegrams[0]).records:
            if r.raw_hex.upper().startswith(self.meter.record.upper()):
                value = Decimal(r.value)
                return value / 1000 if r.unit == "Wh" else value
        raise LookupError(self.meter.record)


def _locate(telegram: bytes, header: str) -> tuple[int, int, bool]:
    """Where the data of the record with this DIF VIF header sits in the telegram: its
    offset, length and whether it is BCD. Exactly one record must match."""
    found = [r for r in decode_telegram(telegram).records
             if r.raw_hex.upper().startswith(header.upper())]
    if len(found) != 1:
        raise LookupError(f"{len(found)} records {header} in the telegram")
    raw = found[0].raw_hex.upper()
    at = telegram.hex().upper().find(raw)
    if at < 0 or at % 2:
        raise LookupError(f"record {raw} not found in the telegram")
    dif = int(header[:2], 16) & 0x0F
    size = {0x04: 4, 0x0C: 4, 0x03: 3, 0x0B: 3, 0x02: 2, 0x0A: 2}[dif]
    return at // 2 + len(header) // 2, size, dif >= 0x09


def demo_meters() -> list[DemoMeter]:
    return [DemoMeter(m) for m in METERS]
