"""One vocabulary for a party's three figures.

The settlement lines' ``value_before``, ``value_after`` and ``net`` become ``own_gain``,
``model_gain`` and ``net_gain``: the names of the library's
:class:`coopml.market.settlement.PartyLine` (and of the paper). The values are not
touched; the downgrade renames them back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:00:00

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (old name, new name) of the renamed ``settlement_lines`` columns.
RENAMES: tuple[tuple[str, str], ...] = (
    ("value_before", "own_gain"),
    ("value_after", "model_gain"),
    ("net", "net_gain"),
)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        for old, new in RENAMES:
            batch_op.alter_column(old, new_column_name=new)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        for old, new in RENAMES:
            batch_op.alter_column(new, new_column_name=old)
