r"""End-to-end simulation of the mechanism: draw participants, collect contributions,
train, hand out models.

Each round of :func:`simulate_mechanism` draws the :math:`N` participants' types from
the prior, collects :math:`m_i` data points from each type-:math:`i` participant, trains
the collective model, and pays each participant by proportional assignment
(Wang, Wu, Liu & Low, AAAI 2025, arXiv:2412.11122): a model worth
:math:`(t_i/\bar t_i)\,v(a)`. By default the model's accuracy is read off the accuracy
curve; with ``learner=`` a real scikit-learn model is trained on the pooled rows of a
bundled dataset (one row per ``rows_per_unit`` units of contribution), scored on
held-out rows, and each participant receives a *real degraded copy*: the trained model
whose predictions are replaced by uniformly random labels with probability
:math:`q_i`, chosen so that its expected accuracy is the proportional share
(:math:`(1 - q)\,r + q/C = \rho`, :math:`C` classes). Averages over rounds estimate
each type's expected reward, which must match :math:`t_i`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import clone

from coopml._validation import RandomState, check_int, check_positive, check_random_state
from coopml.contracts.problem import ContractProblem
from coopml.contracts.result import ContractResult
from coopml.data import load_dataset, train_validation_split

__all__ = ["DegradedModel", "SimulationResult", "simulate_mechanism"]

FloatArray = NDArray[np.float64]


class DegradedModel:
    """A trained classifier whose predictions are replaced, with probability ``noise``,
    by a uniformly random class: accuracy ``(1 - noise) r + noise / n_classes``.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> base = DummyClassifier(strategy="constant", constant=1).fit([[0]] * 2, [0, 1])
    >>> model = DegradedModel(base, noise=0.0, classes=np.array([0, 1]), random_state=0)
    >>> model.predict([[0], [0]]).tolist()
    [1, 1]
    """

    def __init__(
        self, model: Any, noise: float, classes: NDArray[Any], random_state: RandomState = None
    ) -> None:
        self.model, self.noise, self.classes = model, float(noise), np.asarray(classes)
        self._rng = check_random_state(random_state)

    def predict(self, X: Any) -> NDArray[Any]:
        """Predictions of the trained model, each replaced by a random class w.p. noise."""
        pred = np.asarray(self.model.predict(X))
        swap = np.asarray(self._rng.random(pred.shape[0]) < self.noise)
        pred = pred.copy()
        pred[swap] = self._rng.choice(self.classes, size=int(swap.sum()))
        return pred


@dataclass(frozen=True, kw_only=True)
class SimulationResult:
    """Rounds of the mechanism.

    Attributes
    ----------
    counts : ndarray of shape (R, I)
        Type-count profile of every round.
    model_values : ndarray of shape (R,)
        Value ``v(a)`` of the collectively trained model.
    realised : ndarray of shape (R, I)
        Value of the model a type-``i`` participant received (``nan`` if absent).
    mean_rewards, stderr : ndarray of shape (I,)
        Average realised value per type over the rounds it appeared in, and its standard
        error; compare with the menu's ``t``.
    measured : bool
        Whether values were measured with a real learner (else read off the curve).
    """

    counts: NDArray[np.int64]
    model_values: FloatArray
    realised: FloatArray
    mean_rewards: FloatArray
    stderr: FloatArray
    measured: bool

    def to_dataframe(self) -> pd.DataFrame:
        """One row per round: counts, model value, realised value per type."""
        frame = pd.DataFrame(
            self.counts, columns=[f"n_{i + 1}" for i in range(self.counts.shape[1])]
        )
        frame["model_value"] = self.model_values
        for i in range(self.realised.shape[1]):
            frame[f"reward_{i + 1}"] = self.realised[:, i]
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        return {
            "n_rounds": int(self.counts.shape[0]),
            "mean_rewards": self.mean_rewards.tolist(),
            "stderr": self.stderr.tolist(),
            "measured": self.measured,
        }


def simulate_mechanism(
    problem: ContractProblem,
    contract: ContractResult,
    n_rounds: int = 1000,
    *,
    learner: Any = None,
    dataset: str = "digits",
    rows_per_unit: float = 1.0,
    random_state: RandomState = None,
) -> SimulationResult:
    """Simulate ``n_rounds`` rounds of the mechanism under the menu ``contract``.

    Parameters
    ----------
    problem : ContractProblem
    contract : ContractResult
        The menu (from :func:`solve_contract`).
    n_rounds : int, default 1000
    learner : estimator, optional
        If given, really train it each round on the pooled rows of ``dataset`` and hand
        out degraded copies (the valuation must then be linear: ``v(r) = s r``).
    dataset : str, default "digits"
    rows_per_unit : float, default 1
        Training rows per unit of contribution (real-learner mode).
    random_state : int, Generator or None

    Examples
    --------
    >>> from coopml.contracts import solve_contract
    >>> problem = ContractProblem(10, [0.02, 0.01], [0.5, 0.5])
    >>> menu = solve_contract(problem)
    >>> sim = simulate_mechanism(problem, menu, n_rounds=4000, random_state=0)
    >>> bool(np.all(np.abs(sim.mean_rewards - menu.rewards) < 4 * sim.stderr + 1e-9))
    True
    """
    n_rounds = check_int("n_rounds", n_rounds, minimum=1)
    rows_per_unit = check_positive("rows_per_unit", rows_per_unit)
    rng = check_random_state(random_state)
    m, t, tbar = contract.contributions, contract.rewards, contract.max_rewards
    share = np.divide(t, tbar, out=np.zeros_like(t), where=tbar > 0)
    counts = rng.multinomial(problem.n_participants, problem.prior, size=n_rounds)
    if learner is None:
        values = np.asarray(problem.valuation(problem.curve(counts @ m)), dtype=np.float64)
        realised = values[:, None] * share[None, :]
    else:
        values, realised = _train_rounds(
            problem, counts, m, share, learner, dataset, rows_per_unit, rng
        )
    realised = np.where(counts > 0, realised, np.nan)
    present = counts > 0
    mean = np.array(
        [
            np.nanmean(realised[present[:, i], i]) if present[:, i].any() else np.nan
            for i in range(problem.n_types)
        ]
    )
    se = np.array(
        [
            np.nanstd(realised[present[:, i], i], ddof=1) / np.sqrt(present[:, i].sum())
            if present[:, i].sum() > 1
            else np.nan
            for i in range(problem.n_types)
        ]
    )
    return SimulationResult(
        counts=counts,
        model_values=values,
        realised=realised,
        mean_rewards=mean,
        stderr=se,
        measured=learner is not None,
    )


def _train_rounds(
    problem: ContractProblem,
    counts: NDArray[np.int64],
    m: FloatArray,
    share: FloatArray,
    learner: Any,
    dataset: str,
    rows_per_unit: float,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    scale = float(problem.valuation(1.0))
    if not np.isclose(float(problem.valuation(0.5)), 0.5 * scale):
        raise ValueError("a real learner needs a linear valuation v(r) = s r")
    data = load_dataset(dataset)
    X, X_val, y, y_val = train_validation_split(
        data.X, data.y, validation_fraction=0.3, random_state=int(rng.integers(2**31 - 1))
    )
    classes = np.unique(data.y)
    rows_each = np.maximum(np.round(m * rows_per_unit).astype(int), 0)
    values = np.zeros(counts.shape[0])
    realised = np.zeros(counts.shape, dtype=np.float64)
    for r, n in enumerate(counts):
        total = int(n @ rows_each)
        rows = rng.choice(X.shape[0], size=total, replace=total > X.shape[0])
        model = clone(learner).fit(X[rows], y[rows])
        acc = float(np.mean(model.predict(X_val) == y_val))
        values[r] = scale * acc
        chance = 1.0 / classes.size
        for i in np.flatnonzero(n):
            target = share[i] * acc
            noise = 0.0 if acc <= chance else float(np.clip((acc - target) / (acc - chance), 0, 1))
            copy = DegradedModel(model, noise, classes, rng)
            realised[r, i] = scale * float(np.mean(copy.predict(X_val) == y_val))
    return values, realised
