"""Configuration of the gateway's uplink (the ``[mqtt]`` table of the site file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sitegate.sync.protocol import BATCH_MAX_BYTES, BATCH_MAX_ITEMS


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    broker: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port or mqtts://host:port")
    username: str | None = None
    password: str | None = None
    password_secret: str | None = Field(
        None, description="name of the password in the box's secrets file "
                          "(/etc/sitegate/secrets.toml); instead of password, which the "
                          "cloud's desired config may not carry")
    ca_file: str | None = Field(None, description="CA certificate that signed the broker's")
    cert_file: str | None = Field(None, description="client certificate (mutual TLS)")
    key_file: str | None = Field(None, description="client private key (mutual TLS)")
    provision_broker: str | None = Field(
        None, description="the broker's enrolment listener, mqtts://host:port (default: the "
                          "broker's host, port 8884); used with a claim token and to renew")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds")
    session_expiry: int = Field(
        7 * 24 * 3600, ge=0,
        description="seconds the broker keeps our session (subscriptions, queued commands "
                    "and acks) while we are offline")
    batch_rows: int = Field(500, ge=1, le=BATCH_MAX_ITEMS,
                            description="most rows in one uplink batch")
    batch_bytes: int = Field(
        256 * 1024, ge=1024, le=BATCH_MAX_BYTES,
        description="most bytes of rows in one batch (keep well under the cloud's limit)")
    max_inflight: int = Field(
        8, ge=1, le=100, description="batches per stream sent and not yet acknowledged")
    drain_rate: int | None = Field(
        2000, ge=1,
        description="rows per second for the backlog found at (re)connect; live rows are "
                    "never held back by it. Unset: as fast as acks come back")
    ack_timeout: float = Field(
        30.0, gt=0,
        description="seconds without an ack before a batch is sent again, at least: the "
                    "wait grows with the acks' measured round trip and what is in flight, "
                    "and doubles after each expiry (up to ack_timeout_max)")
    ack_timeout_max: float = Field(
        300.0, gt=0, le=3600,
        description="longest wait for an ack before a resend, seconds (never below "
                    "ack_timeout)")
    uplink_spread: float = Field(
        180.0, ge=0, le=600,
        description="seconds after each quarter-hour within which this gateway's live "
                    "readings go out at its own fixed offset (from its id), so a fleet's "
                    "quarter-hour cycles do not reach the cloud at once; 0: at once. A "
                    "cycle smaller than batch_rows is never held")
    reconnect_min: float = Field(1.0, gt=0, description="first reconnect delay, seconds")
    reconnect_max: float = Field(120.0, gt=0, description="longest reconnect delay, seconds")
    status_interval: float = Field(
        60.0, gt=0, description="seconds between health summaries on the status topic")
    poll_interval: float = Field(
        1.0, gt=0,
        description="seconds between looks at the buffer when nobody calls SyncClient.wake()")

    @model_validator(mode="after")
    def _tls_pairs(self) -> MqttConfig:
        if self.password and self.password_secret:
            raise ValueError("password or password_secret, not both")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        if self.cert_file and not self.broker.startswith("mqtts://"):
            raise ValueError("client certificates need an mqtts:// broker")
        if not self.broker.startswith(("mqtt://", "mqtts://")):
            raise ValueError("broker must be mqtt://host[:port] or mqtts://host[:port]")
        return self

    def host_port(self) -> tuple[str, int, bool]:
        """(host, port, tls) from ``broker``; ports default to 1883 / 8883."""
        tls = self.broker.startswith("mqtts://")
        rest = self.broker.split("://", 1)[1].rstrip("/")
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
        return host, int(port) if port else (8883 if tls else 1883), tls
