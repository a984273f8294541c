"""coopml against a Ray cluster it did not start: ``ray start --head`` in a subprocess
(its own temp dir, so no other process on this machine joins it), reached by address."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from coopml.cli import app  # noqa: E402
from coopml.coalitions.ray_executor import RayExecutor  # noqa: E402

JOB = """
[data]
dataset = "wine"
[partition]
method = "dirichlet"
n_parties = 4
alpha = 2.0
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
[valuation]
methods = ["shapley", "monte_carlo"]
max_evaluations = 40
"""


@pytest.fixture(scope="module")
def cluster():
    """The address of a one-node cluster with 2 CPUs, stopped afterwards."""
    if ray.is_initialized():
        ray.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: socket paths
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--num-cpus=2",
        "--node-ip-address=127.0.0.1",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        head.terminate()
        head.wait(60)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow  # starting a cluster takes 10-30 s
def test_value_job_on_a_cluster_named_by_address(cluster, tmp_path):
    """``--ray-address`` with ``--n-jobs``: no num_cpus reaches ray.init (Ray refuses it
    for an existing cluster), at most n_jobs tasks run at once, and the values equal the
    serial run's."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    runner = CliRunner()
    serial = runner.invoke(app, ["value", str(job), "--out", str(tmp_path / "serial.json")])
    assert serial.exit_code == 0, serial.output
    deadline = time.monotonic() + 60
    while True:  # the head needs a few seconds before it accepts drivers
        args = ["--ray-address", cluster, "--n-jobs", "1", "--out", str(tmp_path / "ray.json")]
        on_ray = runner.invoke(app, ["value", str(job), *args])
        if on_ray.exit_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert on_ray.exit_code == 0, on_ray.output
    assert ray.cluster_resources()["CPU"] == 2
    expected = json.loads((tmp_path / "serial.json").read_text())["results"]
    got = json.loads((tmp_path / "ray.json").read_text())["results"]
    for method in ("shapley", "monte_carlo"):
        np.testing.assert_array_equal(got[method]["values"], expected[method]["values"])
    # an executor for another cluster, in a process connected to this one, is refused
    with pytest.raises(ValueError, match=r"already connected to '127\.0\.0\.1"):
        RayExecutor(address="127.0.0.1:1")
