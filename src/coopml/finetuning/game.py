r"""The fine-tuning game between one generalist and :math:`n` domain specialists.

Laufer, Kleinberg & Heidari (2023): a generalist G invests first and brings a
general-purpose model to performance :math:`\alpha_0` at cost :math:`\phi_0(\alpha_0)`;
specialist :math:`i` then adapts it to :math:`\alpha_i \ge \alpha_0` at cost
:math:`\phi_i(\alpha_i - \alpha_0)` and earns :math:`r_i(\alpha_i)`, of which the
bargained share :math:`\delta_i` goes to G:

.. math::

    U_G = \sum_{i \text{ takes part}} \delta_i r_i(\alpha_i) - \phi_0(\alpha_0), \qquad
    U_i = (1 - \delta_i) r_i(\alpha_i) - \phi_i(\alpha_i - \alpha_0).

Order of play: bargain :math:`\delta` -> G invests (or abstains) -> each specialist
contributes (:math:`\alpha_i > \alpha_0`), free-rides (:math:`\alpha_i = \alpha_0`) or
abstains -> revenue is split. G's investment is shared by all domains (a positive
spillover). The disagreement point is :math:`(0, \dots, 0)`.

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from coopml._validation import check_names, check_positive
from coopml.finetuning._spec import GameSpec, validation_message
from coopml.finetuning.costs import Cost, PolynomialCost
from coopml.finetuning.revenue import LinearRevenue, Revenue

__all__ = ["FineTuningGame", "Specialist"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Specialist:
    """A domain specialist: its adaptation cost, its domain's revenue and a name.

    Examples
    --------
    >>> s = Specialist(PolynomialCost.quadratic(1.0), LinearRevenue(2.0), name="legal")
    >>> s.closed_form
    True
    """

    cost: Cost
    revenue: Revenue
    name: str = "specialist"

    def __post_init__(self) -> None:
        if not isinstance(self.cost, Cost):
            raise TypeError(
                "parameter 'cost' must be a PolynomialCost, CallableCost or an object with "
                f"'fixed', 'variable' and 'marginal'; got {type(self.cost).__name__}"
            )
        if not isinstance(self.revenue, Revenue):
            raise TypeError(
                "parameter 'revenue' must be a LinearRevenue, PowerRevenue, CallableRevenue or "
                f"a callable object with 'marginal'; got {type(self.revenue).__name__}"
            )

    @property
    def analytic(self) -> bool:
        """Linear revenue and a polynomial cost of degree <= 2: best responses in closed form."""
        return (
            isinstance(self.revenue, LinearRevenue)
            and isinstance(self.cost, PolynomialCost)
            and self.cost.degree <= 2
        )

    @property
    def closed_form(self) -> bool:
        """Linear revenue and a pure quadratic cost: the derived closed forms apply."""
        return (
            isinstance(self.revenue, LinearRevenue)
            and isinstance(self.cost, PolynomialCost)
            and self.cost.is_pure_quadratic
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description."""
        return {"name": self.name, "cost": _describe(self.cost), "revenue": _describe(self.revenue)}


