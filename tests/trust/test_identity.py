"""The gateway's key and CSR, and the cloud CA that signs them (no network)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from sitegate.cloud.auth.ca import CA, CAError, downlink_public
from sitegate.firmware_tools.identity import Identity, IdentityError
from sitegate.sync.config import MqttConfig


def _sign(ca: CA, ident: Identity, gw: str) -> x509.Certificate:
    return ca.sign_client(x509.load_pem_x509_csr(ident.csr_pem(gw).encode()), gw)


def _pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM).decode()


def test_key_is_private_and_csr_names_the_gateway(tmp_path: Path) -> None:
    ident = Identity.of_state(tmp_path)
    csr = x509.load_pem_x509_csr(ident.csr_pem("gw-1").encode())
    assert stat.S_IMODE(ident.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(ident.dir.stat().st_mode) == 0o700
    assert csr.subject.rfc4514_string() == "CN=gw-1"
    assert csr.is_signature_valid
    # the same key on the next start
    again = x509.load_pem_x509_csr(Identity.of_state(tmp_path).csr_pem("gw-1").encode())
    assert again.public_key() == csr.public_key()


def test_ca_signs_and_gateway_keeps_checked_files(tmp_path: Path) -> None:
    ca = CA.open(tmp_path / "keys")
    assert stat.S_IMODE((tmp_path / "keys" / "ca.key").stat().st_mode) == 0o600
    ident = Identity.of_state(tmp_path / "state")
    cert = _sign(ca, ident, "gw-1")
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=29) < life < timedelta(days=31)
    down = downlink_public(tmp_path / "keys")
    assert not ident.enrolled()
    ident.store("gw-1", _pem(cert), ca.pem, down)
    assert ident.enrolled() and ident.downlink_file.read_text() == down
    assert not ident.renewal_due()
    assert ident.renewal_due(datetime.now(UTC) + timedelta(days=21))
    cfg = ident.mqtt_config(MqttConfig(broker="mqtts://127.0.0.1:8883"))
    assert (cfg.cert_file, cfg.key_file, cfg.ca_file) == (
        str(ident.cert_file), str(ident.key_file), str(ident.ca_file))
    # the CA opened again is the same CA
    assert CA.open(tmp_path / "keys").cert == ca.cert


def test_gateway_refuses_a_certificate_not_for_it(tmp_path: Path) -> None:
    ca = CA.open(tmp_path / "keys")
    other = Identity.of_state(tmp_path / "other")
    ident = Identity.of_state(tmp_path / "state")
    with pytest.raises(IdentityError, match="not for this device's key"):
        ident.store("gw-1", _pem(_sign(ca, other, "gw-1")), ca.pem, None)
    foreign = CA.open(tmp_path / "keys2")
    with pytest.raises(IdentityError, match="not issued by the CA"):
        ident.store("gw-1", _pem(_sign(foreign, ident, "gw-1")), ca.pem, None)
    with pytest.raises(IdentityError, match="not for 'gw-2'"):
        ident.store("gw-2", _pem(_sign(ca, ident, "gw-1")), ca.pem, None)
    assert not ident.enrolled()


def test_ca_signs_only_what_the_csr_says(tmp_path: Path) -> None:
    ca = CA.open(tmp_path / "keys")
    csr = x509.load_pem_x509_csr(Identity.of_state(tmp_path).csr_pem("gw-1").encode())
    with pytest.raises(CAError, match="not 'gw-2'"):
        ca.sign_client(csr, "gw-2")


def test_crl_lasts_as_long_as_the_ca(tmp_path: Path) -> None:
    """An expired CRL makes Mosquitto refuse every client: it must not expire before the CA
    (no revocation for a year must not shut every gateway out)."""
    ca = CA.open(tmp_path / "keys")
    crl = x509.load_pem_x509_crl(ca.crl([(12345, datetime.now(UTC))]))
    assert crl.next_update_utc == ca.cert.not_valid_after_utc
    assert crl.get_revoked_certificate_by_serial_number(12345) is not None
