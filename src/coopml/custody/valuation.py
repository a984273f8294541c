r"""Every coalition's model from the agents' messages, and its score from the validator.

:func:`coalition_models` fits all :math:`2^M` coalitions of a market with a fast
learner built from the agents' statistics (or the federated Newton method), under the
same rules as :class:`~coopml.learning.CoalitionUtility` in operator custody: the empty
coalition predicts the most frequent class (or the mean target) of all parties'
training labels, a coalition holding a single class predicts it, every other coalition
is fit. A coalition the exact protocol cannot reproduce (ill conditioned, not
converged: the cases operator custody refits with scikit-learn on the pooled rows) is
an error naming it, never a silent approximation.

:func:`score_coalitions` sends the models to the agent that owns a validation set,
which scores them on its own rows and returns the scores only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.dummy import DummyClassifier, DummyRegressor

from coopml.custody.checks import entry
from coopml.custody.learners import learner_spec
from coopml.custody.statistics import Moments
from coopml.custody.transport import Transport
from coopml.learning.fast import FastBlock, FastLearner, membership

__all__ = ["CoalitionModels", "coalition_models", "score_coalitions"]


@dataclass(frozen=True, eq=False)
class CoalitionModels:
    """The models of every coalition (bitmask ``k``: player ``i`` is bit ``i``).

    Attributes
    ----------
    fast : FastLearner
        The learner that fit them (rebuilds scikit-learn estimators).
    block : FastBlock
        Fitted parameters of the coalitions in ``fitted`` (in that order).
    fitted : ndarray of int
        Bitmasks of the coalitions with a fitted model.
    constant : ndarray of shape (2^M,)
        The prediction of the others (a class index, or a target value); NaN where fitted.
    """

    fast: FastLearner
    block: FastBlock
    fitted: NDArray[np.int64]
    constant: NDArray[np.float64]

    def estimator(self, mask: int) -> Any:
        """The scikit-learn estimator of coalition ``mask`` (a constant predictor for the
        empty and single-class coalitions)."""
        if np.isnan(self.constant[mask]):
            return self.fast.estimator(self.block, int(np.searchsorted(self.fitted, mask)))
        value = float(self.constant[mask])
        if not self.fast.is_classifier:
            return DummyRegressor(strategy="constant", constant=value).fit([[0.0]], [value])
        label = self.fast.classes[int(value)]
        return DummyClassifier(strategy="constant", constant=label).fit([[0.0]], [label])


def coalition_models(fast: FastLearner, moments: Moments) -> CoalitionModels:
    """Fit every coalition of the market's ``M`` players (see the module docstring)."""
    M = len(moments.names)
    masks = np.arange(1 << M, dtype=np.int64)
    A = membership(masks, M)
    constant = np.full(masks.size, np.nan)
    todo = masks != 0
    if fast.is_classifier:
        assert moments.class_counts is not None
        counts = A @ moments.class_counts
        single = (counts > 0).sum(axis=1) == 1
        constant[single] = np.argmax(counts[single], axis=1)
        constant[0] = np.argmax(moments.class_counts.sum(axis=0))  # ties: the first class
        todo &= ~single
    else:
        assert moments.sum_y is not None
        constant[0] = moments.sum_y.sum() / moments.n.sum()
    fitted = masks[todo]
    block = fast.fit_block(A[todo])
    bad = fitted[~block.ok]
    if bad.size:
        names = [[moments.names[i] for i in range(M) if (m >> i) & 1] for m in bad[:5].tolist()]
        raise ValueError(
            f"the exact parties-custody protocol cannot reproduce scikit-learn's fit for "
            f"{bad.size} coalition(s), e.g. {names} (ill conditioned, rank deficient or "
            "not converged; operator custody refits these on the pooled rows). Use "
            "custody='operator', a regularised learner, or fewer features."
        )
    return CoalitionModels(fast, block, fitted, constant)


def score_coalitions(
    transport: Transport, validator: str, models: CoalitionModels, estimator: Any, scorer: str
) -> NDArray[np.float64]:
    """The validator's scores of every coalition's model, shape (2^M,)."""
    fast = models.fast
    is_constant = ~np.isnan(models.constant)
    request = {
        "kind": "score",
        "learner": learner_spec(estimator),
        "classes": fast.classes.tolist() if fast.is_classifier else [],
        "n_features": fast.n_features,
        "scorer": scorer,
        "params": dict(models.block.params),
        "constant": np.where(is_constant, models.constant, 0.0),
        "is_constant": is_constant,
    }
    reply = transport.exchange({validator: request})[validator]
    return np.asarray(entry(validator, reply, "scores", (models.constant.size,)))
