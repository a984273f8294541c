"""Columns are matched by name in every path: job files, DataFrames, validation files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from coopml.config import ConfigError, build_parties, load_config
from coopml.data import Party, check_parties
from coopml.valuation import run_value_job


def wine_files(tmp_path, orders=None, rename=None, extra=None):
    """Three parties and a validation file of the wine data, each CSV in its own order."""
    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "cultivar"})
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(frame))
    chunks = np.array_split(rows, 4)
    names = ["a", "b", "c", "val"]
    for k, (name, idx) in enumerate(zip(names, chunks, strict=True)):
        part = frame.iloc[idx]
        if orders is not None and orders[k] is not None:
            part = part[orders[k]]
        if rename and name in rename:
            part = part.rename(columns=rename[name])
        if extra and name in extra:
            part = part.assign(**{extra[name]: 1.0})
        part.to_csv(tmp_path / f"{name}.csv", index=False)
    job = "".join(
        f'[[parties]]\nname = "{n}"\npath = "{n}.csv"\ntarget = "cultivar"\n' for n in names[:3]
    )
    job += '[validation]\npath = "val.csv"\ntarget = "cultivar"\n'
    job += '[learner]\nestimator = "sklearn.naive_bayes.GaussianNB"\n'
    (tmp_path / "job.toml").write_text(job)
    return list(frame.columns)


def _values(tmp_path):
    cfg, base = load_config(tmp_path / "job.toml")
    return run_value_job(cfg, base).results["shapley"].values


def test_reordered_columns_give_the_same_values(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "shuffled").mkdir()
    columns = wine_files(tmp_path / "plain")
    expected = _values(tmp_path / "plain")
    rng = np.random.default_rng(1)
    orders = [list(rng.permutation(columns)) for _ in range(4)]
    wine_files(tmp_path / "shuffled", orders=orders)
    np.testing.assert_allclose(_values(tmp_path / "shuffled"), expected, rtol=0, atol=1e-12)


def test_a_renamed_column_is_an_error_naming_file_and_column(tmp_path):
    wine_files(tmp_path, rename={"b": {"alcohol": "Alcohol"}})
    cfg, base = load_config(tmp_path / "job.toml")
    with pytest.raises(ConfigError) as info:
        build_parties(cfg, base)
    message = str(info.value)
    assert "'b'" in message and "b.csv" in message
    assert "no column 'alcohol'" in message and "did you mean 'Alcohol'?" in message


def test_a_missing_column_in_the_validation_file_is_named(tmp_path):
    columns = wine_files(tmp_path)
    order = [c for c in columns if c != "proline"]
    wine_files(tmp_path, orders=[None, None, None, order])
    cfg, base = load_config(tmp_path / "job.toml")
    with pytest.raises(ConfigError, match=r"\[validation\] file 'val.csv' has no column 'proline'"):
        build_parties(cfg, base)


def test_extra_columns_are_an_error_unless_ignored(tmp_path):
    wine_files(tmp_path, extra={"c": "hospital_id"})
    cfg, base = load_config(tmp_path / "job.toml")
    with pytest.raises(ConfigError, match=r"'c'.*columns \['hospital_id'\] that are not features"):
        build_parties(cfg, base)
    text = (tmp_path / "job.toml").read_text()
    (tmp_path / "job.toml").write_text('extra_columns = "ignore"\n' + text)
    cfg, base = load_config(tmp_path / "job.toml")
    parties, (X_val, _) = build_parties(cfg, base)
    assert all(p.n_features == 13 for p in parties) and X_val.shape[1] == 13


def test_job_features_select_and_order_columns(tmp_path):
    wine_files(tmp_path)
    text = (tmp_path / "job.toml").read_text()
    (tmp_path / "job.toml").write_text(
        'features = ["proline", "alcohol"]\nextra_columns = "ignore"\n' + text
    )
    cfg, base = load_config(tmp_path / "job.toml")
    parties, (X_val, _) = build_parties(cfg, base)
    frame = pd.read_csv(tmp_path / "a.csv")
    np.testing.assert_array_equal(parties[0].X, frame[["proline", "alcohol"]].to_numpy())
    assert parties[0].feature_names == ("proline", "alcohol") and X_val.shape[1] == 2


def test_an_empty_file_says_it_has_no_rows(tmp_path):
    columns = wine_files(tmp_path)
    pd.DataFrame(columns=columns).to_csv(tmp_path / "b.csv", index=False)
    cfg, base = load_config(tmp_path / "job.toml")
    with pytest.raises(ConfigError, match=r"'b' path file 'b.csv': the file has no rows"):
        build_parties(cfg, base)


def test_library_parties_with_columns_in_another_order_are_refused():
    a = pd.DataFrame({"age": [30.0, 40.0], "bmi": [20.0, 25.0], "y": [0, 1]})
    b = a[["bmi", "age", "y"]]
    pa, pb = Party.from_dataframe("a", a, "y"), Party.from_dataframe("b", b, "y")
    with pytest.raises(ValueError, match="different feature columns"):
        check_parties([pa, pb])
    pb = Party.from_dataframe("b", b, "y", features=["age", "bmi"])  # matched by name
    assert [p.name for p in check_parties([pa, pb])] == ["a", "b"]
    np.testing.assert_array_equal(pa.X, pb.X)
