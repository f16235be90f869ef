"""The cloud's certificate authority, in the key directory (see sitegate.cloud.keys).

It signs the gateways' client certificates (short-lived: renewed over the provisioning
topic before they expire), the broker's server certificate, and the cloud's own client
certificate (CN ``sitegate-cloud``, the identity the broker's ACL lets publish downlink).
Revocation is a CRL Mosquitto reads (``crlfile``).

The cloud's certificate is signed by a CA of its own (``cloud-ca``) that signs nothing else:
the broker's cloud listener trusts only that one, so no gateway certificate gets in there,
and the gateways' listener (which forces the client id to the certificate's CN) trusts
only the gateway CA.

"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sitegate.cloud.keys import write_private
from sitegate.common.provisioning import CLOUD_IDENTITY, ENROLMENT_IDENTITY, pin_of

CLIENT_DAYS = 30
SERVER_DAYS = 365
CA_DAYS = 3650
CLOUD_CA = "cloud-ca"  # stem of the cloud identity's own CA in the key directory
BACKDATE = timedelta(minutes=5)  # tolerate a gateway clock a little behind


class CAError(Exception):
    """A CSR or certificate the CA will not sign or accept."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cn_of(obj: x509.Certificate | x509.CertificateSigningRequest) -> str:
    values = [a.value for a in obj.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(values) != 1 or not isinstance(values[0], str):
        raise CAError("subject must have exactly one common name")
    return values[0]


@dataclass
class CA:
    dir: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def open(cls, keys: Path, stem: str = "ca", name: str = "sitegate cloud CA") -> CA:
        """The CA of this key directory, created ({stem}.key 0600, {stem}.crt) on first
        use."""
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_file, cert_file = keys / f"{stem}.key", keys / f"{stem}.crt"
        if key_file.exists() and cert_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(keys, key, x509.load_pem_x509_certificate(cert_file.read_bytes()))
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(_name(name))
                .issuer_name(_name(name)).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE).not_valid_after(now + timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        write_private(key_file, _key_pem(key))
        cert_file.write_bytes(_pem(cert))
        return cls(keys, key, cert)

    @property
    def pem(self) -> str:
        return _pem(self.cert).decode()

    def _issue(self, cn: str, public_key: ec.EllipticCurvePublicKey, days: int,
               usage: x509.ObjectIdentifier, sans: list[x509.GeneralName] | None = None
               ) -> x509.Certificate:
        now = datetime.now(UTC)
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
             .public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(now - BACKDATE).not_valid_after(now + timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(self.key, hashes.SHA256())

    def sign_client(self, csr: x509.CertificateSigningRequest, cn: str,
                    days: int = CLIENT_DAYS) -> x509.Certificate:
        """A client certificate for ``cn`` (checked against the CSR's own subject)."""
        if not csr.is_signature_valid:
            raise CAError("CSR signature is not valid")
        if cn_of(csr) != cn:
            raise CAError(f"CSR subject is {cn_of(csr)!r}, not {cn!r}")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise CAError("CSR key must be an EC key")
        return self._issue(cn, key, days, ExtendedKeyUsageOID.CLIENT_AUTH)

    def issued_here(self, cert: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def _keypair(self, stem: str, cn: str, usage: x509.ObjectIdentifier, days: int,
                 sans: list[x509.GeneralName] | None = None) -> tuple[Path, Path]:
        """``{stem}.key``/``{stem}.crt`` in the key directory, issued when missing or
        within a third of its life of expiry."""
        key_file, cert_file = self.dir / f"{stem}.key", self.dir / f"{stem}.crt"
        if key_file.exists() and cert_file.exists():
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            left = cert.not_valid_after_utc - datetime.now(UTC)
            if left > timedelta(days=days) / 3 and self.issued_here(cert) and (
                    sans is None or _sans(cert) == set(sans)):
                return key_file, cert_file
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(cn, key.public_key(), days, usage, sans)
        write_private(key_file, _key_pem(key))
        cert_file.write_bytes(_pem(cert))
        return key_file, cert_file

    def cloud_ca(self) -> CA:
        """The CA of the cloud's own certificate only (``cloud-ca.crt``: the broker's cloud
        listener trusts it and nothing else)."""
        return CA.open(self.dir, CLOUD_CA, "sitegate cloud identity CA")

    def cloud_client(self) -> tuple[Path, Path]:
        """(key, cert) of the cloud's own client certificate for the broker (one signed by
        the gateway CA before there was a cloud CA is replaced)."""
        return self.cloud_ca()._keypair("cloud", CLOUD_IDENTITY,
                                        ExtendedKeyUsageOID.CLIENT_AUTH, SERVER_DAYS)

    def enrolment_bridge(self) -> tuple[Path, Path]:
        """(key, cert) of the enrolment broker's bridge to the cloud listener (cloud CA; the
        cloud ACL lets it carry provisioning requests and answers only)."""
        return self.cloud_ca()._keypair("enrolment-bridge", ENROLMENT_IDENTITY,
                                        ExtendedKeyUsageOID.CLIENT_AUTH, SERVER_DAYS)

    def broker_server(self, hosts: list[str]) -> tuple[Path, Path]:
        """(key, cert) of the broker's server certificate for these names/addresses."""
        return self._keypair("broker", hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, SERVER_DAYS,
                             [_general_name(h) for h in hosts])

    def broker_pin(self) -> str:
        """The pin claim tokens carry: the broker certificate's fingerprint."""
        cert_file = self.dir / "broker.crt"
        if not cert_file.exists():
            raise CAError(f"no broker certificate in {self.dir}: run sitegate-cloud "
                          "broker-config first")
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        return pin_of(cert.public_bytes(serialization.Encoding.DER))

    def crl(self, revoked: list[tuple[int, datetime]]) -> bytes:
        """A CRL listing these (serial, revoked at). It is valid as long as the CA: the
        broker refuses every client once its CRL has expired, and nothing here fetches a
        newer one (it is rewritten at every revocation)."""
        now = datetime.now(UTC)
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
             .last_update(now - BACKDATE).next_update(self.cert.not_valid_after_utc))
        for serial, at in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(at).build())
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _sans(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return set(ext.value)


def downlink_public(keys: Path) -> str:
    """The cloud's downlink public key (PEM), the pair made (Ed25519) when missing."""
    key_file, pub_file = keys / "downlink.key", keys / "downlink.pub"
    if not key_file.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        write_private(key_file, _key_pem(key))
        pub_file.unlink(missing_ok=True)
    if not pub_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        pub_file.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub_file.read_text()
