"""Model release policy per market and prediction quotas.

Adds to ``markets`` the ``release_policy`` (existing markets: ``query_only``, the new
default: their models are no longer downloadable) and the prediction quota
``predict_quota`` rows per ``predict_window_seconds`` (existing markets: the built-in
defaults, 10,000 rows per hour); to ``models`` the release check recorded when a model
is stored (``releasable``, ``release_check``; NULL for existing models, which are then
never released under ``aggregate_only``); and the append-only ``prediction_queries``
table (one row per predict call: how many rows). See
:mod:`coopml.service.domain.release`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "prediction_queries"


def upgrade() -> None:
    """Upgrade schema."""
    # Plain ADD COLUMN (no batch mode): SQLite supports it, and recreating a table
    # would drop the triggers installed on it.
    op.add_column(
        "markets",
        sa.Column(
            "release_policy", sa.String(length=16), nullable=False, server_default="query_only"
        ),
    )
    op.add_column(
        "markets",
        sa.Column("predict_quota", sa.Integer(), nullable=False, server_default="10000"),
    )
    op.add_column(
        "markets",
        sa.Column("predict_window_seconds", sa.Integer(), nullable=False, server_default="3600"),
    )
    op.add_column("models", sa.Column("releasable", sa.Boolean(), nullable=True))
    op.add_column("models", sa.Column("release_check", sa.JSON(), nullable=True))
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_prediction_queries_model_id_models")
        ),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_prediction_queries_party_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_queries")),
    )
    op.create_index(op.f("ix_prediction_queries_model_id"), TABLE, ["model_id"], unique=False)
    op.create_index(op.f("ix_prediction_queries_audit_id"), TABLE, ["audit_id"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # coopml_append_only() comes from 0001
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION coopml_append_only()"
        )
    elif bind.dialect.name == "sqlite":
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{what.lower()} BEFORE {what} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END"
            )


def downgrade() -> None:
    """Downgrade schema."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}")
    elif bind.dialect.name == "sqlite":
        for what in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_{what}")
    op.drop_index(op.f("ix_prediction_queries_audit_id"), table_name=TABLE)
    op.drop_index(op.f("ix_prediction_queries_model_id"), table_name=TABLE)
    op.drop_table(TABLE)
    op.drop_column("models", "release_check")
    op.drop_column("models", "releasable")
    op.drop_column("markets", "predict_window_seconds")
    op.drop_column("markets", "predict_quota")
    op.drop_column("markets", "release_policy")
