"""Fine-tuning figures: each function returns a Figure with the expected artists."""

from __future__ import annotations

import pytest

from coopml.finetuning import FineTuningGame, bargain, regime_map, three_regimes_game
from coopml.plots.finetuning import (
    plot_pareto_shares,
    plot_regime_map,
    plot_shares_by_cost_ratio,
    plot_utility_possibility,
)


def test_figures():
    result = bargain(FineTuningGame.quadratic(1.0, 2.0, 1.0), n_grid=201)
    fig = plot_utility_possibility(result)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert "Pareto optimal" in labels and any(lab.startswith("nash") for lab in labels)
    assert len(plot_pareto_shares(result).axes[0].patches) == 1
    assert len(plot_shares_by_cost_ratio().axes[0].lines) == 5
    m = regime_map(three_regimes_game, [0.0, 0.9], [0.0, 2.0])
    assert len(plot_regime_map(m).axes) == 3


def test_figure_validation():
    with pytest.raises(TypeError, match="parameter 'result' must be a FineTuningBargain"):
        plot_utility_possibility("x")
    lattice = bargain(FineTuningGame.quadratic(1.0, [1, 2], [1, 1]), shares="per_domain", n_grid=3)
    with pytest.raises(ValueError, match="shares='common'"):
        plot_pareto_shares(lattice)
    with pytest.raises(ValueError, match="parameter 'kappas' must be a non-empty sequence"):
        plot_shares_by_cost_ratio([0.0, 1.0])
    with pytest.raises(TypeError, match="parameter 'result' must be a RegimeMap"):
        plot_regime_map(None)
