"""The provisioning bundle: what goes on the boot partition of a freshly flashed Raspberry
Pi OS card, and its take-up by the gateway at its first start.

On the card::

    user-data, network-config, meta-data   cloud-init (NoCloud): host name, network, SSH
                                           key, installs sitegate_*.deb if one is there,
                                           starts the service
    sitegate/bundle.json                   manifest: gateway id, broker, SHA-256 per file
    sitegate/site.toml                     the site file
    sitegate/claim-token                   the one-time enrolment secret
    sitegate/ca.crt                        the cloud's CA (the broker's certificate chain)

Take-up (``sitegate provision take-up``, run as root by the unit before the daemon starts)
checks the bundle whole (manifest, digests, site file, token, CA), puts the site file at
the configured path and the bundle into ``<state dir>/provision/`` with the claim token at
``<state dir>/claim-token`` (where enrolment looks for it), and only then deletes the
bundle, token first, from the card. A bundle that does not check out is left where it is
and nothing is taken.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from sitegate.common import provisioning as pv
from sitegate.common.sitecheck import ConfigError, ProfileLookup
from sitegate.common.sitefile import SiteConfig, load_config, parse_config
from sitegate.firmware_tools.bootpart import BootPartition, BootPartitionError
from sitegate.firmware_tools.identity import (
    TOKEN_FILE,
    Identity,
    _write,  # atomic, fsynced, with a mode
    state_dir,
)

BUNDLE_DIR = "sitegate"
MANIFEST = "bundle.json"
TAKEN_NOTE = "TAKEN.txt"
SITE, TOKEN, CA = "site.toml", "claim-token", "ca.crt"
RELEASE = "release.pub"  # optional: the key update bundles are signed with
RELEASE_KEYS = "release-keys"  # beside the site file: /etc/sitegate/release-keys/
CLOUD_INIT = ("user-data", "network-config", "meta-data")
# Bounds on what is read from a card (hostile input: a card can hold anything).
LIMITS = {MANIFEST: 64 * 1024, SITE: 1024 * 1024, TOKEN: 256, CA: 64 * 1024,
          RELEASE: 4 * 1024}
BOOT_CANDIDATES = ("/boot/firmware", "/boot")  # Raspberry Pi OS bookworm, older
HOSTNAME_RE = re.compile(r"[^a-z0-9-]+")


class BundleError(Exception):
    """A bundle that cannot be made or taken up; the text says which file and why."""


@dataclass(frozen=True)
class Network:
    """The box's uplink: the LAN or a 4G router's LAN port (DHCP, or a static address), or
    a 4G router's Wi-Fi."""

    static: str | None = None  # "192.168.1.20/24"
    router: str | None = None
    dns: tuple[str, ...] = ()
    wifi_ssid: str | None = None
    wifi_psk: str | None = None


# -- making a bundle (on the installer's machine) -------------------------------------------


def check_site(path: Path, profiles: ProfileLookup | None = None) -> SiteConfig:
    """The site file as check-config sees it (``profiles``: the drivers' profile lookup);
    BundleError with every problem otherwise."""
    try:
        cfg = load_config(str(path), profiles)
    except ConfigError as exc:
        raise BundleError(f"{exc.source}: " + "; ".join(map(str, exc.problems))) from None
    if cfg.mqtt is None or not cfg.mqtt.broker.startswith("mqtts://"):
        raise BundleError(f"{path}: [mqtt] broker must be mqtts://host:port (the gateway "
                          "enrols there with the claim token)")
    return cfg


def check_token(token: str) -> str:
    try:
        pv.split_token(token)
    except pv.ProvisioningError as exc:
        raise BundleError(f"claim token: {exc}") from None
    return token.strip()


def check_ca(pem: bytes, where: str) -> None:
    try:
        x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise BundleError(f"{where}: not a PEM certificate: {exc}") from None


