"""The shipped broker configuration enforces who may do what (a real Mosquitto from the
files ``broker-config`` writes). Forbidden publishes and subscriptions are silently dropped
by Mosquitto, so every check ends with an allowed message from the same sender: once that
one arrived, a forbidden one sent before it would have arrived too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trust.conftest import Broker, wait_until

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.xdist_group("trust-broker-acl")]  # one broker, one worker

A, B = "gw-a", "gw-b"
DOWNLINK = ("ack", "config", "badges", "cmd/c1")


def t(gw: str, leaf: str) -> str:
    return f"sitegate/v1/{gw}/{leaf}"


@pytest.fixture
def cloud(secure_broker: Broker):  # type: ignore[no-untyped-def]
    c = secure_broker.client(secure_broker.cloud_identity())
    assert c.connected, c.refused
    c.subscribe("sitegate/#")
    yield c
    c.close()


def test_gateway_b_can_neither_write_nor_read_gateway_a(secure_broker: Broker, cloud,
                                                        tmp_path: Path) -> None:
    b = secure_broker.client(secure_broker.gateway_identity(tmp_path, B))
    assert b.connected, b.refused
    for leaf in ("readings", "sessions", "events", "status", "cmd/c1/result"):
        b.publish(t(A, leaf), b"forged")
    b.publish(t(B, "readings"), b"marker")
    wait_until(lambda: t(B, "readings") in cloud.topics(), "B's own batch at the cloud")
    assert not [x for x in cloud.topics() if x.startswith(t(A, ""))]

    b.subscribe(*(t(A, leaf) for leaf in (*DOWNLINK[:3], "cmd/+", "readings")), "sitegate/#",
                t(B, "ack"))
    for leaf in DOWNLINK:
        cloud.publish(t(A, leaf), b"for A only")
    cloud.publish(t(B, "ack"), b"marker")
    wait_until(lambda: t(B, "ack") in b.topics(), "B's own ack")
    # (twice: through sitegate/# and its own subscription; never A's)
    assert set(b.topics()) == {t(B, "ack")}
    b.close()


def test_gateway_cannot_publish_acks_config_badges_or_commands(secure_broker: Broker, cloud,
                                                               tmp_path: Path) -> None:
    a = secure_broker.client(secure_broker.gateway_identity(tmp_path, A))
    assert a.connected, a.refused
    for leaf in DOWNLINK:
        a.publish(t(A, leaf), b"forged")
    a.publish(t(A, "events"), b"marker")
    wait_until(lambda: t(A, "events") in cloud.topics(), "A's own event at the cloud")
    assert not {t(A, leaf) for leaf in DOWNLINK} & set(cloud.topics())
    a.close()


def test_no_certificate_no_connection_on_the_gateway_listener(secure_broker: Broker) -> None:
    anon = secure_broker.client(None, port=secure_broker.port)
    assert not anon.connected and anon.refused
    anon.close()


def test_anonymous_client_gets_nothing_beyond_provisioning(secure_broker: Broker,
                                                           cloud) -> None:
    me, other = "1" * 32, "2" * 32
    anon = secure_broker.client(None, client_id=me)
    assert anon.connected, anon.refused
    anon.subscribe("#", "sitegate/#", t(A, "ack"), "sitegate/v1/provision/+/response",
                   f"sitegate/v1/provision/{other}/response",
                   f"sitegate/v1/provision/{other}/request",
                   f"sitegate/v1/provision/{me}/response")
    anon.publish(t(A, "readings"), b"forged")
    anon.publish(t(A, "status"), b"forged")
    anon.publish(f"sitegate/v1/provision/{other}/request", b"as someone else")
    anon.publish(f"sitegate/v1/provision/{me}/response", b"answering myself")
    anon.publish(f"sitegate/v1/provision/{me}/request", b"marker")
    wait_until(lambda: f"sitegate/v1/provision/{me}/request" in cloud.topics(),
               "the anonymous client's own request at the cloud")
    assert cloud.topics() == [f"sitegate/v1/provision/{me}/request"]

    cloud.publish(t(A, "ack"), b"secret")
    cloud.publish(f"sitegate/v1/provision/{other}/response", b"someone else's certificate")
    cloud.publish(f"sitegate/v1/provision/{me}/response", b"marker")
    wait_until(lambda: anon.topics(), "the anonymous client's own answer")
    assert set(anon.topics()) == {f"sitegate/v1/provision/{me}/response"}
    assert {m for _, m in anon.messages} == {b"marker"}
    anon.close()


def test_shipped_template_is_what_broker_config_writes() -> None:
    from sitegate.cloud.auth.broker_config import BrokerSettings, config_files

    shipped = Path(__file__).resolve().parents[2] / "config" / "mosquitto"
    files = config_files(BrokerSettings(dir="/etc/mosquitto/sitegate", user="mosquitto"))
    assert {n: (shipped / n).read_text() for n in files} == files, (
        "regenerate config/mosquitto/ (see tests/trust/test_broker_acl.py)")


def test_gateway_b_with_a_s_client_id_does_not_disconnect_a(secure_broker: Broker, cloud,
                                                            tmp_path: Path) -> None:
    # Without use_username_as_clientid the broker hands the session "gw-a" to B and
    # disconnects A (a denial of service); now B is connected as itself, A stays.
    a = secure_broker.client(secure_broker.gateway_identity(tmp_path, A), client_id=A)
    assert a.connected, a.refused
    a.subscribe(t(A, "ack"))
    b = secure_broker.client(secure_broker.gateway_identity(tmp_path, B), client_id=A)
    assert b.connected, b.refused
    b.publish(t(B, "status"), b"b as itself")
    wait_until(lambda: t(B, "status") in cloud.topics(), "B's status (its ACL: gw-b)")
    # A still publishes and gets its ack through, on its first connection.
    a.publish(t(A, "readings"), b"a after b")
    wait_until(lambda: (t(A, "readings"), b"a after b") in cloud.messages, "A's batch")
    cloud.publish(t(A, "ack"), b"ack for a")
    wait_until(lambda: (t(A, "ack"), b"ack for a") in a.messages, "A's ack")
    assert (a.disconnects, b.disconnects) == (0, 0)
    a.close()
    b.close()


def test_two_cloud_processes_connect_at_once(secure_broker: Broker, cloud) -> None:
    # `serve` and a push/command CLI: same certificate, distinct client ids, no takeover.
    other = secure_broker.client(secure_broker.cloud_identity(), client_id="sitegate-cloud-2")
    assert other.connected, other.refused
    other.subscribe(t(A, "config"))
    other.publish(t(A, "status"), b"from the second")
    wait_until(lambda: (t(A, "status"), b"from the second") in cloud.messages, "at the first")
    cloud.publish(t(A, "config"), b"from the first")
    wait_until(lambda: (t(A, "config"), b"from the first") in other.messages, "at the second")
    assert (cloud.disconnects, other.disconnects) == (0, 0)
    other.close()


def test_listeners_keep_their_identities_apart(secure_broker: Broker, tmp_path: Path) -> None:
    # A gateway certificate does not pass the cloud listener (where client ids are free),
    # and the cloud's certificate is not one the gateways' listener trusts.
    gw = secure_broker.client(secure_broker.gateway_identity(tmp_path, A),
                              port=secure_broker.cloud_port)
    assert not gw.connected and gw.refused
    gw.close()
    cl = secure_broker.client(secure_broker.cloud_identity(), port=secure_broker.port)
    assert not cl.connected and cl.refused
    cl.close()


def test_cloud_certificate_from_the_gateway_ca_is_reissued_by_the_cloud_ca(
        tmp_path: Path) -> None:
    # Key directories from before the cloud CA hold a cloud.crt signed by the gateway CA;
    # the gateways' listener would no longer accept it and the cloud's would not either.
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from sitegate.cloud.auth.ca import CA, SERVER_DAYS
    from sitegate.common.provisioning import CLOUD_IDENTITY
    from sitegate.firmware_tools.identity import Identity

    ca = CA.open(tmp_path)
    ident = Identity(tmp_path / "old")
    old = ca.sign_client(x509.load_pem_x509_csr(ident.csr_pem(CLOUD_IDENTITY).encode()),
                         CLOUD_IDENTITY, SERVER_DAYS)
    (tmp_path / "cloud.crt").write_bytes(old.public_bytes(Encoding.PEM))
    (tmp_path / "cloud.key").write_bytes(ident.key_file.read_bytes())
    _, cert_file = ca.cloud_client()
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert ca.cloud_ca().issued_here(cert) and not ca.issued_here(cert)
    assert ca.cloud_client()[1].read_bytes() == cert_file.read_bytes()  # kept from now on


def test_anonymous_enrolment_client_cannot_take_a_gateway_s_client_id(
        secure_broker: Broker, cloud, tmp_path: Path) -> None:
    # Client ids are one namespace per Mosquitto process and 2.0 cannot restrict them per
    # listener: with an anonymous listener on the main broker this disconnected A. The
    # enrolment broker is a process of its own now.
    a = secure_broker.client(secure_broker.gateway_identity(tmp_path, A), client_id=A)
    assert a.connected, a.refused
    a.subscribe(t(A, "ack"))
    anon = secure_broker.client(None, client_id=A)
    assert anon.connected, anon.refused
    # the anonymous client's own request crosses the bridge: it was in, as A, before A's
    # next publish
    anon.publish(f"sitegate/v1/provision/{A}/request", b"as gw-a")
    wait_until(lambda: f"sitegate/v1/provision/{A}/request" in cloud.topics(), "the request")
    a.publish(t(A, "status"), b"still here")
    wait_until(lambda: (t(A, "status"), b"still here") in cloud.messages, "A's status")
    cloud.publish(t(A, "ack"), b"ack for a")
    wait_until(lambda: (t(A, "ack"), b"ack for a") in a.messages, "A's ack")
    assert a.disconnects == 0 and a.connected
    a.close()
    anon.close()


def test_oversized_publish_is_refused_by_the_broker(secure_broker: Broker, cloud,
                                                    tmp_path: Path) -> None:
    from sitegate.cloud.auth.broker_config import ENROL_MAX_PACKET, MAX_PACKET

    a = secure_broker.client(secure_broker.gateway_identity(tmp_path, A), client_id=A)
    assert a.connected, a.refused
    a.c.publish(t(A, "readings"), b"x" * MAX_PACKET, qos=1)
    wait_until(lambda: a.disconnects, "A disconnected by the broker for the packet's size")
    a.close()
    anon = secure_broker.client(None, client_id="3" * 32)
    assert anon.connected, anon.refused
    anon.c.publish("sitegate/v1/provision/" + "3" * 32 + "/request", b"x" * ENROL_MAX_PACKET,
                   qos=1)
    wait_until(lambda: anon.disconnects, "the enrolling client disconnected likewise")
    anon.close()
    # Neither reached the cloud; a batch just under the limit does.
    b = secure_broker.client(secure_broker.gateway_identity(tmp_path, B), client_id=B)
    b.publish(t(B, "readings"), b"y" * (MAX_PACKET - 1024))
    wait_until(lambda: t(B, "readings") in cloud.topics(), "B's large batch")
    assert t(A, "readings") not in cloud.topics()
    assert not [x for x in cloud.topics() if x.startswith("sitegate/v1/provision/3")]
    b.close()


def test_no_gateway_can_be_named_like_a_cloud_process_s_client_id(tmp_path: Path) -> None:
    # A gateway's client id is its CN (its gateway id): were a cloud process's id a valid
    # gateway id, a gateway enrolled under it would take that process's session over.
    import re

    from sitegate.cloud.ingest.downlink import CLIENT_ID_PREFIX
    from sitegate.cloud.ingest.service import IngestService
    from sitegate.common import provisioning as pv
    from sitegate.sync.protocol import ProtocolError, check_gateway_id

    svc = IngestService(str(tmp_path / "cloud.db"), "mqtt://127.0.0.1:1")
    for cid in (svc.client._client_id.decode(), f"{CLIENT_ID_PREFIX}0a1b2c3d"):
        assert not re.match(pv.GATEWAY_ID_PATTERN, cid)
        with pytest.raises(ProtocolError):
            check_gateway_id(cid)
    assert {pv.CLOUD_IDENTITY, pv.ENROLMENT_IDENTITY} <= pv.RESERVED_IDS
