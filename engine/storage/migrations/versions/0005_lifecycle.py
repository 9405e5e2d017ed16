"""an area's lifecycle: its state, a snooze, its active window, the record of its transitions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 08:20:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('areas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=16), nullable=False,
                                      server_default='active'))
        batch_op.add_column(sa.Column('snoozed_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('catch_up_after_snooze', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('window', sa.JSON(), nullable=True))
    # existing areas keep what they were: off, paused after failures, or active
    op.execute("UPDATE areas SET state = CASE WHEN NOT enabled THEN 'off' "
               "WHEN paused_reason IS NOT NULL THEN 'paused' ELSE 'active' END")
    op.create_table('area_transitions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('area_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('cause', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'],
                            name=op.f('fk_area_transitions_area_id_areas'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_area_transitions'))
    )
    with op.batch_alter_table('area_transitions', schema=None) as batch_op:
        batch_op.create_index('ix_area_transitions_area', ['area_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('area_transitions', schema=None) as batch_op:
        batch_op.drop_index('ix_area_transitions_area')
    op.drop_table('area_transitions')
    with op.batch_alter_table('areas', schema=None) as batch_op:
        batch_op.drop_column('window')
        batch_op.drop_column('catch_up_after_snooze')
        batch_op.drop_column('snoozed_until')
        batch_op.drop_column('state')
