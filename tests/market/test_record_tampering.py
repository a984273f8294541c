"""Edited settlement records: every field verify() can check is checked, by field path.

A settlement record holds inputs (value tables, samples), derived figures (lines,
checks, flags, valuation) and labels (party names). ``Settlement.verify`` re-settles
the inputs and compares the whole derived part with the stored one; the labels must
agree with the parties' names and order wherever a field is keyed or labelled by them
(``provenance.data``, ``checks.*``, ``flags``, ``tasks``). Reading refuses what no
writer writes (NaN gains, booleans or strings as numbers).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coopml.coalitions.result import ValuationResult
from coopml.market.sampled_shares import GainSample
from coopml.market.settlement import Settlement, Task, record_differences, settle

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("settlement_*.json"))

# Three parties, each its own task (multi): gamma's data lowers alpha's model (a clipped
# share), beta's model does not improve on beta's own (a refund), and someone loses money
# (IR report).
TABLE_A = [0.5, 0.6, 0.8, 0.9, 0.45, 0.5, 0.7, 0.8]  # members alpha, beta, gamma
TABLE_B = [0.5, 0.7, 0.8, 0.6]  # members beta, gamma: worse together
TABLE_C = [0.4, 0.45, 0.5, 0.7]  # members alpha, gamma


def _market() -> dict[str, Any]:
    names = ["alpha", "beta", "gamma"]
    tasks = [
        Task(0, (0, 1, 2), np.array(TABLE_A)),
        Task(1, (1, 2), np.array(TABLE_B)),
        Task(2, (0, 2), np.array(TABLE_C)),
    ]
    provenance = {
        "data": {n: {"n_samples": 10 + k, "fingerprint": f"{k:064x}"} for k, n in enumerate(names)}
    }
    s = settle(names, tasks, "shapley", 2.0, mode="multi", provenance=provenance)
    return json.loads(json.dumps(s.to_dict()))


@pytest.fixture(scope="module")
def market() -> dict[str, Any]:
    record = _market()
    # the fixture must exercise every labelled and derived block
    assert record["flags"] and record["checks"]["ir_report"], record
    assert Settlement.from_dict(record).verify().ok
    return record


def _problems(record: dict[str, Any]) -> list[str]:
    verdict = Settlement.from_dict(copy.deepcopy(record)).verify()
    assert verdict.ok == (not verdict.problems)
    return list(verdict.problems)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list) and value:
        return [leaf for k, v in enumerate(value) for leaf in _leaves(v, (*path, k))]
    return [(path, value)]


def _perturbed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 0.25
    if isinstance(value, str):
        return value + "!"
    if isinstance(value, list):
        return [*value, "b"]  # an empty list of names gets one
    raise AssertionError(value)


def _set(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    at: Any = record
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = value


DERIVED = [path for block in ("checks", "flags") for path, _ in _leaves(_market()[block], (block,))]


@pytest.mark.parametrize("path", DERIVED, ids=lambda p: ".".join(map(str, p)))
def test_each_derived_field_edited_fails_verify_naming_its_path(market, path):
    record = copy.deepcopy(market)
    at: Any = record
    for key in path:
        at = at[key]
    _set(record, path, _perturbed(at))
    problems = _problems(record)
    dotted = ".".join(map(str, path))
    assert any(p.startswith(dotted) for p in problems), problems


LINE_FIELDS = ["fee", "own_gain", "model_gain", "improvement", "charge", "share", "payout"]


@pytest.mark.parametrize("key", [*LINE_FIELDS, "net_gain", "payoff", "payout_stderr"])
@pytest.mark.parametrize("party", [0, 1, 2])
def test_each_line_figure_edited_fails_verify(market, party, key):
    record = copy.deepcopy(market)
    record["parties"][party][key] += 0.01
    name = record["parties"][party]["name"]
    assert any(p.startswith(f"{name}: stored {key}") for p in _problems(record))


def _swap_names(record: dict[str, Any], i: int, j: int) -> dict[str, Any]:
    """Swap two parties' names in the lines and tasks only (what moves the money)."""
    record = copy.deepcopy(record)
    names = [p["name"] for p in record["parties"]]
    swap = {names[i]: names[j], names[j]: names[i]}
    for p in record["parties"]:
        p["name"] = swap.get(p["name"], p["name"])
    for line in [*record["parties"], *record["tasks"]]:
        if isinstance(line["members"], list):
            line["members"] = [swap.get(m, m) for m in line["members"]]
    for t in record["tasks"]:
        t["requester"] = swap.get(t["requester"], t["requester"])
    return record


