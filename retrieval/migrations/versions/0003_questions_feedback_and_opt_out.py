"""questions, answer feedback and the opt-out from suggestions

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opted_out', sa.Boolean(), server_default=sa.false(), nullable=False))

    op.create_table('questions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('asker', sa.String(length=200), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=10), nullable=False),
    sa.Column('engine', sa.String(length=100), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_questions_asked_at'), ['asked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_questions_asker'), ['asker'], unique=False)
        batch_op.create_index(batch_op.f('ix_questions_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_questions_answered'), ['answered'], unique=False)

    op.create_table('answer_feedback',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('question_id', sa.String(length=40), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('answer_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_answer_feedback_question_id'), ['question_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('answer_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_answer_feedback_question_id'))
    op.drop_table('answer_feedback')
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_questions_answered'))
        batch_op.drop_index(batch_op.f('ix_questions_person_id'))
        batch_op.drop_index(batch_op.f('ix_questions_asker'))
        batch_op.drop_index(batch_op.f('ix_questions_asked_at'))
    op.drop_table('questions')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('opted_out')
