"""The vectorised phase diagrams against the closed form and the slow paths."""

from __future__ import annotations

import time

import numpy as np
import pytest

from coopml.competition import (
    LearningCurve,
    SharingModel,
    full_sharing,
    full_sharing_threshold,
    nash_bargaining_sharing,
    profit_gain_curves,
    sharing_phase_diagram,
    size_ratio_phase_diagram,
)
from coopml.plots.competition import (
    plot_profit_gains,
    plot_sharing_fractions,
    plot_sharing_phase_diagram,
)


def test_matches_closed_form_on_a_200_by_200_grid() -> None:
    gammas, betas = np.linspace(0, 1, 200), np.linspace(0.05, 2, 200)
    start = time.perf_counter()
    d = sharing_phase_diagram([1000, 100], gammas, betas)  # with bargaining in every cell
    seconds = time.perf_counter() - start
    assert seconds < 10.0  # about 1 s on an idle core
    threshold = np.array(
        [full_sharing_threshold(LearningCurve(0, 1, b), [1000, 100]) for b in betas]
    )
    expected = gammas[:, None] < threshold[None, :]
    assert np.array_equal(d.unanimous, expected)
    assert d.agrees[..., 1].all()  # the smaller firm always agrees
    assert 0 < d.unanimous.mean() < 1
    assert np.array_equal(d.phase == 2, d.unanimous)
    frame = d.to_dataframe()
    assert len(frame) == 200 * 200
    assert set(frame["phase"]) <= {"full sharing", "partial sharing", "no sharing"}
    # the larger firm's Nash fraction falls with similarity and with beta (off full sharing)
    frac = d.fractions[..., 0]
    partial = d.phase == 1
    assert np.all(
        np.diff(np.where(partial, frac, np.nan), axis=0)[partial[1:] & partial[:-1]] <= 1e-9
    )


def test_without_bargaining_is_fast_and_equal() -> None:
    gammas, betas = np.linspace(0, 1, 200), np.linspace(0.05, 2, 200)
    start = time.perf_counter()
    d = sharing_phase_diagram([1000, 100], gammas, betas, bargaining=False)
    assert time.perf_counter() - start < 2.0
    assert d.fractions is None and d.agreement is None
    full = sharing_phase_diagram([1000, 100], gammas[::20], betas[::20])
    assert np.array_equal(d.unanimous[::20, ::20], full.unanimous)


@pytest.mark.parametrize("market", ["cournot", "bertrand"])
def test_matches_slow_path(market: str) -> None:
    gammas, betas, sizes = [0.0, 0.3, 0.9], [0.1, 0.6], [50, 200, 400]
    d = sharing_phase_diagram(sizes, gammas, betas, market=market, kappa=0.6)
    assert d.fractions is None  # bargaining cells are for two firms
    for i, g in enumerate(gammas):
        for j, b in enumerate(betas):
            slow = full_sharing(
                SharingModel(LearningCurve(0, 1, b), gamma=g, market=market, kappa=0.6), sizes
            )
            np.testing.assert_allclose(d.profit_alone[i, j], slow.profit_alone, rtol=1e-10)
            np.testing.assert_allclose(d.profit_shared[i, j], slow.profit_shared, rtol=1e-10)
            assert d.agrees[i, j].tolist() == slow.agrees.tolist()


@pytest.mark.parametrize(
    ("market", "quality"), [("cournot", "cost"), ("bertrand", "cost"), ("cournot", "demand")]
)
def test_vectorised_bargaining_matches_the_general_solver(market: str, quality: str) -> None:
    """The 1-D fast path (smaller firm shares all) reaches the 2-D solver's Nash product."""
    rng = np.random.default_rng(7)
    for _ in range(6):
        gamma, beta = rng.uniform(0, 0.97), rng.uniform(0.05, 2)
        sizes = [float(rng.integers(200, 5000)), float(rng.integers(10, 200))]
        d = sharing_phase_diagram(sizes, [gamma], [beta], market, quality=quality)
        model = SharingModel(LearningCurve(0, 1, beta), gamma=gamma, market=market, quality=quality)
        slow = nash_bargaining_sharing(model, sizes)
        assert slow.agreement == bool(d.agreement[0, 0])
        if slow.agreement:
            fast = np.log(d.profit_nash[0, 0] - d.profit_alone[0, 0]).sum()
            # gains can be ~1e-10 of profits ~0.15: allow cancellation noise in the logs
            assert fast >= np.log(slow.gains).sum() - 1e-6
            assert d.fractions[0, 0, 1] == 1.0
            np.testing.assert_allclose(d.fractions[0, 0], slow.fractions, rtol=1e-2, atol=1e-6)


def test_size_ratio_diagram() -> None:
    gammas, ratios = np.linspace(0, 1, 200), np.linspace(0.01, 1, 200)
    start = time.perf_counter()
    d = size_ratio_phase_diagram(gammas, ratios, beta=0.5)
    assert time.perf_counter() - start < 10.0
    threshold = np.array(
        [full_sharing_threshold(LearningCurve(0, 1, 0.5), [1000, 1000 * r]) for r in ratios]
    )
    assert np.array_equal(d.unanimous, gammas[:, None] < threshold[None, :])
    assert d.unanimous[:, -1].all()  # equal sizes always share
    # more equal sizes make full sharing more likely: the share region grows with the ratio
    assert np.all(np.diff(d.unanimous.sum(axis=0)) >= 0)
    assert d.to_dataframe()["size_ratio"].max() == pytest.approx(1.0)


def test_profit_gain_curves_and_figures() -> None:
    c = profit_gain_curves([1000, 100], np.linspace(0, 1, 21), beta=0.5)
    gains = c.relative_gain_shared[:, 0]
    assert np.all(gains[:, 1] > 0)  # the small firm always gains from full sharing
    assert np.all(np.diff(gains[:, 0]) < 0)  # the large firm's gain falls with similarity
    assert len(plot_profit_gains(c, gamma=0.3).axes[0].lines) == 6
    d = sharing_phase_diagram([1000, 100], np.linspace(0, 1, 20), np.linspace(0.1, 1, 10))
    assert plot_sharing_phase_diagram(d).axes[0].get_ylabel().startswith("learning-curve")
    assert plot_sharing_fractions(d).axes[0].get_xlabel() == "product similarity γ"
    three = sharing_phase_diagram([10, 20, 30], [0.1, 0.5], [0.5, 1.0])
    assert plot_sharing_phase_diagram(three).axes[0].get_title().startswith("Data sharing")
    with pytest.raises(ValueError, match="bargaining results"):
        plot_sharing_fractions(three)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="parameter 'gammas' must lie in"):
        sharing_phase_diagram([10, 20], [1.5], [0.5])
    with pytest.raises(ValueError, match="parameter 'betas' must be finite and > 0"):
        sharing_phase_diagram([10, 20], [0.5], [0.0])
    with pytest.raises(ValueError, match="parameter 'gammas' must be < 1 for Bertrand"):
        sharing_phase_diagram([10, 20], [1.0], [0.5], market="bertrand")
    with pytest.raises(ValueError, match="parameter 'quality' must be one of"):
        sharing_phase_diagram([10, 20], [0.5], [0.5], quality="price")
    with pytest.raises(ValueError, match="parameter 'ratios' must lie in"):
        size_ratio_phase_diagram([0.5], [0.0], beta=0.5)
