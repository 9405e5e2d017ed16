"""where each engine with the remote channel open can be reached

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 17:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'engine_sites',
        sa.Column('installation', sa.String(length=64), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('addresses', sa.Text(), nullable=False),
        sa.Column('port', sa.Integer(), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('installation', name=op.f('pk_engine_sites')),
    )


def downgrade() -> None:
    op.drop_table('engine_sites')
