"""KNN-Shapley (Jia et al. 2019): pyDVL's KNNShapleyValuation against coopml's knn_shapley.

K = 5, 10 features, two Gaussian classes; pyDVL with one joblib job (its default
outside a parallel context), coopml in one process. Values must agree to 1e-9.

Usage: python benchmarks/bench_knn.py [--quick] [NxNVAL ...]   (e.g. 50000x1000)
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
from _common import emit, load_average, timed

from coopml.coalitions.knn_shapley import knn_shapley


def make_data(n_train: int, n_val: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 10)) + 0.8 * y[:, None]
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def pydvl_knn(X, y, X_val, y_val, k: int) -> np.ndarray:
    from pydvl.valuation import Dataset, KNNShapleyValuation
    from sklearn.neighbors import KNeighborsClassifier

    valuation = KNNShapleyValuation(
        KNeighborsClassifier(n_neighbors=k), Dataset(X_val, y_val), progress=False
    )
    valuation.fit(Dataset(X, y))
    result = valuation.result
    return np.asarray(result.values)[np.argsort(result.indices)]


def main(quick: bool, only: list[tuple[int, int]]) -> None:
    sizes = only or (
        [(1000, 100), (5000, 100), (20000, 400)]
        if quick
        else [(1000, 100), (5000, 100), (20000, 400), (50000, 1000)]
    )
    rows = []
    for n_train, n_val in sizes:
        X, y, X_val, y_val = make_data(n_train, n_val)
        ours, t_ours = timed(knn_shapley, X, y, X_val, y_val, 5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs, t_theirs = timed(pydvl_knn, X, y, X_val, y_val, 5)
        rows.append(
            {
                "n_train": n_train,
                "n_val": n_val,
                "seconds_pydvl": t_theirs,
                "seconds_coopml": t_ours,
                "ratio_pydvl_over_coopml": t_theirs / t_ours,
                "max_abs_diff": float(np.abs(ours - theirs).max()),
                "load_average": load_average(),
            }
        )
        print(rows[-1], file=sys.stderr)
    emit({"benchmark": "knn_shapley", "rows": rows})


if __name__ == "__main__":
    sizes = [tuple(int(v) for v in a.split("x")) for a in sys.argv[1:] if "x" in a]
    main("--quick" in sys.argv, sizes)  # type: ignore[arg-type]
