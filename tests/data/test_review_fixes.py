"""Fixes from an outside review (issue 14): validation data matched by name, clear messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.naive_bayes import GaussianNB

from coopml.data import Party
from coopml.data.columns import ColumnError
from coopml.learning.utility import CoalitionUtility


def _frame(seed: int, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 10, n)
    bmi = rng.normal(25, 1, n)
    return pd.DataFrame({"age": age, "bmi": bmi, "outcome": (age > 50).astype(int)})


@pytest.fixture
def parties_and_validation() -> tuple[list[Party], pd.DataFrame, np.ndarray]:
    pa = Party.from_dataframe("a", _frame(0), "outcome", features=["age", "bmi"])
    pb = Party.from_dataframe("b", _frame(1), "outcome", features=["age", "bmi"])
    V = _frame(2)
    return [pa, pb], V, V["outcome"].to_numpy()


def _table(u: CoalitionUtility) -> list[float]:
    return [u(s) for s in (set(), {0}, {1}, {0, 1})]


def test_validation_frame_is_matched_by_name(parties_and_validation):
    parties, V, y = parties_and_validation
    in_order = CoalitionUtility(GaussianNB(), parties, (V[["age", "bmi"]], y))
    swapped = CoalitionUtility(GaussianNB(), parties, (V[["bmi", "age"]], y))
    assert _table(swapped) == _table(in_order)
    assert np.array_equal(swapped.X_val, V[["age", "bmi"]].to_numpy())


def test_validation_frame_missing_or_extra_column_is_named(parties_and_validation):
    parties, V, y = parties_and_validation
    with pytest.raises(ColumnError, match=r"no column 'bmi' \(did you mean 'BMI'\?\)"):
        CoalitionUtility(
            GaussianNB(), parties, (V[["age", "bmi"]].rename(columns={"bmi": "BMI"}), y)
        )
    with pytest.raises(ColumnError, match=r"columns \['outcome'\] that are not features"):
        CoalitionUtility(GaussianNB(), parties, (V, y))


def test_run_market_matches_the_validation_frame_by_name(parties_and_validation):
    from coopml.market import run_market

    parties, V, y = parties_and_validation
    in_order = run_market(parties, GaussianNB(), (V[["age", "bmi"]], y))
    swapped = run_market(parties, GaussianNB(), (V[["bmi", "age"]], y))
    # the same record but for the second it was written in (a slow run crosses one)
    first, second = in_order.settlement.to_dict(), swapped.settlement.to_dict()
    first["provenance"].pop("created_at"), second["provenance"].pop("created_at")
    assert second == first
    with pytest.raises(ColumnError, match="no column 'bmi'"):
        run_market(parties, GaussianNB(), (V[["age"]], y))


def test_validation_array_is_still_positional(parties_and_validation):
    parties, V, y = parties_and_validation
    u = CoalitionUtility(GaussianNB(), parties, (V[["age", "bmi"]].to_numpy(), y))
    assert np.array_equal(u.X_val, V[["age", "bmi"]].to_numpy())


def test_party_x_val_frame_is_matched_by_name():
    X = np.array([[30.0, 20.0], [60.0, 30.0]])
    V = pd.DataFrame({"bmi": [21.0], "age": [31.0]})
    party = Party("a", X, [0, 1], V, [0], feature_names=["age", "bmi"])
    assert party.X_val is not None
    assert party.X_val.tolist() == [[31.0, 21.0]]


def _nine_party_utility() -> CoalitionUtility:
    parties = [
        Party.from_dataframe(f"p{i}", _frame(10 + i, n=12), "outcome", features=["age", "bmi"])
        for i in range(9)
    ]
    V = _frame(99)
    return CoalitionUtility(GaussianNB(), parties, (V[["age", "bmi"]], V["outcome"]))


@pytest.mark.parametrize("max_evaluations", [1200, 300])
def test_monte_carlo_sentence_matches_its_evaluations(max_evaluations):
    from coopml.valuation import value_utility

    report = value_utility(
        _nine_party_utility(), ["monte_carlo"], max_evaluations=max_evaluations, random_state=0
    )
    result = report.results["monte_carlo"]
    text = result.summary()
    assert f"({result.n_evaluations:,} evaluations)" in text
    assert result.n_evaluations <= min(max_evaluations, 2**9)
    if max_evaluations >= 2**9:  # a budget beyond the game: every coalition is evaluated
        assert result.n_evaluations == 2**9
        assert "by having evaluated every one of the 512 coalitions" in text
    else:
        assert "by the 300-evaluation budget" in text


def test_a_repeated_header_name_is_named_not_renamed(tmp_path):
    from coopml.data.party import read_table

    path = tmp_path / "a.csv"
    path.write_text("age,bmi,bmi,outcome\n30,20,21,0\n")
    with pytest.raises(ColumnError, match=r"a\.csv: column 'bmi' appears twice") as error:
        read_table("a.csv", path)
    assert "bmi.1" not in str(error.value)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("yes", "the files disagree: write the column the same way in every file"),
        ("missing", "write missing values as empty cells"),
    ],
)
def test_numbers_in_one_file_and_text_in_another_names_both(value, hint):
    from coopml.data.preprocessing import categorical_columns

    a = pd.DataFrame({"smoker": [0, 1]})
    b = pd.DataFrame({"smoker": ["no", value]})
    with pytest.raises(ValueError) as error:
        categorical_columns({"a.csv": a, "b.csv": b}, ["smoker"])
    text = str(error.value)
    assert "holds text in b.csv" in text and "but numbers in a.csv" in text
    assert hint in text
    assert ("empty cells" in text) == (value == "missing")
