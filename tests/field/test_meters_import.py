"""``sitegate meters import``: a real CLI process on a real site file with comments."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

SITE = '''\
# Lindenweg 12: the installer's notes stay where they are.
gateway_id = "gw-import"   # printed on the cabinet label

[storage]
path = "{tmp}/buffer.db"

[[buses]]
name = "rs485-a"           # the tenants' line, left riser
serial = {{ port = "/dev/ttyUSB0" }}

# the main meter, read every 5 s for load management
[[meters]]
id = "main"
bus = "rs485-a"
unit = 247
profile = "eastron_sdm630"

# heat and water: a bus written between meters stays where it is (tomlkit alone moves it)
[[buses]]
name = "mbus"
protocol = "mbus"
tcp = {{ host = "192.168.10.21" }}

[mqtt]
broker = "mqtt://127.0.0.1:1883"   # site router
'''


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", *args],
                          capture_output=True, text=True, timeout=120)


def _site(tmp: Path) -> Path:
    path = tmp / "site.toml"
    path.write_text(SITE.format(tmp=tmp))
    return path


def test_200_meters_imported_with_comments_kept(tmp_path: Path) -> None:
    site = _site(tmp_path)
    before = site.read_text()
    rows = ["serial,bus,unit,address,secondary,profile,billing_point"]
    for u in range(1, 161):  # 160 electricity meters on Modbus units 1-160
        rows.append(f"E{70000 + u},rs485-a,{u},,,eastron_sdm120,Apartment {u}")
    for a in range(1, 21):  # 20 heat meters by primary address, 20 water meters by id
        rows.append(f"H{a:05d},mbus,,{a},,kamstrup_multical_601,Apartment {a}")
    for a in range(1, 21):
        rows.append(f"{31000000 + a},mbus,,,{31000000 + a},itron_cyble_water,"
                    f"\"Apartment {a}, kitchen\"")
    csv = tmp_path / "meters.csv"
    csv.write_text("\n".join(rows) + "\n")

    res = _run("meters", "import", str(csv), "-c", str(site), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert len(out["added"]) == 200 and out["meters"] == 201

    text = site.read_text()
    # every line of the old file is still there, in order, comments included
    old_lines = before.splitlines()
    new_lines = text.splitlines()
    it = iter(new_lines)
    assert all(any(line == n for n in it) for line in old_lines)
    for comment in ("# Lindenweg 12: the installer's notes stay where they are.",
                    "# printed on the cabinet label", "# the tenants' line, left riser",
                    "# the main meter, read every 5 s for load management", "# site router"):
        assert comment in text
    # the new meters follow the last meter, before [mqtt]
    assert text.index('id = "E70160"') < text.index("[mqtt]")
    data = tomllib.loads(text)
    assert data["meters"][1] == {"id": "E70001", "bus": "rs485-a", "unit": 1,
                                 "profile": "eastron_sdm120", "billing_point": "Apartment 1",
                                 "serial": "E70001"}
    assert data["meters"][-1]["secondary"] == "31000020"
    assert data["meters"][-1]["billing_point"] == "Apartment 20, kitchen"
    check = _run("check-config", str(site), "--json")
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout)["meters"] == 201


def test_every_bad_row_named_by_its_line_and_nothing_written(tmp_path: Path) -> None:
    site = _site(tmp_path)
    before = site.read_text()
    csv = tmp_path / "meters.csv"
    csv.write_text(
        "serial;bus;unit;address;profile;billing_point\n"  # a spreadsheet's semicolons
        "# a comment line is skipped\n"
        "A1;rs485-a;1;;eastron_sdm630;Apt 1\n"            # line 3: fine
        "A2;rs485-a;300;;eastron_sdm630;Apt 2\n"          # line 4: unit out of range
        "A3;rs485-b;3;;eastron_sdm630;Apt 3\n"            # line 5: no such bus
        "A4;rs485-a;4;;eastron_sdm999;Apt 4\n"            # line 6: no such profile
        "A5;rs485-a;1;;eastron_sdm630;Apt 5\n"            # line 7: unit 1 taken on line 3
        "A6;rs485-a;247;;eastron_sdm630;Apt 6\n"          # line 8: unit 247 is 'main'
        "A7;mbus;;;mbus_generic;Apt 7\n"                  # line 9: no M-Bus address
        "A1;rs485-a;9;;eastron_sdm630;Apt 9\n"            # line 10: serial A1 twice
    )
    res = _run("meters", "import", str(csv), "-c", str(site), "--json")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    problems = json.loads(res.stdout)["problems"]
    by_line = {p["line"]: p for p in problems}
    assert sorted(by_line) == [4, 5, 6, 7, 8, 9, 10], problems
    assert "300 is not a Modbus unit id" in by_line[4]["message"]
    assert "'rs485-b' is not a bus" in by_line[5]["message"]
    assert "eastron_sdm999" in by_line[6]["message"]
    assert "unit 1 on bus 'rs485-a' is already on line 3" in by_line[7]["message"]
    assert "meter 'main'" in by_line[8]["message"]
    assert "exactly one of 'address'" in by_line[9]["message"]
    assert "serial 'A1'" in by_line[10]["message"]
    assert site.read_text() == before  # nothing written

    text = _run("meters", "import", str(csv), "-c", str(site))
    assert "line 4: unit: 300 is not a Modbus unit id (1-247)" in text.stdout


def test_unknown_column_and_missing_files_are_one_line(tmp_path: Path) -> None:
    site = _site(tmp_path)
    csv = tmp_path / "m.csv"
    csv.write_text("serial,bus,unti,profile\nX,rs485-a,1,eastron_sdm630\n")
    res = _run("meters", "import", str(csv), "-c", str(site))
    assert res.returncode == 2 and "unknown column 'unti'" in res.stdout
    res = _run("meters", "import", str(tmp_path / "nope.csv"), "-c", str(site))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "cannot read" in res.stderr
    res = _run("meters", "import", str(csv), "-c", str(tmp_path / "nope.toml"))
    assert res.returncode == 2 and "Traceback" not in res.stderr + res.stdout
