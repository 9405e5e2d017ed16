"""the remote control channel's paired clients and pending pairing codes (hashes only)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 10:50:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('remote_clients',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remote_clients')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_remote_clients_token_hash'))
    )
    op.create_table('pairing_codes',
    sa.Column('code_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('code_key', name=op.f('pk_pairing_codes'))
    )


def downgrade() -> None:
    op.drop_table('pairing_codes')
    op.drop_table('remote_clients')
