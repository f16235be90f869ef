"""A scan of simulated Modbus and M-Bus buses written into a site file that check-config
accepts and the daemon runs; meters re-addressed from their profile data."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from tests.field.conftest import cli, daemon, mbus_meters, modbus_meters, status, wait_for

SITE = '''\
# a new site: the scans fill it in
gateway_id = "gw-scan"

[storage]
path = "{tmp}/buffer.db"   # beside the test

[health]
socket = "{tmp}/sg.sock"
'''


def test_scans_written_into_a_site_file_the_daemon_runs(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(tmp=tmp_path))
    with modbus_meters("--meter", "1:eastron_sdm630", "--meter", "2:eastron_sdm120",
                       "--meter", "5:abb_b23") as mport, \
            mbus_meters("kamstrup_multical_601:1", "itron_cyble_m-bus_v1.4_water:2") as bport:
        res = cli("modbus", "scan", "--host", "127.0.0.1", "--port", str(mport), "--framing",
                  "rtu-over-tcp", "--units", "1-6", "--identify", "--json")
        found = {f["unit"]: f for f in json.loads(res.stdout)["found"]}
        assert sorted(found) == [1, 2, 5], res.stdout  # 3, 4, 6 are silent
        assert found[1]["profile"] == "eastron_sdm630" and found[1]["serial"] == "70000001"
        assert found[2]["profile"] == "eastron_sdm120"
        assert found[5]["profile"] is None  # the ABB profile declares no model register

        res = cli("modbus", "scan", "--host", "127.0.0.1", "--port", str(mport), "--framing",
                  "rtu-over-tcp", "--units", "1-6", "--write-config", str(site),
                  "--bus", "rs485-conv", "--interval", "1")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "skipped unit 5: no identification register answered; give --profile" \
            in res.stdout
        res = cli("mbus", "scan", "--host", "127.0.0.1", "--port", str(bport),
                  "--addresses", "0-4", "--write-config", str(site), "--interval", "1")
        assert res.returncode == 0, res.stdout + res.stderr

        text = site.read_text()
        assert "# a new site: the scans fill it in" in text and "# beside the test" in text
        data = tomllib.loads(text)
        buses = {b["name"]: b for b in data["buses"]}
        assert buses["rs485-conv"]["tcp"] == {"host": "127.0.0.1", "port": mport,
                                              "framing": "rtu-over-tcp"}
        assert buses["mbus"] == {"name": "mbus", "protocol": "mbus",
                                 "tcp": {"host": "127.0.0.1", "port": bport}}
        meters = {m["id"]: m for m in data["meters"]}
        assert meters["rs485-conv-1"] == {"id": "rs485-conv-1", "bus": "rs485-conv",
                                          "unit": 1, "profile": "eastron_sdm630",
                                          "interval": 1, "serial": "70000001"}
        # M-Bus meters by the id on their label, with the profile claiming them
        assert meters["mbus-06855817"]["profile"] == "kamstrup_multical_601"
        assert meters["mbus-06855817"]["secondary"] == "06855817"
        assert meters["mbus-12000071"]["profile"] == "itron_cyble_water"

        check = cli("check-config", str(site), "--json")
        assert check.returncode == 0 and json.loads(check.stdout)["meters"] == 4, check.stdout

        # scanning again adds nothing twice
        again = cli("mbus", "scan", "--host", "127.0.0.1", "--port", str(bport),
                    "--addresses", "0-4", "--write-config", str(site))
        assert "already in the site file as meter 'mbus-06855817'" in again.stdout

        with daemon(site, tmp_path / "sg.sock"):
            def all_read() -> bool:
                meters = [m for b in status(site).get("buses", []) for m in b["meters"]]
                return len(meters) == 4 and all(m.get("last_success") for m in meters)
            wait_for(all_read, "every scanned meter read by the daemon")


def test_set_address_from_profile_data(tmp_path: Path) -> None:
    with modbus_meters("--meter", "3:eastron_sdm630", "--meter", "4:abb_b23") as mport, \
            mbus_meters("kamstrup_multical_601:1") as bport:
        link = ["--host", "127.0.0.1", "--port", str(mport), "--framing", "rtu-over-tcp"]
        res = cli("modbus", "set-address", *link, "--unit", "3", "--new", "7",
                  "--new-baud", "19200", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        out = json.loads(res.stdout)
        assert out["profile"] == "eastron_sdm630"  # identified on the bus
        # read back from the meter: 19200 baud is code 3, the unit id 7 (float registers)
        assert out["settings"]["baudrate"] == {"written": 3, "read_back": "3", "at_unit": 3,
                                               "ok": True}
        assert out["settings"]["unit"]["read_back"] == "7" and out["settings"]["unit"]["ok"]
        assert "power-cycle" in out["note"]

        res = cli("modbus", "set-address", *link, "--unit", "3", "--new-baud", "300")
        assert res.returncode == 2 and "takes the baud rates" in res.stderr
        res = cli("modbus", "set-address", *link, "--unit", "4", "--new", "9",
                  "--profile", "abb_b23")
        assert res.returncode == 2 and "declares no unit id register" in res.stderr
        assert "Traceback" not in res.stderr

        blink = ["--host", "127.0.0.1", "--port", str(bport)]
        res = cli("mbus", "set-address", *blink, "--address", "1", "--new", "9")
        assert res.returncode == 0, res.stderr
        found = json.loads(cli("mbus", "scan", *blink, "--addresses", "0-10",
                               "--json").stdout)
        assert [f["primary"] for f in found] == [9]
