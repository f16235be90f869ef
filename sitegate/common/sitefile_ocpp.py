"""Configuration of the OCPP central system (the ``[ocpp]`` table of the site file)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sitegate.common.ocmf_keys import OcmfError, key_der

ChargePointId = str

# What load management reads from the main meter: the current of each phase (OBIS).
MAIN_METER_CURRENTS = ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChargePointConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}$",
                    description="the charge point identity, the last part of its URL")
    kind: Literal["ev", "laundry", "ebike"] = Field(
        "ev", description="ev charger, or an RFID relay box switching laundry machines or "
                          "eBike chargers (billed as such in the cloud)")
    password: str | None = Field(
        None, description="HTTP basic auth password (security profile 1 and 2)")
    password_secret: str | None = Field(
        None, description="name of that password in the box's secrets file "
                          "(/etc/sitegate/secrets.toml); instead of password, which the "
                          "cloud's desired config may not carry")
    badge_format: Literal["as-is", "hex", "hex-reversed"] = Field(
        "hex", description="how this charger writes badge UIDs: 'hex' normalizes case and "
                           "separators, 'hex-reversed' also reverses the byte order of 4/7-byte "
                           "UIDs, 'as-is' keeps the text")
    max_current: Decimal = Field(Decimal(32), gt=0, le=500,
                                 description="largest current per phase, A")
    phases: list[Literal[1, 2, 3]] = Field(
        [1, 2, 3], min_length=1, max_length=3,
        description="building phases the charger is wired to (a single-phase charger on L2: [2])")
    priority: int = Field(0, ge=0, le=9, description="load management class; higher is served "
                                                     "first")
    limit_unit: Literal["auto", "A", "W"] = Field(
        "auto", description="unit of charging profiles; 'auto' reads the charger's "
                            "ChargingScheduleAllowedChargingRateUnit")
    voltage: Decimal = Field(Decimal(230), gt=0, description="phase voltage for W profiles")
    billing_point: str | None = Field(None, description="label of the billed unit")
    calibrated: bool = Field(
        False, description="a calibrated meter signs its readings (OCMF): a session without "
                            "valid signed start and stop values is flagged (and per the "
                            "cloud's site setting billed with a note or held back)")
    public_key: str | None = Field(
        None, max_length=1024,
        description="the meter's OCMF public key (hex or base64 DER, as on its label or in "
                    "the charger's documentation); without it the first key the charger "
                    "sends is pinned, and a different one later raises an alarm")
    meter_serial: str | None = Field(
        None, max_length=64, description="the calibrated meter's serial number (OCMF 'MS'): "
                                         "records signed by another meter fail")

    @field_validator("public_key")
    @classmethod
    def _readable_key(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                der = key_der(v)
            except OcmfError as exc:
                raise ValueError(str(exc)) from None
            if not der.startswith(b"\x30") or len(der) < 40:
                raise ValueError("public key is not a DER SubjectPublicKeyInfo")
        return v

    @model_validator(mode="after")
    def _one_password(self) -> ChargePointConfig:
        if self.password and self.password_secret:
            raise ValueError("password or password_secret, not both")
        return self


class BadgeConfig(_Strict):
    id: str = Field(min_length=1, max_length=40)
    status: Literal["accepted", "blocked", "expired"] = "accepted"
    expires: datetime | None = Field(None, description="ISO 8601; after it the badge is refused")
    account: str | None = Field(None, description="tenant account billed for the sessions")


class SecurityConfig(_Strict):
    profile: Literal[0, 1, 2] = Field(
        0, description="0: no auth; 1: HTTP basic auth; 2: basic auth over TLS")
    certfile: str | None = Field(None, description="server certificate chain (PEM), profile 2")
    keyfile: str | None = Field(None, description="server private key (PEM), profile 2")
    unknown_chargers: Literal["reject", "pending", "accept"] = Field(
        "reject", description="a charge point not listed in charge_points: 'reject' it; "
                              "'pending': let it connect and boot as Pending, logged and "
                              "listed, refusing everything else it sends (so an installer "
                              "sees it and adds it); 'accept' it (security profile 0 only)")

    @field_validator("unknown_chargers")
    @classmethod
    def _no_open_door(cls, value: str, info: ValidationInfo) -> str:
        # With basic auth every charger proves itself with its own password; one that is
        # not listed has none, so accepting it would bypass the security profile. A shared
        # "enrolment" password is not offered: one leaked charger would open the door for
        # any identity, and its sessions are billed to tenants' badges.
        profile = info.data.get("profile")
        if value == "accept" and profile:
            raise ValueError(
                f"'accept' would let chargers without a password in, which security profile "
                f"{profile} forbids: use 'pending' (an unknown charger connects and is logged "
                f"but may do nothing until it is added to [[ocpp.charge_points]] with its "
                f"password) or 'reject'")
        return value

    @model_validator(mode="after")
    def _tls_files(self) -> SecurityConfig:
        if self.profile == 2 and not (self.certfile and self.keyfile):
            raise ValueError("security profile 2 needs 'certfile' and 'keyfile'")
        return self


class LoadManagementConfig(_Strict):
    enabled: bool = False
    main_meter: str | None = Field(
        None, description="id of the building's main meter in [[meters]]; its per-phase "
                          "currents (1-0:31.7.0, 51.7.0, 71.7.0) give the base load "
                          "(without it: fallback current)")
    connection_limit: Decimal = Field(Decimal(63), gt=0,
                                      description="building connection, A per phase")
    safety_margin: Decimal = Field(
        Decimal(2), ge=0,
        description="A per phase kept free below connection_limit: the sessions share "
                    "connection_limit - safety_margin - base load, and a main meter reading "
                    "above connection_limit - safety_margin on any phase reduces the limits "
                    "at once (raising waits for the next recomputation). It absorbs the base "
                    "load creeping up between readings and meter and car tolerances; a load "
                    "that switches on in one step (an oven, a washing machine) is over it "
                    "until the next main meter reading")
    min_current: Decimal = Field(Decimal(6), ge=0,
                                 description="below this a session is paused (IEC 61851: 6 A)")
    fallback_current: Decimal = Field(
        Decimal(6), ge=0, description="current per session when the main meter data is stale")
    stale_after: float = Field(30.0, gt=0, description="seconds after which main meter data "
                                                       "is stale")
    interval: float = Field(30.0, gt=0, description="seconds between periodic recomputations")
    max_rejects: int = Field(3, ge=1, description="profile rejections before a charger is "
                                                  "reported and left alone")

    @model_validator(mode="after")
    def _margin_below_limit(self) -> LoadManagementConfig:
        if self.safety_margin >= self.connection_limit:
            raise ValueError(f"safety_margin ({self.safety_margin} A) must be below "
                             f"connection_limit ({self.connection_limit} A): nothing would be "
                             f"left to share")
        return self


class LimitsConfig(_Strict):
    """What anyone reaching the OCPP port may hold; refusals are logged once per interval."""

    max_connections: int = Field(200, ge=1, le=2000, description="open charger connections "
                                 "in all (keep well below the unit's LimitNOFILE)")
    max_pending: int = Field(8, ge=0, description="connections of chargers not listed in "
                             "charge_points (unknown_chargers = 'pending') at a time")
    max_pending_per_address: int = Field(
        4, ge=0, description="of those, from one IP address (listed chargers are not capped "
                             "per address: several may sit behind one router)")
    log_interval: float = Field(60.0, gt=0, description="seconds between log lines about "
                                "refused connections and unknown chargers")


class OcppConfig(_Strict):
    host: str = "0.0.0.0"
    port: int = Field(9000, ge=0, le=65535, description="TCP port; 0 picks a free one (tests)")
    heartbeat_interval: int = Field(300, ge=10, description="seconds, sent in BootNotification")
    call_timeout: float = Field(30.0, gt=0, description="seconds to wait for a charger's answer")
    session_report_interval: float = Field(
        900.0, gt=0, description="seconds between reports of running sessions to the buffer")
    security: SecurityConfig = SecurityConfig()
    charge_points: list[ChargePointConfig] = []
    badges: list[BadgeConfig] = Field([], description="local badges, besides the cloud's list")
    load_management: LoadManagementConfig = LoadManagementConfig()
    limits: LimitsConfig = LimitsConfig()

    @field_validator("charge_points")
    @classmethod
    def _unique(cls, cps: list[ChargePointConfig]) -> list[ChargePointConfig]:
        ids = [c.id for c in cps]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"charge point ids must be unique: {', '.join(twice)} "
                             "appears more than once")
        return cps

    def charge_point(self, cp_id: str) -> ChargePointConfig | None:
        for c in self.charge_points:
            if c.id == cp_id:
                return c
        return None
