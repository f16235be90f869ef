"""``sitegate-cloud serve``: the HTTP API stays on loopback unless a TLS proxy is declared,
and the broker password comes from a file or the environment, never from argv."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sitegate.cloud.api.serve import http_problem, is_loopback, parse_http
from sitegate.cloud.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)  # bounds a hang: up to 25 s measured at load 10


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
           log: Path | None = None) -> subprocess.Popen[str]:
    out = log.open("w") if log else subprocess.PIPE
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "sitegate.cloud.cli", "serve", "--db",
             str(tmp_path / "c.db"), *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("bind", ["0.0.0.0:8080", "192.0.2.7:8080", "[::]:8080",
                                  "api.example.org:8080"])
def test_http_on_a_network_address_is_refused(tmp_path: Path, bind: str) -> None:
    proc = _serve(tmp_path, "--broker", "mqtt://127.0.0.1:9", "--http", bind)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "not a loopback address" in out and "--behind-tls-proxy" in out, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out


def test_the_loopback_check() -> None:
    parser = build_parser()

    def problem(*argv: str) -> str | None:
        return http_problem(parser.parse_args(["serve", "--db", "x", "--broker", "mqtt://h",
                                               *argv]))

    for ok in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2:1"):
        assert problem("--http", ok) is None, ok
    assert problem("--http", "0.0.0.0:8080") is not None
    assert problem("--http", "0.0.0.0:8080", "--behind-tls-proxy") is None
    assert "HOST:PORT" in (problem("--http", "8080x") or "")
    assert parse_http("[::1]:8080") == ("::1", 8080)
    assert not is_loopback("localhost.attacker.example")


def test_password_on_the_command_line_is_refused(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--broker", "mqtt://127.0.0.1:9", "--username", "u",
                  "--password", "s3cret")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--password-file" in out, out
    assert "Traceback" not in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def password_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Mosquitto that lets in only the user ``cloud`` with its password."""
    d = tmp_path_factory.mktemp("pwbroker")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "cloud", "s3cret"],
                   check=True, capture_output=True)
    port = _free_port()
    (d / "m.conf").write_text(
        "user root\n"  # keep reading our temp files (mosquitto drops privileges otherwise)
        f"listener {port} 127.0.0.1\npassword_file {d / 'passwd'}\nallow_anonymous false\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(d / "m.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _until(lambda: _listening(port), "mosquitto listening")
        assert proc.poll() is None, "mosquitto did not start (port taken meanwhile?)"
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _until(pred: Callable[[], bool], what: str) -> None:
    """Poll; the limit only bounds a hung test, it asserts nothing about speed."""
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for: {what}")


@pytest.mark.parametrize("how", ["file", "env"])
def test_broker_password_from_file_or_environment(tmp_path: Path, password_broker: str,
                                                  how: str) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")  # the trailing newline of an editor is not part of it
    args = ["--broker", password_broker, "--username", "cloud"]
    env = {"SITEGATE_MQTT_PASSWORD": "s3cret"} if how == "env" else {}
    if how == "file":
        args += ["--password-file", str(secret)]
    log = tmp_path / "serve.log"
    proc = _serve(tmp_path, *args, env=env, log=log)
    try:
        _until(lambda: "ingest.connected" in log.read_text() or proc.poll() is not None,
               "ingest connected")
        assert proc.poll() is None and "ingest.connected" in log.read_text(), log.read_text()
        assert "s3cret" not in " ".join(proc.args)  # type: ignore[arg-type]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_missing_password_file_is_one_line(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--broker", "mqtt://127.0.0.1:9", "--password-file",
                  str(tmp_path / "nope"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "nope" in out and "Traceback" not in out, out


def test_database_password_on_the_command_line_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sitegate.cloud.cli", "serve", "--db",
         "postgresql://cloud:s3cret@127.0.0.1:5432/cloud", "--broker", "mqtt://127.0.0.1:9"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "PGPASSWORD" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "sitegate.cloud.cli", "tokens", "list", "--db",
         "postgresql://cloud:s3cret@127.0.0.1:5432/cloud"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "PGPASSWORD" in proc.stderr, proc.stderr
