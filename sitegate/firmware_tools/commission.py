"""``sitegate commission``: the verification round an installer runs before handing over.

Every configured meter is read (``commission_read``); what it answered is checked for
what installations get wrong, each finding with its reason and its fix:

- a consumer drawing negative power: its current transformer is reversed;
- a phase with no voltage while the others have it: a fuse, a breaker, the voltage tap;
- phase currents far apart: a CT not around its conductor, or on the wrong phase;
- one M-Bus id reported by two meters (or configured twice);
- a counter below the value the buffer last stored: a swapped or replaced meter;
- a serial number other than the one in the site file: meters swapped, wrong address;
- chargers configured but not connected, the clock not synchronized, the uplink down.

The checks are pure functions over the reads and what the site file says; the caller
gathers the facts (bus reads, the daemon's status, the clock) and renders the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sitegate.common.sitefile import Meter, SiteConfig
from sitegate.firmware_tools.commission_read import MeterRead

Level = Literal["ok", "warn", "fail"]

PHASES = (("L1", "1-0:32.7.0", "1-0:31.7.0", "1-0:21.7.0"),
          ("L2", "1-0:52.7.0", "1-0:51.7.0", "1-0:41.7.0"),
          ("L3", "1-0:72.7.0", "1-0:71.7.0", "1-0:61.7.0"))
TOTAL_POWER = ("1-0:16.7.0", "1-0:1.7.0")
REVERSE_W = Decimal(20)  # below -20 W on a consumer: not noise, power flows backwards
DEAD_V = Decimal(50)  # a phase under 50 V while another has over 180 V has none
LIVE_V = Decimal(180)
CURRENT_SPREAD_MIN_A = Decimal(5)  # only judged when some phase carries at least 5 A
CURRENT_SPREAD = Decimal("0.1")  # a phase under a tenth of the largest: far apart
# Registers that only count up: M-Bus energy and volume, OBIS x.8.y registers.
COUNTER_NAMES = ("heat_energy", "cooling_energy", "volume", "energy")


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    subject: str  # a meter id, a charger id, or "site"
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class MeterVerdict:
    id: str
    bus: str
    profile: str
    billing_point: str | None
    role: str
    address: str  # unit 3, primary 5, secondary 12345678
    serial_configured: str | None
    read: MeterRead
    findings: list[Finding] = field(default_factory=list)

    @property
    def verdict(self) -> Level:
        return _worst(f.level for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "bus": self.bus, "profile": self.profile,
                "billing_point": self.billing_point, "role": self.role,
                "address": self.address, "serial_configured": self.serial_configured,
                "serial_reported": self.read.serial, "values": self.read.values,
                "error": self.read.error, "verdict": self.verdict,
                "findings": [f.to_dict() for f in self.findings]}


@dataclass
class Report:
    gateway_id: str
    started: str
    finished: str
    meters: list[MeterVerdict]
    chargers: list[dict[str, Any]]  # {"id", "connected", "vendor", "model", "verdict"}
    site: list[Finding]  # clock, uplink, chargers, M-Bus ids across meters

    @property
    def findings(self) -> list[Finding]:
        return self.site + [f for m in self.meters for f in m.findings]

    @property
    def verdict(self) -> Level:
        return _worst(f.level for f in self.findings)

    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "warn": 0, "fail": 0}
        for m in self.meters:
            out[m.verdict] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"gateway_id": self.gateway_id, "started": self.started,
                "finished": self.finished, "verdict": self.verdict,
                "meters": [m.to_dict() for m in self.meters], "chargers": self.chargers,
                "site": [f.to_dict() for f in self.site], "counts": self.counts()}

    def summary(self, max_findings: int = 200) -> dict[str, Any]:
        """What goes to the cloud: the verdicts and every problem (bounded), no values."""
        problems = [f.to_dict() for f in self.findings if f.level != "ok"]
        return {"gateway_id": self.gateway_id, "started": self.started,
                "finished": self.finished, "verdict": self.verdict,
                "meters": len(self.meters), "meter_verdicts": self.counts(),
                "chargers": len(self.chargers),
                "chargers_connected": sum(1 for c in self.chargers if c.get("connected")),
                "problems": problems[:max_findings],
                "problems_left_out": max(0, len(problems) - max_findings)}


def _worst(levels: Any) -> Level:
    found = set(levels)
    return "fail" if "fail" in found else "warn" if "warn" in found else "ok"


def _num(values: dict[str, list[str]], quantity: str) -> Decimal | None:
    v = values.get(quantity)
    if not v:
        return None
    try:
        return Decimal(v[0])
    except (InvalidOperation, IndexError):
        return None


def address_of(m: Meter) -> str:
    if m.unit is not None:
        return f"unit {m.unit}"
    if m.address is not None:
        return f"primary {m.address}"
    return f"secondary {m.secondary}"


# -- per meter ------------------------------------------------------------------------------


def check_meter(m: Meter, read: MeterRead, last: dict[str, Decimal]) -> list[Finding]:
    if read.error is not None:
        return [_unread(m, read)]
    out = (_reversed(m, read) + _phases(m, read) + _serial(m, read)
           + _counters(m, read, last))
    if not out:
        out.append(Finding("read", "ok", m.id, f"{len(read.values)} value(s) read"))
    return out


def _unread(m: Meter, read: MeterRead) -> Finding:
    kind = read.error_kind or ""
    if kind == "collision":
        fix = ("two meters share this address or id: give one another primary address "
               "(`sitegate mbus set-address`) or address them by secondary id")
    elif kind in ("crc_error", "garbled"):
        fix = "garbled replies: check baud rate and parity against the meter, termination"
    elif kind == "bus_error":
        fix = "the bus itself fails: check the adapter or converter (`sitegate doctor`)"
    else:
        fix = (f"check the meter's {address_of(m)} (`sitegate modbus scan`, `sitegate mbus "
               "scan`), its wiring (A/B) and its power")
    return Finding("read", "fail", m.id, f"not read: {read.error}", fix)


def _reversed(m: Meter, read: MeterRead) -> list[Finding]:
    if m.role != "consumer":
        return []
    backwards = [(phase, w) for phase, _v, _a, q in PHASES
                 if (w := _num(read.values, q)) is not None and w < -REVERSE_W]
    if backwards:
        which = ", ".join(ph for ph, _ in backwards)
        shown = ", ".join(f"{ph} {w} W" for ph, w in backwards)
        return [Finding("reversed CT", "fail", m.id,
                        f"negative power on a consumer ({shown}): the current transformer "
                        f"of {which} is reversed (or its S1/S2 wires swapped)",
                        f"turn the {which} current transformer(s) around (arrow toward the "
                        "load) or swap S1/S2; a direct meter: swap its incoming and outgoing "
                        "conductors; a meter of generation: set role = \"producer\"")]
    for q in TOTAL_POWER:
        w = _num(read.values, q)
        if w is not None and w < -REVERSE_W:
            return [Finding("reversed CT", "fail", m.id,
                            f"power {w} W on a consumer: energy flows backwards through the "
                            "meter (a reversed CT, or incoming and outgoing swapped)",
                            "check the direction of every CT (arrow toward the load), or set "
                            "role = \"producer\" if this meter measures generation")]
    return []


def _phases(m: Meter, read: MeterRead) -> list[Finding]:
    volts = {ph: _num(read.values, v) for ph, v, _a, _p in PHASES}
    known = {ph: v for ph, v in volts.items() if v is not None}
    out = []
    if len(known) == 3 and any(v > LIVE_V for v in known.values()):
        for ph, v in known.items():
            if v < DEAD_V:
                live = ", ".join(f"{p} {x} V" for p, x in known.items() if x >= LIVE_V)
                out.append(Finding("missing phase", "fail", m.id,
                                   f"phase {ph} has {v} V while {live}",
                                   f"check the {ph} fuse or breaker ahead of the meter and "
                                   f"the {ph} voltage connection at its terminals"))
    amps = {ph: _num(read.values, a) for ph, _v, a, _p in PHASES}
    have = {ph: a for ph, a in amps.items() if a is not None}
    if len(have) == 3 and not out:
        top = max(have.values())
        low = [ph for ph, a in have.items() if a < top * CURRENT_SPREAD]
        if top >= CURRENT_SPREAD_MIN_A and low:
            shown = " / ".join(f"{ph} {a} A" for ph, a in have.items())
            out.append(Finding("phase currents", "warn", m.id,
                               f"phase currents far apart ({shown})",
                               f"if the load is three-phase: check that the {', '.join(low)} "
                               "CT is closed around its own phase's conductor"))
    return out


def _serial(m: Meter, read: MeterRead) -> list[Finding]:
    if m.serial is None:
        return []
    if read.serial is None:
        return [Finding("serial number", "warn", m.id,
                        f"the site file says {m.serial}; the meter does not report one "
                        f"(profile {m.profile} names no serial register)",
                        "compare the label with the site file by eye")]
    if _same_serial(m.serial, read.serial):
        return [Finding("serial number", "ok", m.id, f"{read.serial} as in the site file")]
    return [Finding("serial number", "fail", m.id,
                    f"the meter at {address_of(m)} reports serial {read.serial}, the site "
                    f"file says {m.serial}",
                    "meters swapped or a wrong address: correct the address (or the serial) "
                    "in the site file, or re-address the meter")]


def _same_serial(configured: str, reported: str) -> bool:
    a, b = configured.strip().upper(), reported.strip().upper()
    return a == b or (a.isdigit() and b.isdigit() and int(a) == int(b))


def is_counter(quantity: str) -> bool:
    return ".8." in quantity or quantity.split(".")[0] in COUNTER_NAMES


def _counters(m: Meter, read: MeterRead, last: dict[str, Decimal]) -> list[Finding]:
    out = []
    for q, (_value, unit) in sorted(read.values.items()):
        if not is_counter(q) or q not in last:
            continue
        now = _num(read.values, q)
        if now is not None and now < last[q]:
            out.append(Finding("counter", "fail", m.id,
                               f"{q} reads {now} {unit}, below the {last[q]} {unit} stored "
                               "before",
                               "a replaced meter: record the replacement in the cloud's site "
                               "model; otherwise another meter answers at this address"))
    return out


# -- across meters and the site --------------------------------------------------------------


def check_mbus_ids(cfg: SiteConfig, verdicts: list[MeterVerdict]) -> None:
    """One M-Bus id (the first 8 digits of the secondary address) on two meters: reported
    by both, or configured twice. Added to each meter concerned."""
    by_id: dict[str, list[MeterVerdict]] = {}
    protocols = {b.name: b.protocol for b in cfg.buses}
    for v in verdicts:
        if protocols.get(v.bus) != "mbus":
            continue
        ident = (v.read.secondary or "")[:8] or None
        if ident is None:
            meter = cfg.meter(v.id)
            ident = (meter.secondary or "")[:8] or None
        if ident:
            by_id.setdefault(ident.upper(), []).append(v)
    for ident, same in by_id.items():
        if len(same) < 2:
            continue
        names = ", ".join(f"{v.id} ({v.address})" for v in same)
        for v in same:
            v.findings.append(Finding(
                "duplicate M-Bus id", "fail", v.id,
                f"M-Bus id {ident} is reported by {len(same)} meters: {names}",
                "a secondary-address read or search cannot tell them apart: address these "
                "meters by distinct primary addresses (`sitegate mbus set-address "
                "--address A --new N`), never by secondary"))


def check_chargers(cfg: SiteConfig, listed: list[dict[str, Any]] | None,
                   why_unknown: str = "") -> tuple[list[dict[str, Any]], list[Finding]]:
    configured = [cp.id for cp in (cfg.ocpp.charge_points if cfg.ocpp is not None else [])]
    if not configured:
        return [], []
    if listed is None:
        rows = [{"id": c, "connected": None, "verdict": "fail"} for c in configured]
        return rows, [Finding("chargers", "fail", "site",
                              f"{len(configured)} charger(s) not checked: {why_unknown}",
                              "start the daemon (`sudo systemctl start sitegate`) and run "
                              "commission again")]
    connected = {c.get("id"): c for c in listed}
    rows, out = [], []
    for cp in configured:
        c = connected.get(cp)
        if c is None:
            rows.append({"id": cp, "connected": False, "verdict": "fail"})
            out.append(Finding("chargers", "fail", cp, "configured but not connected",
                               "check the charger's OCPP backend URL (this gateway's "
                               "address and port, path /<charger id>), its network link and "
                               "its password"))
        else:
            rows.append({"id": cp, "connected": True, "vendor": c.get("vendor"),
                         "model": c.get("model"), "verdict": "ok"})
            out.append(Finding("chargers", "ok", cp, "connected"))
    return rows, out


def check_uplink(cfg: SiteConfig, status: dict[str, Any] | None,
                 why_unknown: str = "") -> list[Finding]:
    if cfg.mqtt is None:
        return [Finding("uplink", "fail", "site", "no uplink configured ([mqtt] absent)",
                        "add the [mqtt] table (broker address) to the site file")]
    if status is None:
        return [Finding("uplink", "fail", "site", f"not checked: {why_unknown}",
                        "start the daemon (`sudo systemctl start sitegate`)")]
    sync = (status.get("services") or {}).get("SyncClient") or {}
    if sync.get("connected"):
        return [Finding("uplink", "ok", "site", f"connected to {cfg.mqtt.broker}")]
    extra = f" ({sync['enrolment']})" if sync.get("enrolment") else ""
    return [Finding("uplink", "fail", "site",
                    f"not connected to {cfg.mqtt.broker}{extra}",
                    "run `sitegate doctor`: it checks the broker's reachability and the "
                    "certificate; a new gateway needs its claim token (`sitegate enrol`)")]


def check_clock(state: str, source: str) -> list[Finding]:
    if state == "synchronized":
        return [Finding("clock", "ok", "site", f"synchronized ({source})")]
    return [Finding("clock", "fail" if state == "unsynchronized" else "warn", "site",
                    f"{'not synchronized' if state == 'unsynchronized' else 'unknown'} "
                    f"({source}): readings are flagged clock_unsynced",
                    "check that systemd-timesyncd or chrony runs and reaches an NTP server "
                    "(`timedatectl timesync-status`)")]


def verdicts(cfg: SiteConfig, reads: dict[str, MeterRead],
             last: dict[str, dict[str, Decimal]]) -> list[MeterVerdict]:
    out = []
    for m in cfg.meters:
        read = reads.get(m.id) or MeterRead(m.id, error="not read", error_kind="bus_error")
        v = MeterVerdict(m.id, m.bus, m.profile, m.billing_point, m.role, address_of(m),
                         m.serial, read, check_meter(m, read, last.get(m.id, {})))
        out.append(v)
    check_mbus_ids(cfg, out)
    return out
