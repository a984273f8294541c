"""Large single-task markets in parties custody: the rule's estimator samples
coalitions, each block is fit from the agents' statistics (or by federated Newton
steps) and scored by the validator. The same seed gives operator custody's sample, so
shares, payouts and standard errors equal operator custody's; the record verifies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tests.custody._grid import assert_same_settlement, both_custodies

from coopml.coalitions.stopping import MaxEvaluations
from coopml.custody import Agent, LocalTransport, run_custody_market
from coopml.custody.statistics import collect_moments, statistics_learner
from coopml.custody.valuation import CoalitionGains, coalition_models, score_coalitions
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.learning.fast import FastGaussianNB


def _parties(dataset: str, n: int, features: int = 5) -> tuple[list[Party], Any]:
    ds = load_dataset(dataset)
    X, X_val, y, y_val = train_validation_split(ds.X[:, :features], ds.y, random_state=0)
    scale = StandardScaler().fit(X)
    return make_parties(scale.transform(X), y, n, random_state=0), (scale.transform(X_val), y_val)


CASES = [
    pytest.param("breast_cancer", GaussianNB(), "accuracy", "ohrimenko", id="nb"),
    pytest.param("breast_cancer", LogisticRegression(), "accuracy", "shapley", id="logistic"),
    pytest.param(  # operator custody fits a pipeline with scikit-learn's lbfgs: a tight
        "breast_cancer",  # tol, or its default stops early enough to flip a prediction
        make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=1000)),
        "accuracy",
        "ohrimenko",
        id="standardised-logistic",
    ),
    pytest.param("diabetes", Ridge(alpha=1.0), "clipped_r2", "banzhaf", id="ridge-banzhaf"),
]


@pytest.mark.parametrize(("dataset", "learner", "scorer", "rule"), CASES)
def test_sampled_shares_equal_operator_custody(
    dataset: str, learner: Any, scorer: str, rule: str
) -> None:
    parties, validation = _parties(dataset, 16)
    options = {"rule": rule, "stopping": MaxEvaluations(300), "random_state": 3}
    reference, custody, _ = both_custodies(parties, validation, learner, scorer, False, **options)
    ref, got = reference.settlement, custody.settlement
    assert got.valuation["method"] == "monte_carlo" and got.valuation == ref.valuation
    assert_same_settlement(ref, got, atol=1e-9)
    np.testing.assert_allclose(
        [p.payout_stderr for p in got.parties], [p.payout_stderr for p in ref.parties], atol=1e-9
    )
    assert max(p.payout_stderr for p in got.parties) > 0  # an estimate says so
    assert got.provenance["custody"] == "parties"
    assert 0 < got.provenance["protocol"]["fitted_coalitions"] <= 300
    # the released model is the grand coalition's, as in operator custody
    X_val = validation[0]
    for name, model in custody.models.items():
        expected = reference.models[name].estimator.predict(X_val)
        np.testing.assert_allclose(model.estimator.predict(X_val), expected, atol=1e-6)


def test_monte_carlo_on_a_small_market_and_auto_above_the_exact_limit() -> None:
    parties, validation = _parties("breast_cancer", 4)
    options = {"valuation": "monte_carlo", "stopping": MaxEvaluations(12)}
    reference, custody, _ = both_custodies(
        parties, validation, GaussianNB(), "accuracy", False, **options
    )
    assert custody.settlement.valuation["method"] == "monte_carlo"
    assert_same_settlement(reference.settlement, custody.settlement, atol=1e-9)
    # 13 parties: above the multi-task limit, still exact under "auto" (up to 14), as in
    # operator custody
    parties, validation = _parties("breast_cancer", 13, features=3)
    reference, custody, _ = both_custodies(parties, validation, GaussianNB(), "accuracy", False)
    assert custody.settlement.valuation.get("method", "exact") == "exact"
    assert_same_settlement(reference.settlement, custody.settlement, atol=1e-9)


def _own_tasks(dataset: str, n: int) -> tuple[list[Party], Any]:
    """``n`` parties, each with its own slice of the validation rows as its task."""
    parties, (X_val, y_val) = _parties(dataset, n, features=4)
    k = len(y_val) // n
    own = [slice(i * k, (i + 1) * k) for i in range(n)]
    return [Party(p.name, p.X, p.y, X_val[own[i]], y_val[own[i]]) for i, p in enumerate(parties)], (
        X_val,
        y_val,
    )


@pytest.mark.parametrize(
    ("learner", "n", "options"),
    [
        pytest.param(
            GaussianNB(),
            16,
            {"valuation": "monte_carlo", "stopping": MaxEvaluations(200)},
            id="nb-16-greedy-sampled",
        ),
        pytest.param(GaussianNB(), 13, {}, id="nb-13-greedy-exact"),
        pytest.param(
            make_pipeline(StandardScaler(), GaussianNB()), 14, {}, id="standardised-nb-14"
        ),
        pytest.param(
            LogisticRegression(),
            5,
            {"valuation": "monte_carlo", "stopping": MaxEvaluations(20)},
            id="logistic-5-monte-carlo",
        ),
    ],
)
def test_multi_task_markets_choose_and_value_as_operator_custody(
    learner: Any, n: int, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each party's training set chosen exhaustively (up to 12 parties) or greedily
    (above), then its shares exact or sampled over that set: the same members, payouts
    and records as operator custody."""
    parties, validation = _own_tasks("breast_cancer", n)
    exchanges: list[set[str]] = []
    real = LocalTransport.exchange

    def counted(self: LocalTransport, requests: dict[str, Any]) -> Any:
        exchanges.append({r["kind"] for r in requests.values()})
        return real(self, requests)

    monkeypatch.setattr(LocalTransport, "exchange", counted)
    reference, custody, _ = both_custodies(
        parties, validation, learner, "accuracy", True, random_state=2, **options
    )
    if options.get("valuation") != "monte_carlo":  # the parties' greedy steps together:
        # one score round trip per step (at most n), the parties alone, the tables
        assert sum("score" in kinds for kinds in exchanges) <= n + 2
    ref, got = reference.settlement, custody.settlement
    assert_same_settlement(ref, got, atol=1e-9)
    assert [t.members for t in got.tasks] == [t.members for t in ref.tasks]
    assert [t.selection_evaluations for t in got.tasks] == [
        t.selection_evaluations for t in ref.tasks
    ]
    assert got.valuation == ref.valuation
    assert len({t.members for t in got.tasks}) > 1  # the parties chose differently
    for name, model in custody.models.items():
        assert model.members == reference.models[name].members
        assert model.validation_gain == pytest.approx(reference.models[name].validation_gain)


