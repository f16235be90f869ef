"""Remote control: the ``sitegate ocpp`` CLI through a real control socket to the central
system, and on to simulated chargers over WebSockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from ocpp_helpers import central, run, until

from sitegate.gateway.cli import main
from sitegate.gateway.control import ControlServer
from sitegate.ocpp_server.simulator import close, connect


def test_cli_commands_end_to_end(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sock = str(tmp / "ctl.sock")

    async def cli(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        rc = await asyncio.to_thread(main, ["ocpp", *argv, "--socket", sock])
        captured = capsys.readouterr()
        return rc, captured.out + captured.err

    async def scenario() -> None:
        async with central(tmp) as (cs, buf, url):
            ctl = ControlServer(sock)
            ctl.add_prefix("ocpp", cs.handle_command)
            await ctl.start()
            try:
                sim, task = await connect(url, "CP1")
                await sim.boot()
                await until(lambda: len(sim.got.local_lists) == 1)
                tx, _ = await sim.start_tx(1, "04A23BC1", 500)
                await sim.meter(1, tx, 740)

                rc, out = await cli("list", "--json")
                [cp] = json.loads(out)["charge_points"]
                assert rc == 0 and cp["id"] == "CP1"
                assert cp["sessions"][0]["energy_wh"] == "240"
                rc, out = await cli("list")
                assert "CP1" in out and "04A23BC1 240 Wh" in out

                rc, out = await cli("remote-start", "CP1", "--badge", "AABB", "--connector",
                                    "2")
                assert rc == 0 and "Accepted" in out
                assert sim.got.remote_starts == [{"badge": "AABB", "connector_id": 2}]
                rc, _ = await cli("remote-stop", "CP1")
                assert rc == 0 and sim.got.remote_stops == [tx]
                rc, _ = await cli("unlock", "CP1", "--connector", "1")
                rc2, _ = await cli("reset", "CP1", "--hard")
                rc3, _ = await cli("trigger", "CP1", "MeterValues", "--connector", "1")
                assert (rc, rc2, rc3) == (0, 0, 0)
                assert sim.got.other == [("unlock", {"connector": 1}),
                                         ("reset", {"type": "Hard"}),
                                         ("trigger", {"message": "MeterValues"})]
                rc, out = await cli("set-limit", "CP1", "--amps", "10.5", "--json")
                assert rc == 0 and json.loads(out)["status"] == "Accepted"
                period = sim.got.profiles[-1]["charging_schedule"]["charging_schedule_period"]
                assert period[0]["limit"] == 10.5
                assert sim.got.profiles[-1]["transaction_id"] == tx
                rc, out = await cli("change-config", "CP1", "HeartbeatInterval", "60")
                assert rc == 0 and sim.configuration["HeartbeatInterval"] == "60"
                rc, out = await cli("get-config", "CP1", "HeartbeatInterval", "Nope", "--json")
                assert json.loads(out)["configuration"] == {"HeartbeatInterval": "60"}
                assert json.loads(out)["unknown"] == ["Nope"]

                # Errors are clear and do not take anything down.
                rc, out = await cli("unlock", "GHOST")
                assert rc == 2 and "charge point 'GHOST' is not connected" in out
                with pytest.raises(ValueError, match="between 0 and 32"):
                    await cs.handle_command("set-limit", {"charge_point": "CP1", "amps": 99})
                with pytest.raises(ValueError, match="unknown OCPP command"):
                    await cs.handle_command("fly", {})
                await close(sim, task)
            finally:
                await ctl.stop()
    run(scenario())


def test_cli_without_daemon_says_so(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ocpp", "list", "--socket", str(tmp / "none.sock")]) == 2  # a field condition
    assert "daemon is not running" in capsys.readouterr().err
