"""[preprocessing]: missing values, text columns and scaling in job files, and data errors
that name the party, the file, the column and the row."""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from coopml.config import ConfigError, MarketConfig, build_parties, load_config
from coopml.data import Party, TabularSchema, accepts_missing
from coopml.learning import CoalitionUtility
from coopml.valuation import run_value_job

NAMES = ["h1", "h2", "h3"]


def hospital_frames(seed: int = 0) -> dict[str, pd.DataFrame]:
    """Three hospitals and a validation file: a text column, missing bmi, text labels."""
    rng = np.random.default_rng(seed)
    frames = {}
    for name, n in [("h1", 40), ("h2", 30), ("h3", 25), ("val", 60)]:
        age = rng.normal(50, 10, n).round(1)
        smoker = rng.choice(["no", "former", "yes"], n)
        bmi = rng.normal(26, 4, n).round(1)
        sick = age + 6 * (smoker == "yes") + 0.5 * bmi + rng.normal(0, 5, n) > 66
        frame = pd.DataFrame(
            {"smoker": smoker, "age": age, "bmi": bmi, "y": np.where(sick, "sick", "well")}
        )
        if name != "val":
            frame.loc[rng.choice(n, 4, replace=False), "bmi"] = np.nan
        frames[name] = frame
    return frames


def write_job(tmp_path, frames, preprocessing="", learner="", validation='path = "val.csv"'):
    for name, frame in frames.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    job = 'features = ["age", "bmi", "smoker"]\n'
    job += "".join(
        f'[[parties]]\nname = "{n}"\npath = "{n}.csv"\ntarget = "y"\n' for n in frames if n != "val"
    )
    target = 'target = "y"' if "path" in validation else ""
    job += f"[validation]\n{validation}\n{target}\n"
    job += f"[preprocessing]\n{preprocessing}\n" if preprocessing else ""
    job += learner
    (tmp_path / "job.toml").write_text(job)
    return tmp_path / "job.toml"


def test_nan_and_text_columns_match_the_same_pipeline_built_by_hand(tmp_path):
    frames = hospital_frames()
    write_job(tmp_path, frames, 'impute = "median"\ncategorical = "onehot"\nscale = true')
    cfg, base = load_config(tmp_path / "job.toml")
    report = run_value_job(cfg, base)
    assert report.info["fast_path"] is None  # per-coalition imputation refits every coalition
    # By hand: the observed categories of the training files, then per coalition a
    # median imputer and a scaler fitted on the coalition's rows only.
    categories = sorted(set().union(*(set(frames[n]["smoker"]) for n in NAMES)))
    encode = ColumnTransformer(
        [
            ("age", "passthrough", ["age"]),
            ("bmi", "passthrough", ["bmi"]),
            ("smoker", OneHotEncoder(categories=[categories], sparse_output=False), ["smoker"]),
        ]
    )
    pipeline = make_pipeline(
        encode,
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(random_state=0),
    )
    val = frames["val"]
    table = report.game.table
    for size in range(1, 4):
        for coalition in combinations(range(3), size):
            pooled = pd.concat([frames[NAMES[i]] for i in coalition], ignore_index=True)
            model = clone(pipeline).fit(pooled.drop(columns="y"), pooled["y"])
            expected = model.score(val.drop(columns="y"), val["y"])
            mask = sum(1 << i for i in coalition)
            assert table[mask] == pytest.approx(expected, abs=1e-12), coalition


def test_without_preprocessing_missing_values_and_text_name_party_file_column_row(tmp_path):
    frames = hospital_frames()
    write_job(tmp_path, frames)
    cfg, base = load_config(tmp_path / "job.toml")
    with pytest.raises(ConfigError) as info:
        build_parties(cfg, base)
    text = str(info.value)
    assert "parties[0] 'h1' path file 'h1.csv': column 'smoker' is not numeric" in text
    assert "data row 1" in text and '[preprocessing] categorical = "onehot"' in text
    # Text encoded, missing values not imputed: the first missing bmi of h1, by row.
    write_job(tmp_path, frames, 'categorical = "onehot"')
    cfg, base = load_config(tmp_path / "job.toml")
    first = int(np.flatnonzero(frames["h1"]["bmi"].isna())[0]) + 1
    with pytest.raises(ConfigError) as info:
        build_parties(cfg, base)
    text = str(info.value)
    assert f"'h1.csv': column 'bmi' has 4 missing value(s), the first in data row {first}" in text
    assert '[preprocessing] impute = "median"' in text


