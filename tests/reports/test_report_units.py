"""Units in the settlement's messages and legend (issue 14 item 9): improvements in
points, money to 4 significant figures, and how fee, charge and net relate."""

from __future__ import annotations

import numpy as np

from coopml.market import Task, settle
from coopml.reports.summary import COLUMNS, settlement_summary


def _settle(g: np.ndarray, rule: str = "ohrimenko"):
    return settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), g)], rule, mode="single")


def test_individual_rationality_reason_states_points_and_four_figures():
    s = _settle(np.array([0.5, 0.6, 0.7, 0.9]))
    (report,) = s.checks["ir_report"]
    # a: charged c * 0.3, paid 0.5 * 4/9 = 0.2222...; improvement 0.3 = 30 points
    assert report["reason"].startswith(
        "pays 0.3 for an improvement of +30 points but its data earns 0.2222: net -0.07778"
    )
    assert "0.222222" not in report["reason"]
    assert s.verify().ok


def test_refund_flag_states_the_improvement_in_points():
    s = _settle(np.array([0.5, 0.4, 0.45, 0.3]))
    flag = next(f for f in s.flags if f.code == "no_positive_improvement")
    assert "the improvements sum to -25 points" in flag.message


def test_legend_and_summary_say_how_fee_charge_and_net_relate():
    assert "fee returned = fee − charge" in COLUMNS["fee"]
    assert COLUMNS["net"].startswith("(fee returned + payout) − fee = payout − charge")
    first = settlement_summary(_settle(np.array([0.5, 0.6, 0.7, 0.9])))[0]
    assert "gets it back less its charge, plus its payout" in first
    assert "net gain is payout − charge" in first
