r"""The append-only settlement ledger.

A settled round writes, per party :math:`i`, three entries: ``fee_collected``
(:math:`A_i`), ``fee_returned`` (:math:`A_i - k_i`, the part of the fee not spent on
improvement, with :math:`k_i` the party's charge: :math:`c\,a_i`, or 0 when the
settlement refunded it, see :mod:`coopml.market.settlement`) and ``payout``
(:math:`b_i`). The market keeps nothing:

.. math:: \sum_i A_i - \sum_i (A_i - k_i) - \sum_i b_i = \sum_i k_i - \sum_i b_i = 0.

The entries are appended to the ledger's hash chain by
:func:`coopml.service.domain.ledger.append_ledger_entries` (:func:`write_ledger`); their
sums are :func:`coopml.service.domain.ledger.ledger_totals`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from coopml.market.settlement import Settlement
from coopml.service.domain.ledger import append_ledger_entries
from coopml.service.storage.models import LedgerEntry

__all__ = ["ledger_rows", "write_ledger"]


def ledger_rows(
    settlement: Settlement, party_ids: Mapping[str, str]
) -> list[tuple[str, str, float]]:
    """``(party_id, kind, amount)`` entries of a settlement, in party order."""
    rows = []
    for line in settlement.parties:
        pid = party_ids[line.name]
        rows.append((pid, "fee_collected", line.fee))
        rows.append((pid, "fee_returned", line.fee - line.charge))
        rows.append((pid, "payout", line.payout))
    return rows


def write_ledger(
    s: Session, round_id: str, settlement: Settlement, party_ids: Mapping[str, str]
) -> list[LedgerEntry]:
    """Append a settled round's entries (:func:`ledger_rows`) to the ledger's hash chain,
    in ``s``'s transaction."""
    return append_ledger_entries(s, round_id, ledger_rows(settlement, party_ids))
