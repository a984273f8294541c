"""Monte Carlo Shapley for M = 50 parties: utility evaluations needed for a 1% error.

Three games of 50 players, each valued by pyDVL 0.10's ``ShapleyValuation`` with its
``PermutationSampler`` (no truncation) and by coopml's ``monte_carlo_shapley``
(antithetic permutations), ``stratified_shapley`` (strata by coalition size, binned
to the budget, defensive Neyman allocation) and ``svarm_shapley`` (stratified SVARM,
Kolpaczki et al., AAAI 2024), all on the same utility object:

- two learning games, a coopml ``CoalitionUtility`` with a fast learner (GaussianNB
  accuracy, Ridge R2), so that runs take minutes;
- the airport cost game c(S) = max_{i in S} c_i on every second player of the
  100-player game of Castro, Gómez & Tejada (2009) (costs 1..10), whose Shapley value
  is known exactly (Littlechild & Owen 1973).

Every method gets the same seeds (0 .. n_seeds-1) and the same evaluation budget
(``MaxEvaluations(budget)``, so ``stratified_shapley`` bins its strata for it as it
would for a user); every evaluation counts once per distinct coalition (pyDVL's calls
go through a memoising wrapper, so it is not charged for re-evaluating a coalition).

The reference of the airport game is its exact Shapley value. The learning games have
none, so theirs is *verified* by two different unbiased estimators at a large budget:
``monte_carlo_shapley`` (seed 10**6; exactly efficient) and ``svarm_shapley`` (seed
10**6 + 1). Their agreement is checked player by player,
z_i = |d_i| / sqrt(se_MC,i^2 + se_SVARM,i^2), whose maximum over 50 players should look
like the maximum of 50 |N(0, 1)| (below about 3.5); the reference is their
precision-weighted mean (weights 1 / se^2), whose largest standard error is reported
(it must be well below the 1% being measured). The same procedure is run on the
airport game and compared with its exact values, as a check of the procedure.
(The reference used to be one ``stratified_shapley`` run with its former pure Neyman
allocation, which was biased; issue 15.)

Error = max over parties of |estimate - reference| / |v(N)|. "Evaluations to 1%" for
a run is the first evaluation count from which its error stays at or below 1% of v(N)
up to the budget.

Usage: python benchmarks/bench_monte_carlo.py [--quick] [--only SUBSTRING]
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from _common import diabetes, emit, load_average
from numpy.typing import NDArray
from sklearn.datasets import make_classification
from sklearn.linear_model import Ridge
from sklearn.naive_bayes import GaussianNB

from coopml.coalitions.monte_carlo import MaskUtility, monte_carlo_shapley
from coopml.coalitions.stopping import MaxEvaluations, SamplerState, StoppingRule
from coopml.coalitions.stratified import stratified_shapley
from coopml.coalitions.svarm import svarm_shapley
from coopml.data import Party
from coopml.learning import CoalitionUtility

M = 50
TARGET = 0.01
REFERENCE_SEED = 10**6


@dataclass
class Game:
    utility: MaskUtility
    budget: int  # evaluations per run
    reference_budget: int  # evaluations of each of the two reference estimators
    exact: NDArray[np.float64] | None = None  # exact Shapley values, where known


def airport_costs() -> NDArray[np.float64]:
    """Every second player of the 100-player airport game of Castro et al. (2009, §4.3)."""
    counts = (8, 12, 6, 14, 8, 9, 13, 10, 10, 10)  # players needing 1, 2, ..., 10
    return np.repeat(np.arange(1.0, 11.0), counts)[::2]


class _AirportUtility:
    """Airport cost game c(S) = max_{i in S} c_i as a mask utility (fallback)."""

    def __init__(self, costs: NDArray[np.float64]) -> None:
        self.costs, self.n_players = costs, costs.size
        self.names = tuple(str(i) for i in range(costs.size))

    def evaluate_masks(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        member = ((np.asarray(masks, np.int64)[:, None] >> np.arange(self.n_players)) & 1) > 0
        return np.where(member, self.costs, 0.0).max(axis=1)


def airport(costs: NDArray[np.float64]) -> tuple[MaskUtility, NDArray[np.float64]]:
    """The airport game and its exact Shapley value (Littlechild-Owen closed form)."""
    try:
        from coopml.coalitions.reference_games import airport_reference
    except ImportError:
        from coopml.coalitions.games import airport_shapley

        return _AirportUtility(costs), airport_shapley(costs)
    game = airport_reference(costs)
    return game, game.shapley


def games() -> dict[str, Game]:
    X, y = make_classification(
        n_samples=4000,
        n_features=10,
        n_informative=4,
        n_redundant=2,
        flip_y=0.05,
        class_sep=0.8,
        random_state=0,
    )
    gnb = CoalitionUtility(
        GaussianNB(),
        [Party(f"p{i}", X[:3000][i::M], y[:3000][i::M]) for i in range(M)],
        (X[3000:], y[3000:]),
    )
    Xd, yd, Xd_val, yd_val = diabetes()
    ridge = CoalitionUtility(
        Ridge(alpha=1.0),
        [Party(f"p{i}", Xd[i::M], yd[i::M]) for i in range(M)],
        (Xd_val, yd_val),
        scorer="r2",
    )
    airport_game, airport_phi = airport(airport_costs())
    return {
        "GaussianNB accuracy (synthetic, 3,000 rows, 60 per party)": Game(gnb, 40_000, 1_000_000),
        "Ridge R2 (diabetes, 309 rows, 6 per party)": Game(ridge, 150_000, 4_000_000),
        "Airport cost game (costs 1-10, exact Shapley values)": Game(
            airport_game, 150_000, 1_000_000, airport_phi
        ),
    }


def reference(utility: MaskUtility, budget: int) -> dict[str, Any]:
    """Precision-weighted mean of two independent unbiased estimates, and their agreement."""
    estimators: list[tuple[str, Any, int]] = [
        ("monte_carlo_shapley", monte_carlo_shapley, REFERENCE_SEED),
        ("svarm_shapley", svarm_shapley, REFERENCE_SEED + 1),
    ]
    results, runs = [], {}
    for label, estimator, seed in estimators:
        start = time.perf_counter()
        r = estimator(utility, stopping=MaxEvaluations(budget), random_state=seed)
        results.append(r)
        runs[label] = {
            "seed": seed,
            "evaluations": r.n_evaluations,
            "max_stderr": float(r.stderr.max()),
            "seconds": time.perf_counter() - start,
            "load_average": load_average(),
            "efficiency_gap": float(r.info.get("efficiency_gap", 0.0)),
            "values": r.values.tolist(),
            "stderr": r.stderr.tolist(),
        }
    a, b = results
    w_a, w_b = 1.0 / a.stderr**2, 1.0 / b.stderr**2
    return {
        "values": (w_a * a.values + w_b * b.values) / (w_a + w_b),
        "stderr": 1.0 / np.sqrt(w_a + w_b),
        "z": np.abs(a.values - b.values) / np.sqrt(a.stderr**2 + b.stderr**2),
        "runs": runs,
    }


class Recorder(StoppingRule):
    """Records (evaluations, estimates) at every check; never fires by itself."""

    def __init__(self, log: list[tuple[int, np.ndarray]]) -> None:
        self.log = log

    def __deepcopy__(self, memo: dict[int, Any]) -> Recorder:  # keep the shared log
        return self

    def check(self, state: SamplerState) -> StoppingRule | None:
        self.log.append((state.n_evaluations, state.means.copy()))
        return None

    def _bounded(self, n_coalitions: int) -> bool:
        return False

    def __str__(self) -> str:
        return "Recorder()"


def pydvl_run(utility: MaskUtility, budget: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """pyDVL's ShapleyValuation with PermutationSampler on the same utility."""
    from pydvl.utils.status import Status
    from pydvl.valuation import Dataset, PermutationSampler, ShapleyValuation
    from pydvl.valuation.stopping import StoppingCriterion
    from pydvl.valuation.utility.base import UtilityBase

    cache: dict[int, float] = {}

    class Wrapped(UtilityBase):  # type: ignore[misc]
        def __call__(self, sample: Any) -> float:
            subset = [] if sample is None else sample.subset
            mask = int(np.sum(np.left_shift(1, np.asarray(subset, dtype=np.int64))))
            if mask not in cache:
                cache[mask] = float(utility.evaluate_masks(np.array([mask], dtype=np.int64))[0])
            return cache[mask]

    log: list[tuple[int, np.ndarray]] = []

    class Record(StoppingCriterion):  # type: ignore[misc]
        def _check(self, result: Any) -> Any:
            values = np.asarray(result.values)[np.argsort(result.indices)]
            log.append((len(cache), values.copy()))
            return Status.Converged if len(cache) >= budget else Status.Pending

        def completion(self) -> float:
            return min(1.0, len(cache) / budget)

    data = Dataset(np.arange(M, dtype=float)[:, None], np.zeros(M))
    valuation = ShapleyValuation(
        Wrapped(), PermutationSampler(seed=seed), is_done=Record(), progress=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        valuation.fit(data)
    return log


def first_stays_below(log: list[tuple[int, np.ndarray]], ref: np.ndarray, vn: float) -> Any:
    errors = np.array([np.abs(v - ref).max() / abs(vn) for _, v in log])
    counts = np.array([n for n, _ in log])
    above = np.flatnonzero(errors > TARGET)
    if above.size == 0:
        return int(counts[0])
    if above[-1] == len(errors) - 1:
        return None  # not reached within the budget
    return int(counts[above[-1] + 1])


def curve(
    logs: list[list[tuple[int, np.ndarray]]], ref: np.ndarray, vn: float, grid: np.ndarray
) -> np.ndarray:
    """Mean over seeds of the error at each grid point (the last estimate at or before it)."""
    out = []
    for log in logs:
        counts = np.array([n for n, _ in log])
        errors = np.array([np.abs(v - ref).max() / abs(vn) for _, v in log])
        at = np.searchsorted(counts, grid, side="right") - 1
        out.append(np.where(at >= 0, errors[np.maximum(at, 0)], np.nan))
    with warnings.catch_warnings():  # grid points before every run's first estimate: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.array(out), axis=0)


def main(quick: bool, only: str | None) -> None:
    n_seeds = 3 if quick else 5
    rows = []
    for name, game in games().items():
        if only is not None and only.lower() not in name.lower():
            continue
        utility, budget, ref_budget = game.utility, game.budget, game.reference_budget
        if quick:
            budget, ref_budget = budget // 4, ref_budget // 4
        vn = float(utility.evaluate_masks(np.array([(1 << M) - 1]))[0])
        start = time.perf_counter()
        verified = reference(utility, ref_budget)
        ref_seconds = time.perf_counter() - start
        z = verified["z"]
        print(
            f"{name}: reference agreement max z = {z.max():.2f} (player {int(z.argmax())}), "
            f"combined max se = {100 * verified['stderr'].max() / abs(vn):.4f}% of v(N)",
            file=sys.stderr,
            flush=True,
        )
        if z.max() > 3.5:
            print(
                f"WARNING: {name}: monte_carlo_shapley and svarm_shapley DISAGREE "
                f"(max |d| / se = {z.max():.2f} > 3.5)",
                file=sys.stderr,
                flush=True,
            )
        result: dict[str, Any] = {
            "game": name,
            "M": M,
            "v_full": vn,
            "budget": budget,
            "n_seeds": n_seeds,
            "reference_method": (
                "exact (Littlechild-Owen)"
                if game.exact is not None
                else "precision-weighted mean of monte_carlo_shapley and svarm_shapley"
            ),
            "reference_evaluations": ref_budget,
            "reference_seconds": ref_seconds,
            "verification": {
                "runs": verified["runs"],
                "max_z": float(z.max()),
                "argmax_z": int(z.argmax()),
                "mean_z2": float(np.mean(z**2)),
                "n_z_above_1.96": int(np.sum(z > 1.96)),
                "max_combined_stderr_of_difference_over_v_full": float(
                    np.max(
                        np.hypot(
                            verified["runs"]["monte_carlo_shapley"]["stderr"],
                            verified["runs"]["svarm_shapley"]["stderr"],
                        )
                    )
                    / abs(vn)
                ),
                "max_stderr_over_v_full": float(verified["stderr"].max() / abs(vn)),
                "values": verified["values"].tolist(),
                "stderr": verified["stderr"].tolist(),
            },
            "grid": [],
            "methods": {},
        }
        if game.exact is None:
            ref = verified["values"]
            result["reference_max_stderr_over_v_full"] = float(verified["stderr"].max() / abs(vn))
        else:
            ref = np.asarray(game.exact, dtype=np.float64)
            err = np.abs(verified["values"] - ref)
            result["reference_max_stderr_over_v_full"] = 0.0
            result["verification"]["vs_exact"] = {
                "max_abs_error_over_v_full": float(err.max() / abs(vn)),
                "max_error_over_stderr": float((err / verified["stderr"]).max()),
                "monte_carlo_max_error_over_stderr": float(
                    np.max(
                        np.abs(np.array(verified["runs"]["monte_carlo_shapley"]["values"]) - ref)
                        / np.array(verified["runs"]["monte_carlo_shapley"]["stderr"])
                    )
                ),
                "svarm_max_error_over_stderr": float(
                    np.max(
                        np.abs(np.array(verified["runs"]["svarm_shapley"]["values"]) - ref)
                        / np.array(verified["runs"]["svarm_shapley"]["stderr"])
                    )
                ),
            }
            print(f"  vs exact: {result['verification']['vs_exact']}", file=sys.stderr)
        methods = {
            "pyDVL PermutationSampler": partial(pydvl_run, utility, budget),
            "coopml monte_carlo_shapley (antithetic)": partial(
                _ours, monte_carlo_shapley, utility, budget
            ),
            "coopml stratified_shapley": partial(_ours, stratified_shapley, utility, budget),
            "coopml svarm_shapley (stratified SVARM)": partial(
                _ours, svarm_shapley, utility, budget
            ),
        }
        grid = np.unique(np.geomspace(500, budget, 40).astype(int))
        result["grid"] = grid.tolist()
        for label, run in methods.items():
            start = time.perf_counter()
            logs = [run(seed) for seed in range(n_seeds)]
            needed = [first_stays_below(log, ref, vn) for log in logs]
            reached = [n for n in needed if n is not None]
            result["methods"][label] = {
                "evaluations_to_1pct": needed,
                "median_evaluations_to_1pct": (
                    float(np.median([np.inf if n is None else n for n in needed]))
                ),
                "all_seeds_reached": len(reached) == len(needed),
                "final_evaluations": [log[-1][0] for log in logs],
                "final_max_error_over_v_full": [
                    float(np.abs(log[-1][1] - ref).max() / abs(vn)) for log in logs
                ],
                "mean_error_curve": curve(logs, ref, vn, grid).tolist(),
                "seconds": time.perf_counter() - start,
                "load_average": load_average(),
            }
            print(label, needed, file=sys.stderr, flush=True)
        peer = result["methods"]["pyDVL PermutationSampler"]["median_evaluations_to_1pct"]
        for res in result["methods"].values():  # None: pyDVL did not reach 1% in the budget
            ours = res["median_evaluations_to_1pct"]
            res["fraction_of_pydvl"] = ours / peer if np.isfinite(peer) else None
        rows.append(result)
    emit({"benchmark": "monte_carlo", "rows": rows})


def _ours(
    estimator: Any, utility: MaskUtility, budget: int, seed: int
) -> list[tuple[int, np.ndarray]]:
    log: list[tuple[int, np.ndarray]] = []
    estimator(utility, stopping=Recorder(log) | MaxEvaluations(budget), random_state=seed)
    return log


if __name__ == "__main__":
    args = sys.argv[1:]
    main("--quick" in args, args[args.index("--only") + 1] if "--only" in args else None)
