"""End to end against a real Mosquitto started from broker-config's files: a fresh gateway
state directory with a claim token -> the daemon enrols -> mutual TLS -> readings in the
cloud database; a reused or expired token is refused; a revoked gateway is shut out."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.trust.conftest import ROOT, Broker, cloud_cli, free_tcp_port, make_broker, wait_until

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.xdist_group("trust-enrolment-e2e")]  # one world, one worker


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Broker, cloud (ingest serving enrolment) and a simulated meter, all real processes;
    each test uses its own gateway ids."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    broker = make_broker(tmp_path)
    broker.start()
    db = str(tmp_path / "cloud.db")
    procs: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "cloud.log"
    with log.open("wb") as out:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "sitegate.cloud.cli", "serve", "--db", db, "--broker",
             f"mqtts://127.0.0.1:{broker.cloud_port}", "--keys", str(broker.keys)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT))
    meter_port = free_tcp_port()
    sim = subprocess.Popen([sys.executable, "-m", "sitegate.drivers.modbus.simulator", "--tcp",
                            str(meter_port), "--framing", "rtu-over-tcp", "--meter",
                            "1:eastron_sdm630"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    procs.append(sim)  # type: ignore[arg-type]
    try:
        assert sim.stdout is not None and sim.stdout.readline().strip() == "ready"
        wait_until(lambda: "ingest.connected" in log.read_text() or procs[0].poll() is not None,
                   "cloud connected")
        assert procs[0].poll() is None, log.read_text()
        yield {"broker": broker, "db": db, "meter_port": meter_port, "tmp": tmp_path,
               "procs": procs, "cloud_log": log}
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait(10)
        broker.stop()


def token(world: dict, site: str, expires: str = "1h") -> dict:
    out = cloud_cli("gateways", "claim-token", "--site", site, "--expires", expires, "--db",
                    world["db"], "--json", keys=world["broker"].keys)
    return json.loads(out.stdout)


def site_file(world: dict, gw: str) -> Path:
    """A fresh state directory and a site file for gateway ``gw`` (one meter)."""
    state = world["tmp"] / gw
    state.mkdir()
    broker: Broker = world["broker"]
    cfg = state / "site.toml"
    cfg.write_text(
        f'gateway_id = "{gw}"\n[storage]\npath = "{state}/buffer.db"\n'
        f'[health]\nsocket = "{state}/sg.sock"\n'
        f'[mqtt]\nbroker = "mqtts://127.0.0.1:{broker.port}"\n'
        f'provision_broker = "mqtts://127.0.0.1:{broker.provision_port}"\n'
        "reconnect_min = 0.2\nreconnect_max = 1.0\npoll_interval = 0.2\n"
        '[[buses]]\nname = "conv"\ntimeout = 0.3\nretries = 0\n'
        f'tcp = {{ host = "127.0.0.1", port = {world["meter_port"]}, '
        'framing = "rtu-over-tcp" }\n'
        '[[meters]]\nid = "m1"\nbus = "conv"\nunit = 1\nprofile = "eastron_sdm630"\n'
        "interval = 1\n")
    return cfg


def enrol(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "enrol", "-c",
                           str(cfg), "--timeout", "20", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def dead_letter_reasons(db: str) -> str:
    with sqlite3.connect(db) as conn:
        return "\n".join(r[0] for r in conn.execute("SELECT reason FROM dead_letters"))


def gateway_status(cfg: Path) -> str:
    res = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "status", "-c",
                          str(cfg)], capture_output=True, text=True, timeout=30, cwd=ROOT)
    return res.stdout + res.stderr


def cloud_readings(db: str, gw: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM readings WHERE gateway_id = ?",
                            (gw,)).fetchone()[0]


def test_claim_token_enrolment_mtls_readings_then_revocation(world: dict) -> None:
    broker: Broker = world["broker"]
    cfg = site_file(world, "gw-e2e")
    state = cfg.parent
    tok = token(world, "site-1")["token"]
    (state / "claim-token").write_text(tok + "\n")

    log = state / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                                   str(cfg)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    world["procs"].append(daemon)
    wait_until(lambda: cloud_readings(world["db"], "gw-e2e") >= 3, "readings in the cloud", 120)
    ident = state / "identity"
    assert stat.S_IMODE((ident / "device.key").stat().st_mode) == 0o600
    assert {p.name for p in ident.iterdir()} == {"device.key", "device.crt", "ca.crt",
                                                 "downlink.pub"}
    assert (ident / "downlink.pub").read_bytes() == (broker.keys / "downlink.pub").read_bytes()
    assert not (state / "claim-token").exists()  # used: never sent again
    # it came over mutual TLS, as itself
    assert "as gw-e2e (p5, c0, k30, u'gw-e2e')" in broker.log.read_text()

    listed = json.loads(cloud_cli("gateways", "list", "--db", world["db"], "--json").stdout)
    row = next(g for g in listed if g["gateway_id"] == "gw-e2e")
    assert (row["site_id"], row["enrolment"]) == ("site-1", "enrolled")

    # The same token again, by another box: refused, nothing issued.
    other = site_file(world, "gw-thief")
    res = enrol(other, "--claim", tok)
    assert res.returncode == 1 and "claim token already used" in res.stderr, res
    assert not (other.parent / "identity" / "device.crt").exists()

    # Renewal: a new certificate for the same key, proved by the current one.
    serial = (ident / "device.crt").read_bytes()
    res = enrol(cfg, "--renew")
    assert res.returncode == 0, res
    assert (ident / "device.crt").read_bytes() != serial

    # Revoked while its connection is open: the CRL rewritten and that connection cut at
    # once (a takeover of its client id on the cloud listener). Until the broker reloads the
    # CRL the daemon gets back in, and serve refuses what it sends and cuts it again.
    identity = (str(ident / "device.crt"), str(ident / "device.key"))
    takeovers = broker.log.read_text().count("Client gw-e2e already connected")
    res = cloud_cli("gateways", "revoke", "gw-e2e", "--db", world["db"], "--crl",
                    str(broker.dir / "crl.pem"), "--broker",
                    f"mqtts://127.0.0.1:{broker.cloud_port}", "--json", keys=broker.keys)
    out = json.loads(res.stdout)
    assert (out["certificates_revoked"], out["connection_cut"]) == (2, True)  # + renewal's
    assert broker.log.read_text().count("Client gw-e2e already connected") > takeovers
    wait_until(lambda: "gateway gw-e2e is revoked: refused" in dead_letter_reasons(world["db"]),
               "serve refusing the daemon that came back before the reload")
    refused_before = broker.log.read_text().count("certificate verify failed")
    broker.reload()
    # From now on the broker refuses the certificate: the daemon, cut once more by serve,
    # tries again and fails.
    wait_until(lambda: broker.log.read_text().count("certificate verify failed")
               > refused_before, "the daemon's certificate refused after the reload")
    after = broker.client(identity, client_id="probe-after")
    assert not after.connected and after.refused
    after.close()
    assert "NOT connected" in gateway_status(cfg)
    daemon.terminate()
    daemon.wait(30)
    # nor can it renew its way back in
    res = enrol(cfg, "--renew")
    assert res.returncode == 1 and "revoked" in res.stderr, res
    listed = json.loads(cloud_cli("gateways", "--db", world["db"], "--json").stdout)
    assert next(g for g in listed if g["gateway_id"] == "gw-e2e")["enrolment"] == "revoked"


def test_expired_token_is_refused(world: dict) -> None:
    tok = token(world, "site-1", expires="1s")
    until = datetime.fromisoformat(tok["expires_at"])
    # Not a timing assertion: wait until the token's own expiry has passed.
    while datetime.now().astimezone() <= until:
        time.sleep(0.2)
    cfg = site_file(world, "gw-late")
    res = enrol(cfg, "--claim", tok["token"])
    assert res.returncode == 1 and "claim token expired" in res.stderr, res
    assert not (cfg.parent / "identity" / "device.crt").exists()


def test_wrong_broker_pin_sends_nothing(world: dict) -> None:
    """A token for another broker (its pin does not match): the secret is never sent."""
    tok = token(world, "site-1")["token"]
    secret, _ = tok.split(".")
    cfg = site_file(world, "gw-mitm")
    res = enrol(cfg, "--claim", f"{secret}.{'A' * 26}")
    assert res.returncode == 1 and "does not match the token's pin" in res.stderr, res
    # the token is unused: the real broker still takes it
    assert enrol(cfg, "--claim", tok).returncode == 0


def test_daemon_waits_for_a_token_and_enrols_when_it_appears(world: dict) -> None:
    """Not enrolled and no token: the daemon runs (buffers), says what is missing, and
    enrols as soon as the token is in its state directory, without a restart."""
    cfg = site_file(world, "gw-later")
    state = cfg.parent
    with (state / "daemon.log").open("wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                                   str(cfg)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    world["procs"].append(daemon)

    def status() -> str:
        res = subprocess.run([sys.executable, "-m", "sitegate.gateway.cli", "status", "-c",
                              str(cfg)], capture_output=True, text=True, timeout=30, cwd=ROOT)
        return res.stdout + res.stderr

    text = wait_until(lambda: (s := status()) and "enrolment: pending" in s and s, "pending")
    assert f"put a claim token (sitegate-cloud gateways claim-token) in {state}" in text
    assert "Traceback" not in text
    (state / "claim-token").write_text(token(world, "site-2")["token"])
    wait_until(lambda: cloud_readings(world["db"], "gw-later") >= 1, "readings in the cloud", 120)

    # Readings buffered while it waited are sent too: the buffer's first one arrives (not
    # necessarily first: on a loaded box newer batches may overtake the resent backlog).
    def first_seq() -> int | None:
        with sqlite3.connect(world["db"]) as conn:
            return conn.execute("SELECT MIN(seq) FROM readings WHERE gateway_id = "
                                "'gw-later'").fetchone()[0]

    wait_until(lambda: first_seq() == 1, "the first buffered reading in the cloud", 180)
    # the uplink runs, enrolled (polled: a loaded box may answer status slowly)
    wait_until(lambda: "certificate valid until" in status(), "status names the certificate")
    daemon.terminate()
    daemon.wait(30)


def test_daemon_renews_a_certificate_near_its_expiry(world: dict) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    from sitegate.cloud.auth.ca import CA
    from sitegate.firmware_tools.identity import Identity

    broker: Broker = world["broker"]
    cfg = site_file(world, "gw-renew")
    assert enrol(cfg, "--claim", token(world, "site-1")["token"]).returncode == 0
    # Its certificate now has 5 of 30 days left (issued by the CA 25 days ago, known to the
    # cloud).
    ident = Identity.of_state(cfg.parent)
    ca = CA.open(broker.keys)
    now = datetime.now(UTC)
    short = (x509.CertificateBuilder().subject_name(ident.certificate().subject)
             .issuer_name(ca.cert.subject).public_key(ident.key().public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - timedelta(days=25)).not_valid_after(now + timedelta(days=5))
             .sign(ca.key, hashes.SHA256()))
    ident.cert_file.write_bytes(short.public_bytes(Encoding.PEM))
    with sqlite3.connect(world["db"]) as conn:
        conn.execute("INSERT INTO gateway_certs (serial, gateway_id, issued_at, not_after) "
                     "VALUES (?, 'gw-renew', ?, ?)", (str(short.serial_number),
                     short.not_valid_before_utc.isoformat(), short.not_valid_after_utc.isoformat()))
    assert ident.renewal_due()

    with (cfg.parent / "daemon.log").open("wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "sitegate.gateway.cli", "run", "-c",
                                   str(cfg)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    world["procs"].append(daemon)
    wait_until(lambda: cloud_readings(world["db"], "gw-renew") >= 1, "readings in the cloud", 120)
    renewed = ident.certificate()
    assert renewed.serial_number != short.serial_number and not ident.renewal_due()
    assert renewed.public_key() == short.public_key()  # the same device key
    daemon.terminate()
    daemon.wait(30)
