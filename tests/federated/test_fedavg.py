"""FedAvg really learns, aggregates by sample counts and is deterministic given a seed."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.federated.fedavg import (
    LogisticModel,
    MLPModel,
    aggregate,
    fedavg,
    make_model,
    sample_clients,
)
from coopml.federated.synthetic import federated_split


@pytest.fixture(scope="module")
def digits():
    return federated_split("digits", 5, alpha=0.5, random_state=0)


def test_aggregate_is_the_sample_weighted_mean():
    a = [np.array([[1.0, 2.0]]), np.array([0.0])]
    b = [np.array([[4.0, 5.0]]), np.array([3.0])]
    out = aggregate([a, b], [1, 2])
    np.testing.assert_allclose(out[0], [[3.0, 4.0]])
    np.testing.assert_allclose(out[1], [2.0])
    with pytest.raises(ValueError, match="sample count"):
        aggregate([a, b], [0, 0])


def test_client_sampling_draws_the_requested_share():
    rng = np.random.default_rng(0)
    chosen = sample_clients(10, 0.3, rng)
    assert chosen.size == 3 and np.unique(chosen).size == 3
    assert sample_clients(10, 0.01, rng).size == 1


def test_logistic_fedavg_learns_digits_well_above_chance(digits):
    res = fedavg(
        LogisticModel(64, 10, local_epochs=2),
        digits.clients,
        (digits.X_val, digits.y_val),
        rounds=8,
        client_fraction=0.6,
        random_state=0,
    )
    assert res.final_accuracy > 0.8  # chance is 0.1
    assert res.accuracy_per_round[-1] > res.accuracy_per_round[0] - 0.05
    assert all(p.size == 3 for p in res.participants)
    again = fedavg(
        LogisticModel(64, 10, local_epochs=2),
        digits.clients,
        (digits.X_val, digits.y_val),
        rounds=8,
        client_fraction=0.6,
        random_state=0,
    )
    for x, y in zip(res.params, again.params, strict=True):
        np.testing.assert_array_equal(x, y)


def test_torch_mlp_fedavg_learns_and_is_deterministic(digits):
    pytest.importorskip("torch")
    model = MLPModel(64, 10, hidden=32, learning_rate=0.1)
    runs = [
        fedavg(model, digits.clients, (digits.X_val, digits.y_val), rounds=6, random_state=1)
        for _ in range(2)
    ]
    assert runs[0].final_accuracy > 0.75
    for x, y in zip(runs[0].params, runs[1].params, strict=True):
        np.testing.assert_array_equal(x, y)


def test_make_model_rejects_unknown_kinds():
    assert isinstance(make_model("mlp", 4, 3), MLPModel)
    with pytest.raises(ValueError, match="'kind'"):
        make_model("svm", 4, 3)
