"""Each invocation keeps its own card rows, even when its card uuids repeat.

Card uuids are derived from hookInstance + rule id, so a client that repeats a
hookInstance gets the same uuids again. With ``card_uuid`` as ``issued_card``'s primary
key, the repeated call's cards were skipped and the audit said "no cards" for a call
that returned a critical one. The key becomes ``(invocation_id, position)``;
``card_uuid`` keeps an index (not unique). ``card_feedback.card_uuid`` can no longer be
a foreign key (it names a card that may have been issued several times): the store
checks that the card was issued before it writes feedback.

Downgrade: refused while a card uuid is stored more than once (0003 cannot hold it).

Revision ID: 0004_issued_card_per_invocation
Revises: 0003_bounded_patient_index
Create Date: 2025-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_issued_card_per_invocation"
down_revision: str | Sequence[str] | None = "0003_bounded_patient_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEEDBACK_FK = "fk_card_feedback_card_uuid_issued_card"


def upgrade() -> None:
    with op.batch_alter_table("card_feedback") as feedback:
        feedback.drop_constraint(FEEDBACK_FK, type_="foreignkey")
    op.drop_index("ix_issued_card_invocation_id", table_name="issued_card")
    with op.batch_alter_table("issued_card") as cards:
        cards.drop_constraint("pk_issued_card", type_="primary")
        cards.create_primary_key("pk_issued_card", ["invocation_id", "position"])
    op.create_index("ix_issued_card_card_uuid", "issued_card", ["card_uuid"])


def downgrade() -> None:
    repeated = op.get_bind().execute(
        sa.text("SELECT card_uuid FROM issued_card GROUP BY card_uuid HAVING count(*) > 1 LIMIT 5")
    )
    uuids = [row[0] for row in repeated]
    if uuids:
        raise RuntimeError(
            "cannot downgrade to 0003: card uuids issued by more than one invocation "
            f"(0003 keys cards by uuid), e.g. {uuids}"
        )
    op.drop_index("ix_issued_card_card_uuid", table_name="issued_card")
    with op.batch_alter_table("issued_card") as cards:
        cards.drop_constraint("pk_issued_card", type_="primary")
        cards.create_primary_key("pk_issued_card", ["card_uuid"])
    op.create_index("ix_issued_card_invocation_id", "issued_card", ["invocation_id"])
    with op.batch_alter_table("card_feedback") as feedback:
        feedback.create_foreign_key(
            FEEDBACK_FK, "issued_card", ["card_uuid"], ["card_uuid"], ondelete="RESTRICT"
        )
