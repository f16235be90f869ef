"""Claim tokens over HTTP: the operations of ``sitegate-cloud gateways claim-token``
(create, list, revoke), behind the ``gateway:admin`` scope. A created token is in the answer
once; the list never holds one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from sitegate.cloud.api.security import needs
from sitegate.cloud.auth.enrolment import MAX_EXPIRY

router = APIRouter(prefix="/claim-tokens", tags=["gateways"])


class ClaimTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: str = Field(min_length=1, max_length=64, description="the site the gateway "
                         "will belong to")
    expires: str = Field("24h", max_length=16, description=f"valid for: 30m, 24h, 7d (at "
                         f"most {MAX_EXPIRY.days}d)")


class NewClaimToken(BaseModel):
    token: str = Field(description="shown once: `sitegate enrol --claim TOKEN`")
    id: str
    site_id: str
    expires_at: datetime


@router.post("", status_code=201, dependencies=needs("gateway.claim-token"))
def create(request: Request, body: ClaimTokenRequest) -> NewClaimToken:
    from sitegate.cloud.auth.ca import CA, CAError
    from sitegate.cloud.auth.enrolment import EnrolmentError, create_claim_token, parse_duration
    from sitegate.cloud.keys import keys_dir

    try:
        expires = parse_duration(body.expires)
        new = create_claim_token(request.app.state.engine,
                                 CA.open(keys_dir(request.app.state.keys)), body.site_id,
                                 expires)
    except (ValueError, EnrolmentError) as exc:
        raise HTTPException(422, str(exc)) from None
    except CAError as exc:  # no broker configured yet: nothing a request can fix
        raise HTTPException(409, str(exc)) from None
    return NewClaimToken(token=new.token, id=new.id, site_id=new.site_id,
                         expires_at=new.expires_at)


@router.get("", dependencies=needs("gateway.claim-tokens"))
def list_(request: Request, limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
    from sitegate.cloud.auth.enrolment import claim_tokens

    return claim_tokens(request.app.state.engine, limit)


@router.post("/{token_id}/revoke", dependencies=needs("gateway.claim-token.revoke"))
def revoke(request: Request, token_id: str) -> dict[str, Any]:
    from sitegate.cloud.auth.enrolment import EnrolmentError, revoke_claim_token

    try:
        return revoke_claim_token(request.app.state.engine, token_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except EnrolmentError as exc:
        raise HTTPException(409, str(exc)) from None
