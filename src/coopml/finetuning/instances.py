r"""Reference instances of the fine-tuning game.

:func:`disconnected_pareto_game` is a two-specialist game (common share) whose
Pareto-optimal shares are *disconnected* -- the phenomenon Laufer, Kleinberg & Heidari
(2023) point out for several specialists. Specialist ``b`` has an entry cost: for
shares around 0.78-0.82 the generalist invests exactly enough to make ``b`` enter (``b``
is indifferent), and this over-investment raises specialist ``a``'s utility together
with the generalist's, so the shares just below that range are dominated.

The instance was found by a search over fixed costs and revenues (coopml's own, not
from the paper); its Pareto set is about ``[0, 0.7746] U [0.7959, 0.8178]``.

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

from coopml.finetuning.costs import PolynomialCost
from coopml.finetuning.game import FineTuningGame, Specialist
from coopml.finetuning.revenue import LinearRevenue

__all__ = ["disconnected_pareto_game", "three_regimes_game"]


def disconnected_pareto_game() -> FineTuningGame:
    """Two specialists whose common-share Pareto set has two intervals.

    Generalist ``phi_0 = a0^2``; specialist ``a``: ``phi = x^2``, ``r = alpha``;
    specialist ``b``: ``phi = 0.2 + 0.5 x^2`` (entry cost 0.2), ``r = alpha``.

    Examples
    --------
    >>> disconnected_pareto_game().names
    ('a', 'b')
    """
    return FineTuningGame(
        PolynomialCost.quadratic(1.0),
        (
            Specialist(PolynomialCost.quadratic(1.0), LinearRevenue(1.0), "a"),
            Specialist(PolynomialCost.quadratic(0.5, fixed=0.2), LinearRevenue(1.0), "b"),
        ),
    )


def three_regimes_game(linear: float = 0.8, fixed: float = 1.0) -> FineTuningGame:
    """Three specialists that contribute, free-ride and abstain at share 1/2.

    ``a``: quadratic cost; ``b``: plus a linear part ``linear``; ``c``: plus the linear
    part and an entry cost ``fixed``. Revenue ``r = alpha`` everywhere; generalist
    ``phi_0 = a0^2``.

    Examples
    --------
    >>> from coopml.finetuning import subgame_perfect_equilibrium
    >>> subgame_perfect_equilibrium(three_regimes_game(), 0.5).regimes
    ('contribute', 'free-ride', 'abstain')
    """
    return FineTuningGame(
        PolynomialCost.quadratic(1.0),
        (
            Specialist(PolynomialCost.quadratic(1.0), LinearRevenue(1.0), "a"),
            Specialist(PolynomialCost.quadratic(1.0, linear=linear), LinearRevenue(1.0), "b"),
            Specialist(
                PolynomialCost.quadratic(1.0, linear=linear, fixed=fixed), LinearRevenue(1.0), "c"
            ),
        ),
    )
