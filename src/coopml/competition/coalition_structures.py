r"""Sharing groups among n firms: every coalition structure and its stability.

A coalition structure :math:`P` partitions the firms into sharing groups; the members
of a group pool all their data, so firm :math:`i` in group :math:`G` trains on
:math:`N_i = \sum_{j \in G} n_j` samples, and its profit :math:`\pi_i(P)` is the
market equilibrium profit given every firm's model quality (a partition-function game:
a firm's profit depends on how the *other* firms group too).

Payoffs are either the profits themselves (no transfers) or, with **transferable
utility**, each group's joint profit split by a bargaining rule
(:func:`coopml.bargaining.transferable_utility_split`) with side payments, the
disagreement point of group :math:`G` being its members' profits when :math:`G` splits
into singletons and every other group stays. For every structure we report

* **individual rationality**: every firm gets at least its profit without any sharing;
* **Nash stability**: no firm gains by moving alone to another group or to being alone
  (Bogomolnaia & Jackson 2002);
* **core stability**: no coalition :math:`S` blocks, where :math:`S` blocks if, after its
  members leave their groups and pool their data together (the groups they left stay
  together, the :math:`\delta`-model of Hart & Kurz 1983), every member of :math:`S`
  gains (no transfers), or their joint payoff rises (transferable utility).

Comparisons use a tolerance of ``1e-12`` times the largest profit. This is part of the
**reconstruction** of the negotiation component of Tsoy & Konstantinov, "Strategic data
sharing between competitors", NeurIPS 2023 (arXiv 2305.16052).

References
----------
A. Bogomolnaia and M. O. Jackson, "The stability of hedonic coalition structures",
Games and Economic Behavior 38 (2002) 201-230.
S. Hart and M. Kurz, "Endogenous formation of coalitions", Econometrica 51 (1983)
1047-1064.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_choice
from coopml.bargaining import TU_RULES, transferable_utility_split
from coopml.competition.negotiation import SharingModel, check_sizes

__all__ = ["CoalitionStructures", "coalition_structures", "set_partitions"]

Partition = tuple[tuple[int, ...], ...]


def set_partitions(n: int) -> list[Partition]:
    """All partitions of ``{0, ..., n-1}`` (Bell number many), singletons first.

    Examples
    --------
    >>> set_partitions(3)
    [((0,), (1,), (2,)), ((0,), (1, 2)), ((0, 1), (2,)), ((0, 2), (1,)), ((0, 1, 2),)]
    """
    out: list[Partition] = []

    def grow(labels: list[int], top: int) -> None:
        if len(labels) == n:
            groups = [tuple(i for i in range(n) if labels[i] == g) for g in range(top + 1)]
            out.append(tuple(sorted(groups)))
            return
        for g in range(top + 2):
            grow([*labels, g], max(top, g))

    grow([0], 0) if n > 0 else None
    return sorted(out, key=lambda p: (-len(p), p))


def _labels(partition: Partition, n: int) -> tuple[int, ...]:
    """Canonical group labels (restricted growth string) of a partition."""
    raw = [0] * n
    for g, group in enumerate(partition):
        for i in group:
            raw[i] = g
    seen: dict[int, int] = {}
    return tuple(seen.setdefault(r, len(seen)) for r in raw)


def _from_labels(labels: tuple[int, ...]) -> Partition:
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(labels):
        groups.setdefault(g, []).append(i)
    return tuple(sorted(tuple(v) for v in groups.values()))


@dataclass(frozen=True, kw_only=True)
class CoalitionStructures:
    """Payoffs and stability of every coalition structure (partition into sharing groups).

    Parameters
    ----------
    sizes : ndarray of shape (n_firms,)
    partitions : tuple of partitions
        Every partition, as a tuple of groups (sorted tuples of firm indices).
    profits : ndarray of shape (n_structures, n_firms)
        Equilibrium profit of every firm in every structure.
    payoffs : ndarray of shape (n_structures, n_firms)
        ``profits`` without transfers; the bargained split with transferable utility.
    transfers : bool
        Whether side payments are allowed (transferable utility).
    rule : str or None
        The bargaining rule splitting each group's joint profit (transfers only).
    individually_rational, nash_stable, core_stable : ndarray of bool, (n_structures,)
    blocking : tuple
        For every structure, a coalition that blocks it (``None`` if core stable).
    """

    sizes: NDArray[np.float64]
    partitions: tuple[Partition, ...]
    profits: NDArray[np.float64]
    payoffs: NDArray[np.float64]
    transfers: bool
    rule: str | None
    individually_rational: NDArray[np.bool_]
    nash_stable: NDArray[np.bool_]
    core_stable: NDArray[np.bool_]
    blocking: tuple[tuple[int, ...] | None, ...]

    def index(self, partition: Partition | list[list[int]]) -> int:
        """Row of a partition (groups in any order)."""
        canonical = tuple(sorted(tuple(sorted(g)) for g in partition))
        return self.partitions.index(canonical)

    def stable(self, concept: str = "core") -> list[Partition]:
        """Structures stable under ``"core"``, ``"nash"`` or ``"individual"``
        (individually rational)."""
        mask = {
            "core": self.core_stable,
            "nash": self.nash_stable,
            "individual": self.individually_rational,
        }[check_choice("concept", concept, ("core", "nash", "individual"))]
        return [p for p, ok in zip(self.partitions, mask, strict=True) if ok]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per structure: ``structure``, payoffs, profits and the three checks."""
        frame = pd.DataFrame({"structure": [_format(p) for p in self.partitions]})
        for i in range(self.sizes.size):
            frame[f"payoff_{i}"] = self.payoffs[:, i]
        for i in range(self.sizes.size):
            frame[f"profit_{i}"] = self.profits[:, i]
        frame["individually_rational"] = self.individually_rational
        frame["nash_stable"] = self.nash_stable
        frame["core_stable"] = self.core_stable
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "sizes": self.sizes.tolist(),
            "transfers": self.transfers,
            "rule": self.rule,
            "structures": [
                {
                    "groups": [list(g) for g in p],
                    "payoffs": self.payoffs[k].tolist(),
                    "profits": self.profits[k].tolist(),
                    "individually_rational": bool(self.individually_rational[k]),
                    "nash_stable": bool(self.nash_stable[k]),
                    "core_stable": bool(self.core_stable[k]),
                    "blocking": None if b is None else list(b),
                }
                for k, (p, b) in enumerate(zip(self.partitions, self.blocking, strict=True))
            ],
        }


