"""The plain-language summary of a settlement and the sentences of Monte Carlo results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from coopml.coalitions.monte_carlo import monte_carlo_shapley
from coopml.coalitions.stopping import MaxEvaluations, MaxPermutations, StandardErrorBelow
from coopml.market import PartyLine, Task, settle
from coopml.reports.summary import settlement_summary, sig, valuation_sentence


def _single(names, table, rule="shapley"):
    tasks = [Task(i, tuple(range(len(names))), np.array(table)) for i in range(len(names))]
    return settle(names, tasks, rule, mode="single")


def test_summary_says_pooling_hurts_most_parties():
    # a, b score 0.9 alone, c 0.5; the pooled model scores 0.8: it hurts a and b
    table = [0.5, 0.9, 0.9, 0.85, 0.5, 0.85, 0.85, 0.8]
    text = " ".join(settlement_summary(_single(["a", "b", "c"], table)))
    assert "The pooled model scores below most parties' own models." in text
    assert "Pooling hurts 2 of 3 parties" in text and "a (-10 points), b (-10 points)" in text
    assert "c pays" in text and "charged 0.3 for a model 30 points better than its own" in text
    assert "money is in units of the price c = 1" in text


def test_summary_is_silent_about_hurt_when_pooling_helps_everyone():
    text = " ".join(settlement_summary(_single(["a", "b"], [0.5, 0.6, 0.7, 0.9])))
    assert "Pooling hurts" not in text and "outside [0, 1]" not in text


def test_summary_flags_shares_outside_unit_interval():
    # b lowers every model it joins: its raw Shapley share is negative, a's above one
    text = " ".join(settlement_summary(_single(["a", "b"], [0.5, 0.8, 0.4, 0.7])))
    assert "Raw shares fall outside [0, 1]: a 1.5, b -0.5." in text
    assert "set those shares to 0" in text


def test_estimated_payouts_that_cannot_be_told_apart():
    s = _single(["a", "b", "c"], [0.5, 0.6, 0.6, 0.7, 0.55, 0.65, 0.65, 0.8])
    if "payout_stderr" not in {f.name for f in dataclasses.fields(PartyLine)}:
        pytest.skip("settlement lines carry no payout_stderr yet")
    noisy = dataclasses.replace(
        s, parties=tuple(dataclasses.replace(p, payout_stderr=0.05) for p in s.parties)
    )
    text = " ".join(settlement_summary(noisy))
    a = noisy.parties[0]
    assert f"{sig(a.payout)} ± 0.05" in text
    assert "cannot be told apart" in text and "95% margin of error, 0.1386" in text
    assert "cannot be told apart" not in " ".join(settlement_summary(s))


def test_valuation_block_in_words():
    assert valuation_sentence({"method": "exact"}) is None
    text = valuation_sentence(
        {
            "method": "monte_carlo",
            "estimator": "monte_carlo_shapley",
            "evaluations": 1200,
            "stopped_by": "StandardErrorBelow(0.01, relative_to='max')",
            "converged": True,
            "seed": 3,
        }
    )
    assert text is not None and "{" not in text
    assert "1,200 model fits" in text and "standard-error target" in text
    assert "; converged (seed 3)." in text


# ----------------------------------------------------------------- Monte Carlo sentences
WEIGHTS = np.linspace(0.1, 1.0, 10)


def _additive(s):
    return float(WEIGHTS[list(s)].sum())


def test_monte_carlo_sentence_budget_stop_not_converged():
    r = monte_carlo_shapley(_additive, 10, stopping=MaxEvaluations(300), random_state=0)
    text = r.summary()
    n_perm = r.info["n_permutations"]
    assert text.startswith(f"monte_carlo_shapley: stopped after {n_perm} permutations")
    assert "by the 300-evaluation budget; not converged: largest standard error" in text
    assert "{" not in text


def test_monte_carlo_sentence_converged():
    rule = StandardErrorBelow(0.5) | MaxPermutations(5000)
    r = monte_carlo_shapley(_additive, 10, stopping=rule, random_state=0)
    text = r.summary()
    assert r.converged
    assert "by reaching its standard-error target (0.5); converged" in text
    assert "5,000" not in text  # the limit that did not fire is not mentioned


def test_monte_carlo_sentence_names_the_permutation_limit():
    r = monte_carlo_shapley(_additive, 10, stopping=MaxPermutations(30), random_state=0)
    assert "30-permutation limit" in r.summary()
