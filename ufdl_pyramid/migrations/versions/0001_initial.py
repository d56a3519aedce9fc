"""users, nodes, licences, domains, job types

Revision ID: 0001
Revises: 
Create Date: 2026-11-23

Also seeds the common licences and the UFDL data domains.
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import ufdl_pyramid.models.meta

LICENCES = [
    ("Apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0"),
    ("MIT", "https://opensource.org/licenses/MIT"),
    ("BSD-3-Clause", "https://opensource.org/licenses/BSD-3-Clause"),
    ("GPL-3.0", "https://www.gnu.org/licenses/gpl-3.0.html"),
    ("LGPL-3.0", "https://www.gnu.org/licenses/lgpl-3.0.html"),
    ("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/"),
    ("CC-BY-SA-4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    ("Proprietary", ""),
]
DOMAINS = [
    ("ic", "Image Classification"),
    ("od", "Object Detection"),
    ("is", "Image Segmentation"),
    ("sp", "Speech"),
    ("tc", "Text Classification"),
]


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_types',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('pkg', sa.String(length=200), nullable=False),
    sa.Column('cls', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_types')),
    sa.UniqueConstraint('name', name=op.f('uq_job_types_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('date_joined', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('domains',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=2), nullable=False),
    sa.Column('description', sa.String(length=100), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('creation_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deletion_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_domains_creator_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domains')),
    sa.UniqueConstraint('name', name=op.f('uq_domains_name'))
    )
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_domains_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_domains_deletion_time'), ['deletion_time'], unique=False)

    op.create_table('licences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=200), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('creation_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deletion_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_licences_creator_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licences')),
    sa.UniqueConstraint('name', name=op.f('uq_licences_name'))
    )
    with op.batch_alter_table('licences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licences_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_licences_deletion_time'), ['deletion_time'], unique=False)

    op.create_table('nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('ip', sa.String(length=39), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('driver_version', sa.String(length=32), nullable=True),
    sa.Column('hardware_generation', sa.String(length=32), nullable=True),
    sa.Column('gpu_mem', sa.Integer(), nullable=True),
    sa.Column('cpu_mem', sa.Integer(), nullable=True),
    sa.Column('last_seen', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.Column('current_job_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_nodes_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nodes')),
    sa.UniqueConstraint('ip', 'index', name='uq_nodes_ip_index')
    )
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nodes_owner_id'), ['owner_id'], unique=False)

    op.create_table('refresh_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refresh_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_tokens_token_hash'))
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_tokens_user_id'), ['user_id'], unique=False)

    now = datetime.now(timezone.utc)
    licences = sa.table("licences", sa.column("name"), sa.column("url"),
                        sa.column("creation_time", ufdl_pyramid.models.meta.UTCDateTime))
    op.bulk_insert(licences, [{"name": name, "url": url, "creation_time": now} for name, url in LICENCES])
    domains = sa.table("domains", sa.column("name"), sa.column("description"),
                       sa.column("creation_time", ufdl_pyramid.models.meta.UTCDateTime))
    op.bulk_insert(domains, [{"name": name, "description": text, "creation_time": now} for name, text in DOMAINS])


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_user_id'))

    op.drop_table('refresh_tokens')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nodes_owner_id'))

    op.drop_table('nodes')
    with op.batch_alter_table('licences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licences_deletion_time'))
        batch_op.drop_index(batch_op.f('ix_licences_creator_id'))

    op.drop_table('licences')
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_domains_deletion_time'))
        batch_op.drop_index(batch_op.f('ix_domains_creator_id'))

    op.drop_table('domains')
    op.drop_table('users')
    op.drop_table('job_types')
