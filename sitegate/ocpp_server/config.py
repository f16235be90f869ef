"""Configuration of the OCPP central system (the ``[ocpp]`` table of the site file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OcppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "0.0.0.0"
    port: int = Field(9000, ge=1, le=65535)
