"""Bargaining solutions on utility-possibility sets.

A bargaining problem is a utility-possibility set ``S`` (a parametrised curve, a finite
set of outcomes, or a convex set described to cvxpy) and a disagreement point ``d``.
This package computes the Nash, Kalai-Smorodinsky, egalitarian and utilitarian
solutions and the Pareto frontier (on a curve: a :class:`ParetoSet`, a union of
intervals and isolated points) for any number of players (and their closed forms
under transferable utility, :func:`transferable_utility_split`); each solution reports the
chosen point, its utilities and whether it is Pareto optimal. It is shared by the
fine-tuning games (:mod:`coopml.finetuning`) and the competition models.

Examples
--------
>>> import numpy as np
>>> from coopml.bargaining import UtilityCurve, nash_bargaining, pareto_frontier
>>> curve = UtilityCurve(lambda t: np.column_stack([t, 1 - t**2]))
>>> round(nash_bargaining(curve).parameter, 6)
0.57735
>>> pareto_frontier(curve).intervals
((0.0, 1.0),)
"""

from collections.abc import Callable

from numpy.typing import ArrayLike

from coopml.bargaining.egalitarian import egalitarian
from coopml.bargaining.kalai_smorodinsky import ideal_point, kalai_smorodinsky
from coopml.bargaining.nash_bargaining import nash_bargaining
from coopml.bargaining.pareto import pareto_frontier, pareto_mask
from coopml.bargaining.result import BargainingSolution, ParetoFrontier, ParetoSet
from coopml.bargaining.transferable import TU_RULES, transferable_utility_split
from coopml.bargaining.utilitarian import utilitarian
from coopml.bargaining.utility_sets import (
    ConvexUtilitySet,
    FiniteUtilitySet,
    UtilityCurve,
    UtilitySet,
)

SOLUTIONS: dict[str, Callable[[UtilitySet, ArrayLike | None], BargainingSolution]] = {
    "nash": nash_bargaining,
    "kalai_smorodinsky": kalai_smorodinsky,
    "egalitarian": egalitarian,
    "utilitarian": utilitarian,
}
"""The four bargaining solutions by name, each ``f(problem, disagreement)``."""

__all__ = [
    "SOLUTIONS",
    "TU_RULES",
    "BargainingSolution",
    "ConvexUtilitySet",
    "FiniteUtilitySet",
    "ParetoFrontier",
    "ParetoSet",
    "UtilityCurve",
    "UtilitySet",
    "egalitarian",
    "ideal_point",
    "kalai_smorodinsky",
    "nash_bargaining",
    "pareto_frontier",
    "pareto_mask",
    "transferable_utility_split",
    "utilitarian",
]
