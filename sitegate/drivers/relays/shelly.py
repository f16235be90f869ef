"""Shelly Gen2+ relays over their local RPC API: ``Switch.Set`` and ``Switch.GetStatus``.

Two transports, as the device offers them:

- HTTP: ``GET /rpc/Switch.Set?id=0&on=true``; with authentication enabled the device answers
  401 with a digest challenge and each request is repeated with ``Authorization``.
- WebSocket: JSON-RPC frames on ``ws://host/rpc``; a 401 error carries the challenge, and
  from then on every request carries the ``auth`` object.

``Switch.GetStatus`` gives ``output`` (the relay's state), ``apower`` (W) and
``aenergy.total`` (Wh) on metering models. Replies are bounded before they are parsed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from sitegate.drivers.base import DeviceError, NoResponse
from sitegate.drivers.relays import digest
from sitegate.drivers.relays.base import RelayStatus

MAX_REPLY = 64 * 1024  # a Switch.GetStatus reply is ~400 bytes


class ShellyClient:
    def __init__(self, host: str, port: int = 80, *, password: str | None = None,
                 transport: str = "http", timeout: float = 3.0) -> None:
        self.host, self.port = host, port
        self.password = password
        self.transport = transport
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._ws_auth: dict[str, Any] | None = None
        self._ws_lock = asyncio.Lock()  # one request in flight: replies matched by id anyway

    def describe(self) -> str:
        return f"shelly {self.host}:{self.port} ({self.transport})"

    # -- the RPC methods used ------------------------------------------------------------------

    async def set(self, channel: int, on: bool) -> None:
        await self.call("Switch.Set", {"id": channel, "on": on})

    async def status(self, channel: int) -> RelayStatus:
        r = await self.call("Switch.GetStatus", {"id": channel})
        if not isinstance(r, dict) or not isinstance(r.get("output"), bool):
            raise DeviceError(f"{self.describe()}: Switch.GetStatus without 'output'",
                              kind="garbled")
        energy = r.get("aenergy")
        return RelayStatus(on=r["output"], power_w=_dec(r.get("apower")),
                           energy_wh=_dec(energy.get("total")) if isinstance(energy, dict)
                           else None)

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        try:
            if self.transport == "ws":
                return await asyncio.wait_for(self._ws_call(method, params), self.timeout * 2)
            return await asyncio.wait_for(self._http_call(method, params), self.timeout * 2)
        except TimeoutError as exc:
            await self._drop_ws()
            raise NoResponse(f"{self.describe()}: no answer to {method}") from exc
        except (OSError, WebSocketException) as exc:
            await self._drop_ws()
            raise NoResponse(f"{self.describe()}: {method}: {exc}") from exc
        except ValueError as exc:  # a reply we cannot read: a bad challenge, chunk, status
            await self._drop_ws()
            raise DeviceError(f"{self.describe()}: {method}: unreadable reply: {exc}",
                              kind="garbled") from exc

    async def close(self) -> None:
        await self._drop_ws()

    # -- HTTP --------------------------------------------------------------------------------

    async def _http_call(self, method: str, params: dict[str, Any]) -> Any:
        query = urlencode({k: json.dumps(v) if isinstance(v, bool) else v
                           for k, v in params.items()})
        uri = f"/rpc/{method}?{query}"
        status, headers, body = await self._get(uri, None)
        if status == 401 and self.password is not None:
            challenge = digest.parse_challenge(headers.get("www-authenticate", ""))
            auth = digest.http_authorization(challenge, self.password, "GET", uri)
            status, headers, body = await self._get(uri, auth)
        if status == 401:
            raise DeviceError(f"{self.describe()}: authentication "
                              + ("refused (wrong password?)" if self.password else
                                 "required: set 'password' for this device"), kind="auth")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise DeviceError(f"{self.describe()}: {method}: HTTP {status}, not JSON",
                              kind="garbled") from exc
        if status != 200:
            msg = data.get("message") if isinstance(data, dict) else None
            raise DeviceError(f"{self.describe()}: {method}: HTTP {status} {msg or ''}".strip(),
                              kind="device_error")
        return data

    async def _get(self, uri: str, authorization: str | None
                   ) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            lines = [f"GET {uri} HTTP/1.1", f"Host: {self.host}", "Connection: close"]
            if authorization:
                lines.append(f"Authorization: {authorization}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            raw = await reader.read(MAX_REPLY + 1)
            while len(raw) <= MAX_REPLY:
                more = await reader.read(MAX_REPLY + 1 - len(raw))
                if not more:
                    break
                raw += more
        finally:
            writer.close()
        if len(raw) > MAX_REPLY:
            raise DeviceError(f"{self.describe()}: reply larger than {MAX_REPLY} bytes",
                              kind="garbled")
        return _parse_http(raw, self.describe())

    # -- WebSocket ---------------------------------------------------------------------------

    async def _ws_call(self, method: str, params: dict[str, Any]) -> Any:
        async with self._ws_lock:
            if self._ws is None:
                self._ws = await connect(f"ws://{self.host}:{self.port}/rpc",
                                         max_size=MAX_REPLY, open_timeout=self.timeout,
                                         ping_interval=None)
            reply = await self._ws_exchange(method, params)
            err = reply.get("error")
            if isinstance(err, dict) and err.get("code") == 401 and self.password is not None:
                try:
                    challenge = json.loads(str(err.get("message")))
                except ValueError as exc:
                    raise DeviceError(f"{self.describe()}: unreadable 401 challenge",
                                      kind="garbled") from exc
                self._ws_auth = digest.ws_auth(challenge, self.password)
                reply = await self._ws_exchange(method, params)
                err = reply.get("error")
            if isinstance(err, dict):
                kind = "auth" if err.get("code") == 401 else "device_error"
                raise DeviceError(f"{self.describe()}: {method}: error {err.get('code')} "
                                  f"{str(err.get('message'))[:200]}", kind=kind)
            return reply.get("result")

    async def _ws_exchange(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._ws is not None
        rid = next(self._ids)
        frame: dict[str, Any] = {"id": rid, "src": "sitegate", "method": method,
                                 "params": params}
        if self._ws_auth is not None:
            frame["auth"] = self._ws_auth
        await self._ws.send(json.dumps(frame))
        while True:  # skip notifications (NotifyStatus...) and stale replies
            text = await self._ws.recv()
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("id") == rid:
                return msg

    async def _drop_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()


def _parse_http(raw: bytes, who: str) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise DeviceError(f"{who}: not an HTTP reply", kind="garbled")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _unchunk(body)
    return int(parts[1]), headers, body


def _unchunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def _dec(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None

