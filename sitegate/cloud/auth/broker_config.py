"""The Mosquitto configuration sitegate expects, written by ``sitegate-cloud broker-config``.

Two Mosquitto processes. The main broker has two listeners:
- gateways, mutual TLS with the gateway CA: the certificate's CN is the MQTT username AND the
  client id (``use_username_as_clientid``: no gateway can connect under another's client id
  and so disconnect it), the ACL confines each to ``sitegate/v1/{its id}/``, revoked
  certificates are in the CRL;
- the cloud, mutual TLS trusting only the cloud CA (which signs nothing but the cloud's
  certificates): client ids stay the caller's, so ``serve`` and the push/command CLIs connect
  at once under distinct ids; no gateway certificate passes there.

The enrolment broker is a Mosquitto of its own (``enrolment.conf``): TLS without client
certificate, anonymous clients reach only their own provisioning request/response topics
(``%c``: the client id is the nonce). Client ids are one namespace per Mosquitto process and
2.0 cannot restrict them per listener, so an anonymous listener on the main broker would let
anyone connect under a gateway's id and disconnect it. Its bridge carries requests out to
the main broker's cloud listener and answers back, as the identity ``sitegate-enrolment``,
which the cloud ACL lets do nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sitegate.cloud.ingest.writer import MAX_MESSAGE_BYTES
from sitegate.common import provisioning as pv
from sitegate.sync import protocol as p

UPLINK = [*p.STREAMS, p.LEAF_STATUS, f"{p.LEAF_CMD}/+/result"]
DOWNLINK = [p.LEAF_ACK, p.LEAF_CONFIG, p.LEAF_BADGES, f"{p.LEAF_CMD}/+"]

# Whole MQTT packets (payload, topic, properties). The main broker passes anything ingest
# would still look at (it dead-letters over MAX_MESSAGE_BYTES with a reason) and refuses,
# by disconnecting the sender, what nobody sends: a gateway's batch is a few KiB.
MAX_PACKET = MAX_MESSAGE_BYTES + 64 * 1024
# Enrolment: the largest answer (certificate, CA chain, key) plus its topic and headers.
ENROL_MAX_PACKET = pv.MAX_RESPONSE_BYTES + 4 * 1024
MAX_INFLIGHT = 20  # QoS 1 messages in flight to one client (Mosquitto's default, pinned)
MAX_QUEUED = 10000  # downlink (acks, config, commands) queued for an offline gateway
MAX_QUEUED_BYTES = 16 * 1024 * 1024  # and their bytes: one client cannot fill the memory


@dataclass
class BrokerSettings:
    dir: str  # where the broker reads these files
    port: int = 8883
    provision_port: int = 8884
    cloud_port: int = 8885
    bind: str | None = None
    user: str | None = None  # mosquitto drops to this user ("root" only in tests)
    data: str = "/var/lib/mosquitto/"  # persistence (sessions and queued downlink)
    provision_connections: int = 64  # enrolling clients at once
    bridge_host: str = "127.0.0.1"  # where the enrolment broker reaches the cloud listener


def _limits(max_packet: int, queued: int, queued_bytes: int) -> str:
    return (f"max_packet_size {max_packet}\nmax_inflight_messages {MAX_INFLIGHT}\n"
            f"max_queued_messages {queued}\nmax_queued_bytes {queued_bytes}\n")


def mosquitto_conf(s: BrokerSettings) -> str:
    bind = f" {s.bind}" if s.bind else ""
    d = s.dir.rstrip("/")
    server = f"certfile {d}/broker.crt\nkeyfile {d}/broker.key\ntls_version tlsv1.2\n"
    tls = f"cafile {d}/ca.crt\n{server}"
    return (
        "# sitegate broker configuration, written by `sitegate-cloud broker-config`.\n"
        "# After `sitegate-cloud gateways revoke`, reload the broker (SIGHUP) to read the CRL.\n"
        "# Enrolment runs in a Mosquitto of its own: enrolment.conf.\n"
        "per_listener_settings true\n"
        + (f"user {s.user}\n" if s.user else "")
        + f"persistence true\npersistence_location {s.data.rstrip('/')}/\n"
        "# Bounded: a larger packet disconnects its sender; downlink queued for an offline\n"
        "# gateway is capped in count and bytes.\n"
        + _limits(MAX_PACKET, MAX_QUEUED, MAX_QUEUED_BYTES)
        + "\n# Gateways: mutual TLS; the certificate's CN is the username and the client id\n"
        "# (so no gateway can take another's client id and disconnect it).\n"
        f"listener {s.port}{bind}\n{tls}crlfile {d}/crl.pem\n"
        "require_certificate true\nuse_identity_as_username true\n"
        "use_username_as_clientid true\nallow_anonymous false\n"
        f"acl_file {d}/acl\n"
        "\n# The cloud: mutual TLS with its own CA only (it signs no gateway); its processes\n"
        "# keep their own client ids, so several connect at once.\n"
        f"listener {s.cloud_port}{bind}\ncafile {d}/cloud-ca.crt\n{server}"
        "require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n"
        f"acl_file {d}/acl-cloud\n"
    )


def enrolment_conf(s: BrokerSettings) -> str:
    bind = f" {s.bind}" if s.bind else ""
    d = s.dir.rstrip("/")
    return (
        "# sitegate enrolment broker, written by `sitegate-cloud broker-config`: a Mosquitto\n"
        "# of its own, so that no anonymous client shares a client-id namespace with the\n"
        "# gateways (it could take a gateway's id and disconnect it).\n"
        + (f"user {s.user}\n" if s.user else "")
        + "persistence false\n"
        "# nothing lingers: an enrolment takes seconds\n"
        "persistent_client_expiration 1h\n"
        + _limits(ENROL_MAX_PACKET, 10, 4 * ENROL_MAX_PACKET)
        + "\n# TLS without client certificate; only the provisioning topics.\n"
        f"listener {s.provision_port}{bind}\ncafile {d}/ca.crt\ncertfile {d}/broker.crt\n"
        f"keyfile {d}/broker.key\ntls_version tlsv1.2\n"
        "# anonymous: bounded, so that a flood cannot take the broker's descriptors\n"
        f"max_connections {s.provision_connections}\n"
        "allow_anonymous true\n"
        f"acl_file {d}/acl-provision\n"
        "\n# Requests out to the main broker's cloud listener, answers back; nothing else.\n"
        f"connection {pv.ENROLMENT_IDENTITY}\naddress {s.bridge_host}:{s.cloud_port}\n"
        f"remote_clientid {pv.ENROLMENT_IDENTITY}\n"
        f"bridge_cafile {d}/ca.crt\nbridge_certfile {d}/enrolment-bridge.crt\n"
        f"bridge_keyfile {d}/enrolment-bridge.key\nbridge_tls_version tlsv1.2\n"
        "notifications false\ncleansession true\n"
        f"topic {pv.REQUESTS} out 1\ntopic {pv.RESPONSES} in 1\n"
    )


def acl() -> str:
    prefix = p.TOPIC_PREFIX
    lines = ["# sitegate: written by `sitegate-cloud broker-config`.",
             "# Every gateway (%u = its certificate's CN = its id) writes its own uplink",
             "# and reads its own downlink; nothing else."]
    lines += [f"pattern write {prefix}/%u/{leaf}" for leaf in UPLINK]
    lines += [f"pattern read {prefix}/%u/{leaf}" for leaf in DOWNLINK]
    return "\n".join(lines) + "\n"


def acl_cloud() -> str:
    return ("# sitegate: written by `sitegate-cloud broker-config`.\n"
            "# The cloud's identity: uplink, downlink and enrolment answers.\n"
            f"user {pv.CLOUD_IDENTITY}\ntopic readwrite sitegate/#\n"
            "# The enrolment broker's bridge: requests in, answers out, nothing else.\n"
            f"user {pv.ENROLMENT_IDENTITY}\ntopic write {pv.REQUESTS}\n"
            f"topic read {pv.RESPONSES}\n")


def acl_provision() -> str:
    return ("# sitegate: written by `sitegate-cloud broker-config`.\n"
            "# An unenrolled client (%c = its client id, a random nonce) writes its request\n"
            "# and reads the answer to it; nothing else.\n"
            f"pattern write {pv.request_topic('%c')}\n"
            f"pattern read {pv.response_topic('%c')}\n")


def config_files(s: BrokerSettings) -> dict[str, str]:
    """The text files of the configuration (certificates and CRL come from the CA)."""
    return {"mosquitto.conf": mosquitto_conf(s), "enrolment.conf": enrolment_conf(s),
            "acl": acl(), "acl-cloud": acl_cloud(), "acl-provision": acl_provision()}


def write(out: Path, files: dict[str, str | bytes], private: set[str]) -> None:
    from sitegate.cloud.keys import write_private

    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        data = text.encode() if isinstance(text, str) else text
        if name in private:
            write_private(out / name, data)
        else:
            (out / name).write_bytes(data)
