"""Keeping the raw text of each incoming message, for lenient parsing and for inspection.

Mixed into the version-specific ChargePoint classes, before the library's class.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ocpp.messages import MessageType, get_validator


class RawMessageMixin:
    id: str
    core: Any
    _ocpp_version: str
    _raw: str = ""

    async def route_message(self, raw_msg: Any) -> None:
        self._raw = raw_msg if isinstance(raw_msg, str) else raw_msg.decode("utf-8", "replace")
        try:
            msg = json.loads(self._raw)
            if not isinstance(msg, list) or len(msg) < 3:
                raise ValueError("not an OCPP message array")
        except ValueError as exc:
            # Garbled frame: the library would drop it silently; keep it for inspection.
            self.core.keep_raw(self.id, "?", self._raw, [f"unreadable message: {exc}"])
            return
        await super().route_message(raw_msg)  # type: ignore[misc]

    def _lenient(self, action: str) -> tuple[dict[str, Any], list[str]]:
        """The payload with exact decimals, and what is wrong with it per the schema."""
        msg = json.loads(self._raw)
        payload = msg[3] if len(msg) > 3 and isinstance(msg[3], dict) else {}
        validator = get_validator(MessageType.Call, action, self._ocpp_version)
        problems = [f"{'/'.join(map(str, e.path))}: {e.message}"
                    for e in validator.iter_errors(payload)]
        exact = json.loads(self._raw, parse_float=Decimal)
        return (exact[3] if len(exact) > 3 and isinstance(exact[3], dict) else {}), problems

    def _keep_if(self, action: str, problems: list[str]) -> None:
        if problems:
            self.core.keep_raw(self.id, action, self._raw, problems)
