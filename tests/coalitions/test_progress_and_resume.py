"""Live progress and resume after an interrupt: exact tables and the sampling estimators."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from coopml.coalitions import CoalitionGame, _checkpoint
from coopml.coalitions.monte_carlo import monte_carlo_shapley
from coopml.coalitions.msr_banzhaf import msr_banzhaf
from coopml.coalitions.stopping import (
    MaxEvaluations,
    MaxPermutations,
    RankStable,
    StandardErrorBelow,
)
from coopml.coalitions.stratified import stratified_shapley
from coopml.coalitions.svarm import svarm_shapley
from coopml.data import Party
from coopml.learning import CoalitionUtility


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, simulated."""


class FlakyUtility(CoalitionUtility):
    """A CoalitionUtility that is interrupted after ``fail_after`` blocks."""

    fail_after: int | None = None
    calls = 0

    def evaluate_block(self, masks):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise Interrupted
        return super().evaluate_block(masks)


class GameUtility:
    """A cheap non-linear game over bitmasks, with a fingerprint; interrupted (or
    crashing) after ``fail_after`` evaluated coalitions."""

    def __init__(self, n: int, fail_after: int | None = None, error: type = Interrupted):
        self.n_players, self.names = n, tuple(f"p{i}" for i in range(n))
        self.weights = np.random.default_rng(1).random(n)
        self.fail_after, self.error, self.evaluated = fail_after, error, 0

    def fingerprint(self) -> str:
        return f"game-{self.n_players}"

    def evaluate_masks(self, masks):
        masks = np.asarray(masks, dtype=np.int64)
        self.evaluated += masks.size
        if self.fail_after is not None and self.evaluated > self.fail_after:
            raise self.error("simulated interrupt")
        members = (masks[:, None] >> np.arange(self.n_players)) & 1
        return np.sqrt(members @ self.weights) + 0.1 * (members.sum(axis=1) % 3)


def _utility(split, m: int, cls: type = CoalitionUtility, **kwargs) -> CoalitionUtility:
    X, y, X_val, y_val = split
    parties = [Party(f"p{i}", X[i::m], y[i::m]) for i in range(m)]
    return cls(LogisticRegression(**kwargs), parties, (X_val, y_val), fast=False)


