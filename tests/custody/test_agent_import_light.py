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
# what a message's process pays seconds for, and which hello, moments and newton need not
HEAVY = ("pandas", "sklearn", "scipy")


def _loaded_after(statement: str, watched: tuple[str, ...] = OPERATOR_SIDE) -> list[str]:
    code = (
        f"import sys\n{statement}\nprint('LOADED', [m for m in {watched!r} if m in sys.modules])\n"
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
    assert _loaded_after("import coopml.data.datasets", HEAVY) == list(HEAVY)


def test_the_agent_and_its_moments_and_newton_answers_load_no_pandas_scipy_or_sklearn() -> None:
    statement = (
        "import numpy as np\n"
        "from coopml.custody.agent import Agent\n"
        "from coopml.data.party import Party\n"
        "a = Agent(Party('alice', [[0.0, 1.0], [2.0, 0.5], [1.0, 1.0]], [0, 1, 1]))\n"
        "assert a.handle({'kind': 'moments', 'task': 'classification'})['n'] == 3.0\n"
        "r = a.handle({'kind': 'newton', 'what': 'grad_hess', 'theta': np.zeros((1, 3)),\n"
        "    'shift': np.zeros(2), 'fit_intercept': True, 'subset': [0, 1],\n"
        "    'classes': [0, 1]})\n"
        "assert r['hess'].shape == (1, 3, 3)"
    )
    assert _loaded_after(statement, HEAVY) == []


def test_the_rows_cache_reads_the_files_once_and_follows_their_changes(tmp_path: Any) -> None:
    """A node config's ``rows``: the first process parses the CSV files (pandas) and
    keeps the arrays in a 0600 .npz; later processes load the same party from it
    without pandas; a changed file is parsed again."""
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("b,a,label\n0.5,1.0,0\n1.5,2.0,1\n2.5,0.0,1\n")
    val.write_text("a,b,label\n1.0,1.0,1\n0.0,3.0,0\n")
    config = {
        "party": "alice",
        "train": str(train),
        "validation": str(val),
        "target": "label",
        "features": "a,b",
        "rows": str(tmp_path / "alice.rows.npz"),
    }
    show = (
        "from coopml.custody.agent import agent_from_config\n"
        f"p = agent_from_config({config!r}).party\n"
        "print('PARTY', p.X.tolist(), p.y.tolist(), p.X_val.tolist(), p.y_val.tolist(), "
        "list(p.feature_names))"
    )

    def run() -> tuple[str, list[str]]:
        code = f"import sys\n{show}\nprint('LOADED', [m for m in {HEAVY!r} if m in sys.modules])"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
        return lines["PARTY"], ast.literal_eval(lines["LOADED"])

    first, loaded = run()
    assert "pandas" in loaded
    rows = "[[1.0, 0.5], [2.0, 1.5], [0.0, 2.5]] [0, 1, 1] [[1.0, 1.0], [0.0, 3.0]] [1, 0]"
    assert first == f"{rows} ['a', 'b']"  # columns matched by name
    assert (tmp_path / "alice.rows.npz").stat().st_mode & 0o777 == 0o600
    again, loaded = run()
    assert (again, loaded) == (first, [])
    train.write_text("a,b,label\n9.0,8.0,1\n7.0,6.0,0\n")  # the party edits its file
    changed, loaded = run()
    assert "pandas" in loaded
    assert changed.startswith("[[9.0, 8.0], [7.0, 6.0]] [1, 0] ")


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
