"""The gateway side of enrolment: send the CSR (with a claim token, or the current
certificate to renew) to the broker's provisioning listener and keep the answer.

A claim trusts the broker by the pin in the token (checked before the secret is sent); a
renewal by the CA the gateway got at enrolment.
"""

from __future__ import annotations

import secrets
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from sitegate.common import provisioning as pv
from sitegate.firmware_tools.identity import Identity
from sitegate.sync.config import MqttConfig

log = structlog.get_logger(__name__)

PROVISION_PORT = 8884


class EnrolError(Exception):
    """Enrolment failed; the text says why (refused by the cloud, broker unreachable...)."""


def provision_url(cfg: MqttConfig) -> str:
    """The provisioning listener: ``provision_broker`` if set, else the broker's host on
    port 8884."""
    explicit = getattr(cfg, "provision_broker", None)
    if explicit:
        return explicit
    host, _, _ = cfg.host_port()
    return f"mqtts://{host}:{PROVISION_PORT}"


def _host_port(url: str) -> tuple[str, int]:
    if not url.startswith("mqtts://"):
        raise EnrolError(f"provisioning broker {url!r} must be mqtts://host[:port]")
    rest = url.split("://", 1)[1].rstrip("/")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    return host, int(port) if port else PROVISION_PORT


def _exchange(url: str, request: pv.Request, *, pin: str | None, ca_file: str | None,
              timeout: float) -> pv.Response:
    """One request/answer over a fresh connection whose client id is a random nonce."""
    host, port = _host_port(url)
    nonce = secrets.token_hex(16)
    ctx = ssl.create_default_context(cafile=ca_file) if pin is None else _pinning_context()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=nonce, protocol=mqtt.MQTTv5)
    client.tls_set_context(ctx)
    if pin is not None:
        client.tls_insecure_set(True)  # trust comes from the pin, checked in on_connect
    done = threading.Event()
    result: dict[str, Any] = {}

    def fail(why: str) -> None:
        result.setdefault("error", why)
        done.set()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            return fail(f"broker refused the connection: {rc}")
        if pin is not None:
            der = c.socket().getpeercert(binary_form=True)  # type: ignore[union-attr]
            if der is None or pv.pin_of(der) != pin:
                return fail("the broker's certificate does not match the token's pin: "
                            "wrong broker, or someone in between")
        c.subscribe(pv.response_topic(nonce), qos=1)

    def on_subscribe(c: mqtt.Client, _u: Any, _m: Any, codes: Any, _p: Any = None) -> None:
        if any(code.is_failure for code in codes):
            return fail("the broker does not let us use the provisioning topics")
        c.publish(pv.request_topic(nonce), request.model_dump_json().encode(), qos=1)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if len(msg.payload) > pv.MAX_RESPONSE_BYTES:
            return fail("answer too large")
        try:
            result["response"] = pv.Response.model_validate_json(msg.payload)
        except ValidationError as exc:
            return fail(f"malformed answer: {str(exc)[:200]}")
        done.set()

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        raise EnrolError(f"cannot reach the provisioning broker {host}:{port}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise EnrolError(f"no answer from the cloud within {timeout:g} s (is the cloud's "
                             "ingest running, and the broker's provisioning listener?)")
    finally:
        client.disconnect()
        client.loop_stop()
    if "error" in result:
        raise EnrolError(result["error"])
    resp: pv.Response = result["response"]
    if not resp.ok or not resp.cert or not resp.ca:
        raise EnrolError(f"refused by the cloud: {resp.error or 'no certificate'}")
    return resp


def _pinning_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _keep(identity: Identity, gateway_id: str, resp: pv.Response) -> x509.Certificate:
    from sitegate.firmware_tools.identity import IdentityError

    try:
        return identity.store(gateway_id, resp.cert or "", resp.ca or "", resp.downlink_pub)
    except IdentityError as exc:
        raise EnrolError(f"the cloud's answer was not kept: {exc}") from None


def enrol(identity: Identity, gateway_id: str, token: str, url: str,
          timeout: float = 30.0) -> x509.Certificate:
    """Claim: make the key if needed, send CSR + token, keep certificate, CA, downlink key."""
    try:
        secret, pin = pv.split_token(token)
    except pv.ProvisioningError as exc:
        raise EnrolError(str(exc)) from None
    req = pv.Request(kind="claim", gateway_id=gateway_id, csr=identity.csr_pem(gateway_id),
                     token=secret)
    cert = _keep(identity, gateway_id, _exchange(url, req, pin=pin, ca_file=None,
                                                 timeout=timeout))
    identity.token_file.unlink(missing_ok=True)  # used: never sent again
    log.info("enrol.done", gateway=gateway_id, not_after=cert.not_valid_after_utc.isoformat())
    return cert


def renew(identity: Identity, gateway_id: str, url: str,
          timeout: float = 30.0) -> x509.Certificate:
    """A new certificate for the same key, proved by the current one."""
    req = pv.Request(kind="renew", gateway_id=gateway_id, csr=identity.csr_pem(gateway_id),
                     cert=identity.cert_file.read_text())
    cert = _keep(identity, gateway_id, _exchange(url, req, pin=None,
                                                 ca_file=str(identity.ca_file), timeout=timeout))
    log.info("enrol.renewed", gateway=gateway_id, not_after=cert.not_valid_after_utc.isoformat())
    return cert
