"""The market's conventions, stated and recorded: the value of the empty coalition,
normalised shares, clipped negative shares and refunds, the single-task mode, and
settlement records that round-trip (issue 15, items 8 and 11)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from coopml.config import MarketConfig, load_config
from coopml.data import Party
from coopml.market import (
    PAYMENT_RULES,
    Settlement,
    Task,
    market_characteristic,
    payment_shares,
    run_market,
    settle,
)
from coopml.market.job import run_market_job
from coopml.market.settlement import FLAG_SUMMARIES, FORMAT_VERSION


def _shapley(v):
    """Brute force: the average marginal contribution over every order."""
    n = v.size.bit_length() - 1
    phi = np.zeros(n)
    for order in itertools.permutations(range(n)):
        S = 0
        for i in order:
            phi[i] += v[S | 1 << i] - v[S]
            S |= 1 << i
    return phi / math.factorial(n)


def _with_empty(g, value):
    g = np.array(g, dtype=np.float64)
    g[0] = value
    return g


def _single(g, rule="ohrimenko", price=1.0, **kw):
    n = g.size.bit_length() - 1
    tasks = [Task(i, tuple(range(n)), g) for i in range(n)]
    return settle([f"p{i}" for i in range(n)], tasks, rule, price, mode="single", **kw)


def _roundtrip(s):
    return Settlement.from_dict(json.loads(json.dumps(s.to_dict())))


gain_tables = st.integers(1, 4).flatmap(
    lambda n: arrays(np.float64, 1 << n, elements=st.floats(0.0, 1.0))
)
empty_values = st.one_of(st.sampled_from(["majority", "zero"]), st.floats(0.0, 1.0))


# ----------------------------------------------------------------- empty coalition
@settings(max_examples=40, deadline=None)
@given(g=gain_tables, x=st.floats(0.0, 1.0))
def test_empty_value_shifts_every_shapley_value_by_v_empty_over_n(g, x):
    n = g.size.bit_length() - 1
    for rule, game in (("shapley", lambda t: t), ("ohrimenko", market_characteristic)):
        majority = payment_shares(rule, g).raw
        zero = payment_shares(rule, g, empty_value="zero").raw
        number = payment_shares(rule, g, empty_value=x).raw
        np.testing.assert_allclose(majority, _shapley(game(g)), atol=1e-12)
        np.testing.assert_allclose(zero, _shapley(game(_with_empty(g, 0.0))), atol=1e-12)
        np.testing.assert_allclose(number, _shapley(game(_with_empty(g, x))), atol=1e-12)
        # v(empty) enters each of the n Shapley values once, with weight 1/n
        np.testing.assert_allclose(majority, zero - g[0] / n, atol=1e-12)


def test_empty_value_changes_the_shares_of_a_real_market(cancer):
    parties, validation = cancer
    learner = make_pipeline(StandardScaler(), LogisticRegression())
    majority = run_market(parties, learner, validation)
    zero = run_market(parties, learner, validation, empty_value="zero")
    assert zero.settlement.flags == ()  # every improvement is non-negative here
    g = zero.settlement.value_table
    assert g is not None and g[0] > 0.5  # the table keeps the measured majority class
    np.testing.assert_array_equal(g, majority.settlement.value_table)
    phi = _shapley(market_characteristic(_with_empty(g, 0.0)))
    assert np.all(phi > 0)
    shares = [p.share for p in zero.settlement.parties]
    np.testing.assert_allclose(shares, phi / phi.sum(), atol=1e-12)
    assert not np.allclose(shares, [p.share for p in majority.settlement.parties], atol=1e-3)
    # recorded, re-settled with the same convention, and used by verify
    assert (majority.settlement.empty_value, zero.settlement.empty_value) == ("majority", "zero")
    assert zero.compare_rules()["ohrimenko"].tolist() == pytest.approx(
        [p.net_gain for p in zero.settlement.parties], abs=1e-12
    )
    record = json.loads(json.dumps(zero.settlement.to_dict()))
    assert record["empty_value"] == "zero"
    assert Settlement.from_dict(record).verify().ok
    record["empty_value"] = "majority"
    verdict = Settlement.from_dict(record).verify()
    assert not verdict.ok and any("stored share" in p for p in verdict.problems)
    # re-settling under the other convention reproduces the other market
    again = zero.settlement.with_empty_value("majority")
    assert [p.payout for p in again.parties] == pytest.approx(
        [p.payout for p in majority.settlement.parties], abs=1e-12
    )


@pytest.mark.parametrize("bad", ["none", "dummy", 1.5, -0.1, float("nan"), True, None])
def test_empty_value_is_validated(cancer, bad):
    parties, validation = cancer
    match = r"'empty_value' must be 'majority', 'zero' or a number in \[0, 1\]; got"
    with pytest.raises(ValueError, match=match):
        run_market(parties, GaussianNB(), validation, empty_value=bad)
    with pytest.raises(ValueError, match=match):
        _single(np.array([0.5, 0.6, 0.7, 0.9]), empty_value=bad)


LOGISTIC = """
[learner]
estimator = "sklearn.linear_model.LogisticRegression"
params = { max_iter = 1000 }
scale = true
"""
NAIVE_BAYES = """
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
"""


def _job_file(tmp_path, market: str, learner: str = LOGISTIC):
    path = tmp_path / "job.toml"
    data = """
