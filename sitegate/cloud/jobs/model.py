"""A job as the operator describes it (TOML or JSON), and the site's jobs settings (SMTP,
the link base of the acceptance page, the customer lookup hook). Every error names its key.

A job is for a customer and an installation; its cost lines come from work orders and
purchase orders (description, quantity, unit price, VAT rate, the originating order). The
cost is shared between parties by relative shares (the customer 60 %, the grid operator
40 %); the customer's share may get a deduction: ``threshold`` (below this net amount
nothing is charged) or ``fixed`` (this amount is deducted, spread over the VAT rates in
proportion to their net)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sitegate.cloud.billing.sitemodel import Address, SiteModelError

ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$"  # fits the invoice's period label "job:ID"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostLine(_M):
    id: str = Field(pattern=ID)
    description: str = Field(min_length=1, max_length=120)
    quantity: Decimal = Field(ge=0, le=10**7)
    unit: str = Field(default="", max_length=8)
    unit_price: Decimal = Field(ge=-(10**7), le=10**7)
    vat: Decimal = Field(ge=0, le=100)


class Order(_M):
    id: str = Field(pattern=ID)
    kind: Literal["work", "purchase"]
    description: str = Field(default="", max_length=120)
    lines: list[CostLine] = Field(max_length=500)


class Party(_M):
    id: str = Field(pattern=ID)
    name: str = Field(min_length=1, max_length=128)
    share: Decimal = Field(gt=0, le=100)  # percent of every cost line
    customer: bool = False  # the job's customer: gets the quote, the deduction
    email: str | None = Field(default=None, max_length=254)
    address: Address | None = None
    accounting_id: str | None = Field(default=None, max_length=64)


class Deduction(_M):
    mode: Literal["threshold", "fixed"]
    amount: Decimal = Field(gt=0, le=10**7)


class JobSpec(_M):
    id: str = Field(pattern=ID)
    title: str = Field(min_length=1, max_length=120)
    installation: str = Field(min_length=1, max_length=120)
    parties: list[Party] = Field(min_length=1, max_length=8)
    deduction: Deduction | None = None
    block: Literal["none", "until_accepted", "until_prepaid"] = "none"
    prepayment_percent: Decimal = Field(default=Decimal(0), ge=0, le=100)
    orders: list[Order] = Field(min_length=1, max_length=200)

    @property
    def customer(self) -> Party:
        return next(p for p in self.parties if p.customer)


def _check(j: JobSpec) -> list[str]:
    err: list[str] = []
    if sum((p.share for p in j.parties), Decimal(0)) != 100:
        err.append(f"parties: shares add up to "
                   f"{sum((p.share for p in j.parties), Decimal(0))} %, not 100 %")
    if sum(p.customer for p in j.parties) != 1:
        err.append("parties: exactly one party is the customer (customer = true)")
    for what, ids in (("parties", [p.id for p in j.parties]),
                      ("orders", [o.id for o in j.orders])):
        for i, x in enumerate(ids):
            if ids.index(x) != i:
                err.append(f"{what}[{i}].id: duplicate id {x!r}")
    for i, o in enumerate(j.orders):
        ids = [ln.id for ln in o.lines]
        for k, x in enumerate(ids):
            if ids.index(x) != k:
                err.append(f"orders[{i}].lines[{k}].id: duplicate id {x!r}")
    if j.block == "until_prepaid" and not j.prepayment_percent:
        err.append("block: until_prepaid needs a prepayment_percent")
    return err


def _errors(exc: ValidationError, prefix: str = "") -> list[str]:
    return [prefix + ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in e["loc"])
            .replace(".[", "[") + f": {e['msg']}" for e in exc.errors()]


def parse_job(data: Any) -> JobSpec:
    try:
        job = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SiteModelError(_errors(exc)) from None
    if err := _check(job):
        raise SiteModelError(err)
    return job


class Smtp(_M):
    host: str = Field(max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    sender: str = Field(max_length=254)
    starttls: bool = True
    username: str | None = Field(default=None, max_length=254)
    password_file: str | None = None  # never the password itself in the settings
    timeout: float = Field(default=30, gt=0, le=300)


class Lookup(_M):
    """The customer's accounting id from the operator's system: a command (argv; gets the
    party as JSON on stdin, prints the id) or a URL (gets the party as JSON by POST, answers
    {"accounting_id": ...})."""

    command: list[str] | None = Field(default=None, min_length=1, max_length=32)
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    timeout: float = Field(default=10, gt=0, le=60)


class JobsSettings(_M):
    link_base: str = Field(pattern=r"^https?://", max_length=500)  # the API's public URL
    quote_valid_days: int = Field(default=30, ge=1, le=365)
    smtp: Smtp | None = None
    lookup: Lookup | None = None


def parse_settings(data: Any) -> JobsSettings:
    try:
        s = JobsSettings.model_validate(data)
    except ValidationError as exc:
        raise SiteModelError(_errors(exc)) from None
    if s.lookup is not None and (s.lookup.command is None) == (s.lookup.url is None):
        raise SiteModelError(["lookup: give either command or url"])
    return s
