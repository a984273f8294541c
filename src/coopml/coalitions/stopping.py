r"""Composable stopping rules for Monte Carlo valuation.

A sampling estimator (e.g. :func:`coopml.coalitions.monte_carlo.monte_carlo_shapley`)
draws samples in batches and, after each batch, asks its stopping rule whether to stop,
passing a :class:`SamplerState`. Rules come in two kinds:

* **budget** rules (:class:`MaxEvaluations`, :class:`MaxPermutations`, :class:`MaxTime`):
  firing means the budget ran out, so the estimate is *not* converged;
* **convergence** rules (:class:`StandardErrorBelow`, :class:`RankStable`): firing
  means the estimate met its accuracy criterion.

Rules compose: ``a | b`` stops when either fires, ``a & b`` when both do. The rule
that fired is reported as a sub-expression (:meth:`StoppingRule.check`), and an
estimate is ``converged`` only if a convergence rule took part in the firing. The
design follows the stopping criteria of pyDVL (Semmler et al., "pyDVL: the Python
Data Valuation Library", 2023), written from scratch.

Standard errors are those of the sample mean, :math:`\hat\sigma_i / \sqrt{m}`, over
:math:`m` i.i.d. samples (Castro, Gómez & Tejada, "Polynomial calculation of the
Shapley value based on sampling", Computers & Operations Research 36(5), 2009).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from coopml._validation import check_choice, check_int, check_positive

__all__ = [
    "MaxEvaluations",
    "MaxPermutations",
    "MaxTime",
    "RankStable",
    "SamplerState",
    "StandardErrorBelow",
    "StoppingRule",
]


@dataclass(frozen=True, kw_only=True)
class SamplerState:
    """What a stopping rule sees after each batch of a sampling estimator.

    Parameters
    ----------
    n_samples : int
        Number of i.i.d. samples so far (permutations, or antithetic permutation pairs).
    n_permutations : int
        Number of permutations drawn so far (twice ``n_samples`` with antithetic pairs).
    n_evaluations : int
        Number of distinct coalition values evaluated so far.
    elapsed : float
        Seconds since sampling started.
    means : ndarray of shape (n_players,)
        Current estimates.
    stderr : ndarray of shape (n_players,)
        Standard errors of ``means`` (NaN while fewer than two samples).
    previous_means : ndarray of shape (n_players,) or None
        Estimates at the previous check; ``None`` at the first check.

    Examples
    --------
    >>> s = SamplerState(n_samples=10, n_permutations=20, n_evaluations=50, elapsed=0.1,
    ...                  means=np.array([1.0, 2.0]), stderr=np.array([0.1, 0.2]))
    >>> MaxPermutations(20)(s)
    True
    """

    n_samples: int
    n_permutations: int
    n_evaluations: int
    elapsed: float
    means: NDArray[np.float64]
    stderr: NDArray[np.float64]
    previous_means: NDArray[np.float64] | None = None


class StoppingRule(ABC):
    """A criterion that tells a sampler when to stop; compose with ``|`` and ``&``.

    Subclasses implement :meth:`check` and ``__str__``. ``converges`` says whether
    firing means the estimate converged (``True``) or a budget ran out (``False``).
    Estimators only accept rules that are sure to fire eventually, i.e. that contain a
    budget (``MaxPermutations``, ``MaxTime``, or ``MaxEvaluations`` within the number of
    coalitions) on every ``&`` branch.

    Examples
    --------
    >>> rule = MaxEvaluations(1000) | StandardErrorBelow(0.001)
    >>> str(rule)
    'MaxEvaluations(1000) | StandardErrorBelow(0.001)'
    """

    #: Whether firing means convergence (as opposed to an exhausted budget).
    converges: bool = False

    @abstractmethod
    def check(self, state: SamplerState) -> StoppingRule | None:
        """Return the (sub-)rule that fires on ``state``, or ``None`` to continue.

        Composite rules evaluate every part (stateful parts such as
        :class:`RankStable` count every check) and return the sub-expression that fired.
        """

    def _bounded(self, n_coalitions: int) -> bool:
        """Whether the rule must eventually fire when only ``n_coalitions`` exist.

        Estimators refuse unbounded rules; override in a custom budget rule.
        """
        return False

    def __call__(self, state: SamplerState) -> bool:
        """Whether sampling should stop."""
        return self.check(state) is not None

    def __or__(self, other: StoppingRule) -> StoppingRule:
        return _Or(self, other) if isinstance(other, StoppingRule) else NotImplemented

    def __and__(self, other: StoppingRule) -> StoppingRule:
        return _And(self, other) if isinstance(other, StoppingRule) else NotImplemented

    def __repr__(self) -> str:
        return str(self)


class _Budget(StoppingRule):
    """A leaf rule that fires when ``state.<field>`` reaches ``limit``."""

    field: str

    def __init__(self, n: int) -> None:
        self.limit = check_int("n", n, minimum=1)

    def check(self, state: SamplerState) -> StoppingRule | None:
        return self if getattr(state, self.field) >= self.limit else None

    def _bounded(self, n_coalitions: int) -> bool:
        return True

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.limit})"


class MaxEvaluations(_Budget):
    """Stop once ``n`` distinct coalition values have been evaluated (a budget).

    Memoised estimators never evaluate a coalition twice, so with ``n > 2**n_players``
    this rule alone can never fire; estimators refuse such a rule.

    Examples
    --------
    >>> MaxEvaluations(1000)
    MaxEvaluations(1000)
    """

    field = "n_evaluations"

    def _bounded(self, n_coalitions: int) -> bool:
        return self.limit <= n_coalitions


class MaxPermutations(_Budget):
    """Stop once ``n`` permutations have been drawn (a budget; an antithetic pair is two).

    Examples
    --------
    >>> MaxPermutations(500)
    MaxPermutations(500)
    """

    field = "n_permutations"


class MaxTime(StoppingRule):
    """Stop once ``seconds`` of wall-clock time have elapsed (a budget).

    Rules are checked between batches, so the last batch may overrun the limit.

    Examples
    --------
    >>> MaxTime(60)
    MaxTime(60)
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = check_positive("seconds", seconds)

    def check(self, state: SamplerState) -> StoppingRule | None:
        return self if state.elapsed >= self.seconds else None

    def _bounded(self, n_coalitions: int) -> bool:
        return True

    def __str__(self) -> str:
        return f"MaxTime({self.seconds:g})"


