"""The Flower carrier without processes: a stand-in grid routes each Message to an
in-process agent through the same codec and reply function as the ClientApp."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB
from tests.custody._grid import AgentGrid, breast_cancer_parties

from coopml.custody import Agent, AgentError
from coopml.custody.learners import learner_spec
from coopml.data import Party
from coopml.market import run_market

pytest.importorskip("flwr")

from coopml.custody.flower import FlowerTransport, _run


def test_the_server_app_settles_as_operator_custody() -> None:
    parties, validation = breast_cancer_parties()
    grid = AgentGrid([Agent(p) for p in parties])
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
    parties, _ = breast_cancer_parties()
    grid = AgentGrid([Agent(p) for p in parties], silent=("party_2",))
    transport = FlowerTransport(grid, timeout=0.3)
    transport.nodes = {a.name: n for n, a in grid.nodes.items()}
    with pytest.raises(AgentError, match=r"'party_2': did not answer within 0\.3 s"):
        transport.exchange({p.name: {"kind": "moments", "task": "classification"} for p in parties})


def test_an_agent_error_travels_back_naming_the_party() -> None:
    parties, _ = breast_cancer_parties()
    grid = AgentGrid([Agent(p) for p in parties])
    transport = FlowerTransport(grid, timeout=1)
    transport.connect([p.name for p in parties], wait=1)
    with pytest.raises(AgentError, match=r"'party_1': failed to answer 'score'.*no validation"):
        transport.exchange({"party_1": {"kind": "score"}})


def test_an_agent_whose_columns_are_in_another_order_is_refused_by_name() -> None:
    """Statistics are summed column by column: a party whose file's columns come in
    another order (or are others) is refused, naming it, never summed by position."""
    parties, _ = breast_cancer_parties()
    names = [f"c{j}" for j in range(parties[0].n_features)]
    named = [
        Party(p.name, p.X, p.y, p.X_val, p.y_val, feature_names=names[::-1] if i == 2 else names)
        for i, p in enumerate(parties)
    ]
    job = {"names": [p.name for p in named], "learner": learner_spec(GaussianNB()), "timeout": 5}
    with pytest.raises(AgentError, match="party 'party_2': its feature columns") as caught:
        _run(AgentGrid([Agent(p) for p in named]), job)
    assert caught.value.party == "party_2"
