"""uploads queued for the workers when a broker is configured

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'uploads',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('submitted_by', sa.String(length=200), nullable=False),
        sa.Column('submitter', sa.JSON(), nullable=False),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('filename', sa.String(length=300), nullable=True),
        sa.Column('note_metadata', sa.JSON(), nullable=True),
        sa.Column('payload', sa.LargeBinary(), nullable=True),
        sa.Column('note_id', sa.String(length=40), nullable=True),
        sa.Column('result', sa.String(length=20), nullable=True),
        sa.Column('chunks', sa.Integer(), nullable=True),
        sa.Column('error_code', sa.String(length=50), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['note_id'], ['notes.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uploads_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_uploads_note_id'), ['note_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_uploads_submitted_by'), ['submitted_by'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_submitted_by'))
        batch_op.drop_index(batch_op.f('ix_uploads_note_id'))
        batch_op.drop_index(batch_op.f('ix_uploads_status'))
    op.drop_table('uploads')
