"""The vectorised phase diagram against the closed form and the slow path."""

from __future__ import annotations

import time

import numpy as np
import pytest

from coopml.competition import (
    LearningCurve,
    SharingModel,
    full_sharing,
    full_sharing_threshold,
    sharing_phase_diagram,
)
from coopml.plots.competition import plot_sharing_phase_diagram


def test_matches_closed_form_on_a_200_by_200_grid() -> None:
    gammas, betas = np.linspace(0, 1, 200), np.linspace(0.05, 2, 200)
    start = time.perf_counter()
    d = sharing_phase_diagram([1000, 100], gammas, betas)
    assert time.perf_counter() - start < 5.0
    threshold = np.array(
        [full_sharing_threshold(LearningCurve(0, 1, b), [1000, 100]) for b in betas]
    )
    expected = gammas[:, None] < threshold[None, :]
    assert np.array_equal(d.unanimous, expected)
    assert d.agrees[..., 1].all()  # the smaller firm always agrees
    assert 0 < d.unanimous.mean() < 1
    assert d.to_dataframe().shape == (200 * 200, 5)


@pytest.mark.parametrize("market", ["cournot", "bertrand"])
def test_matches_slow_path(market: str) -> None:
    gammas, betas, sizes = [0.0, 0.3, 0.9], [0.1, 0.6], [50, 200, 400]
    d = sharing_phase_diagram(sizes, gammas, betas, market=market, kappa=0.6)
    for i, g in enumerate(gammas):
        for j, b in enumerate(betas):
            slow = full_sharing(
                SharingModel(LearningCurve(0, 1, b), gamma=g, market=market, kappa=0.6), sizes
            )
            np.testing.assert_allclose(d.profit_alone[i, j], slow.profit_alone, rtol=1e-10)
            np.testing.assert_allclose(d.profit_shared[i, j], slow.profit_shared, rtol=1e-10)
            assert d.agrees[i, j].tolist() == slow.agrees.tolist()


def test_figure() -> None:
    d = sharing_phase_diagram([1000, 100], np.linspace(0, 1, 20), np.linspace(0.1, 1, 10))
    fig = plot_sharing_phase_diagram(d)
    assert fig.axes[0].get_ylabel().startswith("learning-curve exponent")


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="parameter 'gammas' must lie in"):
        sharing_phase_diagram([10, 20], [1.5], [0.5])
    with pytest.raises(ValueError, match="parameter 'betas' must be finite and > 0"):
        sharing_phase_diagram([10, 20], [0.5], [0.0])
    with pytest.raises(ValueError, match="parameter 'gammas' must be < 1 for Bertrand"):
        sharing_phase_diagram([10, 20], [1.0], [0.5], market="bertrand")
