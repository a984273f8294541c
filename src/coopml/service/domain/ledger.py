r"""Hash chains over the append-only ledger and the audit log.

Each table is **one chain** (one for ``ledger_entries``, one for ``audit_log``; not one
per market: a single sequence is simpler to anchor and to verify, and ledger entries are
written only when a round settles, so one lock per table costs little). Entry :math:`n`
(``chain_seq`` :math:`= n`, counting from 1) stores ``prev_hash`` :math:`= h_{n-1}`
(:math:`h_0` is 64 zeros) and

.. math:: h_n = \mathrm{SHA256}\bigl(\mathrm{canon}(\text{table}, n, h_{n-1},
          \text{the entry's fields})\bigr),

where ``canon`` is the canonical JSON of :func:`canonical_entry` (sorted keys, no
spaces, UTF-8; times as UTC ISO-8601 with microseconds; amounts as shortest round-trip
floats). The fields are every column of the entry except the three chain columns
(:data:`CHAINED_FIELDS`). A row ``chain_heads(name, seq, entry_hash)`` per table holds
the newest entry's number and hash.

Appending (:func:`append_ledger_entries`, :func:`append_audit_entry`) first updates the
table's head row, which takes its lock before the head is read: a row lock on
PostgreSQL, the database's write lock on SQLite (the transaction is upgraded to a
writer before it reads, so it always reads the newest head). The lock is held until the
transaction commits, so concurrent writers (server threads, worker processes) queue and
cannot fork the chain; ``chain_seq`` is unique as a second line of defence. Lock order:
the ledger's head before the audit log's.

:func:`verify_chains` recomputes every hash and names the first broken entry: an edited
field (its hash no longer matches), a deleted entry (a gap in the numbers, or the head
pointing past the last entry), an inserted or reordered entry (a ``prev_hash`` that is
not its predecessor's hash, a number used twice). **Limit:** SHA-256 has no key, so
someone who can write to the database can rewrite an entry *and recompute every later
hash and the head*; the chain alone cannot see that. Against that, record the head
(:func:`chain_heads`, ``coopml ledger head``) outside the database and verify against
it later (``coopml ledger verify --expect-head``): an entry at or before a recorded head
cannot be changed, removed or reordered without detection.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from coopml.service.domain._query import paginate
from coopml.service.storage.models import (
    AuditEntry,
    ChainHead,
    LedgerEntry,
    PredictionQuery,
    new_id,
    utc,
    utcnow,
)

if TYPE_CHECKING:  # the parties module records audit entries through this one
    from coopml.service.domain.parties import Principal

__all__ = [
    "CHAINED_FIELDS",
    "CHAINS",
    "GENESIS",
    "LEDGER_KINDS",
    "Anchor",
    "ChainBreak",
    "ChainError",
    "ChainReport",
    "VerifyResult",
    "append_audit_entry",
    "append_ledger_entries",
    "audit_log",
    "canonical_entry",
    "chain_heads",
    "entry_hash",
    "ledger_totals",
    "parse_anchors",
    "verify_chains",
]

#: The kinds of ledger entries a settled round writes per party.
LEDGER_KINDS = ("fee_collected", "fee_returned", "payout")

#: ``prev_hash`` of the first entry of a chain.
GENESIS = "0" * 64

#: The chained tables, in lock order.
CHAINS = ("ledger_entries", "audit_log")

#: The fields each entry's hash covers (format 1): every column but the chain's own.
CHAINED_FIELDS: dict[str, tuple[str, ...]] = {
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

_MODELS: dict[str, type[LedgerEntry] | type[AuditEntry]] = {
    "ledger_entries": LedgerEntry,
    "audit_log": AuditEntry,
}
_HASH = re.compile(r"^[0-9a-f]{64}$")


class ChainError(RuntimeError):
    """An entry cannot be appended (the chain's head row is missing)."""


# ----------------------------------------------------------------------------- hashing
def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:  # SQLite returns naive datetimes; they are UTC
            value = value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, float):
        return value + 0.0  # -0.0 -> 0.0 (SQLite stores integral REALs as integers)
    if value is None or isinstance(value, (str, int)):
        return value
    raise TypeError(f"cannot hash a {type(value).__name__} field value: {value!r}")


