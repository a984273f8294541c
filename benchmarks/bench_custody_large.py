"""Large markets in parties custody against operator custody, in process.

Breast cancer (standardised, ``_common.breast_cancer``), the 398 training rows split
among N parties (iid), 30 features; the market's default valuation (``"auto"``: the
rule's estimator above 14 parties) and default stopping rule (every payout's standard
error at most 1% of the total, or 25,000 fits). Single-task: ``party_0`` owns the whole
validation split; per-party: each party owns its N-th of it (a training set chosen
greedily above 12 parties). Operator custody is :func:`coopml.market.run_market` on the
rows (``duplicates="ignore"``); parties custody is
:func:`coopml.custody.run_custody_market` over ``bench_custody.CountingTransport`` (the
protocol without a carrier), which counts the round trips a deployment would make:
over Flower each costs about 0.7 s on the 2-core machine (docs/benchmarks.md,
"Parties custody"), so the round trips, not the in-process seconds, are its cost there.

Reported per market: seconds of both, the ratio, round trips and messages, coalition
models fit, evaluations recorded, whether the estimate converged, and the largest
payout difference (the same seed draws the same sample: 0 expected).

Usage: python benchmarks/bench_custody_large.py [--parties N ...] [--quick]
(default 16 and 24 parties; ``--quick``: 16 parties, naive Bayes only.)
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from _common import breast_cancer, emit, load_average, timed
from bench_custody import CountingTransport, payouts
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

from coopml.custody import Agent, run_custody_market
from coopml.data import Party, make_parties
from coopml.market import run_market


def market(n: int) -> tuple[list[Party], tuple[np.ndarray, np.ndarray]]:
    """``n`` parties, each with its ``n``-th of the validation rows (``party_0``'s is
    replaced by the whole split, the single-task market's task, when it validates)."""
    X, y, X_val, y_val = breast_cancer()
    parties = make_parties(X, y, n, random_state=0)
    k = len(y_val) // n
    return [
        Party(p.name, p.X, p.y, X_val[i * k : (i + 1) * k], y_val[i * k : (i + 1) * k])
        for i, p in enumerate(parties)
    ], (X_val, y_val)


def row(n: int, learner: Any, mode: str) -> dict[str, Any]:
    parties, shared = market(n)
    validator = None
    if mode == "single-task":
        parties[0] = Party("party_0", parties[0].X, parties[0].y, *shared)
        validator = "party_0"
    names = [p.name for p in parties]
    load_before = load_average()
    operator, t_op = timed(
        lambda: run_market(parties, learner, shared if validator else None, duplicates="ignore")
    )
    transport = CountingTransport([Agent(p) for p in parties])
    custody, t_custody = timed(lambda: run_custody_market(transport, names, learner, validator))
    s = custody.settlement
    return {
        "parties": n,
        "learner": type(learner).__name__,
        "market": mode,
        "seconds_operator": t_op,
        "seconds_parties_in_process": t_custody,
        "ratio": t_custody / t_op,
        "exchanges": transport.exchanges,
        "messages": transport.messages,
        "fitted_coalitions": s.provenance["protocol"]["fitted_coalitions"],
        "newton_requests": s.provenance["protocol"]["newton_requests"],
        "evaluations": s.valuation.get("evaluations"),
        "converged": s.valuation.get("converged"),
        "max_payout_diff": float(np.abs(payouts(s) - payouts(operator.settlement)).max()),
        "verified": bool(s.verify().ok),
        "load_average": [load_before, load_average()],
    }


def main(argv: list[str]) -> None:
    sizes = [16] if "--quick" in argv else [16, 24]
    if "--parties" in argv:
        sizes = [int(a) for a in argv[argv.index("--parties") + 1 :] if a.isdigit()]
    learners: list[Any] = (
        [GaussianNB()] if "--quick" in argv else [GaussianNB(), LogisticRegression()]
    )
    rows = []
    for n in sizes:
        for learner in learners:
            for mode in ("single-task", "per-party"):
                r = row(n, learner, mode)
                rows.append(r)
                print(r, flush=True)
    print(
        "| parties | learner | market | operator custody | parties, in process | round trips "
        "(messages) | models fit | evaluations (converged) | max abs payout diff |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(
            f"| {r['parties']} | {r['learner']} | {r['market']} | {r['seconds_operator']:.2f} s | "
            f"{r['seconds_parties_in_process']:.2f} s | {r['exchanges']} ({r['messages']}) | "
            f"{r['fitted_coalitions']} | {r['evaluations']} ({r['converged']}) | "
            f"{r['max_payout_diff']:.1e} |"
        )
    emit({"rows": rows})


if __name__ == "__main__":
    main(sys.argv[1:])