[data]
dataset = "breast_cancer"
validation_fraction = 0.3

[partition]
method = "size_skew"
n_parties = 3
sizes = [0.5, 0.3, 0.2]
"""
    path.write_text(data + learner + market)
    return path


def test_empty_value_round_trips_from_job_file_to_verified_record(tmp_path):
    cfg, base = load_config(
        _job_file(tmp_path, '[market]\nrule = "ohrimenko"\nempty_value = "zero"\n'), MarketConfig
    )
    assert cfg.market.empty_value == "zero"
    settlement = run_market_job(cfg, base).result.settlement
    assert settlement.empty_value == "zero" and settlement.flags == ()
    settlement.save(tmp_path / "settlement.json")
    record = json.loads((tmp_path / "settlement.json").read_text())
    assert record["empty_value"] == "zero"
    loaded = Settlement.load(tmp_path / "settlement.json")
    assert loaded.empty_value == "zero" and loaded.verify().ok
    record["empty_value"] = "majority"  # used by verify: the shares no longer match
    assert not Settlement.from_dict(record).verify().ok
    default, _ = load_config(_job_file(tmp_path, "[market]\n"), MarketConfig)
    assert default.market.empty_value == "majority"
    number, _ = load_config(_job_file(tmp_path, "[market]\nempty_value = 0.25\n"), MarketConfig)
    assert number.market.empty_value == 0.25


def test_cli_and_report_show_the_convention_and_the_flags(tmp_path):
    from typer.testing import CliRunner

    from coopml.cli import app

    # naive Bayes on this split: the pooled model is no better overall, so the round
    # is refunded and flagged
    job = _job_file(tmp_path, '[market]\nempty_value = "zero"\n', NAIVE_BAYES)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["market", "run", str(job), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "empty coalition zero" in text
    assert "flag no_positive_improvement: the improvements sum to" in text
    report = (out / "report.html").read_text()
    assert "Value of the empty coalition: zero" in report
    assert "<code>no_positive_improvement</code>" in report
    record = json.loads((out / "settlement.json").read_text())
    assert [f["code"] for f in record["flags"]] == ["no_positive_improvement"]
    verified = CliRunner().invoke(app, ["market", "verify", str(out / "settlement.json")])
    assert verified.exit_code == 0, verified.output


# ----------------------------------------------------------------- negative shares, refunds
def test_negative_shares_are_clipped_and_the_rest_renormalised():
    # p1's data lowers every model: Shapley values (0.3, -0.1). The paper's formulas
    # would pay p1 -0.1 (shares 1.5 and -0.5 of a pot of 0.2).
    g = np.array([0.5, 0.8, 0.4, 0.7])
    s = _single(g, "shapley")
    p0, p1 = s.parties
    assert (p0.improvement, p1.improvement) == pytest.approx((-0.1, 0.3))
    assert (p0.payout, p1.payout) == (pytest.approx(0.2), 0.0)
    assert (p0.share, p1.share) == (pytest.approx(1.0), 0.0)
    assert (p0.charge, p1.charge) == pytest.approx((-0.1, 0.3))
    assert [(f.code, f.parties) for f in s.flags] == [("negative_shares_clipped", ("p1",))]
    assert "p1: -0.1" in s.flags[0].message
    assert s.checks["balanced"] and s.checks["nonnegative_payouts"]
    assert sum(p.payout for p in s.parties) == pytest.approx(sum(p.charge for p in s.parties))
    assert sum(p.payoff for p in s.parties) == pytest.approx(sum(p.fee for p in s.parties))
    loaded = _roundtrip(s)
    assert loaded.flags == s.flags and loaded.verify().ok


def test_a_payment_without_positive_share_is_refunded():
    # The pooled model improves on both parties' own (a = 0.3 each), but both score
    # below the majority-class predictor, so both Shapley values are negative.
    g = np.array([0.9, 0.5, 0.5, 0.8])
    s = _single(g, "shapley")
    assert [(p.charge, p.payout) for p in s.parties] == [(0.0, 0.0), (0.0, 0.0)]
    assert [p.payoff for p in s.parties] == pytest.approx([p.fee for p in s.parties])
    assert [f.code for f in s.flags] == ["no_positive_share"]
    assert s.checks["balanced"] and s.verify().ok
    # With v(empty) = 0 the same table pays: the convention matters.
    z = s.with_empty_value("zero")
    assert [p.payout for p in z.parties] == pytest.approx([0.3, 0.3]) and z.flags == ()


def test_a_non_positive_improvement_is_refunded_in_both_modes():
    # single task: improvements (-0.1, 0.05) sum below zero
    g = np.array([0.0, 0.8, 0.65, 0.7])
    s = _single(g, "ohrimenko")
    assert [(p.charge, p.payout, p.net_gain) for p in s.parties] == [(0.0, 0.0, 0.0)] * 2
    assert [(f.code, f.parties) for f in s.flags] == [("no_positive_improvement", ("p0", "p1"))]
    assert s.checks["zero_element"] and s.checks["individually_rational"]
    # multi task: a's model (trained with b) scores below a's own; b's task is b alone
    tasks = [Task(0, (0, 1), np.array([0.0, 0.8, 0.5, 0.7])), Task(1, (1,), np.array([0.0, 0.6]))]
    m = settle(["a", "b"], tasks, "shapley")
    a, b = m.parties
    assert a.improvement == pytest.approx(-0.1) and a.charge == 0.0 and a.payoff == a.fee
    assert b.payout == 0.0 and b.payoff == b.fee
    assert [(f.code, f.parties) for f in m.flags] == [("no_positive_improvement", ("a",))]
    assert m.checks["balanced"] and _roundtrip(m).verify().ok


def test_flag_codes_have_party_neutral_summaries():
    assert set(FLAG_SUMMARIES) == {
        "negative_shares_clipped",
        "no_positive_improvement",
        "no_positive_share",
    }


# ----------------------------------------------------------------- single-task mode
def test_single_mode_needs_one_shared_table():
    g = np.array([0.5, 0.6, 0.7, 0.9])
    other = np.array([0.5, 0.6, 0.7, 0.8])
    with pytest.raises(
        ValueError, match=r"one task table shared by all parties; the gain table of 'b'"
    ):
        settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), other)], mode="single")
    tasks = [Task(0, (0, 1), g), Task(1, (1,), np.array([0.0, 0.6]))]
    with pytest.raises(ValueError, match=r"the task of 'b' has members \['b'\]"):
        settle(["a", "b"], tasks, mode="single")
    with pytest.raises(ValueError, match="'mode' must be one of"):
        settle(["a", "b"], tasks, mode="shared")  # type: ignore[arg-type]
    # the same tasks settle in the multi-task market, and round-trip
    s = settle(["a", "b"], [Task(0, (0, 1), g), Task(1, (0, 1), other)], mode="multi")
    assert _roundtrip(s).verify().ok


@st.composite
def markets(draw):
    n = draw(st.integers(1, 4))
    mode = draw(st.sampled_from(["single", "multi"]))
    gains = st.floats(0.0, 1.0)
    if mode == "single":
        table = np.array(draw(st.lists(gains, min_size=1 << n, max_size=1 << n)))
        tasks = [Task(i, tuple(range(n)), table) for i in range(n)]
    else:
        tasks = []
        for i in range(n):
            others = draw(st.sets(st.integers(0, n - 1), max_size=n))
            members = tuple(sorted(others | {i}))
            size = 1 << len(members)
            tasks.append(
                Task(i, members, np.array(draw(st.lists(gains, min_size=size, max_size=size))))
            )
    rule = draw(st.sampled_from(PAYMENT_RULES))
    options = {}
    if rule == "similarity_shapley":
        options = {
            "similarity": draw(arrays(np.float64, (n, n), elements=gains)),
            "discount": draw(st.floats(0.0, 3.0)),
        }
    return settle(
        [f"p{i}" for i in range(n)],
        tasks,
        rule,
        draw(st.floats(0.1, 10.0)),
        mode=mode,
        empty_value=draw(empty_values),
        **options,
    )


@settings(max_examples=60, deadline=None)
@given(
    s=markets(), which=st.integers(0, 3), delta=st.floats(1e-6, 1.0), sign=st.sampled_from([-1, 1])
)
def test_random_markets_round_trip_verify_and_detect_edits(tmp_path_factory, s, which, delta, sign):
    # every settlement's own invariants
    charges = np.array([p.charge for p in s.parties])
    payouts = np.array([p.payout for p in s.parties])
    assert np.all(payouts >= 0) and s.checks["nonnegative_payouts"] and s.checks["balanced"]
    assert abs(payouts.sum() - charges.sum()) <= 1e-9 * max(1.0, np.abs(charges).sum())
    assert sum(p.payoff for p in s.parties) == pytest.approx(
        sum(p.fee for p in s.parties), abs=1e-9
    )
    for p in s.parties:
        assert p.charge == 0.0 or p.charge == pytest.approx(s.price * p.improvement, abs=1e-12)
    assert {f.code for f in s.flags} <= set(FLAG_SUMMARIES)
    assert s.checks["zero_element"]
    # to_dict -> JSON string -> from_dict, and a file
    loaded = _roundtrip(s)
    assert loaded.verify().ok, loaded.verify().problems
    assert loaded.to_dict() == s.to_dict() and loaded.format_version == FORMAT_VERSION
    path = tmp_path_factory.mktemp("settlement") / "s.json"
    s.save(path)
    assert Settlement.load(path).verify().ok
    # an edited payout fails verification after loading
    record = json.loads(json.dumps(s.to_dict()))
    j = which % len(s.parties)
    record["parties"][j]["payout"] += sign * delta
    verdict = Settlement.from_dict(json.loads(json.dumps(record))).verify()
    assert not verdict.ok and any(f"p{j}: stored payout" in p for p in verdict.problems)


def test_a_real_multi_task_market_round_trips(cancer):
    parties, validation = cancer
    X_val, y_val = validation
    own = [Party(p.name, p.X, p.y, X_val[i::4], y_val[i::4]) for i, p in enumerate(parties)]
    s = run_market(own, GaussianNB(), empty_value=0.5).settlement
    assert s.mode == "multi" and s.empty_value == 0.5
    loaded = _roundtrip(s)
    assert loaded.verify().ok and loaded.to_dict() == s.to_dict()
    assert [t.gain_table.tolist() for t in loaded.tasks] == [t.gain_table.tolist() for t in s.tasks]


# ----------------------------------------------------------------- record format
def _as_format_1(s: Settlement) -> dict:
    """The record coopml wrote before format 2."""
    record = s.to_dict()
    del record["format_version"], record["empty_value"], record["flags"]
    del record["valuation"]  # format 3 introduced it
    for item in (*record["parties"], *record["tasks"]):  # "all" is format 4's
        item["members"] = [p["name"] for p in record["parties"]]
    record["checks"] = {k: v for k, v in record["checks"].items() if k != "nonnegative_payouts"}
    for p in record["parties"]:
        del p["charge"]
    if s.mode == "single":
        for t in record["tasks"]:
            t["value_table"] = None
    return record


def test_format_1_records_still_load_and_verify():
    s = _single(np.array([0.5, 0.6, 0.7, 0.9, 0.6, 0.8, 0.85, 0.95]))
    assert s.flags == ()
    old = Settlement.from_dict(json.loads(json.dumps(_as_format_1(s))))
    assert old.format_version == 1 and old.empty_value == "majority"
    assert [p.charge for p in old.parties] == pytest.approx([p.charge for p in s.parties])
    assert old.verify().ok
    assert old.to_dict()["format_version"] == FORMAT_VERSION
    # a format-1 record settled by the old rule (a negative payout) is explained
    g = np.array([0.5, 0.8, 0.4, 0.7])
    record = _as_format_1(_single(g, "shapley"))
    record["parties"][0].update(payout=0.3, share=1.5, net_gain=0.4, payoff=0.6)
    record["parties"][1].update(payout=-0.1, share=-0.5, net_gain=-0.4, payoff=0.2)
    problems = Settlement.from_dict(record).verify().problems
    assert any("p1: stored payout -0.1" in p for p in problems)
    assert "settlement format 1" in problems[-1]


def test_unknown_record_versions_are_refused():
    record = _single(np.array([0.5, 0.6, 0.7, 0.9])).to_dict()
    record["format_version"] = 99
    with pytest.raises(ValueError, match="format_version 99 is not supported"):
        Settlement.from_dict(record)
    with pytest.raises(ValueError, match="expected a mapping; got list"):
        Settlement.from_dict([])  # type: ignore[arg-type]