def test_swapped_party_names_fail_verify_at_every_field_that_still_names_the_originals(market):
    problems = _problems(_swap_names(market, 0, 2))
    text = "\n".join(problems)
    assert (
        "provenance.data: keyed by ['alpha', 'beta', 'gamma'], but the parties are "
        "['gamma', 'beta', 'alpha']" in text
    )
    assert any(p.startswith("checks.ir_report.0.name") for p in problems), problems
    assert any(p.startswith("flags.") for p in problems), problems


def test_swapped_names_are_caught_by_the_provenance_alone(market):
    # even with no check or flag naming anyone, the data block's keys give it away
    record = _swap_names(market, 0, 2)
    fresh = Settlement.from_dict(copy.deepcopy(record)).with_rule(record["rule"]).to_dict()
    record["checks"], record["flags"] = fresh["checks"], fresh["flags"]
    problems = _problems(record)
    assert [p.split(":")[0] for p in problems] == ["provenance.data"], problems


@pytest.mark.parametrize("block", ["data", "privacy"])
def test_a_party_keyed_provenance_block_in_another_order_fails_verify(market, block):
    record = copy.deepcopy(market)
    record["provenance"][block] = {n: {} for n in ["beta", "alpha", "gamma"]}
    assert any(p.startswith(f"provenance.{block}: keyed by") for p in _problems(record))
    record["provenance"][block] = ["alpha", "beta", "gamma"]
    assert any(p.startswith(f"provenance.{block}: must map") for p in _problems(record))


def test_tasks_listed_in_another_order_fail_verify(market):
    record = copy.deepcopy(market)
    record["tasks"] = record["tasks"][::-1]
    assert any(p.startswith("tasks.0.requester") for p in _problems(record))


def test_a_consistent_relabelling_of_every_name_verifies_as_documented(market):
    # What a record alone cannot prove (docs/market.md): renaming a party everywhere,
    # provenance included, is a consistent record; the data fingerprints and the
    # service's ledger say whose data it was.
    assert "alpha" in market["checks"]["ir_report"][0]["name"] + json.dumps(market["flags"])
    text = json.dumps(market).replace("alpha", "omega")
    assert _problems(json.loads(text)) == []


def test_an_extra_check_is_refused_and_a_missing_one_is_named(market):
    record = copy.deepcopy(market)
    record["checks"]["audited"] = True
    assert "checks.audited: stored True, which is not recomputed" in _problems(record)
    record = copy.deepcopy(market)
    del record["checks"]["degenerate_tasks"]
    assert any(p.startswith("checks.degenerate_tasks: missing") for p in _problems(record))


def test_a_boolean_check_stored_as_a_number_is_a_difference():
    assert record_differences({"balanced": 1}, {"balanced": True}) == [
        "balanced: stored 1 != recomputed True"
    ]
    assert record_differences({"x": 1e-10, "y": math.nan}, {"x": 0.0, "y": math.nan}) == []


# --------------------------------------------------------------------- non-finite gains
def test_a_nan_gain_in_a_value_table_is_refused_naming_the_field(market):
    record = copy.deepcopy(market)
    record["tasks"][1]["value_table"][2] = math.nan
    with pytest.raises(ValueError, match=r"field 'tasks\.1': value_table\[2\] is nan"):
        Settlement.from_dict(record)


def _with_sample_values(sample: dict[str, Any], edit: Any) -> dict[str, Any]:
    sample = copy.deepcopy(sample)
    masks = zlib.decompress(base64.b64decode(sample["masks"]))
    values = np.frombuffer(zlib.decompress(base64.b64decode(sample["values"])), "<f8").copy()
    edit(values)
    raw = values.astype("<f8").tobytes()
    sample["values"] = base64.b64encode(zlib.compress(raw, 9)).decode("ascii")
    sample["sha256"] = hashlib.sha256(masks + raw).hexdigest()
    return sample


@pytest.fixture(scope="module")
def sampled() -> dict[str, Any]:
    return json.loads((DATA / "settlement_sampled_format4.json").read_text())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_gain_in_a_sample_is_refused_naming_the_field(sampled, bad):
    def edit(values: np.ndarray) -> None:
        values[3] = bad

    sample = _with_sample_values(sampled["sample"], edit)
    with pytest.raises(ValueError, match=r"values\[3\] \(the gain of coalition 0x"):
        GainSample.from_dict(sample)
    record = {**sampled, "sample": sample}
    with pytest.raises(ValueError, match=r"field 'sample': malformed sample: values\[3\]"):
        Settlement.from_dict(record)


