"""``sitegate doctor``: what is wrong with this gateway, and what to do about it.

Every check is a function returning ``Check`` records (name, ok/warn/fail, what is wrong,
what to do), so the CLI, ``--json`` and later the cloud's remote ``doctor`` share one
result. Checks only look: they never change the system and never need the daemon (the
daemon's own health is one of them). A check that breaks reports itself as failed instead
of ending the run with a traceback.

The gateway's own modules (control socket, kernel clock) are handed in by the caller, as
firmware_tools sits below the gateway in the dependency order.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sitegate.common.sitefile import SiteConfig
from sitegate.firmware_tools.identity import Identity, IdentityError, state_dir

Level = Literal["ok", "warn", "fail"]

# The clock check asks this command (an installer may point it elsewhere, e.g. chronyc
# wrapped to print NTPSynchronized=yes|no); without systemd it falls back to the kernel.
CLOCK_CMD_ENV = "SITEGATE_CLOCK_CMD"
CLOCK_CMD = "timedatectl show -p NTPSynchronized"
CONNECT_TIMEOUT = 3.0
DISK_FAIL_BYTES = 50 * 1024 * 1024
DISK_WARN_SHARE = 0.10
BACKLOG_WARN_AGE = timedelta(hours=1)
CERT_WARN_LEFT = timedelta(days=7)
ERROR_RATE_WARN = 0.05
ERROR_RATE_FAIL = 0.5
OUTPUT_MAX = 4096  # bytes read from the clock command's output


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# -- serial ports ----------------------------------------------------------------------------


def check_serial_ports(cfg: SiteConfig) -> list[Check]:
    out = []
    for bus in cfg.buses:
        if bus.serial is None:
            continue
        port, name = bus.serial.port, f"serial port of bus {bus.name}"
        if not os.path.exists(port):
            out.append(Check(name, "fail", f"{port} is not present",
                             "plug in the RS485 adapter (or check its cable), see "
                             "`ls /dev/serial/by-id/`, and set that path as the bus's "
                             "serial.port in the site file"))
        elif not os.access(port, os.R_OK | os.W_OK):
            out.append(Check(name, "fail", f"{port}: no read/write permission for user "
                             f"{_user()}",
                             "add the daemon's user to the dialout group "
                             "(`sudo usermod -aG dialout sitegate`) and restart it"))
        else:
            out.append(Check(name, "ok", f"{port} present and accessible"))
    return out


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


# -- clock -----------------------------------------------------------------------------------


def clock_state(kernel_state: Callable[[], str]) -> tuple[str, str]:
    """(synchronized | unsynchronized | unknown, where that came from): NTPSynchronized
    from systemd (or ``$SITEGATE_CLOCK_CMD``), else the kernel's word."""
    cmd = os.environ.get(CLOCK_CMD_ENV) or CLOCK_CMD
    answer, source = _clock_from_command(cmd), cmd.split()[0]
    if answer is None:
        answer, source = kernel_state(), "kernel (adjtimex)"
    return answer, source


def check_clock(kernel_state: Callable[[], str]) -> list[Check]:
    answer, source = clock_state(kernel_state)
    fix = ("check that systemd-timesyncd or chrony runs and reaches an NTP server "
           "(`timedatectl timesync-status`, UDP port 123 open on the uplink); readings "
           "taken meanwhile are flagged clock_unsynced")
    if answer == "synchronized":
        return [Check("clock", "ok", f"synchronized (from {source})")]
    if answer == "unsynchronized":
        return [Check("clock", "fail", f"not synchronized (from {source})", fix)]
    return [Check("clock", "warn", f"cannot tell whether the clock is synchronized "
                  f"(from {source})", fix)]


