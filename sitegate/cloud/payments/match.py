"""Which invoice a credit pays: its QR reference (QRR: the site's prefix, the invoice
number, a modulo 10 check digit) or its creditor reference (ISO 11649 ``RFnn`` + the site's
prefix + the invoice number). The rest of the decision (partial, full, over-payment) is the
ledger's balance: this module only names the invoice, or why none."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from stdnum import iso11649
from stdnum.ch import esr

from sitegate.cloud.payments.camt import Credit


@dataclass(frozen=True, slots=True)
class Target:
    number: int | None  # the invoice, or None with the reason
    reason: str | None = None


def creditor_reference(prefix: str, number: int) -> str:
    """The invoice's ISO 11649 creditor reference: ``RF`` + 2 check digits + prefix +
    number (for an account that is no QR-IBAN, whose QR-bill carries this instead)."""
    body = f"{prefix}{number}"
    n = int("".join(str(int(c, 36)) for c in body + "RF00"))
    ref = f"RF{98 - n % 97:02d}{body}"
    assert iso11649.is_valid(ref)
    return ref


def target(credit: Credit, prefix: str, currency: str) -> Target:
    ref = credit.reference
    if not credit.credit:
        return Target(None, "a debit, not a payment coming in")
    if not credit.booked:
        return Target(None, "not booked yet (entry status is not BOOK)")
    if credit.currency != currency:
        return Target(None, f"in {credit.currency}, the site bills in {currency}")
    if credit.amount != credit.amount.quantize(Decimal("0.01")):
        return Target(None, f"amount {credit.amount} has more than 2 decimals")
    if credit.amount <= 0:
        return Target(None, "amount is zero")
    if ref is None:
        return Target(None, "no reference")
    if ref.isdigit() and len(ref) == 27:
        if not esr.is_valid(ref):
            return Target(None, f"QR reference {ref} has a wrong check digit")
        if not ref.startswith(prefix):
            return Target(None, f"QR reference {ref} is not of this site (prefix {prefix})")
        return Target(int(ref[len(prefix):26]))
    if ref.startswith("RF"):
        if not iso11649.is_valid(ref):
            return Target(None, f"creditor reference {ref} has wrong check digits")
        body = ref[4:]
        if not (body.isdigit() and body.startswith(prefix) and len(body) > len(prefix)):
            return Target(None, f"creditor reference {ref} is not of this site")
        return Target(int(body[len(prefix):]))
    return Target(None, f"reference {ref[:40]} is neither a QR nor a creditor reference")
