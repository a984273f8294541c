"""The replication audit on estimated markets (issue 18): every rule re-estimated under
the same budget machinery, with standard errors, never an exact 2**n table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB

from coopml.data import load_dataset, make_parties, train_validation_split
from coopml.market import replication_audit, run_market
from coopml.market.sampled_shares import ESTIMATORS, market_stopping


@pytest.fixture(scope="module")
def twenty():
    ds = load_dataset("digits")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    return make_parties(X, y, 20, random_state=0), (X_val, y_val)


@pytest.mark.slow  # nine 20-party markets
def test_audit_of_a_twenty_party_market_estimates_every_rule(twenty):
    parties, val = twenty
    options = {"stopping": market_stopping(500, None)}
    audit = replication_audit(
        parties, GaussianNB(), val, party="party_3", replicas=[1], kinds=["exact"], **options
    )
    table = audit.table
    assert sorted(table["rule"]) == sorted(ESTIMATORS)  # loo has no estimator
    assert table["estimated"].all() and (table["gain_stderr"] > 0).all()
    # the baseline is the market itself under each rule, same seed and budget
    alone = run_market(parties, GaussianNB(), val, rule="banzhaf", **options).settlement
    row = table[table["rule"] == "banzhaf"].iloc[0]
    assert alone.estimated and alone.valuation["estimator"] == "msr_banzhaf"
    assert row["net_alone"] == pytest.approx(alone.parties[3].net_gain, abs=1e-12)
    significant = table["gain"] > np.maximum(1e-9, 2 * table["gain_stderr"])
    assert audit.profitable.index.tolist() == table.index[significant].tolist()


def test_audit_refuses_loo_on_an_estimated_market_instead_of_a_2_to_the_n_table(twenty):
    parties, val = twenty
    with pytest.raises(ValueError, match=r"'loo' has no sampling estimator.*\[20, 21\] parties"):
        replication_audit(
            parties, GaussianNB(), val, party="party_0", replicas=[1], rules=["shapley", "loo"]
        )


def test_small_exact_audit_keeps_every_rule_and_zero_stderr(cancer, nb):
    parties, val = cancer
    audit = replication_audit(parties, nb, val, party="party_0", replicas=[1], kinds=["exact"])
    assert len(audit.table) == 5 and not audit.table["estimated"].any()
    assert (audit.table["gain_stderr"] == 0).all()