def test_hist_gradient_boosting_takes_missing_values_without_imputation(tmp_path):
    frames = {k: f.drop(columns="smoker") for k, f in hospital_frames().items()}
    learner = (
        '[learner]\nestimator = "sklearn.ensemble.HistGradientBoostingClassifier"\n'
        "params = { max_iter = 5, random_state = 0 }\n"
    )
    path = write_job(tmp_path, frames, learner=learner)
    path.write_text(path.read_text().replace('features = ["age", "bmi", "smoker"]\n', ""))
    cfg, base = load_config(path)
    parties, (X_val, y_val) = build_parties(cfg, base)
    assert all(p.has_missing for p in parties)
    report = run_value_job(cfg, base)
    grand = report.game.table[-1]
    X = np.concatenate([p.X for p in parties])
    y = np.concatenate([p.y for p in parties])
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y)
    assert grand == pytest.approx(model.score(X_val, y_val), abs=1e-12)


def test_a_learner_without_nan_support_is_refused_by_name():
    party = Party("h1", [[1.0, np.nan], [2.0, 3.0]], [0, 1], allow_missing=True)
    other = Party("h2", [[1.0, 2.0], [2.0, 3.0]], [0, 1])
    with pytest.raises(ValueError, match=r"party 'h1': training column '#1' has a missing value"):
        CoalitionUtility(LogisticRegression(), [party, other], ([[1.0, 2.0]], [0]))
    pipeline = make_pipeline(SimpleImputer(), LogisticRegression())
    assert CoalitionUtility(pipeline, [party, other], ([[1.0, np.nan]], [0]))({0, 1}) in (0, 1)


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_categorical_encoding_keeps_the_fast_exact_learners(tmp_path, encoding):
    frames = {k: f.dropna() for k, f in hospital_frames().items()}
    learner = '[learner]\nestimator = "sklearn.naive_bayes.GaussianNB"\n'
    write_job(tmp_path, frames, f'categorical = "{encoding}"', learner)
    cfg, base = load_config(tmp_path / "job.toml")
    report = run_value_job(cfg, base)
    assert report.info["fast_path"] is not None
    parties, validation = build_parties(cfg, base)
    names = ["age", "bmi", "smoker=former", "smoker=no", "smoker=yes"]
    assert list(parties[0].feature_names) == (
        names if encoding == "onehot" else ["age", "bmi", "smoker"]
    )
    from sklearn.naive_bayes import GaussianNB

    slow = CoalitionUtility(GaussianNB(), parties, validation, random_state=0, fast=False)
    expected = slow.evaluate_masks(np.arange(8))
    np.testing.assert_allclose(report.game.table, expected, rtol=0, atol=1e-12)


def test_schema_encodes_by_a_fixed_category_list():
    schema = TabularSchema(("smoker",), {"smoker": ("no", "yes")}, "ordinal")
    encoded = schema.transform(pd.DataFrame({"smoker": ["yes", None]}))
    np.testing.assert_array_equal(encoded, [[1.0], [np.nan]])
    with pytest.warns(UserWarning, match="'former' in data row 1, which is not one of"):
        unknown = schema.transform(pd.DataFrame({"smoker": ["former"]}))
    assert np.isnan(unknown).all()
    strict = TabularSchema(("smoker",), {"smoker": ("no", "yes")}, "onehot", declared=("smoker",))
    with pytest.raises(ValueError, match=r"'former' in data row 2.*\[preprocessing.categories\]"):
        strict.transform(pd.DataFrame({"smoker": ["no", "former"]}))


def test_declared_categories_fix_the_columns(tmp_path):
    frames = {k: f.dropna() for k, f in hospital_frames().items()}
    write_job(
        tmp_path,
        frames,
        'categorical = "onehot"\ncategories = { smoker = ["yes", "no", "former", "unknown"] }',
    )
    cfg, base = load_config(tmp_path / "job.toml")
    parties, _ = build_parties(cfg, base)
    assert parties[0].feature_names[2:] == (
        "smoker=yes",
        "smoker=no",
        "smoker=former",
        "smoker=unknown",
    )
    assert (parties[0].X[:, -1] == 0).all()


def test_accepts_missing_reads_the_tags():
    from sklearn.ensemble import HistGradientBoostingRegressor

    assert accepts_missing(HistGradientBoostingRegressor())
    assert accepts_missing(make_pipeline(StandardScaler(), HistGradientBoostingRegressor()))
    assert not accepts_missing(make_pipeline(StandardScaler(), LogisticRegression()))
    assert not accepts_missing(object())


