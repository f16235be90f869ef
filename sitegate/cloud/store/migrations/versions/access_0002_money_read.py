"""access: reading is split into read (technical) and money:read; existing read tokens
keep what they could do

Revision ID: access_0002
Revises: access_0001
Create Date: 2026-11-30

Before this revision ``read`` covered invoices, payments, statements and exports too. A
token that held it keeps all of that: it gets ``money:read`` beside ``read``. (API tokens
belong to no console user, so none can be told apart as an installer's; an installer's
token, if one was made, must be revoked and made again with ``--scope read``.) Console
roles are not stored as scopes (``auth/users.py`` maps them), so they need no migration.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "access_0002"
down_revision = "access_0001"
branch_labels = None
depends_on = None

_tokens = sa.table("api_tokens", sa.column("id", sa.Integer), sa.column("scopes", sa.Text))


def _rewrite(change) -> None:  # type: ignore[no-untyped-def]
    conn = op.get_bind()
    for row in conn.execute(sa.select(_tokens.c.id, _tokens.c.scopes)).all():
        new = " ".join(sorted(change(set(row.scopes.split()))))
        if new != row.scopes:
            conn.execute(_tokens.update().where(_tokens.c.id == row.id).values(scopes=new))


def upgrade() -> None:
    _rewrite(lambda s: s | {"money:read"} if "read" in s else s)


def downgrade() -> None:
    # money:read alone meant nothing before: such a token gets read, which held it then
    _rewrite(lambda s: (s - {"money:read"}) | {"read"} if "money:read" in s else s)
