"""The one authorization model of the cloud: scopes, and which scope each operation needs.

The HTTP API checks a bearer token's scopes against this table (``api/security.py``);
``sitegate-cloud tokens create --scope`` offers exactly these scopes. The CLI's own commands
act with the rights of whoever can open the database (that is the operator), and name the
same operations, so that what a token may do over HTTP and what the operator does locally
are described in one place. A scope implies no other: a token that must read and pay gets
``read``, ``money:read`` and ``billing:write``.

Reading is split in two: ``read`` is the technical side (gateways, meters, readings, dead
letters, commissioning), ``money:read`` everything that shows amounts or who owes what
(invoices, payments, the ledger, statements, exports of amounts, jobs and their prices,
stays and their settlements, the site model with its tariffs and bank account). An
installer holds ``read`` only: this table, not the pages, is what keeps money from them.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    READ = "read"  # technical: gateways, meters, readings, dead letters, commissioning
    MONEY_READ = "money:read"  # invoices, payments, ledger, statements, exports, prices
    BILLING_WRITE = "billing:write"  # bill a period, issue, pay, credit, cancel, remind...
    SITE_ADMIN = "site:admin"  # import or replace a site model (creditor, IBAN, tenants)
    GATEWAY_ADMIN = "gateway:admin"  # claim tokens, revoke gateways, push config and commands


DESCRIPTIONS: dict[Scope, str] = {
    Scope.READ: "read gateways, meters, readings, dead letters and commissioning",
    Scope.MONEY_READ: "read invoices, payments, statements, jobs, stays, tariffs and exports",
    Scope.BILLING_WRITE: "bill periods and move invoices through their lifecycle",
    Scope.SITE_ADMIN: "import or replace a site model",
    Scope.GATEWAY_ADMIN: "enrol, revoke and configure gateways, send them commands",
}

# operation -> the scope it needs. API routes name their operation (``needs("...")``);
# a test checks that every route does and that every operation here is known.
OPERATIONS: dict[str, Scope] = {
    "health": Scope.READ,
    "gateways.list": Scope.READ,
    "gateways.show": Scope.READ,
    "commissioning.show": Scope.READ,  # a gateway's commissioning report (console)
    "readings.list": Scope.READ,
    "dead-letters.list": Scope.READ,
    "sites.list": Scope.READ,
    "site.show": Scope.MONEY_READ,  # the whole model: tariffs, creditor's IBAN, tenants
    "site.equipment": Scope.READ,  # the console's site and admin pages: meters, plots, notes
    "site.import": Scope.SITE_ADMIN,
    "bill.run": Scope.BILLING_WRITE,
    "invoices.list": Scope.MONEY_READ,
    "invoices.overview": Scope.MONEY_READ,
    "invoices.late": Scope.MONEY_READ,
    "invoices.export": Scope.MONEY_READ,
    "invoice.show": Scope.MONEY_READ,
    "invoice.explain": Scope.MONEY_READ,
    "invoice.pdf": Scope.MONEY_READ,
    "session.ocmf": Scope.READ,  # a session's signed meter values (ocmf part)
    "invoice.act": Scope.BILLING_WRITE,
    "readings.import": Scope.BILLING_WRITE,  # readings from outside the gateway (billing)
    # expense statements and received invoices (issue 15)
    "expense.periods.list": Scope.MONEY_READ,
    "expense.period.show": Scope.MONEY_READ,
    "expense.period.create": Scope.BILLING_WRITE,
    "expense.invoice.add": Scope.BILLING_WRITE,
    "expense.advances.set": Scope.BILLING_WRITE,
    "expense.run": Scope.BILLING_WRITE,
    "expense.statements.list": Scope.MONEY_READ,
    "expense.statement.overall": Scope.MONEY_READ,
    "expense.statement.show": Scope.MONEY_READ,
    "expense.statement.explain": Scope.MONEY_READ,
    "expense.statement.pdf": Scope.MONEY_READ,
    "expense.export": Scope.MONEY_READ,
    "expense.hierarchy.set": Scope.BILLING_WRITE,
    "expense.received.add": Scope.BILLING_WRITE,
    "expense.received.list": Scope.MONEY_READ,
    "expense.received.distribute": Scope.MONEY_READ,
    # stay settlements (branch stays, issue 16)
    "stays.units-show": Scope.MONEY_READ,
    "stays.units-import": Scope.SITE_ADMIN,
    "stays.reservations-list": Scope.MONEY_READ,
    "stays.reservations-import": Scope.BILLING_WRITE,
    "stays.status": Scope.BILLING_WRITE,
    "stays.readings-list": Scope.READ,
    "stays.readings-bulk": Scope.BILLING_WRITE,
    "stays.checkout": Scope.BILLING_WRITE,
    "stays.settle": Scope.BILLING_WRITE,
    "stays.document": Scope.MONEY_READ,
    "stays.explain": Scope.MONEY_READ,
    "payments.import": Scope.BILLING_WRITE,  # a bank statement (camt.054 / camt.053)
    "payments.list": Scope.MONEY_READ,
    "payments.assign": Scope.BILLING_WRITE,
    "jobs.settings": Scope.SITE_ADMIN,  # SMTP, acceptance link base, customer lookup
    "jobs.list": Scope.MONEY_READ,
    "jobs.show": Scope.MONEY_READ,
    "jobs.import": Scope.BILLING_WRITE,
    "jobs.act": Scope.BILLING_WRITE,  # quote, invoice, cancel
    "jobs.export": Scope.MONEY_READ,
    "gateway.claim-token": Scope.GATEWAY_ADMIN,
    "gateway.claim-tokens": Scope.GATEWAY_ADMIN,  # list (never the tokens)
    "gateway.claim-token.revoke": Scope.GATEWAY_ADMIN,
    "gateway.revoke": Scope.GATEWAY_ADMIN,
    "gateway.push-config": Scope.GATEWAY_ADMIN,
    "gateway.push-badges": Scope.GATEWAY_ADMIN,
    "gateway.command": Scope.GATEWAY_ADMIN,
}


def needed(operation: str) -> Scope:
    """The scope ``operation`` needs (KeyError for an unknown one: a programming error)."""
    return OPERATIONS[operation]


def parse_scopes(values: list[str]) -> frozenset[Scope]:
    """Scopes from ``--scope`` values (repeated or comma-separated); ValueError names a bad one."""
    out: set[Scope] = set()
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            try:
                out.add(Scope(name))
            except ValueError:
                raise ValueError(f"unknown scope {name!r}; one of "
                                 f"{', '.join(s.value for s in Scope)}") from None
    if not out:
        raise ValueError("a token needs at least one scope")
    return frozenset(out)
