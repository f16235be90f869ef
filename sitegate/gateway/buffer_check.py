"""The buffer's duplicate and gap check (``sitegate buffer check``, and the daemon at start).

A field technician's view of one class of fault: a reading stored twice (the same meter,
quantity and slot under two sequence numbers; issue 11) and a hole in the sequence numbers
the cloud has not acknowledged yet. Sessions and events have no such key: for them a row
stored twice is the same payload twice. Acknowledged rows may have been removed by the size
cap (oldest first), so gaps count only above the acknowledged mark.

Runs on its own read-only connection: a long check never holds up the writer.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

from sitegate.common.output import emit, table
from sitegate.sync.protocol import STREAM_READINGS, STREAMS

EXAMPLES = 10  # duplicates and gaps shown per stream; the counts are complete


def check_buffer(path: str | Path) -> dict[str, Any]:
    """Duplicates and sequence gaps per stream. Raises FileNotFoundError without a file."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no buffer database at {path}")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        streams = {s: _check_stream(con, s) for s in STREAMS}
    finally:
        con.close()
    ok = all(not v["duplicate_rows"] and not v["missing"] for v in streams.values())
    return {"path": str(path), "ok": ok, "streams": streams}


def _check_stream(con: sqlite3.Connection, stream: str) -> dict[str, Any]:
    row = con.execute("SELECT last_seq, acked_upto FROM streams WHERE stream=?",
                      (stream,)).fetchone()
    last, acked = row if row else (0, 0)
    rows = con.execute("SELECT COUNT(*) FROM entries WHERE stream=?", (stream,)).fetchone()[0]
    if stream == STREAM_READINGS:
        key = "json_extract(payload, '$.meter_id'), json_extract(payload, '$.quantity'), ts"
        shown = "json_extract(payload, '$.meter_id') || ' ' || " \
                "json_extract(payload, '$.quantity') || ' ' || ts"
    else:
        key = shown = "payload"
    dups = con.execute(
        f"SELECT {shown}, COUNT(*), GROUP_CONCAT(seq) FROM entries WHERE stream=? "  # noqa: S608
        f"GROUP BY {key} HAVING COUNT(*) > 1 ORDER BY MIN(seq)", (stream,)).fetchall()
    # Every number above the acknowledged mark, up to the last one given out, is a row.
    gaps = con.execute(
        "SELECT prev, seq FROM (SELECT seq, LAG(seq, 1, ?) OVER (ORDER BY seq) AS prev "
        "FROM entries WHERE stream=? AND seq > ?) WHERE seq != prev + 1",
        (acked, stream, acked)).fetchall()
    top = con.execute("SELECT MAX(seq) FROM entries WHERE stream=?", (stream,)).fetchone()[0]
    if last > max(top or 0, acked):
        gaps.append((max(top or 0, acked), last + 1))  # the end is missing
    return {
        "rows": rows, "last_seq": last, "acked_upto": acked,
        "duplicates": len(dups),
        "duplicate_rows": sum(n - 1 for _, n, _ in dups),
        "duplicate_examples": [{"key": str(k)[:200], "seqs": [int(s) for s in seqs.split(",")]}
                               for k, _, seqs in dups[:EXAMPLES]],
        "gaps": [[a + 1, b - 1] for a, b in gaps[:EXAMPLES]],
        "missing": sum(b - a - 1 for a, b in gaps),
        "beyond_last_seq": (top or 0) > last,
    }


def render(result: dict[str, Any]) -> str:
    rows = [[name, v["rows"], v["last_seq"], v["acked_upto"], v["duplicate_rows"],
             v["missing"]] for name, v in result["streams"].items()]
    out = [f"{result['path']}: " + ("ok, no duplicates, no gaps" if result["ok"]
                                    else "PROBLEMS FOUND"),
           table(rows, ["stream", "rows", "last seq", "acked up to", "stored twice",
                        "missing seqs"])]
    for name, v in result["streams"].items():
        for d in v["duplicate_examples"]:
            seqs = ", ".join(map(str, d["seqs"]))
            out.append(f"{name}: stored {len(d['seqs'])} times (seq {seqs}): {d['key']}")
        for a, b in v["gaps"]:
            out.append(f"{name}: no rows for seq {a}" + (f"..{b}" if b != a else ""))
    return "\n".join(out)


def report(path: str, as_json: bool) -> int:
    """``sitegate buffer check``: print the result; 0 ok, 2 problems found, 1 no check."""
    try:
        result = check_buffer(path)
    except FileNotFoundError as exc:
        print(f"sitegate: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:
        print(f"sitegate: {path} cannot be checked: {exc}", file=sys.stderr)
        return 1
    emit(result, as_json, render(result))
    return 0 if result["ok"] else 2
