"""Real-data mode: learning curves measured on the firms' data drive the analysis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from sklearn.naive_bayes import GaussianNB
from typer.testing import CliRunner

from coopml.cli.sharing import app as sharing_app
from coopml.competition import fit_learning_curve
from coopml.competition.real_data import (
    analyze_parties,
    build_tasks,
    load_sharing_config,
    run_sharing_config,
)
from coopml.config import ConfigError
from coopml.data import Party, load_dataset

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sharing_two_tasks.toml"
root = typer.Typer()
root.add_typer(sharing_app, name="sharing")


def test_the_harder_task_makes_sharing_more_attractive() -> None:
    """Digits as is (easy) against digits with noisy features (hard), same firm sizes,
    same learner: the hard task's fitted beta is smaller, the larger firm's threshold
    similarity for full sharing is higher, and at gamma = 0.59 only the firms on the
    hard task pool their data."""
    cfg, base = load_sharing_config(EXAMPLE)
    easy, hard = run_sharing_config(cfg, base)
    assert (easy.name, hard.name) == ("digits", "noisy digits")
    assert easy.fit.converged and hard.fit.converged
    assert hard.fit.curve.beta < easy.fit.curve.beta
    assert hard.fit.mean_errors[-1] > easy.fit.mean_errors[-1]
    assert easy.threshold is not None and hard.threshold is not None
    assert easy.threshold < cfg.market.gamma < hard.threshold
    assert hard.analysis.full.unanimous and not easy.analysis.full.unanimous
    assert easy.analysis.full.agrees.tolist() == [False, True]  # the small firm wants it
    # under Nash bargaining the larger firm shares more of its data on the hard task
    assert hard.analysis.bargain.fractions[0] > easy.analysis.bargain.fractions[0]
    assert easy.firms == ("large", "small")
    assert easy.analysis.full.sizes.tolist() == [600.0, 300.0]
    json.dumps(hard.to_dict())


def test_fit_on_a_party_with_its_own_validation_data() -> None:
    d = load_dataset("digits")
    party = Party("firm", d.X[:1000], d.y[:1000], X_val=d.X[1000:], y_val=d.y[1000:])
    fit = fit_learning_curve(GaussianNB(), party, sizes=[50, 100, 200, 400, 1000], n_repeats=2)
    assert fit.errors.shape == (2, 5)
    # the largest size uses every training row: both repeats see the same data
    assert fit.errors[0, -1] == pytest.approx(fit.errors[1, -1])
    with pytest.raises(ValueError, match="parameter 'y' must be None"):
        fit_learning_curve(GaussianNB(), party, d.y[:1000])
    with pytest.raises(ValueError, match="parameter 'y' is required"):
        fit_learning_curve(GaussianNB(), d.X)


def test_analyze_parties_and_build_tasks(tmp_path: Path) -> None:
    d = load_dataset("iris")
    frames = []
    for k, rows in enumerate((slice(0, 150, 2), slice(1, 150, 4))):
        frame = pd.DataFrame(d.X[rows], columns=[f"x{j}" for j in range(4)])
        frame["label"] = d.y[rows]
        frame.to_csv(tmp_path / f"firm{k}.csv", index=False)
        frames.append(frame)
    config = tmp_path / "cfg.toml"
    config.write_text(
        "[market]\ngamma = 0.2\nmarket = 'bertrand'\nquality = 'demand'\n"
        "[learner]\nestimator = 'sklearn.naive_bayes.GaussianNB'\n"
        "[curve]\nn_repeats = 2\nsizes = [10, 20, 40, 70]\n"
        "[[task]]\nname = 'files'\n"
        "firms = [{name = 'a', path = 'firm0.csv', target = 'label'},"
        " {name = 'b', path = 'firm1.csv', target = 'label'}]\n"
        "[[task]]\nname = 'bundled'\ndataset = 'wine'\nsizes = [100, 40]\n",
        encoding="utf-8",
    )
    cfg, base = load_sharing_config(config)
    tasks = build_tasks(cfg, base)
    assert [p.n_samples for p in tasks["files"]] == [75, 38]
    assert [p.name for p in tasks["bundled"]] == ["firm_0", "firm_1"]
    results = run_sharing_config(cfg, base, tasks=tasks)
    assert results[0].analysis.model.quality == "demand"
    assert results[0].analysis.model.market == "bertrand"
    out = CliRunner().invoke(
        root, ["sharing", "fit-curve", str(config), "--json", "--out", str(tmp_path / "o")]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [t["task"] for t in data["tasks"]] == ["files", "bundled"]
    assert data["tasks"][0]["analysis"]["firms"][0]["size"] == 75.0
    for name in ("results.json", "learning_curves.png", "profit_gains_0.png"):
        assert (tmp_path / "o" / name).stat().st_size > 0
    table = CliRunner().invoke(root, ["sharing", "fit-curve", str(config)])
    assert table.exit_code == 0 and "decision" in table.output
    with pytest.raises(TypeError, match="at least 2 Party"):
        analyze_parties(tasks["files"][:1], GaussianNB(), 0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[market]\ngamma = 2\n[[task]]\nname='t'\ndataset='iris'\nsizes=[10,5]\n", "gamma"),
        ("[market]\ngamma = 0.5\n[[task]]\nname='t'\ndataset='iris'\n", "sizes"),
        ("[market]\ngamma = 0.5\n[[task]]\nname='t'\ndataset='iris'\nsizes=[100,100]\n", "add up"),
        ("[market]\ngamma = 0.5\n", "task"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    out = CliRunner().invoke(root, ["sharing", "fit-curve", str(path)])
    assert out.exit_code == 2
    assert message in out.output
    with pytest.raises(ConfigError):
        cfg, base = load_sharing_config(path)
        build_tasks(cfg, base)


def test_fitted_curve_feeds_the_analysis() -> None:
    d = load_dataset("digits")
    firms = [Party("a", d.X[:500], d.y[:500]), Party("b", d.X[500:600], d.y[500:600])]
    r = analyze_parties(firms, GaussianNB(), gamma=0.3, n_repeats=2, random_state=1)
    curve = r.fit.curve
    eps = curve(np.array([500.0, 100.0]))
    np.testing.assert_allclose(
        r.analysis.full.profit_alone, r.analysis.model.profits_at(np.array([500.0, 100.0]))
    )
    assert np.all(eps > 0)
