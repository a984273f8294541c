"""Market schema, dataset deletion and per-party quotas.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 20:00:00

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema (nothing yet)."""


def downgrade() -> None:
    """Downgrade schema (nothing yet)."""
