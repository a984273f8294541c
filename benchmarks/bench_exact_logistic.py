"""Exact party-level Shapley values, LogisticRegression(max_iter=1000), breast cancer.

Parties are the training rows ``i % M``; the utility is validation accuracy. pyDVL 0.10
computes exact grouped Shapley values with ``DeterministicUniformSampler`` (it evaluates
each coalition once per marginal); coopml evaluates the 2**M table once with the fast
batched Newton learner. Both run with one process. Values are compared per party with
a brute-force table of scikit-learn refits (``CoalitionUtility(..., fast=False)``).

Usage: python benchmarks/bench_exact_logistic.py [M ...]   (default: 4 8 10)
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
from _common import breast_cancer, emit, load_average, timed
from sklearn.linear_model import LogisticRegression

from coopml.coalitions import CoalitionGame
from coopml.data import Party
from coopml.learning import CoalitionUtility


def pydvl_exact(X, y, X_val, y_val, m: int, empty: float) -> np.ndarray:
    from joblib import parallel_config
    from pydvl.valuation import (
        DeterministicUniformSampler,
        GroupedDataset,
        ModelUtility,
        NoStopping,
        ShapleyValuation,
        SupervisedScorer,
    )
    from pydvl.valuation.dataset import Dataset

    train = GroupedDataset(X, y, data_groups=np.arange(len(y)) % m)
    scorer = SupervisedScorer("accuracy", Dataset(X_val, y_val), default=empty)
    utility = ModelUtility(LogisticRegression(max_iter=1000), scorer, show_warnings=False)
    sampler = DeterministicUniformSampler()
    valuation = ShapleyValuation(utility, sampler, is_done=NoStopping(sampler), progress=False)
    with parallel_config(n_jobs=1):
        valuation.fit(train)
    result = valuation.result
    order = np.argsort(result.indices)
    return np.asarray(result.values)[order]


def main(ms: list[int]) -> None:
    X, y, X_val, y_val = breast_cancer()
    rows = []
    for m in ms:
        # Rows i % M, in row order within each party (pyDVL pools groups the same way).
        parties = [Party(f"p{i}", X[i::m], y[i::m]) for i in range(m)]
        learner = LogisticRegression(max_iter=1000)
        fast = CoalitionUtility(learner, parties, (X_val, y_val))
        game, t_fast = timed(CoalitionGame.from_utility, fast)
        phi_fast = game.shapley().values
        slow = CoalitionUtility(learner, parties, (X_val, y_val), fast=False)
        ref, t_refit = timed(CoalitionGame.from_utility, slow)
        phi_ref = ref.shapley().values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            empty = float(ref.table[0])
            phi_pydvl, t_pydvl = timed(pydvl_exact, X, y, X_val, y_val, m, empty)
        rows.append(
            {
                "M": m,
                "seconds_pydvl": t_pydvl,
                "seconds_coopml": t_fast,
                "seconds_refit_table": t_refit,
                "ratio_pydvl_over_coopml": t_pydvl / t_fast,
                "max_abs_diff_coopml_vs_refit": float(np.abs(phi_fast - phi_ref).max()),
                "abs_diff_pydvl_vs_refit": np.abs(phi_pydvl - phi_ref).tolist(),
                "abs_diff_coopml_vs_refit": np.abs(phi_fast - phi_ref).tolist(),
                "coopml_efficiency_error": float(phi_fast.sum() - (game.table[-1] - game.table[0])),
                "pydvl_efficiency_error": float(phi_pydvl.sum() - (ref.table[-1] - ref.table[0])),
                "table_entries_differing": int(np.sum(game.table != ref.table)),
                "load_average": load_average(),
            }
        )
        print(rows[-1], file=sys.stderr)
    emit({"benchmark": "exact_logistic", "rows": rows})


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [4, 8, 10])
