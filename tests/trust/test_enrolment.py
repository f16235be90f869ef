"""The cloud's answers to provisioning requests (the Provisioner against a real SQLite
database; the MQTT path is in test_enrolment_e2e)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from sitegate.cloud.auth.ca import CA
from sitegate.cloud.auth.enrolment import (
    EnrolmentError,
    Provisioner,
    create_claim_token,
    identities,
    revoke,
)
from sitegate.cloud.store import tables as t
from sitegate.cloud.store.db import make_engine, upgrade
from sitegate.common import provisioning as pv
from sitegate.firmware_tools.identity import Identity

NONCE = "a" * 32


@pytest.fixture
def prov(tmp_path: Path) -> Provisioner:
    db = str(tmp_path / "cloud.db")
    upgrade(db)
    keys = tmp_path / "keys"
    CA.open(keys).broker_server(["127.0.0.1"])
    return Provisioner(make_engine(db), keys)


def secret(prov: Provisioner, site: str = "s1") -> str:
    return pv.split_token(create_claim_token(prov.engine, prov.ca, site,
                                             timedelta(hours=1)).token)[0]


def ask(prov: Provisioner, ident: Identity, gw: str, **fields: str | None) -> pv.Response:
    req = pv.Request(gateway_id=gw, csr=ident.csr_pem(gw), **fields)  # type: ignore[arg-type]
    out = prov.handle(pv.request_topic(NONCE), req.model_dump_json().encode())
    assert [o.topic for o in out] == [pv.response_topic(NONCE)]
    return pv.Response.model_validate_json(out[0].payload)


def claim(prov: Provisioner, ident: Identity, gw: str, token: str) -> pv.Response:
    return ask(prov, ident, gw, kind="claim", token=token)


def test_claim_once_then_refused_for_another_device(prov: Provisioner, tmp_path: Path) -> None:
    tok = secret(prov)
    box, thief = Identity(tmp_path / "box"), Identity(tmp_path / "thief")
    first = claim(prov, box, "gw-1", tok)
    assert first.ok and first.ca == prov.ca.pem and first.downlink_pub
    box.store("gw-1", first.cert or "", first.ca or "", first.downlink_pub)
    assert claim(prov, thief, "gw-2", tok).error == "claim token already used"
    assert claim(prov, thief, "gw-1", tok).error == "claim token already used"
    # the same box retrying (its answer was lost) gets a certificate again
    assert claim(prov, box, "gw-1", tok).ok
    assert identities(prov.engine)["gw-1"]["site_id"] == "s1"


def test_expired_unknown_and_malformed_claims(prov: Provisioner, tmp_path: Path) -> None:
    ident = Identity(tmp_path / "box")
    tok = secret(prov)
    with prov.engine.begin() as conn:
        conn.execute(update(t.claim_tokens).values(expires_at=t.claim_tokens.c.created_at))
    assert claim(prov, ident, "gw-1", tok).error == "claim token expired"
    assert claim(prov, ident, "gw-1", "A" * 32).error == "unknown claim token"
    bad = prov.handle(pv.request_topic(NONCE), b'{"kind": "claim", "csr": 1}')
    assert b"malformed request" in bad[0].payload
    big = prov.handle(pv.request_topic(NONCE), b"x" * (pv.MAX_REQUEST_BYTES + 1))
    assert b"larger than" in big[0].payload
    assert prov.handle("sitegate/v1/provision/not-a-nonce/request", b"{}") == []
    assert identities(prov.engine) == {}


def test_reserved_ids_and_enrolled_ids(prov: Provisioner, tmp_path: Path) -> None:
    ident = Identity(tmp_path / "box")
    for reserved in sorted(pv.RESERVED_IDS):
        assert "reserved" in (claim(prov, ident, reserved, secret(prov)).error or "")
    assert claim(prov, ident, "gw-1", secret(prov)).ok
    other = Identity(tmp_path / "other")
    assert "revoke it first" in (claim(prov, other, "gw-1", secret(prov)).error or "")
    assert "another site" in (claim(prov, other, "gw-1", secret(prov, "s2")).error or "")
    revoke(prov.engine, prov.ca, "gw-1", [])
    # after revocation a replacement box enrols with a new token of the same site
    assert claim(prov, other, "gw-1", secret(prov)).ok
    assert identities(prov.engine)["gw-1"]["revoked_at"] is None


def test_renewal_needs_the_current_cert_and_the_same_key(prov: Provisioner,
                                                         tmp_path: Path) -> None:
    box = Identity(tmp_path / "box")
    got = claim(prov, box, "gw-1", secret(prov))
    box.store("gw-1", got.cert or "", got.ca or "", got.downlink_pub)
    current = box.cert_file.read_text()
    renewed = ask(prov, box, "gw-1", kind="renew", cert=current)
    assert renewed.ok and renewed.cert != current
    # another key with the stolen (public) certificate
    assert ask(prov, Identity(tmp_path / "x"), "gw-1", kind="renew",
               cert=current).error == "renewal must keep the device key"
    # a certificate of another CA
    foreign = CA.open(tmp_path / "other-keys")
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    fake = foreign.sign_client(x509.load_pem_x509_csr(box.csr_pem("gw-1").encode()), "gw-1")
    assert "not issued to this gateway here" in (ask(
        prov, box, "gw-1", kind="renew", cert=fake.public_bytes(Encoding.PEM).decode()
    ).error or "")
    assert "not issued to this gateway here" in (ask(
        prov, box, "gw-2", kind="renew", cert=current).error or "")
    revoke(prov.engine, prov.ca, "gw-1", [tmp_path / "crl.pem"])
    assert "revoked" in (ask(prov, box, "gw-1", kind="renew", cert=current).error or "")
    crl = x509.load_pem_x509_crl((tmp_path / "crl.pem").read_bytes())
    # both certificates issued to it (enrolment and renewal) are in the CRL
    assert len(list(crl)) == 2 and crl.is_signature_valid(prov.ca.cert.public_key())


def test_claim_token_expiry_is_bounded(prov: Provisioner) -> None:
    with pytest.raises(EnrolmentError):
        create_claim_token(prov.engine, prov.ca, "s1", timedelta(days=31))


@pytest.mark.timeout(60)
def test_an_enrolment_flood_never_holds_up_the_uplink(prov: Provisioner, tmp_path: Path) -> None:
    """Anonymous clients may send requests as fast as they like: beyond a small queue they
    are dropped (a real gateway asks again), and the uplink's queue stays free. (Before, they
    shared the uplink's queue: the 1001st blocked the network thread, and ingest with it.)"""
    import paho.mqtt.client as mqtt

    from sitegate.cloud.ingest.service import PROVISION_QUEUE, IngestService

    service = IngestService(str(tmp_path / "cloud.db"), "mqtt://127.0.0.1:1",
                            provisioner=prov)

    def deliver(topic: str) -> None:
        msg = mqtt.MQTTMessage(topic=topic.encode())
        msg.payload = b"{}"
        service._on_message(service.client, None, msg)

    flood = 3000
    for i in range(flood):
        deliver(pv.request_topic(f"{i:032x}"))
    deliver("sitegate/v1/gw-1/readings")
    assert service.provision_inbox.qsize() == PROVISION_QUEUE
    assert service.provision_dropped == flood - PROVISION_QUEUE
    assert service.inbox.qsize() == 1  # the batch, waiting for the writer alone
