"""Large markets, the outside review's findings (issue 18 follow-up): verify rechecks
every sample field it can, budgets are never overrun, every fit is counted, an exact
valuation refuses a budget, and ``cache_dir`` resumes to the identical settlement."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.naive_bayes import GaussianNB
from tests.market._large import cancer, digits, sample_arrays, store_sample
from typer.testing import CliRunner

from coopml.coalitions.stopping import MaxEvaluations
from coopml.config import MarketSettings
from coopml.data import Party, make_parties
from coopml.learning.utility import CoalitionUtility
from coopml.market import Settlement, run_market
from coopml.market.sampled_shares import market_stopping

__all__ = ["cancer", "digits"]  # the fixtures, used by name


@pytest.fixture(scope="module")
def record(digits) -> dict[str, Any]:
    X, y, val = digits
    parties = make_parties(X, y, 20, random_state=0)
    s = run_market(parties, GaussianNB(), val, stopping=market_stopping(600, None)).settlement
    return json.loads(json.dumps(s.to_dict()))


def _verdict(record: dict[str, Any]) -> tuple[bool, str]:
    """(consistent, what verify or the reader said)."""
    try:
        verdict = Settlement.from_dict(record).verify()
    except ValueError as exc:
        return False, str(exc)
    return verdict.ok, " | ".join(verdict.problems)


def _other(value: Any) -> Any:
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    return "x"


def _swap_two_coalitions(rec: dict[str, Any]) -> None:
    """Swap coalitions 30 and 31 with their gains (same set, other order; hash redone)."""
    sample = rec["sample"]
    n = sample["n_players"]
    width = (n + 7) // 8
    raw_masks, values = sample_arrays(sample)
    masks = bytearray(raw_masks)
    a, b = slice(30 * width, 31 * width), slice(31 * width, 32 * width)
    masks[a], masks[b] = masks[b], masks[a]
    values[[30, 31]] = values[[31, 30]]
    store_sample(sample, bytes(masks), values)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(rec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = rec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value(node[last]) if callable(value) else value

    return edit


def _spell_out_members(rec: dict[str, Any]) -> None:
    names = [p["name"] for p in rec["parties"]]
    for item in (*rec["parties"], *rec["tasks"]):
        item["members"] = list(names)


def _as_format_2(rec: dict[str, Any]) -> None:
    _spell_out_members(rec)
    rec["format_version"] = 2


SAMPLE_EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # edit, and the field name the verdict must give
    "stopping_text": (_set("sample.stopping_text", "MaxEvaluations(1)"), "sample.stopping_text"),
    "converged": (_set("sample.converged", _other), "sample.converged"),
    "numpy": (_set("sample.numpy", "a recent one"), "sample.numpy"),
    "stopped_by": (_set("sample.stopped_by", "ShareStderrBelow(0.01)"), "sample.stopped_by"),
    "evaluation order": (_swap_two_coalitions, "sample.masks"),
    "seed": (_set("sample.seed", _other), "seed"),
    "batch_size": (_set("sample.batch_size", _other), "batch_size"),
    "estimator": (_set("sample.estimator", "msr_banzhaf"), "estimator"),
    "rule": (_set("sample.rule", "shapley"), "sample.rule"),
    "stopping": (_set("sample.stopping", {"max_evaluations": 500}), "stopping"),
    "n_evaluations": (_set("sample.n_evaluations", _other), "n_evaluations"),
    "n_players": (_set("sample.n_players", _other), "n_players"),
    "selection_evaluations": (
        _set("sample.selection_evaluations", _other),
        "selection_evaluations",
    ),
    "format_version 3": (_set("format_version", 3), "format_version"),
    "format_version 2": (_as_format_2, "format_version"),
}


def test_the_unedited_record_and_format_3_spelled_out_verify(record):
    assert _verdict(record) == (True, "")
    old = copy.deepcopy(record)
    _spell_out_members(old)
    old["format_version"] = 3
    assert _verdict(old) == (True, "")  # what format 3 wrote is still read as format 3


@pytest.mark.parametrize("field", list(SAMPLE_EDITS))
def test_verify_fails_naming_each_edited_sample_field(record, field):
    edit, name = SAMPLE_EDITS[field]
    edited = copy.deepcopy(record)
    edit(edited)
    assert edited != record
    ok, said = _verdict(edited)
    assert not ok and name in said, said


def _valuation_fields(record: dict[str, Any]) -> list[str]:
    block = record["valuation"]
    top = [k for k in block if k != "tasks"]
    return top + [f"tasks.0.{k}" for k in block["tasks"][0]]


def test_verify_fails_naming_each_edited_valuation_field(record):
    fields = _valuation_fields(record)
    assert {"evaluations", "converged", "stopped_by", "tasks.0.stopping", "tasks.0.seed"} <= set(
        fields
    )
    for field in fields:
        edited = copy.deepcopy(record)
        _set(f"valuation.{field}", _other)(edited)
        ok, said = _verdict(edited)
        dotted = re.escape(f"valuation.{field}").replace(r"tasks\.0\.", r"tasks(\[0\]|\.0)\.")
        assert not ok and re.search(dotted, said), (field, said)


@pytest.mark.parametrize("n_parties", [4, 9, 16])
@pytest.mark.parametrize("budget", [40, 120])
def test_msr_banzhaf_never_records_more_fits_than_its_budget(cancer, n_parties, budget):
    X, y, val = cancer
    parties = make_parties(X, y, n_parties, random_state=2)
    s = run_market(
        parties,
        GaussianNB(),
        val,
        rule="banzhaf",
        valuation="monte_carlo",
        stopping=MaxEvaluations(budget),
        duplicates="ignore",
    ).settlement
    sample = s.tasks[0].sample
    assert sample is not None and sample.estimator == "msr_banzhaf"
    # the forced coalitions are recorded, and counted
    forced = {0, (1 << n_parties) - 1, *(1 << j for j in range(n_parties))}
    assert forced <= set(sample.masks)
    assert len(set(sample.masks)) == sample.n_evaluations <= budget
    assert s.valuation["evaluations"] <= budget and s.verify().ok


def test_a_budget_below_the_forced_coalitions_is_refused(cancer):
    X, y, val = cancer
    parties = make_parties(X, y, 16, random_state=2)
    with pytest.raises(ValueError, match=r"parameter 'stopping'.*at least 18"):
        run_market(
            parties,
            GaussianNB(),
            val,
            rule="banzhaf",
            valuation="monte_carlo",
            stopping=MaxEvaluations(17),
            duplicates="ignore",
        )


def _count_evaluations(monkeypatch) -> list[int]:
    """Coalitions evaluated by any CoalitionUtility from now on (one entry per block)."""
    seen: list[int] = []
    original = CoalitionUtility.evaluate_block

    def counting(self, masks):
        seen.append(int(np.asarray(masks).size))
        return original(self, masks)

    monkeypatch.setattr(CoalitionUtility, "evaluate_block", counting)
    return seen


def _own_tasks(X, y, n: int) -> list[Party]:
    rows = make_parties(X, y, n, random_state=0)
    half = [p.n_samples // 2 for p in rows]
    return [
        Party(p.name, p.X[:h], p.y[:h], X_val=p.X[h:], y_val=p.y[h:])
        for p, h in zip(rows, half, strict=True)
    ]


@pytest.mark.parametrize("n_parties", [5, 13])
def test_multi_task_exact_counts_every_fitted_coalition(cancer, monkeypatch, n_parties):
    """Exhaustive selection (5 parties) fits every requester's whole table; greedy
    selection (13 parties, exact under auto) fits its candidates and then the table."""
    X, y, _ = cancer
    parties = _own_tasks(X, y, n_parties)
    seen = _count_evaluations(monkeypatch)
    s = run_market(parties, GaussianNB(), duplicates="ignore").settlement
    assert s.valuation["method"] == "exact"
    if n_parties == 5:
        assert sum(seen) == 5 * 2**5  # each requester's full table
    assert s.valuation["evaluations"] == sum(seen)
    record = json.loads(json.dumps(s.to_dict()))
    assert Settlement.from_dict(record).verify().ok
    edited = copy.deepcopy(record)
    task = next(t for t in edited["tasks"] if t.get("selection_evaluations"))
    task["selection_evaluations"] -= 1
    ok, said = _verdict(edited)
    assert not ok and "valuation.evaluations" in said


def test_an_exact_valuation_refuses_a_budget_everywhere(cancer, tmp_path):
    from coopml.cli import app
    from coopml.service.domain.rounds import RoundConfig, RoundOptions

    X, y, val = cancer
    parties = make_parties(X, y, 3, random_state=0)
    with pytest.raises(ValueError, match=r"parameter 'stopping'.*valuation='exact'"):
        run_market(parties, GaussianNB(), val, valuation="exact", stopping=MaxEvaluations(10))
    # job file
    assert MarketSettings(valuation="exact").valuation == "exact"
    for given in ({"max_evaluations": 100}, {"stderr_target": 0.02}):
        with pytest.raises(ValidationError, match=f"{next(iter(given))}.*exact"):
            MarketSettings.model_validate({"valuation": "exact", **given})
    assert MarketSettings.model_validate({"valuation": "auto", "max_evaluations": 100})
    # CLI (through the job file)
    job = Path(__file__).parents[2] / "examples" / "hospitals.toml"
    text = job.read_text().replace(
        "[market]\n", '[market]\nvaluation = "exact"\nmax_evaluations = 100\n', 1
    )
    (tmp_path / "job.toml").write_text(text)
    result = CliRunner().invoke(app, ["market", "run", str(tmp_path / "job.toml")])
    assert result.exit_code != 0 and "max_evaluations" in result.output
    # service: refused when a round is requested; a stored round is read back as it was
    with pytest.raises(ValidationError, match="max_evaluations bound an estimate"):
        RoundOptions(payment_rule="shapley", valuation="exact", max_evaluations=50)
    assert RoundOptions(payment_rule="shapley", valuation="exact").valuation == "exact"
    stored = RoundConfig(
        learner={"name": "gaussian_nb", "params": {}},
        payment_rule="shapley",
        valuation="exact",
        inputs={"parties": [], "features": ["x"], "target": "y", "shared_validation": []},
    ).stored()
    assert RoundConfig.model_validate(stored).valuation == "exact"


def _settled(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "provenance"}


def test_cache_dir_resumes_an_interrupted_estimate_to_the_identical_settlement(
    digits, tmp_path, monkeypatch
):
    X, y, val = digits
    parties = make_parties(X, y, 20, random_state=0)
    options = {"stopping": market_stopping(700, None), "random_state": 4}
    reference = run_market(parties, GaussianNB(), val, **options).settlement.to_dict()

    calls = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        run_market(parties, GaussianNB(), val, cache_dir=cache, progress=interrupt, **options)
    kept = list(cache.glob("*.gains.npz"))
    assert len(kept) == 1
    with np.load(kept[0]) as saved:
        n_kept = saved["values"].size
    assert 0 < n_kept < reference["sample"]["n_evaluations"]

    seen = _count_evaluations(monkeypatch)
    resumed = run_market(parties, GaussianNB(), val, cache_dir=cache, **options).settlement
    # only the gains the interrupted run lacked were measured (+1: the released model's
    # grand coalition is fitted by the market itself, outside the estimate)
    assert sum(seen) <= reference["sample"]["n_evaluations"] - n_kept + 1
    assert _settled(resumed.to_dict()) == _settled(reference)
    assert resumed.verify().ok


def test_cache_dir_keeps_exact_tables_and_the_cli_takes_it(cancer, tmp_path, monkeypatch):
    from coopml.cli import app

    X, y, val = cancer
    parties = make_parties(X, y, 6, random_state=0)
    first = run_market(parties, GaussianNB(), val, cache_dir=tmp_path / "c").settlement
    seen = _count_evaluations(monkeypatch)
    again = run_market(parties, GaussianNB(), val, cache_dir=tmp_path / "c").settlement
    assert sum(seen) == 0  # the whole table came from the cache
    assert _settled(again.to_dict()) == _settled(first.to_dict())
    monkeypatch.undo()

    job = Path(__file__).parents[2] / "examples" / "hospitals.toml"
    out, cache = tmp_path / "out", tmp_path / "cli-cache"
    args = ["market", "run", str(job), "--out", str(out), "--quiet", "--cache-dir", str(cache)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert any(cache.iterdir())
    saved = json.loads((out / "settlement.json").read_text())
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _settled(json.loads((out / "settlement.json").read_text())) == _settled(saved)
