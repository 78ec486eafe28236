"""The API's bearer tokens (``vpp token create``), stored hashed.

A token is ``vpp_<id>_<secret>``; the store keeps its id, the SHA-256 of the
whole token (never the token), its role (``operator`` or ``owner``) and, for
an owner, the park it may see and change. Adds the table if missing, changes nothing else.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Like 0001, only if missing: a store written before Alembic by a vpp whose models
    # already had the table (create_all) keeps it.
    if sa.inspect(op.get_bind()).has_table("api_tokens"):
        return
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("token_sha256", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("park_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
