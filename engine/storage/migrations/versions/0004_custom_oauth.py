"""custom OAuth 2 providers the user declares

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 07:40:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('custom_oauth_providers',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('authorize_url', sa.Text(), nullable=False),
    sa.Column('token_url', sa.Text(), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('userinfo_url', sa.Text(), nullable=True),
    sa.Column('name_fields', sa.JSON(), nullable=False),
    sa.Column('revoke_url', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_custom_oauth_providers'))
    )


def downgrade() -> None:
    op.drop_table('custom_oauth_providers')
