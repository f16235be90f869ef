"""The daemon's local control socket: one JSON request per connection, one JSON answer.

A technician's CLI (``sitegate status``, ``sitegate ocpp list``...) connects to the Unix
socket of the running daemon. The socket is only reachable by its owner and group
(mode 0660), which is the access control.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_REQUEST = 1 << 20


class ControlError(Exception):
    pass


class ControlServer:
    """Routes ``{"command": name, "args": {...}}`` to handlers by exact name or prefix."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._handlers: dict[str, Handler] = {}
        self._prefixes: dict[str, Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]] = {}
        self._server: asyncio.base_events.Server | None = None

    def add(self, name: str, handler: Handler) -> None:
        self._handlers[name] = handler

    def add_prefix(
        self, prefix: str, handler: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
    ) -> None:
        """``prefix.x`` commands go to ``handler("x", args)``."""
        self._prefixes[prefix] = handler

    async def start(self) -> None:
        p = Path(self.path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_socket():
            p.unlink()  # left by a killed daemon; we hold the single-instance lock already
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        os.chmod(self.path, 0o660)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        try:
            Path(self.path).unlink()
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            answer = await self._dispatch(line)
        except Exception as exc:  # a bad request must never take the daemon down
            log.warning("control.bad_request", error=str(exc))
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(answer, default=str).encode() + b"\n")
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_REQUEST:
            return {"ok": False, "error": "request too large"}
        req = json.loads(line)
        name = req.get("command")
        args = req.get("args") or {}
        if not isinstance(name, str) or not isinstance(args, dict):
            return {"ok": False, "error": "request needs 'command' (string) and 'args' (object)"}
        if name in self._handlers:
            result = await self._handlers[name](args)
        else:
            prefix, _, rest = name.partition(".")
            if prefix not in self._prefixes or not rest:
                return {"ok": False, "error": f"unknown command {name!r}",
                        "commands": sorted(self._handlers) + [p + ".*" for p in self._prefixes]}
            result = await self._prefixes[prefix](rest, args)
        return {"ok": True, "result": result}


def call(socket_path: str, command: str, args: dict[str, Any] | None = None,
         timeout: float = 30.0) -> dict[str, Any]:
    """Send one command to the running daemon; returns its result or raises ControlError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(
                f"the daemon is not running (no control socket at {socket_path})"
            ) from exc
        except PermissionError as exc:
            raise ControlError(
                f"no permission for {socket_path}: run as root or as a member of the "
                "sitegate group"
            ) from exc
        s.sendall(json.dumps({"command": command, "args": args or {}}).encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError as exc:
        raise ControlError(f"the daemon did not answer within {timeout:g} s") from exc
    finally:
        s.close()
    answer = json.loads(b"".join(chunks) or b"{}")
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "no answer"))
    return answer["result"]


def cli_call(socket_path: str | None, config: Path | None, label: str, command: str,
             args: dict[str, Any]) -> dict[str, Any] | None:
    """A CLI command's call to the running daemon: the socket given, else the site file's,
    else the default. A field condition (daemon stopped, unreadable site file) is one line
    on stderr naming ``label`` and None: the caller exits 2."""
    from sitegate.common.sitefile import ConfigError, Health, load_config

    try:
        path = socket_path or (load_config(config).health.socket if config
                               else Health().socket)
        return call(str(path), command, args)
    except (ControlError, ConfigError) as exc:
        print(f"{label}: {exc}", file=sys.stderr)
        return None
