"""Cloud -> gateway: retained desired config and badge list, and commands with results.

Every message is signed with the cloud's downlink key (sitegate.common.signing) for one
gateway; a command also carries its expiry in what is signed. The desired config never
carries credentials: it names them and the box keeps them (see ``secret_keys``).
"""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sitegate.cloud.ingest.service import parse_broker
from sitegate.common import signing
from sitegate.sync import protocol as p

# Keys that hold a credential in a site file (the [mqtt] password, a charger's basic-auth
# password) or look like one. The site file names a secret instead (``password_secret``).
_SECRET_KEYS = ("password", "passwd", "secret", "token", "api_key", "private_key", "psk")
_REFERENCE_SUFFIX = "_secret"  # password_secret = "name": a reference, not a secret
# The commands' client ids: "/" is in no gateway id (see IngestService), so no gateway's
# certificate names a session a command holds.
CLIENT_ID_PREFIX = "sitegate-cloud/"


@dataclass(frozen=True)
class BrokerAuth:
    """How a cloud command authenticates to the broker: user + password (from a file or the
    environment, never argv: sitegate.cloud.secrets) and/or a TLS client certificate."""

    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_options(cls, username: str | None, password: str | None,
                     ca_file: str | None, cert_file: str | None,
                     key_file: str | None) -> BrokerAuth:
        if (cert_file is None) != (key_file is None):
            raise ValueError("--cert-file and --key-file go together")
        return cls(username, password, ca_file, cert_file, key_file)


def _client(broker_url: str, auth: BrokerAuth | None,
            client_id: str | None = None) -> mqtt.Client:
    auth = auth or BrokerAuth()
    host, port, tls = parse_broker(broker_url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2,
                    client_id=client_id or f"{CLIENT_ID_PREFIX}{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5)
    if auth.username:
        c.username_pw_set(auth.username, auth.password)
    if tls:
        c.tls_set(ca_certs=auth.ca_file, certfile=auth.cert_file, keyfile=auth.key_file,
                  tls_version=ssl.PROTOCOL_TLS_CLIENT)
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            refused.append(str(rc))
        connected.set()

    c.on_connect = on_connect
    c.connect(host, port, keepalive=30)
    c.loop_start()
    if not connected.wait(30) or refused:
        c.loop_stop()
        raise ConnectionError(f"broker {broker_url} refused the connection: "
                              f"{refused[0] if refused else 'no answer in 30 s'}")
    return c


def _publish_retained(broker_url: str, topic: str, payload: bytes,
                      auth: BrokerAuth | None) -> None:
    c = _client(broker_url, auth)
    try:
        c.publish(topic, payload, qos=1, retain=True).wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()


def secret_keys(config: Any, where: str = "") -> list[str]:
    """The keys of a site config (dict from TOML or JSON) that hold a credential."""
    found: list[str] = []
    if isinstance(config, dict):
        for k, v in config.items():
            path = f"{where}.{k}" if where else str(k)
            name = str(k).lower()
            if (any(s in name for s in _SECRET_KEYS) and not name.endswith(_REFERENCE_SUFFIX)
                    and v not in (None, "")):
                found.append(path)
            else:
                found += secret_keys(v, path)
    elif isinstance(config, list):
        for i, v in enumerate(config):
            found += secret_keys(v, f"{where}[{i}]")
    return found


def _as_dict(config: dict[str, Any] | str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(config) if isinstance(config, str) else config


def push_config(broker_url: str, gateway_id: str, version: int,
                config: dict[str, Any] | str, key: Ed25519PrivateKey,
                auth: BrokerAuth | None = None) -> None:
    """Retain the signed desired configuration (the whole site config: TOML text or a dict);
    the gateway reports applied/rejected in status. ValueError if it holds a credential."""
    secrets = secret_keys(_as_dict(config))
    if secrets:
        raise ValueError(f"the desired config holds credentials ({', '.join(secrets)}): name "
                         f"them (password_secret = \"name\"); the box keeps them in its "
                         f"secrets file")
    desired = p.DesiredConfig(version=version, config=config)
    payload = signing.sign(key, gateway_id, signing.KIND_CONFIG, version, desired.model_dump())
    _publish_retained(broker_url, p.topic(gateway_id, p.LEAF_CONFIG), payload, auth)


def push_badges(broker_url: str, gateway_id: str, badges: dict[str, Any],
                key: Ed25519PrivateKey, auth: BrokerAuth | None = None) -> None:
    """Retain the signed badge list (validated against BadgeList first)."""
    bl = p.BadgeList.model_validate(badges)
    payload = signing.sign(key, gateway_id, signing.KIND_BADGES, bl.version,
                           bl.model_dump(mode="json"))
    _publish_retained(broker_url, p.topic(gateway_id, p.LEAF_BADGES), payload, auth)


def signed_command(key: Ed25519PrivateKey, gateway_id: str, name: str, args: dict[str, Any],
                   expiry: int) -> tuple[str, bytes]:
    """(id, wire payload) of a command for ``gateway_id`` that expires in ``expiry`` s."""
    longest = int(signing.MAX_COMMAND_LIFETIME.total_seconds())
    if not 1 <= expiry <= longest:
        raise ValueError(f"expiry {expiry} s: a command expires within 1..{longest} s "
                         "(gateways refuse longer)")
    cmd = p.Command(id=uuid.uuid4().hex[:12], name=name, args=args)
    expires = datetime.now(UTC) + timedelta(seconds=expiry)
    return cmd.id, signing.sign(key, gateway_id, signing.KIND_CMD, cmd.id, cmd.model_dump(),
                                expires=expires)


def send_command(broker_url: str, gateway_id: str, name: str, args: dict[str, Any],
                 key: Ed25519PrivateKey, expiry: int = 300, wait: float = 30.0,
                 auth: BrokerAuth | None = None,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 ) -> p.CommandResult | None:
    """Send a signed command that expires after ``expiry`` s; the result, or None if none in
    ``wait`` s (counted again from each progress message of a long command)."""
    cmd_id, payload = signed_command(key, gateway_id, name, args, expiry)
    got: list[p.CommandResult] = []
    done = threading.Event()
    moved = threading.Event()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            r = p.decode_command_result(msg.payload)
        except p.ProtocolError:
            return
        if r.progress is not None:
            moved.set()
            if on_progress is not None:
                on_progress(r.progress)
            return
        got.append(r)
        done.set()

    c = _client(broker_url, auth)
    c.on_message = on_message
    try:
        c.subscribe(p.cmd_result_topic(gateway_id, cmd_id), qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = expiry
        c.publish(p.cmd_topic(gateway_id, cmd_id), payload, qos=1,
                  properties=props).wait_for_publish(30)
        while not done.wait(wait) and moved.is_set():
            moved.clear()  # still working: wait again
    finally:
        c.disconnect()
        c.loop_stop()
    return got[0] if got else None