def test_the_sample_metadata_is_checked(sampled):
    assert Settlement.from_dict(sampled).verify().ok
    for key, value, problem in [
        ("numpy", "2.4.6x", "sample.numpy: stored '2.4.6x' is not a NumPy version"),
        ("numpy", "banana", "sample.numpy: stored 'banana' is not a NumPy version"),
        ("encoding", "gzip", "sample.encoding: stored 'gzip'"),
    ]:
        record = copy.deepcopy(sampled)
        record["sample"][key] = value
        assert any(p.startswith(problem) for p in _problems(record)), key
    for version in ("1.26.4", "2.3.0rc1", "2.1.0.dev0"):
        record = copy.deepcopy(sampled)
        record["sample"]["numpy"] = version
        assert _problems(record) == [], version


# --------------------------------------------------------------------- strict reading
@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("price",), True, "price"),
        (("price",), "2", "price"),
        (("format_version",), 4.0, "format_version"),
        (("format_version",), True, "format_version"),
        (("empty_value",), True, "empty_value"),
        (("parties", 0, "fee"), "0.1", "parties.0.fee"),
        (("parties", 1, "payout"), False, "parties.1.payout"),
        (("tasks", 0, "value_table", 1), True, "tasks.0.value_table.1"),
    ],
)
def test_booleans_and_strings_are_not_read_as_numbers(market, path, value, field):
    record = copy.deepcopy(market)
    _set(record, path, value)
    with pytest.raises(ValueError, match=rf"field '{field}"):
        Settlement.from_dict(record)


def test_integers_are_still_read_as_floats(market):
    record = copy.deepcopy(market)
    record["price"] = 2
    assert Settlement.from_dict(record).verify().ok


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"names": ["a", "a"]}, "field 'names' must be distinct"),
        ({"stderr": [-0.1, 0.0]}, "field 'stderr.0' must be a standard error"),
        ({"stderr": [0.1, math.nan]}, "field 'stderr.1' must be a standard error"),
        ({"values": [True, 0.5]}, "field 'values.0'"),
        ({"values": ["1", 0.5]}, "field 'values.0'"),
        ({"n_evaluations": 1.0}, "field 'n_evaluations'"),
        ({"converged": "yes"}, "field 'converged'"),
    ],
)
def test_a_valuation_result_refuses_what_no_writer_writes(edit, message):
    good = {"method": "shapley", "names": ["a", "b"], "values": [0.25, 0.75], "stderr": [0, 1]}
    assert ValuationResult.from_dict(good)["b"] == 0.75
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        ValuationResult.from_dict({**good, **edit})


def test_an_infinite_standard_error_is_read():
    r = ValuationResult.from_dict(
        {"method": "shapley", "names": ["a"], "values": [1.0], "stderr": [math.inf]}
    )
    assert r.stderr is not None and math.isinf(r.stderr[0])


# --------------------------------------------------------------------- older formats
def _down(record: dict[str, Any], version: int) -> dict[str, Any]:
    """The record as format ``version`` wrote it (names listed, no newer fields)."""
    d = copy.deepcopy(record)
    names = [p["name"] for p in d["parties"]]
    for line in [*d["parties"], *d["tasks"]]:
        if line["members"] == "all":
            line["members"] = names
    for t in d["tasks"]:
        t.pop("selection_evaluations", None)
    d["valuation"].pop("tasks", None)
    if d["mode"] == "single":
        d["tasks"][0]["value_table"] = d["value_table"]
    d["format_version"] = version
    if version == 3:
        if d["valuation"]["method"] == "exact":  # no fits choosing members then
            sizes = [len(t["value_table"]) for t in d["tasks"]]
            d["valuation"]["evaluations"] = sizes[0] if d["mode"] == "single" else sum(sizes)
        return d
    d.pop("valuation")
    for p in d["parties"]:
        p.pop("payout_stderr")
    if version == 2:
        return d
    d.pop("format_version")
    for p in d["parties"]:
        p.pop("charge")
    d.pop("flags")
    d.pop("empty_value")
    d["checks"].pop("nonnegative_payouts", None)
    if d["mode"] == "single":
        d["tasks"][0]["value_table"] = None
    return d


EXACT = [p for p in FIXTURES if "sampled" not in p.name]


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("path", EXACT, ids=lambda p: p.stem)
def test_an_older_record_written_again_is_a_format_4_record_that_verifies(path, version):
    old = _down(json.loads(path.read_text()), version)
    if version == 1 and json.loads(path.read_text())["flags"]:
        pytest.skip("format 1 predates the refund and clipping rules this record applies")
    s = Settlement.from_dict(json.loads(json.dumps(old)))
    assert s.verify().ok, s.verify().problems
    again = Settlement.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again.format_version == 4
    assert again.verify().ok, again.verify().problems
    original = Settlement.from_dict(json.loads(path.read_text()))
    assert [p.payout for p in again.parties] == [p.payout for p in original.parties]
    assert again.checks == original.checks
