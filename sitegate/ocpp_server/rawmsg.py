"""Keeping the raw text of each incoming message, for lenient parsing and for inspection.

Mixed into the version-specific ChargePoint classes, before the library's class.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ocpp.messages import MessageType, get_validator
from websockets.exceptions import ConnectionClosed


class RawMessageMixin:
    id: str
    core: Any
    _ocpp_version: str
    _raw: str = ""

    async def route_message(self, raw_msg: Any) -> None:
        """Every frame is answered or ignored, never the end of the connection: a Call that
        is not one (action not a string, payload not an object, unknown action, unknown
        message type) gets a CallError; what has no unique id to answer, and results when
        we asked nothing, are dropped (kept for inspection when the charger is accepted)."""
        self._raw = raw_msg if isinstance(raw_msg, str) else raw_msg.decode("utf-8", "replace")
        try:
            msg = json.loads(self._raw)
        except (ValueError, RecursionError) as exc:
            return self._unreadable(f"unreadable message: {str(exc)[:200]}")
        if not (isinstance(msg, list) and len(msg) >= 3 and isinstance(msg[1], str)
                and 0 < len(msg[1]) <= 36):
            return self._unreadable("not an OCPP message array with a unique id")
        kind, unique_id = msg[0], msg[1]
        if kind == MessageType.Call and type(kind) is int:
            if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
                return await self._answer_error(unique_id, self._FORMAT,
                                                "expected [2, id, action, {payload}]")
            if msg[2] not in self.route_map:  # type: ignore[attr-defined]
                return await self._answer_error(unique_id, "NotImplemented",
                                                f"no handler for {msg[2][:40]!r}")
        elif kind in (MessageType.CallResult, MessageType.CallError) and type(kind) is int:
            if not self._call_lock.locked() or not isinstance(msg[2], dict | str):  # type: ignore[attr-defined]
                return self._unreadable("a result nobody asked for")
        else:
            return await self._answer_error(unique_id, self._UNKNOWN_TYPE,
                                            f"message type {str(kind)[:10]} is not 2, 3 or 4")
        try:
            await super().route_message(raw_msg)  # type: ignore[misc]
        except ConnectionClosed:
            raise
        except Exception as exc:  # noqa: BLE001 - the library choked on a strange frame
            self._unreadable(f"not handled: {type(exc).__name__}: {str(exc)[:200]}")
            if kind == MessageType.Call:
                await self._answer_error(unique_id, "InternalError", "message not handled")

    @property
    def _FORMAT(self) -> str:  # noqa: N802 - the error code of a malformed Call per version
        return "FormationViolation" if self._ocpp_version == "1.6" else "FormatViolation"

    @property
    def _UNKNOWN_TYPE(self) -> str:  # noqa: N802
        return "NotSupported" if self._ocpp_version == "1.6" else "MessageTypeNotSupported"

    def _unreadable(self, why: str) -> None:
        # Garbled frame: the library would drop it silently; keep it for inspection.
        self.core.keep_raw(self.id, "?", self._raw, [why])

    async def _answer_error(self, unique_id: str, code: str, description: str) -> None:
        self._unreadable(f"{code}: {description}")
        await self._send(json.dumps([4, unique_id, code, description, {}]))  # type: ignore[attr-defined]

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
