"""Agents' check-ins of parties-custody markets, in the database.

``agent_checkins`` holds, per market and party, when the party's ``coopml agent`` last
checked in (``POST /markets/{id}/agent``), so that every process of a deployment (the
API, the dashboard, a ``coopml worker`` elsewhere) sees which agents are connected;
before this revision the serving process kept them in memory. The table starts empty:
running agents appear at their next check-in (every 20 s).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "agent_checkins",
        sa.Column("market_id", sa.String(length=32), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["market_id"],
            ["markets.id"],
            name=op.f("fk_agent_checkins_market_id_markets"),
        ),
        sa.PrimaryKeyConstraint("market_id", "party", name=op.f("pk_agent_checkins")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("agent_checkins")
