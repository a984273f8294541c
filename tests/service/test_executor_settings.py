"""Where the service's rounds evaluate coalitions: executor, n_jobs, Ray address, timeout."""

from __future__ import annotations

import pytest

from coopml.service import Settings


def test_executor_settings_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COOPML_EXECUTOR", "ray")
    monkeypatch.setenv("COOPML_RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("COOPML_N_JOBS", "16")
    monkeypatch.setenv("COOPML_EXECUTOR_TIMEOUT", "900")
    s = Settings.from_env(tmp_path)
    assert (s.executor, s.ray_address, s.n_jobs, s.executor_timeout) == (
        "ray",
        "ray://head:10001",
        16,
        900.0,
    )
    monkeypatch.setenv("COOPML_EXECUTOR_TIMEOUT", "none")
    assert Settings.from_env(tmp_path).executor_timeout is None


def test_the_worker_builds_its_executor_from_the_settings(tmp_path):
    executor = Settings(tmp_path, executor="joblib", n_jobs=2, executor_timeout=30).build_executor()
    assert (executor.name, executor.n_workers, executor.timeout) == ("joblib", 2, 30.0)
    assert Settings(tmp_path).build_executor().name == "serial"


def test_bad_executor_settings_are_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="'ray_address' names a Ray cluster and needs executor"):
        Settings(tmp_path, ray_address="auto")
    with pytest.raises(ValueError, match="parameter 'executor_timeout' must be seconds > 0"):
        Settings(tmp_path, executor_timeout=0)
    with pytest.raises(ValueError, match="parameter 'n_jobs' must be an integer >= 1; got 0"):
        Settings(tmp_path, n_jobs=0)
    monkeypatch.setenv("COOPML_EXECUTOR_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="COOPML_EXECUTOR_TIMEOUT: not a number of seconds"):
        Settings.from_env(tmp_path)
