"""Making OCMF records as a calibrated meter's signature component does: the payload as
compact JSON text, an ECDSA signature (DER, hex) over exactly those bytes.

For the charger simulators and the tests, with a test key; no real meter is made here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

CURVES = {"secp256r1": ec.SECP256R1, "secp192r1": ec.SECP192R1, "secp384r1": ec.SECP384R1}


def ocmf_time(at: datetime, status: str = "S") -> str:
    """``2018-07-24T13:22:04,000+0200 S``: milliseconds after a comma, the offset without
    a colon, the time status after a space (OCMF table 7)."""
    ms = at.microsecond // 1000
    return f"{at:%Y-%m-%dT%H:%M:%S},{ms:03d}{at:%z} {status}"


@dataclass
class SigningMeter:
    """A signing meter: its key, serial and pagination counter (one page per record)."""

    curve: str = "secp256r1"
    serial: str = "TEST0001"
    vendor: str = "sitegate"
    model: str = "SIM-OCMF"
    page: int = 1
    key: ec.EllipticCurvePrivateKey = field(init=False)

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(CURVES[self.curve]())

    @property
    def public_key_hex(self) -> str:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return der.hex().upper()

    def record(self, readings: list[tuple[datetime, str, Decimal]], *, badge: str | None = None,
               extra: dict[str, Any] | None = None) -> str:
        """One OCMF record of ``(time, TX, kWh)`` readings, e.g. [(t0, "B", 1.234)]."""
        payload: dict[str, Any] = {
            "FV": "1.0", "GI": "sitegate simulator", "GS": self.serial, "GV": "1.0",
            "PG": f"T{self.page}", "MV": self.vendor, "MM": self.model, "MS": self.serial,
            "MF": "1.0", "IS": badge is not None, "IL": "TRUSTED" if badge else "NONE",
            "IF": ["OCPP_AUTH"] if badge else [], "IT": "ISO14443" if badge else "NONE",
            "ID": badge or "",
            "RD": [{"TM": ocmf_time(at), "TX": tx, "RV": f"@RV{i}@", "RI": "1-b:1.8.0",
                    "RU": "kWh", "RT": "AC", "EF": "", "ST": "G"}
                   for i, (at, tx, _kwh) in enumerate(readings)],
        }
        payload.update(extra or {})
        text = json.dumps(payload, separators=(",", ":"))
        for i, (_at, _tx, kwh) in enumerate(readings):
            # RV is a JSON number written with its digits (2935.600 stays 2935.600)
            text = text.replace(f'"@RV{i}@"', format(Decimal(kwh), "f"))
        self.page += 1
        return self.sign(text)

    def sign(self, payload_text: str, algorithm: str | None = None) -> str:
        sig = self.key.sign(payload_text.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        sa = algorithm or f"ECDSA-{self.curve}-SHA256"
        return f'OCMF|{payload_text}|{{"SA":"{sa}","SD":"{sig.hex().upper()}"}}'
