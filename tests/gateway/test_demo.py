import subprocess
import sys


def test_demo_shows_readings_and_stops() -> None:
    res = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "demo", "--duration", "7",
                          "--interval", "2"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "import" in ln and "kWh" in ln]
    meters = {ln.split()[1] for ln in lines}
    assert {"main", "pv", "apt-1", "apt-2", "apt-3", "common"} <= meters
    assert "waiting for the cloud" in res.stdout
