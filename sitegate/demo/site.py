"""The demo site, as data: its devices, the gateway's site file and the cloud's billing model.

One building: grid connection, PV, three apartments and the common areas on Modbus; heat and
water meters on M-Bus; three EV chargers and a laundry relay box on OCPP. Tenants pay with
their badges; the billing model names the same meters, badges and accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sitegate.demo import mbus_meters

GATEWAY_ID = "demo-gw"
SITE_ID = "demo"

MODBUS_METERS = [  # (unit, profile, meter id, billing point)
    (1, "eastron_sdm630", "main", "Grid connection"),
    (2, "eastron_sdm630", "pv", "PV inverter"),
    (3, "eastron_sdm630", "apt-1", "Apartment 1"),
    (4, "eastron_sdm630", "apt-2", "Apartment 2"),
    (5, "eastron_sdm630", "apt-3", "Apartment 3"),
    (6, "eastron_sdm630", "common", "Common areas"),
]

MAIN_METER_UNIT = 1  # "main", the grid connection: load management reads its currents
PV_METER_UNIT = 2

# Heat and water meters (real recorded telegrams, registers set by the demo): mbus_meters.
MBUS_METERS = [  # (address, profile, meter id, billing point)
    (m.address, m.profile, m.meter_id, m.label) for m in mbus_meters.METERS]


@dataclass(frozen=True)
class Charger:
    cp_id: str
    kind: str  # "ev" | "laundry"
    badge: str  # the tenant badge that starts its sessions
    amps: str  # the most the car (or machine) draws per phase, whatever the charger allows
    label: str
    polls: int  # a session lasts this many meter-value intervals
    phases: tuple[int, ...] = (1, 2, 3)  # building phases it draws from
    calibrated: bool = False  # its meter signs start and stop readings (OCMF, a test key)


# Ids as sitegate.ocpp_server.simulator names its chargers (SIM0000, ...). Sessions of
# different lengths, so cars arrive and leave while others charge.
CHARGERS = [
    Charger("SIM0000", "ev", "04A1B2C3", "16.0", "Garage place 1", polls=5),
    Charger("SIM0001", "ev", "04D4E5F6", "16.0", "Garage place 2", polls=12),
    Charger("SIM0002", "ev", "04C0FFEE", "13.0", "Garage place 3", polls=9, calibrated=True),
    # A washing machine on L1; the relay box meters energy only, so to load management
    # it is part of the building's base load.
    Charger("SIM0003", "laundry", "04D4E5F6", "8.0", "Laundry room", polls=6, phases=(1,)),
]

# The building's connection, A per phase. Base load (BASE_LOAD, apartments and common areas
# seen by the main meter) plus three cars at 16 A would need ~60 A: with all three charging
# the gateway shares what is left, at least 6 A each (IEC 61851).
CONNECTION_LIMIT = 40
BASE_LOAD = ((9, 15), (7, 13), (8, 14))  # per phase L1..L3: range of the base load, A

ACCOUNTS = [  # (account, name, apartment, badge)
    ("muster", "Anna Muster", "apt-1", "04A1B2C3"),
    ("weber", "Carla Weber", "apt-2", "04D4E5F6"),
    ("keller", "Beat Keller", "apt-3", "04C0FFEE"),
]


def gateway_config(workdir: Path, *, modbus_port: int, mbus_port: int, ocpp_port: int,
                   broker: str, interval: int) -> str:
    """The gateway's site file (TOML), as an installer would write it."""
    out = [
        f'gateway_id = "{GATEWAY_ID}"\n',
        f'[storage]\npath = "{workdir}/buffer.db"\n',
        f'[health]\nsocket = "{workdir}/sitegate.sock"\n',
        '[[buses]]\nname = "converter"\ntimeout = 0.5\n'
        f'tcp = {{ host = "127.0.0.1", port = {modbus_port}, framing = "rtu-over-tcp" }}\n',
        '[[buses]]\nname = "mbus"\nprotocol = "mbus"\ntimeout = 1.0\n'
        f'tcp = {{ host = "127.0.0.1", port = {mbus_port} }}\n',
    ]
    for unit, prof, mid, label in MODBUS_METERS:
        # Load management needs the main meter live: every second, whatever the demo's pace.
        every = 1 if unit == MAIN_METER_UNIT else interval
        out.append(f'[[meters]]\nid = "{mid}"\nbus = "converter"\nunit = {unit}\n'
                   f'profile = "{prof}"\ninterval = {every}\nbilling_point = "{label}"\n')
    for addr, prof, mid, label in MBUS_METERS:
        # Heat and water registers move slowly: read them less often than electricity.
        out.append(f'[[meters]]\nid = "{mid}"\nbus = "mbus"\naddress = {addr}\n'
                   f'profile = "{prof}"\ninterval = {interval * 2}\nbilling_point = "{label}"\n')
    out.append(f'[mqtt]\nbroker = "{broker}"\nstatus_interval = 10.0\n')
    out.append(
        f'[ocpp]\nhost = "127.0.0.1"\nport = {ocpp_port}\nheartbeat_interval = 60\n'
        # Running sessions reach the cloud within a few polls, not every 15 minutes.
        f'session_report_interval = {float(max(interval * 3, 5))}\n'
        '\n[ocpp.load_management]\nenabled = true\nmain_meter = "main"\n'
        # A full pass every 5 s; each main-meter reading (every second) above the limit
        # minus the safety margin reduces at once, so the washing machine switching on
        # overshoots for one reading at most.
        f'connection_limit = {CONNECTION_LIMIT}\ninterval = 5.0\n'
        # The main meter is read every poll: a slow poll must not count as stale data.
        f'stale_after = {float(max(30, interval * 3))}\n'
    )
    for c in CHARGERS:
        # The wallboxes allow 16 A (11 kW); what a car takes at most is its own business.
        out.append(f'[[ocpp.charge_points]]\nid = "{c.cp_id}"\nkind = "{c.kind}"\n'
                   f'billing_point = "{c.label}"\nphases = {list(c.phases)}\n'
                   + ("max_current = 16\n" if c.kind == "ev" else "")
                   # its key is pinned when it first sends it (and by the cloud likewise)
                   + ("calibrated = true\n" if c.calibrated else ""))
    for acc, _name, _apt, badge in ACCOUNTS:
        out.append(f'[[ocpp.badges]]\nid = "{badge}"\naccount = "{acc}"\n')
    return "\n".join(out)


