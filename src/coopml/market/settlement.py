r"""Settling the market: fees, improvements, payouts, and the checks every settlement
carries [paper: Ohrimenko, Tople & Tschiatschek 2019, §3–4].

Each requester :math:`i` has a *task*: the parties :math:`S_i` whose data trained its
model :math:`M^i` (always including :math:`i`) and the gain table
:math:`G(V_i; M_S)` over coalitions :math:`S \subseteq S_i`. With price :math:`c`:

* own gain :math:`G(V_i, M(X_i))`, model gain :math:`G(V_i, M^i)`;
* fee :math:`A_i = c\,(1 - G(V_i, M(X_i)))`;
* improvement :math:`a_i = G(V_i, M^i) - G(V_i, M(X_i))`, charged at :math:`c\,a_i`
  (the party's *charge*, refunded by the rule below);
* payout :math:`b_j = \sum_i c\,a_i\,\psi_j^{(i)}` with :math:`\psi^{(i)}` the shares of
  the payment rule on task :math:`i`'s gain table (:mod:`coopml.market.payment`);
* payoff :math:`t_i = (A_i - c\,a_i) + b_i` and net gain :math:`t_i - A_i = b_i - c\,a_i`.

With one shared validation task (``mode="single"``) every :math:`S_i = N` and all tasks
share one table (enforced), so :math:`b_j = c\,a\,\psi_j` with :math:`a = \sum_i a_i` —
the paper's rule (the paper states it for :math:`c = 1`; normalising the Shapley value
into shares :math:`\psi` is coopml's reading, see :mod:`coopml.market.payment`).
``mode="multi"`` is the multi-task market of the full version (arXiv 1911.09052),
**reconstructed** here: each requester's payment is divided among its own contributors.

**Non-positive payments** [coopml's rule]. The paper assumes more data never lowers the
gain, so that payouts are non-negative (:math:`b_i \ge 0`, §4). Real learners break the
assumption, and the formulas above would then pay negative amounts. A *payment* is what
one share vector divides: :math:`c\sum_i a_i` in the single-task market,
:math:`c\,a_i` for requester :math:`i` in the multi-task one. coopml settles it as
follows, and flags the settlement (:class:`Flag`) whenever a rule applied:

* negative shares are clipped to zero and the others renormalised
  (``negative_shares_clipped``);
* a payment that is zero or negative while some improvement in it is not zero is
  refunded: its payers' charges become 0 (their fees come back in full) and nothing is
  paid out of it (``no_positive_improvement``);
* a positive payment for which no party's data has a positive value is refunded the
  same way (``no_positive_share``).

So payouts are never negative, and balance holds exactly as
:math:`\sum_j b_j = \sum_i \text{charge}_i`.

Every settlement checks itself: balance (:math:`\sum_j b_j = \sum_i \text{charge}_i`,
which is :math:`c \sum_i a_i` when nothing was refunded), non-negative payouts,
symmetry (parties with identical data receive identical payoffs), the zero-element
buyer (a party without improvement gets at least its fee back), and an
individual-rationality report naming who loses money and why.
:meth:`Settlement.verify` recomputes everything from the stored value tables.
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

from coopml._records import dump_record, read_record
from coopml._validation import check_choice
from coopml.market.payment import (
    PAYMENT_RULES,
    EmptyValue,
    _normalise,
    check_empty_value,
    empty_coalition_gain,
    payment_shares,
)
from coopml.market.records import (
    FlagRecord,
    GainSampleRecord,
    PartyLineRecord,
    SettlementRecord,
    TaskRecord,
)
from coopml.market.sampled_shares import (
    GainSample,
    ReplayMismatch,
    sampled_shares,
    share_stderr,
    stopping_from_json,
    valuation_differences,
)

__all__ = [
    "FLAG_SUMMARIES",
    "FORMAT_VERSION",
    "Flag",
    "PartyLine",
    "Settlement",
    "Task",
    "Verification",
    "record_differences",
    "settle",
]

#: Absolute tolerance of the money checks (balance, symmetry, zero element).
TOLERANCE = 1e-9

#: Version of the record :meth:`Settlement.to_dict` writes. Version 1 (no
#: ``format_version`` key) stored one value table for a single-task market and no
#: charges, flags or empty-coalition convention; version 2 had no ``payout_stderr``,
#: ``valuation`` block or sampled tasks; version 3 listed every line's and every task's
#: members and repeated a single-task market's table in every task. All are still read.
FORMAT_VERSION = 4

#: A line's or task's ``members`` in the record when they are all parties in player
#: order (format 4): the list is written once, as the parties' names.
ALL_MEMBERS = "all"

#: One sentence per flag code that names no party (what a party may be shown about a
#: round whose other lines it must not see).
FLAG_SUMMARIES = {
    "negative_shares_clipped": (
        "Some data lowered the gain of a model: negative shares were clipped to 0 and the "
        "other shares renormalised, so no payout is negative."
    ),
    "no_positive_improvement": (
        "Improvements paid for summed to zero or less: those charges were refunded in "
        "full and nothing was paid out of them."
    ),
    "no_positive_share": (
        "No party's data had a positive value for a model: its charge was refunded in "
        "full and nothing was paid out of it."
    ),
}


@dataclass(frozen=True)
class Task:
    """One requester's validation task: who trained its model and the gain table.

    ``gain_table[k]`` is the gain on the requester's validation data of the model
    trained on the members selected by bitmask ``k`` over ``members`` (in order). A
    large task has instead a ``sample``: the gains of the coalitions its estimate used
    (:class:`~coopml.market.sampled_shares.GainSample`, bitmasks over ``members``).
    ``selection_evaluations`` counts the model fits spent choosing the members of a task
    with a table beyond the table's own (a sample records its own).
    """

    requester: int
    members: tuple[int, ...]
    gain_table: NDArray[np.float64] | None = None
    sample: GainSample | None = None
    selection_evaluations: int = 0

    def __post_init__(self) -> None:
        if self.requester not in self.members:
            raise ValueError(
                f"task of requester {self.requester}: members must include the requester; "
                f"got members {list(self.members)}"
            )
        if (self.gain_table is None) == (self.sample is None):
            raise ValueError(
                f"task of requester {self.requester}: give exactly one of 'gain_table' and 'sample'"
            )
        if self.sample is not None:
            if self.sample.n_players != len(self.members):
                raise ValueError(
                    f"task of requester {self.requester}: the sample is over "
                    f"n_players={self.sample.n_players} players, the task has "
                    f"{len(self.members)} members"
                )
            object.__setattr__(self, "members", tuple(int(j) for j in self.members))
            _check_gains(self.sample.values, "sample.values")
            return
        table = np.asarray(self.gain_table, dtype=np.float64)
        if table.size != 1 << len(self.members):
            raise ValueError(
                f"task of requester {self.requester}: the gain table must have 2**len(members) "
                f"= {1 << len(self.members)} entries and members must include the requester; "
                f"got {table.size} entries and members {list(self.members)}"
            )
        _check_gains(table, "value_table")
        object.__setattr__(self, "members", tuple(int(j) for j in self.members))
        object.__setattr__(self, "gain_table", table)

    def gain(self, mask: int) -> float:
        """The gain of coalition ``mask`` (a bitmask over ``members``)."""
        if self.sample is not None:
            return self.sample.gain(mask)
        assert self.gain_table is not None
        return float(self.gain_table[mask])

    @property
    def own_gain(self) -> float:
        """:math:`G(V_i, M(X_i))`, the requester's gain from its own data."""
        return self.gain(1 << self.members.index(self.requester))

    @property
    def model_gain(self) -> float:
        """:math:`G(V_i, M^i)`, the gain of the model the market trained for it."""
        return self.gain((1 << len(self.members)) - 1)


