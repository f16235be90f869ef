"""Configuration of the gateway's uplink (the ``[mqtt]`` table of the site file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    broker: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port or mqtts://host:port")
    username: str | None = None
    password: str | None = None
    ca_file: str | None = Field(None, description="CA certificate that signed the broker's")
    cert_file: str | None = Field(None, description="client certificate (mutual TLS)")
    key_file: str | None = Field(None, description="client private key (mutual TLS)")
