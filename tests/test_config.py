from __future__ import annotations

import numpy as np
import pytest

from coopml.config import ConfigError, build_learner, build_parties, load_config, parse_config

BASE = {"data": {"dataset": "iris"}, "partition": {"method": "iid", "n_parties": 3}}


def test_bundled_dataset_with_transforms():
    cfg = parse_config(
        {
            **BASE,
            "transform": [
                {"kind": "replicate", "party": "party_0", "name": "copy"},
                {"kind": "corrupt_labels", "party": "party_1", "fraction": 0.5},
            ],
        }
    )
    parties, (X_val, y_val) = build_parties(cfg)
    assert [p.name for p in parties] == ["party_0", "party_1", "party_2", "copy"]
    np.testing.assert_array_equal(parties[0].X, parties[3].X)
    assert sum(p.n_samples for p in parties[:3]) + len(y_val) == 150
    assert X_val.shape[1] == 4


def test_party_files_resolved_relative_to_config(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    for name in ["a", "b", "val"]:
        frame = pd.DataFrame(rng.normal(size=(20, 3)), columns=["x1", "x2", "x3"])
        frame["label"] = np.arange(20) % 2
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / "job.toml").write_text(
        '[[parties]]\nname = "a"\npath = "a.csv"\ntarget = "label"\n'
        '[[parties]]\nname = "b"\npath = "b.csv"\ntarget = "label"\n'
        '[validation]\npath = "val.csv"\ntarget = "label"\n'
    )
    cfg, base = load_config(tmp_path / "job.toml")
    parties, (X_val, _) = build_parties(cfg, base)
    assert [p.name for p in parties] == ["a", "b"] and X_val.shape == (20, 3)


def test_learner_by_import_path_with_scaling():
    cfg = parse_config({**BASE, "learner": {"params": {"C": 0.5}, "scale": True}})
    pipe = build_learner(cfg.learner)
    assert pipe.steps[-1][1].C == 0.5 and type(pipe.steps[0][1]).__name__ == "StandardScaler"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (
            {**BASE, "partition": {"n_parties": 0}},
            r"partition\.n_parties: .*greater than or equal to 1",
        ),
        ({**BASE, "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"data": {"dataset": "iris"}}, r"\[data\] and \[partition\] must be given together"),
        ({}, "give either"),
        ({**BASE, "valuation": {"methods": ["magic"]}}, r"valuation\.methods\.0: .*'shapley'"),
        ({**BASE, "data": {"dataset": "iris", "validation_fraction": 1.5}}, "less than 1"),
    ],
)
def test_schema_errors_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (
            {**BASE, "learner": {"estimator": "sklearn.nope.Model"}},
            "cannot import 'sklearn.nope.Model'",
        ),
        ({**BASE, "learner": {"params": {"bogus": 1}}}, "learner.params: .*bogus"),
    ],
)
def test_learner_errors(raw, match):
    with pytest.raises(ConfigError, match=match):
        build_learner(parse_config(raw).learner)


def test_data_errors():
    with pytest.raises(ConfigError, match=r"data\.dataset: .*mnist"):
        build_parties(parse_config({**BASE, "data": {"dataset": "mnist"}}))
    bad_party = {**BASE, "transform": [{"kind": "replicate", "party": "nobody"}]}
    with pytest.raises(ConfigError, match="no party named 'nobody'"):
        build_parties(parse_config(bad_party))


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (None, "majority"),
        ("majority", "majority"),
        ("zero", "zero"),
        (0, 0.0),
        (0.5, 0.5),
        (1, 1.0),
    ],
)
def test_market_empty_value(value, parsed):
    from coopml.config import MarketConfig

    market = {} if value is None else {"empty_value": value}
    cfg = parse_config({**BASE, "market": market}, schema=MarketConfig)
    assert cfg.market.empty_value == parsed and type(cfg.market.empty_value) is type(parsed)


@pytest.mark.parametrize("value", ["none", "Zero", 1.5, -0.1, True, [0.5]])
def test_market_empty_value_errors_name_the_key(value):
    from coopml.config import MarketConfig

    match = r"market\.empty_value: .*must be 'majority', 'zero' or a number in \[0, 1\] \(got "
    with pytest.raises(ConfigError, match=match):
        parse_config({**BASE, "market": {"empty_value": value}}, schema=MarketConfig)
