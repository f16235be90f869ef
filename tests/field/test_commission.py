"""``sitegate commission`` on a simulated site with a reversed CT, a missing phase and a
duplicate M-Bus id: all three named with their fix, both report formats written (the
PDF's text checked); through the daemon the summary reaches the cloud's list."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pypdfium2 as pdfium

from sitegate.cloud.keys import downlink_key, keys_dir
from tests.conftest import Mosquitto, free_tcp_port
from tests.field.conftest import cli, cloud, daemon, mbus_meters, modbus_meters, wait_for

# Timeouts bound a hang: every meter answers (a late answer under load must not read as a
# meter without serial number); only the scans' absent addresses wait them out.
SITE = '''\
gateway_id = "{gw}"

[storage]
path = "{tmp}/buffer.db"

[health]
socket = "{tmp}/sg.sock"
{mqtt}
[[buses]]
name = "rs485"
tcp = {{ host = "127.0.0.1", port = {mport}, framing = "rtu-over-tcp" }}
timeout = 2
retries = 0

[[buses]]
name = "mbus"
protocol = "mbus"
tcp = {{ host = "127.0.0.1", port = {bport} }}
timeout = 2

[[meters]]
id = "apt-1"
bus = "rs485"
unit = 1
profile = "eastron_sdm630"
serial = "70000001"
billing_point = "Apartment 1"

[[meters]]
id = "apt-2"
bus = "rs485"
unit = 2
profile = "eastron_sdm630"
billing_point = "Apartment 2"

[[meters]]
id = "apt-3"
bus = "rs485"
unit = 3
profile = "eastron_sdm630"
serial = "70009999"
billing_point = "Apartment 3"

[[meters]]
id = "heat-1"
bus = "mbus"
address = 1
profile = "kamstrup_multical_601"

[[meters]]
id = "heat-2"
bus = "mbus"
address = 2
profile = "kamstrup_multical_601"
'''

FAULTS = ("--meter", "1:eastron_sdm630", "--meter", "2:eastron_sdm630", "--meter",
          "3:eastron_sdm630", "--reversed-ct", "2", "--dead-phase", "3:2")
# two heat meters that report the same id (a factory or configuration mistake)
TWINS = ("kamstrup_multical_601:1:12345678", "kamstrup_multical_601:2:12345678")


def _findings(report: dict) -> dict[tuple[str, str], dict]:
    out = {(f["subject"], f["check"]): f for f in report["site"]}
    for m in report["meters"]:
        out.update({(f["subject"], f["check"]): f for f in m["findings"]})
    return out


def test_commission_names_reversed_ct_missing_phase_and_duplicate_mbus_id(
        tmp_path: Path, clock_ok: dict[str, str]) -> None:
    with modbus_meters(*FAULTS) as mport, mbus_meters(*TWINS) as bport:
        site = tmp_path / "site.toml"
        site.write_text(SITE.format(gw="gw-com", tmp=tmp_path, mport=mport, bport=bport,
                                    mqtt=""))
        out = tmp_path / "report"
        out.mkdir()
        res = cli("commission", "-c", str(site), "--out", str(out), "--json", env=clock_ok)
    assert res.returncode == 1, res.stdout + res.stderr  # something failed
    report = json.loads(res.stdout)
    found = _findings(report)
    assert found[("apt-2", "reversed CT")]["level"] == "fail"
    assert "L1, L2, L3" in found[("apt-2", "reversed CT")]["fix"]
    assert found[("apt-3", "missing phase")]["detail"].startswith("phase L2 has 0 V")
    assert "L2 fuse" in found[("apt-3", "missing phase")]["fix"]
    for m in ("heat-1", "heat-2"):
        dup = found[(m, "duplicate M-Bus id")]
        assert "12345678" in dup["detail"] and "set-address" in dup["fix"]
    assert found[("apt-3", "serial number")]["level"] == "fail"  # 70000003 on the bus
    assert found[("apt-1", "serial number")]["level"] == "ok"
    assert found[("site", "clock")]["level"] == "ok"
    assert found[("site", "uplink")]["level"] == "fail"  # no [mqtt], no daemon
    verdicts = {m["id"]: m["verdict"] for m in report["meters"]}
    assert verdicts == {"apt-1": "ok", "apt-2": "fail", "apt-3": "fail", "heat-1": "fail",
                        "heat-2": "fail"}

    html_file, pdf_file = (Path(f) for f in report["files"])
    assert html_file.suffix == ".html" and pdf_file.suffix == ".pdf"
    html = html_file.read_text()
    pdf = pdfium.PdfDocument(str(pdf_file))
    text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    for page in (html, text):
        for needle in ("Commissioning report gw-com", "reversed CT", "missing phase",
                       "duplicate M-Bus id", "apt-2", "Apartment 3", "heat-2", "FAILED"):
            assert needle in page, needle
    assert "phase L2 has 0 V" in text and "12345678" in text


def test_commission_through_the_daemon_reaches_the_cloud(
        tmp_path: Path, mosquitto: Mosquitto, clock_ok: dict[str, str]) -> None:
    gw = "bldg-lindenweg-12"  # the gateway of the example site model
    db = tmp_path / "cloud.db"
    assert cloud("site", "import", "config/examples/site-lindenweg.toml", "--db",
                 str(db)).returncode == 0
    keys = tmp_path / "cloud-keys"  # the cloud's downlink key, its public half on the box
    downlink_key(keys_dir(str(keys)))
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "downlink.pub").write_bytes((keys / "downlink.pub").read_bytes())
    with (tmp_path / "serve.log").open("w") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "sitegate.cloud.cli", "serve", "--db", str(db), "--broker",
             mosquitto.url, "--http", f"127.0.0.1:{free_tcp_port()}"],
            stdout=log, stderr=subprocess.STDOUT)

    def command(name: str, args: str = "{}") -> subprocess.CompletedProcess[str]:
        return cloud("command", "--broker", mosquitto.url, "--gateway", gw, "--keys",
                     str(keys), "--wait", "60", "--json", name, args)

    try:
        with modbus_meters(*FAULTS) as mport, mbus_meters(*TWINS) as bport:
            site = tmp_path / "site.toml"
            site.write_text(SITE.format(gw=gw, tmp=tmp_path, mport=mport, bport=bport,
                                        mqtt=f'[mqtt]\nbroker = "{mosquitto.url}"\n'))
            with daemon(site, tmp_path / "sg.sock"):
                res = cli("commission", "-c", str(site), "--out", str(tmp_path), "--json",
                          env=clock_ok)
                assert res.returncode == 1, res.stderr
                report = json.loads(res.stdout)
                assert report["uplink"]["sent"] is True, report["uplink"]
                assert ("apt-2", "reversed CT") in _findings(report)  # read by the daemon

                def listed() -> dict | None:
                    got = cloud("site", "commissioning", "lindenweg-12", "--db", str(db),
                                "--json")
                    data = json.loads(got.stdout) if got.returncode == 0 else {}
                    return data if data.get("reports") else None

                data = wait_for(listed, "the report in the cloud")

                # the technician's remote commands, through the signed command path
                doc = command("doctor")
                assert doc.returncode == 0, doc.stderr
                checks = {c["name"]: c for c in json.loads(doc.stdout)["result"]["checks"]}
                assert checks["daemon"]["level"] == "ok" and "bus rs485" in checks
                assert checks["watchdog"]["level"] == "warn"  # not under systemd here
                scan = command("modbus.scan", '{"bus": "rs485", "units": "1-4"}')
                assert scan.returncode == 0, scan.stderr
                found = json.loads(scan.stdout)["result"]["found"]
                assert [(f["unit"], f["profile"]) for f in found] == [
                    (1, "eastron_sdm630"), (2, "eastron_sdm630"), (3, "eastron_sdm630")]
                assert "progress:" in scan.stderr and "found 3" in scan.stderr
                mscan = command("mbus.scan", '{"bus": "mbus", "addresses": "0-3"}')
                assert [f["primary"] for f in json.loads(mscan.stdout)["result"]["found"]] \
                    == [1, 2]
                logs = command("logs", '{"since": "10m"}')
                events = [e["event"] for e in json.loads(logs.stdout)["result"]["entries"]]
                assert "daemon.ready" in events and "commission.report" in events
                bad = command("modbus.scan", '{"bus": "mbus"}')
                assert bad.returncode == 1 and "is mbus, not modbus" in bad.stdout
    finally:
        serve.terminate()
        serve.wait(30)
    assert gw in data["gateways"]
    r = data["reports"][0]
    assert r["gateway_id"] == gw and r["verdict"] == "fail" and r["meters"] == 5
    checks = {(p["subject"], p["check"]) for p in r["problems"]}
    assert {("apt-2", "reversed CT"), ("apt-3", "missing phase"),
            ("heat-1", "duplicate M-Bus id")} <= checks
    text = cloud("site", "commissioning", "lindenweg-12", "--db", str(db))
    assert "FAIL" in text.stdout and "apt-2: reversed CT" in text.stdout
