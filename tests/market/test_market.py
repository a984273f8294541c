"""End-to-end markets on real data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from coopml.coalitions import CoalitionGame
from coopml.data import Party, corrupt_labels, load_dataset, replicate_party
from coopml.learning import CoalitionUtility, DeduplicatingLearner
from coopml.market import (
    PAYMENT_RULES,
    find_duplicates,
    replication_audit,
    resolve_duplicates,
    run_market,
    select_training_set,
)
from coopml.market import market as market_module


def test_single_task_market_on_breast_cancer(cancer, nb):
    parties, validation = cancer
    result = run_market(parties, nb, validation)
    s = result.settlement
    assert s.mode == "single" and s.checks["balanced"] and s.verify().ok
    # The table is the utility's table: gains of models on pooled data.
    utility = CoalitionUtility(nb, parties, validation, random_state=0)
    np.testing.assert_array_equal(s.value_table, CoalitionGame.from_utility(utility).table)
    # Every party receives the grand-coalition model, which scores as recorded.
    model = result.models["party_2"]
    assert model.members == tuple(p.name for p in parties)
    assert accuracy_score(validation[1], model.predict(validation[0])) == s.parties[2].model_gain
    assert model.provenance["trained_on"] == list(model.members)
    assert set(s.provenance["data"]) == {p.name for p in parties}


def test_identical_parties_are_paid_identically(cancer, nb):
    parties, validation = cancer
    twin = replicate_party(parties[1], "party_1_twin")
    s = run_market([*parties, twin], nb, validation).settlement
    assert s.identical == ((1, 4),)
    assert s.checks["symmetric"]
    assert s.parties[1].payoff == pytest.approx(s.parties[4].payoff, abs=1e-12)


def test_noisy_party_makes_the_papers_rule_not_individually_rational(cancer):
    parties, validation = cancer
    noisy = corrupt_labels(parties[0], 0.45, random_state=0)
    learner = make_pipeline(StandardScaler(), LogisticRegression())
    s = run_market([noisy, *parties[1:]], learner, validation).settlement
    assert s.checks["balanced"] and s.checks["zero_element"]
    assert not s.checks["individually_rational"]
    losers = {r["name"]: r for r in s.checks["ir_report"]}
    assert losers and all(r["net_gain"] < 0 for r in losers.values())
    assert all("but its data earns" in r["reason"] for r in losers.values())


def test_compare_rules_settles_the_same_tables(cancer, nb):
    parties, validation = cancer
    result = run_market(parties, nb, validation)
    table = result.compare_rules()
    assert list(table.columns) == list(PAYMENT_RULES)
    pot = sum(p.improvement for p in result.settlement.parties)
    for rule in PAYMENT_RULES:  # net gains of every rule sum to zero (balance)
        assert table[rule].sum() == pytest.approx(0.0, abs=1e-9) or pot == 0


def _digits_tasks():
    """Three parties on digits: B mislabels digits 0-4, C mislabels 5-9."""
    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ds.y))
    X, y = ds.X[order], ds.y[order]
    train, val = slice(0, 1200), slice(1200, None)
    low, high = y[val] < 5, y[val] >= 5
    X_val, y_val = X[val], y[val]

    def shifted(labels, block):
        lab = labels.copy()
        hit = (lab // 5) == block
        lab[hit] = block * 5 + (lab[hit] + 1) % 5
        return lab

    A = (X[0:200], y[0:200])
    B = (X[200:700], shifted(y[200:700], 0))
    C = (X[700:1200], shifted(y[700:1200], 1))
    return A, B, C, (X_val[low], y_val[low]), (X_val[high], y_val[high]), train


def test_customised_model_rewards_an_honest_validation_task():
    A, B, C, true_task, false_task, _ = _digits_tasks()
    learner = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))

    def market(task_of_a):
        parties = [
            Party("A", *A, *task_of_a),
            Party("B", *B, *false_task),
            Party("C", *C, *true_task),
        ]
        return run_market(parties, learner, duplicates="ignore")

    honest, dishonest = market(true_task), market(false_task)
    assert honest.models["A"].members == ("A", "C")
    assert dishonest.models["A"].members == ("A", "B")
    score = {
        name: accuracy_score(true_task[1], result.models["A"].predict(true_task[0]))
        for name, result in [("honest", honest), ("dishonest", dishonest)]
    }
    assert score["honest"] > score["dishonest"] + 0.2
    s = honest.settlement
    assert s.mode == "multi" and s.checks["balanced"] and s.verify().ok
    assert s.parties[0].members == ("A", "C")
    used = {name for line in s.parties for name in line.members}
    for line in s.parties:  # data that trained no model earns nothing
        if line.name not in used:
            assert line.payout == 0.0
    assert "B" not in s.parties[0].members and "B" not in s.parties[2].members


def test_greedy_selection_matches_its_own_game(monkeypatch):
    A, B, C, true_task, _, _ = _digits_tasks()
    parties = [Party("A", *A), Party("B", *B), Party("C", *C)]
    utility = CoalitionUtility(GaussianNB(), parties, true_task)
    exhaustive, _ = select_training_set(utility, 0)
    monkeypatch.setattr(market_module, "EXHAUSTIVE_LIMIT", 1)
    greedy, game = select_training_set(utility, 0)
    assert 0 in greedy and greedy == exhaustive == (0, 2)
    assert game.grand_value == utility(greedy) and game.names == ("A", "C")


def test_duplicate_detection_and_resolution(cancer):
    parties, _ = cancer
    exact = replicate_party(parties[2], "exact_copy")
    noisy = replicate_party(parties[3], "noisy_copy", noise=0.01, random_state=0)
    everyone = [*parties, exact, noisy]
    report = find_duplicates(everyone)
    pairs = {(p["party"], p["duplicated_in"]): p for p in report.pairs()}
    assert set(pairs) == {
        ("party_2", "exact_copy"),
        ("exact_copy", "party_2"),
        ("party_3", "noisy_copy"),
        ("noisy_copy", "party_3"),
    }
    assert pairs[("exact_copy", "party_2")]["exact_rows"] == parties[2].n_samples
    assert pairs[("noisy_copy", "party_3")]["exact_rows"] == 0
    assert pairs[("noisy_copy", "party_3")]["fraction"] == 1.0
    kept, log = resolve_duplicates(everyone, "drop")
    assert [p.name for p in kept] == [p.name for p in parties]
    assert [entry["action"] for entry in log] == ["removed", "removed"]
    half = Party(
        "half",
        np.concatenate([parties[0].X[:20], parties[1].X[:5] + 100.0]),
        np.concatenate([parties[0].y[:20], parties[1].y[:5]]),
    )
    merged, log = resolve_duplicates([parties[0], half], "merge")
    assert [p.name for p in merged] == ["party_0"] and log[0]["into"] == "party_0"
    assert merged[0].n_samples == parties[0].n_samples + 5


def test_market_drops_replicas_before_settling(cancer, nb):
    parties, validation = cancer
    copy = replicate_party(parties[0], "copy")
    result = run_market([*parties, copy], nb, validation, duplicates="drop")
    assert result.settlement.names == tuple(p.name for p in parties)
    assert result.duplicate_actions[0]["party"] == "copy"


def test_deduplicating_learner_ignores_replicated_rows(cancer):
    parties, validation = cancer
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(5))
    doubled = Party("d", np.vstack([parties[0].X] * 2), np.concatenate([parties[0].y] * 2))
    ideal = [DeduplicatingLearner(knn).fit(p.X, p.y) for p in (parties[0], doubled)]
    np.testing.assert_array_equal(ideal[0].predict(validation[0]), ideal[1].predict(validation[0]))
    assert ideal[1].n_duplicates_ == parties[0].n_samples


def test_replication_audit_reports_gains_per_rule(cancer):
    parties, validation = cancer
    learner = make_pipeline(StandardScaler(), KNeighborsClassifier(5))
    audit = replication_audit(
        parties, learner, validation, party="party_3", replicas=[1, 2], kinds=["exact"]
    )
    table = audit.table
    assert len(table) == 2 * len(PAYMENT_RULES)
    assert (table["detected_rows"] == parties[3].n_samples).all()
    # The gain is what the audit says it is: re-run one cell by hand.
    copies = [replicate_party(parties[3], f"party_3~replica{c}") for c in (1, 2)]
    market = run_market([*parties, *copies], learner, validation)
    base = run_market(parties, learner, validation)
    by_hand = sum(market.settlement.parties[i].net_gain for i in (3, 4, 5)) - (
        base.settlement.parties[3].net_gain
    )
    row = table[(table.rule == "ohrimenko") & (table.replicas == 2)].iloc[0]
    assert row["gain"] == pytest.approx(by_hand, abs=1e-12)
    # Leave-one-out: k-NN is worse with a second copy of party_3's rows, so every copy's
    # LOO value is negative. Clipped to zero (rather than summing with the others to an
    # equal split, as before coopml clipped negative shares), replication does not pay.
    loo = table[(table.rule == "loo") & (table.replicas == 2)].iloc[0]
    assert loo["gain"] < 0
    codes = [f.code for f in market._resettle("loo").flags]
    assert codes == ["negative_shares_clipped"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rule": "fair"}, "'rule' must be one of"),
        ({"price": -1.0}, "'price' must be finite and > 0"),
        ({"duplicates": "keep"}, "'duplicates' must be one of"),
        ({"validation": None}, "multi-task market needs every party's own validation"),
        ({"rule": "similarity_shapley", "duplicates": "ignore"}, "needs duplicates="),
        ({"scorer": "neg_log_loss"}, r"gains must lie in \[0, 1\]"),
    ],
)
def test_bad_market_inputs(cancer, nb, kwargs, match):
    parties, validation = cancer
    args = {"validation": validation, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_market(parties, nb, args.pop("validation"), **args)


def test_audit_bad_inputs(cancer, nb):
    parties, validation = cancer
    with pytest.raises(ValueError, match="'party' must name a party; got 'nobody'"):
        replication_audit(parties, nb, validation, party="nobody")
    with pytest.raises(ValueError, match="'replicas' must be >= 1"):
        replication_audit(parties, nb, validation, party="party_0", replicas=[0])
    with pytest.raises(ValueError, match="'kinds' must be one of"):
        replication_audit(parties, nb, validation, party="party_0", kinds=["fuzzy"])


def test_idealised_learner_makes_replicas_worthless_to_the_model(cancer):
    """Under DeduplicatingLearner (the paper's assumption M(X) = M(X + X)) a coalition's
    gain is the same with the original, its exact copy, or both."""
    parties, validation = cancer
    learner = DeduplicatingLearner(make_pipeline(StandardScaler(), KNeighborsClassifier(5)))
    copy = replicate_party(parties[1], "copy")
    table = run_market([*parties, copy], learner, validation).settlement.value_table
    k, c = 1 << 1, 1 << 4
    for S in range(1 << 5):
        if not S & (k | c):
            assert table[S | k] == table[S | c] == table[S | k | c]


def test_parties_are_charged_for_the_model_they_receive(cancer):
    """With a raw LogisticRegression the fast exact path and scikit-learn's lbfgs can
    disagree on boundary points; the settlement prices the released model."""
    parties, validation = cancer
    result = run_market(parties, LogisticRegression(max_iter=5000), validation)
    for line in result.settlement.parties:
        model = result.models[line.name]
        assert accuracy_score(validation[1], model.predict(validation[0])) == line.model_gain
    assert result.settlement.verify().ok
