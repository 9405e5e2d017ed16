"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 02:11:36.597481
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('areas',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('trigger', sa.JSON(), nullable=False),
    sa.Column('condition', sa.Text(), nullable=True),
    sa.Column('reactions', sa.JSON(), nullable=False),
    sa.Column('catch_up', sa.String(length=8), nullable=False),
    sa.Column('interval', sa.Float(), nullable=True),
    sa.Column('webhook_hash', sa.String(length=64), nullable=True),
    sa.Column('paused_reason', sa.Text(), nullable=True),
    sa.Column('failure_streak', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_areas')),
    sa.UniqueConstraint('webhook_hash', name=op.f('uq_areas_webhook_hash'))
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('area_id', sa.String(length=36), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('dedup_key', sa.String(length=300), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_events_area_id_areas'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('area_id', 'dedup_key', name='uq_events_area_dedup')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_status', ['status'], unique=False)

    op.create_table('seen_keys',
    sa.Column('area_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=500), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_seen_keys_area_id_areas'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('area_id', 'key', name=op.f('pk_seen_keys'))
    )
    op.create_table('trigger_state',
    sa.Column('area_id', sa.String(length=36), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('primed', sa.Boolean(), nullable=False),
    sa.Column('last_check_at', sa.DateTime(), nullable=True),
    sa.Column('last_fired_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_trigger_state_area_id_areas'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('area_id', name=op.f('pk_trigger_state'))
    )
    op.create_table('runs',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('area_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('resumed', sa.Boolean(), nullable=False),
    sa.Column('trigger_payload', sa.JSON(), nullable=True),
    sa.Column('condition', sa.JSON(), nullable=True),
    sa.Column('steps', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_runs_area_id_areas'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_runs_event_id_events'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_area_started', ['area_id', 'started_at'], unique=False)
        batch_op.create_index('ix_runs_event', ['event_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_event')
        batch_op.drop_index('ix_runs_area_started')

    op.drop_table('runs')
    op.drop_table('trigger_state')
    op.drop_table('seen_keys')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_status')

    op.drop_table('events')
    op.drop_table('areas')