def canonical_entry(
    table: str,
    chain_seq: int,
    prev_hash: str,
    values: Mapping[str, Any],
    fields: Sequence[str] | None = None,
) -> bytes:
    """The bytes an entry's hash is computed over.

    Examples
    --------
    >>> canonical_entry("audit_log", 1, GENESIS, {"actor": "operator"}, fields=["actor"])[:58]
    b'{"chain_seq":1,"entry":{"actor":"operator"},"prev_hash":"0'
    """
    names = CHAINED_FIELDS[table] if fields is None else fields
    entry = {}
    for name in names:
        value = values[name]
        if name == "amount" and value is not None:
            value = float(value)
        entry[name] = _canonical_value(value)
    doc = {
        "v": 1,
        "table": table,
        "chain_seq": int(chain_seq),
        "prev_hash": prev_hash,
        "entry": entry,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(
    table: str,
    chain_seq: int,
    prev_hash: str,
    values: Mapping[str, Any],
    fields: Sequence[str] | None = None,
) -> str:
    """SHA-256 (hex) of :func:`canonical_entry`."""
    return hashlib.sha256(canonical_entry(table, chain_seq, prev_hash, values, fields)).hexdigest()


# ----------------------------------------------------------------------------- appending
def _lock_head(s: Session, table: str) -> tuple[int, str]:
    # A no-op UPDATE of the head row *before* reading it takes the lock: PostgreSQL's row
    # lock (a concurrent appender waits here, then reads the head the other committed),
    # SQLite's write lock (pysqlite begins the transaction at this statement, so the
    # read below cannot come from an older snapshot). Held until commit.
    locked = s.execute(
        update(ChainHead)
        .where(ChainHead.name == table)
        .values(seq=ChainHead.seq)
        .execution_options(synchronize_session=False)
    )
    if locked.rowcount != 1:  # type: ignore[attr-defined]
        raise ChainError(
            f"{table}: the hash chain's head row is missing (database not migrated, or "
            "tampered with: run `coopml ledger verify`)"
        )
    row = s.execute(
        select(ChainHead.seq, ChainHead.entry_hash).where(ChainHead.name == table)
    ).one()
    return int(row[0]), str(row[1])


def _set_head(s: Session, table: str, seq: int, digest: str) -> None:
    s.execute(
        update(ChainHead)
        .where(ChainHead.name == table)
        .values(seq=seq, entry_hash=digest)
        .execution_options(synchronize_session=False)
    )


def _chain(s: Session, table: str, entries: Sequence[LedgerEntry] | Sequence[AuditEntry]) -> None:
    if not entries:
        return
    seq, prev = _lock_head(s, table)
    for entry in entries:
        seq += 1
        values = {name: getattr(entry, name) for name in CHAINED_FIELDS[table]}
        digest = entry_hash(table, seq, prev, values)
        entry.chain_seq, entry.prev_hash, entry.entry_hash = seq, prev, digest
        s.add(entry)
        prev = digest
    _set_head(s, table, seq, prev)


def append_ledger_entries(
    s: Session, round_id: str, rows: Iterable[tuple[str, str, float]]
) -> list[LedgerEntry]:
    """Append a round's ``(party_id, kind, amount)`` entries to the ledger's chain (in
    the caller's transaction; the chain stays locked until it commits)."""
    now = utcnow()
    entries = [
        LedgerEntry(
            id=new_id(),
            seq=i,
            round_id=round_id,
            party_id=party_id,
            kind=kind,
            amount=float(amount),
            created_at=now,
        )
        for i, (party_id, kind, amount) in enumerate(rows)
    ]
    _chain(s, "ledger_entries", entries)
    return entries


def append_audit_entry(
    s: Session,
    *,
    actor: str,
    action: str,
    item_type: str,
    item_id: str,
    request_id: str = "",
    market_id: str | None = None,
    party_id: str | None = None,
) -> AuditEntry:
    """Append one entry to the audit log's chain (in the caller's transaction)."""
    entry = AuditEntry(
        id=new_id(),
        at=utcnow(),
        actor=actor,
        action=action,
        item_type=item_type,
        item_id=item_id,
        request_id=request_id,
        market_id=market_id,
        party_id=party_id,
    )
    _chain(s, "audit_log", [entry])
    return entry


# ----------------------------------------------------------------------------- anchors
@dataclass(frozen=True)
class Anchor:
    """A recorded head: ``table:seq:hash`` (as ``coopml ledger head`` prints it), or a
    bare hash (``table`` and ``seq`` None) that must be some entry's hash."""

    table: str | None
    seq: int | None
    entry_hash: str

    def __str__(self) -> str:
        if self.table is None:
            return self.entry_hash
        return f"{self.table}:{self.seq}:{self.entry_hash}"


def parse_anchors(texts: Iterable[str]) -> list[Anchor]:
    """Anchors from ``table:seq:hash`` or bare-hash words (whitespace or comma separated).

    Examples
    --------
    >>> anchor = f"audit_log:3:{'ab' * 32}"
    >>> [(a.table, a.seq) for a in parse_anchors([anchor + " " + "cd" * 32])]
    [('audit_log', 3), (None, None)]
    """
    anchors = []
    for text in texts:
        for word in re.split(r"[\s,]+", text.strip()):
            if not word:
                continue
            parts = word.split(":")
            if len(parts) == 1 and _HASH.match(parts[0].lower()):
                anchors.append(Anchor(None, None, parts[0].lower()))
                continue
            if (
                len(parts) == 3
                and parts[0] in CHAINS
                and parts[1].isdigit()
                and _HASH.match(parts[2].lower())
            ):
                anchors.append(Anchor(parts[0], int(parts[1]), parts[2].lower()))
                continue
            raise ValueError(
                f"not a chain head: {word!r}; expected TABLE:SEQ:HASH (TABLE one of "
                f"{', '.join(CHAINS)}; HASH 64 hex digits), as `coopml ledger head` prints, "
                "or a bare HASH"
            )
    return anchors


def chain_heads(s: Session) -> list[Anchor]:
    """The current head of each chain (``seq`` 0 and :data:`GENESIS` when empty)."""
    rows = dict(
        (str(name), (int(seq), str(h)))
        for name, seq, h in s.execute(select(ChainHead.name, ChainHead.seq, ChainHead.entry_hash))
    )
    heads = []
    for table in CHAINS:
        if table not in rows:
            raise ChainError(f"{table}: the hash chain's head row is missing")
        seq, h = rows[table]
        heads.append(Anchor(table, seq, h))
    return heads


# ----------------------------------------------------------------------------- verifying
@dataclass(frozen=True)
class ChainBreak:
    """One place where a chain does not verify."""

    table: str
    chain_seq: int | None
    entry_id: str | None
    problem: str

    def __str__(self) -> str:
        where = f"entry #{self.chain_seq}" if self.chain_seq is not None else "chain"
        ident = f" (id {self.entry_id})" if self.entry_id else ""
        return f"{self.table} {where}{ident}: {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    """The verification of one table's chain."""

    table: str
    n_entries: int
    head_seq: int
    head_hash: str
    breaks: tuple[ChainBreak, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.breaks


@dataclass(frozen=True)
class VerifyResult:
    """Every chain's report, plus the anchors that did not match."""

    reports: tuple[ChainReport, ...]
    anchor_breaks: tuple[ChainBreak, ...] = ()
    anchors_checked: int = 0
    breaks: tuple[ChainBreak, ...] = field(init=False)

    def __post_init__(self) -> None:
        merged = tuple(b for r in self.reports for b in r.breaks) + self.anchor_breaks
        object.__setattr__(self, "breaks", merged)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def n_entries(self) -> int:
        return sum(r.n_entries for r in self.reports)


def _head_row(s: Session, table: str) -> tuple[int, str] | None:
    row = s.execute(
        select(ChainHead.seq, ChainHead.entry_hash).where(ChainHead.name == table)
    ).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))


