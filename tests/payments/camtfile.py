"""A camt.054 / camt.053 document written out from a list of bookings, as a Swiss bank
delivers it (version .001.08): each entry one transaction with its bank reference."""

from __future__ import annotations

IBAN = "CH4431999123000889012"  # the example campsite's QR-IBAN, compact


def document(entries: list[dict], kind: str = "054", msg_id: str = "MSG-1",
             iban: str = IBAN) -> bytes:
    top, rep = (("BkToCstmrDbtCdtNtfctn", "Ntfctn") if kind == "054"
                else ("BkToCstmrStmt", "Stmt"))
    ntries = []
    for e in entries:
        ind = e.get("ind", "CRDT")
        ref = (f"<RmtInf><Strd><CdtrRefInf><Ref>{e['ref']}</Ref></CdtrRefInf></Strd>"
               "</RmtInf>" if e.get("ref") else "")
        ntries.append(
            f"<Ntry><Amt Ccy=\"{e.get('ccy', 'CHF')}\">{e['amount']}</Amt>"
            f"<CdtDbtInd>{ind}</CdtDbtInd><Sts><Cd>{e.get('status', 'BOOK')}</Cd></Sts>"
            f"<BookgDt><Dt>{e.get('date', '2026-07-20')}</Dt></BookgDt>"
            f"<ValDt><Dt>{e.get('date', '2026-07-20')}</Dt></ValDt>"
            f"<AcctSvcrRef>{e['bank_ref']}</AcctSvcrRef>"
            f"<NtryDtls><TxDtls><Refs><AcctSvcrRef>{e['bank_ref']}-1</AcctSvcrRef></Refs>"
            f"<Amt Ccy=\"{e.get('ccy', 'CHF')}\">{e['amount']}</Amt>"
            f"<CdtDbtInd>{ind}</CdtDbtInd>"
            f"<RltdPties><Dbtr><Pty><Nm>{e.get('debtor', 'Gast')}</Nm></Pty></Dbtr>"
            f"</RltdPties>{ref}</TxDtls></NtryDtls></Ntry>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:'
            f'tech:xsd:camt.{kind}.001.08"><{top}><GrpHdr><MsgId>{msg_id}</MsgId>'
            f"<CreDtTm>2026-07-20T18:00:00</CreDtTm></GrpHdr><{rep}><Id>{msg_id}-1</Id>"
            f"<Acct><Id><IBAN>{iban}</IBAN></Id></Acct>{''.join(ntries)}</{rep}></{top}>"
            "</Document>").encode()