def _check_gains(table: NDArray[np.float64], what: str = "gain_table") -> None:
    """Gains are finite numbers in [0, 1] (a NaN would pass every comparison below and
    turn the payouts into NaN)."""
    bad = np.flatnonzero(~np.isfinite(table))
    if bad.size:
        raise ValueError(
            f"{what}[{bad[0]}] is {float(table[bad[0]])!r}: gains must be finite numbers in "
            f"[0, 1] ({bad.size} non-finite value(s))"
        )
    if table.size and (np.any(table < -1e-12) or np.any(table > 1 + 1e-12)):
        raise ValueError(
            "gains must lie in [0, 1] (the market prices units of performance); got "
            f"values in [{table.min():.4g}, {table.max():.4g}]. Use a scorer such as "
            "'accuracy' or 'balanced_accuracy' (classification) or 'clipped_r2' "
            "(regression: max(0, R²)), or map yours into [0, 1]."
        )


@dataclass(frozen=True)
class PartyLine:
    """One party's line of the settlement (money in units of the price ``c``).

    ``charge`` is what the party pays for its improvement: :math:`c\\,a_i`, or 0 when
    its payment was refunded (see the module docstring). ``net_gain`` is
    ``payout - charge`` and ``payoff`` is ``fee + net_gain``. ``payout_stderr`` is the
    standard error of an estimated payout (0 when the shares are exact;
    :mod:`coopml.market.sampled_shares`); it carries over to ``share``, ``net_gain``
    and ``payoff``.
    """

    name: str
    fee: float
    own_gain: float
    model_gain: float
    improvement: float
    charge: float
    share: float
    payout: float
    net_gain: float
    payoff: float
    members: tuple[str, ...]
    payout_stderr: float = 0.0


