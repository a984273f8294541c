r"""Sweeps of the coopetitive FL simulation over competition intensity and label skew.

:func:`sweep` reruns :func:`~coopml.federated.simulation.simulate` for each value of one
parameter -- ``"gamma"`` (every organisation's competition intensity :math:`\gamma`) or
``"alpha"`` (the Dirichlet concentration :math:`\alpha_D` of the split; small means
skewed) -- and records, per strategy, the social welfare, the synthetic samples per
round and the final accuracy. The accuracy curve (and, for ``gamma``, the split, the
generators and :math:`\kappa`) is fitted once and shared by every run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml._serialization import to_jsonable
from coopml._validation import check_choice
from coopml.federated.config import FLConfig
from coopml.federated.simulation import Setup, SimulationResult, prepare, simulate

__all__ = ["SweepResult", "run_sweeps", "sweep"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class SweepResult:
    """Outcome of :func:`sweep` (arrays of shape (n_strategies, n_values)).

    Attributes
    ----------
    parameter : {"gamma", "alpha"}
    values : ndarray of shape (n_values,)
    strategies : tuple of str
    social_welfare : ndarray
        Game welfare summed over rounds.
    social_welfare_measured : ndarray
        Welfare with measured accuracies (NaN without training).
    synthetic : ndarray
        Mean total synthetic samples per round.
    final_accuracy : ndarray
        NaN without training.
    mean_skew : ndarray of shape (n_values,)
        Mean organisation skew :math:`h_i^0` of each run.
    transfers_sum : float
        Largest absolute per-round transfer sum over all runs.
    individually_rational : bool
        Whether the mechanism was individually rational in every run.
    """

    parameter: str
    values: FloatArray
    strategies: tuple[str, ...]
    social_welfare: FloatArray
    social_welfare_measured: FloatArray
    synthetic: FloatArray
    final_accuracy: FloatArray
    mean_skew: FloatArray
    transfers_sum: float
    individually_rational: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary keyed by strategy."""

        def clean(x: FloatArray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in x]

        return to_jsonable(
            {
                "parameter": self.parameter,
                "values": self.values,
                "mean_skew": self.mean_skew,
                "transfers_sum": self.transfers_sum,
                "individually_rational": self.individually_rational,
                "strategies": {
                    name: {
                        "social_welfare": self.social_welfare[k],
                        "social_welfare_measured": clean(self.social_welfare_measured[k]),
                        "synthetic_per_round": self.synthetic[k],
                        "final_accuracy": clean(self.final_accuracy[k]),
                    }
                    for k, name in enumerate(self.strategies)
                },
            }
        )


def sweep(
    config: FLConfig,
    parameter: str,
    values: Sequence[float],
    *,
    rounds: int | None = None,
    train: bool = True,
    base: Setup | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Rerun the simulation for each value of ``parameter`` (``"gamma"`` or ``"alpha"``).

    Examples
    --------
    >>> cfg = FLConfig.model_validate({"rounds": 2, "data": {"dataset": "wine",
    ...     "n_organisations": 3, "min_size": 5},
    ...     "game": {"kappa": 0.8, "curve": {"fit": False, "A_max": 0.97, "a": 2.0, "b": 0.6}}})
    >>> r = sweep(cfg, "gamma", [0.0, 0.5], train=False)
    >>> bool(np.all(r.social_welfare[0] >= r.social_welfare.max(axis=0) - 1e-9))
    True
    """
    parameter = check_choice("parameter", parameter, ("gamma", "alpha"))
    if parameter == "alpha" and config.parties is not None:
        raise ValueError(
            "parameter 'parameter' can be 'alpha' only for a bundled dataset split with "
            "Dirichlet skew; a job with [[parties]] files has fixed organisations "
            "(sweep 'gamma', or set sweep.alpha = [])"
        )
    vals = np.asarray(values, dtype=np.float64)
    R = config.rounds if rounds is None else rounds
    if base is None:
        base = prepare(config, train=train)
    names = tuple(str(s) for s in config.strategies)
    shape = (len(names), vals.size)
    sw, swm, syn, acc = (np.full(shape, np.nan) for _ in range(4))
    skews = np.zeros(vals.size)
    worst, ir = 0.0, True
    total = vals.size * R * len(names)
    offset = 0

    def relay(done: int, _total: int) -> None:
        if progress is not None:
            progress(offset + done, total)

    for j, v in enumerate(vals):
        if parameter == "gamma":
            cfg = config.model_copy(
                update={"game": config.game.model_copy(update={"gamma": float(v)})}
            )
            setup = dataclasses.replace(base, config=cfg, gamma=np.full(base.gamma.size, float(v)))
        else:
            cfg = config.model_copy(
                update={"data": config.data.model_copy(update={"alpha": float(v)})}
            )
            setup = prepare(cfg, curve=base.curve, train=train)
        res: SimulationResult = simulate(cfg, setup=setup, rounds=R, train=train, progress=relay)
        offset += R * len(names)
        skews[j] = float(np.mean(setup.data.h0))
        worst = max(worst, res.transfers_sum)
        ir = ir and res.individually_rational
        for k, name in enumerate(names):
            s = res.strategies[name]
            sw[k, j] = s.social_welfare
            swm[k, j] = s.social_welfare_measured if train else np.nan
            syn[k, j] = float(np.mean(s.synthetic_per_round))
            acc[k, j] = s.final_accuracy
    return SweepResult(
        parameter=parameter,
        values=vals,
        strategies=names,
        social_welfare=sw,
        social_welfare_measured=swm,
        synthetic=syn,
        final_accuracy=acc,
        mean_skew=skews,
        transfers_sum=worst,
        individually_rational=ir,
    )


def run_sweeps(
    config: FLConfig, *, progress: Callable[[str, int, int], None] | None = None
) -> dict[str, SweepResult]:
    """The sweeps named in ``config.sweep``: over ``gamma`` and over ``alpha`` (the latter
    only for a bundled dataset split; a job with ``[[parties]]`` files skips it)."""
    sc = config.sweep
    base = prepare(config, train=sc.train)
    out: dict[str, SweepResult] = {}
    for parameter, values in (("gamma", sc.gamma), ("alpha", sc.alpha)):
        if not values:
            continue
        if (
            parameter == "alpha"
            and config.parties is not None
            and "alpha" not in sc.model_fields_set
        ):
            continue  # the default alpha sweep needs a bundled split

        def relay(done: int, total: int, _p: str = parameter) -> None:
            if progress is not None:
                progress(_p, done, total)

        out[parameter] = sweep(
            config,
            parameter,
            values,
            rounds=sc.rounds,
            train=sc.train,
            base=base,
            progress=relay,
        )
    return out
