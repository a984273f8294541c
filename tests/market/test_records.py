"""The settlement record's schema (issue 16, item 5): pydantic models for the JSON that
crosses a boundary, byte-for-byte compatible with the records written before them.

The files under ``data/`` were written by the recipes below with coopml *before* the
records were pydantic models (the hand-written ``to_dict``), so they are the expected
values: the new code must read them, verify them and write them back unchanged.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB
from typer.testing import CliRunner

from coopml.cli import app
from coopml.coalitions.records import ValuationResultRecord
from coopml.coalitions.result import LeastCoreResult, ValuationResult
from coopml.coalitions.value_table import ValueTable
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.market import Settlement, run_market
from coopml.market.records import SettlementRecord
from coopml.market.sampled_shares import GainSample, market_stopping
from coopml.market.settlement import Task, settle

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("settlement_*.json"))


# ------------------------------------------------------------------ the recipes
def _cancer():
    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    parties = make_parties(X, y, 4, "size_skew", sizes=[0.4, 0.3, 0.2, 0.1], random_state=0)
    return parties, X_val, y_val


def exact_single() -> Settlement:
    parties, X_val, y_val = _cancer()
    return run_market(parties, GaussianNB(), (X_val, y_val), random_state=0).settlement


def multi_task() -> Settlement:
    parties, X_val, y_val = _cancer()
    own = [Party(p.name, p.X, p.y, X_val[i::4], y_val[i::4]) for i, p in enumerate(parties)]
    return run_market(own, GaussianNB(), random_state=0).settlement


def sampled_format4() -> Settlement:
    d = load_dataset("digits")
    X, X_val, y, y_val = train_validation_split(d.X, d.y, random_state=0)
    return run_market(
        make_parties(X, y, 12, random_state=0),
        GaussianNB(),
        (X_val, y_val),
        valuation="monte_carlo",
        stopping=market_stopping(300, None),
        random_state=0,
    ).settlement


def multi_members() -> Settlement:
    g0 = np.array([0.0, 0.5, 0.0, 0.8])  # requester a over {a, b}
    g1 = np.array([0.0, 0.6])  # b alone
    g2 = np.array([0.0, 0.4, 0.5, 0.7, 0.3, 0.6, 0.65, 0.9])  # c over {a, b, c}
    sim = np.array([[1.0, 0.2, 0.1], [0.2, 1.0, 0.3], [0.1, 0.3, 1.0]])
    return settle(
        ["a", "b", "c"],
        [Task(0, (0, 1), g0), Task(1, (1,), g1), Task(2, (0, 1, 2), g2)],
        "similarity_shapley",
        2.0,
        similarity=sim,
        discount=0.5,
        empty_value="zero",
        identical=[[0, 1]],
        provenance={"note": "hand-built multi-task fixture"},
    )


RECIPES = {
    "exact_single": exact_single,
    "multi_task": multi_task,
    "sampled_format4": sampled_format4,
    "multi_members": multi_members,
}


def _load(name: str) -> dict:
    return json.loads((DATA / f"settlement_{name}.json").read_text())


def _unstamped(record: dict) -> dict:
    """The record without what differs between two runs of the same market: the time
    it was written and the NumPy version that drew a sample."""
    out = copy.deepcopy(record)
    out["provenance"].pop("created_at", None)
    if out.get("sample"):
        out["sample"].pop("numpy")
    return out


# ------------------------------------------------------------------ compatibility
def test_every_recipe_has_its_fixture():
    assert sorted(p.name for p in FIXTURES) == sorted(f"settlement_{n}.json" for n in RECIPES)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_records_written_before_read_back_verify_and_write_back_byte_for_byte(path):
    text = path.read_text()
    record = json.loads(text)
    s = Settlement.from_dict(record)
    assert s.verify().ok, s.verify().problems
    assert json.loads(json.dumps(s.to_dict())) == record
    assert json.dumps(s.to_dict(), indent=2) == text  # what Settlement.save writes
    SettlementRecord.model_validate(record)  # the schema admits it


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_settling_the_stored_tables_again_writes_the_same_record(path):
    record = json.loads(path.read_text())
    s = Settlement.from_dict(record)
    again = s.with_rule(s.rule)  # settle() on the stored tables, written by the new code
    assert json.loads(json.dumps(again.to_dict())) == record


# multi_task is left out: since issue 16 the record also counts the fits that chose a
# task's members (tasks[].selection_evaluations, valuation.evaluations), so running its
# market again writes more than the record of before; the test above covers its writing.
@pytest.mark.parametrize("name", ["exact_single", "sampled_format4", "multi_members"])
def test_the_same_market_writes_the_same_record_as_before(name):
    record = json.loads(json.dumps(RECIPES[name]().to_dict()))
    assert _unstamped(record) == _unstamped(_load(name))


def test_format_3_records_spelling_out_members_still_read_and_verify():
    record = _load("sampled_format4")
    names = [p["name"] for p in record["parties"]]
    record["format_version"] = 3
    for item in (*record["parties"], *record["tasks"]):
        item["members"] = list(names)
    s = Settlement.from_dict(record)
    assert s.format_version == 3 and s.verify().ok
    assert s.to_dict()["parties"][0]["members"] == "all"


def test_numpy_values_in_free_form_blocks_are_written_as_json():
    s = settle(
        ["a", "b"],
        [Task(0, (0, 1), np.array([0.5, 0.6, 0.7, 0.9]))] * 1
        + [Task(1, (0, 1), np.array([0.5, 0.6, 0.7, 0.9]))],
        mode="single",
        provenance={"seed": np.int64(3), "weights": np.array([0.25, 0.75]), "pair": (1, 2)},
    )
    record = s.to_dict()
    assert record["provenance"] == {"seed": 3, "weights": [0.25, 0.75], "pair": [1, 2]}
    assert type(record["provenance"]["seed"]) is int
    assert Settlement.from_dict(json.loads(json.dumps(record))).verify().ok


def _my_scorer(y, p):  # a custom scorer, as the service's regression rounds pass one
    return 0.0


def test_a_callable_in_the_provenance_is_written_as_its_qualified_name():
    g = np.array([0.5, 0.6, 0.7, 0.9])
    s = settle(
        ["a", "b"],
        [Task(0, (0, 1), g), Task(1, (0, 1), g)],
        mode="single",
        provenance={"scorer": _my_scorer},
    )
    assert s.to_dict()["provenance"] == {"scorer": f"{__name__}._my_scorer"}


# ------------------------------------------------------------------ malformed records
def _edit(path: str, value):
    def apply(record: dict) -> dict:
        *head, last = path.split(".")
        at = record
        for key in head:
            at = at[int(key)] if isinstance(at, list) else at[key]
        if value is KeyError:
            del at[last]
        else:
            at[int(last) if isinstance(at, list) else last] = value
        return record

    return apply


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_edit("price", "free"), r"field 'price': Input should be a valid number.*got 'free'"),
        (_edit("mode", "both"), r"field 'mode': Input should be 'single' or 'multi'; got 'both'"),
        (_edit("parties.1.fee", None), r"field 'parties\.1\.fee': .*valid number; got None"),
        (_edit("parties.0.charge", KeyError), r"field 'parties\.0\.charge' is required from"),
        (
            _edit("tasks.2.requester", "zed"),
            r"field 'tasks\.2\.requester' must name a party.*'zed'",
        ),
        (_edit("tasks.0.members", "some"), r"field 'tasks\.0\.members': Input should be 'all'"),
        (
            _edit("empty_value", 2),
            r"field 'empty_value': .*'majority' or 'zero'.*less than or equal to 1; got 2",
        ),
        (
            _edit("flags", [{"code": "x"}]),
            r"field 'flags\.0\.message': Field required; got no value",
        ),
        (
            _edit("valuation.method", "guess"),
            r"field 'valuation\.method': .*'exact' or 'monte_carlo'; got 'guess'",
        ),
        (_edit("surprise", 1), r"field 'surprise': Extra inputs are not permitted; got 1"),
        (_edit("tasks.1.value_table.3", 1.5), r"field 'tasks\.1': gains must lie in \[0, 1\]"),
    ],
    ids=lambda x: "" if callable(x) else None,
)
def test_a_malformed_record_names_the_field_what_is_allowed_and_what_came(edit, message):
    record = _load("exact_single")
    record["value_table"] = None  # so that editing one task's table reaches the task
    with pytest.raises(ValueError, match="^not a coopml settlement record: " + message):
        Settlement.from_dict(edit(record))


def test_a_malformed_sample_names_its_field():
    record = _load("sampled_format4")
    record["sample"]["n_players"] = 0
    with pytest.raises(
        ValueError, match=r"field 'sample\.n_players': .*greater than or equal to 1"
    ):
        Settlement.from_dict(record)
    sample = _load("sampled_format4")["sample"]
    sample["values"] = sample["masks"]
    with pytest.raises(ValueError, match="sha256"):
        GainSample.from_dict(sample)


def test_cli_verify_reports_a_malformed_record_naming_the_field(tmp_path):
    record = _load("multi_task")
    record["parties"][2]["payout"] = "a lot"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(record))
    result = CliRunner().invoke(app, ["market", "verify", str(path)])
    assert result.exit_code == 1
    assert "field 'parties.2.payout'" in result.output and "'a lot'" in result.output


# ------------------------------------------------------------------ the JSON Schema
def test_the_exported_json_schema_admits_the_records_and_refuses_an_edit():
    jsonschema = pytest.importorskip("jsonschema")
    schema = SettlementRecord.model_json_schema()
    for path in FIXTURES:
        jsonschema.validate(json.loads(path.read_text()), schema)
    bad = _load("exact_single")
    bad["parties"][0]["members"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# ------------------------------------------------------------------ valuation results
def test_valuation_results_round_trip_and_keep_what_the_hand_written_dict_wrote():
    r = ValuationResult(
        values=np.array([0.6, 0.4]),
        names=("a", "b"),
        method="monte_carlo_shapley",
        stderr=np.array([np.inf, 0.01]),
        converged=False,
        n_evaluations=np.int64(300),
        info={
            "stopped_by": "MaxEvaluations(300)",
            "n_permutations": np.int64(40),
            "trace": np.array([1.0, 2.0]),
        },
    )
    record = r.to_dict()
    assert record == {
        "method": "monte_carlo_shapley",
        "names": ["a", "b"],
        "values": [0.6, 0.4],
        "stderr": [np.inf, 0.01],
        "converged": False,
        "n_evaluations": 300,
        "info": {"stopped_by": "MaxEvaluations(300)", "n_permutations": 40, "trace": [1.0, 2.0]},
    }
    assert json.dumps(record).count("Infinity") == 1  # as json.dumps always wrote it
    back = ValuationResult.from_dict(json.loads(json.dumps(record)))
    assert back.names == ("a", "b") and back.values.tolist() == [0.6, 0.4]
    assert back.stderr is not None and back.stderr.tolist() == [np.inf, 0.01]
    assert back.n_evaluations == 300 and not back.converged
    core = LeastCoreResult(
        values=np.array([1.0, 2.0]), names=("a", "b"), method="least_core", epsilon=-0.5
    )
    assert core.to_dict()["epsilon"] == -0.5
    again = LeastCoreResult.from_dict(core.to_dict())
    assert isinstance(again, LeastCoreResult) and again.epsilon == -0.5
    assert ValueTable([0.0, 1.0, 2.0, 4.0], names=["a", "b"]).to_dict() == {
        "names": ["a", "b"],
        "table": [0.0, 1.0, 2.0, 4.0],
    }


def test_a_malformed_valuation_result_names_the_field():
    with pytest.raises(
        ValueError, match=r"field 'values' must have one entry per name \(2\); got 1"
    ):
        ValuationResult.from_dict({"method": "shapley", "names": ["a", "b"], "values": [1.0]})
    with pytest.raises(
        ValueError, match=r"field 'n_evaluations': .*greater than or equal to 0; got -1"
    ):
        ValuationResult.from_dict(
            {"method": "shapley", "names": ["a"], "values": [1.0], "n_evaluations": -1}
        )
    assert ValuationResultRecord.model_json_schema()["required"] == ["method", "names", "values"]


def test_a_record_written_by_an_older_coopml_still_verifies():
    """Written in format 2 by coopml at commit 54fa3a8 (4 parties, GaussianNB, breast
    cancer, the paper's rule): its flag sentences were worded differently then, which
    must not fail verification; its figures must still be recomputed exactly."""
    record = json.loads((DATA / "older_format2_written_by_54fa3a8.json").read_text())
    assert record["format_version"] == 2 and record["flags"]
    s = Settlement.from_dict(record)
    assert s.verify().ok, s.verify().problems
    edited = copy.deepcopy(record)
    edited["parties"][0]["payout"] += 0.01
    assert not Settlement.from_dict(edited).verify().ok
    edited = copy.deepcopy(record)
    edited["flags"][0]["parties"] = edited["flags"][0]["parties"][:-1]
    assert not Settlement.from_dict(edited).verify().ok