def _scan(
    s: Session,
    table: str,
    head: tuple[int, str] | None,
    wanted: set[int],
    bare: set[str],
    *,
    moving: bool = False,
) -> tuple[ChainReport, dict[int, str], set[str]]:
    # ``moving``: writers appended while we read; entries past ``head`` are then fine as
    # long as the entry at ``head`` still has the head's hash (they link to it).
    model = _MODELS[table]
    t = model.__table__
    names = CHAINED_FIELDS[table]
    query = (
        select(t.c.chain_seq, t.c.prev_hash, t.c.entry_hash, *(t.c[n] for n in names))
        .order_by(t.c.chain_seq, t.c.id)
        .execution_options(yield_per=2000)
    )
    breaks: list[ChainBreak] = []
    found: dict[int, str] = {}
    seen_bare: set[str] = set()
    expected, prev, n = 1, GENESIS, 0
    last_seq, last_hash = 0, GENESIS
    for row in s.execute(query):
        n += 1
        seq, stored_prev, stored = row[0], row[1], row[2]
        values = dict(zip(names, row[3:], strict=True))
        ident = str(values["id"])
        if seq is None:
            breaks.append(ChainBreak(table, None, ident, "has no sequence number (inserted?)"))
            continue
        seq = int(seq)
        linked = True
        if seq < expected:
            breaks.append(
                ChainBreak(
                    table,
                    seq,
                    ident,
                    f"sequence number #{seq} is used twice (an inserted entry or a forked chain)",
                )
            )
            linked = False
        elif seq > expected:
            missing = f"#{expected}" if seq == expected + 1 else f"#{expected}..#{seq - 1}"
            breaks.append(
                ChainBreak(
                    table,
                    expected,
                    None,
                    f"entry {missing} is missing: the chain jumps from #{expected - 1} to "
                    f"#{seq} (deleted entries?)",
                )
            )
            linked = False
        if linked and stored_prev != prev:
            breaks.append(
                ChainBreak(
                    table,
                    seq,
                    ident,
                    f"prev_hash {str(stored_prev)[:12]}... is not the hash of entry "
                    f"#{seq - 1} ({prev[:12]}...): an entry was inserted, deleted or "
                    "reordered here",
                )
            )
        recomputed = entry_hash(table, seq, str(stored_prev), values)
        if recomputed != stored:
            breaks.append(
                ChainBreak(
                    table,
                    seq,
                    ident,
                    "its fields do not match its hash: edited after it was written "
                    f"(or moved from another position; stored {str(stored)[:12]}..., "
                    f"recomputed {recomputed[:12]}...)",
                )
            )
        if seq in wanted or (head is not None and seq == head[0]):
            found[seq] = str(stored)
        if stored in bare:
            seen_bare.add(str(stored))
        prev = str(stored)
        expected = seq + 1
        last_seq, last_hash = seq, str(stored)
    if head is None:
        breaks.append(ChainBreak(table, None, None, "the chain's head row is missing"))
        head = (last_seq, last_hash)
    else:
        head_seq, head_hash = head
        if head_seq > last_seq:
            breaks.append(
                ChainBreak(
                    table,
                    last_seq + 1,
                    None,
                    f"the head says the chain ends at #{head_seq} but the last entry is "
                    f"#{last_seq}: entries #{last_seq + 1}..#{head_seq} were deleted",
                )
            )
        elif head_seq < last_seq and moving and found.get(head_seq, GENESIS) == head_hash:
            pass
        elif head_seq < last_seq:
            breaks.append(
                ChainBreak(
                    table,
                    head_seq + 1,
                    None,
                    f"entries #{head_seq + 1}..#{last_seq} come after the recorded head "
                    f"#{head_seq} (inserted outside the service?)",
                )
            )
        elif head_hash != last_hash:
            breaks.append(
                ChainBreak(
                    table,
                    last_seq,
                    None,
                    f"the head's hash {head_hash[:12]}... is not the last entry's "
                    f"{last_hash[:12]}...",
                )
            )
    report = ChainReport(table, n, head[0], head[1], tuple(breaks))
    return report, found, seen_bare