def _format(partition: Partition) -> str:
    return " | ".join("{" + ",".join(map(str, g)) + "}" for g in partition)


def coalition_structures(
    model: SharingModel,
    sizes: ArrayLike,
    *,
    transfers: bool = False,
    rule: str = "nash",
    weights: ArrayLike | None = None,
) -> CoalitionStructures:
    """Evaluate every partition of the firms into data-sharing groups.

    Parameters
    ----------
    model : SharingModel
    sizes : array_like of shape (n_firms,)
        Data sizes (2 to 7 firms).
    transfers : bool
        Transferable utility: each group's joint profit is split by ``rule``.
    rule : {"nash", "kalai_smorodinsky", "egalitarian", "utilitarian"}
        Bargaining rule for the split (transfers only).
    weights : array_like of shape (n_firms,), optional
        Bargaining powers for the ``"nash"`` rule (e.g. the data sizes).

    Returns
    -------
    CoalitionStructures

    Examples
    --------
    >>> from coopml.competition import LearningCurve, SharingModel
    >>> m = SharingModel(LearningCurve(0, 1, 0.5), gamma=0.5)
    >>> r = coalition_structures(m, [1000, 100])
    >>> r.stable("core")
    [((0,), (1,))]
    >>> coalition_structures(m, [1000, 100], transfers=True).stable("core")
    [((0, 1),)]
    """
    s = check_sizes(sizes)
    n = s.size
    if n > 7:
        raise ValueError(f"parameter 'sizes' must hold at most 7 firms; got {n}")
    check_choice("rule", rule, TU_RULES)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if w is not None and (w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w <= 0)):
        raise ValueError(f"parameter 'weights' must be {n} finite numbers > 0; got {weights!r}")
    partitions = set_partitions(n)
    labels = np.array([_labels(p, n) for p in partitions])
    index = {tuple(int(v) for v in row): k for k, row in enumerate(labels)}
    same = labels[:, :, None] == labels[:, None, :]
    profits = np.asarray(model.profits_at(same @ s), dtype=np.float64)
    tol = 1e-12 * max(1.0, float(np.max(np.abs(profits))))
    payoffs = profits.copy()
    if transfers:
        for k, partition in enumerate(partitions):
            for group in partition:
                if len(group) < 2:
                    continue
                alone = list(labels[k])
                for j, i in enumerate(group):
                    alone[i] = n + j  # split the group into singletons
                d = profits[index[_labels(_from_labels(tuple(alone)), n)], list(group)]
                total = float(profits[k, list(group)].sum())
                gw = None if w is None else w[list(group)]
                split = transferable_utility_split(
                    total, d, rule, weights=gw if rule == "nash" else None
                )
                if split.agreement:
                    payoffs[k, list(group)] = split.utilities
                else:  # a losing group: the rule's shares of a non-positive surplus
                    share = (np.ones(len(group)) if gw is None else gw) / len(group)
                    share = share / share.sum()
                    payoffs[k, list(group)] = d + (total - d.sum()) * share
    none = index[tuple(range(n))]
    rational = np.all(payoffs >= payoffs[none] - tol, axis=1)
    nash = np.ones(len(partitions), dtype=bool)
    for k in range(len(partitions)):
        row = labels[k]
        for i in range(n):
            for target in set(int(v) for v in row) - {int(row[i])} | {n}:
                moved = list(row)
                moved[i] = target
                if payoffs[index[_labels(_from_labels(tuple(moved)), n)], i] > payoffs[k, i] + tol:
                    nash[k] = False
                    break
            if not nash[k]:
                break
    coalitions = [c for size in range(1, n + 1) for c in combinations(range(n), size)]
    core = np.ones(len(partitions), dtype=bool)
    blocking: list[tuple[int, ...] | None] = []
    for k in range(len(partitions)):
        found: tuple[int, ...] | None = None
        for coalition in coalitions:
            dev = [n if i in coalition else int(v) for i, v in enumerate(labels[k])]
            j = index[_labels(_from_labels(tuple(dev)), n)]
            members = list(coalition)
            if transfers:
                blocks = payoffs[j, members].sum() > payoffs[k, members].sum() + tol
            else:
                blocks = bool(np.all(payoffs[j, members] > payoffs[k, members] + tol))
            if blocks:
                found = coalition
                break
        core[k] = found is None
        blocking.append(found)
    return CoalitionStructures(
        sizes=s, partitions=tuple(partitions), profits=profits, payoffs=payoffs,
        transfers=bool(transfers), rule=rule if transfers else None,
        individually_rational=rational, nash_stable=nash, core_stable=core,
        blocking=tuple(blocking),
    )  # fmt: skip