def check_release_key(pem: bytes, where: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        ok = isinstance(load_pem_public_key(pem), Ed25519PublicKey)
    except ValueError:
        ok = False
    if not ok:
        raise BundleError(f"{where}: not an Ed25519 public key in PEM (release.pub)")


def hostname(gateway_id: str) -> str:
    """A host name (RFC 1123 label) from the gateway id."""
    name = HOSTNAME_RE.sub("-", gateway_id.lower()).strip("-")[:63].strip("-")
    return name or "sitegate"


def user_data(gateway_id: str, ssh_key: str | None) -> str:
    lines = ["#cloud-config", f"hostname: {hostname(gateway_id)}", "manage_etc_hosts: true",
             "ssh_pwauth: false", "ntp:", "  enabled: true"]
    if ssh_key:
        lines += ["users:", "  - name: technician", "    groups: [sudo, dialout, adm]",
                  "    shell: /bin/bash", "    sudo: ALL=(ALL) NOPASSWD:ALL",
                  "    lock_passwd: true", "    ssh_authorized_keys:",
                  f"      - {json.dumps(ssh_key.strip())}", "enable_ssh: true"]
    lines += [
        "runcmd:",
        # The package from the card if the installer put one there (sitegate provision
        # bundle --deb); otherwise it is already on the image.
        "  - [sh, -c, 'for d in /boot/firmware/sitegate/sitegate_*.deb; do "
        "[ -e \"$d\" ] && apt-get install -y \"$d\"; done; true']",
        "  - [systemctl, enable, --now, sitegate.service]",
    ]
    return "\n".join(lines) + "\n"


def network_config(net: Network) -> str:
    """cloud-init network config version 2 (netplan)."""
    eth: dict[str, Any] = {"optional": True}
    if net.static:
        eth["addresses"] = [net.static]
        if net.router:
            eth["routes"] = [{"to": "default", "via": net.router}]
    else:
        eth["dhcp4"] = True
    if net.dns:
        eth["nameservers"] = {"addresses": list(net.dns)}
    cfg: dict[str, Any] = {"version": 2, "ethernets": {"eth0": eth}}
    if net.wifi_ssid:
        cfg["wifis"] = {"wlan0": {"dhcp4": True, "optional": True, "access-points": {
            net.wifi_ssid: {"password": net.wifi_psk or ""}}}}
    # JSON is YAML: no YAML library needed, and no quoting mistakes.
    return json.dumps(cfg, indent=2) + "\n"


def make_bundle(site: Path, token: str, ca: Path, out: Path, net: Network, *,
                ssh_key: str | None = None, deb: Path | None = None,
                release_key: Path | None = None,
                profiles: ProfileLookup | None = None) -> dict[str, Any]:
    """Write the bundle into ``out`` (made if need be); its manifest."""
    cfg = check_site(site, profiles)
    token = check_token(token)
    ca_pem = read_limited(ca, LIMITS[CA])
    check_ca(ca_pem, str(ca))
    if net.router and not net.static:
        raise BundleError("--router goes with --static")
    if bool(net.wifi_ssid) != bool(net.wifi_psk):
        raise BundleError("--wifi-ssid and --wifi-psk-file go together")
    files = {SITE: site.read_bytes(), TOKEN: (token + "\n").encode(), CA: ca_pem}
    if release_key is not None:
        files[RELEASE] = read_limited(release_key, LIMITS[RELEASE])
        check_release_key(files[RELEASE], str(release_key))
    manifest: dict[str, Any] = {
        "v": 1, "gateway_id": cfg.gateway_id, "broker": cfg.mqtt.broker if cfg.mqtt else None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    target = out / BUNDLE_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        _write(target / name, data, 0o600 if name == TOKEN else 0o644)
    if deb is not None:
        if not re.fullmatch(r"sitegate_[^/]+\.deb", deb.name):
            raise BundleError(f"{deb}: not a sitegate package (sitegate_VERSION_ARCH.deb)")
        shutil.copyfile(deb, target / deb.name)
    _write(target / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    _write(out / "user-data", user_data(cfg.gateway_id, ssh_key).encode())
    _write(out / "network-config", network_config(net).encode(), 0o600 if net.wifi_psk
           else 0o644)
    _write(out / "meta-data", f"instance-id: sitegate-{hostname(cfg.gateway_id)}\n"
           f"local-hostname: {hostname(cfg.gateway_id)}\n".encode())
    return manifest


def card_files(bundle: Path) -> list[Path]:
    """What of a bundle directory goes onto the card (not the printable label), relative."""
    names = [Path(n) for n in CLOUD_INIT if (bundle / n).is_file()]
    if not (bundle / BUNDLE_DIR / MANIFEST).is_file():
        raise BundleError(f"{bundle}: no {BUNDLE_DIR}/{MANIFEST}: not a bundle "
                          "(sitegate provision bundle makes one)")
    names += sorted(p.relative_to(bundle) for p in (bundle / BUNDLE_DIR).iterdir()
                    if p.is_file())
    return names


def write_card(bundle: Path, card: BootPartition) -> list[str]:
    """Copy the bundle onto a boot partition (mounted directory or FAT image)."""
    written = []
    card.mkdir(BUNDLE_DIR)
    card.remove(f"{BUNDLE_DIR}/{TAKEN_NOTE}")
    for rel in card_files(bundle):
        if rel.name == MANIFEST:
            continue  # last: a card with a manifest has all the files
        card.put(bundle / rel, rel.as_posix())
        written.append(rel.as_posix())
    card.put(bundle / BUNDLE_DIR / MANIFEST, f"{BUNDLE_DIR}/{MANIFEST}")
    return written + [f"{BUNDLE_DIR}/{MANIFEST}"]


# -- taking it up (on the gateway, at the first start) --------------------------------------


def find_boot_partition() -> Path | None:
    for candidate in BOOT_CANDIDATES:
        if (Path(candidate) / BUNDLE_DIR / MANIFEST).is_file():
            return Path(candidate)
    return None


def read_bundle(card: BootPartition) -> tuple[dict[str, Any], dict[str, bytes]] | None:
    """The bundle on the card, checked whole; None when there is none."""
    raw = card.read(f"{BUNDLE_DIR}/{MANIFEST}", LIMITS[MANIFEST])
    if raw is None:
        return None
    where = f"{card}: {BUNDLE_DIR}/{MANIFEST}"
    try:
        manifest = json.loads(raw)
        gateway, digests = manifest["gateway_id"], manifest["files"]
        if manifest.get("v") != 1 or not isinstance(digests, dict):
            raise ValueError("not version 1")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise BundleError(f"{where}: unreadable ({exc})") from None
    if not {SITE, TOKEN, CA} <= set(digests) <= {SITE, TOKEN, CA, RELEASE}:
        raise BundleError(f"{where}: lists {sorted(digests)}, not {sorted([SITE, TOKEN, CA])}"
                          f" (and {RELEASE})")
    files: dict[str, bytes] = {}
    for name, digest in digests.items():
        data = card.read(f"{BUNDLE_DIR}/{name}", LIMITS[name])
        if data is None:
            raise BundleError(f"{card}: {BUNDLE_DIR}/{name} is missing")
        if hashlib.sha256(data).hexdigest() != digest:
            raise BundleError(f"{card}: {BUNDLE_DIR}/{name} does not match the manifest "
                              "(copied incompletely? write the bundle again)")
        files[name] = data
    try:
        cfg = parse_config(files[SITE].decode(), f"{BUNDLE_DIR}/{SITE}")
    except (ConfigError, UnicodeDecodeError) as exc:
        problems = "; ".join(map(str, exc.problems)) if isinstance(exc, ConfigError) \
            else str(exc)
        raise BundleError(f"{card}: {BUNDLE_DIR}/{SITE}: {problems}") from None
    if cfg.gateway_id != gateway:
        raise BundleError(f"{where}: for gateway {gateway!r}, the site file for "
                          f"{cfg.gateway_id!r}")
    check_token(files[TOKEN].decode("ascii", "replace"))
    check_ca(files[CA], f"{card}: {BUNDLE_DIR}/{CA}")
    if RELEASE in files:
        check_release_key(files[RELEASE], f"{card}: {BUNDLE_DIR}/{RELEASE}")
    return manifest, files


def take_up(card: BootPartition, config_path: Path) -> dict[str, Any] | None:
    """Move the bundle from the card into the gateway: None when the card holds none."""
    found = read_bundle(card)
    if found is None:
        return None
    manifest, files = found
    cfg = parse_config(files[SITE].decode(), str(config_path))
    state = state_dir(cfg.storage.path)
    state.mkdir(parents=True, exist_ok=True)
    owner = state.stat()
    keep = state / "provision"
    keep.mkdir(mode=0o750, exist_ok=True)
    _write(keep / SITE, files[SITE])
    _write(keep / CA, files[CA])
    _write(keep / MANIFEST, json.dumps(manifest, indent=2).encode())
    identity = Identity.of_state(state)
    enrolled = identity.enrolled()
    if not enrolled:  # an enrolled box has no use for a token (and must not get another's)
        _write(state / TOKEN_FILE, files[TOKEN], 0o600)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    replaced = None
    if config_path.exists() and config_path.read_bytes() != files[SITE]:
        replaced = config_path.with_name(config_path.name + ".before-provision")
        os.replace(config_path, replaced)
    _write(config_path, files[SITE])
    if RELEASE in files:  # sitegate update apply trusts the keys there
        keys = config_path.parent / RELEASE_KEYS
        keys.mkdir(exist_ok=True)
        _write(keys / RELEASE, files[RELEASE])
    for path in (keep, keep / SITE, keep / CA, keep / MANIFEST, state / TOKEN_FILE):
        _chown_like(path, owner)  # the daemon's user owns its state directory
    # Only now, the card: the secret first.
    card.scrub(f"{BUNDLE_DIR}/{TOKEN}")
    for name in (SITE, CA, RELEASE, MANIFEST):
        card.remove(f"{BUNDLE_DIR}/{name}")
    note = (f"sitegate bundle for {manifest['gateway_id']} taken up "
            f"{datetime.now(UTC).isoformat(timespec='seconds')}; the claim token was deleted "
            "from this card.\n")
    try:
        card.write_text(f"{BUNDLE_DIR}/{TAKEN_NOTE}", note)
    except BootPartitionError:
        pass  # a note for people only
    return {"gateway_id": manifest["gateway_id"], "site_file": str(config_path),
            "state_dir": str(state), "claim_token": None if enrolled
            else str(state / TOKEN_FILE), "already_enrolled": enrolled,
            "previous_site_file": str(replaced) if replaced else None,
            "release_key": str(config_path.parent / RELEASE_KEYS / RELEASE)
            if RELEASE in files else None}


# -- files --------------------------------------------------------------------------------


def read_limited(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise BundleError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise BundleError(f"{path}: more than {limit} bytes")
    return data


def _chown_like(path: Path, owner: os.stat_result) -> None:
    if os.geteuid() == 0 and path.exists():
        os.chown(path, owner.st_uid, owner.st_gid)
