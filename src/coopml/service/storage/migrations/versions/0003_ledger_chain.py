"""Hash chain over the ledger and the audit log.

Adds ``chain_seq`` (unique), ``prev_hash`` and ``entry_hash`` to ``ledger_entries`` and
``audit_log`` and the ``chain_heads`` table, and backfills the chains over the existing
entries in the order they were written (ledger: time, round, position; audit log: time,
id). The append-only triggers are dropped for the backfill and reinstalled.
See :mod:`coopml.service.domain.ledger`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 20:00:00

"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from coopml.service.domain.ledger import GENESIS, entry_hash

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("ledger_entries", "audit_log")

#: The fields hashed by format 1 of the chain, frozen here (the domain module's list may
#: grow with later migrations; these are the columns that exist at this revision).
FIELDS = {
    "ledger_entries": ("id", "seq", "round_id", "party_id", "kind", "amount", "created_at"),
    "audit_log": (
        "id",
        "at",
        "actor",
        "action",
        "item_type",
        "item_id",
        "request_id",
        "market_id",
        "party_id",
    ),
}
TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "seq": sa.Integer(),
    "amount": sa.Float(),
    "created_at": sa.DateTime(timezone=True),
    "at": sa.DateTime(timezone=True),
}
ORDER = {
    "ledger_entries": ("created_at", "round_id", "seq", "id"),
    "audit_log": ("at", "id"),
}


def _drop_triggers() -> None:
    bind = op.get_bind()
    for table in APPEND_ONLY:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for what in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{what}")


def _create_triggers() -> None:
    # the same triggers as revision 0001 (SQLite loses them when a batch operation
    # rebuilds the table)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION coopml_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION coopml_append_only()"
            )
    else:
        for table in APPEND_ONLY:
            for what in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{what.lower()} BEFORE {what} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def _backfill(table: str) -> tuple[int, str]:
    names = FIELDS[table]
    t = sa.table(
        table,
        *(sa.column(n, TYPES.get(n, sa.String())) for n in names),
        sa.column("chain_seq", sa.Integer()),
        sa.column("prev_hash", sa.String()),
        sa.column("entry_hash", sa.String()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(*(t.c[n] for n in names)).order_by(*(t.c[n] for n in ORDER[table]))
    ).all()
    seq, prev = 0, GENESIS
    for row in rows:
        seq += 1
        values = dict(zip(names, row, strict=True))
        digest = entry_hash(table, seq, prev, values, fields=names)
        bind.execute(
            t.update()
            .where(t.c.id == values["id"])
            .values(chain_seq=seq, prev_hash=prev, entry_hash=digest)
        )
        prev = digest
    return seq, prev


def upgrade() -> None:
    """Upgrade schema."""
    _drop_triggers()
    heads = op.create_table(
        "chain_heads",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_chain_heads")),
    )
    for table in APPEND_ONLY:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("chain_seq", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
            batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))
    rows = []
    for table in APPEND_ONLY:
        seq, head = _backfill(table)
        rows.append({"name": table, "seq": seq, "entry_hash": head})
    op.bulk_insert(heads, rows)
    for table in APPEND_ONLY:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, length in (("chain_seq", None), ("prev_hash", 64), ("entry_hash", 64)):
                batch_op.alter_column(
                    column,
                    existing_type=sa.Integer() if length is None else sa.String(length=length),
                    nullable=False,
                )
            batch_op.create_unique_constraint(batch_op.f(f"uq_{table}_chain_seq"), ["chain_seq"])
    _create_triggers()


def downgrade() -> None:
    """Downgrade schema."""
    _drop_triggers()
    for table in APPEND_ONLY:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"uq_{table}_chain_seq"), type_="unique")
            batch_op.drop_column("entry_hash")
            batch_op.drop_column("prev_hash")
            batch_op.drop_column("chain_seq")
    op.drop_table("chain_heads")
    _create_triggers()
