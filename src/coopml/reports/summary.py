"""A market settlement in plain language: who pays, who earns, why, and in what units.

The sentences here open ``report.html`` and the terminal output of ``coopml market run``,
so that a reader without the paper's notation can follow the money. Numbers carry four
significant figures (:func:`sig`); scores are read in *points* of the scorer (one point
is 0.01 of a score in [0, 1]) and money in units of the price ``c``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from coopml.market.settlement import PartyLine, Settlement

__all__ = [
    "COLUMNS",
    "RULES",
    "members_note",
    "payout_text",
    "settlement_summary",
    "sig",
    "valuation_sentence",
]

#: One line per payment rule: how it divides a payment.
RULES = {
    "ohrimenko": (
        "the paper's rule: shares follow each party's Shapley value in the market's "
        "characteristic function (the pooled model's score plus the improvement it brings "
        "each member)"
    ),
    "shapley": (
        "shares follow each party's Shapley value: its average added score over every "
        "order in which the parties could have joined"
    ),
    "banzhaf": (
        "shares follow each party's Banzhaf value: its average added score over every "
        "group of other parties it could join"
    ),
    "loo": (
        "shares follow what each party's data adds when it joins all the others (leave-one-out)"
    ),
    "similarity_shapley": (
        "shares follow each party's Shapley value, discounted for data that resembles "
        "other parties' (a replication defence)"
    ),
}

#: One line per settlement column.
COLUMNS = {
    "fee": (
        "a deposit paid to join, c × (1 − its own model's score); it comes back less the "
        "charge (fee returned = fee − charge), so it is not in net"
    ),
    "own score": "score of a model trained on the party's own data alone",
    "model score": "score of the model the market trained for the party",
    "improvement": "model score − own score, in points (1 point = 0.01 of the score)",
    "charge": "what the party pays for its improvement: c × improvement (0 if refunded)",
    "share": "the party's part of the money paid out, under the payment rule",
    "payout": "what the party is paid for the use of its data",
    "net": (
        "(fee returned + payout) − fee = payout − charge: above zero the party earns on "
        "balance, below it pays"
    ),
}

_Z95 = 1.959963984540054


def sig(x: float, *, signed: bool = False) -> str:
    """``x`` to four significant figures, never in scientific notation.

    Examples
    --------
    >>> sig(0.123456), sig(12345.6), sig(-0.000123456), sig(0.5, signed=True), sig(0.0)
    ('0.1235', '12350', '-0.0001235', '+0.5', '0')
    """
    if not np.isfinite(x):
        return str(x)
    text = np.format_float_positional(
        float(x), precision=4, unique=False, fractional=False, trim="-", sign=signed
    )
    return "0" if text in ("-0", "+0") and not signed else text


def _points(x: float) -> str:
    return f"{sig(100 * x, signed=True)} points"


def _unit(settlement: Settlement) -> str:
    return str(settlement.provenance.get("scorer", "score")).replace("_", " ")


def payout_text(line: PartyLine) -> str:
    """The payout, with ``± standard error`` where the shares were estimated.

    Examples
    --------
    >>> from coopml.market import Task, settle
    >>> g = np.array([0.5, 0.6, 0.7, 0.9])
    >>> s = settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), g)], mode="single")
    >>> payout_text(s.parties[0])
    '0.2222'
    """
    se = float(getattr(line, "payout_stderr", 0.0) or 0.0)
    return sig(line.payout) + (f" ± {sig(se)}" if se > 0 else "")


def members_note(settlement: Settlement) -> str | None:
    """A sentence replacing the ``members`` column when every model was trained on every
    party's data (the single-task market); ``None`` when the lists differ."""
    everyone = tuple(settlement.names)
    if all(tuple(p.members) == everyone for p in settlement.parties):
        return f"Every party's model was trained on all {len(everyone)} parties' data."
    return None


