"""``run_demo``: start every part of the demo site in one event loop, stop them in order.

Start: simulated Modbus and M-Bus meters, the MQTT broker (unless one is given), the cloud
(ingest, API, billing model), the gateway daemon, then the charge points that connect to it.
Stop (Ctrl-C or --duration): chargers end their sessions, the gateway hands its backlog to
the cloud, the daemon and the cloud stop, and the month is billed from what the cloud has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import signal
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from sitegate.common.sitefile import parse_config
from sitegate.demo import expense, heat_water, history, mbus_meters, sessions_history, site
from sitegate.demo.broker import Broker
from sitegate.demo.building import Building
from sitegate.demo.chargers import ChargerFleet
from sitegate.demo.cloud import Cloud, free_port
from sitegate.demo.laundry import POINT_ID, LaundryRoom, relays_config
from sitegate.demo.loadwatch import LoadWatch
from sitegate.demo.output import Printer
from sitegate.drivers.mbus.emulator import Emulator
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
    """Wait (bounded) until the cloud acknowledged every row read (buffered, or still on
    its way to the buffer); the rows left."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        assert daemon.buffer is not None and daemon.writer is not None
        left = sum(s["unacknowledged"] for s in daemon.buffer.stats()["streams"].values())
        left += daemon.writer.health()["pending_rows"]
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


async def _history(modbus: ModbusSimulator, mbus: list[mbus_meters.DemoMeter],
                   cloud: Cloud) -> history.History:
    """A month of simulated history into the cloud, the live meters continuing from it:
    the electricity meters' quarter-hours since the 1st, the heat and water meters' hours
    since the start of the accounting period."""
    units = {mid: unit for unit, _p, mid, _l in site.MODBUS_METERS}
    main, pv = (next(m for m, u in units.items() if u == unit)
                for unit in (site.MAIN_METER_UNIT, site.PV_METER_UNIT))
    start = history.start_values({m: dict(modbus.meters[u].values) for m, u in units.items()},
                                 main, pv)
    consumers = {m: MEAN_USE.get(m, 0.08) for m in units if m not in (main, pv)}
    tz = ZoneInfo(TIMEZONE)
    now = datetime.now(UTC)
    sessions = sessions_history.simulate(history.month_start(now, tz), now, tz)
    # what the sessions drew is not added to the grid connection's history: the billing
    # model has no meter for the chargers, so billing would call it unexplained import
    hist = history.simulate(now, tz, start, consumers, main, pv)
    first, _end = heat_water.period(now.astimezone(tz).date())
    hw, hw_last, hw_end = heat_water.simulate([d.meter for d in mbus], first, now, tz)
    both = dataclasses.replace(hist, readings=hist.readings + hw)
    rows = await asyncio.to_thread(history.ingest, cloud.engine, site.GATEWAY_ID, both,
                                   sessions_history.batches(sessions))
    for meter, regs in hist.last.items():  # the live meters go on from there
        sim = modbus.meters[units[meter]]
        for reg in sim.profile.registers:
            if reg.quantity in regs:
                sim.set(reg, regs[reg.quantity])
    for d in mbus:
        d.set(hw_last[d.meter.meter_id])
    ev = sum(s.kind == "ev" for s in sessions)
    say(f"simulated history: {rows} readings (SIMULATED, flagged '{history.FLAG}', buffer "
        f"epoch '{history.EPOCH}'): the {len(hist.last)} electricity meters every "
        f"quarter-hour from {hist.start.astimezone(tz):%Y-%m-%d %H:%M} to "
        f"{hist.end.astimezone(tz):%Y-%m-%d %H:%M}, the {len(mbus)} heat and water meters "
        f"every hour from {first:%Y-%m-%d} 00:00 to {hw_end.astimezone(tz):%Y-%m-%d %H:%M}, "
        f"and {ev} charging and {len(sessions) - ev} laundry sessions of the tenants, so "
        "that the month's invoices and the heating and water statements have something "
        "to bill; from here on the values are live from the demo's meters and chargers\n")
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
    heat_water_meters = mbus_meters.demo_meters()
    mbus = Emulator([d.emulated for d in heat_water_meters], baud=None)
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
        hist = await _history(modbus, heat_water_meters, cloud)
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
        await daemon.stop_polling()  # the last readings, then nothing new to send
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
        settled = await asyncio.to_thread(_settle, cloud, workdir)
        _report_statements(settled)
        _summary(workdir, bill, settled, cloud.db, hist)
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


