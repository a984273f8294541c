from __future__ import annotations

import json

from typer.testing import CliRunner

from coopml import __version__
from coopml.cli import app

runner = CliRunner()

CONFIG = """
[data]
dataset = "wine"
[partition]
method = "dirichlet"
n_parties = 3
alpha = 2.0
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
[valuation]
methods = ["shapley", "loo", "monte_carlo"]
max_evaluations = 200
"""


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "value" in result.stdout


def test_value_writes_json_and_png(tmp_path):
    (tmp_path / "job.toml").write_text(CONFIG)
    out, plot = tmp_path / "out" / "values.json", tmp_path / "out" / "values.png"
    result = runner.invoke(
        app, ["value", str(tmp_path / "job.toml"), "--out", str(out), "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    assert "party_0" in result.stdout and "shapley" in result.stdout
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"shapley", "loo", "monte_carlo"}
    shapley = report["results"]["shapley"]["values"]
    table = report["game"]["value_table"]
    assert abs(sum(shapley) - (table[-1] - table[0])) < 1e-9
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_value_reports_config_errors_without_traceback(tmp_path):
    (tmp_path / "job.toml").write_text(CONFIG.replace("n_parties = 3", "n_parties = -1"))
    result = runner.invoke(app, ["value", str(tmp_path / "job.toml")])
    assert result.exit_code == 2
    assert "partition.n_parties" in result.output and "Traceback" not in result.output


def test_config_errors_keep_their_square_brackets(tmp_path):
    # A job with [[parties]] but no [validation]: the message names both tables.
    (tmp_path / "job.toml").write_text('[[parties]]\nname = "a"\npath = "a.csv"\ntarget = "y"\n')
    result = runner.invoke(app, ["value", str(tmp_path / "job.toml")])
    assert result.exit_code == 2
    assert "[[parties]]" in result.output and "[validation]" in result.output


def test_file_errors_name_the_party_file_and_column(tmp_path):
    for name, columns in [("a", "x,z,y"), ("val", "x,z,y"), ("b", "X,z,y")]:
        (tmp_path / f"{name}.csv").write_text(columns + "\n1,2,0\n3,4,1\n")
    job = "".join(
        f'[[parties]]\nname = "{n}"\npath = "{n}.csv"\ntarget = "y"\n' for n in ("a", "b")
    )
    (tmp_path / "job.toml").write_text(job + '[validation]\npath = "val.csv"\ntarget = "y"\n')
    result = runner.invoke(app, ["value", str(tmp_path / "job.toml")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "parties[1] 'b' path file 'b.csv' has no column 'x'" in " ".join(result.output.split())
    assert "did you mean 'X'?" in result.output


def test_the_client_path_imports_no_heavy_library():
    # `coopml client ...` must start fast: neither scikit-learn nor the service's server
    # stack is imported (measured: about 0.25 s for `coopml client --help`).
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from coopml.cli import main\n"
        "sys.argv = ['coopml', 'client', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sklearn', 'scipy', 'pandas', 'fastapi', 'sqlalchemy') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage: coopml client" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout[-300:]
