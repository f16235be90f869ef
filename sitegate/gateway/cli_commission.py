"""``sitegate commission``: verify the whole site and write the handover report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitegate.common.output import emit
from sitegate.gateway.cli_core import DEFAULT_CONFIG, config_or_exit


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("commission", help="read every meter, check what installations get "
                       "wrong, write the handover report (HTML and PDF) and send its "
                       "summary to the cloud (exit 1 when a check fails)")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--out", default=".", help="directory for the report (default: here)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_commission)


def cmd_commission(args: argparse.Namespace) -> int:
    from sitegate.drivers.diagnose import quiet_pymodbus
    from sitegate.firmware_tools import commission as c
    from sitegate.firmware_tools.commission_files import write_reports
    from sitegate.gateway.control import ControlError, call
    from sitegate.gateway.profiles import driver_quantities

    cfg = config_or_exit(args.config, driver_quantities)
    out_dir = Path(args.out)
    if not out_dir.is_dir():
        print(f"sitegate: {out_dir} is not a directory", file=sys.stderr)
        return 2
    quiet_pymodbus()
    started = datetime.now(UTC)
    errors = (ControlError, OSError, ValueError)

    def ask(command: str, cmd_args: dict[str, Any] | None = None,
            timeout: float = 10) -> Any:
        return call(cfg.health.socket, command, cmd_args, timeout=timeout)

    status: dict[str, Any] | None
    try:
        status = ask("status")
        why = ""
    except errors as exc:
        status, why = None, str(exc)
    if status is not None:  # the daemon owns the buses: it reads, between its polls
        try:
            got = ask("commission.read", {"meters": [m.id for m in cfg.meters]},
                      timeout=_round_time(cfg))
            reads = {k: c.MeterRead.from_dict(v) for k, v in got["reads"].items()}
        except errors as exc:
            print(f"sitegate: the daemon did not read the meters: {exc}", file=sys.stderr)
            return 2
    else:
        reads = asyncio.run(_read_directly(cfg))
    last = _last_counters(cfg.storage.path)
    verdicts = c.verdicts(cfg, reads, last)
    listed = None
    if status is not None and cfg.ocpp is not None:
        try:
            listed = ask("ocpp.list")["charge_points"]
        except errors as exc:
            why = str(exc)
    chargers, charger_findings = c.check_chargers(cfg, listed, why)
    state, source = _clock()
    site = (c.check_clock(state, source) + c.check_uplink(cfg, status, why)
            + charger_findings)
    report = c.Report(cfg.gateway_id, started.isoformat(timespec="seconds"),
                      datetime.now(UTC).isoformat(timespec="seconds"), verdicts, chargers,
                      site)
    data = report.to_dict()
    files, pdf_problem = write_reports(data, args.config, out_dir, started)
    sent = None
    if status is not None:
        try:
            sent = ask("commission.report", {"summary": report.summary()})
        except errors as exc:
            sent = {"sent": False, "why": str(exc)}
    data.update({"files": files, "pdf_problem": pdf_problem,
                 "uplink": sent or {"sent": False, "why": f"not sent: {why}"}})
    emit(data, args.json, _text(data))
    return 1 if data["verdict"] == "fail" else 0


def _round_time(cfg: Any) -> float:
    """Seconds the daemon may take for the round: every meter's worst case, bus by bus."""
    per_bus: dict[str, float] = {}
    for m in cfg.meters:
        bus = cfg.bus(m.bus)
        per_bus[bus.name] = per_bus.get(bus.name, 0) + (bus.retries + 1) * bus.timeout * 6
    return 30 + max(per_bus.values(), default=0)


async def _read_directly(cfg: Any) -> dict[str, Any]:
    """No daemon: our own client per bus, the buses in parallel, meters in turn."""
    from sitegate.firmware_tools.commission_read import MeterRead, read_meter
    from sitegate.gateway.buses import make_client, meter_ref

    async def bus_round(bus: Any) -> dict[str, MeterRead]:
        meters = [m for m in cfg.meters if m.bus == bus.name]
        out: dict[str, MeterRead] = {}
        if not meters:
            return out
        client = make_client(bus)
        try:
            for m in meters:
                out[m.id] = await read_meter(client, meter_ref(m), bus.protocol)
        finally:
            try:
                await client.close()
            except Exception:  # noqa: BLE001, S110 - closing a link that never opened
                pass
        return out

    found: dict[str, Any] = {}
    for part in await asyncio.gather(*(bus_round(b) for b in cfg.buses)):
        found.update(part)
    return found


def _last_counters(path: str) -> dict[str, dict[str, Any]]:
    from sitegate.firmware_tools.commission_files import last_counters

    try:
        return last_counters(path)
    except Exception:  # noqa: BLE001 - no buffer yet, or not ours to read: nothing to compare
        return {}


def _clock() -> tuple[str, str]:
    from sitegate.firmware_tools.doctor import clock_state
    from sitegate.gateway.clock import clock_state as kernel

    return clock_state(kernel)


def _text(data: dict[str, Any]) -> str:
    from sitegate.firmware_tools.commission_report import VERDICT_TEXT, problems

    c = data["counts"]
    lines = [f"{data['gateway_id']}: {len(data['meters'])} meter(s): {c['ok']} OK, "
             f"{c['warn']} to check, {c['fail']} failed; {len(data['chargers'])} charger(s)"]
    for f in problems(data):
        lines.append(f"[{VERDICT_TEXT[f['level']]}] {f['subject']}: {f['check']}: {f['detail']}")
        if f["fix"]:
            lines.append(f"       fix: {f['fix']}")
    lines.append(f"verdict: {VERDICT_TEXT[data['verdict']]}")
    for f in data["files"]:
        lines.append(f"report: {f}")
    if data["pdf_problem"]:
        lines.append(f"no PDF: {data['pdf_problem']}")
    up = data["uplink"]
    lines.append(f"summary for the cloud: {up['how']}" if up.get("sent")
                 else f"summary not sent to the cloud ({up.get('why')})")
    return "\n".join(lines)

