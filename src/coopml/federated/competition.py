r"""How competition enters the round game: the payoff matrix of accuracies.

Every competition model of the round game (seed 004, CoCoGen+, arXiv 2604.14886; the
forms are a **reconstruction**) makes organisation :math:`i`'s utility affine in the
accuracies :math:`A_j` that the organisations experience,

.. math::

    u_i(s) = \sum_j G_{ij} A_j(s) + k_i - c_i s_i ,

with a payoff matrix :math:`G` (:math:`G_{ii} \ge 0`, row sums :math:`B_i = \sum_j G_{ij}
> 0`). Any such game is a weighted potential game with weights :math:`B_i` (see
:mod:`coopml.federated.round_game`). Two models ship:

* :class:`LinearCompetition` (the original reconstruction): :math:`G_{ii} = \theta_i`,
  :math:`G_{ij} = -\gamma_i\theta_j/(N-1)`, a linear penalty on rivals' accuracy.
* :class:`MarketCompetition`: the organisations sell differentiated products in the
  toolkit's oligopoly (:mod:`coopml.competition.market_models`, Cournot or Bertrand,
  Singh & Vives 1984) with product similarity :math:`\gamma`. Accuracy is quality, which
  lowers marginal cost: with demand intercept 1, organisation :math:`i`'s cost is
  :math:`1 - m_i`, margin :math:`m_i = m_0 + A_i`. Its market profit :math:`\pi_i(m)` is
  the equilibrium profit, which depends on its own quality *relative to its rivals'*.
  The round game uses its first-order expansion around the round's accuracies without
  generation :math:`A^0_i = P(E_0) - \mu h_i^0`, in units of a monopolist's marginal
  profit (so at :math:`\gamma = 0` both models coincide up to a constant):

  .. math::

      u_i = \frac{\theta_i}{m^0_i/2}\Big[\pi_i(m^0) + \sum_j
      \frac{\partial\pi_i}{\partial m_j}(m^0)\,(A_j - A^0_j)\Big] - c_i s_i .

  The expansion keeps the game an exact weighted potential game; generation moves
  accuracies by a few points, so the error is second order (the sweep script
  ``examples/fl_competition_sweeps.py`` reports it).

Examples
--------
>>> import numpy as np
>>> theta, A0 = np.array([1.0, 1.0]), np.array([0.8, 0.7])
>>> G, k = LinearCompetition().payoff(theta, np.array([0.5, 0.5]), A0)
>>> G.tolist(), k.tolist()
([[1.0, -0.5], [-0.5, 1.0]], [0.0, 0.0])
>>> G, k = MarketCompetition("cournot").payoff(theta, np.array([0.0, 0.0]), A0)
>>> G.round(6).tolist()                   # no rivalry: a monopolist in each market
[[1.0, 0.0], [0.0, 1.0]]
>>> G, k = MarketCompetition("cournot").payoff(theta, np.array([0.5, 0.5]), A0)
>>> G.round(4).tolist()
[[0.8889, -0.2222], [-0.2032, 0.8127]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from coopml._validation import check_choice

__all__ = ["COMPETITION_MODELS", "CompetitionModel", "LinearCompetition", "MarketCompetition"]

FloatArray = NDArray[np.float64]

COMPETITION_MODELS = ("linear", "market")
"""Names accepted by ``RoundGame(competition=...)``."""


@runtime_checkable
class CompetitionModel(Protocol):
    """Maps valuations, competition intensities and reference accuracies to ``(G, k)``.

    ``payoff(theta, gamma, A0)`` returns the payoff matrix ``G`` of shape (N, N) and
    the offsets ``k`` of shape (N,): :math:`u_i = \\sum_j G_{ij} A_j + k_i - c_i s_i`.
    """

    def payoff(
        self, theta: FloatArray, gamma: FloatArray, A0: FloatArray
    ) -> tuple[FloatArray, FloatArray]: ...


@dataclass(frozen=True)
class LinearCompetition:
    r"""Linear penalty on rivals' accuracy: :math:`u_i = \theta_i A_i -
    \tfrac{\gamma_i}{N-1}\sum_{j\ne i}\theta_j A_j - c_i s_i` (the original model)."""

    def payoff(
        self, theta: FloatArray, gamma: FloatArray, A0: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Payoff matrix and offsets (zero); ``A0`` is not used."""
        N = theta.size
        G = np.diag(theta)
        if N > 1:
            G = G - np.outer(gamma, theta) * (1.0 - np.eye(N)) / (N - 1)
        return G, np.zeros(N)


@dataclass(frozen=True)
class MarketCompetition:
    """Competition in a differentiated-products oligopoly where accuracy is quality.

    Parameters
    ----------
    market : {"cournot", "bertrand"}, default "cournot"
        The toolkit's market model (:func:`coopml.competition.equilibrium_profits`).
        Bertrand needs ``gamma < 1``.
    base_margin : float, default 0.0
        Margin :math:`m_0` of a product of zero accuracy (margin = ``base_margin + A``).

    Notes
    -----
    The product similarity is the organisations' common competition intensity, so every
    ``gamma_i`` must be equal. The derivatives of the equilibrium profits come from
    central differences of the closed forms (exact for their piecewise-quadratic
    profits up to rounding).
    """

    market: str = "cournot"
    base_margin: float = 0.0

    def __post_init__(self) -> None:
        check_choice("market", self.market, ("cournot", "bertrand"))
        if not np.isfinite(self.base_margin):
            raise ValueError(f"parameter 'base_margin' must be finite; got {self.base_margin}")

    def payoff(
        self, theta: FloatArray, gamma: FloatArray, A0: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Payoff matrix and offsets of the linearised market profits at ``A0``."""
        from coopml.competition.market_models import equilibrium_profits

        if np.ptp(gamma) > 0:
            raise ValueError(
                "competition='market' needs one product similarity for the market: every "
                f"entry of parameter 'gamma' must be equal; got {gamma.tolist()}"
            )
        similarity = float(gamma[0])
        if self.market == "bertrand" and similarity >= 1:
            raise ValueError(
                f"parameter 'gamma' must be < 1 for Bertrand competition; got {similarity}"
            )
        m0 = self.base_margin + A0
        if np.any(m0 <= 0):
            raise ValueError(
                "market margins base_margin + A0 must be > 0 (accuracy without generation "
                f"A0 = {A0.tolist()}, base_margin = {self.base_margin})"
            )
        N = theta.size
        h = 1e-6 * np.maximum(1.0, m0)
        costs = 1.0 - m0
        # rows: m0, then m0 + h_j e_j, then m0 - h_j e_j (cost falls as margin rises)
        batch = np.vstack([costs, costs - np.diag(h), costs + np.diag(h)])
        profits = np.asarray(equilibrium_profits(1.0, batch, similarity, self.market))
        pi0 = profits[0]
        J = ((profits[1 : N + 1] - profits[N + 1 :]) / (2 * h)[:, None]).T  # J[i, j]
        scale = theta / (m0 / 2.0)
        G = scale[:, None] * J
        k = scale * pi0 - G @ A0
        return np.asarray(G, dtype=np.float64), np.asarray(k, dtype=np.float64)


def resolve(competition: str | CompetitionModel) -> CompetitionModel:
    """The model for a name in :data:`COMPETITION_MODELS`, or the model itself."""
    if isinstance(competition, str):
        check_choice("competition", competition, COMPETITION_MODELS)
        return LinearCompetition() if competition == "linear" else MarketCompetition()
    if not isinstance(competition, CompetitionModel):
        raise TypeError(
            "parameter 'competition' must be 'linear', 'market' or an object with "
            f"payoff(theta, gamma, A0); got {type(competition).__name__}"
        )
    return competition
