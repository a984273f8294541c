"""Regression markets in parties custody: linear regression and ridge, valued with
clipped R² on the validation owner's own rows, settle as operator custody does; the
operator keeps each party's customised model, equal to operator custody's."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.metrics import r2_score
from tests.custody._grid import assert_same_settlement, both_custodies, split_market

from coopml.custody import Agent
from coopml.custody.market import custom_models, released_models
from coopml.custody.valuation import model_from_state, model_state
from coopml.data import Party, load_dataset
from coopml.service.learners import scorer_for

service_clipped_r2 = scorer_for("regression")


def _market(multi: bool, n_train: int = 90) -> tuple[list[Party], Any]:
    ds = load_dataset("diabetes")
    return split_market(ds.X, ds.y, multi, n_train, random_state=1)


LEARNERS = [
    pytest.param(LinearRegression(), id="linear"),
    pytest.param(Ridge(alpha=0.01), id="ridge"),
    pytest.param(Ridge(alpha=1.0), id="ridge-alpha1"),
]


@pytest.mark.parametrize("multi", [False, True], ids=["single", "per_party"])
@pytest.mark.parametrize("learner", LEARNERS)
def test_regression_payouts_and_models_equal_operator_custody(learner: Any, multi: bool) -> None:
    parties, (X_val, y_val) = _market(multi)
    # operator custody exactly as the service runs it: its own clipped R² scorer
    reference, custody, transport = both_custodies(
        parties, (X_val, y_val), learner, "clipped_r2", multi, service_clipped_r2
    )
    payouts = np.array([p.payout for p in reference.settlement.parties])
    assert np.abs(payouts).max() > 1e-3  # a market where data is worth something
    assert_same_settlement(reference.settlement, custody.settlement, atol=1e-6)
    # the value tables: clipped R² of every coalition, computed independently here for
    # the grand coalition from the pooled rows (scikit-learn, not the custody code)
    full = (1 << len(parties)) - 1
    if not multi:
        pooled = type(learner)(**learner.get_params()).fit(
            np.vstack([p.X for p in parties]), np.concatenate([p.y for p in parties])
        )
        expected = max(0.0, r2_score(y_val, pooled.predict(X_val)))
        assert custody.games[0].table[full] == pytest.approx(expected, abs=1e-9)
    # each party's customised model: same members, same predictions, also after the
    # plain-data round trip the ServerApp's result takes (JSON)
    plain = json.loads(json.dumps(released_models(custody)))
    kept = custom_models(plain)
    for p in parties:
        ours, theirs = kept[p.name], reference.models[p.name]
        assert set(ours.members) == set(theirs.members)
        np.testing.assert_allclose(
            ours.predict(X_val), theirs.predict(X_val), rtol=1e-8, atol=1e-8 * np.abs(y_val).max()
        )
    # the validation owner computed clipped R² on its own rows: it answered one score
    # request per table and disclosed scores only
    owner = "buyer" if not multi else "party_0"
    scored = [e for e in transport.agents[owner].log if e["kind"] == "score"]
    assert scored and scored[0]["disclosed"] == {"scores": [1 << len(parties)]}


def test_clipped_r2_of_the_agents_is_the_services() -> None:
    """The agents' scorer and the service's gain are the same function of the rows."""
    from coopml.custody.learners import build_scorer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(size=40)
    good = LinearRegression().fit(X, y)
    bad = DummyRegressor(strategy="constant", constant=50.0).fit(X, y)  # R² < 0 -> 0
    scorer = build_scorer("clipped_r2", LinearRegression())
    for model in (good, bad):
        assert scorer(model, X, y) == service_clipped_r2(model, X, y)
    assert scorer(bad, X, y) == 0.0
    assert scorer(good, X, y) == pytest.approx(r2_score(y, good.predict(X)), abs=1e-15)


def test_model_state_refuses_other_types_and_bad_shapes() -> None:
    from sklearn.neighbors import KNeighborsRegressor

    X, y = [[0.0], [1.0], [2.0]], [0.0, 1.0, 2.5]
    with pytest.raises(ValueError, match="KNeighborsRegressor"):
        model_state(KNeighborsRegressor(n_neighbors=1).fit(X, y))
    state = model_state(Ridge().fit(X, y))
    state["fitted"]["coef_"]["shape"] = [2]
    with pytest.raises(ValueError, match=r"coef_.*shape \(2,\)"):
        model_from_state(state)
    with pytest.raises(ValueError, match="model name must be one of"):
        model_from_state({"name": "os.system", "params": {}, "fitted": {}})


def test_the_flower_codec_keeps_scalar_statistics_scalar() -> None:
    """Linear models' statistics hold 0-d arrays (row count, centred target sum): they
    must cross Flower with their shape, or the operator's checks refuse them."""
    pytest.importorskip("flwr")
    from coopml.custody.flower import decode, encode

    X, y = np.array([[0.0, 1.0], [2.0, 0.5], [1.0, 3.0]]), np.array([1.0, 2.0, 4.0])
    reply = Agent(Party("alice", X, y)).handle(
        {
            "kind": "statistics",
            "learner": {"name": "LinearRegression", "params": {}},
            "center": {"x": [1.0, 1.5], "y": 7 / 3},
        }
    )
    back = decode(encode(reply))
    assert {k: np.shape(v) for k, v in back.items()} == {k: np.shape(v) for k, v in reply.items()}
    assert back["n"].shape == () and float(back["n"]) == 3.0
