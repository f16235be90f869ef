"""The daemon tells load management about each main meter reading: an overload is reduced
at the next reading, with no periodic pass (its interval here is an hour).

In one event loop: a pymodbus server simulating the main meter (its phase currents are the
base load plus what the simulated car draws under the profile it accepted), the real gateway
daemon polling it every second and running the OCPP central system, and one charger on a
real WebSocket.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from ocpp_helpers import run, until

from sitegate.common.sitefile import parse_config
from sitegate.drivers.modbus.simulator import ModbusSimulator
from sitegate.gateway.daemon import Daemon
from sitegate.ocpp_server.simulator import SimCharger16, close, connect


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _site(tmp: Path, modbus: int, ocpp: int) -> str:
    return (
        f'gateway_id = "gw-lm"\n[storage]\npath = "{tmp}/buffer.db"\n'
        f'[health]\nsocket = "{tmp}/sg.sock"\n'
        '[[buses]]\nname = "conv"\ntimeout = 0.5\n'
        f'tcp = {{ host = "127.0.0.1", port = {modbus}, framing = "rtu-over-tcp" }}\n'
        '[[meters]]\nid = "main"\nbus = "conv"\nunit = 1\nprofile = "eastron_sdm630"\n'
        'interval = 1\n'
        f'[ocpp]\nhost = "127.0.0.1"\nport = {ocpp}\n'
        '[ocpp.load_management]\nenabled = true\nmain_meter = "main"\n'
        'connection_limit = 40\nsafety_margin = 2\ninterval = 3600\n'
        '[[ocpp.charge_points]]\nid = "EV0"\n'
    )


def test_the_daemon_reduces_an_overload_at_the_next_main_meter_reading(tmp: Path) -> None:
    base = [D(10)]
    car = [D(0)]  # what the car draws: set together with the charger's report of it

    async def scenario() -> None:
        modbus_port, ocpp_port = _port(), _port()

        def currents() -> list[D]:
            return [base[0] + car[0]] * 3

        modbus = ModbusSimulator([(1, "eastron_sdm630")])
        modbus.meters[1].currents = currents
        await modbus.start_tcp("127.0.0.1", modbus_port, "rtu-over-tcp")
        modbus.run_clock(0.1)
        daemon = Daemon(parse_config(_site(tmp, modbus_port, ocpp_port), "test"))
        running = asyncio.create_task(daemon.run())
        try:
            await until(lambda: daemon.ocpp is not None and daemon.ocpp.health()["listening"])
            lm = daemon.ocpp.load
            # The main meter was read since the simulator follows ``currents``.
            await until(lambda: lm.main_meter() is not None
                        and lm.main_meter()[0] == (D(10),) * 3)  # type: ignore[index]
            sim, task = await connect(f"ws://127.0.0.1:{ocpp_port}/ocpp/", "EV0")
            assert isinstance(sim, SimCharger16)
            await sim.boot()
            tx, _ = await sim.start_tx(1, "04A23BC1", 0)
            # 40 - 2 margin - 10 base: the car may take 28 A, and does.
            await until(lambda: sim.limit(1, tx) == D(28))
            car[0] = D(28)
            await sim.meter(1, tx, 100, D(28))
            reported = datetime.now(UTC)
            # A reading taken after the car's report (readings are stamped with their slot).
            await until(lambda: lm.main_meter()[1] > reported)  # type: ignore[misc]
            overloads, passes = lm.overloads, lm.passes

            base[0] = D(16)  # a 6 A load switches on: the meter reads 44 A
            await until(lambda: sim.limit(1, tx) == D(22), timeout=15)
            await until(lambda: lm.passes > passes)  # the pass ends when the answer is in
            assert lm.overloads > overloads
            assert lm.last["pass"] == "reduce"
            await close(sim, task)
        finally:
            daemon.request_stop()
            await asyncio.gather(running, return_exceptions=True)
            await modbus.stop()
        assert running.result() == 0
    run(scenario(), timeout=60)


def test_main_meter_currents_are_dated_when_read_not_by_their_slot(tmp: Path) -> None:
    from sitegate.sync.protocol import Reading

    daemon = Daemon(parse_config(_site(tmp, 1502, 0)))
    slot = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    read = [datetime(2026, 11, 23, 10, 0, 0, 700_000 + i, tzinfo=UTC) for i in range(3)]
    for i, q in enumerate(("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0")):
        daemon.latest[("main", q)] = Reading("main", slot, q, D(10 + i), "A", read_at=read[i])
    assert daemon._main_meter_currents() == ((D(10), D(11), D(12)), read[0])
    del daemon.latest[("main", "1-0:71.7.0")]
    assert daemon._main_meter_currents() is None  # a phase missing: no headroom from it