@dataclass(frozen=True)
class Flag:
    """A rule coopml applied to a settlement beyond the paper's formulas.

    ``code`` is machine-readable (a key of :data:`FLAG_SUMMARIES`), ``message`` a
    sentence that names the parties and amounts, ``parties`` the parties concerned.
    """

    code: str
    message: str
    parties: tuple[str, ...] = ()


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
        ``balance_error``, ``balanced``, ``nonnegative_payouts``, ``symmetric``,
        ``zero_element``, ``individually_rational`` and ``ir_report`` (who loses money
        and why).
    identical : list of lists of player indices whose data is identical.
    rule_params : dict (``discount`` and ``similarity`` for ``similarity_shapley``).
    provenance : dict (learner, parameters, data fingerprints, seeds, version, ...).
    empty_value : "majority", "zero" or float
        The value of the empty coalition the payment rule used
        (:func:`~coopml.market.payment.empty_coalition_gain`).
    flags : tuple of Flag
        Rules applied beyond the paper's formulas (clipped shares, refunds).
    valuation : dict
        How the shares were valued: ``method`` (``"exact"`` or ``"monte_carlo"``),
        ``estimator``, ``evaluations`` (model fits behind the shares), ``stopped_by``
        (the stopping rule that fired), ``converged``, ``seed`` and, per estimated
        task, the same in ``tasks``.
    format_version : int
        Version of the record this settlement was read from (:data:`FORMAT_VERSION`
        when computed here).
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
    empty_value: EmptyValue = "majority"
    flags: tuple[Flag, ...] = ()
    format_version: int = FORMAT_VERSION
    valuation: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Party names in player order."""
        return tuple(p.name for p in self.parties)

    @property
    def value_table(self) -> NDArray[np.float64] | None:
        """The shared gain table (single validation task, exact), else ``None``."""
        return self.tasks[0].gain_table if self.mode == "single" else None

    @property
    def estimated(self) -> bool:
        """Whether some task's shares were estimated from a sample of coalitions."""
        return any(t.sample is not None for t in self.tasks)

    def with_rule(self, rule: str) -> Settlement:
        """The same market settled under another payment rule (same value tables and
        empty-coalition convention).

        Estimated shares are tied to the rule they were sampled for: another rule is a
        ValueError (run the market again with it).
        """
        if self.estimated and rule != self.rule:
            raise ValueError(
                f"this settlement's shares were estimated for rule {self.rule!r}; another "
                f"rule ({rule!r}) needs a new estimate: run the market again with it"
            )
        return settle(
            self.names,
            self.tasks,
            rule,
            self.price,
            mode=self.mode,
            empty_value=self.empty_value,
            identical=self.identical,
            provenance=self.provenance,
            **self.rule_params,
        )

    def with_empty_value(self, empty_value: EmptyValue) -> Settlement:
        """The same market settled with another value of the empty coalition.

        Examples
        --------
        >>> g = np.array([0.5, 0.6, 0.7, 0.9])
        >>> s = settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), g)], "shapley",
        ...            mode="single")
        >>> [round(p.share, 4) for p in s.parties], s.empty_value
        ([0.375, 0.625], 'majority')
        >>> [round(p.share, 4) for p in s.with_empty_value("zero").parties]
        [0.4444, 0.5556]
        """
        if self.estimated and empty_value != self.empty_value:
            raise ValueError(
                "this settlement's shares were estimated with empty_value="
                f"{self.empty_value!r}; another value ({empty_value!r}) changes the sampled "
                "game and needs a new estimate: run the market again with it"
            )
        return settle(
            self.names,
            self.tasks,
            self.rule,
            self.price,
            mode=self.mode,
            empty_value=empty_value,
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
        """JSON-serialisable record (format :data:`FORMAT_VERSION`, one value table per
        task, and the shared one again as ``value_table`` in the single-task market);
        :meth:`Settlement.from_dict` reads it back. Estimated tasks store their
        ``sample`` instead of a table (once, as ``sample``, in the single-task market).

        Examples
        --------
        >>> g = np.array([0.5, 0.6, 0.7, 0.9])
        >>> s = settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), g)], mode="single")
        >>> record = json.loads(json.dumps(s.to_dict()))
        >>> record["format_version"], record["empty_value"], record["tasks"][1]["value_table"]
        (4, 'majority', [0.5, 0.6, 0.7, 0.9])
        >>> record["tasks"][1]["members"], record["parties"][0]["members"]
        ('all', 'all')
        >>> Settlement.from_dict(record).verify().ok
        True

        Members equal to all parties in player order are written ``"all"`` (the names
        are the parties' lines), so a 300-party record does not repeat 300 names on 600
        lists.

        A settlement read from an earlier format is upgraded: what that format lacked
        (the ``valuation`` block of formats 1 and 2, the checks format 1 did not record)
        is recomputed from its tables, and every figure it stored is written as stored,
        so a record that verified in its own format verifies as format 4.
        """
        valuation, checks = self.valuation, self.checks
        if self.format_version < 3:
            try:
                fresh = self.with_rule(self.rule)
            except ValueError:  # a record that cannot be recomputed: written as stored
                fresh = None
            if fresh is not None:
                valuation = valuation or fresh.valuation
                checks = {
                    **{k: self.checks.get(k, v) for k, v in fresh.checks.items()},
                    **self.checks,
                }
        return self._record(valuation, checks)

    def _record(
        self, valuation: dict[str, Any] | None = None, checks: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The record of this settlement's fields as they are (no upgrade)."""
        shared = self.mode == "single" and self.tasks[0].sample is not None
        record = SettlementRecord(
            format_version=FORMAT_VERSION,
            rule=self.rule,
            mode=self.mode,
            price=self.price,
            empty_value=self.empty_value,
            valuation=self.valuation if valuation is None else valuation,
            parties=[
                PartyLineRecord(**{**asdict(p), "members": self._members(p.members)})
                for p in self.parties
            ],
            # the shared table again, for readers of format 1 (from_dict checks it)
            value_table=None if self.value_table is None else self.value_table.tolist(),
            sample=self.tasks[0].sample.to_record() if shared else None,  # type: ignore[union-attr]
            tasks=[
                TaskRecord(
                    requester=self.names[t.requester],
                    members=self._members(tuple(self.names[j] for j in t.members)),
                    value_table=None if t.gain_table is None else t.gain_table.tolist(),
                    sample=None if t.sample is None or shared else t.sample.to_record(),
                    **(  # fits spent choosing the members (format 4; absent when none)
                        {"selection_evaluations": t.selection_evaluations}
                        if t.selection_evaluations
                        else {}
                    ),
                )
                for t in self.tasks
            ],
            checks=self.checks if checks is None else checks,
            flags=[
                FlagRecord(code=f.code, message=f.message, parties=list(f.parties))
                for f in self.flags
            ],
            identical=[[self.names[i] for i in group] for group in self.identical],
            rule_params=self.rule_params,
            provenance=self.provenance,
        )
        return dump_record(record)

    def _members(self, members: tuple[str, ...]) -> str | list[str]:
        return ALL_MEMBERS if members == self.names else list(members)

    def save(self, path: str | Path) -> None:
        """Write the record as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Settlement:
        """Rebuild a settlement from :meth:`to_dict` output (values as stored).

        The record is validated as a :class:`~coopml.market.records.SettlementRecord`
        (its JSON Schema is ``SettlementRecord.model_json_schema()``): a malformed one
        is a ValueError naming the field path, what is allowed and what was received.
        Reads formats 2 and 3 and the format 1 records of earlier coopml versions (no
        ``format_version`` key: one value table for a single-task market, charges equal
        to ``price * improvement``, empty coalition as measured, no flags).

        Examples
        --------
        >>> Settlement.from_dict({"rule": "shapley", "mode": "single", "price": "free",
        ...                       "parties": [], "tasks": [], "checks": {}})
        Traceback (most recent call last):
        ...
        ValueError: not a coopml settlement record: field 'price': Input should be a valid \
number; got 'free'
        """
        if not isinstance(record, dict):
            raise ValueError(
                f"not a coopml settlement record: expected a mapping; got {type(record).__name__}"
            )
        version = record.get("format_version", 1)
        if type(version) is int and version not in (1, 2, 3, FORMAT_VERSION):
            raise ValueError(
                f"settlement record format_version {version!r} is not supported: this coopml "
                f"reads versions 1 to {FORMAT_VERSION}; upgrade coopml to read it"
            )
        data = read_record(SettlementRecord, record, "settlement record")
        try:
            return cls._from_record(data)
        except ValueError as exc:
            raise ValueError(f"not a coopml settlement record: {exc}") from None

    @classmethod
    def _from_record(cls, data: SettlementRecord) -> Settlement:
        """The settlement a validated record describes (a ValueError naming the field
        where the parties, tables or samples disagree)."""
        version = data.format_version
        names = [p.name for p in data.parties]
        index = {name: i for i, name in enumerate(names)}
        if len(index) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"field 'parties': names must be distinct; got {repeated} twice")

        def members(listed: str | list[str]) -> tuple[str, ...]:
            if listed == ALL_MEMBERS and version != FORMAT_VERSION:
                raise ValueError(
                    f"field 'format_version' is {version}, but members {ALL_MEMBERS!r} are "
                    f"written only by format {FORMAT_VERSION} (earlier formats list names)"
                )
            return tuple(names) if listed == ALL_MEMBERS else tuple(listed)

        def player(name: str, where: str) -> int:
            if name not in index:
                raise ValueError(f"field '{where}' must name a party of the record; got {name!r}")
            return index[name]

        def sample(raw: GainSampleRecord, where: str) -> GainSample:
            try:
                return GainSample.from_record(raw)
            except ValueError as exc:
                raise ValueError(f"field '{where}': {exc}") from None

        shared_sample = None if data.sample is None else sample(data.sample, "sample")
        tasks = []
        for k, t in enumerate(data.tasks):
            where = f"tasks.{k}"
            requester = player(t.requester, f"{where}.requester")
            ix = tuple(player(m, f"{where}.members") for m in members(t.members))
            try:
                if t.sample is not None or (t.value_table is None and shared_sample is not None):
                    gains = (
                        shared_sample if t.sample is None else sample(t.sample, f"{where}.sample")
                    )
                    tasks.append(Task(requester, ix, sample=gains))
                    continue
                table = (
                    data.value_table if version == 1 and t.value_table is None else t.value_table
                )
                tasks.append(
                    Task(
                        requester,
                        ix,
                        np.asarray(table, dtype=np.float64),
                        selection_evaluations=t.selection_evaluations,
                    )
                )
            except ValueError as exc:
                raise ValueError(f"field '{where}': {exc}") from None
        lines = tuple(
            PartyLine(
                **{
                    **p.model_dump(),
                    "charge": data.price * p.improvement if version == 1 else p.charge,
                    "members": members(p.members),
                }
            )
            for p in data.parties
        )
        if version > 1 and data.value_table is not None:
            if any(not np.array_equal(t.gain_table, data.value_table) for t in tasks):  # type: ignore[arg-type]
                raise ValueError("its value_table differs from the tasks' value tables")
        identical = tuple(
            tuple(player(n, f"identical.{k}") for n in group)
            for k, group in enumerate(data.identical)
        )
        valuation = data.valuation
        return cls(
            data.rule,
            data.mode,
            data.price,
            lines,
            tuple(tasks),
            dict(data.checks),
            identical,
            dict(data.rule_params),
            dict(data.provenance),
            empty_value=data.empty_value,
            flags=tuple(Flag(f.code, f.message, tuple(f.parties)) for f in data.flags),
            format_version=version,
            valuation=dict(valuation) if isinstance(valuation, dict) else dump_record(valuation),
        )

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
        """Recompute every line, check and flag from the stored value tables.

        Estimated shares are recomputed by replaying their estimator on the stored
        samples (:func:`~coopml.market.sampled_shares.sampled_shares`), so an edited
        sample value, payout, share or standard error is found.

        The record is consistent when every stored figure equals its recomputation (to
        1e-9), payouts balance and are non-negative, the market keeps no money, and the
        stored checks and flags agree with the recomputed ones. A property the mechanism
        itself fails (say, individual rationality) is reported in ``checks``, not
        treated as an inconsistency.

        Examples
        --------
        >>> s = settle(["a", "b"], [Task(0, (0, 1), np.array([0.5, 0.6, 0.7, 0.9])),
        ...                         Task(1, (0, 1), np.array([0.5, 0.6, 0.7, 0.9]))], "shapley")
        >>> s.verify().ok
        True
        """
        if self.rule not in PAYMENT_RULES:
            return Verification(False, (f"unknown rule {self.rule!r}",))
        try:
            redone = self.with_rule(self.rule)
        except ReplayMismatch as exc:  # each disagreeing field of a sample, by name
            return Verification(False, exc.problems)
        except (ValueError, TypeError, KeyError) as exc:
            return Verification(False, (f"cannot recompute the settlement: {exc}",))
        try:
            problems = self._differences(redone)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a malformed record
            return Verification(False, (f"malformed record: {type(exc).__name__}: {exc}",))
        return Verification(not problems, tuple(problems))

    def _derived(self) -> dict[str, Any]:
        """What a settlement derives from its tables and samples, as the record writes it
        (the lines are compared on their own): the tasks' requesters and members in
        record order, the rule's parameters, the checks and the flags."""
        return {
            "tasks": [
                {
                    "requester": self.names[t.requester],
                    "members": [self.names[j] for j in t.members],
                }
                for t in self.tasks
            ],
            "rule_params": dict(self.rule_params),
            "checks": dict(self.checks),
            "flags": [
                {"code": f.code, "message": f.message, "parties": list(f.parties)}
                for f in self.flags
            ],
        }

    def _label_differences(self) -> list[str]:
        """Every party-keyed block of the provenance whose keys are not the parties'
        names in player order (``provenance.data``, ``provenance.privacy``): a record
        whose names were swapped in the lines and tasks but not there is caught."""
        problems: list[str] = []
        names = list(self.names)
        for key in PARTY_KEYED_PROVENANCE:
            block = self.provenance.get(key)
            if block is None:
                continue
            if not isinstance(block, dict):
                problems.append(
                    f"provenance.{key}: must map each party's name to its entry; got "
                    f"{type(block).__name__}"
                )
            elif list(block) != names:
                problems.append(
                    f"provenance.{key}: keyed by {_short(list(block))}, but the parties are "
                    f"{_short(names)} (the same names in the same order)"
                )
        return problems

    def _differences(self, redone: Settlement) -> list[str]:
        """Every stored figure, check and flag that disagrees with ``redone``."""
        problems: list[str] = []
        for stored, fresh in zip(self.parties, redone.parties, strict=True):
            if tuple(stored.members) != tuple(fresh.members):
                problems.append(
                    f"{stored.name}: stored members {list(stored.members)} != the task's "
                    f"{list(fresh.members)}"
                )
            for key in (
                "fee",
                "own_gain",
                "model_gain",
                "improvement",
                "charge",
                "share",
                "payout",
                "net_gain",
                "payoff",
                "payout_stderr",
            ):
                a, b = getattr(stored, key), getattr(fresh, key)
                if not np.isclose(a, b, rtol=0, atol=TOLERANCE):
                    problems.append(f"{stored.name}: stored {key} {a!r} != recomputed {b!r}")
        if not redone.checks["balanced"]:
            problems.append(f"payouts do not balance: error {redone.checks['balance_error']!r}")
        if not redone.checks["nonnegative_payouts"]:
            problems.append("a recomputed payout is negative")
        stored_view, fresh_view = self._derived(), redone._derived()
        if self.format_version == 1:  # format 1 recorded fewer checks and no flags
            stored_view["checks"] = dict(self.checks)
            fresh_view["checks"] = {
                k: v for k, v in redone.checks.items() if k in self.checks or k in FORMAT_1_CHECKS
            }
        if self.format_version < FORMAT_VERSION:
            # An older record's flag sentences were worded by the coopml that wrote it;
            # their codes and parties are compared, their wording is not.
            for view in (stored_view, fresh_view):
                view["flags"] = [
                    {k: v for k, v in f.items() if k != "message"} for f in view["flags"]
                ]
        if self.format_version > 2:
            problems.extend(valuation_differences(self.valuation, redone.valuation))
        elif self.valuation or any(t.sample is not None for t in self.tasks):
            problems.append(
                f"format_version: stored {self.format_version}, but the record holds a "
                "valuation block or sampled tasks, which format 3 introduced"
            )
        problems.extend(record_differences(stored_view, fresh_view))
        problems.extend(self._label_differences())
        # The market keeps nothing: fees collected equal payoffs returned.
        kept = sum(p.fee for p in self.parties) - sum(p.payoff for p in self.parties)
        if abs(kept) > TOLERANCE * max(1.0, len(self.parties)):
            problems.append(f"ledger does not balance: the market keeps {kept!r}")
        if problems and self.format_version == 1 and redone.flags:
            problems.append(
                "note: this record was written in settlement format 1, before coopml clipped "
                "negative shares and refunded non-positive payments; its figures follow the "
                "earlier rule"
            )
        return problems


#: The checks every record carries, format 1 included (later formats carry them all).
FORMAT_1_CHECKS = ("balanced", "symmetric", "zero_element", "individually_rational")

#: Blocks of ``provenance`` keyed by party name, in player order.
PARTY_KEYED_PROVENANCE = ("data", "privacy")


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def record_differences(stored: Any, fresh: Any, path: str = "") -> list[str]:
    """Every field of ``stored`` that disagrees with ``fresh``, by its field path:
    numbers to :data:`TOLERANCE` (two NaNs agree), strings, booleans and ``None``
    exactly, mappings key by key (a missing or an extra key is a difference) and lists
    entry by entry.

    Examples
    --------
    >>> record_differences({"checks": {"ir_report": [{"name": "a", "net_gain": -0.5}]}},
    ...                    {"checks": {"ir_report": [{"name": "b", "net_gain": -0.5}]}})
    ["checks.ir_report.0.name: stored 'a' != recomputed 'b'"]
    >>> record_differences({"balance_error": 1e-12, "flags": []}, {"balance_error": 0.0,
    ...                    "flags": [{"code": "x"}]})
    ["flags: stored 0 entries != recomputed 1: [{'code': 'x'}]"]
    """
    where = path or "record"
    if isinstance(stored, dict) and isinstance(fresh, dict):
        problems: list[str] = []
        for key in [*fresh, *(k for k in stored if k not in fresh)]:
            at = f"{path}.{key}" if path else str(key)
            if key not in stored:
                problems.append(f"{at}: missing (recomputed {_short(fresh[key])})")
            elif key not in fresh:
                problems.append(f"{at}: stored {_short(stored[key])}, which is not recomputed")
            else:
                problems.extend(record_differences(stored[key], fresh[key], at))
        return problems
    if isinstance(stored, list | tuple) and isinstance(fresh, list | tuple):
        if len(stored) != len(fresh):
            return [
                f"{where}: stored {len(stored)} entries != recomputed {len(fresh)}: "
                f"{_short(list(fresh))}"
            ]
        return [
            problem
            for i, (a, b) in enumerate(zip(stored, fresh, strict=True))
            for problem in record_differences(a, b, f"{path}.{i}" if path else str(i))
        ]
    numbers = (int, float, np.integer, np.floating)
    if (
        isinstance(stored, numbers)
        and isinstance(fresh, numbers)
        and not isinstance(stored, bool | np.bool_)
        and not isinstance(fresh, bool | np.bool_)
    ):
        a, b = float(stored), float(fresh)
        if (np.isnan(a) and np.isnan(b)) or abs(a - b) <= TOLERANCE or a == b:
            return []
        return [f"{where}: stored {stored!r} != recomputed {fresh!r}"]
    if type(stored) is type(fresh) and stored == fresh:
        return []
    return [f"{where}: stored {_short(stored)} != recomputed {_short(fresh)}"]


def settle(
    names: Sequence[str],
    tasks: Sequence[Task],
    rule: str = "ohrimenko",
    price: float = 1.0,
    *,
    mode: Literal["single", "multi"] = "multi",
    similarity: Any = None,
    discount: float = 1.0,
    empty_value: EmptyValue = "majority",
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
    mode : {"single", "multi"}, default "multi"
        ``"single"``: one shared validation task, so every task must have all parties
        as members and the same gain table (a ValueError says which task differs);
        the parties' improvements form one payment. ``"multi"``: each requester's
        payment is divided among its own task's members.
    similarity : array-like (n, n), optional
        Pairwise data similarity, for ``"similarity_shapley"``.
    discount : float, default 1.0
        :math:`\\lambda` of ``"similarity_shapley"``.
    empty_value : "majority", "zero" or float in [0, 1], default "majority"
        Value of the empty coalition in every task: the table's entry as measured, 0,
        or this number (:func:`~coopml.market.payment.payment_shares`).
    identical : groups of player indices with identical data (for the symmetry check).
    provenance : dict, optional
        Stored with the settlement as given.

    Returns
    -------
    Settlement
        Lines, checks and flags (see the module docstring for the rules behind them).

    Examples
    --------
    >>> g = np.array([0.5, 0.6, 0.7, 0.9])
    >>> s = settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), g)], "ohrimenko", mode="single")
    >>> [(p.name, round(p.fee, 2), round(p.improvement, 2), round(p.payout, 4)) for p in s.parties]
    [('a', 0.4, 0.3, 0.2222), ('b', 0.3, 0.2, 0.2778)]
    >>> s.checks["balanced"], s.checks["individually_rational"], s.flags
    (True, False, ())

    When the pooled model is worse than the parties' own, the payment is refunded and
    the settlement says so:

    >>> worse = np.array([0.5, 0.8, 0.7, 0.6])
    >>> s = settle(["a", "b"], [Task(0, (0, 1), worse), Task(1, (0, 1), worse)], mode="single")
    >>> [(p.charge, p.payout, p.net_gain) for p in s.parties]
    [(0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]
    >>> [f.code for f in s.flags]
    ['no_positive_improvement']
    """
    names = tuple(names)
    n = len(names)
    if n == 0:
        raise ValueError("parameter 'names' must name at least one party; got none")
    rule = check_choice("rule", rule, PAYMENT_RULES)
    mode = check_choice("mode", mode, ("single", "multi"))  # type: ignore[assignment]
    empty_value = check_empty_value(empty_value)
    if sorted(t.requester for t in tasks) != list(range(n)):
        raise ValueError(
            f"parameter 'tasks' must hold exactly one task per party (requesters 0..{n - 1}); "
            f"got requesters {sorted(t.requester for t in tasks)}"
        )
    for t in tasks:
        if len(set(t.members)) != len(t.members) or not all(0 <= j < n for j in t.members):
            raise ValueError(
                f"parameter 'tasks': members must be distinct player indices in 0..{n - 1}; "
                f"the task of {names[t.requester]!r} has members {list(t.members)}"
            )
    if not (np.isfinite(price) and price > 0):
        raise ValueError(f"parameter 'price' must be finite and > 0; got {price}")
    by_requester = sorted(tasks, key=lambda t: t.requester)
    if mode == "single":
        _check_single(names, by_requester)
    sim = None if similarity is None else np.asarray(similarity, dtype=np.float64)
    own = np.array([t.own_gain for t in by_requester])
    model = np.array([t.model_gain for t in by_requester])
    improvement = model - own
    charge = price * improvement
    payout = np.zeros(n)
    payout_var = np.zeros(n)
    estimates: dict[int, Any] = {}
    degenerate: list[str] = []
    flags: list[Flag] = []
    # A payment: the payers whose charges it collects and the task whose shares divide it.
    payments = (
        [(list(range(n)), by_requester[0])]
        if mode == "single"
        else [([t.requester], t) for t in by_requester]
    )
    for payers, task in payments:
        members = list(task.members)
        task_sim = None if sim is None else sim[np.ix_(members, members)]
        if task.sample is None:
            shares = payment_shares(
                rule,
                task.gain_table,  # type: ignore[arg-type]
                similarity=task_sim,
                discount=discount,
                empty_value=empty_value,
            )
            share_se = np.zeros(len(members))
        else:
            shares, share_se = _estimated_shares(
                rule, task, estimates, task_sim, discount, empty_value
            )
        if shares.degenerate:
            degenerate.extend(names[i] for i in payers)
        amount = float(charge[payers].sum())
        where = "the shared task" if mode == "single" else f"the task of {names[task.requester]!r}"
        if amount <= TOLERANCE:
            charge[payers] = 0.0
            if np.any(np.abs(improvement[payers]) > 1e-12):
                flags.append(_refund_flag(names, payers, improvement, mode))
            continue
        if not shares.payable:
            charge[payers] = 0.0
            flags.append(
                Flag(
                    "no_positive_share",
                    f"{where}: no party's data has a positive {rule} value "
                    f"({_values(names, members, shares.raw)}), so the charge of "
                    f"{_sig(amount)} is refunded and nothing is paid out of it",
                    tuple(names[i] for i in payers),
                )
            )
            continue
        payout[members] += amount * shares.shares
        payout_var[members] += (amount * share_se) ** 2
        if shares.clipped:
            who = [members[k] for k in shares.clipped]
            flags.append(
                Flag(
                    "negative_shares_clipped",
                    f"{where}: the {rule} values of {[names[j] for j in who]} are negative "
                    f"({_values(names, who, shares.raw[list(shares.clipped)])}): their data "
                    "lowered the gain; their shares are clipped to 0 and the others renormalised",
                    tuple(names[j] for j in who),
                )
            )
    fee = price * (1.0 - own)
    net = payout - charge
    payoff = fee + net
    collected = float(charge.sum())
    share = payout / collected if collected > TOLERANCE else np.zeros(n)
    payout_se = np.sqrt(payout_var)
    lines = tuple(
        PartyLine(
            names[i],
            float(fee[i]),
            float(own[i]),
            float(model[i]),
            float(improvement[i]),
            float(charge[i]),
            float(share[i]),
            float(payout[i]),
            float(net[i]),
            float(payoff[i]),
            tuple(names[j] for j in by_requester[i].members),
            float(payout_se[i]),
        )
        for i in range(n)
    )
    checks = _checks(lines, identical, degenerate)
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
        empty_value=empty_value,
        flags=tuple(flags),
        valuation=_valuation(names, by_requester, estimates, mode),
    )


def _estimated_shares(
    rule: str,
    task: Task,
    estimates: dict[int, Any],
    similarity: NDArray[np.float64] | None,
    discount: float,
    empty_value: EmptyValue,
) -> tuple[Any, NDArray[np.float64]]:
    """Shares of a sampled task (its estimate replayed from the sample) and their
    standard errors (:mod:`coopml.market.sampled_shares`)."""
    assert task.sample is not None
    sample = task.sample
    if id(sample) not in estimates:

        def empty_gain(measured: float) -> float:
            return empty_coalition_gain([measured], empty_value)

        estimates[id(sample)] = sampled_shares(sample, rule, empty_gain)
    result = estimates[id(sample)]
    raw, se = result.values.copy(), result.stderr.copy()
    if rule == "similarity_shapley":
        if similarity is None:
            raise ValueError("rule 'similarity_shapley' needs parameter 'similarity'; got None")
        lam = float(discount)
        factor = np.exp(-lam * (similarity.sum(axis=1) - np.diag(similarity)))
        raw, se = raw * factor, se * factor
    return _normalise(raw), share_stderr(raw, se)


def _valuation(
    names: tuple[str, ...], tasks: Sequence[Task], estimates: dict[int, Any], mode: str
) -> dict[str, Any]:
    """The record's ``valuation`` block: how the shares were valued."""
    samples = {id(t.sample): (t, t.sample) for t in tasks if t.sample is not None}
    # every model fit behind the tables, those that chose a task's members included
    selection = sum(t.selection_evaluations for t in tasks if t.sample is None)
    if not samples:
        sizes = [int(np.size(t.gain_table)) for t in tasks]  # type: ignore[arg-type]
        return {
            "method": "exact",
            "estimator": None,
            "evaluations": int(sizes[0] if mode == "single" else sum(sizes)) + selection,
            "stopped_by": None,
            "converged": True,
            "seed": None,
        }
    per_task: list[dict[str, Any]] = []
    for key, (task, sample) in samples.items():
        assert sample is not None
        per_task.append(
            {
                "requester": names[task.requester] if len(samples) > 1 else None,
                "estimator": sample.estimator,
                "evaluations": sample.n_evaluations,
                "selection_evaluations": sample.selection_evaluations,
                "stopping": str(stopping_from_json(sample.stopping)),
                "stopped_by": sample.stopped_by,
                "converged": bool(estimates[key].converged),
                "seed": sample.seed,
            }
        )
    exact = [t for t in tasks if t.sample is None]
    return {
        "method": "monte_carlo",
        "estimator": sorted({p["estimator"] for p in per_task})[0],
        "evaluations": int(
            sum(p["evaluations"] + p["selection_evaluations"] for p in per_task)
            + sum(int(np.size(t.gain_table)) for t in exact)  # type: ignore[arg-type, misc]
            + selection
        ),
        "stopped_by": per_task[0]["stopped_by"] if len(per_task) == 1 else "see tasks",
        "converged": all(p["converged"] for p in per_task),
        "seed": per_task[0]["seed"],
        "tasks": per_task,
    }


def _check_single(names: tuple[str, ...], tasks: Sequence[Task]) -> None:
    """A single-task market has one table, shared by every requester."""
    everyone = tuple(range(len(names)))
    first = tasks[0]
    for t in tasks:
        if t.members != everyone:
            raise ValueError(
                "mode='single' needs one task table shared by all parties, so every task's "
                f"members must be all {len(names)} parties in order; the task of "
                f"{names[t.requester]!r} has members {[names[j] for j in t.members]} "
                "(settle tasks that differ with mode='multi')"
            )
        if t.sample is not None or first.sample is not None:
            if t.sample is not first.sample:
                raise ValueError(
                    "mode='single' needs one task sample shared by all parties; the sample of "
                    f"{names[t.requester]!r}'s task differs from {names[first.requester]!r}'s"
                )
            continue
        if not np.array_equal(t.gain_table, first.gain_table):  # type: ignore[arg-type]
            raise ValueError(
                "mode='single' needs one task table shared by all parties; the gain table of "
                f"{names[t.requester]!r}'s task differs from {names[first.requester]!r}'s "
                "(settle tasks that differ with mode='multi')"
            )


def _sig(x: float, signed: bool = False) -> str:
    """``x`` to 4 significant figures, never in scientific notation (as in the reports)."""
    text = np.format_float_positional(
        float(x), precision=4, unique=False, fractional=False, trim="-", sign=signed
    )
    return "0" if text in ("-0", "+0") and not signed else text


def _points(x: float) -> str:
    """A score difference in points (1 point = 0.01 of the score)."""
    return f"{_sig(100 * x, signed=True)} points"


def _values(names: tuple[str, ...], players: Sequence[int], values: Any) -> str:
    return ", ".join(f"{names[j]}: {_sig(v)}" for j, v in zip(players, values, strict=True))


def _refund_flag(
    names: tuple[str, ...], payers: list[int], improvement: NDArray[np.float64], mode: str
) -> Flag:
    if mode == "single":
        message = (
            f"the improvements sum to {_points(improvement.sum())}, not above zero (the pooled "
            "model is no better, overall, than the parties' own): every charge is refunded and "
            "nothing is paid out"
        )
    else:
        (i,) = payers
        message = (
            f"the model trained for {names[i]!r} improves on its own by {_points(improvement[i])}, "
            "not above zero: its charge is refunded and nothing is paid out for its task"
        )
    return Flag("no_positive_improvement", message, tuple(names[i] for i in payers))


def _checks(
    lines: Sequence[PartyLine],
    identical: Sequence[Sequence[int]],
    degenerate: list[str],
) -> dict[str, Any]:
    payout = np.array([p.payout for p in lines])
    charge = np.array([p.charge for p in lines])
    balance_error = float(payout.sum() - charge.sum())
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
                f"pays {_sig(p.charge)} for an improvement of {_points(p.improvement)} "
                f"but its data earns {_sig(p.payout)}: net {_sig(p.net_gain, signed=True)} "
                "(money in units of the price c)"
            ),
        }
        for p in lines
        if p.net_gain < -TOLERANCE
    ]
    return {
        "balance_error": balance_error,
        "balanced": bool(abs(balance_error) <= TOLERANCE * max(1.0, float(np.abs(charge).sum()))),
        "nonnegative_payouts": bool(np.all(payout >= -TOLERANCE)),
        "symmetric": not asymmetric,
        "asymmetric_groups": asymmetric,
        "zero_element": not zero_violations,
        "zero_element_violations": zero_violations,
        "individually_rational": not ir_report,
        "ir_report": ir_report,
        "degenerate_tasks": degenerate,
    }
