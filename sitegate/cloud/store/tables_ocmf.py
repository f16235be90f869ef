"""Tables of the signed meter values part (OCMF): the public key pinned per charger.

Declared on the one ``metadata`` of ``tables``; the signed values themselves travel and
stay inside the session reports (``sessions``/``session_latest`` payloads), exactly as
the charger sent them.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Table

from sitegate.cloud.store.tables import metadata

# The key a charger's signatures are checked with when the site model names none: the
# first one a session of it carried ("trust on first use"); a different key later is an
# issue on every bill until an operator confirms it (``sitegate-cloud ocmf pin``).
ocmf_keys = Table(
    "ocmf_keys", metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("charge_point", String(64), primary_key=True),
    Column("public_key", String(1024), nullable=False),  # upper-case hex of the DER
    Column("fingerprint", String(16), nullable=False),
    Column("first_session", String(128)),
    Column("pinned_at", DateTime(timezone=True), nullable=False),
)
