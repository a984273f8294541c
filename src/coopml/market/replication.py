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

**Estimated markets.** Above :data:`~coopml.market.sampled_shares.EXACT_LIMIT` parties
(or with ``valuation="monte_carlo"``) a market's shares are estimated for one rule
and cannot be re-settled under another. The audit then runs each audited market once
per rule, with the same seed, stopping rule and budget (never an exact table of
:math:`2^n` fits), and reports ``gain_stderr``: the payout standard errors of the
replicator's identities added (their errors share coalitions, so no independence is
assumed) and combined in quadrature with the baseline's (an independent estimate).
``loo`` has no sampling estimator: it is left out of the default rules there, and asked
for explicitly it is a ValueError. A row is ``profitable`` only when its gain exceeds
twice its standard error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from coopml._validation import check_choice, check_int, check_positive
from coopml.data import Party, replicate_party
from coopml.market.market import MarketResult, estimates_shares, run_market
from coopml.market.payment import PAYMENT_RULES
from coopml.market.sampled_shares import ESTIMATORS
from coopml.market.settlement import Settlement

__all__ = ["ReplicationAudit", "replication_audit"]


@dataclass(frozen=True)
class ReplicationAudit:
    """Gains from replication, one row per (rule, kind, replicas)."""

    party: str
    table: pd.DataFrame

    @property
    def profitable(self) -> pd.DataFrame:
        """The rows in which replication paid: a gain above 1e-9 and above twice its
        standard error (estimated markets)."""
        margin = np.maximum(1e-9, 2 * self.table["gain_stderr"])
        return self.table[self.table["gain"] > margin]

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
    rules: Sequence[str] | None = None,
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
    rules : sequence of str, optional
        Payment rules to audit; default all of them, or the rules that can be estimated
        (not ``"loo"``) when some audited market is estimated (module docstring).
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
    check_positive("noise", noise)
    valuation = str(market_options.get("valuation", "auto"))
    sizes = [len(names) + r for r in [0, *counts]]
    estimated = any(estimates_shares(m, valuation, "shapley") for m in sizes)
    if rules is None:
        rules = [r for r in PAYMENT_RULES if r in ESTIMATORS or not estimated]
    for rule in rules:
        check_choice("rules", rule, PAYMENT_RULES)
        if estimated and rule not in ESTIMATORS:
            raise ValueError(
                f"parameter 'rules': {rule!r} has no sampling estimator, and the audited "
                f"markets of {sizes} parties are estimated (valuation={valuation!r}); audit "
                f"{sorted(ESTIMATORS)}, or use valuation='exact' (at most 25 parties)"
            )
    options = {"duplicates": "report", **market_options}
    options.pop("rule", None)
    k = names.index(party)

    def settlements(market_parties: list[Party]) -> tuple[MarketResult, dict[str, Settlement]]:
        """Each rule's settlement: re-settled from the tables when exact, estimated
        again under the same seed and stopping rule when estimated."""
        first = run_market(
            market_parties,
            learner,
            validation,
            rule=rules[0],
            random_state=random_state,
            **options,
        )
        out = {rules[0]: first.settlement}
        for rule in rules[1:]:
            if first.settlement.estimated:
                again = run_market(
                    market_parties,
                    learner,
                    validation,
                    rule=rule,
                    random_state=random_state,
                    **options,
                )
                out[rule] = again.settlement
            else:
                out[rule] = first._resettle(rule)
        return first, out

    _, base = settlements(list(parties))
    baseline = {rule: base[rule].parties[k] for rule in rules}
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
            market, settled = settlements([*parties, *copies])
            identities = [k, *range(len(parties), len(parties) + r)]
            for rule in rules:
                lines = settled[rule].parties
                total = float(sum(lines[i].net_gain for i in identities))
                spread = float(sum(lines[i].payout_stderr for i in identities))
                alone = baseline[rule]
                rows.append(
                    {
                        "rule": rule,
                        "kind": kind,
                        "replicas": r,
                        "net_alone": alone.net_gain,
                        "net_with_replicas": total,
                        "gain": total - alone.net_gain,
                        "gain_stderr": float(np.hypot(spread, alone.payout_stderr)),
                        "estimated": settled[rule].estimated,
                        "detected_rows": int(market.duplicates.near[identities[-1], k])
                        if market.duplicates is not None
                        else 0,
                    }
                )
    return ReplicationAudit(party, pd.DataFrame(rows))
