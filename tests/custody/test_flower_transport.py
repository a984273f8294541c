"""The Flower carrier without processes: a stand-in grid routes each Message to an
in-process agent through the same codec and reply function as the ClientApp."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB

from coopml.custody import Agent, AgentError
from coopml.custody.learners import learner_spec
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.market import run_market

pytest.importorskip("flwr")
from flwr.app import Message

from coopml.custody.flower import FlowerTransport, _run, answer

_ids = itertools.count()


class StandInGrid:
    """``get_node_ids``, ``push_messages``, ``pull_messages`` of a Flower ``Grid``;
    nodes in ``silent`` never answer (a disconnected agent)."""

    def __init__(self, agents: list[Agent], silent: tuple[str, ...] = ()) -> None:
        self.agents = {100 + i: a for i, a in enumerate(agents)}
        self.silent = {n for n, a in self.agents.items() if a.name in silent}
        self.replies: dict[str, Message] = {}

    def get_node_ids(self) -> list[int]:
        return list(self.agents)

    def push_messages(self, messages: list[Message]) -> list[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = f"m{next(_ids)}"
            node = message.metadata.dst_node_id
            if node not in self.silent:
                content = answer(self.agents[node], message.content)
                self.replies[message.metadata.message_id] = Message(content, reply_to=message)
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, ids: set[str]) -> list[Message]:
        return [self.replies.pop(i) for i in list(ids) if i in self.replies]


def _parties() -> tuple[list[Party], Any]:
    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    parties = make_parties(X[:45], y[:45], 3, random_state=0)
    parties[0] = Party("party_0", parties[0].X, parties[0].y, X_val, y_val)
    return parties, (X_val, y_val)


def test_the_server_app_settles_as_operator_custody() -> None:
    parties, validation = _parties()
    grid = StandInGrid([Agent(p) for p in parties])
    job = {
        "names": [p.name for p in parties],
        "learner": learner_spec(GaussianNB()),
        "validator": "party_0",
        "timeout": 5,
    }
    result = _run(grid, job)
    reference = run_market(parties, GaussianNB(), validation, duplicates="ignore")
    np.testing.assert_allclose(
        [line["payout"] for line in result["settlement"]["parties"]],
        [p.payout for p in reference.settlement.parties],
        atol=1e-6,
    )
    assert result["bytes_out"]["party_0"] > result["bytes_out"]["party_1"]  # + scores


def test_an_agent_that_does_not_answer_is_named_after_the_timeout() -> None:
    parties, _ = _parties()
    grid = StandInGrid([Agent(p) for p in parties], silent=("party_2",))
    transport = FlowerTransport(grid, timeout=0.3)
    transport.nodes = {a.name: n for n, a in grid.agents.items()}
    with pytest.raises(AgentError, match=r"'party_2': did not answer within 0\.3 s"):
        transport.exchange({p.name: {"kind": "moments", "task": "classification"} for p in parties})


def test_an_agent_error_travels_back_naming_the_party() -> None:
    parties, _ = _parties()
    grid = StandInGrid([Agent(p) for p in parties])
    transport = FlowerTransport(grid, timeout=1)
    transport.connect([p.name for p in parties], wait=1)
    with pytest.raises(AgentError, match=r"'party_1': failed to answer 'score'.*no validation"):
        transport.exchange({"party_1": {"kind": "score"}})


def test_an_agent_whose_columns_are_in_another_order_is_refused_by_name() -> None:
    """Statistics are summed column by column: a party whose file's columns come in
    another order (or are others) is refused, naming it, never summed by position."""
    parties, _ = _parties()
    names = [f"c{j}" for j in range(parties[0].n_features)]
    named = [
        Party(p.name, p.X, p.y, p.X_val, p.y_val, feature_names=names[::-1] if i == 2 else names)
        for i, p in enumerate(parties)
    ]
    job = {"names": [p.name for p in named], "learner": learner_spec(GaussianNB()), "timeout": 5}
    with pytest.raises(AgentError, match="party 'party_2': its feature columns") as caught:
        _run(StandInGrid([Agent(p) for p in named]), job)
    assert caught.value.party == "party_2"
