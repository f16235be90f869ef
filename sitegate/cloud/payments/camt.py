"""ISO 20022 bank-to-customer messages as Swiss banks deliver them: camt.054 (debit/credit
notification) and camt.053 (statement), versions .001.02 to .001.08.

The file comes from outside: it is bounded before it is read (bytes), while it is read
(element depth, element count, entries; no DTD, no entities, no external references:
defusedxml), and each value is checked where the schema says what it is (amount: up to 18
digits with 5 decimals, currency: 3 letters, dates: ISO). A file that breaks a rule is
refused whole, naming the entry; nothing of it is kept."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

MAX_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 32  # the deepest path of camt.054.001.08 is about 12
MAX_ELEMENTS = 2_000_000
MAX_ENTRIES = 50_000  # transactions in one file
NS = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(053|054)\.001\.0([2-8])$")
ROOTS = {"053": ("BkToCstmrStmt", "Stmt"), "054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn")}
AMOUNT = re.compile(r"^\d{1,13}(\.\d{1,5})?$")  # ActiveOrHistoricCurrencyAndAmount
CCY = re.compile(r"^[A-Z]{3}$")


class CamtError(ValueError):
    """The file is refused; the message names the entry (or says what it is not)."""


@dataclass(frozen=True, slots=True)
class Credit:
    """One incoming (or outgoing, ``credit`` False) transaction of the file."""

    key: str  # stable across files (a camt.054 and the camt.053 of the same day)
    entry: str  # where it is in the file: "Ntfctn 1, Ntry 3, TxDtls 2"
    account: str  # the account's IBAN
    amount: Decimal
    currency: str
    credit: bool
    booked: bool  # entry status BOOK (else pending / information only)
    booking_date: date | None
    value_date: date | None
    reference: str | None  # QR reference (27 digits) or creditor reference (RF..)
    debtor: str | None
    bank_ref: str | None


@dataclass(frozen=True, slots=True)
class Statement:
    kind: str  # "054" or "053"
    version: str
    message_id: str
    credits: list[Credit]
    digest: str  # SHA-256 of the file


def _read(data: bytes) -> Element:
    """Parse with bounds checked while reading (depth, elements); no DTD or entities."""
    if len(data) > MAX_BYTES:
        raise CamtError(f"{len(data)} bytes, more than {MAX_BYTES}")
    depth = count = 0
    root: Element | None = None
    try:
        for event, elem in DET.iterparse(io.BytesIO(data), events=("start", "end"),
                                         forbid_dtd=True):
            if event == "start":
                depth += 1
                count += 1
                root = elem if root is None else root
                if depth > MAX_DEPTH:
                    raise CamtError(f"elements nested deeper than {MAX_DEPTH}")
                if count > MAX_ELEMENTS:
                    raise CamtError(f"more than {MAX_ELEMENTS} elements")
            else:
                depth -= 1
    except DefusedXmlException as exc:
        raise CamtError(f"not accepted: {type(exc).__name__} (DTDs, entities and external "
                        "references are refused)") from None
    except DET.ParseError as exc:
        raise CamtError(f"not well-formed XML: {exc}") from None
    if root is None:
        raise CamtError("empty document")
    return root


class _Ns:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    def q(self, path: str) -> str:
        return "/".join(f"{{{self.uri}}}{p}" for p in path.split("/"))

    def find(self, el: Element | None, path: str) -> Element | None:
        return None if el is None else el.find(self.q(path))

    def text(self, el: Element | None, path: str) -> str | None:
        x = self.find(el, path)
        return None if x is None or x.text is None else x.text.strip()[:200]

    def all(self, el: Element | None, path: str) -> list[Element]:
        return [] if el is None else el.findall(self.q(path))


def _amount(ns: _Ns, el: Element | None, where: str) -> tuple[Decimal, str] | None:
    if el is None:
        return None
    text, ccy = (el.text or "").strip(), el.get("Ccy", "")
    if not AMOUNT.match(text):
        raise CamtError(f"{where}: amount {text[:30]!r} is not an amount (digits, up to 5 "
                        "decimals)")
    if not CCY.match(ccy):
        raise CamtError(f"{where}: currency {ccy[:10]!r} is not a currency code")
    return Decimal(text), ccy


def _date(ns: _Ns, el: Element | None, where: str) -> date | None:
    text = ns.text(el, "Dt") or (ns.text(el, "DtTm") or "")[:10] or None
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CamtError(f"{where}: {text[:30]!r} is not a date") from None


def _indicator(ns: _Ns, el: Element, where: str) -> bool:
    ind = ns.text(el, "CdtDbtInd")
    if ind not in ("CRDT", "DBIT"):
        raise CamtError(f"{where}: CdtDbtInd {str(ind)[:10]!r} is neither CRDT nor DBIT")
    return ind == "CRDT"


def _reference(ns: _Ns, tx: Element | None) -> str | None:
    ref = ns.text(tx, "RmtInf/Strd/CdtrRefInf/Ref")
    if ref is None:  # unstructured: a customer who typed the reference as a message
        ustrd = " ".join(x.text or "" for x in ns.all(tx, "RmtInf/Ustrd"))
        m = re.search(r"\b(\d{27}|RF\d{2}[A-Za-z0-9]{1,21})\b", ustrd.replace(" ", ""))
        ref = m.group(1) if m else None
    return None if ref is None else ref.replace(" ", "").upper()


def _debtor(ns: _Ns, tx: Element | None) -> str | None:
    return (ns.text(tx, "RltdPties/Dbtr/Pty/Nm")  # .08
            or ns.text(tx, "RltdPties/Dbtr/Nm"))  # .02 - .04


def parse(data: bytes) -> Statement:
    root = _read(data)
    uri = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    m = NS.match(uri)
    if not m or root.tag != f"{{{uri}}}Document":
        raise CamtError(f"not a camt.053 or camt.054 document (root {root.tag[:120]!r})")
    kind, version = m.group(1), f"001.0{m.group(2)}"
    ns = _Ns(uri)
    top_name, report_name = ROOTS[kind]
    top = ns.find(root, top_name)
    if top is None:
        raise CamtError(f"camt.{kind}: no {top_name} under Document")
    msg_id = ns.text(top, "GrpHdr/MsgId")
    if not msg_id:
        raise CamtError(f"camt.{kind}: GrpHdr/MsgId is missing")
    credits: list[Credit] = []
    for i, report in enumerate(ns.all(top, report_name), 1):
        account = (ns.text(report, "Acct/Id/IBAN") or "").replace(" ", "")
        if not account:
            raise CamtError(f"{report_name} {i}: Acct/Id/IBAN is missing")
        for j, ntry in enumerate(ns.all(report, "Ntry"), 1):
            where = f"{report_name} {i}, Ntry {j}"
            amt = _amount(ns, ns.find(ntry, "Amt"), where)
            if amt is None:
                raise CamtError(f"{where}: Amt is missing")
            credit = _indicator(ns, ntry, where)
            status = ns.text(ntry, "Sts/Cd") or ns.text(ntry, "Sts")
            booked, bdate = status == "BOOK", _date(ns, ns.find(ntry, "BookgDt"), where)
            vdate = _date(ns, ns.find(ntry, "ValDt"), where)
            entry_ref = ns.text(ntry, "AcctSvcrRef")
            txs = [tx for d in ns.all(ntry, "NtryDtls") for tx in ns.all(d, "TxDtls")]
            if not txs:
                txs_or_entry: list[Element | None] = [None]
            else:
                txs_or_entry = list(txs)
            for k, tx in enumerate(txs_or_entry, 1):
                w = where if tx is None else f"{where}, TxDtls {k}"
                if tx is None:
                    t_amt, t_credit, t_ref, bank_ref = amt, credit, None, entry_ref
                    t_ref = _reference(ns, ntry) or ns.text(ntry, "NtryRef")
                    debtor = None
                else:
                    t_amt = (_amount(ns, ns.find(tx, "Amt"), w)
                             or _amount(ns, ns.find(tx, "AmtDtls/TxAmt/Amt"), w))
                    if t_amt is None:
                        if len(txs) > 1:
                            raise CamtError(f"{w}: no amount for one of {len(txs)} "
                                            "transactions")
                        t_amt = amt
                    t_credit = (_indicator(ns, tx, w) if ns.find(tx, "CdtDbtInd") is not None
                                else credit)
                    t_ref = _reference(ns, tx)
                    bank_ref = ns.text(tx, "Refs/AcctSvcrRef") or (
                        f"{entry_ref}/{k}" if entry_ref else None)
                    debtor = _debtor(ns, tx)
                if len(credits) >= MAX_ENTRIES:
                    raise CamtError(f"more than {MAX_ENTRIES} transactions")
                key = bank_ref or hashlib.sha256("|".join(map(str, (
                    account, bdate, vdate, t_amt[0], t_amt[1], t_credit, t_ref, debtor,
                    j, k))).encode()).hexdigest()[:40]
                credits.append(Credit(f"{account}:{key}"[:120], w, account, t_amt[0],
                                      t_amt[1], t_credit, booked, bdate, vdate, t_ref, debtor,
                                      bank_ref))
    return Statement(kind, version, msg_id, credits, hashlib.sha256(data).hexdigest())
