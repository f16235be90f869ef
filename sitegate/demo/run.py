"""``run_demo``: start every part of the demo site in one event loop, stop them in order.

Start: simulated Modbus and M-Bus meters, the MQTT broker (unless one is given), the cloud
(ingest, API, billing model), the gateway daemon, then the charge points that connect to it.
Stop (Ctrl-C or --duration): chargers end their sessions, the gateway hands its backlog to
the cloud, the daemon and the cloud stop, and the month is billed from what the cloud has.
"""

from __future__ import annotations

import asyncio
import fcntl
import signal
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from sitegate.common.sitefile import parse_config
from sitegate.demo import history, site
from sitegate.demo.broker import Broker
from sitegate.demo.building import Building
from sitegate.demo.chargers import ChargerFleet
from sitegate.demo.cloud import Cloud, free_port
from sitegate.demo.laundry import POINT_ID, LaundryRoom, relays_config
from sitegate.demo.loadwatch import LoadWatch
from sitegate.demo.output import Printer
from sitegate.drivers.mbus.emulator import Emulator, demo_meters
from sitegate.drivers.modbus.simulator import ModbusSimulator
from sitegate.gateway.daemon import AlreadyRunning, Daemon

DRAIN_TIMEOUT = 15.0  # seconds the gateway gets at the end to hand its backlog over
TIMEZONE = "Europe/Zurich"  # the billing model's (site.billing_model)
# Mean use of the simulated history per quarter-hour, kWh (about 250-350 kWh a month).
MEAN_USE = {"apt-1": 0.09, "apt-2": 0.11, "apt-3": 0.07, "common": 0.05}


def say(line: str) -> None:
    print(line, flush=True)


async def _until_ready(daemon: Daemon, run: asyncio.Task[int]) -> None:
    """Until the daemon listens for chargers (its services are up), or it died."""
    while not run.done():
        if daemon.ocpp is not None and daemon.ocpp.health()["listening"]:
            return
        await asyncio.sleep(0.05)
    await run  # raises what the daemon died of


