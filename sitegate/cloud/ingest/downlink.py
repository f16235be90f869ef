"""Cloud -> gateway: retained desired config and badge list, and commands with results."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sitegate.cloud.ingest.service import parse_broker
from sitegate.sync import protocol as p


def _client(broker_url: str) -> mqtt.Client:
    host, port, tls = parse_broker(broker_url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sitegate-cloud-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5)
    if tls:
        c.tls_set()
    c.connect(host, port, keepalive=30)
    c.loop_start()
    return c


def _publish_retained(broker_url: str, topic: str, payload: bytes) -> None:
    c = _client(broker_url)
    try:
        c.publish(topic, payload, qos=1, retain=True).wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()


def push_config(broker_url: str, gateway_id: str, version: int,
                config: dict[str, Any] | str) -> None:
    """Retain the desired configuration (the whole site config: TOML text or a dict); the
    gateway reports applied/rejected in status."""
    desired = p.DesiredConfig(version=version, config=config)
    _publish_retained(broker_url, p.topic(gateway_id, p.LEAF_CONFIG),
                      p.dumps(desired.model_dump()))


def push_badges(broker_url: str, gateway_id: str, badges: dict[str, Any]) -> None:
    """Retain the badge list (validated against BadgeList first)."""
    bl = p.BadgeList.model_validate(badges)
    _publish_retained(broker_url, p.topic(gateway_id, p.LEAF_BADGES),
                      p.dumps(bl.model_dump(mode="json")))


def send_command(broker_url: str, gateway_id: str, name: str, args: dict[str, Any],
                 expiry: int = 300, wait: float = 30.0) -> p.CommandResult | None:
    """Send a command that expires after ``expiry`` s; the result, or None if none in ``wait``."""
    cmd = p.Command(id=uuid.uuid4().hex[:12], name=name, args=args)
    got: list[p.CommandResult] = []
    done = threading.Event()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            got.append(p.decode_command_result(msg.payload))
            done.set()
        except p.ProtocolError:
            pass

    c = _client(broker_url)
    c.on_message = on_message
    try:
        c.subscribe(p.cmd_result_topic(gateway_id, cmd.id), qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = expiry
        c.publish(p.cmd_topic(gateway_id, cmd.id), p.dumps(cmd.model_dump()), qos=1,
                  properties=props).wait_for_publish(30)
        done.wait(wait)
    finally:
        c.disconnect()
        c.loop_stop()
    return got[0] if got else None
