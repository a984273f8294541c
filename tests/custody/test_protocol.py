"""Parties custody in process: payouts equal operator custody's; bad messages fail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeRegressor
from tests.custody._grid import assert_same_settlement, both_custodies, split_market

from coopml.custody import Agent, AgentError, LocalTransport, run_custody_market
from coopml.data import Party, load_dataset


def _market(dataset: str, multi: bool, n_train: int, features: int = 0) -> tuple[Any, Any]:
    ds = load_dataset(dataset)
    return split_market(ds.X[:, :features] if features else ds.X, ds.y, multi, n_train)


CASES = [
    ("breast_cancer", GaussianNB(), "accuracy", 45, 0),
    ("diabetes", Ridge(alpha=1.0), "clipped_r2", 60, 0),
    ("iris", LogisticRegression(tol=1e-10, max_iter=10_000), "accuracy", 30, 0),
    ("breast_cancer", LogisticRegression(tol=1e-10, max_iter=10_000), "accuracy", 45, 4),
    ("wine", LinearDiscriminantAnalysis(), "accuracy", 60, 4),
]


@pytest.mark.parametrize("multi", [False, True], ids=["single", "per_party"])
@pytest.mark.parametrize(("dataset", "learner", "scorer", "n_train", "features"), CASES)
def test_payouts_equal_operator_custody(
    dataset: str, learner: Any, scorer: str, n_train: int, features: int, multi: bool
) -> None:
    parties, validation = _market(dataset, multi, n_train, features)
    reference, custody, transport = both_custodies(parties, validation, learner, scorer, multi)
    payouts = np.array([p.payout for p in reference.settlement.parties])
    assert np.abs(payouts).max() > 1e-3  # a market where data is worth something
    assert_same_settlement(reference.settlement, custody.settlement, atol=1e-6)
    for a, b in zip(custody.games, reference.games, strict=True):
        np.testing.assert_allclose(a.table, b.table, atol=1e-9)
    X_val = validation[0]
    for name, model in custody.models.items():  # the released models predict alike
        np.testing.assert_allclose(model.predict(X_val), reference.models[name].predict(X_val))
    assert custody.settlement.provenance["custody"] == "parties"
    # the validation set's owner returns scores only: 8 coalitions, 8 float64
    owner = "buyer" if not multi else parties[0].name
    scores = [e for e in transport.agents[owner].log if e["kind"] == "score"]
    assert scores and all(e["disclosed"] == {"scores": [8]} for e in scores)


def test_learners_that_need_rows_are_refused() -> None:
    parties, _ = _market("iris", False, 30)
    transport = LocalTransport([Agent(p) for p in parties])
    names = [p.name for p in parties]
    with pytest.raises(ValueError, match="k-nearest neighbours predict from the training rows"):
        run_custody_market(transport, names, KNeighborsClassifier(), "party_0")
    with pytest.raises(ValueError, match="splits are thresholds"):
        run_custody_market(transport, names, DecisionTreeRegressor(), "party_0")
    with pytest.raises(ValueError, match=r"does not reproduce.*L2 ``LogisticRegression``"):
        run_custody_market(
            transport, names, LogisticRegression(penalty="l1", solver="liblinear"), "party_0"
        )
    assert all(not a.log for a in transport.agents.values())  # nothing was asked


class Tampering(Agent):
    """An agent that corrupts its reply to one kind of request."""

    def __init__(self, party: Party, kind: str, corrupt: Any) -> None:
        super().__init__(party)
        self.kind, self.corrupt = kind, corrupt

    def handle(self, request: Any) -> dict[str, Any]:
        reply = super().handle(request)
        if request["kind"] == self.kind:
            self.corrupt(reply)
        return reply


def _nan_sums(r: dict[str, Any]) -> None:
    r["sums"] = r["sums"] * np.nan


def _short_sums(r: dict[str, Any]) -> None:
    r["sums"] = r["sums"][:-1]


def _more_counts(r: dict[str, Any]) -> None:
    r["counts"] = r["counts"] + 1.0


def _negative_squares(r: dict[str, Any]) -> None:
    r["squares"] = r["squares"] * 0.5


def _indefinite_gram(r: dict[str, Any]) -> None:
    r["gram"] = -r["gram"]


def _nan_hessian(r: dict[str, Any]) -> None:
    if "hess" in r:
        r["hess"] = r["hess"] * np.nan


def _bad_label_counts(r: dict[str, Any]) -> None:
    r["label_counts"] = r["label_counts"] * 2


@pytest.mark.parametrize(
    ("learner", "kind", "corrupt", "message"),
    [
        (GaussianNB(), "statistics", _nan_sums, "non-finite"),
        (GaussianNB(), "statistics", _short_sums, "of shape"),
        (GaussianNB(), "statistics", _more_counts, "do not match the counts"),
        (GaussianNB(), "statistics", _negative_squares, "sums of squares smaller"),
        (GaussianNB(), "moments", _bad_label_counts, "adding up to"),
        (Ridge(), "statistics", _indefinite_gram, "not positive semi-definite"),
        (LogisticRegression(), "newton", _nan_hessian, "non-finite"),
    ],
)
def test_a_bad_message_fails_the_round_naming_the_party(
    learner: Any, kind: str, corrupt: Any, message: str
) -> None:
    dataset = "diabetes" if isinstance(learner, Ridge) else "iris"
    scorer = "clipped_r2" if isinstance(learner, Ridge) else "accuracy"
    parties, (X_val, y_val) = _market(dataset, False, 45)
    agents = [Agent(parties[0]), Tampering(parties[1], kind, corrupt), Agent(parties[2])]
    agents.append(Agent(Party("buyer", X_val[:1], y_val[:1], X_val, y_val)))
    transport = LocalTransport(agents)
    with pytest.raises(AgentError, match=message) as info:
        run_custody_market(transport, [p.name for p in parties], learner, "buyer", scorer=scorer)
    assert info.value.party == "party_1"
    assert "not settled" in str(info.value)
    assert not transport.agents["buyer"].log  # no model was scored, nothing settled


def _wider(r: dict[str, Any]) -> None:
    r["sum_x"] = np.append(r["sum_x"], 1.0)


def test_a_party_announcing_other_features_is_named() -> None:
    parties, _ = _market("iris", False, 45)
    agents = [Agent(parties[0]), Agent(parties[1]), Tampering(parties[2], "moments", _wider)]
    transport = LocalTransport(agents)
    with pytest.raises(AgentError, match="'party_2': sent 'sum_x' of shape"):
        run_custody_market(transport, [p.name for p in parties], GaussianNB(), "party_0")


def test_an_agent_that_fails_is_named() -> None:
    parties, _ = _market("iris", True, 30)
    transport = LocalTransport([Agent(p) for p in parties[:2]])
    with pytest.raises(AgentError, match="'party_2': has no agent connected"):
        run_custody_market(transport, [p.name for p in parties], GaussianNB())
