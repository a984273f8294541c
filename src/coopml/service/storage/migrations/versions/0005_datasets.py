"""Market schema, dataset deletion and per-party quotas.

``markets`` gains ``data_schema`` (JSON: target, label type, classes, typed feature
columns; NULL until the operator declares it or the first upload fixes it; markets
created before this revision get it from their first dataset at their next upload, see
:mod:`coopml.service.domain.datasets`) and the per-party quotas ``max_datasets_per_party``
and ``max_bytes_per_party`` (NULL: the service's defaults). ``rounds`` gains ``failure``
(JSON: the party whose dataset made the round fail, the dataset and the message only
that party is shown). Datasets can now be deleted: no schema change is needed for that.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("markets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_schema", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("max_datasets_per_party", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_bytes_per_party", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_column("failure")
    with op.batch_alter_table("markets", schema=None) as batch_op:
        batch_op.drop_column("max_bytes_per_party")
        batch_op.drop_column("max_datasets_per_party")
        batch_op.drop_column("data_schema")
