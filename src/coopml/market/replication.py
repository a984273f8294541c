r"""Replication audit: does submitting copies of one's data under extra identities pay?

A market is *robust to replication* if a party that replicates its training data, each
replica joining as a new identity that pays its own fee, "does not earn more than it
would in the original market" (Ohrimenko, Tople & Tschiatschek 2019, §3.1). The paper
proves this for its rule under an idealised learner (duplicated rows do not change the
model, more data never hurts). :func:`replication_audit` *measures* it: for party
:math:`k` and :math:`r` replicas it re-runs the market and reports

.. math:: \Delta_r = \sum_{\text{k and its replicas}} \text{net gain} - \text{net gain of } k
          \text{ alone},

per payment rule, for exact copies and for copies with small feature noise (which
evade a learner that ignores duplicates). :math:`\Delta_r > 0` means replication paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from coopml._validation import check_choice, check_int, check_positive
from coopml.data import Party, replicate_party
from coopml.market.market import run_market
from coopml.market.payment import PAYMENT_RULES

__all__ = ["ReplicationAudit", "replication_audit"]


@dataclass(frozen=True)
class ReplicationAudit:
    """Gains from replication, one row per (rule, kind, replicas)."""

    party: str
    table: pd.DataFrame

    @property
    def profitable(self) -> pd.DataFrame:
        """The rows in which replication paid (gain above 1e-9)."""
        return self.table[self.table["gain"] > 1e-9]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"party": self.party, "rows": self.table.to_dict(orient="records")}


def replication_audit(
    parties: Sequence[Party],
    learner: Any,
    validation: tuple[Any, Any] | None = None,
    *,
    party: str,
    replicas: Sequence[int] = (1, 2, 3),
    kinds: Sequence[str] = ("exact", "noisy"),
    noise: float = 0.01,
    rules: Sequence[str] = PAYMENT_RULES,
    random_state: int = 0,
    **market_options: Any,
) -> ReplicationAudit:
    """Measure what party ``party`` gains by joining with ``r`` replicas of its data.

    Parameters
    ----------
    parties, learner, validation
        The market, as for :func:`~coopml.market.run_market`.
    party : str
        The party that replicates.
    replicas : sequence of int, default (1, 2, 3)
        Numbers of extra identities.
    kinds : {"exact", "noisy"}
        Exact copies, or copies with Gaussian feature noise of ``noise`` standard
        deviations per feature.
    rules : payment rules to audit (all by default).
    **market_options
        Passed to :func:`~coopml.market.run_market` (price, scorer, executor, ...).

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from coopml.data import load_dataset, make_parties, train_validation_split
    >>> ds = load_dataset("breast_cancer")
    >>> X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    >>> parties = make_parties(X, y, 3, random_state=0)
    >>> audit = replication_audit(parties, GaussianNB(), (X_val, y_val), party="party_0",
    ...                           replicas=[1], kinds=["exact"], rules=["ohrimenko", "loo"])
    >>> audit.table[["rule", "kind", "replicas"]].values.tolist()
    [['ohrimenko', 'exact', 1], ['loo', 'exact', 1]]
    """
    names = [p.name for p in parties]
    if party not in names:
        raise ValueError(f"parameter 'party' must name a party; got {party!r}, parties are {names}")
    counts = [check_int("replicas", r, minimum=1, maximum=8) for r in replicas]
    for kind in kinds:
        check_choice("kinds", kind, {"exact", "noisy"})
    for rule in rules:
        check_choice("rules", rule, PAYMENT_RULES)
    check_positive("noise", noise)
    options = {"duplicates": "report", **market_options}
    k = names.index(party)
    base = run_market(parties, learner, validation, random_state=random_state, **options)
    baseline = {rule: base._resettle(rule).parties[k].net_gain for rule in rules}
    rng = np.random.default_rng(random_state)
    rows = []
    for kind in kinds:
        for r in counts:
            copies = [
                replicate_party(
                    parties[k],
                    f"{party}~replica{c + 1}",
                    noise=noise if kind == "noisy" else 0.0,
                    random_state=rng,
                )
                for c in range(r)
            ]
            market = run_market(
                [*parties, *copies], learner, validation, random_state=random_state, **options
            )
            identities = [k, *range(len(parties), len(parties) + r)]
            for rule in rules:
                lines = market._resettle(rule).parties
                total = float(sum(lines[i].net_gain for i in identities))
                rows.append(
                    {
                        "rule": rule,
                        "kind": kind,
                        "replicas": r,
                        "net_alone": baseline[rule],
                        "net_with_replicas": total,
                        "gain": total - baseline[rule],
                        "detected_rows": int(market.duplicates.near[identities[-1], k])
                        if market.duplicates is not None
                        else 0,
                    }
                )
    return ReplicationAudit(party, pd.DataFrame(rows))