def _clock_from_command(cmd: str) -> str | None:
    try:
        proc = subprocess.run(shlex.split(cmd), capture_output=True, timeout=5, check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    for line in proc.stdout[:OUTPUT_MAX].decode("utf-8", "replace").splitlines():
        key, _, value = line.strip().partition("=")
        if key == "NTPSynchronized" and proc.returncode == 0:
            return {"yes": "synchronized", "no": "unsynchronized"}.get(value, "unknown")
    return None


# -- disk and backlog ------------------------------------------------------------------------


def check_disk(cfg: SiteConfig) -> list[Check]:
    state = state_dir(cfg.storage.path)
    if not state.is_dir():
        return [Check("disk", "warn", f"state directory {state} does not exist",
                      "start the daemon once (it creates it) or fix storage.path")]
    usage = shutil.disk_usage(state)
    free = f"{usage.free / 2**20:.0f} MB free of {usage.total / 2**20:.0f} MB on {state}"
    if usage.free < DISK_FAIL_BYTES:
        return [Check("disk", "fail", free, "free space on that file system (old logs: "
                      "`journalctl --vacuum-size=50M`); the buffer stops taking readings "
                      "when the disk is full")]
    if usage.free < usage.total * DISK_WARN_SHARE:
        return [Check("disk", "warn", free, "free space soon; see what grows with "
                      f"`du -sh {state}/* /var/log`")]
    return [Check("disk", "ok", free)]


def check_backlog(cfg: SiteConfig, now: datetime | None = None) -> list[Check]:
    """Unsent rows, read from the buffer file read-only (no daemon needed, nothing written)."""
    path = Path(cfg.storage.path)
    if not path.exists():
        return [Check("backlog", "warn", f"no buffer file at {path} yet",
                      "start the daemon; it creates the buffer with its first readings")]
    try:
        rows = _unsent(path)
    except sqlite3.Error as exc:
        if not os.access(path, os.R_OK) or not os.access(path.parent, os.W_OK):
            # a WAL database needs its -shm file even to read: not our user's to touch
            return [Check("backlog", "warn", f"cannot read {path}: {exc}",
                          "run doctor as root or as the daemon's user")]
        return [Check("backlog", "fail", f"cannot read {path}: {exc}",
                      "run `sitegate buffer check`; see the daemon's log")]
    count = sum(n for n, _ in rows.values())
    oldest = min((ts for _, ts in rows.values() if ts), default=None)
    detail = f"{count} unsent row(s)" + (f", oldest {oldest}" if oldest else "")
    age = _age(oldest, now or datetime.now(UTC))
    if age is not None and age > BACKLOG_WARN_AGE:
        return [Check("backlog", "warn", detail,
                      "the uplink is not sending: see the broker check and `sitegate status`")]
    return [Check("backlog", "ok", detail)]


def _unsent(path: Path) -> dict[str, tuple[int, str | None]]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    try:
        found = conn.execute(
            "SELECT e.stream, COUNT(*), MIN(e.ts) FROM entries e JOIN streams s "
            "ON s.stream = e.stream WHERE e.seq > s.acked_upto GROUP BY e.stream").fetchall()
    finally:
        conn.close()
    return {stream: (n, ts) for stream, n, ts in found}


def _age(ts: str | None, now: datetime) -> timedelta | None:
    if not ts:
        return None
    try:
        t = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return now - (t if t.tzinfo else t.replace(tzinfo=UTC))


# -- broker and certificate ------------------------------------------------------------------


def check_broker(cfg: SiteConfig) -> list[Check]:
    if cfg.mqtt is None:
        return [Check("broker", "ok", "no uplink configured ([mqtt] absent)")]
    host, port, _ = cfg.mqtt.host_port()
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return [Check("broker", "fail", f"{host}:{port} not reachable ({reason})",
                      "check the uplink (router, 4G, `ping " + host + "`), DNS, the firewall "
                      "(outgoing TCP " + str(port) + ") and that the broker runs")]
    return [Check("broker", "ok", f"{host}:{port} reachable")]


def check_certificate(cfg: SiteConfig, now: datetime | None = None) -> list[Check]:
    identity = Identity.of_state(state_dir(cfg.storage.path))
    tls = cfg.mqtt is not None and cfg.mqtt.broker.startswith("mqtts://")
    if not identity.cert_file.exists():
        if tls and not cfg.mqtt.cert_file:  # type: ignore[union-attr]
            return [Check("certificate", "warn", f"not enrolled (no {identity.cert_file})",
                          "enrol: `sitegate enrol --claim TOKEN`")]
        return []
    try:
        cert = identity.certificate()
    except IdentityError as exc:
        return [Check("certificate", "fail", str(exc), "enrol again: `sitegate enrol "
                      "--claim TOKEN` with a new token")]
    now = now or datetime.now(UTC)
    end = cert.not_valid_after_utc
    if end <= now:
        return [Check("certificate", "fail", f"expired {end.isoformat()}",
                      "the broker refuses it: enrol again with a new claim token "
                      "(`sitegate-cloud gateways claim-token`, then `sitegate enrol --claim`)")]
    if end - now < CERT_WARN_LEFT:
        return [Check("certificate", "warn", f"expires {end.isoformat()}",
                      "renew now: `sitegate enrol --renew`")]
    return [Check("certificate", "ok", f"valid until {end.isoformat()}")]


# -- the daemon ------------------------------------------------------------------------------


def check_daemon(status: Callable[[], dict[str, Any]], errors: tuple[type[Exception], ...]
                 ) -> tuple[list[Check], dict[str, Any] | None]:
    """One clear line on the daemon, and its status (None when it does not answer)."""
    try:
        h = status()
    except errors as exc:
        return [Check("daemon", "fail", str(exc),
                      "start it: `sudo systemctl start sitegate`; why it stopped: "
                      "`journalctl -u sitegate -n 50`")], None
    return [Check("daemon", "ok", f"running since {h.get('started', '?')}")], h


def check_buses(h: dict[str, Any]) -> list[Check]:
    """Each bus's error rate over the reads since the daemon started, and what it suggests."""
    out = []
    for bus in h.get("buses") or []:
        meters = bus.get("meters") or []
        reads = sum(int(m.get("reads") or 0) for m in meters)
        kinds: dict[str, int] = {}
        for m in meters:
            for k, n in (m.get("errors") or {}).items():
                kinds[str(k)] = kinds.get(str(k), 0) + int(n)
        failed = sum(kinds.values())
        name = f"bus {bus.get('bus')}"
        if reads == 0:
            out.append(Check(name, "ok", "no reads yet"))
            continue
        rate = failed / reads
        detail = f"{failed} of {reads} reads failed ({rate:.0%})" + (
            ": " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) if kinds else "")
        if bus.get("bus_error"):
            detail += f"; bus error: {bus['bus_error']}"
        level: Level = ("fail" if rate >= ERROR_RATE_FAIL
                        else "warn" if rate >= ERROR_RATE_WARN else "ok")
        out.append(Check(name, level, detail, _bus_fix(kinds) if level != "ok" else ""))
    return out


