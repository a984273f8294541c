"""The agent's ClientApp path stays light, and a multi-task market scores in one round trip.

Flower 1.32 serves every message to a SuperNode with a fresh ``flwr-clientapp``
process, which imports ``coopml.custody.agent`` (the ClientApp is
``coopml.custody.agent:app``): whatever that import loads is paid once per message
(docs/benchmarks.md, "Parties custody").
"""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

import coopml.custody
from coopml.custody import Agent, LocalTransport, run_custody_market
from coopml.custody.market import _ScoreTogether
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.market import run_market

# the operator's side, and what only some requests need: none is imported by the agent
OPERATOR_SIDE = (
    "coopml.custody.market",
    "coopml.custody.newton",
    "coopml.custody.statistics",
    "coopml.custody.valuation",
    "coopml.custody.transport",
    "coopml.custody.learners",
    "coopml.coalitions",
    "coopml.market",
    "coopml.learning",
    "sklearn.dummy",
    "sklearn.linear_model",
    "sklearn.naive_bayes",
    "sklearn.discriminant_analysis",
    "flwr",
)


def _loaded_after(statement: str) -> list[str]:
    code = (
        f"import sys\n{statement}\n"
        f"print('LOADED', [m for m in {OPERATOR_SIDE!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = [s for s in out.stdout.splitlines() if s.startswith("LOADED")]
    assert line, out.stdout[-500:] + out.stderr[-500:]
    loaded = ast.literal_eval(line[0].removeprefix("LOADED "))
    assert isinstance(loaded, list)
    return loaded


def test_importing_the_agent_loads_nothing_of_the_operator_side() -> None:
    assert _loaded_after("import coopml.custody.agent") == []


def test_an_agent_answering_moments_still_loads_nothing_of_the_operator_side() -> None:
    statement = (
        "from coopml.custody.agent import Agent\n"
        "from coopml.data import Party\n"
        "a = Agent(Party('alice', [[0.0], [2.0]], [0, 1]))\n"
        "assert a.handle({'kind': 'moments', 'task': 'classification'})['n'] == 2.0"
    )
    assert _loaded_after(statement) == []


def test_the_check_can_fail() -> None:
    assert "coopml.custody.market" in _loaded_after("import coopml.custody.market")


def test_the_package_names_resolve_on_first_use() -> None:
    for name in coopml.custody.__all__:
        value = getattr(coopml.custody, name)
        assert getattr(value, "__module__", None) is None or value.__module__.startswith(
            "coopml.custody."
        )
    assert coopml.custody.Agent is coopml.custody.agent.Agent
    with pytest.raises(AttributeError, match="no attribute 'Agnet'"):
        _ = coopml.custody.Agnet


class Counting(LocalTransport):
    def __init__(self, agents: list[Agent]) -> None:
        super().__init__(agents)
        self.exchanges: list[tuple[str, int]] = []

    def exchange(self, requests: Any) -> dict[str, dict[str, Any]]:
        kind = str(next(iter(requests.values())).get("kind"))
        self.exchanges.append((kind, len(requests)))
        return super().exchange(requests)


def _market(n: int) -> list[Party]:
    ds = load_dataset("breast_cancer")
    X = (ds.X - ds.X.mean(axis=0)) / ds.X.std(axis=0)
    X, X_val, y, y_val = train_validation_split(X, ds.y, random_state=0)
    parties = make_parties(X, y, n, random_state=0)
    k = len(y_val) // n
    return [
        Party(p.name, p.X, p.y, X_val[i * k : (i + 1) * k], y_val[i * k : (i + 1) * k])
        for i, p in enumerate(parties)
    ]


@pytest.mark.parametrize("learner", [GaussianNB(), LogisticRegression()], ids=["nb", "logistic"])
def test_a_multi_task_market_scores_in_one_round_trip_with_operator_payouts(learner: Any) -> None:
    parties = _market(3)
    transport = Counting([Agent(p) for p in parties])
    result = run_custody_market(transport, [p.name for p in parties], learner)
    assert [e for e in transport.exchanges if e[0] == "score"] == [("score", 3)]
    operator = run_market(parties, learner, None, duplicates="ignore")
    ours = np.array([line.payout for line in result.settlement.parties])
    theirs = np.array([line.payout for line in operator.settlement.parties])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert result.settlement.verify().ok


def test_a_request_unlike_the_first_is_sent_on_its_own() -> None:
    parties = _market(2)
    inner = Counting([Agent(p) for p in parties])
    # not a score request: passed through untouched
    _ScoreTogether(inner, ["party_0", "party_1"]).exchange(
        {"party_0": {"kind": "moments", "task": "classification"}}
    )
    assert inner.exchanges == [("moments", 1)]
    score = {"kind": "score", "x": np.array([1.0, np.nan])}
    inner_replies = {"party_0": {"scores": np.ones(1)}, "party_1": {"scores": np.zeros(1)}}

    class Fixed:
        def __init__(self) -> None:
            self.sent: list[dict[str, Any]] = []

        def exchange(self, requests: Any) -> dict[str, dict[str, Any]]:
            self.sent.append(dict(requests))
            return {name: inner_replies[name] for name in requests}

    carrier = Fixed()
    together = _ScoreTogether(carrier, ["party_0", "party_1"])
    assert together.exchange({"party_0": score})["party_0"]["scores"][0] == 1.0
    assert together.exchange({"party_1": {"kind": "score", "x": np.array([1.0, np.nan])}}) == {
        "party_1": inner_replies["party_1"]
    }
    assert len(carrier.sent) == 1 and set(carrier.sent[0]) == {"party_0", "party_1"}
    # a request unlike the first one goes out on its own
    other = {"kind": "score", "x": np.array([1.0, 2.0])}
    together.exchange({"party_1": other})
    assert carrier.sent[-1] == {"party_1": other} and len(carrier.sent) == 2
