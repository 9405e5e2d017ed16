"""the run ledger as a table, for engines sharing a PostgreSQL database

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 11:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_ledger',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('segment', sa.String(length=40), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_ledger'))
    )
    op.create_index('ix_run_ledger_segment', 'run_ledger', ['segment'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_run_ledger_segment', table_name='run_ledger')
    op.drop_table('run_ledger')
