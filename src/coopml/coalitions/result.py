"""Result objects shared by every solution concept.

A result is immutable and carries its own convergence information (architecture rule 4):
``values`` (one per player), ``names``, ``method``, ``stderr`` where the method is an
estimate, ``converged``, ``n_evaluations`` (utility evaluations spent) and free-form
``info``. ``to_dataframe()`` gives one row per player.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from coopml._records import dump_record, read_record
from coopml.coalitions.records import LeastCoreResultRecord, ValuationResultRecord

__all__ = ["LeastCoreResult", "ValuationResult"]


@dataclass(frozen=True, kw_only=True)
class ValuationResult:
    """Values of the players of a cooperative game.

    Parameters
    ----------
    values : ndarray of shape (n_players,)
        The value (payoff) of each player.
    names : tuple of str
        Player names, in the order of ``values``.
    method : str
        The solution concept, e.g. ``"shapley"``.
    stderr : ndarray of shape (n_players,) or None
        Standard errors of estimated values; ``None`` for exact methods.
    converged : bool
        Whether the method met its own convergence criterion (always true for exact
        methods that returned).
    n_evaluations : int
        Number of coalition values the method evaluated (table look-ups for exact
        methods: the table size).
    info : mapping
        Method-specific details (stopping reason, LP status, ...).

    Examples
    --------
    >>> r = ValuationResult(values=np.array([1.0, 2.0]), names=("a", "b"), method="shapley")
    >>> r.to_dataframe()
      name  value
    0    a    1.0
    1    b    2.0
    >>> r["b"]
    2.0
    """

    values: NDArray[np.float64]
    names: tuple[str, ...]
    method: str
    stderr: NDArray[np.float64] | None = None
    converged: bool = True
    n_evaluations: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64).copy()
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", tuple(self.names))
        if len(self.names) != values.shape[0]:
            raise ValueError(
                f"parameter 'names' must have one entry per value ({values.shape[0]}); "
                f"got {len(self.names)}"
            )
        if self.stderr is not None:
            stderr = np.asarray(self.stderr, dtype=np.float64).copy()
            stderr.setflags(write=False)
            object.__setattr__(self, "stderr", stderr)

    @property
    def n_players(self) -> int:
        """Number of players."""
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return self.n_players

    def __getitem__(self, name: str) -> float:
        try:
            return float(self.values[self.names.index(name)])
        except ValueError:
            raise KeyError(f"no player named {name!r}; players are {list(self.names)}") from None

    def to_dataframe(self) -> pd.DataFrame:
        """One row per player: ``name``, ``value`` and, for estimates, ``stderr``."""
        frame = pd.DataFrame({"name": list(self.names), "value": self.values})
        if self.stderr is not None:
            frame["stderr"] = self.stderr
        return frame

    def summary(self) -> str:
        """How the values were obtained, in one sentence: how many samples, what stopped
        the estimator, whether it converged and the largest standard error.

        It reads what the estimators record in ``info`` (``stopped_by``,
        ``n_permutations``, ``n_samples``) and says only what the rule that fired says:
        no limit that was not part of it.

        Examples
        --------
        >>> r = ValuationResult(values=np.array([0.6, 0.4]), names=("a", "b"),
        ...                     method="monte_carlo_shapley", stderr=np.array([0.012, 0.01]),
        ...                     converged=False, n_evaluations=300,
        ...                     info={"stopped_by": "MaxEvaluations(300)", "n_permutations": 40})
        >>> r.summary()
        'monte_carlo_shapley: stopped after 40 permutations (300 evaluations) by the
        300-evaluation budget; not converged: largest standard error 0.012.'
        >>> ValuationResult(values=np.array([1.0]), names=("a",), method="shapley",
        ...                 n_evaluations=2).summary()
        'shapley: exact, from 2 coalition values.'
        """
        info = self.info
        stopped_by = info.get("stopped_by")
        if self.stderr is None or stopped_by is None:
            return f"{self.method}: exact, from {self.n_evaluations:,} coalition values."
        stopped = str(stopped_by)
        if stopped.startswith("exact"):
            return f"{self.method}: computed exactly ({stopped[5:].strip(' ()')})."
        samples = [f"{self.n_evaluations:,} evaluations"]
        if "n_permutations" in info:
            samples.insert(0, f"{int(info['n_permutations']):,} permutations")
        elif "n_samples" in info:
            samples.insert(0, f"{int(info['n_samples']):,} samples")
        head = f"{self.method}: stopped after {samples[0]}"
        if len(samples) > 1:
            head += f" ({samples[1]})"
        n = self.n_players
        reasons = [_stopping_reason(p, n, self.n_evaluations) for p in _rule_parts(stopped)]
        text = head + " by " + " and ".join(reasons)
        finite = self.stderr[np.isfinite(self.stderr)]
        largest = float(finite.max()) if finite.size else float("inf")
        se = "largest standard error " + (f"{largest:.2g}" if np.isfinite(largest) else "unknown")
        if not np.all(np.isfinite(self.stderr)):
            se += " (some values have no sample)"
        verdict = "converged" if self.converged else "not converged"
        return f"{text}; {verdict}: {se}."

    #: The record's schema (:mod:`coopml.coalitions.records`).
    record_type: ClassVar[type[ValuationResultRecord]] = ValuationResultRecord

    def _record_fields(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "names": list(self.names),
            "values": self.values.tolist(),
            "stderr": None if self.stderr is None else self.stderr.tolist(),
            "converged": bool(self.converged),
            "n_evaluations": int(self.n_evaluations),
            "info": {str(k): v for k, v in self.info.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary of the result (its schema:
        ``record_type.model_json_schema()``); :meth:`from_dict` reads it back.

        Examples
        --------
        >>> r = ValuationResult(values=np.array([0.25, 0.75]), names=("a", "b"),
        ...                     method="shapley", info={"efficiency_error": np.float64(0)})
        >>> r.to_dict()["info"], ValuationResult.from_dict(r.to_dict())["b"]
        ({'efficiency_error': 0.0}, 0.75)
        """
        return dump_record(self.record_type(**self._record_fields()))

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        """Read :meth:`to_dict` output; a malformed record is a ValueError naming the
        field, what is allowed and what was received.

        Examples
        --------
        >>> ValuationResult.from_dict({"method": "shapley", "names": ["a"], "values": ["x"]})
        Traceback (most recent call last):
        ...
        ValueError: not a coopml valuation result: field 'values.0': Input should be a valid \
number; got 'x'
        """
        data = read_record(cls.record_type, record, "valuation result")
        fields = data.model_dump()
        return cls(
            **{
                **fields,
                "values": np.asarray(data.values, dtype=np.float64),
                "names": tuple(data.names),
                "stderr": None if data.stderr is None else np.asarray(data.stderr),
            }
        )


