"""Index only bounded patient references: one over-long id can no longer fail an insert.

A btree entry must stay under about 2,700 bytes. ``patient_ref`` comes from the
client (``context.patientId``, the QR's subject), so revision 0001's index on
``(patient_ref, occurred_at)`` made an insert with a 4,000-character id fail for
good. The index becomes partial: ``WHERE length(patient_ref) <= 256`` (characters;
at most 1 KiB in UTF-8). The full reference is still stored in every row; a search
for a longer one reads the rows of the period asked instead of the index.

Revision ID: 0003_bounded_patient_index
Revises: 0002_invocation_partitions
Create Date: 2025-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_bounded_patient_index"
down_revision: str | Sequence[str] | None = "0002_invocation_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_invocation_patient_ref_occurred_at"
#: as ``service.audit.models.MAX_INDEXED_PATIENT_REF`` (a migration never imports the app)
MAX_INDEXED_PATIENT_REF = 256
BOUNDED = sa.text(f"length(patient_ref) <= {MAX_INDEXED_PATIENT_REF}")


def upgrade() -> None:
    op.drop_index(INDEX, table_name="invocation")
    op.create_index(
        INDEX,
        "invocation",
        ["patient_ref", "occurred_at"],
        postgresql_where=BOUNDED,
        sqlite_where=BOUNDED,
    )


def downgrade() -> None:
    longest = op.get_bind().execute(sa.text("SELECT max(length(patient_ref)) FROM invocation"))
    if (longest.scalar() or 0) > MAX_INDEXED_PATIENT_REF:
        raise RuntimeError(
            "cannot downgrade to 0002: invocations hold patient references longer than "
            f"{MAX_INDEXED_PATIENT_REF} characters, which 0002's full index may refuse"
        )
    op.drop_index(INDEX, table_name="invocation")
    op.create_index(INDEX, "invocation", ["patient_ref", "occurred_at"])
