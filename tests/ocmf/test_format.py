"""OCMF records as the format's own documentation states them, and hostile input."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from sitegate.common import ocmf
from sitegate.common.ocmf_sign import SigningMeter
from sitegate.ocpp_server.signed import signed_values

# The example file of the OCMF specification (SAFE-eV, OCMF-en.md, revision 1.2, section
# "Example"), as printed there: pretty-printed JSON, DC meter, begin and end in one record.
SPEC_EXAMPLE = """OCMF|{
    "FV": "1.0",
    "GI": "ABL SBC-301",
    "GS": "808829900001",
    "GV": "1.4p3",
    "PG": "T12345",
    "MV": "Phoenix Contact",
    "MM": "EEM-350-D-MCB",
    "MS": "BQ27400330016",
    "MF": "1.0",
    "IS": true,
    "IL": "VERIFIED",
    "IF": [
        "RFID_PLAIN",
        "OCPP_RS_TLS"
    ],
    "IT": "ISO14443",
    "ID": "1F2D3A4F5506C7",
    "TT": "Tarif 1",
    "LC": {
        "LN": "cable_name",
        "LI": 1,
        "LR": 2,
        "LU": "mOhm"
    },
    "RD": [
        {
            "TM": "2018-07-24T13:22:04,000+0200 S",
            "TX": "B",
            "RV": 2935.6,
            "RI": "1-b:1.8.0",
            "RU": "kWh",
            "RT": "DC",
            "EF": "",
            "ST": "G"
        },
        {
            "TM": "2018-07-24T13:26:04,000+0200 S",
            "TX": "E",
            "RV": 2965.1,
            "CL": 0.5,
            "RI": "1-b:1.8.0",
            "RU": "kWh",
            "RT": "DC",
            "EF": "",
            "ST": "G"
        }
    ]
}|{
    "SD": "887FABF407AC82782EEFFF2220C2F856AEB0BC22364BBCC6B55761911ED651D1A922BADA88818C9671AFEE7094D7F536"
}"""  # noqa: E501


def test_the_specification_example_decodes_with_its_values() -> None:
    # no key is published for it: everything but the signature is checked
    c = ocmf.verify_session([ocmf.SignedDoc("Transaction.End", SPEC_EXAMPLE)], None,
                            calibrated=True, energy_wh=Decimal("29500.0"),
                            meter_serial="BQ27400330016", badge="1F:2D:3A:4F:55:06:C7")
    assert c.meter == {"vendor": "Phoenix Contact", "model": "EEM-350-D-MCB",
                       "serial": "BQ27400330016", "gateway": "ABL SBC-301",
                       "gateway_serial": "808829900001"}
    assert (c.start.tm, c.start.tx, c.start.value, c.start.unit, c.start.obis) == (
        "2018-07-24T13:22:04,000+0200 S", "B", "2935.6", "kWh", "1-b:1.8.0")
    assert (c.stop.tm, c.stop.tx, c.stop.value, c.stop.pagination) == (
        "2018-07-24T13:26:04,000+0200 S", "E", "2965.1", "T12345")
    # 2965.1 kWh - 2935.6 kWh = 29.5 kWh, the energy the unsigned values say too
    assert c.energy_wh == Decimal("29500.0")
    assert c.problems == ["no public key for this charger (configure it, or let the "
                          "charger send it once to pin it)"]
    assert ocmf.parse_tm(c.start.tm) == datetime(2018, 7, 24, 11, 22, 4, tzinfo=UTC)


def test_transport_encodings_decode_to_the_same_text() -> None:
    m = SigningMeter()
    rec = m.record([(datetime(2026, 1, 1, tzinfo=UTC), "B", Decimal("1.00"))])
    assert ocmf.ocmf_text(base64.b64encode(rec.encode()).decode()) == rec
    assert ocmf.ocmf_text(rec.encode().hex()) == rec
    with pytest.raises(ocmf.OcmfError):
        ocmf.ocmf_text("not ocmf at all")
    with pytest.raises(ocmf.OcmfError):
        ocmf.ocmf_text("OCMF|" + "x" * ocmf.DOC_MAX_CHARS)


def test_hostile_records_fail_cleanly() -> None:
    m = SigningMeter()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    good = m.record([(t0, "B", Decimal("1.00")), (t0 + timedelta(hours=1), "E", Decimal("2"))])
    for bad in ("OCMF|{|{}", "OCMF|[]|{}", "OCMF|{\"RD\":[]}|{\"SD\":\"zz\"}",
                good.replace('"SD":"', '"SD":"00'), "OCMF|" + "{" * 5000 + "|{}"):
        c = ocmf.verify_session([ocmf.SignedDoc("Transaction.End", bad)], m.public_key_hex,
                                calibrated=True, energy_wh=Decimal(1000))
        assert c.status == "failed" and c.problems, bad[:40]
    c = ocmf.verify_session([ocmf.SignedDoc("Transaction.End", good)], "nonsense-key",
                            calibrated=True, energy_wh=Decimal(1000))
    assert c.status == "failed"
    assert ocmf.verify_session([ocmf.SignedDoc("Transaction.End", good)], m.public_key_hex,
                               calibrated=True, energy_wh=Decimal(1000)).status == "verified"


def test_oversized_values_are_dropped_with_a_problem() -> None:
    problems: list[str] = []
    big = "OCMF|" + "x" * 9000
    items = [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
        {"value": big, "format": "SignedData", "context": "Transaction.End"},
        {"value": "OCMF|{}|{}", "format": "SignedData", "context": "Transaction.Begin"},
        {"value": "12", "measurand": "Energy.Active.Import.Register"}]}]
    got = signed_values(items, "1.6", problems)
    assert [s.context for s in got] == ["Transaction.Begin"]
    assert problems == ["signed meter value of 9005 characters dropped (more than 8192)"]


def test_periodic_signed_values_leave_room_for_begin_and_end(tmp_path) -> None:
    from sitegate.ocpp_server.state import StateStore

    store = StateStore(str(tmp_path / "ocpp.db"))
    periodic = [{"ts": f"2026-01-01T00:{i:02d}:00+00:00", "context": "Sample.Periodic",
                 "source": "MeterValues", "data": f"OCMF|{i}|x"} for i in range(30)]
    assert store.add_signed(1, periodic, 16) == 30 - 12  # 16 places, 4 kept back
    ends = [{"ts": "2026-01-01T01:00:00+00:00", "context": c, "source": "StopTransaction",
             "data": f"OCMF|{c}|x"} for c in ("Transaction.Begin", "Transaction.End")]
    assert store.add_signed(1, ends, 16) == 0
    assert [v["context"] for v in store.signed_values(1)].count("Transaction.End") == 1
    store.close()