def _settle(cloud: Cloud, workdir: Path) -> dict:
    """Heating and water of the accounting period (1st of the month to today)."""
    first, end = heat_water.period(datetime.now(ZoneInfo(TIMEZONE)).date())
    return expense.settle(cloud.engine, site.SITE_ID, f"{first:%Y-%m}", first, end, workdir)


def _summary(workdir: Path, bill: dict, settled: dict, db: str,
             hist: history.History) -> None:
    """Where each artefact is, and what to open first."""
    sg, sgc = _command("sitegate"), _command("sitegate-cloud")
    pdfs = [path for path, _inv in bill["pdfs"]]
    statements = [path for path, _view in settled["statements"]]
    pid = settled["period"]
    rows = [
        (f"invoice-{bill['period']}-*.pdf", "the tenants' electricity invoices (Swiss "
         "QR-bill, usage by day on page 2)" + (f": open {pdfs[0].name} first" if pdfs else "")),
        (f"statement-{pid}-*.pdf", "the tenants' heating and water statements"
         + (f": then {statements[0].name}" if statements else "")),
        ("cloud.db", f"the cloud's database: {sgc} invoice list --db {db}"),
        ("", f"  {sgc} readings --db {db} --meter apt-1"),
        ("", f"  {sgc} expense show {pid} --db {db} --account muster"),
        ("buffer.db", f"the gateway's buffer: {sg} buffer stats --db {workdir / 'buffer.db'}"),
        ("site.toml", f"the gateway's site file: {sg} check-config {workdir / 'site.toml'}"),
        ("billing-site.toml", "the billing model (tenants, tariffs, the solar community, "
         "the heat and water meters)"),
        ("expense-period.toml", "the heating and water accounting period (categories, keys)"),
        ("loadmgmt.jsonl", "each load management decision, with the headroom it was made from"),
    ]
    if (workdir / "api-token").exists():
        rows.append(("api-token", "a read token for the HTTP API (curl line above)"))
    tz = ZoneInfo(TIMEZONE)
    say(f"\nwhat is where, in {workdir}:\n"
        + "\n".join(f"  {name:<24} {what}" for name, what in rows)
        + f"\nthe readings before {hist.end.astimezone(tz):%Y-%m-%d %H:%M} and the sessions "
          f"before the demo started are simulated history (flag '{history.FLAG}'); the rest "
          "came live from the demo's meters and chargers")


def _report_statements(settled: dict) -> None:
    n = len(settled["statements"])
    last = settled["to"] - timedelta(days=1)
    say(f"\nsettled heating and water {settled['from']:%Y-%m-%d} to {last:%Y-%m-%d} "
        f"(period {settled['period']}): costs {settled['total_costs']}, "
        f"{n} statement{'s' * (n != 1)}")
    if settled["cancelled"]:
        say(f"  cancelled and replaced (issued by an earlier run): "
            f"{', '.join(str(x) for x in settled['cancelled'])}")
    for path, view in settled["statements"]:
        doc = view["document"]
        due = doc["total_due"]
        what = f"refund {due.lstrip('-')}" if doc.get("refund") else f"due {due}"
        say(f"  statement {view['number']:>3}  {doc['account']['name']:<20} "
            f"{what:>14}  {view['state']:<8} {path}")
    if not n:
        print("  no statements: no heat or water readings reached the cloud", file=sys.stderr)


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
