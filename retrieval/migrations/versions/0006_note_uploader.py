"""the account that uploaded each note, which alone (with admins, and HR for shared notes) may replace it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uploaded_by', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_notes_uploaded_by'), ['uploaded_by'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notes_uploaded_by'))
        batch_op.drop_column('uploaded_by')
