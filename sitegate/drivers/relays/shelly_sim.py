"""A simulated Shelly Gen2+ relay with metering: HTTP ``/rpc/<method>`` and WebSocket RPC on
``/rpc``, digest authentication when a password is set (as the device does after
``Shelly.SetAuth``). For the tests and the demo.

A switched-on channel draws ``load_w`` (settable: a washing machine's programme ending is
``load_w = 0``); energy is integrated from that power over simulated time (``advance``) or
wall-clock time (``run_clock``).

    python -m sitegate.drivers.relays.shelly_sim --port 8081 [--password secret]
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from sitegate.drivers.relays import digest


@dataclass
class SimSwitch:
    on: bool = False
    load_w: Decimal = Decimal(0)  # what the machine behind it draws while switched on
    energy_wh: Decimal = Decimal(0)

    @property
    def power_w(self) -> Decimal:
        return self.load_w if self.on else Decimal(0)


class ShellySimulator:
    def __init__(self, *, channels: int = 1, password: str | None = None,
                 device_id: str = "shellypro1pm-sim000001") -> None:
        self.switches = [SimSwitch() for _ in range(channels)]
        self.device_id = device_id
        self.ha1 = digest.ha1(device_id, password) if password is not None else None
        self.silent = False  # a device that stopped answering (power cut, Wi-Fi gone)
        self.refuse_switching = False  # a relay that does not switch (welded, broken coil)
        self.calls: list[str] = []
        self.auth_failures = 0
        self._nonces: list[str] = []
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0

    # -- simulation ----------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        for s in self.switches:
            s.energy_wh += s.power_w * Decimal(str(seconds)) / 3600

    def run_clock(self, every: float = 1.0) -> None:
        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(every)
                now = time.monotonic()
                self.advance(now - last)
                last = now

        self._ticker = asyncio.create_task(tick())

    # -- RPC ---------------------------------------------------------------------------------

    def rpc(self, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        """(0, result) or (error code, message)."""
        self.calls.append(method)
        if method == "Shelly.GetDeviceInfo":
            return 0, {"id": self.device_id, "gen": 2, "auth_en": self.ha1 is not None}
        try:
            channel = int(params.get("id", 0))
            sw = self.switches[channel]
        except (ValueError, TypeError, IndexError):
            return -103, f"no switch {params.get('id')!r}"
        if method == "Switch.GetStatus":
            return 0, {"id": channel, "source": "sim", "output": sw.on,
                       "apower": float(sw.power_w), "voltage": 230.0,
                       "aenergy": {"total": float(round(sw.energy_wh, 3))}}
        if method == "Switch.Set":
            on = params.get("on")
            if isinstance(on, str):
                on = {"true": True, "false": False}.get(on)
            if not isinstance(on, bool):
                return -103, "'on' must be true or false"
            was = sw.on
            if not self.refuse_switching:
                sw.on = on
            return 0, {"was_on": was}
        return -114, f"method {method} not found"

    # -- HTTP --------------------------------------------------------------------------------

    def _challenge(self) -> str:
        nonce = secrets.token_hex(8)
        self._nonces.append(nonce)  # the last few stay valid, as on the device
        del self._nonces[:-32]
        return nonce

    def _http_authorized(self, request: Request) -> bool:
        if self.ha1 is None:
            return True
        header = request.headers.get("Authorization")
        if not header:
            return False
        try:
            p = digest.parse_challenge(header)
        except ValueError:
            return False
        ok = (p.get("nonce") in self._nonces and p.get("realm") == self.device_id
              and p.get("uri") == request.path and p.get("response") == digest.sha256(
                  f"{self.ha1}:{p.get('nonce')}:{p.get('nc')}:{p.get('cnonce')}:auth:"
                  f"{digest.sha256('GET:' + request.path)}"))
        if not ok:
            self.auth_failures += 1
        return ok

    async def _process_request(self, conn: ServerConnection, request: Request
                               ) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        if self.silent:
            await asyncio.sleep(3600)
        url = urlsplit(request.path)
        if not url.path.startswith("/rpc/"):
            return _json_response(404, {"code": 404, "message": "not found"})
        if not self._http_authorized(request):
            resp = _json_response(401, {"code": 401, "message": "unauthorized"})
            resp.headers["WWW-Authenticate"] = (
                f'Digest qop="auth", realm="{self.device_id}", nonce="{self._challenge()}", '
                f"algorithm=SHA-256")
            return resp
        params: dict[str, Any] = {}
        for k, v in parse_qsl(url.query):
            try:
                params[k] = json.loads(v)
            except ValueError:
                params[k] = v
        code, result = self.rpc(url.path.removeprefix("/rpc/"), params)
        if code:
            return _json_response(400 if code != -114 else 404,
                                  {"code": code, "message": result})
        return _json_response(200, result)

    # -- WebSocket ---------------------------------------------------------------------------

    def _ws_authorized(self, auth: Any) -> bool:
        if self.ha1 is None:
            return True
        if not isinstance(auth, dict) or str(auth.get("nonce")) not in self._nonces:
            return False
        ok = auth.get("response") == digest.response(
            self.ha1, str(auth.get("nonce")), 1, str(auth.get("cnonce")), digest.WS_HA2_INPUT)
        if not ok:
            self.auth_failures += 1
        return ok

    async def _ws_handler(self, ws: ServerConnection) -> None:
        try:
            async for text in ws:
                if self.silent:
                    continue
                try:
                    req = json.loads(text)
                    rid, method = req["id"], str(req["method"])
                except (ValueError, KeyError, TypeError):
                    continue
                frame: dict[str, Any] = {"id": rid, "src": self.device_id,
                                         "dst": req.get("src")}
                if not self._ws_authorized(req.get("auth")):
                    nonce = self._challenge()
                    frame["error"] = {"code": 401, "message": json.dumps({
                        "auth_type": "digest", "nonce": nonce, "nc": 1,
                        "realm": self.device_id, "algorithm": "SHA-256"})}
                else:
                    code, result = self.rpc(method, req.get("params") or {})
                    frame["error" if code else "result"] = (
                        {"code": code, "message": result} if code else result)
                await ws.send(json.dumps(frame))
        except ConnectionClosed:
            pass

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await serve(self._ws_handler, host, port,
                                   process_request=self._process_request, max_size=65536,
                                   ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _json_response(status: int, body: Any) -> Response:
    data = json.dumps(body).encode()
    headers = Headers([("Content-Type", "application/json"),
                       ("Content-Length", str(len(data))), ("Connection", "close")])
    return Response(status, HTTPStatus(status).phrase, headers, data)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description="simulated Shelly Gen2+ relay with metering")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--password", help="enable digest authentication")
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--load", type=Decimal, default=Decimal(2000), help="W drawn while on")
    args = p.parse_args()

    async def run() -> None:
        sim = ShellySimulator(channels=args.channels, password=args.password)
        for s in sim.switches:
            s.load_w = args.load
        port = await sim.start(args.host, args.port)
        sim.run_clock(1.0)
        print(f"ready {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
