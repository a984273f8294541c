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


# ---------------------------------------------------------------- the [executor] table
def test_executor_table_reaches_the_executor(tmp_path):
    from coopml.config import MarketConfig, ValueConfig

    (tmp_path / "job.toml").write_text(
        '[data]\ndataset = "iris"\n[partition]\nn_parties = 3\n'
        '[executor]\nkind = "joblib"\nn_jobs = 2\ntimeout = 120\n'
    )
    cfg, _ = load_config(tmp_path / "job.toml", ValueConfig)
    executor = cfg.executor_settings.build()
    assert (executor.name, executor.n_workers, executor.timeout) == ("joblib", 2, 120.0)
    forever = parse_config({**BASE, "executor": {"kind": "joblib", "timeout": float("inf")}})
    assert forever.executor_settings.build().timeout is None
    market = parse_config(
        {**BASE, "executor": {"kind": "ray", "address": "ray://head:10001"}}, schema=MarketConfig
    )
    assert market.executor_settings.address == "ray://head:10001"


def test_older_executor_keys_still_work():
    from coopml.config import MarketConfig

    cfg = parse_config({**BASE, "valuation": {"executor": "joblib", "n_jobs": 3}})
    assert (cfg.executor_settings.kind, cfg.executor_settings.n_jobs) == ("joblib", 3)
    # as before: n_jobs > 1 with the serial default means joblib workers
    cfg = parse_config({**BASE, "market": {"n_jobs": 2}}, schema=MarketConfig)
    assert cfg.executor_settings.kind == "joblib"
    assert parse_config(BASE).executor_settings.kind == "serial"
    # the same value in both places is not a contradiction
    same = {**BASE, "valuation": {"executor": "ray"}, "executor": {"kind": "ray"}}
    assert parse_config(same).executor_settings.kind == "ray"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (
            {"valuation": {"executor": "joblib"}, "executor": {"kind": "ray"}},
            r"\[valuation\] executor = 'joblib' contradicts \[executor\] kind = 'ray'",
        ),
        (
            {"valuation": {"n_jobs": 4}, "executor": {"kind": "ray", "n_jobs": 2}},
            r"\[valuation\] n_jobs = 4 contradicts \[executor\] n_jobs = 2",
        ),
        (
            {"executor": {"kind": "joblib", "address": "auto"}},
            r"address names a Ray cluster and needs kind = 'ray'; got kind = 'joblib'",
        ),
        (
            {"executor": {"kind": "serial", "n_jobs": 4}},
            r"n_jobs > 1 .* needs kind = 'joblib' or 'ray'",
        ),
        ({"executor": {"kind": "dask"}}, r"executor\.kind: .*'serial', 'joblib' or 'ray'"),
        ({"executor": {"timeout": 0}}, r"executor\.timeout: .*greater than 0 \(got 0\)"),
        ({"executor": {"n_jobs": 0}}, r"executor\.n_jobs: .*greater than or equal to 1"),
        ({"executor": {"nodes": 3}}, r"executor\.nodes: Extra inputs are not permitted"),
    ],
)
def test_executor_errors_name_the_keys(raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_config({**BASE, **raw})


def test_market_contradiction_names_the_market_table():
    from coopml.config import MarketConfig

    raw = {**BASE, "market": {"executor": "serial"}, "executor": {"kind": "ray"}}
    with pytest.raises(ConfigError, match=r"\[market\] executor = 'serial' contradicts"):
        parse_config(raw, schema=MarketConfig)


def test_command_line_executor_options_win_over_the_file():
    from coopml.config import with_executor

    cfg = parse_config(
        {**BASE, "valuation": {"n_jobs": 2}, "executor": {"kind": "ray", "address": "auto"}}
    )
    joblib = with_executor(cfg, kind="joblib").executor_settings
    assert (joblib.kind, joblib.address, joblib.n_jobs) == ("joblib", None, 2)
    ray = with_executor(cfg, address="10.0.0.1:6379", n_jobs=8).executor_settings
    assert (ray.kind, ray.address, ray.n_jobs) == ("ray", "10.0.0.1:6379", 8)
    assert with_executor(cfg).executor_settings == cfg.executor_settings
    with pytest.raises(ConfigError, match=r"executor\.kind"):
        with_executor(cfg, kind="dask")


# ------------------------------------------------------------------ docs/jobfile.md
def _jobfile_sections() -> dict[str, str]:
    """docs/jobfile.md split at its level-2 headings."""
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "jobfile.md").read_text(encoding="utf-8")
    parts = doc.split("\n## ")
    return {part.split("\n", 1)[0]: part for part in parts[1:]}


