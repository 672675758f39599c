"""Calls refused before authentication: counted per client per time window, not a row each.

A stranger sending 600 unauthenticated calls a second cost 600 invocation rows a
second (and, during an outage, about 1.2 GB of spool an hour per pod). The service
now counts such refusals in memory per (client, status, window) and writes one
``refused_call`` row per window and process; ``backpain-cds audit show`` and
``audit refusals`` sum them.

Revision ID: 0005_refused_call
Revises: 0004_issued_card_per_invocation
Create Date: 2025-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_refused_call"
down_revision: str | Sequence[str] | None = "0004_issued_card_per_invocation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "refused_call",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("client_key", sa.Text(), nullable=False),
        sa.Column("http_status", sa.SmallInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("recorded_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refused_call"),
    )
    op.create_index("ix_refused_call_window_start", "refused_call", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_refused_call_window_start", table_name="refused_call")
    op.drop_table("refused_call")
