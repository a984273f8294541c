"""`coopml value` / `coopml market run`: live progress (non-TTY lines, --quiet) and resume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
n_parties = {n}
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
[valuation]
methods = {methods}
max_evaluations = {budget}
{extra}
"""

LINE = re.compile(r"^(\w+) (\d+)/(\d+) \((\d+)%\), [\d.]+ s elapsed(, ETA .+)?$")


def _job(tmp_path: Path, n: int = 6, methods: str = '["shapley"]', budget: int = 40, extra=""):
    path = tmp_path / "job.toml"
    path.write_text(JOB.format(n=n, methods=methods, budget=budget, extra=extra))
    return path


def _counts(stderr: str, unit: str) -> list[tuple[int, int]]:
    found = [LINE.match(line) for line in stderr.splitlines()]
    return [(int(m[2]), int(m[3])) for m in found if m is not None and m[1] == unit]


def _run_cli(*args: str, interval: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COOPML_PROGRESS_INTERVAL": interval, "COLUMNS": "200"}
    code = "from coopml.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize(
    "executor",
    [
        ["--executor", "serial"],
        pytest.param(["--executor", "joblib", "--n-jobs", "2"], marks=pytest.mark.slow),
    ],
)
def test_value_prints_advancing_progress_lines_when_not_a_terminal(tmp_path, executor):
    done = _run_cli("value", str(_job(tmp_path)), *executor)
    assert done.returncode == 0, done.stderr
    counts = _counts(done.stderr, "coalitions")
    assert len(counts) >= 8, done.stderr  # one line a block, the interval being 0
    assert {total for _, total in counts} == {64}
    assert [d for d, _ in counts] == sorted({d for d, _ in counts}) and counts[-1][0] == 64
    assert "ETA" in done.stderr and "elapsed" not in done.stdout  # progress on stderr


def test_monte_carlo_progress_counts_the_budget_and_quiet_silences_it(tmp_path):
    job = _job(tmp_path, n=12, methods='["monte_carlo"]', budget=300)
    result = runner.invoke(app, ["value", str(job)], env={"COOPML_PROGRESS_INTERVAL": "0"})
    assert result.exit_code == 0, result.output
    counts = _counts(result.stderr, "evaluations") + _counts(result.stderr, "permutations")
    assert len(counts) >= 2 and counts == sorted(counts), result.stderr
    quiet = runner.invoke(
        app, ["value", str(job), "--quiet"], env={"COOPML_PROGRESS_INTERVAL": "0"}
    )
    assert quiet.exit_code == 0 and "elapsed" not in quiet.stderr


def test_the_interval_spaces_the_lines_and_a_bad_one_is_refused(tmp_path):
    job = _job(tmp_path, n=8)
    result = runner.invoke(app, ["value", str(job)], env={"COOPML_PROGRESS_INTERVAL": "3600"})
    assert result.exit_code == 0
    # the first report (the run has started) and the end of the phase, nothing between
    assert _counts(result.stderr, "coalitions") == [(8, 256), (256, 256)]
    bad = runner.invoke(app, ["value", str(job)], env={"COOPML_PROGRESS_INTERVAL": "soon"})
    assert bad.exit_code == 2 and "COOPML_PROGRESS_INTERVAL must be seconds >= 0" in bad.output


def test_market_run_progress_and_quiet(tmp_path):
    job = tmp_path / "market.toml"
    job.write_text(
        '[data]\ndataset = "wine"\n[partition]\nmethod = "iid"\nn_parties = 5\n'
        '[learner]\nestimator = "sklearn.naive_bayes.GaussianNB"\n'
    )
    env = {"COOPML_PROGRESS_INTERVAL": "0"}
    out = str(tmp_path / "out")
    result = runner.invoke(app, ["market", "run", str(job), "--out", out], env=env)
    assert result.exit_code == 0, result.output
    counts = _counts(result.stderr, "coalitions")
    assert counts and counts[-1] == (32, 32) and len(counts) >= 4
    quiet = runner.invoke(app, ["market", "run", str(job), "--out", out, "--quiet"], env=env)
    assert quiet.exit_code == 0 and "elapsed" not in quiet.stderr


@pytest.mark.parametrize(
    ("n", "methods", "calls"), [(10, '["shapley", "banzhaf"]', 12), (12, '["monte_carlo"]', 1)]
)
def test_value_job_resumes_after_ctrl_c(tmp_path, monkeypatch, n, methods, calls):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = _job(tmp_path / "a", n=n, methods=methods, budget=300)
    cached = _job(tmp_path / "b", n=n, methods=methods, budget=300, extra='cache_dir = "cache"')
    reference = runner.invoke(app, ["value", str(plain), "-q", "--out", str(tmp_path / "a.json")])
    assert reference.exit_code == 0, reference.output

    evaluate_block = CoalitionUtility.evaluate_block
    seen = []

    def interrupted(self, masks):
        seen.append(len(masks))
        if len(seen) > calls:
            raise KeyboardInterrupt
        return evaluate_block(self, masks)

    monkeypatch.setattr(CoalitionUtility, "evaluate_block", interrupted)
    stopped = runner.invoke(app, ["value", str(cached), "-q"])
    assert stopped.exit_code != 0 and list((tmp_path / "b" / "cache").glob("*.partial.npz"))
    monkeypatch.setattr(CoalitionUtility, "evaluate_block", evaluate_block)

    resumed = runner.invoke(app, ["value", str(cached), "-q", "--out", str(tmp_path / "b.json")])
    assert resumed.exit_code == 0, resumed.output
    assert not list((tmp_path / "b" / "cache").glob("*.partial.npz"))
    a, b = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "ab")
    for method, result in a["results"].items():
        assert b["results"][method]["values"] == result["values"]
        assert b["results"][method].get("stderr") == result.get("stderr")
    if "game" in a:
        assert b["game"]["info"]["resumed"] > 0
        assert b["game"]["value_table"] == a["game"]["value_table"]
    else:
        assert b["results"]["monte_carlo"]["info"]["resumed"] is True


def test_sigterm_exits_like_ctrl_c_so_checkpoints_are_written():
    import signal

    from coopml.cli._root import coalition_progress

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited, coalition_progress(quiet=True):
        os.kill(os.getpid(), signal.SIGTERM)
    assert exited.value.code == 143 and signal.getsignal(signal.SIGTERM) is before
