"""Remote control: ``list``, ``remote-start``, ``remote-stop``, ``unlock``, ``reset``,
``set-limit``, ``trigger``, ``get-config``, ``change-config``.

Same entry point for the technician's CLI (through the daemon's control socket) and for
cloud commands. Answers are plain JSON-ready dicts; bad requests raise ``CommandError``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sitegate.ocpp_server.service import CentralSystem

COMMANDS = ("list", "remote-start", "remote-stop", "unlock", "reset", "set-limit", "trigger",
            "get-config", "change-config")
TRIGGERS = ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification",
            "FirmwareStatusNotification", "DiagnosticsStatusNotification")


class CommandError(ValueError):
    pass


def _need(args: dict[str, Any], key: str) -> Any:
    if args.get(key) in (None, ""):
        raise CommandError(f"missing argument {key!r}")
    return args[key]


def _int(args: dict[str, Any], key: str, default: int | None = None) -> int | None:
    v = args.get(key, default)
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"{key!r} must be an integer, not {v!r}") from exc


async def run(cs: CentralSystem, name: str, args: dict[str, Any]) -> dict[str, Any]:
    if name == "list":
        return {"charge_points": list_charge_points(cs)}
    if name not in COMMANDS:
        raise CommandError(f"unknown OCPP command {name!r}; one of {', '.join(COMMANDS)}")
    conn = cs.connection(str(_need(args, "charge_point")))
    cp = conn.cp
    if name == "remote-start":
        status = await cp.remote_start(str(_need(args, "badge")), _int(args, "connector"))
    elif name == "remote-stop":
        txs = [t for t in cs.core.store.open_txs(conn.cp_id)
               if args.get("connector") is None or t.connector == _int(args, "connector")]
        if args.get("session"):
            txs = [t for t in txs if t.session_id == args["session"]]
        if len(txs) != 1:
            raise CommandError(f"{len(txs)} running sessions match on {conn.cp_id}; "
                               "give 'connector' or 'session'")
        status = await cp.remote_stop(txs[0])
    elif name == "unlock":
        status = await cp.unlock(_int(args, "connector", 1))
    elif name == "reset":
        status = await cp.reset(bool(args.get("hard", False)))
    elif name == "set-limit":
        connector = _int(args, "connector", 1)
        assert connector is not None
        try:
            amps = Decimal(str(_need(args, "amps")))
        except InvalidOperation as exc:
            raise CommandError("'amps' must be a number") from exc
        if amps < 0 or amps > conn.config.max_current:
            raise CommandError(f"'amps' must be between 0 and {conn.config.max_current}")
        tx = next((t for t in cs.core.store.open_txs(conn.cp_id) if t.connector == connector),
                  None)
        conn.profiles_disabled = False  # a technician asking explicitly gets another try
        conn.profile_rejects = 0
        in_force = conn.limit_in_force(connector, tx.id if tx else None)
        if (cs.load.cfg.enabled and conn.managed and tx is not None
                and in_force is not None and amps > in_force):
            # A raise under load management goes out with the next pass, only as far as it
            # fits beside the others: a technician must not be able to trip the main fuse.
            status = "Scheduled"
        else:
            status = await cs.load.push_one(conn, connector, amps, tx)
        cs.set_manual_cap(conn.cp_id, connector, amps)  # load management respects it
    elif name == "trigger":
        message = str(_need(args, "message"))
        if message not in TRIGGERS:
            raise CommandError(f"'message' must be one of {', '.join(TRIGGERS)}")
        status = await cp.trigger(message, _int(args, "connector"))
    elif name == "get-config":
        keys = args.get("keys") or None
        return {"charge_point": conn.cp_id, **(await cp.get_config(keys))}
    else:  # change-config
        status = await cp.change_config(str(_need(args, "key")), str(_need(args, "value")))
    return {"charge_point": conn.cp_id, "status": status}


def list_charge_points(cs: CentralSystem) -> list[dict[str, Any]]:
    out = []
    open_txs = cs.core.store.open_txs()
    for conn in sorted(cs.core.connections.values(), key=lambda c: c.cp_id):
        sessions = []
        for t in open_txs:
            if t.cp_id != conn.cp_id:
                continue
            energy = (t.last_meter - t.meter_start) if t.last_meter is not None else None
            sessions.append({"session_id": t.session_id, "connector": t.connector,
                             "badge": t.badge, "start": t.start_ts.isoformat(),
                             "energy_wh": str(energy) if energy is not None else None})
        out.append({
            "id": conn.cp_id, "version": conn.version, "kind": conn.config.kind,
            "accepted": conn.accepted, "vendor": conn.vendor, "model": conn.model,
            "connected_at": conn.connected_at.isoformat(),
            "connectors": {str(k): v for k, v in sorted(conn.connectors.items())},
            "sessions": sessions,
            "limits_a": {str(k): str(v) for k, v in sorted(conn.limits.items())},
            "rate_unit": conn.rate_unit,
            "profiles_disabled": conn.profiles_disabled,
        })
    return out
