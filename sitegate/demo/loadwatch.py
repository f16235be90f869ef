"""Load management as the demo shows it: a line when a charger's limit changes, and every
decision of the daemon's load manager in ``loadmgmt.jsonl`` in the demo directory.

The load manager (``sitegate.ocpp_server.loadmgmt.LoadManager``) decides in ``plan()``:
the headroom per phase (connection limit minus the base load, which it takes from the main
meter minus what the chargers report drawing) and a limit per running session. ``watch``
wraps that method of the daemon's own instance, in this process, so each decision is seen
with the headroom it was made from: polling ``last`` and the pushed limits could pair a
limit with a later headroom. Nothing is changed: the wrapper returns the plan as made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sitegate.ocpp_server.loadmgmt import LoadManager

TENTH = Decimal("0.1")


class LoadWatch:
    def __init__(self, load: LoadManager, path: Path, out: Callable[[str], None]) -> None:
        self.load = load
        self.path = path
        self.out = out
        self.limit = load.cfg.connection_limit
        self._last: dict[Hashable, Decimal] = {}
        self._plan = load.plan
        self._decision: dict[str, Any] | None = None  # the last one written

    def watch(self) -> None:
        self.load.plan = self._observed  # type: ignore[method-assign]

    def _observed(self) -> dict[tuple[str, int], Decimal]:
        plan = self._plan()
        try:
            self._record(plan)
        except Exception as exc:  # noqa: BLE001 - showing it must never break load management
            self.out(f"          (load management not shown: {exc!r})")
        return plan

    def _record(self, plan: dict[tuple[str, int], Decimal]) -> None:
        state = self.load.last
        now = datetime.now().astimezone()
        decision = {
            "mode": state["mode"], "connection_limit": str(self.limit),
            "headroom": state.get("headroom"),
            "limits": {f"{cp}/{connector}": str(a) for (cp, connector), a in sorted(plan.items())},
        }
        if decision != self._decision:  # the same decision again (a recomputation that
            self._decision = decision  # changed nothing) is not a new line
            with self.path.open("a") as f:
                f.write(json.dumps({"ts": now.isoformat(timespec="milliseconds"),
                                    **decision}) + "\n")
        for key, amps in sorted(plan.items()):
            before = self._last.get(key)
            if before == amps:
                continue
            cp_id = key[0]
            change = f"{before} A -> {amps} A" if before is not None else f"{amps} A"
            if amps == 0:
                change += " (paused)"
            self.out(f"{now:%H:%M:%S}  {cp_id:<11} limit {change}  {self._why(state, plan)}")
        self._last = dict(plan)

    def _why(self, state: dict[str, Any], plan: dict[tuple[str, int], Decimal]) -> str:
        n = len(plan)
        cars = f"{n} car{'s' * (n != 1)}"
        if state["mode"] != "managed":
            return f"(load management: no recent main meter data, {cars} at the fallback)"
        room = {int(p): Decimal(v) for p, v in state["headroom"].items()}
        phase = min(room, key=lambda p: room[p])  # the phase that binds first
        free = room[phase].quantize(TENTH)
        return (f"(load management: {cars} share {free} A free on L{phase}, "
                f"base load {self.limit - free} A of {self.limit} A)")
