from __future__ import annotations

import pytest
from sklearn.naive_bayes import GaussianNB

from coopml.data import load_dataset, make_parties, train_validation_split


@pytest.fixture(scope="module")
def cancer():
    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    parties = make_parties(X, y, 4, "size_skew", sizes=[0.4, 0.3, 0.2, 0.1], random_state=0)
    return parties, (X_val, y_val)


@pytest.fixture
def nb():
    return GaussianNB()
