"""Dirichlet splits, per-organisation generators and the measured quality factor kappa."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.federated.synthetic import (
    GaussianMixtureGenerator,
    federated_split,
    fit_generators,
    label_distribution,
    measure_quality,
    skew,
)


def test_split_measures_skew_and_covers_the_training_rows():
    fd = federated_split("digits", 6, alpha=0.2, random_state=1)
    X, y = fd.pooled()
    assert X.shape[0] == y.size == int(fd.n.sum())
    for (_, yi), p, h in zip(fd.clients, fd.label_distributions, fd.h0, strict=True):
        np.testing.assert_allclose(p, label_distribution(yi, 10))
        assert h == pytest.approx(skew(p, fd.reference))
    iid = federated_split("digits", 6, alpha=1000.0, random_state=1)
    assert fd.h0.mean() > iid.h0.mean() + 0.2


def test_each_generator_only_knows_its_own_classes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.repeat([0, 2], 20)
    g = GaussianMixtureGenerator().fit(X, y, 3)
    np.testing.assert_array_equal(g.class_counts(), [20, 0, 20])
    with pytest.raises(KeyError):
        g.sample(1, 5, rng)


def test_pool_generates_reference_labels_from_own_data_generators():
    fd = federated_split("digits", 5, alpha=0.3, random_state=0)
    pool = fit_generators(fd, "gmm")
    Xs, ys = pool.generate(200, fd.reference, np.random.default_rng(0))
    assert Xs.shape == (200, 64)
    np.testing.assert_array_equal(np.bincount(ys, minlength=10), np.full(10, 20))


def test_gmm_quality_is_measured():
    fd = federated_split("digits", 5, alpha=0.5, random_state=0)
    q = measure_quality(fit_generators(fd, "gmm"), fd)
    assert 0.05 <= q.kappa <= 1.0
    assert q.accuracy_synthetic > 0.5  # far above chance (0.1): the generators learned
    assert q.kappa == pytest.approx(min(1.0, q.accuracy_synthetic / q.accuracy_real))


def test_vae_quality_is_measured():
    pytest.importorskip("torch")
    fd = federated_split("wine", 3, alpha=1.0, min_size=5, random_state=0)
    pool = fit_generators(fd, "vae", epochs=40)
    q = measure_quality(pool, fd)
    assert 0.05 <= q.kappa <= 1.0
    assert q.accuracy_synthetic > 0.5  # three classes: chance is 1/3