def _bus_fix(kinds: dict[str, int]) -> str:
    garbled = sum(n for k, n in kinds.items() if k in ("crc_error", "garbled"))
    silent = kinds.get("no_response", 0)
    if kinds.get("bus_error", 0) >= max(garbled, silent):
        return "the link itself fails: check the adapter or converter and its port"
    if garbled >= silent:
        return ("garbled replies: check baud rate and parity against the meters, "
                "termination (120 ohm at both ends) and the cable's shield")
    return ("meters do not answer: check their addresses (`sitegate modbus scan`), "
            "the A/B wiring and the meters' power")


def check_watchdog(h: dict[str, Any], now: datetime | None = None) -> list[Check]:
    """The daemon's pings of the systemd watchdog: a loop that stopped pinging is killed and
    restarted by systemd; one not under the watchdog is restarted by nobody when it hangs."""
    w = h.get("watchdog")
    if not isinstance(w, dict):
        return []
    interval = w.get("interval")
    if not interval:
        return [Check("watchdog", "warn", "not under the systemd watchdog (no WatchdogSec "
                      "for this process)", "run the daemon as the sitegate service "
                      "(`systemctl enable --now sitegate`): its unit sets WatchdogSec")]
    age = _age(w.get("last_ping"), now or datetime.now(UTC))
    if age is None or age.total_seconds() > 3 * float(interval):
        return [Check("watchdog", "fail", f"last ping {w.get('last_ping') or 'never'} "
                      f"(every {interval:g} s expected)",
                      "the daemon's event loop is stuck: systemd restarts it; if it keeps "
                      "happening, send `journalctl -u sitegate -n 200` to the developers")]
    return [Check("watchdog", "ok", f"pinged every {interval:g} s, last {w['last_ping']}")]


def check_chargers(cfg: SiteConfig, h: dict[str, Any]) -> list[Check]:
    configured = len(cfg.ocpp.charge_points) if cfg.ocpp is not None else 0
    if not configured:
        return []
    ocpp = (h.get("services") or {}).get("CentralSystem") or {}
    connected = int(ocpp.get("connected") or 0)
    if connected >= configured:
        return [Check("chargers", "ok", f"{connected} of {configured} connected")]
    return [Check("chargers", "warn" if connected else "fail",
                  f"{connected} of {configured} configured charger(s) connected",
                  "`sitegate ocpp list` shows which; check the missing ones' OCPP backend "
                  "URL (this gateway, path /<charger id>), network link and password")]


# -- all together ----------------------------------------------------------------------------


def run_checks(cfg: SiteConfig, kernel_clock: Callable[[], str],
               status: Callable[[], dict[str, Any]],
               status_errors: tuple[type[Exception], ...]) -> list[Check]:
    checks: list[Check] = []
    steps: Iterable[tuple[str, Callable[[], list[Check]]]] = (
        ("serial ports", lambda: check_serial_ports(cfg)),
        ("clock", lambda: check_clock(kernel_clock)),
        ("disk", lambda: check_disk(cfg)),
        ("backlog", lambda: check_backlog(cfg)),
        ("broker", lambda: check_broker(cfg)),
        ("certificate", lambda: check_certificate(cfg)),
    )
    for name, step in steps:
        checks += _guarded(name, step)
    daemon: list[dict[str, Any]] = []

    def _daemon() -> list[Check]:
        found, h = check_daemon(status, status_errors)
        if h is not None:
            daemon.append(h)
        return found

    checks += _guarded("daemon", _daemon)
    if daemon:
        checks += _guarded("buses", lambda: check_buses(daemon[0]))
        checks += _guarded("chargers", lambda: check_chargers(cfg, daemon[0]))
        checks += _guarded("watchdog", lambda: check_watchdog(daemon[0]))
    return checks


def _guarded(name: str, step: Callable[[], list[Check]]) -> list[Check]:
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        return [Check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                      "report this to the sitegate developers")]


def failed(checks: list[Check]) -> bool:
    return any(c.level == "fail" for c in checks)


def render(checks: list[Check]) -> str:
    marks = {"ok": " ok ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"[{marks[c.level]}] {c.name}: {c.detail}")
        if c.fix:
            lines.append(f"       fix: {c.fix}")
    bad = [c for c in checks if c.level == "fail"]
    warn = [c for c in checks if c.level == "warn"]
    lines.append(f"\n{len(bad)} problem(s), {len(warn)} warning(s)")
    return "\n".join(lines)