def _names(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _raw_shares(settlement: Settlement) -> list[tuple[str, float]]:
    """Parties whose rule value, as a fraction of the payment it divides, falls outside
    [0, 1] (before coopml clipped negative values)."""
    from coopml.market.payment import payment_shares

    names = settlement.names
    sim = settlement.rule_params.get("similarity")
    out: dict[str, float] = {}
    tasks = settlement.tasks[:1] if settlement.mode == "single" else settlement.tasks
    for task in tasks:
        if task.gain_table is None:
            continue  # estimated shares: no table to read raw values from
        members = list(task.members)
        sub = None if sim is None else np.asarray(sim)[np.ix_(members, members)]
        shares = payment_shares(
            settlement.rule,
            task.gain_table,
            similarity=sub,
            discount=settlement.rule_params.get("discount", 1.0),
            empty_value=settlement.empty_value,
        )
        total = float(shares.raw.sum())
        if total <= 0:
            continue  # nothing to divide: refunded and flagged
        for j, raw in zip(members, shares.raw / total, strict=True):
            if raw < -1e-12 or raw > 1 + 1e-12:
                out.setdefault(names[j], float(raw))
    return list(out.items())


def _ties(settlement: Settlement) -> list[str]:
    """Neighbouring payouts whose difference is within its 95% margin."""
    lines = sorted(settlement.parties, key=lambda p: p.payout)
    out = []
    for a, b in itertools.pairwise(lines):
        se_a = float(getattr(a, "payout_stderr", 0.0) or 0.0)
        se_b = float(getattr(b, "payout_stderr", 0.0) or 0.0)
        margin = _Z95 * float(np.hypot(se_a, se_b))
        if margin > 0 and b.payout - a.payout <= margin:
            out.append(
                f"The payouts of {a.name} ({payout_text(a)}) and {b.name} ({payout_text(b)}) "
                f"cannot be told apart: their difference, {sig(b.payout - a.payout)}, is "
                f"within its 95% margin of error, {sig(margin)}."
            )
    return out


def valuation_sentence(block: Mapping[str, Any] | None) -> str | None:
    """How estimated shares were computed, in words, from a settlement's ``valuation``
    block; ``None`` when the shares are exact or the block is absent.

    Examples
    --------
    >>> valuation_sentence({"method": "monte_carlo", "estimator": "stratified",
    ...                     "evaluations": 3000, "stopped_by": "MaxEvaluations(3000)",
    ...                     "converged": False, "seed": 0})
    'Shares were estimated by Monte Carlo, not computed exactly: the stratified estimator
    used 3,000 model fits and stopped by the 3,000-evaluation budget; not converged (seed
    0).'
    >>> valuation_sentence({"method": "exact"}) is None
    True
    """
    from coopml.coalitions.result import _rule_parts, _stopping_reason

    if not block or block.get("method", "exact") == "exact":
        return None
    estimator = block.get("estimator")
    evaluations = block.get("evaluations")
    stopped_by = block.get("stopped_by")
    text = "Shares were estimated by Monte Carlo, not computed exactly: "
    text += f"the {estimator} estimator" if estimator else "the estimator"
    if evaluations is not None:
        text += f" used {int(evaluations):,} model fits and"
    if stopped_by:
        n_fits = int(evaluations or 0)
        reasons = [_stopping_reason(p, 1, n_fits) for p in _rule_parts(str(stopped_by))]
        text += " stopped by " + " and ".join(reasons)
    else:
        text += " stopped"
    if "converged" in block:
        text += "; converged" if block["converged"] else "; not converged"
    if block.get("seed") is not None:
        text += f" (seed {block['seed']})"
    return text + "."


def settlement_summary(settlement: Settlement) -> list[str]:
    """Plain-language sentences on a settlement: units, who pays and who earns on
    balance and why, whether pooling hurt, shares outside [0, 1], estimated payouts that
    cannot be told apart.

    Examples
    --------
    Two parties: b's data lowers the score of every model it joins.

    >>> from coopml.market import Task, settle
    >>> g = np.array([0.5, 0.8, 0.4, 0.7])
    >>> s = settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), g)], "shapley",
    ...            mode="single")
    >>> for sentence in settlement_summary(s):
    ...     print(sentence)
    Scores are in points of score (1 point = 0.01); money is in units of the price c = 1,
    so a model 1 point better costs 0.01. Each party deposits its fee to join and gets it
    back less its charge, plus its payout, so its net gain is payout − charge.
    Rule 'shapley': shares follow each party's
    Shapley value: its average added score over every order in which the parties could
    have joined.
    1 of 2 parties earn on balance and 1 pays; in order of net gain:
    a earns 0.3: paid 0.2 for the use of its data; credited 0.1 because its model scores
    10 points below its own.
    b pays 0.3: charged 0.3 for a model 30 points better than its own.
    Pooling hurts 1 of 2 parties: the pooled model scores below their own model for a
    (-10 points).
    Raw shares fall outside [0, 1]: a 1.5, b -0.5. A negative share means that party's
    data lowered the model's score; coopml set those shares to 0 and renormalised the
    others, so no payout is negative.
    """
    s = settlement
    unit = _unit(s)
    n = len(s.parties)
    rule = RULES.get(s.rule, s.rule)
    out = [
        f"Scores are in points of {unit} (1 point = 0.01); money is in units of the price "
        f"c = {sig(s.price)}, so a model 1 point better costs {sig(0.01 * s.price)}. "
        f"Each party deposits its fee to join and gets it back less its charge, plus its "
        f"payout, so its net gain is payout − charge. Rule '{s.rule}': {rule}."
    ]
    earn = [p for p in s.parties if p.net_gain > 1e-12]
    pay = [p for p in s.parties if p.net_gain < -1e-12]
    if not earn and not pay:
        out.append("Nobody pays or earns on balance: every charge was zero or refunded.")
    else:
        out.append(
            f"{len(earn)} of {n} parties earn on balance and {len(pay)} "
            + ("pays" if len(pay) == 1 else "pay")
            + "; in order of net gain:"
        )
    for p in sorted(earn + pay, key=lambda p: -p.net_gain):
        out.append(_party_sentence(p))
    hurt = [p for p in s.parties if p.improvement < -1e-12]
    if hurt:
        model = "pooled model" if s.mode == "single" else "model the market chose"
        most = f"The {model} scores below most parties' own models. " if 2 * len(hurt) > n else ""
        detail = ", ".join(f"{p.name} ({_points(p.improvement)})" for p in hurt)
        out.append(
            f"{most}Pooling hurts {len(hurt)} of {n} parties: the {model} scores below "
            f"their own model for {detail}."
        )
    outside = _raw_shares(s)
    if outside:
        values = ", ".join(f"{name} {sig(v)}" for name, v in outside)
        out.append(
            f"Raw shares fall outside [0, 1]: {values}. A negative share means that party's "
            "data lowered the model's score; coopml set those shares to 0 and renormalised "
            "the others, so no payout is negative."
        )
    refunded = [f for f in s.flags if f.code != "negative_shares_clipped"]
    if refunded:
        out.append(
            "Some charges were refunded in full (see the flags): "
            + " ".join(dict.fromkeys(_flag_summary(f.code) for f in refunded))
        )
    out.extend(_ties(s))
    note = valuation_sentence(getattr(s, "valuation", None))
    if note:
        out.append(note)
    return out


def _party_sentence(p: PartyLine) -> str:
    """Why one party's net gain is what it is."""
    verb = "earns" if p.net_gain > 0 else "pays"
    parts = [f"paid {payout_text(p)} for the use of its data"] if p.payout > 0 else []
    if p.charge > 1e-12:
        parts.append(
            f"charged {sig(p.charge)} for a model {sig(100 * p.improvement)} points better "
            "than its own"
        )
    elif p.charge < -1e-12:
        parts.append(
            f"credited {sig(-p.charge)} because its model scores "
            f"{sig(-100 * p.improvement)} points below its own"
        )
    elif abs(p.improvement) > 1e-12:
        parts.append(f"its charge for a model {_points(p.improvement)} was refunded")
    return f"{p.name} {verb} {sig(abs(p.net_gain))}: " + "; ".join(parts) + "."


def _flag_summary(code: str) -> str:
    from coopml.market.settlement import FLAG_SUMMARIES

    return FLAG_SUMMARIES.get(code, code)
