"""Round trips of the federated Newton method, and what the Flower carrier counts.

Over Flower's deployment runtime each round trip starts a ClientApp process per party,
so the federated fit starts every coalition from zero in one block rather than first
fitting every party's rows together (a Newton method of its own); the models are the
in-process learner's all the same (docs/benchmarks.md, "Parties custody").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from coopml.custody import Agent, LocalTransport, run_custody_market
from coopml.custody.newton import FederatedLogisticRegression
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.learning.fast import FastLogisticRegression, membership
from coopml.market import run_market


class Counting(LocalTransport):
    def __init__(self, agents: list[Agent]) -> None:
        super().__init__(agents)
        self.kinds: list[str] = []

    def exchange(self, requests: Any) -> dict[str, dict[str, Any]]:
        self.kinds.append(str(next(iter(requests.values())).get("what", "other")))
        return super().exchange(requests)


class PooledStart(FederatedLogisticRegression):
    """The in-process learner's warm start (every party's rows fit together first)."""

    def _warm_start(self, classes: Any) -> tuple[Any, ...]:
        return FastLogisticRegression._warm_start(self, classes)


def _parties(dataset: str, n_parties: int) -> tuple[list[Party], Any]:
    ds = load_dataset(dataset)
    X = (ds.X - ds.X.mean(axis=0)) / ds.X.std(axis=0)
    X, X_val, y, y_val = train_validation_split(X, ds.y, random_state=0)
    return make_parties(X, y, n_parties, random_state=0), (X_val, y_val)


@pytest.mark.parametrize("dataset", ["breast_cancer", "wine"])
def test_zero_start_takes_fewer_round_trips_for_the_same_models(dataset: str) -> None:
    from coopml.custody.statistics import collect_moments

    parties, _ = _parties(dataset, 4)
    names = tuple(p.name for p in parties)
    A = membership(np.arange(1, 1 << len(names)), len(names))
    fits = {}
    for cls in (FederatedLogisticRegression, PooledStart):
        transport = Counting([Agent(p) for p in parties])
        moments = collect_moments(transport, names, "classification")
        fast = cls.from_agents(LogisticRegression(), transport, moments)
        fits[cls] = (fast.fit_block(A), transport.kinds)
    (zero, zero_trips), (pooled, pooled_trips) = fits.values()
    assert zero.ok.all() and pooled.ok.all()
    # the pooled start is a Newton method of its own before the block starts
    assert len(zero_trips) < len(pooled_trips) - 3, (zero_trips, pooled_trips)
    for key in ("coef", "intercept"):  # one optimum: the same models to rounding
        np.testing.assert_allclose(zero.params[key], pooled.params[key], atol=1e-9)
    # and the in-process learner's, which fits from the pooled rows
    X = [p.X for p in parties]
    y = [p.y for p in parties]
    reference = FastLogisticRegression(LogisticRegression(), X, y, X[0]).fit_block(A)
    np.testing.assert_allclose(zero.params["coef"], reference.params["coef"], atol=1e-9)


def test_zero_start_settles_as_operator_custody() -> None:
    parties, validation = _parties("breast_cancer", 5)
    names = [p.name for p in parties]
    buyer = Agent(Party("buyer", validation[0][:1], validation[1][:1], *validation))
    transport = Counting([*(Agent(p) for p in parties), buyer])
    custody = run_custody_market(transport, names, LogisticRegression(), "buyer")
    reference = run_market(parties, LogisticRegression(), validation, duplicates="ignore")
    np.testing.assert_allclose(
        [p.payout for p in custody.settlement.parties],
        [p.payout for p in reference.settlement.parties],
        atol=1e-6,
    )
    assert max(abs(p.payout) for p in reference.settlement.parties) > 1e-3


class Grid:
    """``get_node_ids``, ``push_messages``, ``pull_messages`` of a Flower ``Grid``, each
    message answered at once by an in-process agent through the ClientApp's codec."""

    def __init__(self, agents: list[Agent]) -> None:
        self.agents = {100 + i: a for i, a in enumerate(agents)}
        self.replies: dict[str, Any] = {}

    def get_node_ids(self) -> list[int]:
        return list(self.agents)

    def push_messages(self, messages: list[Any]) -> list[str]:
        from flwr.app import Message

        from coopml.custody.flower import answer

        for message in messages:
            message.metadata.__dict__["_message_id"] = f"m{len(self.replies)}"
            content = answer(self.agents[message.metadata.dst_node_id], message.content)
            self.replies[message.metadata.message_id] = Message(content, reply_to=message)
        return [m.metadata.message_id for m in messages]

    def pull_messages(self, ids: set[str]) -> list[Any]:
        return [self.replies[i] for i in ids]


def test_the_flower_carrier_counts_messages_and_encoded_bytes() -> None:
    pytest.importorskip("flwr")
    from coopml.custody.flower import FlowerTransport

    parties, _ = _parties("breast_cancer", 3)
    grid = Grid([Agent(p) for p in parties])
    transport = FlowerTransport(grid, timeout=5)
    transport.connect([p.name for p in parties], wait=5)
    transport.exchange({p.name: {"kind": "moments", "task": "classification"} for p in parties})
    assert (transport.n_exchanges, transport.n_messages) == (2, 6)  # hello, moments
    for p in parties:
        node = transport.nodes[p.name]
        # a reply carries sum_x (30 float64 = 240 bytes, plus the array's header) and more
        assert transport.wire_received[node] > transport.bytes_out[p.name] >= 240
        assert 0 < transport.wire_sent[node] < 500  # two small JSON requests, no array