def verify_chains(s: Session, anchors: Iterable[Anchor] = ()) -> VerifyResult:
    """Recompute both chains and check them against their heads and ``anchors``.

    Reads outside any snapshot are fine: the heads are read before and after the
    entries, and the scan is repeated (up to 5 times) while writers append.
    """
    anchors = list(anchors)
    bare = {a.entry_hash for a in anchors if a.table is None}
    reports: list[ChainReport] = []
    found: dict[str, dict[int, str]] = {}
    seen_bare: set[str] = set()
    for table in CHAINS:
        wanted = {a.seq for a in anchors if a.table == table and a.seq is not None}
        for attempt in range(5):
            before = _head_row(s, table)
            report, found[table], seen = _scan(s, table, before, wanted, bare, moving=attempt == 4)
            if _head_row(s, table) == before:
                break
        reports.append(report)
        seen_bare |= seen
    anchor_breaks = []
    for a in anchors:
        if a.table is None:
            if a.entry_hash not in seen_bare:
                anchor_breaks.append(
                    ChainBreak(
                        "anchor",
                        None,
                        None,
                        f"no entry has the recorded hash {a.entry_hash}: the chain was "
                        "rewritten (or the anchor is from another store)",
                    )
                )
            continue
        assert a.seq is not None
        actual = found[a.table].get(a.seq)
        if actual is None:
            anchor_breaks.append(
                ChainBreak(
                    a.table,
                    a.seq,
                    None,
                    f"the recorded head {a} names entry #{a.seq}, which is missing "
                    "(deleted, or the anchor is from another store)",
                )
            )
        elif actual != a.entry_hash:
            anchor_breaks.append(
                ChainBreak(
                    a.table,
                    a.seq,
                    None,
                    f"hash {actual[:12]}... differs from the recorded head {a}: the chain "
                    f"up to #{a.seq} was rewritten",
                )
            )
    return VerifyResult(tuple(reports), tuple(anchor_breaks), len(anchors))