# ---------------------------------------------------------------------------- progress
def test_exact_progress_counts_blocks_up_to_every_coalition(breast_cancer_split):
    calls: list[tuple[int, int]] = []
    utility = _utility(breast_cancer_split, 6)
    CoalitionGame.from_utility(utility, progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    assert {t for _, t in calls} == {64}
    assert done == sorted(set(done)) and done[-1] == 64
    assert len(calls) >= 16  # reported as blocks finish, not in a few big steps


@pytest.mark.slow  # starts a local Ray instance
def test_exact_progress_with_the_ray_executor(breast_cancer_split):
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        calls: list[tuple[int, int]] = []
        utility = _utility(breast_cancer_split, 5)
        game = CoalitionGame.from_utility(
            utility, "ray", progress=lambda d, t: calls.append((d, t))
        )
    finally:
        if started:
            ray.shutdown()
    done = [d for d, _ in calls]
    assert {t for _, t in calls} == {32} and done == sorted(set(done)) and done[-1] == 32
    assert len(calls) >= 8
    np.testing.assert_array_equal(game.table, CoalitionGame.from_utility(utility).table)


def test_monte_carlo_reports_evaluations_against_the_budget():
    calls: list[tuple[int, int]] = []
    monte_carlo_shapley(
        GameUtility(10),
        stopping=MaxEvaluations(300),
        batch_size=2,
        random_state=0,
        progress=lambda d, t: calls.append((d, t)),
    )
    done = [d for d, _ in calls]
    assert len(calls) > 5 and {t for _, t in calls} == {300}
    assert done == sorted(done) and done[-1] == 300


def test_progress_names_the_budget_and_the_stopping_rule_state():
    seen: list[tuple[int, int, str, str]] = []

    def progress(done: int, total: int, *, unit: str = "", detail: str = "") -> None:
        seen.append((done, total, unit, detail))

    rule = MaxPermutations(40) | StandardErrorBelow(1e-9)
    monte_carlo_shapley(
        GameUtility(5), stopping=rule, batch_size=4, random_state=0, progress=progress
    )
    assert [s[0] for s in seen] == list(range(8, 41, 8))
    assert {s[1:3] for s in seen} == {(40, "permutations")}
    assert "largest standard error" in seen[-1][3] and "target 1e-09" in seen[-1][3]


# ---------------------------------------------------------------------------- exact resume
def test_interrupted_exact_table_resumes_bit_identical(breast_cancer_split, tmp_path):
    reference = CoalitionGame.from_utility(_utility(breast_cancer_split, 6))
    flaky = _utility(breast_cancer_split, 6, FlakyUtility)
    flaky.fail_after = 5
    with pytest.raises(Interrupted):
        CoalitionGame.from_utility(flaky, cache_dir=tmp_path)
    partial = tmp_path / f"{flaky.fingerprint()}.partial.npz"
    assert partial.exists() and not (tmp_path / f"{flaky.fingerprint()}.npy").exists()

    calls: list[tuple[int, int]] = []
    again = _utility(breast_cancer_split, 6, FlakyUtility)
    resumed = CoalitionGame.from_utility(
        again, cache_dir=tmp_path, progress=lambda d, t: calls.append((d, t))
    )
    np.testing.assert_array_equal(resumed.table, reference.table)
    assert resumed.info["resumed"] == calls[0][0] > 0  # starts where it stopped
    assert resumed.info["n_evaluations"] == 64 - resumed.info["resumed"]
    assert not partial.exists() and (tmp_path / f"{flaky.fingerprint()}.npy").exists()


def test_a_changed_job_never_resumes_a_stale_table(breast_cancer_split, tmp_path):
    flaky = _utility(breast_cancer_split, 5, FlakyUtility)
    flaky.fail_after = 3
    with pytest.raises(Interrupted):
        CoalitionGame.from_utility(flaky, cache_dir=tmp_path)
    other = _utility(breast_cancer_split, 5, C=0.1)  # another learner: another fingerprint
    game = CoalitionGame.from_utility(other, cache_dir=tmp_path)
    assert "resumed" not in game.info and game.info["n_evaluations"] == 32
    expected = CoalitionGame.from_utility(_utility(breast_cancer_split, 5, C=0.1))
    np.testing.assert_array_equal(game.table, expected.table)


def test_substituted_failures_survive_the_resume(breast_cancer_split, tmp_path):
    X, y, X_val, y_val = breast_cancer_split
    parties = [Party(f"b{i}", X[y == 1][i::3], y[y == 1][i::3]) for i in range(3)]
    parties += [Party(f"m{i}", X[y == 0][i::2], y[y == 0][i::2]) for i in range(2)]
    options = {"single_class": "fit", "on_error": 0.0, "fast": False}
    reference = CoalitionGame.from_utility(
        CoalitionUtility(LogisticRegression(), parties, (X_val, y_val), **options)
    )
    flaky = FlakyUtility(LogisticRegression(), parties, (X_val, y_val), **options)
    flaky.fail_after = 6
    with pytest.raises(Interrupted):
        CoalitionGame.from_utility(flaky, cache_dir=tmp_path)
    again = CoalitionUtility(LogisticRegression(), parties, (X_val, y_val), **options)
    resumed = CoalitionGame.from_utility(again, cache_dir=tmp_path)
    np.testing.assert_array_equal(resumed.table, reference.table)
    assert resumed.info["failures"] == reference.info["failures"] != []
    assert [f.mask for f in again.failures] == [f["mask"] for f in reference.info["failures"]]


# ---------------------------------------------------------------------------- sampling resume
ESTIMATORS = {
    "monte_carlo": (monte_carlo_shapley, MaxEvaluations(700), 2),
    "stratified": (stratified_shapley, MaxEvaluations(700), 64),
    "svarm": (svarm_shapley, MaxEvaluations(700), 32),
    "msr": (msr_banzhaf, MaxPermutations(3000), 64),
}


@pytest.mark.parametrize("error", [Interrupted, RuntimeError])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_interrupted_estimator_resumes_with_the_same_random_streams(name, error, tmp_path):
    estimator, rule, batch = ESTIMATORS[name]
    options = {"stopping": rule, "batch_size": batch, "random_state": 7}
    reference = estimator(GameUtility(12), **options)

    with pytest.raises(error):
        estimator(GameUtility(12, fail_after=350, error=error), cache_dir=tmp_path, **options)
    assert len(list(tmp_path.glob("*.partial.npz"))) == 1

    utility = GameUtility(12)
    resumed = estimator(utility, cache_dir=tmp_path, **options)
    assert resumed.info.pop("resumed") is True
    assert 0 < utility.evaluated < reference.n_evaluations  # only the rest was evaluated
    np.testing.assert_array_equal(resumed.values, reference.values)
    np.testing.assert_array_equal(resumed.stderr, reference.stderr)
    assert resumed.n_evaluations == reference.n_evaluations
    assert resumed.info == reference.info and resumed.converged == reference.converged
    assert list(tmp_path.iterdir()) == []  # a finished run removes its checkpoint


def test_a_resumed_stopping_rule_keeps_its_count(tmp_path):
    # RankStable(40) fires after 67 batches; Ctrl-C (here: in the progress callback) at
    # batch 60 leaves a streak of stable checks that the resumed run must continue.
    options = {"stopping": MaxPermutations(1000) | RankStable(40), "batch_size": 1}
    reference = monte_carlo_shapley(GameUtility(6), random_state=7, **options)
    assert reference.info["stopped_by"] == "RankStable(40)"

    def interrupt(done: int, total: int) -> None:
        if done >= 120:
            raise Interrupted

    with pytest.raises(Interrupted):
        monte_carlo_shapley(
            GameUtility(6), random_state=7, cache_dir=tmp_path, progress=interrupt, **options
        )
    resumed = monte_carlo_shapley(GameUtility(6), random_state=7, cache_dir=tmp_path, **options)
    assert resumed.info.pop("resumed") is True
    assert resumed.info == reference.info
    np.testing.assert_array_equal(resumed.values, reference.values)


def test_checkpoints_are_written_while_running(tmp_path, monkeypatch):
    monkeypatch.setattr(_checkpoint, "CHECKPOINT_SECONDS", 0.0)
    seen: list[bool] = []

    class Watching(GameUtility):
        def evaluate_masks(self, masks):
            seen.append(any(tmp_path.glob("*.partial.npz")))
            return super().evaluate_masks(masks)

    monte_carlo_shapley(
        Watching(8), stopping=MaxEvaluations(200), batch_size=1, random_state=0, cache_dir=tmp_path
    )
    assert not seen[0] and all(seen[2:])  # saved at batch boundaries, not only on errors
    assert list(tmp_path.iterdir()) == []


def test_the_checkpoint_is_keyed_by_seed_and_parameters(tmp_path):
    options = {"stopping": MaxEvaluations(500), "batch_size": 2}
    with pytest.raises(Interrupted):
        monte_carlo_shapley(GameUtility(10, 200), cache_dir=tmp_path, random_state=1, **options)
    for changed in [{"random_state": 2}, {"random_state": 1, "antithetic": False}]:
        result = monte_carlo_shapley(GameUtility(10), cache_dir=tmp_path, **options, **changed)
        assert result.info["resumed"] is False
        expected = monte_carlo_shapley(GameUtility(10), **options, **changed)
        np.testing.assert_array_equal(result.values, expected.values)
    assert len(list(tmp_path.glob("*.partial.npz"))) == 1  # the first job's, still resumable


def test_cache_dir_needs_a_fingerprint_and_a_seed(tmp_path):
    def glove(s: frozenset[int]) -> float:
        return float(min(len(s & {0}), len(s & {1, 2})))

    with pytest.raises(TypeError, match="'cache_dir' needs a utility with a fingerprint"):
        monte_carlo_shapley(glove, 3, random_state=0, cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="random_state=None"):
        r = monte_carlo_shapley(
            GameUtility(4), stopping=MaxPermutations(10), random_state=None, cache_dir=tmp_path
        )
    assert "resumed" not in r.info and list(tmp_path.iterdir()) == []