def billing_model(today: date) -> str:
    """The cloud's billing model of the demo site (sitegate-cloud site import format)."""
    since = date(today.year, 1, 1).isoformat()
    meters = "".join(f'[[meters]]\nid = "{mid}"\ngateway = "{GATEWAY_ID}"\n\n'
                     for _u, _p, mid, _l in MODBUS_METERS)
    # heat and water: the expense statement's meters, in the unit the gateway sends
    meters += "".join(
        f'[[meters]]\nid = "{m.meter_id}"\ngateway = "{GATEWAY_ID}"\nmedium = "{m.medium}"\n'
        f'import_quantity = "{m.quantity}"\n\n'
        f'[[meter_assignments]]\nbilling_point = "{m.apartment}"\nmeter = "{m.meter_id}"\n'
        f'from = {since}\n\n' for m in mbus_meters.METERS)
    points = "".join(
        f'[[billing_points]]\nid = "{apt}"\nbuilding = "house"\nname = "Apartment {apt[-1]}"\n'
        f'kind = "unit"\ntariff = "household"\nowner = "owner"\n\n'
        f'[[meter_assignments]]\nbilling_point = "{apt}"\nmeter = "{apt}"\nfrom = {since}\n\n'
        f'[[occupancy]]\nbilling_point = "{apt}"\naccount = "{acc}"\nfrom = {since}\n\n'
        for acc, _n, apt, _b in ACCOUNTS)
    accounts = "".join(
        f'[[accounts]]\nid = "{acc}"\nname = "{name}"\ndelivery = "postal"\n'
        f'address = {{ street = "Demoweg", house_num = "1", pcode = "8000", city = "Zürich" }}\n\n'
        f'[[badges]]\ntag = "{badge}"\naccount = "{acc}"\n\n'
        for acc, name, _apt, badge in ACCOUNTS)
    accounts += "".join(f'[[chargers]]\nid = "{c.cp_id}"\ngateway = "{GATEWAY_ID}"\n\n'
                        for c in CHARGERS if c.calibrated)
    return f"""# Billing model of the demo site, imported into the demo's cloud database at start.
[site]
id = "{SITE_ID}"
name = "sitegate demo building"
timezone = "Europe/Zurich"
currency = "CHF"
gateways = ["{GATEWAY_ID}"]
grid_meter = "main"
pv_meters = ["pv"]
qr_reference_prefix = "42"
language = "en"                       # the invoices' words; the labels below are English too

[site.creditor]
name = "Demo Property Management Ltd"
street = "Demoweg"
house_num = "1"
pcode = "8000"
city = "Zürich"
country = "CH"
iban = "CH44 3199 9123 0008 8901 2"

[[buildings]]
id = "house"
name = "Demo house"

{meters}[[billing_points]]
id = "common"
building = "house"
name = "Common areas"
kind = "common"
tariff = "household"
owner = "owner"

[[meter_assignments]]
billing_point = "common"
meter = "common"
from = {since}

{points}[[accounts]]
id = "owner"
name = "Demo owners"
kind = "owner"
delivery = "postal"
address = {{ street = "Demoweg", house_num = "1", pcode = "8000", city = "Zürich" }}

{accounts}[[tariffs]]
id = "household"

[[tariffs.versions]]
valid_from = {since}
fees = [{{ key = "metering", label = "Metering", monthly = "6.20", vat = "8.1" }}]

[[tariffs.versions.components]]
key = "solar"
label = "Solar power"
applies = "solar"
price = "0.18"

[[tariffs.versions.components]]
key = "grid_peak"
label = "Grid power, peak"
applies = "grid"
tou = "peak"
price = "0.3150"

[[tariffs.versions.components]]
key = "grid_offpeak"
label = "Grid power, off-peak"
applies = "grid"
tou = "offpeak"
price = "0.2380"

[[session_tariffs]]
kind = "ev"
valid_from = {since}
label = "EV charging"
per_kwh = "0.42"
per_session = "1.00"

[[session_tariffs]]
kind = "laundry"
valid_from = {since}
label = "Washing machine"
per_session = "2.50"
"""