def _rule_parts(stopped: str) -> list[str]:
    """The leaf rules of a fired rule's text (``"A | B"``, ``"(A & B)"``)."""
    parts = re.split(r"\s*[|&]\s*", stopped.replace("(", " ").replace(")", " ").strip())
    return [p.strip() for p in parts if p.strip()]


def _stopping_reason(part: str, n_players: int, n_evaluations: int) -> str:
    """A stopping rule's text (``str(rule)``, leaf) in words, true for ``n_evaluations``."""
    name, _, args = part.partition(" ")
    first = args.split(",")[0].strip()
    if name == "MaxEvaluations":
        limit = int(first)
        if n_players <= 62 and limit == 2**n_players == n_evaluations:
            return f"having evaluated every one of the {limit:,} coalitions"
        return f"the {limit:,}-evaluation budget"
    if name == "MaxPermutations":
        return f"the {int(first):,}-permutation limit"
    if name == "MaxTime":
        return f"the {first}-second time limit"
    if name == "StandardErrorBelow":
        scale = {
            "relative_to='max'": " of the largest value",
            "relative_to='total'": " of the total value",
        }
        rest = args.replace(" ", "").split(",")[1:]
        of = next((scale[r] for r in rest if r in scale), "")
        return f"reaching its standard-error target ({first}{of})"
    if name == "RankStable":
        return f"the ranking staying the same for {first} checks"
    if name == "None":
        return "having nothing left to sample"
    return f"the rule {part}"


@dataclass(frozen=True, kw_only=True)
class LeastCoreResult(ValuationResult):
    """A least-core allocation; ``epsilon`` is the smallest uniform subsidy
    ``min e`` such that ``x(S) >= v(S) - e`` holds for every coalition ``S``.

    ``epsilon <= 0`` means the core is non-empty and ``values`` lies in it.
    """

    epsilon: float = 0.0

    record_type: ClassVar[type[ValuationResultRecord]] = LeastCoreResultRecord

    def _record_fields(self) -> dict[str, Any]:
        return {**super()._record_fields(), "epsilon": float(self.epsilon)}
