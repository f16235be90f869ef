"""From the site configuration to driver objects: link settings, meter refs, bus clients."""

from __future__ import annotations

from sitegate.common.sitefile import Bus, Meter
from sitegate.drivers.base import BusClient, LinkSettings, MeterRef


def link_settings(bus: Bus) -> LinkSettings:
    if bus.serial is not None:
        s = bus.serial
        return LinkSettings(serial_port=s.port, baudrate=s.baudrate, parity=s.parity,
                            stopbits=s.stopbits, bytesize=s.bytesize,
                            timeout=bus.timeout, retries=bus.retries)
    assert bus.tcp is not None
    return LinkSettings(host=bus.tcp.host, port=bus.tcp.port, framing=bus.tcp.framing,
                        timeout=bus.timeout, retries=bus.retries)


def meter_ref(meter: Meter) -> MeterRef:
    return MeterRef(meter_id=meter.id, profile=meter.profile, unit=meter.unit,
                    address=meter.address, secondary=meter.secondary)


def make_client(bus: Bus) -> BusClient:
    link = link_settings(bus)
    if bus.protocol == "mbus":
        from sitegate.drivers.mbus.client import MbusBusClient

        return MbusBusClient(link)
    from sitegate.drivers.modbus.client import ModbusBusClient

    return ModbusBusClient(link)
