r"""Settling the market: fees, improvements, payouts, and the checks every settlement
carries [paper: Ohrimenko, Tople & Tschiatschek 2019, §3–4].

Each requester :math:`i` has a *task*: the parties :math:`S_i` whose data trained its
model :math:`M^i` (always including :math:`i`) and the gain table
:math:`G(V_i; M_S)` over coalitions :math:`S \subseteq S_i`. With price :math:`c`:

* own gain :math:`G(V_i, M(X_i))`, model gain :math:`G(V_i, M^i)`;
* fee :math:`A_i = c\,(1 - G(V_i, M(X_i)))`;
* improvement :math:`a_i = G(V_i, M^i) - G(V_i, M(X_i))`, paid for at :math:`c\,a_i`;
* payout :math:`b_j = \sum_i c\,a_i\,\psi_j^{(i)}` with :math:`\psi^{(i)}` the shares of
  the payment rule on task :math:`i`'s gain table (:mod:`coopml.market.payment`);
* payoff :math:`t_i = (A_i - c\,a_i) + b_i` and net gain :math:`t_i - A_i = b_i - c\,a_i`.

With one shared validation task (``mode="single"``) every :math:`S_i = N` and all tasks
share one table, so :math:`b_j = c\,a\,\psi_j` with :math:`a = \sum_i a_i` — the paper's
rule exactly (the paper states it for :math:`c = 1`). ``mode="multi"`` is the
multi-task market of the full version (arXiv 1911.09052), **reconstructed** here:
each requester's payment is divided among its own contributors.

Every settlement checks itself: balance (:math:`\sum_j b_j = c \sum_i a_i`), symmetry
(parties with identical data receive identical payoffs), the zero-element buyer (a
party without improvement gets at least its fee back), and an individual-rationality
report naming who loses money and why. :meth:`Settlement.verify` recomputes everything
from the stored value tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from coopml.market.payment import PAYMENT_RULES, payment_shares

__all__ = ["PartyLine", "Settlement", "Task", "Verification", "settle"]

#: Absolute tolerance of the money checks (balance, symmetry, zero element).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Task:
    """One requester's validation task: who trained its model and the gain table.

    ``gain_table[k]`` is the gain on the requester's validation data of the model
    trained on the members selected by bitmask ``k`` over ``members`` (in order).
    """

    requester: int
    members: tuple[int, ...]
    gain_table: NDArray[np.float64]

    def __post_init__(self) -> None:
        table = np.asarray(self.gain_table, dtype=np.float64)
        if table.size != 1 << len(self.members) or self.requester not in self.members:
            raise ValueError(
                f"task of requester {self.requester}: the gain table must have 2**len(members) "
                f"= {1 << len(self.members)} entries and members must include the requester; "
                f"got {table.size} entries and members {list(self.members)}"
            )
        if np.any(table < -1e-12) or np.any(table > 1 + 1e-12):
            raise ValueError(
                "gains must lie in [0, 1] (the market prices units of performance); got "
                f"values in [{table.min():.4g}, {table.max():.4g}]. Use a scorer such as "
                "'accuracy' or 'balanced_accuracy', or map yours into [0, 1]."
            )
        object.__setattr__(self, "gain_table", table)

    @property
    def own_gain(self) -> float:
        """:math:`G(V_i, M(X_i))`, the requester's gain from its own data."""
        return float(self.gain_table[1 << self.members.index(self.requester)])

    @property
    def model_gain(self) -> float:
        """:math:`G(V_i, M^i)`, the gain of the model the market trained for it."""
        return float(self.gain_table[-1])


@dataclass(frozen=True)
class PartyLine:
    """One party's line of the settlement (money in units of the price ``c``)."""

    name: str
    fee: float
    own_gain: float
    model_gain: float
    improvement: float
    share: float
    payout: float
    net_gain: float
    payoff: float
    members: tuple[str, ...]


