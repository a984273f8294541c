"""Learning curves and their fit on real data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.naive_bayes import GaussianNB

from coopml.competition import LearningCurve, fit_learning_curve


def test_curve_values() -> None:
    curve = LearningCurve(0.1, 2.0, 0.5)
    np.testing.assert_allclose(curve([[1, 4], [16, 100]]), [[2.1, 1.1], [0.6, 0.3]])


def test_fit_on_digits() -> None:
    X, y = load_digits(return_X_y=True)
    fit = fit_learning_curve(
        GaussianNB(), X, y, sizes=[40, 80, 160, 320, 640, 1000], n_repeats=3, random_state=0
    )
    assert fit.converged
    assert fit.errors.shape == (3, 6)
    # the fitted curve reproduces the measured mean errors
    np.testing.assert_allclose(fit.curve(fit.sizes), fit.mean_errors, atol=0.03)
    assert fit.mean_errors[0] > fit.mean_errors[-1]
    assert fit.stderr.shape == (3,) and np.all(fit.stderr >= 0)
    again = fit_learning_curve(
        GaussianNB(), X, y, sizes=[40, 80, 160, 320, 640, 1000], n_repeats=3, random_state=0
    )
    np.testing.assert_array_equal(fit.errors, again.errors)


def test_fit_recovers_a_synthetic_curve() -> None:
    class Oracle:
        """A fake learner whose score follows a known learning curve."""

        def get_params(self, deep: bool = True) -> dict[str, object]:
            return {}

        def fit(self, X: np.ndarray, y: np.ndarray) -> Oracle:
            self.n = len(X)
            return self

        def score(self, X: np.ndarray, y: np.ndarray) -> float:
            return 1.0 - (0.05 + 2.0 * self.n ** (-0.6))

    X, y = np.zeros((2000, 1)), np.zeros(2000)
    fit = fit_learning_curve(Oracle(), X, y, sizes=[10, 30, 100, 300, 1000], n_repeats=1)
    assert fit.curve.beta == pytest.approx(0.6, rel=1e-4)
    assert fit.curve.A == pytest.approx(2.0, rel=1e-3)
    assert fit.curve.eps_inf == pytest.approx(0.05, abs=1e-4)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="parameter 'beta' must be finite and > 0"):
        LearningCurve(0.0, 1.0, -1.0)
    X, y = np.zeros((100, 2)), np.zeros(100)
    with pytest.raises(ValueError, match="parameter 'sizes'"):
        fit_learning_curve(GaussianNB(), X, y, sizes=[10, 5, 20])
    with pytest.raises(ValueError, match="parameter 'y'"):
        fit_learning_curve(GaussianNB(), X, y[:5], sizes=[10, 20, 30])
    with pytest.raises(ValueError, match="parameter 'n'"):
        LearningCurve(0.0, 1.0, 1.0)([0.0])