def test_every_key_of_every_table_is_documented():
    """docs/jobfile.md has a row for every field of every model of the job file."""
    import coopml.config as c

    tables = {
        "Top-level keys": (c.JobConfig, {"features", "extra_columns"}),
        "`[[parties]]`": (c.PartyFile, None),
        "`[validation]`": (c.ValidationFile, None),
        "`[data]` and `[partition]`": (c.DataConfig, None),
        "`[[transform]]`": (c.TransformConfig, None),
        "`[preprocessing]`": (c.PreprocessingConfig, None),
        "`[learner]`": (c.LearnerConfig, None),
        "`[valuation]`": (c.ValuationConfig, None),
        "`[executor]`": (c.ExecutorSettings, None),
        "`[market]`": (c.MarketSettings, None),
        "`[audit]`": (c.AuditSettings, None),
    }
    sections = _jobfile_sections()
    for heading, (model, only) in tables.items():
        section = next((s for h, s in sections.items() if h.startswith(heading)), None)
        assert section is not None, f"docs/jobfile.md has no section {heading}"
        for field in only or model.model_fields:
            assert f"`{field}`" in section, f"docs/jobfile.md {heading} lacks `{field}`"
    section = next(s for h, s in sections.items() if h.startswith("`[data]`"))
    for field in c.PartitionConfig.model_fields:
        assert f"`{field}`" in section, f"docs/jobfile.md [partition] lacks `{field}`"
    nested = {"data", "partition", "parties", "validation", "transform", "learner"}
    nested |= {"preprocessing", "executor", "valuation", "market", "audit"}
    top = set(c.ValueConfig.model_fields) | set(c.MarketConfig.model_fields)
    assert top - nested == {"features", "extra_columns"}, "a new top-level key: document it"


def test_jobfile_toml_examples_are_valid_jobs():
    import re
    import tomllib

    doc = "\n".join(_jobfile_sections().values())
    blocks = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    assert blocks
    for block in blocks:
        cfg = parse_config(tomllib.loads(block))
        assert cfg.parties is not None and cfg.preprocessing.impute == "median"


def test_preprocessing_table_builds_a_per_coalition_pipeline():
    cfg = parse_config({**BASE, "preprocessing": {"impute": "mean", "scale": True}})
    pipe = build_learner(cfg.learner, cfg.preprocessing)
    steps = [type(step).__name__ for _, step in pipe.steps]
    assert steps == ["SimpleImputer", "StandardScaler", "LogisticRegression"]
    assert pipe.steps[0][1].strategy == "mean"
    with pytest.raises(ConfigError, match=r"preprocessing\.impute: .*'median'.*\(got 'mode'\)"):
        parse_config({**BASE, "preprocessing": {"impute": "mode"}})
    with pytest.raises(ConfigError, match=r"validation: .*give either path \(with target\) or"):
        parse_config({"parties": [{"name": "a", "path": "a.csv", "target": "y"}], "validation": {}})


def test_market_stderr_target_none_in_a_job_file_spends_the_whole_budget():
    from coopml.config import MarketConfig

    raw = {**BASE, "market": {"stderr_target": "none"}}
    assert parse_config(raw, schema=MarketConfig).market.stderr_target is None
    with pytest.raises(ConfigError, match="stderr_target"):
        parse_config({**raw, "market": {"stderr_target": "off"}}, schema=MarketConfig)