@dataclass(frozen=True)
class Verification:
    """Outcome of :meth:`Settlement.verify`."""

    ok: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settlement:
    """An auditable settlement of one market round.

    Attributes
    ----------
    rule, mode, price : the payment rule, ``"single"``/``"multi"`` and the price ``c``.
    parties : tuple of PartyLine, in player order.
    tasks : tuple of Task (one per requester) with their gain tables.
    checks : dict
        ``balance_error``, ``balanced``, ``symmetric``, ``zero_element``,
        ``individually_rational`` and ``ir_report`` (who loses money and why).
    identical : list of lists of player indices whose data is identical.
    rule_params : dict (``discount`` and ``similarity`` for ``similarity_shapley``).
    provenance : dict (learner, parameters, data fingerprints, seeds, version, ...).
    """

    rule: str
    mode: Literal["single", "multi"]
    price: float
    parties: tuple[PartyLine, ...]
    tasks: tuple[Task, ...]
    checks: dict[str, Any]
    identical: tuple[tuple[int, ...], ...] = ()
    rule_params: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Party names in player order."""
        return tuple(p.name for p in self.parties)

    @property
    def value_table(self) -> NDArray[np.float64] | None:
        """The shared gain table (single validation task), else ``None``."""
        return self.tasks[0].gain_table if self.mode == "single" else None

    def with_rule(self, rule: str) -> Settlement:
        """The same market settled under another payment rule (same value tables)."""
        return settle(
            self.names,
            self.tasks,
            rule,
            self.price,
            mode=self.mode,
            identical=self.identical,
            provenance=self.provenance,
            **self.rule_params,
        )

    def to_dataframe(self) -> pd.DataFrame:
        """One row per party."""
        frame = pd.DataFrame([asdict(p) for p in self.parties])
        frame["members"] = [", ".join(m) for m in frame["members"]]
        return frame

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record; ``Settlement.from_dict`` reads it back."""
        table = self.value_table
        return {
            "rule": self.rule,
            "mode": self.mode,
            "price": self.price,
            "parties": [{**asdict(p), "members": list(p.members)} for p in self.parties],
            "value_table": None if table is None else table.tolist(),
            "tasks": [
                {
                    "requester": self.names[t.requester],
                    "members": [self.names[j] for j in t.members],
                    "value_table": None if self.mode == "single" else t.gain_table.tolist(),
                }
                for t in self.tasks
            ],
            "checks": self.checks,
            "identical": [[self.names[i] for i in group] for group in self.identical],
            "rule_params": self.rule_params,
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> None:
        """Write the record as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Settlement:
        """Rebuild a settlement from :meth:`to_dict` output (values as stored)."""
        try:
            names = [p["name"] for p in record["parties"]]
            index = {name: i for i, name in enumerate(names)}
            tasks = tuple(
                Task(
                    index[t["requester"]],
                    tuple(index[m] for m in t["members"]),
                    np.asarray(
                        record["value_table"] if t["value_table"] is None else t["value_table"]
                    ),
                )
                for t in record["tasks"]
            )
            lines = tuple(
                PartyLine(**{**p, "members": tuple(p["members"])}) for p in record["parties"]
            )
            identical = tuple(tuple(index[n] for n in g) for g in record.get("identical", []))
            return cls(
                record["rule"],
                record["mode"],
                float(record["price"]),
                lines,
                tasks,
                dict(record["checks"]),
                identical,
                dict(record.get("rule_params", {})),
                dict(record.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a coopml settlement record: {exc!r}") from None

    @classmethod
    def load(cls, path: str | Path) -> Settlement:
        """Read a settlement JSON file."""
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read settlement {path}: {exc}") from None
        return cls.from_dict(record)

    # ------------------------------------------------------------------ audit
    def verify(self) -> Verification:
        """Recompute every line and check from the stored value tables.

        The record is consistent when every stored figure equals its recomputation (to
        1e-9), payouts balance, the market keeps no money, and the stored checks agree
        with the recomputed ones. A property the mechanism itself fails (say, the
        zero-element property when pooled data make a model worse) is reported in
        ``checks``, not treated as an inconsistency.

        Examples
        --------
        >>> s = settle(["a", "b"], [Task(0, (0, 1), np.array([0.5, 0.6, 0.7, 0.9])),
        ...                         Task(1, (0, 1), np.array([0.5, 0.6, 0.7, 0.9]))], "shapley")
        >>> s.verify().ok
        True
        """
        problems: list[str] = []
        if self.rule not in PAYMENT_RULES:
            return Verification(False, (f"unknown rule {self.rule!r}",))
        redone = self.with_rule(self.rule)
        for stored, fresh in zip(self.parties, redone.parties, strict=True):
            for key in (
                "fee",
                "own_gain",
                "model_gain",
                "improvement",
                "share",
                "payout",
                "net_gain",
                "payoff",
            ):
                a, b = getattr(stored, key), getattr(fresh, key)
                if not np.isclose(a, b, rtol=0, atol=TOLERANCE):
                    problems.append(f"{stored.name}: stored {key} {a!r} != recomputed {b!r}")
        if not redone.checks["balanced"]:
            problems.append(f"payouts do not balance: error {redone.checks['balance_error']!r}")
        for key in ("balanced", "symmetric", "zero_element", "individually_rational"):
            if self.checks.get(key) != redone.checks[key]:
                problems.append(
                    f"stored check {key}={self.checks.get(key)} disagrees with the "
                    f"recomputed {redone.checks[key]}"
                )
        # The market keeps nothing: fees collected equal payoffs returned.
        kept = sum(p.fee for p in self.parties) - sum(p.payoff for p in self.parties)
        if abs(kept) > TOLERANCE * max(1.0, len(self.parties)):
            problems.append(f"ledger does not balance: the market keeps {kept!r}")
        return Verification(not problems, tuple(problems))


def settle(
    names: Sequence[str],
    tasks: Sequence[Task],
    rule: str = "ohrimenko",
    price: float = 1.0,
    *,
    mode: Literal["single", "multi"] = "multi",
    similarity: Any = None,
    discount: float = 1.0,
    identical: Sequence[Sequence[int]] = (),
    provenance: dict[str, Any] | None = None,
) -> Settlement:
    """Settle a market from its tasks (pure: no training).

    Parameters
    ----------
    names : sequence of str
        Party names in player order.
    tasks : sequence of Task
        One per requester (every party is a requester).
    rule : str
        A payment rule from :data:`coopml.market.payment.PAYMENT_RULES`.
    price : float
        Price ``c`` of one unit of performance.
    similarity : array-like (n, n), optional
        Pairwise data similarity, for ``"similarity_shapley"``.
    identical : groups of player indices with identical data (for the symmetry check).

    Examples
    --------
    >>> g = np.array([0.5, 0.6, 0.7, 0.9])
    >>> s = settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), g)], "ohrimenko", mode="single")
    >>> [(p.name, round(p.fee, 2), round(p.improvement, 2), round(p.payout, 4)) for p in s.parties]
    [('a', 0.4, 0.3, 0.2222), ('b', 0.3, 0.2, 0.2778)]
    >>> s.checks["balanced"], s.checks["individually_rational"]
    (True, False)
    """
    names = tuple(names)
    n = len(names)
    if sorted(t.requester for t in tasks) != list(range(n)):
        raise ValueError("parameter 'tasks' must hold exactly one task per party")
    if not (np.isfinite(price) and price > 0):
        raise ValueError(f"parameter 'price' must be finite and > 0; got {price}")
    sim = None if similarity is None else np.asarray(similarity, dtype=np.float64)
    by_requester = sorted(tasks, key=lambda t: t.requester)
    payout = np.zeros(n)
    degenerate = []
    for task in by_requester:
        members = list(task.members)
        shares = payment_shares(
            rule,
            task.gain_table,
            similarity=None if sim is None else sim[np.ix_(members, members)],
            discount=discount,
        )
        payout[members] += price * (task.model_gain - task.own_gain) * shares.shares
        if shares.degenerate:
            degenerate.append(names[task.requester])
    own = np.array([t.own_gain for t in by_requester])
    model = np.array([t.model_gain for t in by_requester])
    fee = price * (1.0 - own)
    improvement = model - own
    net = payout - price * improvement
    payoff = fee + net
    pot = price * improvement.sum()
    share = payout / pot if abs(pot) > TOLERANCE else np.zeros(n)
    lines = tuple(
        PartyLine(
            names[i],
            float(fee[i]),
            float(own[i]),
            float(model[i]),
            float(improvement[i]),
            float(share[i]),
            float(payout[i]),
            float(net[i]),
            float(payoff[i]),
            tuple(names[j] for j in by_requester[i].members),
        )
        for i in range(n)
    )
    checks = _checks(lines, price, identical, degenerate)
    params: dict[str, Any] = {}
    if rule == "similarity_shapley":
        params = {"discount": discount, "similarity": None if sim is None else sim.tolist()}
    return Settlement(
        rule,
        mode,
        float(price),
        lines,
        tuple(by_requester),
        checks,
        tuple(tuple(g) for g in identical),
        params,
        dict(provenance or {}),
    )


def _checks(
    lines: Sequence[PartyLine],
    price: float,
    identical: Sequence[Sequence[int]],
    degenerate: list[str],
) -> dict[str, Any]:
    payout = np.array([p.payout for p in lines])
    improvement = np.array([p.improvement for p in lines])
    balance_error = float(payout.sum() - price * improvement.sum())
    asymmetric = [
        [lines[i].name for i in group]
        for group in identical
        if np.ptp([lines[i].payoff for i in group]) > TOLERANCE
    ]
    zero_violations = [
        p.name for p in lines if abs(p.improvement) <= 1e-12 and p.payoff < p.fee - TOLERANCE
    ]
    ir_report = [
        {
            "name": p.name,
            "net_gain": p.net_gain,
            "reason": (
                f"pays {price * p.improvement:.6g} for an improvement of {p.improvement:.6g} "
                f"but its data earns {p.payout:.6g}"
            ),
        }
        for p in lines
        if p.net_gain < -TOLERANCE
    ]
    return {
        "balance_error": balance_error,
        "balanced": abs(balance_error) <= TOLERANCE * max(1.0, price * np.abs(improvement).sum()),
        "symmetric": not asymmetric,
        "asymmetric_groups": asymmetric,
        "zero_element": not zero_violations,
        "zero_element_violations": zero_violations,
        "individually_rational": not ir_report,
        "ir_report": ir_report,
        "degenerate_tasks": degenerate,
    }
