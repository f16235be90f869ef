"""The gateway's identity: a private key made on the box (mode 0600, it never leaves it), a
CSR whose subject is the gateway id, and what enrolment hands back.

Files in ``<state_dir>/identity/`` (the state directory is the buffer's directory):
``device.key``, ``device.crt``, ``ca.crt`` (the cloud's CA: it signed the broker's and our
certificate) and ``downlink.pub`` (the cloud's Ed25519 key that signs downlink). A claim
token waiting to be used lies in ``<state_dir>/claim-token``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from sitegate.sync.config import MqttConfig

IDENTITY_DIR = "identity"
TOKEN_FILE = "claim-token"
# Renew once less than this share of the certificate's validity is left.
RENEW_WHEN_LEFT = 1 / 3


class IdentityError(Exception):
    """Identity files missing, unreadable or not matching (the text says which)."""


def state_dir(storage_path: str | Path) -> Path:
    """The gateway's state directory: where its buffer lives."""
    return Path(storage_path).resolve().parent


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write next to the target and rename: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Identity:
    dir: Path

    @classmethod
    def of_state(cls, state: Path) -> Identity:
        return cls(state / IDENTITY_DIR)

    @property
    def key_file(self) -> Path:
        return self.dir / "device.key"

    @property
    def cert_file(self) -> Path:
        return self.dir / "device.crt"

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def downlink_file(self) -> Path:
        return self.dir / "downlink.pub"

    @property
    def token_file(self) -> Path:
        return self.dir.parent / TOKEN_FILE

    def enrolled(self) -> bool:
        return all(f.exists() for f in (self.key_file, self.cert_file, self.ca_file))

    # -- the key and the CSR -------------------------------------------------------------------

    def key(self) -> ec.EllipticCurvePrivateKey:
        """The device key, made on first use (P-256: quick on a Pi, small handshakes)."""
        if self.key_file.exists():
            key = serialization.load_pem_private_key(self.key_file.read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise IdentityError(f"{self.key_file}: not an EC private key")
            return key
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        _write(self.key_file, pem, 0o600)
        return key

    def csr_pem(self, gateway_id: str) -> str:
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)]))
               .sign(self.key(), hashes.SHA256()))
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    # -- what enrolment returns ----------------------------------------------------------------

    def store(self, gateway_id: str, cert_pem: str, ca_pem: str,
              downlink_pem: str | None) -> x509.Certificate:
        """Check and keep what the cloud sent: a certificate for our id and our key, issued
        by the CA it sent; the downlink key an Ed25519 public key."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem.encode())
            ca = x509.load_pem_x509_certificate(ca_pem.encode())
            down = (serialization.load_pem_public_key(downlink_pem.encode())
                    if downlink_pem else None)
        except ValueError as exc:
            raise IdentityError(f"enrolment answer is not valid PEM: {exc}") from None
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [a.value for a in cns] != [gateway_id]:
            raise IdentityError(f"certificate is not for {gateway_id!r}")
        if cert.public_key() != self.key().public_key():
            raise IdentityError("certificate is not for this device's key")
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise IdentityError(f"certificate not issued by the CA sent with it: {exc}") from None
        if down is not None and not isinstance(down, ed25519.Ed25519PublicKey):
            raise IdentityError("downlink key is not an Ed25519 public key")
        _write(self.ca_file, ca_pem.encode())
        if downlink_pem:
            _write(self.downlink_file, downlink_pem.encode())
        _write(self.cert_file, cert_pem.encode())
        return cert

    def certificate(self) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise IdentityError(f"{self.cert_file}: {exc}") from None

    def renewal_due(self, now: datetime | None = None) -> bool:
        cert = self.certificate()
        now = now or datetime.now(UTC)
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        return cert.not_valid_after_utc - now < life * RENEW_WHEN_LEFT

    def mqtt_config(self, cfg: MqttConfig) -> MqttConfig:
        """``cfg`` with mutual TLS from these files, once enrolled (explicit files win)."""
        if not self.enrolled() or cfg.cert_file or not cfg.broker.startswith("mqtts://"):
            return cfg
        return cfg.model_copy(update={"ca_file": cfg.ca_file or str(self.ca_file),
                                      "cert_file": str(self.cert_file),
                                      "key_file": str(self.key_file)})
