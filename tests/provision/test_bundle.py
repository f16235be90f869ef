"""The provisioning bundle on a real FAT file system image (mkfs.vfat on a file, read and
written with mtools): made, written, taken up, and the claim token gone from the image,
down to its bytes; a damaged bundle is refused whole and nothing is taken."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sitegate.common import provisioning as pv

ROOT = Path(__file__).resolve().parents[2]
NEEDS = [t for t in ("mkfs.vfat", "mcopy", "mtype", "mdel") if shutil.which(t) is None
         and not Path("/usr/sbin", t).exists() and not Path("/sbin", t).exists()]
pytestmark = pytest.mark.skipif(bool(NEEDS), reason=f"missing {NEEDS}: apt-get install "
                                "dosfstools mtools (.ci/run does)")

SECRET = "A" * 16 + "B" * 16  # base32 alphabet, 32 characters
PIN = "C" * 26


def token() -> str:
    return pv.make_token(SECRET, PIN)


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, input=stdin)


def fat_image(path: Path, mb: int = 16) -> Path:
    with open(path, "wb") as f:
        f.truncate(mb * 1024 * 1024)
    mkfs = shutil.which("mkfs.vfat") or "/usr/sbin/mkfs.vfat"
    subprocess.run([mkfs, "-n", "bootfs", str(path)], check=True, capture_output=True)
    return path


def ca_cert(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sitegate test CA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def site(tmp: Path, gw: str = "bldg-lindenweg-12") -> Path:
    state = tmp / "state"
    f = tmp / "site.toml"
    f.write_text(f'gateway_id = "{gw}"\n# comment kept\n[storage]\npath = "{state}/buffer.db"\n'
                 '[mqtt]\nbroker = "mqtts://broker.example.com:8883"\n')
    return f


def mdir(image: Path) -> str:
    return subprocess.run(["mdir", "-i", str(image), "-/", "-b", "::/"], capture_output=True,
                          text=True, env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"}
                          ).stdout


def test_bundle_to_fat_image_taken_up_token_gone(tmp_path: Path) -> None:
    import zxingcpp
    from PIL import Image

    from sitegate.common import signing

    out = tmp_path / "bundle"
    release_pub = tmp_path / "release.pub"
    release_pub.write_bytes(signing.public_pem(signing.generate()))
    res = cli("provision", "bundle", "--site-config", str(site(tmp_path)), "--claim", "-",
              "--ca", str(ca_cert(tmp_path / "ca.crt")), "--out", str(out),
              "--dns", "192.168.1.1", "--release-key", str(release_pub), "--json",
              stdin=token() + "\n")
    assert res.returncode == 0, res.stderr
    made = json.loads(res.stdout)
    assert made["gateway_id"] == "bldg-lindenweg-12"
    assert set(made["card_files"]) == {"user-data", "network-config", "meta-data",
                                       "sitegate/bundle.json", "sitegate/site.toml",
                                       "sitegate/claim-token", "sitegate/ca.crt",
                                       "sitegate/release.pub"}
    assert (out / "user-data").read_text().startswith("#cloud-config\nhostname: "
                                                      "bldg-lindenweg-12\n")
    net = json.loads((out / "network-config").read_text())  # YAML's JSON subset
    assert net["ethernets"]["eth0"] == {"optional": True, "dhcp4": True,
                                        "nameservers": {"addresses": ["192.168.1.1"]}}
    # The label: the QR code holds gateway id and claim, in the PNG and in the PDF.
    expected = f"sitegate:claim?gateway=bldg-lindenweg-12&token={SECRET}.{PIN}"
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(out / "label.png"))] == [expected]
    import pypdfium2

    page = pypdfium2.PdfDocument(str(out / "label.pdf"))[0]
    assert [r.text for r in zxingcpp.read_barcodes(page.render(scale=1).to_pil())] == [expected]

    image = fat_image(tmp_path / "boot.img")
    res = cli("provision", "write", "--boot-partition", str(image), "--bundle", str(out),
              "--json")
    assert res.returncode == 0, res.stderr
    assert SECRET.encode() in image.read_bytes()
    assert "user-data" in mdir(image) and "sitegate/claim-token" in mdir(image)

    # The gateway's first start.
    config = tmp_path / "etc" / "site.toml"
    res = cli("provision", "take-up", "--boot-partition", str(image), "--config", str(config),
              "--json")
    assert res.returncode == 0, res.stderr
    taken = json.loads(res.stdout)
    assert taken["taken"] and taken["gateway_id"] == "bldg-lindenweg-12"
    state = tmp_path / "state"
    assert (state / "claim-token").read_text().strip() == token()
    assert (state / "claim-token").stat().st_mode & 0o777 == 0o600
    assert config.read_text() == site(tmp_path).read_text()
    assert (state / "provision" / "ca.crt").read_bytes() == (tmp_path / "ca.crt").read_bytes()
    # update bundles signed with the cloud's release key are trusted from now on
    assert (config.parent / "release-keys" / "release.pub").read_bytes() == \
        release_pub.read_bytes()
    # Off the card: the files, and the token's bytes anywhere in the image.
    listing = mdir(image)
    assert "claim-token" not in listing and "bundle.json" not in listing, listing
    assert "release.pub" not in listing
    assert "sitegate/TAKEN.txt" in listing and "user-data" in listing
    assert SECRET.encode() not in image.read_bytes()
    # The next start finds nothing to take.
    res = cli("provision", "take-up", "--boot-partition", str(image), "--config", str(config),
              "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["taken"] is False


def test_a_damaged_bundle_is_refused_whole(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    res = cli("provision", "bundle", "--site-config", str(site(tmp_path)), "--claim", token(),
              "--ca", str(ca_cert(tmp_path / "ca.crt")), "--out", str(out))
    assert res.returncode == 0, res.stderr
    site_on_card = out / "sitegate" / "site.toml"
    site_on_card.write_text(site_on_card.read_text().replace("lindenweg", "elsewhere"))
    image = fat_image(tmp_path / "boot.img")
    assert cli("provision", "write", "--boot-partition", str(image), "--bundle",
               str(out)).returncode == 0
    config = tmp_path / "etc" / "site.toml"
    res = cli("provision", "take-up", "--boot-partition", str(image), "--config", str(config))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"provisioning bundle not taken: {image}: sitegate/site.toml does not match the "
        "manifest (copied incompletely? write the bundle again)"]
    assert not config.exists() and not (tmp_path / "state").exists()
    assert SECRET.encode() in image.read_bytes()  # left for a good bundle to replace


def test_bundle_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    ca = ca_cert(tmp_path / "ca.crt")
    res = cli("provision", "bundle", "--site-config", str(site(tmp_path)), "--claim",
              "not-a-token", "--ca", str(ca), "--out", str(tmp_path / "b"))
    assert res.returncode == 2 and res.stderr.startswith("provision bundle: claim token: ")
    plain = tmp_path / "plain.toml"
    plain.write_text('gateway_id = "gw"\n[mqtt]\nbroker = "mqtt://127.0.0.1:1883"\n')
    res = cli("provision", "bundle", "--site-config", str(plain), "--claim", token(),
              "--ca", str(ca), "--out", str(tmp_path / "b"))
    assert res.returncode == 2 and "must be mqtts://" in res.stderr
    res = cli("provision", "write", "--boot-partition", str(tmp_path / "nope.img"),
              "--bundle", str(tmp_path))
    assert res.returncode == 2 and "no such directory or image" in res.stderr
    assert "Traceback" not in res.stderr
