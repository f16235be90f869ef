"""The health an update waits for is the new process's: a daemon from before the restart
that still answers (it is stopping) is not the new version, whatever version it names (an
older daemon reads its version through the switched 'current' link)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sitegate.firmware_tools.update import healthy

RESTART = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def status(started: datetime, version: str = "0.1.1") -> dict:
    return {"version": version, "started": started.isoformat(),
            "buses": [{"meters": [{"last_success": (started + timedelta(seconds=2))
                                   .isoformat()}]}]}


def test_a_daemon_started_before_the_restart_is_not_the_new_one() -> None:
    old = status(RESTART - timedelta(seconds=60))
    assert healthy(old, "0.1.1") is None  # without the restart's time it would pass
    assert healthy(old, "0.1.1", RESTART) == "the daemon from before the restart still answers"
    assert healthy(status(RESTART + timedelta(seconds=1)), "0.1.1", RESTART) is None
    assert healthy(status(RESTART + timedelta(seconds=1), "0.1.0"), "0.1.1", RESTART) == \
        "running version '0.1.0', not 0.1.1"