@dataclass(frozen=True)
class FineTuningGame:
    """One generalist and ``n`` specialists (Laufer, Kleinberg & Heidari 2023).

    Parameters
    ----------
    generalist_cost : Cost
        ``phi_0`` of the generalist's performance ``alpha_0``.
    specialists : sequence of Specialist
        One per domain; names must be distinct.
    alpha_max : float, optional
        Upper bound on every performance level searched by the numerical solver.
        Default: found automatically by doubling until the cost of a further step
        exceeds all the revenue it could bring (exact for concave revenue and convex
        cost; pass it for unusual callables).

    Examples
    --------
    >>> game = FineTuningGame.quadratic(c0=1.0, c1=2.0, revenue=1.0)
    >>> game.n_specialists, game.closed_form, game.names
    (1, True, ('specialist',))
    """

    generalist_cost: Cost
    specialists: tuple[Specialist, ...]
    alpha_max: float | None = None
    _bounds: tuple[float, Array] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.generalist_cost, Cost):
            raise TypeError(
                "parameter 'generalist_cost' must be a PolynomialCost, CallableCost or an object "
                "with 'fixed', 'variable' and 'marginal'; got "
                f"{type(self.generalist_cost).__name__}"
            )
        specialists = (
            (self.specialists,)
            if isinstance(self.specialists, Specialist)
            else tuple(self.specialists)
        )
        if not specialists:
            raise ValueError("parameter 'specialists' must hold at least one Specialist; got none")
        for s in specialists:
            if not isinstance(s, Specialist):
                raise TypeError(
                    f"parameter 'specialists' must hold Specialist objects; got {type(s).__name__}"
                )
        names = [s.name for s in specialists]
        if len(set(names)) < len(names) and set(names) == {"specialist"}:
            specialists = tuple(
                Specialist(s.cost, s.revenue, name=f"specialist_{i + 1}")
                for i, s in enumerate(specialists)
            )
        check_names("specialists", [s.name for s in specialists], len(specialists))
        object.__setattr__(self, "specialists", specialists)
        if self.alpha_max is not None:
            object.__setattr__(self, "alpha_max", check_positive("alpha_max", self.alpha_max))

    @classmethod
    def quadratic(
        cls,
        c0: float,
        c1: float | Sequence[float],
        revenue: float | Sequence[float],
        *,
        names: Sequence[str] | None = None,
    ) -> FineTuningGame:
        """The closed-form game: ``phi_0 = c0 a0^2``, ``phi_i = c_i (a_i - a0)^2``,
        ``r_i(a) = revenue_i * a``. Scalars give one specialist; equal-length sequences give
        several.

        Examples
        --------
        >>> FineTuningGame.quadratic(1.0, [1.0, 2.0], [1.0, 3.0]).names
        ('specialist_1', 'specialist_2')
        """
        check_positive("c0", c0)
        c = np.atleast_1d(np.asarray(c1, dtype=np.float64))
        r = np.atleast_1d(np.asarray(revenue, dtype=np.float64))
        if c.ndim != 1 or r.ndim != 1 or c.shape != r.shape:
            raise ValueError(
                "parameters 'c1' and 'revenue' must be scalars or sequences of equal length; "
                f"got {c.shape[0]} and {r.shape[0]}"
            )
        for ci in c:
            check_positive("c1", float(ci))
        for ri in r:
            check_positive("revenue", float(ri))
        if names is None:
            names = (
                ["specialist"] if c.size == 1 else [f"specialist_{i + 1}" for i in range(c.size)]
            )
        names = check_names("names", names, c.size)
        return cls(
            PolynomialCost.quadratic(c0),
            tuple(
                Specialist(PolynomialCost.quadratic(float(ci)), LinearRevenue(float(ri)), name)
                for ci, ri, name in zip(c, r, names, strict=True)
            ),
        )

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FineTuningGame:
        """Build a game from plain data (JSON / TOML): polynomial costs, linear revenue.

        ``{"generalist": {"quadratic": c0, "linear": a0, "fixed": F0},
        "specialists": [{"name": ..., "quadratic": c_i, "linear": a_i, "fixed": F_i,
        "higher": [a_3, ...], "revenue": r_i}, ...]}``. Missing keys default to 0
        (``quadratic`` and ``revenue`` are required).

        Examples
        --------
        >>> g = FineTuningGame.from_dict({"generalist": {"quadratic": 1},
        ...     "specialists": [{"quadratic": 2, "revenue": 1, "fixed": 0.1}]})
        >>> g.specialists[0].cost.fixed
        0.1
        """
        try:
            model = GameSpec.model_validate(dict(spec))
        except ValidationError as exc:
            raise ValueError(validation_message(exc)) from None
        n = len(model.specialists)
        names = [
            s.name or (f"specialist_{i + 1}" if n > 1 else "specialist")
            for i, s in enumerate(model.specialists)
        ]
        return cls(
            model.generalist.build(),
            tuple(
                Specialist(s.build(), LinearRevenue(s.revenue), name=name)
                for s, name in zip(model.specialists, names, strict=True)
            ),
        )

    @property
    def n_specialists(self) -> int:
        """Number of specialists ``n``."""
        return len(self.specialists)

    @property
    def names(self) -> tuple[str, ...]:
        """Specialist names."""
        return tuple(s.name for s in self.specialists)

    @property
    def closed_form(self) -> bool:
        """Whether every cost is pure quadratic and every revenue linear (derived closed forms)."""
        g = self.generalist_cost
        return (
            isinstance(g, PolynomialCost)
            and g.is_pure_quadratic
            and all(s.closed_form for s in self.specialists)
        )

    @property
    def quadratic_parameters(self) -> tuple[float, Array, Array]:
        """``(c0, c, r)`` of a closed-form game."""
        if not self.closed_form:
            raise ValueError(
                "the game must have pure quadratic costs and linear revenue for the closed forms; "
                "use method='numerical'"
            )
        g = self.generalist_cost
        assert isinstance(g, PolynomialCost)
        c = np.array([s.cost.coefficients[1] for s in self.specialists])  # type: ignore[attr-defined]
        r = np.array([s.revenue.slope for s in self.specialists])  # type: ignore[attr-defined]
        return g.coefficients[1], c, r

    def search_bounds(self) -> tuple[float, Array]:
        """``(A0, X)``: the range ``[0, A0]`` of the generalist's search and ``[0, X_i]`` of
        specialist ``i``'s increment (see ``alpha_max``)."""
        if self._bounds is None:
            object.__setattr__(self, "_bounds", self._compute_bounds())
        assert self._bounds is not None
        return self._bounds

    def _compute_bounds(self) -> tuple[float, Array]:
        n = self.n_specialists
        if self.alpha_max is not None:
            return float(self.alpha_max), np.full(n, float(self.alpha_max))

        def unprofitable(s: Specialist) -> Callable[[float], bool]:
            return lambda x: float(s.revenue(x) - s.revenue(0.0)) < float(s.cost.variable(x))

        X = np.array(
            [_doubling(unprofitable(s), f"specialist {s.name!r}") for s in self.specialists]
        )

        def generalist_done(a: float) -> bool:
            gain = sum(
                float(s.revenue(a + x) - s.revenue(x))
                for s, x in zip(self.specialists, X, strict=True)
            )
            return gain < float(self.generalist_cost.variable(a))

        return _doubling(generalist_done, "the generalist"), X

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description."""
        return {
            "generalist_cost": _describe(self.generalist_cost),
            "specialists": [s.to_dict() for s in self.specialists],
        }


def _doubling(done: Callable[[float], bool], who: str) -> float:
    for k in range(-20, 61):
        if done(2.0**k):
            return 2.0**k
    raise ValueError(
        f"the costs of {who} never outgrow its revenue up to 2**60; costs must grow faster "
        "than revenue (pass 'alpha_max' to bound the search)"
    )


def _describe(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else repr(obj)
