"""The gateway box installs sitegate without the ``cloud`` extra: nothing the daemon or the
technician's CLI runs may import the cloud's packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOUD_ONLY = ("sqlalchemy", "alembic", "fastapi", "uvicorn", "qrbill", "fpdf")

PROBE = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {CLOUD_ONLY!r}:
            raise ModuleNotFoundError(f"cloud-only package {{name}} imported", name=name)
        return None
sys.meta_path.insert(0, Block())
import sitegate.gateway.daemon, sitegate.gateway.remote_config, sitegate.sync.client
import sitegate.ocpp_server.service, sitegate.drivers.mbus.client, sitegate.drivers.modbus.client
from sitegate.gateway.cli import main
sys.exit(main(["check-config", sys.argv[1]]))
"""


def test_the_gateway_runs_without_the_cloud_extra() -> None:
    example = ROOT / "config" / "examples" / "apartment-building.toml"
    res = subprocess.run([sys.executable, "-c", PROBE, str(example)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout
