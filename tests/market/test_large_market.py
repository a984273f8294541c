"""Large markets: estimated, exactly balanced, verifiable shares (issue 18, items 1-3, 6)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from tests.market._large import cancer, digits, sample_arrays, store_sample
from typer.testing import CliRunner

from coopml.coalitions.stopping import MaxEvaluations, MaxTime
from coopml.config import MarketConfig
from coopml.data import Party, make_parties
from coopml.market import Settlement, run_market
from coopml.market.sampled_shares import (
    EXACT_LIMIT,
    GainSample,
    ShareStderrBelow,
    market_stopping,
)

__all__ = ["cancer", "digits"]  # the fixtures, used by name


@pytest.fixture(scope="module")
def forty(digits):
    X, y, val = digits
    parties = make_parties(X, y, 40, random_state=0)
    result = run_market(parties, GaussianNB(), val, stopping=market_stopping(1500, None))
    return result.settlement


@pytest.mark.parametrize(
    ("learner", "n_parties"),
    [(GaussianNB(), 10), (LogisticRegression(max_iter=500), 8)],
    ids=["gaussian_nb", "logistic"],
)
def test_forced_estimate_agrees_with_exact_within_its_stderr(cancer, learner, n_parties):
    X, y, val = cancer
    parties = make_parties(X, y, n_parties, random_state=1)
    options = {"duplicates": "ignore", "random_state": 3}
    exact = run_market(parties, learner, val, valuation="exact", **options).settlement
    est = run_market(
        parties,
        learner,
        val,
        valuation="monte_carlo",
        stopping=market_stopping(2 ** (n_parties - 1), None),
        **options,
    ).settlement
    assert exact.valuation["method"] == "exact" and not exact.estimated
    assert all(p.payout_stderr == 0 for p in exact.parties)
    assert est.valuation["method"] == "monte_carlo"
    assert est.valuation["estimator"] == "svarm_shapley"
    assert est.valuation["evaluations"] <= 2 ** (n_parties - 1)
    close = [
        abs(e.payout - x.payout) <= 3 * e.payout_stderr + 1e-3
        for e, x in zip(est.parties, exact.parties, strict=True)
    ]
    assert np.mean(close) >= 0.9, [
        (e.payout, x.payout, e.payout_stderr)
        for e, x in zip(est.parties, exact.parties, strict=True)
    ]
    assert all(p.payout_stderr > 0 for p in est.parties)
    # the market balances exactly whatever the estimate
    charges = sum(p.charge for p in est.parties)
    assert abs(sum(p.payout for p in est.parties) - charges) <= 1e-9
    assert est.checks["balanced"] and est.verify().ok


def test_auto_is_exact_up_to_the_limit_and_estimates_above(cancer):
    X, y, val = cancer
    small = make_parties(X, y, 3, random_state=0)
    assert run_market(small, GaussianNB(), val).settlement.valuation["method"] == "exact"
    big = make_parties(X, y, EXACT_LIMIT + 1, random_state=0)
    s = run_market(big, GaussianNB(), val, stopping=MaxEvaluations(300)).settlement
    assert s.valuation["method"] == "monte_carlo" and s.valuation["evaluations"] == 300


def test_forty_parties_settle_verify_and_tampering_is_found(forty, tmp_path):
    s = forty
    assert len(s.parties) == 40 and s.estimated and s.checks["balanced"]
    assert s.valuation["stopped_by"] == "MaxEvaluations(1500)" and s.valuation["seed"] == 0
    assert s.verify().ok
    record = json.loads(json.dumps(s.to_dict()))
    assert record["format_version"] == 4 and record["sample"]["n_evaluations"] == 1500
    assert Settlement.from_dict(record).verify().ok

    payout = json.loads(json.dumps(record))
    payout["parties"][5]["payout"] += 0.01
    verdict = Settlement.from_dict(payout).verify()
    assert not verdict.ok and any("payout" in p for p in verdict.problems)

    stderr = json.loads(json.dumps(record))
    stderr["parties"][5]["payout_stderr"] /= 2
    assert not Settlement.from_dict(stderr).verify().ok

    tampered = _tamper_sample_value(record, index=100, delta=0.05)
    verdict = Settlement.from_dict(tampered).verify()
    assert not verdict.ok and any("share" in p or "payout" in p for p in verdict.problems)

    unhashed = json.loads(json.dumps(tampered))
    unhashed["sample"]["sha256"] = record["sample"]["sha256"]
    with pytest.raises(ValueError, match="sha256"):
        Settlement.from_dict(unhashed)


def test_cli_verify_replays_a_forty_party_record(forty, tmp_path):
    from coopml.cli import app

    runner = CliRunner()
    good = tmp_path / "settlement.json"
    forty.save(good)
    ok = runner.invoke(app, ["market", "verify", str(good)])
    assert ok.exit_code == 0, ok.output
    assert "replayed by svarm_shapley" in ok.output
    record = json.loads(good.read_text())
    bad_payout = json.loads(json.dumps(record))
    bad_payout["parties"][0]["payout"] *= 1.01
    (tmp_path / "payout.json").write_text(json.dumps(bad_payout))
    result = runner.invoke(app, ["market", "verify", str(tmp_path / "payout.json")])
    assert result.exit_code == 1 and "payout" in result.output
    (tmp_path / "sample.json").write_text(json.dumps(_tamper_sample_value(record, 7, -0.02)))
    result = runner.invoke(app, ["market", "verify", str(tmp_path / "sample.json")])
    assert result.exit_code == 1


def test_more_than_64_parties_round_trip(digits):
    X, y, val = digits
    parties = make_parties(X, y, 70, random_state=0)
    s = run_market(parties, GaussianNB(), val, stopping=MaxEvaluations(900)).settlement
    sample = s.tasks[0].sample
    assert sample is not None and max(sample.masks) >= 1 << 69
    record = json.loads(json.dumps(s.to_dict()))
    again = GainSample.from_dict(record["sample"])
    assert again.masks == sample.masks and np.array_equal(again.values, sample.values)
    assert Settlement.from_dict(record).verify().ok


def test_estimation_refuses_rules_and_stopping_it_cannot_replay(cancer):
    X, y, val = cancer
    parties = make_parties(X, y, 4, random_state=0)
    with pytest.raises(ValueError, match=r"'loo' has no sampling estimator.*'banzhaf'"):
        run_market(parties, GaussianNB(), val, rule="loo", valuation="monte_carlo")
    with pytest.raises(ValueError, match="MaxTime"):
        run_market(parties, GaussianNB(), val, valuation="monte_carlo", stopping=MaxTime(5))
    with pytest.raises(ValueError, match="parameter 'valuation'"):
        run_market(parties, GaussianNB(), val, valuation="sampled")  # type: ignore[arg-type]


def test_banzhaf_is_estimated_by_msr(cancer):
    X, y, val = cancer
    parties = make_parties(X, y, 6, random_state=0)
    s = run_market(
        parties,
        GaussianNB(),
        val,
        rule="banzhaf",
        valuation="monte_carlo",
        stopping=MaxEvaluations(40),
    ).settlement
    assert s.valuation["estimator"] == "msr_banzhaf" and s.verify().ok
    assert s.checks["balanced"]


def test_multi_task_greedy_selection_counts_against_the_budget(cancer):
    X, y, _ = cancer
    rows = make_parties(X, y, 13, random_state=0)
    parties = [
        Party(
            p.name,
            p.X[: p.n_samples // 2],
            p.y[: p.n_samples // 2],
            X_val=p.X[p.n_samples // 2 :],
            y_val=p.y[p.n_samples // 2 :],
        )
        for p in rows
    ]
    s = run_market(
        parties,
        GaussianNB(),
        rule="shapley",
        valuation="monte_carlo",
        stopping=MaxEvaluations(400),
    ).settlement
    tasks = s.valuation["tasks"]
    assert len(tasks) == 13
    assert all(0 < t["selection_evaluations"] <= 200 for t in tasks)
    assert all(t["evaluations"] + t["selection_evaluations"] <= 400 + 13 for t in tasks)
    assert s.checks["balanced"] and s.verify().ok


def test_job_file_fields_and_the_60_party_example_parse():
    import tomllib
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "large_market_60.toml"
    cfg = MarketConfig.model_validate(tomllib.loads(path.read_text()))
    assert cfg.market.valuation == "auto" and cfg.market.max_evaluations > 0
    assert cfg.partition is not None and cfg.partition.n_parties == 60


def test_default_stopping_targets_every_payout_stderr_at_one_percent_of_the_total(digits):
    assert str(market_stopping()) == "MaxEvaluations(25000) | ShareStderrBelow(0.01)"
    X, y, val = digits
    parties = make_parties(X, y, 20, random_state=0)
    rule = MaxEvaluations(5000) | ShareStderrBelow(0.03)
    s = run_market(parties, GaussianNB(), val, stopping=rule, duplicates="ignore").settlement
    assert s.valuation["stopped_by"] == "ShareStderrBelow(0.03)" and s.valuation["converged"]
    assert s.valuation["evaluations"] < 5000
    paid = sum(p.payout for p in s.parties)
    worst = max(p.payout_stderr for p in s.parties) / paid
    assert 0 < worst <= 0.03
    record = json.loads(json.dumps(s.to_dict()))
    assert record["sample"]["stopping"]["any"][1] == {"share_stderr_below": 0.03, "min_samples": 8}
    assert Settlement.from_dict(record).verify().ok  # the replay stops at the same batch


def test_records_list_members_once_and_format_3_still_verifies(forty):
    record = json.loads(json.dumps(forty.to_dict()))
    assert all(p["members"] == "all" for p in record["parties"])
    assert all(t["members"] == "all" for t in record["tasks"])
    names = [p["name"] for p in record["parties"]]
    old = json.loads(json.dumps(record))  # as format 3 wrote it: every list spelled out
    old["format_version"] = 3
    for item in (*old["parties"], *old["tasks"]):
        item["members"] = list(names)
    assert len(json.dumps(old)) - len(json.dumps(record)) > 2 * 40 * 40 * 10
    again = Settlement.from_dict(old)
    assert again.format_version == 3 and again.verify().ok
    assert again.parties[0].members == tuple(names)
    assert again.to_dict()["parties"][0]["members"] == "all"


def test_multi_task_members_stay_listed_unless_everyone(cancer):
    X, y, _ = cancer
    parties = [
        Party(f"p{i}", X[i::4][:40], y[i::4][:40], X_val=X[i::4][40:], y_val=y[i::4][40:])
        for i in range(4)
    ]
    s = run_market(parties, GaussianNB(), valuation="exact", duplicates="ignore").settlement
    record = json.loads(json.dumps(s.to_dict()))
    for line, task in zip(s.parties, record["tasks"], strict=True):
        expected = "all" if line.members == s.names else list(line.members)
        assert task["members"] == expected
    assert Settlement.from_dict(record).verify().ok


@pytest.mark.slow  # starts a local Ray instance
def test_joblib_and_ray_give_identical_settlements(digits):
    ray = pytest.importorskip("ray")
    import os

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    X, y, val = digits
    parties = make_parties(X, y, 20, random_state=0)
    options = {"stopping": MaxEvaluations(400), "random_state": 5, "n_jobs": 2}
    on_joblib = run_market(parties, GaussianNB(), val, executor="joblib", **options).settlement
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_market(parties, GaussianNB(), val, executor="ray", **options).settlement
    finally:
        ray.shutdown()
    a, b = on_joblib.to_dict(), on_ray.to_dict()
    assert a["sample"] == b["sample"] and a["valuation"] == b["valuation"]
    assert a["parties"] == b["parties"] and a["checks"] == b["checks"]
    assert on_ray.valuation["evaluations"] == 400 and on_ray.verify().ok


def _tamper_sample_value(record: dict, index: int, delta: float) -> dict:
    """The record with one stored coalition value changed and its hash recomputed."""
    out = json.loads(json.dumps(record))
    masks, values = sample_arrays(out["sample"])
    values[index] = min(1.0, max(0.0, values[index] + delta))
    store_sample(out["sample"], masks, values)
    return out


def test_review_findings_verify_members_malformed_records_and_short_permutation_budgets(digits):
    """An edited members list fails verify; a malformed line is reported, not a crash;
    a permutation count too short for SVARM's warm-up is refused before settling (it
    used to settle with NaN standard errors that failed their own verify)."""
    import copy

    from coopml.coalitions.stopping import MaxPermutations

    X, y, validation = digits
    parties = make_parties(X, y, 20, random_state=0)
    with pytest.raises(ValueError, match="before every stratum"):
        run_market(
            parties,
            GaussianNB(),
            validation,
            valuation="monte_carlo",
            stopping=MaxPermutations(10),
        )
    record = run_market(
        parties[:16],
        GaussianNB(),
        validation,
        valuation="monte_carlo",
        stopping=market_stopping(600, None),
    ).settlement.to_dict()
    assert Settlement.from_dict(record).verify().ok
    edited = copy.deepcopy(record)
    edited["parties"][0]["members"] = [p["name"] for p in record["parties"][:5]]
    verdict = Settlement.from_dict(edited).verify()
    assert not verdict.ok and "members" in " ".join(verdict.problems)
    broken = copy.deepcopy(record)
    broken["parties"][0]["payout_stderr"] = None
    with pytest.raises(ValueError, match=r"field 'parties\.0\.payout_stderr'.*got None"):
        Settlement.from_dict(broken)  # the record's schema refuses it, naming the field
