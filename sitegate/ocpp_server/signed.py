"""Signed meter values in OCPP messages, taken out exactly as the charger sent them.

OCPP 1.6 has no field for them: chargers send a sampled value with ``format = "SignedData"``
whose ``value`` is the OCMF record (plain, hex) or, as the OCA's signed meter values
whitepaper recommends, the 2.0.1 structure as JSON text (``{"signedMeterData": ...,
"encodingMethod": "OCMF", "publicKey": ...}``; some write ``signedMeterValue``). They come
in MeterValues (context Transaction.Begin right after StartTransaction, Transaction.End
before StopTransaction) or all in StopTransaction's ``transactionData``. OCPP 2.0.1 has
``sampledValue.signedMeterValue`` in TransactionEvent and MeterValues.

The signed text is kept as the string JSON decoding gave: the characters the meter signed,
never re-encoded. Sizes are bounded before anything is kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sitegate.common.ocmf import DOC_MAX_CHARS, KEY_MAX_CHARS
from sitegate.ocpp_server.lenient import parse_ts

CONTEXT_MAX = 32
METHOD_MAX = 64


@dataclass(frozen=True, slots=True)
class SignedIn:
    ts: datetime
    context: str
    measurand: str
    data: str
    encoding: str | None
    signing_method: str | None
    public_key: str | None


def _text(v: Any, limit: int) -> str | None:
    return v[:limit] if isinstance(v, str) and v else None


def _unwrap_16(value: str) -> dict[str, Any] | None:
    """The 2.0.1 structure a 1.6 charger put in ``value`` as JSON text, if it did."""
    if not value.lstrip().startswith("{"):
        return None
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    data = obj.get("signedMeterData", obj.get("signedMeterValue"))
    return obj | {"signedMeterData": data} if isinstance(data, str) else None


def signed_values(items: Any, version: str, problems: list[str]) -> list[SignedIn]:
    """The signed values in a ``meterValue``/``transactionData`` list (else: none)."""
    out: list[SignedIn] = []
    if not isinstance(items, list):
        return out
    for mv in items:
        if not isinstance(mv, dict) or not isinstance(mv.get("sampledValue"), list):
            continue
        ts = parse_ts(mv.get("timestamp"), [])
        for sv in mv["sampledValue"]:
            if not isinstance(sv, dict):
                continue
            if version == "1.6":
                if sv.get("format") != "SignedData" or not isinstance(sv.get("value"), str):
                    continue
                signed = _unwrap_16(sv["value"]) or {"signedMeterData": sv["value"]}
            else:
                signed = sv.get("signedMeterValue")
                if not isinstance(signed, dict):
                    continue
            data = signed.get("signedMeterData")
            if not isinstance(data, str) or not data:
                problems.append("signed meter value without signedMeterData")
                continue
            if len(data) > DOC_MAX_CHARS:
                problems.append(f"signed meter value of {len(data)} characters dropped "
                                f"(more than {DOC_MAX_CHARS})")
                continue
            key = signed.get("publicKey")
            if isinstance(key, str) and len(key) > KEY_MAX_CHARS:
                problems.append(f"public key of {len(key)} characters ignored")
                key = None
            out.append(SignedIn(
                ts=ts, context=_text(sv.get("context"), CONTEXT_MAX) or "Sample.Periodic",
                measurand=_text(sv.get("measurand"), METHOD_MAX)
                or "Energy.Active.Import.Register",
                data=data, encoding=_text(signed.get("encodingMethod"), METHOD_MAX),
                signing_method=_text(signed.get("signingMethod"), METHOD_MAX),
                public_key=_text(key, KEY_MAX_CHARS)))
    return out
