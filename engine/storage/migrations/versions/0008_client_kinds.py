"""a paired client's kind: a window (the app, `hookline remote`) or a standby engine

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 14:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # clients and codes from before were all for windows
    with op.batch_alter_table('remote_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False,
                                      server_default='window'))
    with op.batch_alter_table('pairing_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False,
                                      server_default='window'))


def downgrade() -> None:
    with op.batch_alter_table('pairing_codes', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('remote_clients', schema=None) as batch_op:
        batch_op.drop_column('kind')
