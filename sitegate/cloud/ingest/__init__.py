"""Cloud ingest: MQTT uplink -> database, idempotent, with acks and a dead-letter table."""

from sitegate.cloud.ingest.writer import Outgoing, Writer

__all__ = ["Outgoing", "Writer"]