async def _drain(daemon: Daemon) -> int:
    """Wait (bounded) until the cloud acknowledged every buffered row; the rows left."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        assert daemon.buffer is not None
        left = sum(s["unacknowledged"] for s in daemon.buffer.stats()["streams"].values())
        if left == 0 or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.2)


def _lock(workdir: Path) -> IO[str]:
    """One demo per directory, checked before anything in it is touched."""
    f = open(workdir / "demo.lock", "w")  # noqa: SIM115 - held while the demo runs
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        f.close()
        raise AlreadyRunning(f"another demo runs in {workdir}") from exc
    return f


async def _history(modbus: ModbusSimulator, cloud: Cloud) -> history.History:
    """A month of simulated history into the cloud, the live meters continuing from it."""
    units = {mid: unit for unit, _p, mid, _l in site.MODBUS_METERS}
    main, pv = (next(m for m, u in units.items() if u == unit)
                for unit in (site.MAIN_METER_UNIT, site.PV_METER_UNIT))
    start = history.start_values({m: dict(modbus.meters[u].values) for m, u in units.items()},
                                 main, pv)
    consumers = {m: MEAN_USE.get(m, 0.08) for m in units if m not in (main, pv)}
    hist = history.simulate(datetime.now(UTC), ZoneInfo(TIMEZONE), start, consumers,
                            main, pv)
    rows = await asyncio.to_thread(history.ingest, cloud.engine, site.GATEWAY_ID, hist)
    for meter, regs in hist.last.items():  # the live meters go on from there
        sim = modbus.meters[units[meter]]
        for reg in sim.profile.registers:
            if reg.quantity in regs:
                sim.set(reg, regs[reg.quantity])
    tz = ZoneInfo(TIMEZONE)
    say(f"simulated history: {rows} readings of the {len(hist.last)} electricity meters, "
        f"every quarter-hour from {hist.start.astimezone(tz):%Y-%m-%d %H:%M} to "
        f"{hist.end.astimezone(tz):%Y-%m-%d %H:%M} (SIMULATED, flagged 'simulated', buffer "
        f"epoch '{history.EPOCH}'), so that the month's invoices have something to bill; "
        "from here on the values are live from the demo's meters\n")
    return hist


async def run_demo(workdir: Path, duration: float | None, interval: int,
                   broker_url: str | None = None) -> int:
    with _lock(workdir):
        return await _run(workdir, duration, interval, broker_url)


async def _run(workdir: Path, duration: float | None, interval: int,
               broker_url: str | None) -> int:
    modbus_port = free_port()
    modbus = ModbusSimulator([(u, p) for u, p, _, _ in site.MODBUS_METERS], seed=1)
    # The main meter measures the building: its base load and what the chargers draw.
    building = Building(site.BASE_LOAD)
    modbus.meters[site.MAIN_METER_UNIT].currents = building.currents
    modbus.meters[site.PV_METER_UNIT].produces = True
    await modbus.start_tcp("127.0.0.1", modbus_port, "rtu-over-tcp")
    modbus.run_clock(0.25)  # the main meter follows a charger's change within a poll
    mbus = Emulator(demo_meters(), baud=None)
    mbus_port = await mbus.start_tcp("127.0.0.1", 0)
    broker = None
    if broker_url is None:
        broker = Broker()
        await broker.start()
        broker_url = broker.url
    model_path = workdir / "billing-site.toml"
    model_path.write_text(site.billing_model(date.today()))
    cloud = Cloud(workdir, broker_url, model_path)
    # The second washing machine: RFID reader + Shelly, no OCPP (Carla Weber's badge).
    laundry = LaundryRoom(site.ACCOUNTS[1][3], programme=max(4.0, interval * 2.0),
                          pause=max(1.0, interval / 2))
    fleet: ChargerFleet | None = None
    run: asyncio.Task[int] | None = None
    stop = asyncio.Event()
    try:
        await cloud.start()
        hist = await _history(modbus, cloud)
        ocpp_port = free_port()
        await laundry.start()
        text = site.gateway_config(workdir, modbus_port=modbus_port, mbus_port=mbus_port,
                                   ocpp_port=ocpp_port, broker=broker_url, interval=interval)
        text += "\n" + relays_config(laundry, interval)
        (workdir / "site.toml").write_text(text)
        # The gateway trusts the cloud's downlink key, as enrolment would have set it up.
        identity = workdir / "identity"
        identity.mkdir(exist_ok=True)
        (identity / "downlink.pub").write_bytes(await asyncio.to_thread(cloud.downlink_pub))
        daemon = Daemon(parse_config(text, "demo"))
        run = asyncio.create_task(daemon.run())
        await _until_ready(daemon, run)
        # The daemon took SIGINT/SIGTERM for itself; the demo stops it, in order.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        assert daemon.ocpp is not None
        LoadWatch(daemon.ocpp.load, workdir / "loadmgmt.jsonl", say).watch()
        fleet = ChargerFleet(f"ws://127.0.0.1:{ocpp_port}/ocpp/", site.CHARGERS, interval,
                             building)
        fleet.start()
        say(f"sitegate demo in {workdir}\n"
            f"  meters:   {len(site.MODBUS_METERS)} Modbus on 127.0.0.1:{modbus_port} "
            f"(RTU over TCP), {len(site.MBUS_METERS)} M-Bus on 127.0.0.1:{mbus_port}\n"
            f"  chargers: {len(site.CHARGERS)} OCPP 1.6 on ws://127.0.0.1:{ocpp_port}/ocpp/, "
            f"load management on the main meter, {site.CONNECTION_LIMIT} A per phase "
            f"(decisions in loadmgmt.jsonl)\n"
            f"  laundry:  RFID point {POINT_ID} (serial reader on {laundry.reader_path}, "
            f"Shelly RPC on 127.0.0.1:{laundry.port}) beside the OCPP relay box\n"
            f"  mqtt:     {broker_url}" + (" (embedded)" if broker else "") + "\n"
            f"  cloud:    {cloud.api_url}  (API docs: {cloud.api_url}/docs), "
            f"database {cloud.db}\n"
            f"  api:      curl -H \"Authorization: Bearer $(cat {cloud.token_file})\" "
            f"{cloud.api_url}/gateways\n"
            f"  console:  {cloud.api_url}/web/  operator: "
            f"{cloud.CONSOLE_LOGINS[0][0]} / {cloud.CONSOLE_LOGINS[0][1]}, tenant: "
            f"{cloud.CONSOLE_LOGINS[1][0]} / {cloud.CONSOLE_LOGINS[1][1]}\n"
            f"  try:      {_command('sitegate')} status -c {workdir}/site.toml\n"
            f"            {_command('sitegate-cloud')} readings --db {cloud.db} "
            "--meter heat-apt-1\n"
            f"            {_command('sitegate-cloud')} command --broker {broker_url} "
            f"--keys {cloud.keys} --gateway {site.GATEWAY_ID} status\n")
        printer = Printer(daemon, cloud.counts, say, producers=frozenset({"pv"}))
        started = time.monotonic()
        every = max(1.0, interval / 2)
        while not stop.is_set() and not run.done():
            if duration is not None and time.monotonic() - started >= duration:
                break
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
            await printer.tick()
        say("\nstopping: chargers end their sessions, the gateway hands over its backlog")
        await fleet.stop()
        await laundry.stop()
        await asyncio.sleep(0.5)  # the last StopTransaction's report reaches the buffer
        await printer.tick()
        left = await _drain(daemon)
        await printer.tick()
        if left:
            say(f"  {left} rows not acknowledged by the cloud yet (they stay in the buffer)")
        daemon.request_stop()
        code = await run
        await cloud.stop()
        bill = await asyncio.to_thread(cloud.bill, site.SITE_ID, TIMEZONE)
        _report_bill(bill)
        _summary(workdir, bill, cloud.db, hist)
        return code
    finally:
        if fleet is not None:
            await fleet.stop()
        if run is not None and not run.done():
            daemon.request_stop()
            await asyncio.gather(run, return_exceptions=True)
        await cloud.stop()
        await laundry.close()
        if broker is not None:
            await broker.stop()
        await mbus.stop()
        await modbus.stop()


def _command(name: str) -> str:
    """How to type a command so that it works from any shell, venv activated or not: the
    path of the one installed beside the Python running the demo."""
    mine = Path(sys.executable).parent / name
    return str(mine) if mine.exists() else name


def _summary(workdir: Path, bill: dict, db: str, hist: history.History) -> None:
    """Where each artefact is, and what to open first."""
    sg, sgc = _command("sitegate"), _command("sitegate-cloud")
    pdfs = [path for path, _inv in bill["pdfs"]]
    rows = [
        (f"invoice-{bill['period']}-*.pdf", "the tenants' invoices (Swiss QR-bill)"
         + (f": open {pdfs[0].name} first" if pdfs else "")),
        ("cloud.db", f"the cloud's database: {sgc} invoice list --db {db}"),
        ("", f"  {sgc} readings --db {db} --meter apt-1"),
        ("buffer.db", f"the gateway's buffer: {sg} buffer stats --db {workdir / 'buffer.db'}"),
        ("site.toml", f"the gateway's site file: {sg} check-config {workdir / 'site.toml'}"),
        ("billing-site.toml", "the billing model (tenants, tariffs, the solar community)"),
        ("loadmgmt.jsonl", "each load management decision, with the headroom it was made from"),
    ]
    if (workdir / "api-token").exists():
        rows.append(("api-token", "a read token for the HTTP API (curl line above)"))
    tz = ZoneInfo(TIMEZONE)
    say(f"\nwhat is where, in {workdir}:\n"
        + "\n".join(f"  {name:<22} {what}" for name, what in rows)
        + f"\nthe readings before {hist.end.astimezone(tz):%Y-%m-%d %H:%M} are simulated "
          f"history (flag '{history.FLAG}'); the rest came live from the demo's meters")


def _report_bill(bill: dict) -> None:
    s = bill["summary"]
    n = len(bill["pdfs"])
    say(f"\nbilled {bill['period']} from what the cloud received: "
        f"{s['energy_kwh']['consumption']} kWh metered, {n} invoice{'s' * (n != 1)}, "
        f"total {s['amount_total']}")
    if bill["cancelled"]:
        say(f"  cancelled and replaced (issued by an earlier run, the month has more data "
            f"now): {', '.join(str(x) for x in bill['cancelled'])}")
    for path, inv in bill["pdfs"]:
        say(f"  invoice {inv['number']:>3}  {inv['account_name']:<20} {inv['total_due']:>8}  "
            f"{inv['state']:<8} {path}")
    if not n:
        print("  no invoices: nothing billable reached the cloud", file=sys.stderr)
