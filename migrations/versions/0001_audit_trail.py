"""Audit trail: invocations, issued cards, card feedback, used JWT ids.

Revision ID: 0001_audit_trail
Revises:
Create Date: 2025-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_audit_trail"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invocation",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("http_status", sa.SmallInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("service_id", sa.Text(), nullable=True),
        sa.Column("hook", sa.Text(), nullable=True),
        sa.Column("hook_instance", sa.Text(), nullable=True),
        sa.Column("client_iss", sa.Text(), nullable=True),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("patient_ref", sa.Text(), nullable=True),
        sa.Column("encounter_ref", sa.Text(), nullable=True),
        sa.Column("qr_id", sa.Text(), nullable=True),
        sa.Column("qr_version", sa.Text(), nullable=True),
        sa.Column("qr_sha256", sa.String(64), nullable=True),
        sa.Column("questionnaire", sa.Text(), nullable=True),
        sa.Column("rules_version", sa.Text(), nullable=True),
        sa.Column("qr_source", sa.Text(), nullable=True),
        sa.Column("fired_rules", JSON, nullable=False),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_invocation"),
        sa.UniqueConstraint("id", name="uq_invocation_id"),
    )
    op.create_index("ix_invocation_occurred_at", "invocation", ["occurred_at"])
    op.create_index(
        "ix_invocation_patient_ref_occurred_at", "invocation", ["patient_ref", "occurred_at"]
    )

    op.create_table(
        "issued_card",
        sa.Column("card_uuid", sa.Text(), nullable=False),
        sa.Column("invocation_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("card_uuid", name="pk_issued_card"),
        sa.ForeignKeyConstraint(
            ["invocation_id"],
            ["invocation.id"],
            name="fk_issued_card_invocation_id_invocation",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "indicator IN ('info', 'warning', 'critical')", name="ck_issued_card_indicator"
        ),
    )
    op.create_index("ix_issued_card_invocation_id", "issued_card", ["invocation_id"])

    op.create_table(
        "card_feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("card_uuid", sa.Text(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_timestamp", TS, nullable=False),
        sa.Column("accepted_suggestions", JSON, nullable=False),
        sa.Column("override_reason", JSON, nullable=True),
        sa.Column("client_iss", sa.Text(), nullable=True),
        sa.Column("extra", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_card_feedback"),
        sa.UniqueConstraint("fingerprint", name="uq_card_feedback_fingerprint"),
        sa.ForeignKeyConstraint(
            ["card_uuid"],
            ["issued_card.card_uuid"],
            name="fk_card_feedback_card_uuid_issued_card",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "outcome IN ('accepted', 'overridden')", name="ck_card_feedback_outcome"
        ),
    )
    op.create_index("ix_card_feedback_card_uuid", "card_feedback", ["card_uuid"])

    op.create_table(
        "used_jti",
        sa.Column("iss", sa.Text(), nullable=False),
        sa.Column("jti", sa.Text(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("iss", "jti", name="pk_used_jti"),
    )
    op.create_index("ix_used_jti_expires_at", "used_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_used_jti_expires_at", table_name="used_jti")
    op.drop_table("used_jti")
    op.drop_index("ix_card_feedback_card_uuid", table_name="card_feedback")
    op.drop_table("card_feedback")
    op.drop_index("ix_issued_card_invocation_id", table_name="issued_card")
    op.drop_table("issued_card")
    op.drop_index("ix_invocation_patient_ref_occurred_at", table_name="invocation")
    op.drop_index("ix_invocation_occurred_at", table_name="invocation")
    op.drop_table("invocation")
