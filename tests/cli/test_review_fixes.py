"""`coopml value` fixes from an outside review (issue 14): interrupts and warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from coopml.cli import app
from coopml.learning import CoalitionUtility

runner = CliRunner()

JOB = """
[data]
dataset = "wine"
[partition]
method = "iid"
n_parties = 4
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
[valuation]
methods = {methods}
max_evaluations = 40
{extra}
"""


@pytest.mark.parametrize(
    ("methods", "extra", "expected"),
    [
        ('["shapley"]', 'cache_dir = "cache"', "saved the coalition values evaluated so far in"),
        ('["monte_carlo"]', 'cache_dir = "cache"', "saved the Monte Carlo estimator's state in"),
        ('["shapley"]', "", "nothing was kept (no cache_dir); set [valuation] cache_dir"),
    ],
)
def test_an_interrupt_says_what_was_kept(tmp_path: Path, monkeypatch, methods, extra, expected):
    job = tmp_path / "job.toml"
    job.write_text(JOB.format(methods=methods, extra=extra))

    def interrupted(self, masks):
        raise KeyboardInterrupt

    monkeypatch.setattr(CoalitionUtility, "evaluate_block", interrupted)
    result = runner.invoke(app, ["value", str(job), "-q"])
    assert result.exit_code == 130
    assert expected in result.stderr
    assert result.stderr.startswith("interrupted:")
    assert result.stderr.count("\n") == 1  # one line
    if extra:
        assert f"in {tmp_path / 'cache'}; rerun the same command to resume" in result.stderr


def _hospitals(tmp_path: Path, categorical: str, h1_rows: int = 40) -> Path:
    from tests.data.test_preprocessing import hospital_frames, write_job

    frames = {k: f.dropna().reset_index(drop=True) for k, f in hospital_frames().items()}
    frames["h1"] = frames["h1"].head(h1_rows)
    frames["val"].loc[0, "smoker"] = "vape"  # a category no party has
    learner = '[learner]\nestimator = "sklearn.naive_bayes.GaussianNB"\n'
    return write_job(tmp_path, frames, f'categorical = "{categorical}"', learner)


def test_an_ordinal_unseen_category_names_column_value_row_and_fix(tmp_path: Path):
    result = runner.invoke(app, ["value", str(_hospitals(tmp_path, "ordinal")), "-q"])
    assert result.exit_code == 2
    text = " ".join(result.stderr.split())
    assert "[validation] file 'val.csv': the encoder turned the value 'vape' in column " in text
    assert "'smoker', data row 1, into a missing value" in text
    assert 'categorical = "onehot"' in text and "impute" in text


def test_data_warnings_name_the_file_reach_the_report_and_print_once(tmp_path: Path):
    import json

    job = _hospitals(tmp_path, "onehot", h1_rows=1)
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["value", str(job), "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    listed = json.loads(out.read_text())["info"]["warnings"]
    vape = [w for w in listed if "'vape'" in w]
    assert len(vape) == 1 and vape[0].startswith("[validation] file 'val.csv': column 'smoker'")
    assert any("has a single training row" in w for w in listed)
    lines = [" ".join(line.split()) for line in result.stdout.split("warning: ")[1:]]
    assert len(lines) == len(listed)  # each warning printed once, as a clean line
    assert "UserWarning" not in result.output and "warnings.warn" not in result.output


def test_one_party_is_not_called_parties(tmp_path: Path):
    job = tmp_path / "job.toml"
    job.write_text(
        JOB.format(methods='["shapley"]', extra="").replace("n_parties = 4", "n_parties = 1")
    )
    result = runner.invoke(app, ["value", str(job), "-q"])
    assert result.exit_code == 0, result.output
    assert "1 party, 2 coalitions" in result.stdout