def test_blocks_of_coalitions_are_the_full_tables_entries() -> None:
    """The fast path (models of the coalitions asked for, in any order, with repeats
    and the empty coalition alone) against the full table of every coalition."""
    parties, (X_val, y_val) = _parties("breast_cancer", 5)
    judge = Agent(Party("judge", X_val[:1], y_val[:1], X_val, y_val))
    t = LocalTransport([Agent(p) for p in parties] + [judge])
    names = [p.name for p in parties]
    moments = collect_moments(t, names, "classification")
    fast = statistics_learner(t, moments, GaussianNB(), FastGaussianNB)
    table = score_coalitions(t, "judge", coalition_models(fast, moments), GaussianNB(), "accuracy")
    gains = CoalitionGains(fast, moments, t, "judge", GaussianNB(), "accuracy")
    rng = np.random.default_rng(0)
    for masks in (rng.integers(0, 32, size=40), np.array([0]), np.array([31, 0, 31, 1])):
        values, failures = gains.evaluate_block(masks)
        assert failures == [] and values.shape == masks.shape
        np.testing.assert_array_equal(values, table[masks])
    with pytest.raises(ValueError, match=r"lie in \[0, 2\^5\)"):
        gains.evaluate_block(np.array([32]))


def _market(n: int, validator: str | None = "judge") -> tuple[LocalTransport, list[str]]:
    parties, (X_val, y_val) = _parties("breast_cancer", n, features=3)
    if validator is None:
        parties = [Party(p.name, p.X, p.y, X_val, y_val) for p in parties]
    judge = Agent(Party("judge", X_val[:1], y_val[:1], X_val, y_val))
    return LocalTransport([Agent(p) for p in parties] + [judge]), [p.name for p in parties]


def test_what_parties_custody_cannot_value_is_refused_before_any_message() -> None:
    t, names = _market(63)
    with pytest.raises(ValueError, match=r"at most 62 parties .*64-bit bitmasks.*got 63"):
        run_custody_market(t, names, GaussianNB(), "judge")
    t, names = _market(15)
    exact = r"exact valuation in parties custody takes at most 14.*'auto' or 'monte_carlo'"
    with pytest.raises(ValueError, match=exact):
        run_custody_market(t, names, GaussianNB(), "judge", valuation="exact")
    with pytest.raises(ValueError, match=r"at most 14 parties.*rule 'loo' has no sampling"):
        run_custody_market(t, names, GaussianNB(), "judge", rule="loo")
    with pytest.raises(ValueError, match=r"stopping.*valuation='exact'"):
        run_custody_market(
            t, names, GaussianNB(), "judge", valuation="exact", stopping=MaxEvaluations(50)
        )
    assert all(not agent.log for agent in t.agents.values())  # no agent was asked anything


def test_a_noisy_logistic_regression_is_fit_in_one_block_only() -> None:
    from coopml.custody.privacy import GaussianMechanism

    parties, (X_val, y_val) = _parties("breast_cancer", 15, features=3)
    noise = GaussianMechanism(3.0, 1e-5, clip=8.0, labels=[0, 1])
    agents = [Agent(p, noise, random_state=j) for j, p in enumerate(parties)]
    judge = Agent(Party("judge", X_val[:1], y_val[:1], X_val, y_val))
    t = LocalTransport([*agents, judge])
    with pytest.raises(ValueError, match=r"privacy noise .* one block .* cannot be sampled"):
        run_custody_market(t, [p.name for p in parties], LogisticRegression(), "judge")
