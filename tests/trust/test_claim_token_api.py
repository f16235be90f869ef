"""Claim tokens over HTTP (issue 12: the same operations as the CLI, behind gateway:admin):
create (the token in the answer once), list (never a token), revoke (nobody enrols with it
then), on a real server; the CLI lists the same."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitegate.cloud.auth.ca import CA
from sitegate.cloud.auth.enrolment import Provisioner
from sitegate.cloud.auth.scopes import Scope
from sitegate.cloud.keys import ENV as KEYS_ENV
from sitegate.common import provisioning as pv
from sitegate.firmware_tools.identity import Identity
from tests.api.conftest import Api, running_api
from tests.trust.conftest import cloud_cli

G = Scope.GATEWAY_ADMIN


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    keys = tmp_path / "keys"
    CA.open(keys).broker_server(["localhost"])  # what broker-config makes: tokens pin it
    monkeypatch.setenv(KEYS_ENV, str(keys))
    with running_api(tmp_path) as running:
        yield running


def _claim(api: Api, keys: Path, secret: str, gateway_id: str) -> pv.Response:
    ident = Identity(keys.parent / f"id-{gateway_id}")
    req = pv.Request(kind="claim", gateway_id=gateway_id, csr=ident.csr_pem(gateway_id),
                     token=secret)
    (out,) = Provisioner(api.engine, keys).handle(pv.request_topic("a" * 32),
                                                   req.model_dump_json().encode())
    return pv.Response.model_validate_json(out.payload)


def test_create_list_revoke_over_http_as_the_cli_does(api: Api, tmp_path: Path) -> None:
    admin = api.token(G, name="ops")
    code, new, _ = api.call("POST", "/claim-tokens", {"site_id": "lindenweg",
                                                      "expires": "2h"}, token=admin)
    assert code == 201, new
    secret, pin = pv.split_token(new["token"])
    assert pin == CA.open(tmp_path / "keys").broker_pin()
    assert re.fullmatch(r"[0-9a-f]{12}", new["id"]) and new["site_id"] == "lindenweg"
    code, other, _ = api.call("POST", "/claim-tokens", {"site_id": "lindenweg"}, token=admin)
    assert code == 201

    code, listed, _ = api.call("GET", "/claim-tokens", token=admin)
    assert code == 200
    assert {r["id"]: r["state"] for r in listed} == {new["id"]: "valid", other["id"]: "valid"}
    assert secret not in json.dumps(listed) and "token" not in listed[0]
    cli = json.loads(cloud_cli("gateways", "claim-token", "list", "--db", api.db,
                               "--json").stdout)
    assert [(r["id"], r["state"]) for r in cli] == [(r["id"], r["state"]) for r in listed]

    code, row, _ = api.call("POST", f"/claim-tokens/{new['id']}/revoke", {}, token=admin)
    assert (code, row["state"]) == (200, "revoked"), row
    resp = _claim(api, tmp_path / "keys", secret, "gw-late")
    assert (resp.ok, resp.error) == (False, "claim token revoked")
    # the other one still enrols; once used it cannot be revoked (revoke the gateway)
    resp = _claim(api, tmp_path / "keys", pv.split_token(other["token"])[0], "gw-1")
    assert resp.ok, resp.error
    code, body, _ = api.call("POST", f"/claim-tokens/{other['id']}/revoke", {}, token=admin)
    assert code == 409 and "used by gw-1" in body["detail"]
    assert api.call("POST", f"/claim-tokens/{'0' * 12}/revoke", {}, token=admin)[0] == 404


def test_claim_tokens_need_gateway_admin_and_sane_input(api: Api) -> None:
    reader = api.token(*(s for s in Scope if s != G), name="everything-else")
    assert api.call("POST", "/claim-tokens", {"site_id": "s"}, token=reader)[0] == 403
    assert api.call("GET", "/claim-tokens", token=reader)[0] == 403
    admin = api.token(G, name="ops")
    for body in ({"site_id": "s", "expires": "31d"}, {"site_id": "../x"},
                 {"site_id": "s", "token": "mine"}):
        code, detail, _ = api.call("POST", "/claim-tokens", body, token=admin)
        assert code == 422, (body, detail)
    assert api.call("GET", "/claim-tokens", token=admin)[1] == []