# ----------------------------------------------------------------------------- reading
def ledger_totals(s: Session, round_id: str) -> dict[str, Any]:
    """A round's sums per kind, the residual Σ collected − Σ returned − Σ payouts, and
    whether it is zero (to 1e-9 relative to the money moved)."""
    sums = dict.fromkeys(LEDGER_KINDS, 0.0)
    scale = 0.0
    n = 0
    for row in s.execute(
        select(
            LedgerEntry.kind,
            func.sum(LedgerEntry.amount),
            func.sum(func.abs(LedgerEntry.amount)),
            func.count(),
        )
        .where(LedgerEntry.round_id == round_id)
        .group_by(LedgerEntry.kind)
    ).all():
        kind, total, absolute, count = str(row[0]), row[1], row[2], row[3]
        sums[kind] = float(total or 0.0)
        scale += float(absolute or 0.0)
        n += int(count)
    residual = sums["fee_collected"] - sums["fee_returned"] - sums["payout"]
    return {
        **sums,
        "residual": residual,
        "balanced": abs(residual) <= 1e-9 * max(1.0, scale),
        "n_entries": n,
    }


def audit_log(
    s: Session,
    principal: Principal,
    *,
    limit: int | None,
    offset: int = 0,
    item_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the audit log, newest first, and its length: every entry for the
    operator, the entries about a party's own items and actions for a party
    (``item_id``: only entries about that item). A prediction's entry carries its
    number of rows (``n_rows``)."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id)
    if not principal.is_operator:
        query = query.where(
            or_(AuditEntry.party_id == principal.party_id, AuditEntry.actor == principal.actor)
        )
    if item_id is not None:
        query = query.where(AuditEntry.item_id == item_id)
    rows, total = paginate(s, query, limit, offset)
    # rows sent to a predict endpoint, recorded with the call (quota accounting)
    queried = {
        audit_id: int(n)
        for audit_id, n in s.execute(
            select(PredictionQuery.audit_id, PredictionQuery.n_rows).where(
                PredictionQuery.audit_id.in_([e.id for e in rows])
            )
        ).all()
    }
    items = [
        {
            "id": e.id,
            "at": utc(e.at),
            "actor": e.actor,
            "action": e.action,
            "item_type": e.item_type,
            "item_id": e.item_id,
            "request_id": e.request_id,
            "n_rows": queried.get(e.id),
        }
        for e in rows
    ]
    return items, total
