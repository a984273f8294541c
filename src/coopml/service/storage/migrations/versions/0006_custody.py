"""Custody of the parties' rows per market.

``markets`` gains ``custody``: ``operator`` (the parties upload their datasets, stored
encrypted; existing markets and the default) or ``parties`` (no row leaves its owner:
the parties' agents answer the round's requests, :mod:`coopml.custody`; uploads are
refused).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Plain ADD COLUMN with a server default: existing markets become "operator".
    op.add_column(
        "markets",
        sa.Column("custody", sa.String(length=16), nullable=False, server_default="operator"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("markets", schema=None) as batch_op:
        batch_op.drop_column("custody")