# ------------------------------------------------------------------ data errors
def test_labels_mixing_text_and_numbers_across_files_name_both_files(tmp_path):
    frames = {k: f.dropna().drop(columns="smoker") for k, f in hospital_frames().items()}
    frames["h2"]["y"] = (frames["h2"]["y"] == "sick").astype(int)
    path = write_job(tmp_path, frames)
    path.write_text(path.read_text().replace('features = ["age", "bmi", "smoker"]\n', ""))
    cfg, base = load_config(path)
    with pytest.raises(ConfigError) as info:
        build_parties(cfg, base)
    assert str(info.value).startswith(
        "parties[0] 'h1' path file 'h1.csv' has text labels (e.g. 'sick') but parties[1] 'h2' "
        "path file 'h2.csv' has number labels (e.g. "
    )


def test_mixed_and_missing_labels_in_one_file_name_the_row(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": pd.Series(["a", 1, "b"], dtype=object)})
    with pytest.raises(TypeError) as info:
        Party.from_dataframe("h1", frame, "y", source="party 'h1' (h1.json)")
    assert str(info.value).startswith(
        "party 'h1' (h1.json): target column 'y' mixes text and number "
        "labels ('a' in data row 1, 1 in data row 2)"
    )
    (tmp_path / "h2.csv").write_text("x,y\n1,a\n2,\n")
    with pytest.raises(ValueError, match=r"party 'h2' \(.*h2.csv\): target column 'y' has 1 "):
        Party.from_csv("h2", tmp_path / "h2.csv", "y")


def test_an_empty_file_says_it_has_no_rows(tmp_path):
    (tmp_path / "h1.csv").write_text("age,y\n")
    with pytest.raises(ValueError, match=r"party 'h1' \(.*h1.csv\): the file has no rows"):
        Party.from_csv("h1", tmp_path / "h1.csv", "y")
    (tmp_path / "h2.csv").write_text("")
    with pytest.raises(ValueError, match=r"party 'h2' \(.*h2.csv\): the file is empty"):
        Party.from_csv("h2", tmp_path / "h2.csv", "y")


def test_one_row_and_single_class_parties_get_a_warning(tmp_path):
    frames = {k: f.dropna().drop(columns="smoker") for k, f in hospital_frames().items()}
    frames["h2"] = frames["h2"].iloc[:1]
    frames["h3"] = frames["h3"][frames["h3"]["y"] == "well"]
    path = write_job(
        tmp_path, frames, learner='[learner]\nestimator = "sklearn.naive_bayes.GaussianNB"\n'
    )
    path.write_text(path.read_text().replace('features = ["age", "bmi", "smoker"]\n', ""))
    cfg, base = load_config(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run_value_job(cfg, base)
    messages = [str(w.message) for w in caught]
    assert any("'h2.csv' has a single training row" in m for m in messages)
    assert any("'h3.csv' has a single class ('well')" in m for m in messages)
    assert report.info["warnings"] == [
        "party 'h2' has a single training row; its value rests on that one row",
        "party 'h3' has a single class ('well') in its "
        f"{len(frames['h3'])} training rows; a model trained on its data alone predicts that "
        "class everywhere",
    ]
    assert report.to_dict()["info"]["warnings"] == report.info["warnings"]


def test_validation_fraction_holds_out_rows_of_every_party(tmp_path):
    frames = {k: f.dropna() for k, f in hospital_frames().items() if k != "val"}
    write_job(tmp_path, frames, 'categorical = "onehot"', validation="fraction = 0.25")
    cfg, base = load_config(tmp_path / "job.toml")
    parties, (X_val, y_val) = build_parties(cfg, base)
    sizes = [len(frames[n]) for n in NAMES]
    held = [round(0.25 * s) for s in sizes]
    assert [p.n_samples for p in parties] == [s - h for s, h in zip(sizes, held, strict=True)]
    assert len(y_val) == sum(held)
    pooled = np.concatenate([p.X for p in parties])
    train_rows = {tuple(r) for r in pooled.tolist()}
    assert not any(tuple(r) in train_rows for r in X_val.tolist())  # never trained on
    again, _ = build_parties(cfg, base)
    assert all(a.fingerprint() == b.fingerprint() for a, b in zip(parties, again, strict=True))
    market, base = load_config(tmp_path / "job.toml", MarketConfig)
    assert build_parties(market, base)[1][0].shape == X_val.shape