class StandardErrorBelow(StoppingRule):
    """Stop once every player's standard error is at most ``tol`` (convergence).

    Parameters
    ----------
    tol : float
        Threshold, > 0.
    relative_to : {None, "total", "max"}
        ``None``: absolute threshold ``tol``. ``"total"``: ``tol * |sum_i means_i|``,
        i.e. a fraction of ``|v(N) - v(∅)|`` for efficient estimates. ``"max"``:
        ``tol * max_i |means_i|``, a fraction of the largest value.
    min_samples : int
        Never fire before this many samples (standard errors from few samples are
        unreliable); at least 2.

    Examples
    --------
    >>> rule = StandardErrorBelow(0.01, relative_to="total")
    >>> rule
    StandardErrorBelow(0.01, relative_to='total')
    >>> s = SamplerState(n_samples=8, n_permutations=8, n_evaluations=20, elapsed=0.0,
    ...                  means=np.array([3.0, 7.0]), stderr=np.array([0.05, 0.09]))
    >>> rule(s)
    True
    """

    converges = True

    def __init__(
        self,
        tol: float,
        relative_to: Literal["total", "max"] | None = None,
        *,
        min_samples: int = 8,
    ) -> None:
        self.tol = check_positive("tol", tol)
        if relative_to is not None:
            check_choice("relative_to", relative_to, ("total", "max"))
        self.relative_to = relative_to
        self.min_samples = check_int("min_samples", min_samples, minimum=2)

    def check(self, state: SamplerState) -> StoppingRule | None:
        if state.n_samples < self.min_samples:
            return None
        scale = {
            None: 1.0,
            "total": abs(float(np.sum(state.means))),
            "max": float(np.max(np.abs(state.means))),
        }[self.relative_to]
        return self if float(np.max(state.stderr)) <= self.tol * scale else None

    def __str__(self) -> str:
        extra = "" if self.relative_to is None else f", relative_to={self.relative_to!r}"
        extra += "" if self.min_samples == 8 else f", min_samples={self.min_samples}"
        return f"StandardErrorBelow({self.tol:g}{extra})"


class RankStable(StoppingRule):
    """Stop once the ranking of players is unchanged for ``n_checks`` consecutive checks.

    The ranking is the order of ``state.means`` (ties broken by player index); each
    check compares it with the ranking of ``state.previous_means``. The rule counts
    checks, so it is stateful: estimators work on a copy and leave yours untouched.

    Examples
    --------
    >>> rule = RankStable(2)
    >>> def s(prev, cur):
    ...     return SamplerState(n_samples=9, n_permutations=9, n_evaluations=9, elapsed=0.0,
    ...                         means=np.array(cur), stderr=np.zeros(2),
    ...                         previous_means=np.array(prev))
    >>> rule(s([1.0, 2.0], [1.1, 2.0])), rule(s([1.1, 2.0], [1.2, 2.0]))
    (False, True)
    """

    converges = True

    def __init__(self, n_checks: int) -> None:
        self.n_checks = check_int("n_checks", n_checks, minimum=1)
        self._streak = 0

    def check(self, state: SamplerState) -> StoppingRule | None:
        previous = state.previous_means
        same = previous is not None and np.array_equal(
            np.argsort(-state.means, kind="stable"), np.argsort(-previous, kind="stable")
        )
        self._streak = self._streak + 1 if same else 0
        return self if self._streak >= self.n_checks else None

    def __str__(self) -> str:
        return f"RankStable({self.n_checks})"


class _Composite(StoppingRule):
    symbol: str

    def __init__(self, left: StoppingRule, right: StoppingRule) -> None:
        self.left, self.right = left, right
        self.converges = left.converges or right.converges

    def _part(self, rule: StoppingRule) -> str:
        wrap = isinstance(rule, _Composite) and rule.symbol != self.symbol
        return f"({rule})" if wrap else str(rule)

    def __str__(self) -> str:
        return f"{self._part(self.left)} {self.symbol} {self._part(self.right)}"


class _Or(_Composite):
    symbol = "|"

    def check(self, state: SamplerState) -> StoppingRule | None:
        left, right = self.left.check(state), self.right.check(state)
        if left is not None and right is not None:
            return _Or(left, right)
        return left if right is None else right

    def _bounded(self, n_coalitions: int) -> bool:
        return self.left._bounded(n_coalitions) or self.right._bounded(n_coalitions)


class _And(_Composite):
    symbol = "&"

    def check(self, state: SamplerState) -> StoppingRule | None:
        left, right = self.left.check(state), self.right.check(state)
        return None if left is None or right is None else _And(left, right)

    def _bounded(self, n_coalitions: int) -> bool:
        return self.left._bounded(n_coalitions) and self.right._bounded(n_coalitions)
